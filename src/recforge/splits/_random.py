"""Random splits over rows: hold-out, k-fold, per-user ratio, and index parts for any table."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from recforge._arrays import random_parts  # noqa: F401 - re-exported by recforge.splits
from recforge.data.interactions import Interactions
from recforge.errors import ConfigError, DataError
from recforge.splits._base import (
    Split,
    check_fraction,
    check_positive_int,
    check_seed,
    group_positions,
    make_split,
    require_rows,
    round_half_up,
)


def random_split(
    data: Interactions, test_fraction: float = 0.2, seed: int = 0, valid_fraction: float = 0.0
) -> Split:
    """Hold out a random fraction of the rows (and optionally a validation fraction).

    ``round(test_fraction * n)`` rows chosen uniformly at random go to test, then
    ``round(valid_fraction * n)`` of the rest to validation; the remainder is train. Users and items
    may end up only in test: they are unknown to a model trained on this split.

    Args:
        data: The interactions to split.
        test_fraction: Fraction of rows in test, in (0, 1).
        seed: Seed of the permutation.
        valid_fraction: Fraction of rows in validation, in [0, 1); 0 means no validation set.

    Returns:
        A :class:`Split` named ``"random"``.
    """
    test_fraction = check_fraction(test_fraction, "test_fraction")
    valid_fraction = check_fraction(valid_fraction, "valid_fraction", allow_zero=True)
    seed = check_seed(seed)
    if test_fraction + valid_fraction >= 1:
        raise ConfigError(
            f"test_fraction + valid_fraction must be below 1, got {test_fraction} + {valid_fraction}"
        )
    n = len(data)
    n_test = int(round_half_up(test_fraction * n))
    n_valid = int(round_half_up(valid_fraction * n))
    if n_test < 1 or (valid_fraction > 0 and n_valid < 1) or n - n_test - n_valid < 1:
        raise DataError(
            f"random_split: {n} interactions are too few for test_fraction={test_fraction} "
            f"and valid_fraction={valid_fraction}"
        )
    perm = np.random.default_rng(seed).permutation(n)
    part = np.zeros(n, dtype=np.int8)
    part[perm[:n_test]] = 1
    part[perm[n_test : n_test + n_valid]] = 2
    info = {"seed": seed, "test_fraction": test_fraction, "valid_fraction": valid_fraction}
    return make_split(data, part, "random", info=info)


def kfold(data: Interactions, n_folds: int = 5, seed: int = 0, shuffle: bool = True) -> list[Split]:
    """K-fold cross-validation over rows: the test sets of the folds partition the rows.

    With rows in file order this gives exactly the folds of scikit-surprise's
    ``KFold(n_splits=n_folds, random_state=seed, shuffle=shuffle)``: row indices are shuffled with
    ``np.random.RandomState(seed).shuffle`` and cut into consecutive blocks, the first
    ``n % n_folds`` blocks one row longer.

    Args:
        data: The interactions to split.
        n_folds: Number of folds, at least 2 and at most the number of rows.
        seed: Seed of the shuffle (unused when ``shuffle`` is False).
        shuffle: Shuffle rows before cutting; without it fold ``f`` tests a contiguous block of rows.

    Returns:
        ``n_folds`` splits named ``"kfold"`` with ``fold`` set to 0, 1, ...
    """
    n_folds = check_positive_int(n_folds, "n_folds", minimum=2)
    seed = check_seed(seed)
    n = len(data)
    if n_folds > n:
        raise DataError(f"kfold: n_folds={n_folds} is more than the {n} interactions of {data.name!r}")
    indices = np.arange(n)
    if shuffle:
        # the legacy RandomState stream is what scikit-surprise uses, so folds match it exactly
        np.random.RandomState(seed).shuffle(indices)
    sizes = np.full(n_folds, n // n_folds, dtype=np.int64)
    sizes[: n % n_folds] += 1
    stops = np.cumsum(sizes)
    splits = []
    for fold in range(n_folds):
        part = np.zeros(n, dtype=np.int8)
        part[indices[stops[fold] - sizes[fold] : stops[fold]]] = 1
        info = {"seed": seed, "n_folds": n_folds, "shuffle": bool(shuffle)}
        splits.append(make_split(data, part, "kfold", fold=fold, info=info))
    return splits


def ratio_user_split(data: Interactions, test_fraction: float = 0.2, seed: int = 0) -> Split:
    """Per user, hold out a random fraction of their rows; every user keeps at least one train row.

    A user with ``c >= 2`` rows gets ``min(c - 1, max(1, round(test_fraction * c)))`` random rows
    in test; a user with one row stays entirely in train.

    Args:
        data: The interactions to split.
        test_fraction: Fraction of each user's rows in test, in (0, 1).
        seed: Seed of the per-user draws.

    Returns:
        A :class:`Split` named ``"ratio-user"``.
    """
    test_fraction = check_fraction(test_fraction, "test_fraction")
    seed = check_seed(seed)
    require_rows(data, 2, "ratio_user_split")
    keys = np.random.default_rng(seed).random(len(data))
    pos, size = group_positions(data.user_idx, data.n_users, keys)
    n_test = np.minimum(size - 1, np.maximum(1, round_half_up(test_fraction * size)))
    part = (size - 1 - pos < n_test).astype(np.int8)
    info = {"seed": seed, "test_fraction": test_fraction}
    return make_split(data, part, "ratio-user", info=info)



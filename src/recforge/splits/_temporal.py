"""Time-aware splits: per-user latest rows, a global cut, and leave-one-out."""

from __future__ import annotations

import numpy as np

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
    require_timestamps,
    round_half_up,
)


def temporal_user_split(data: Interactions, n: int | None = None, fraction: float | None = None) -> Split:
    """Per user, the latest rows go to test; earlier ones to train.

    A user with ``c`` rows puts their latest ``n`` rows (or ``max(1, round(fraction * c))``) in
    test, but never more than ``c - 1``: every user with a test row keeps at least one train row,
    and a user with a single row stays in train. Rows are ordered by timestamp; among equal
    timestamps the larger item index counts as later (item indices follow the sorted raw ids).

    Args:
        data: The interactions to split; must have timestamps.
        n: Number of latest rows per user to hold out (give this or ``fraction``).
        fraction: Fraction of each user's rows to hold out, in (0, 1).

    Returns:
        A :class:`Split` named ``"temporal-user"``.

    Raises:
        DataError: The data has no timestamps.
        ConfigError: Neither or both of ``n`` and ``fraction`` are given, or one is out of range.
    """
    if (n is None) == (fraction is None):
        raise ConfigError("temporal_user_split: give exactly one of n or fraction")
    ts = require_timestamps(data, "temporal_user_split")
    pos, size = group_positions(data.user_idx, data.n_users, ts, data.item_idx)
    if n is not None:
        n = check_positive_int(n, "n")
        wanted = np.full(len(data), n, dtype=np.int64)
        info: dict = {"n": n}
    else:
        fraction = check_fraction(fraction, "fraction")
        wanted = np.maximum(1, round_half_up(fraction * size))
        info = {"fraction": fraction}
    n_test = np.minimum(size - 1, wanted)
    part = (size - 1 - pos < n_test).astype(np.int8)
    return make_split(data, part, "temporal-user", info=info)


def global_time_split(data: Interactions, cut: int | None = None, quantile: float | None = None) -> Split:
    """Rows with ``timestamp >= cut`` go to test, earlier rows to train.

    With ``quantile=q`` the cut is the timestamp of the row at position ``floor(q * n)`` in time
    order, so about the earliest ``q`` fraction of rows is train (fewer when rows tie at the cut).
    The cut used is in ``info["cut"]``.

    Args:
        data: The interactions to split; must have timestamps.
        cut: Timestamp (same unit as the data) where test begins.
        quantile: Fraction of rows, in (0, 1), before the cut.

    Returns:
        A :class:`Split` named ``"global-time"``.

    Raises:
        DataError: No timestamps, or the cut leaves train or test empty.
        ConfigError: Neither or both of ``cut`` and ``quantile`` are given.
    """
    if (cut is None) == (quantile is None):
        raise ConfigError("global_time_split: give exactly one of cut or quantile")
    ts = require_timestamps(data, "global_time_split")
    require_rows(data, 2, "global_time_split")
    if quantile is not None:
        quantile = check_fraction(quantile, "quantile")
        ordered = np.sort(ts)
        cut = int(ordered[min(len(ts) - 1, int(np.floor(quantile * len(ts))))])
    else:
        if isinstance(cut, bool) or not isinstance(cut, (int, np.integer)):
            raise ConfigError(f"cut must be an int timestamp, got {cut!r}")
        cut = int(cut)
    part = (ts >= cut).astype(np.int8)
    n_test = int(part.sum())
    if n_test == 0 or n_test == len(ts):
        side = "test" if n_test == 0 else "train"
        raise DataError(
            f"global_time_split: cut {cut} leaves {side} empty (timestamps of {data.name!r} run "
            f"from {int(ts.min())} to {int(ts.max())})"
        )
    info = {"cut": cut, "quantile": quantile}
    return make_split(data, part, "global-time", info=info)


def leave_one_out(data: Interactions, seed: int = 0, valid: bool = False) -> Split:
    """Each user's latest interaction goes to test (and with ``valid``, the one before to validation).

    "Latest" is by timestamp; among equal timestamps the largest item index, i.e. the largest raw
    item id (vocabularies are sorted), counts as latest, so the result is deterministic. Without
    timestamps a random row per user (drawn with ``seed``) is held out. Users with a single
    interaction have no test row; with ``valid``, users need three rows to get a validation row,
    so every user keeps at least one train row.

    Args:
        data: The interactions to split.
        seed: Seed of the random choice, used only when the data has no timestamps.
        valid: Also hold out each user's second-latest interaction as a validation set.

    Returns:
        A :class:`Split` named ``"leave-one-out"``; ``info["timestamps"]`` says whether time was used.
    """
    seed = check_seed(seed)
    if data.timestamps is not None:
        keys: tuple[np.ndarray, ...] = (data.timestamps, data.item_idx)
    else:
        keys = (np.random.default_rng(seed).random(len(data)),)
    pos, size = group_positions(data.user_idx, data.n_users, *keys)
    back = size - 1 - pos  # 0 = latest
    part = np.zeros(len(data), dtype=np.int8)
    part[(back == 0) & (size >= 2)] = 1
    if valid:
        part[(back == 1) & (size >= 3)] = 2
    if not (part == 1).any():
        raise DataError(f"leave_one_out: no user of {data.name!r} has two or more interactions")
    info = {"seed": seed, "timestamps": data.timestamps is not None}
    split = make_split(data, part, "leave-one-out", info=info)
    if valid and split.valid is None:
        split.valid = data.subset(np.zeros(len(data), bool), name=f"{data.name}:valid")
    return split

"""Small array, id and argument helpers shared across layers (the ground floor: imports nothing of recforge
but errors)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from recforge.errors import ConfigError


def round_half_up(x: np.ndarray | float) -> np.ndarray:
    """Round to the nearest integer with halves going up (``np.round`` rounds halves to even)."""
    # the epsilon makes products such as 0.15 * 10 = 1.4999999999999998 round as the 1.5 they mean
    return np.floor(np.asarray(x, dtype=np.float64) + 0.5 + 1e-9).astype(np.int64)


def group_positions(group: np.ndarray, n_groups: int, *keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Position of each row within its group when the group's rows are sorted by ``keys``.

    Args:
        group: Group index per row (a user or item index), in ``0..n_groups-1``.
        n_groups: Number of groups.
        *keys: Sort keys, most significant first; remaining ties keep row order.

    Returns:
        ``(pos, size)``: per row, its 0-based position in its sorted group and the group's size.
    """
    group = np.asarray(group, dtype=np.int64)
    n = len(group)
    # lexsort treats the last key as the primary one
    order = np.lexsort(tuple(reversed(keys)) + (group,)) if n else np.empty(0, np.int64)
    counts = np.bincount(group, minlength=n_groups)
    starts = np.cumsum(counts) - counts
    pos = np.empty(n, dtype=np.int64)
    pos[order] = np.arange(n, dtype=np.int64) - starts[group[order]]
    return pos, counts[group]


def check_seed(seed: Any) -> int:
    """Accept an int seed (numpy ints included) and return it as an int."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"seed must be a non-negative int, got {seed!r}")
    return int(seed)


def check_fraction(value: Any, name: str, *, allow_zero: bool = False) -> float:
    """Check that ``value`` is a fraction in (0, 1) (or [0, 1) with ``allow_zero``)."""
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    low_ok = ok and (value >= 0 if allow_zero else value > 0)
    if not (low_ok and value < 1):
        interval = "[0, 1)" if allow_zero else "(0, 1)"
        raise ConfigError(f"{name} must be a number in {interval}, got {value!r}")
    return float(value)


def check_positive_int(value: Any, name: str, *, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)



def check_k(k: Any, name: str = "k") -> int:
    """Check a list length: a positive int (numpy ints included, bools not)."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k <= 0:
        raise ConfigError(f"{name} must be a positive integer, got {k!r}")
    return int(k)


def plain_id(x: Any) -> Any:
    """A numpy scalar id as the Python value (for JSON and dict keys); other values unchanged."""
    return x.item() if isinstance(x, np.generic) else x


def id_key(raw: Any) -> str:
    """The string key of a raw id, so that ``7``, ``np.int64(7)`` and ``"7"`` match."""
    return str(raw.item() if hasattr(raw, "item") else raw)


def category_key(v: Any) -> str:
    """The string key of a categorical value: ``3``, ``3.0`` and ``"3"`` are one category (numbers read
    from CSV come back as floats when the column has NaN)."""
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return str(int(v))
    return str(v.item() if isinstance(v, np.generic) else v)


def random_parts(n: int, fractions: Sequence[float], seed: int) -> list[np.ndarray]:
    """Shuffle ``range(n)`` with ``seed`` and cut it into consecutive parts of the given fractions.

    The split of a table that is not :class:`Interactions` (CTR rows): each part is a sorted array
    of row positions; part ``j`` gets the rows between ``round(cumsum(fractions)[j-1] * n)`` and
    ``round(cumsum(fractions)[j] * n)`` of one seeded permutation.

    Args:
        n: Number of rows.
        fractions: One share per part, each >= 0, summing to 1.
        seed: Seed of the permutation.

    Returns:
        One sorted int array per fraction; together they partition ``range(n)``.

    Raises:
        ConfigError: The fractions are negative or do not sum to 1.
    """
    if abs(sum(fractions) - 1.0) > 1e-9 or min(fractions) < 0:
        raise ConfigError(f"fractions must be >= 0 and sum to 1, got {tuple(fractions)}")
    perm = np.random.default_rng(seed).permutation(n)
    cuts = np.round(np.cumsum(fractions)[:-1] * n).astype(int)
    return [np.sort(p) for p in np.split(perm, cuts)]

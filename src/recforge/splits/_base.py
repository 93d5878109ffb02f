"""The :class:`Split` container and helpers shared by the split functions."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from recforge.data.interactions import Interactions
from recforge.errors import ConfigError, DataError


@dataclass(eq=False)
class Split:
    """A train/test (and optional validation) partition of one :class:`Interactions`.

    Every part is a row subset of the same parent, made with :meth:`Interactions.subset`, so all
    parts share the parent's user and item vocabularies and indices are comparable across them.
    Together the parts hold each parent row exactly once.

    Attributes:
        train: Rows to fit on.
        test: Held-out rows to evaluate on.
        valid: Optional held-out rows for early stopping or tuning.
        name: The split method (``"random"``, ``"kfold"``, ``"leave-one-out"``, ...).
        fold: The fold number for cross-validation, else ``None``.
        info: Extra facts about the split: the seed, the cut timestamp, held-out raw ids, ...
    """

    train: Interactions
    test: Interactions
    valid: Interactions | None = None
    name: str = "split"
    fold: int | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        parts = [f"train={len(self.train)}", f"test={len(self.test)}"]
        if self.valid is not None:
            parts.append(f"valid={len(self.valid)}")
        if self.fold is not None:
            parts.append(f"fold={self.fold}")
        return f"Split({self.name!r}, {', '.join(parts)})"


def make_split(
    data: Interactions,
    part: np.ndarray,
    name: str,
    *,
    fold: int | None = None,
    info: dict[str, Any] | None = None,
) -> Split:
    """Build a :class:`Split` from a per-row code: 0 = train, 1 = test, 2 = valid.

    Each part keeps the parent's row order.
    """
    has_valid = bool((part == 2).any())
    label = data.name
    return Split(
        train=data.subset(part == 0, name=f"{label}:train"),
        test=data.subset(part == 1, name=f"{label}:test"),
        valid=data.subset(part == 2, name=f"{label}:valid") if has_valid else None,
        name=name,
        fold=fold,
        info=dict(info or {}),
    )


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


def require_timestamps(data: Interactions, what: str) -> np.ndarray:
    """The data's timestamps, or a :class:`DataError` naming the split that needs them."""
    if data.timestamps is None:
        raise DataError(
            f"{what} needs timestamps, but {data.name!r} has none; load the data with a timestamp "
            "column or use a random split"
        )
    return data.timestamps


def require_rows(data: Interactions, minimum: int, what: str) -> None:
    if len(data) < minimum:
        raise DataError(f"{what} needs at least {minimum} interactions, {data.name!r} has {len(data)}")

"""Helpers shared by the split functions (the :class:`Split` container is :mod:`recforge.data.split`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from recforge.data.interactions import Interactions
from recforge._arrays import check_fraction, check_positive_int, check_seed, group_positions, round_half_up
from recforge.data.split import Split
from recforge.errors import DataError

__all__ = [
    "Split", "check_fraction", "check_positive_int", "check_seed", "group_positions", "make_split",
    "require_rows", "require_timestamps", "round_half_up",
]


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

"""Cleaning steps of an interaction log, each returning what it kept and one line on what it dropped.

Used by :meth:`recforge.data.source.DataSource.load` (``--positive-threshold``,
``--min-user-interactions``, ``--min-item-interactions``, ``--weights``).
"""

from __future__ import annotations

import numpy as np

from recforge.errors import DataError

WEIGHTS = ("binary", "count", "log1p")
"""Values of implicit feedback: every interaction 1, the count itself, or ``log(1 + count)``."""


def positive_threshold(values: np.ndarray, threshold: float) -> tuple[np.ndarray, str]:
    """Rows whose rating is at least ``threshold`` (the positives of an explicit-to-implicit conversion)."""
    keep = np.asarray(values) >= threshold
    dropped = int((~keep).sum())
    return keep, (f"--positive-threshold {threshold:g}: kept {int(keep.sum()):,} ratings >= {threshold:g} as "
                  f"implicit positives, dropped {dropped:,}")


def kcore(user_idx: np.ndarray, item_idx: np.ndarray, min_user: int, min_item: int,
          keep: np.ndarray | None = None) -> tuple[np.ndarray, str]:
    """The k-core of a log: repeatedly drop users with fewer than ``min_user`` rows and items with
    fewer than ``min_item`` rows until every remaining user and item has enough (a fixed point;
    dropping an item can push a user below the bound and the reverse).

    Args:
        user_idx: User index per row.
        item_idx: Item index per row.
        min_user: Least rows a kept user has (0 or 1: no bound).
        min_item: Least rows a kept item has.
        keep: Rows already kept by an earlier step (default: all).

    Returns:
        The mask of kept rows and a line saying how many rows, users and items were dropped in how
        many rounds.
    """
    u = np.asarray(user_idx, dtype=np.int64)
    i = np.asarray(item_idx, dtype=np.int64)
    keep = np.ones(len(u), bool) if keep is None else np.asarray(keep, bool).copy()
    n_u = int(u.max()) + 1 if len(u) else 0
    n_i = int(i.max()) + 1 if len(i) else 0
    start = keep.copy()
    rounds = 0
    while True:
        uc = np.bincount(u[keep], minlength=n_u)
        ic = np.bincount(i[keep], minlength=n_i)
        bad = keep & ((uc[u] < min_user) | (ic[i] < min_item))
        if not bad.any():
            break
        keep &= ~bad
        rounds += 1
    users_before = len(np.unique(u[start]))
    items_before = len(np.unique(i[start]))
    users_after = len(np.unique(u[keep]))
    items_after = len(np.unique(i[keep]))
    note = (f"k-core (users >= {min_user}, items >= {min_item} interactions, {rounds} round(s)): dropped "
            f"{int(start.sum() - keep.sum()):,} rows, {users_before - users_after:,} users, "
            f"{items_before - items_after:,} items; {int(keep.sum()):,} rows left")
    return keep, note


def apply_weights(values: np.ndarray, weights: str, label: str = "data") -> tuple[np.ndarray, str | None]:
    """The values of implicit feedback under ``weights`` (see :data:`WEIGHTS`), and a note when
    they changed anything. ``count`` and ``log1p`` need non-negative values."""
    if weights not in WEIGHTS:
        raise DataError(f"weights {weights!r}: use {', '.join(WEIGHTS)}")
    values = np.asarray(values, dtype=np.float32)
    if weights == "binary":
        if np.all(values == 1):
            return values, None
        return np.ones_like(values), "weights=binary: every interaction counts 1 (pass --weights count or " \
                                     "log1p to keep the counts)"
    if len(values) and float(values.min()) < 0:
        raise DataError(f"{label}: --weights {weights} needs non-negative counts, found {float(values.min()):g}")
    if weights == "count":
        return values, f"weights=count: values are the counts ({float(values.min()):g} to {float(values.max()):g})"
    return np.log1p(values).astype(np.float32), "weights=log1p: values are log(1 + count)"

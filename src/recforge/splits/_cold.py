"""Cold-start splits: users or items absent from training."""

from __future__ import annotations

from typing import Literal

import numpy as np

from recforge.data.interactions import Interactions
from recforge.errors import ConfigError, DataError
from recforge.splits._base import (
    Split,
    check_fraction,
    check_seed,
    group_positions,
    make_split,
    round_half_up,
)


def cold_start_split(
    data: Interactions,
    fraction: float = 0.2,
    kind: Literal["users", "items"] = "users",
    seed: int = 0,
    reveal: int = 0,
) -> Split:
    """Hold out a random fraction of users (or items) entirely from training.

    ``max(1, round(fraction * m))`` of the ``m`` users (items) that have interactions are drawn at
    random (at most ``m - 1``); all their rows go to test. With ``reveal=r``, each held-out entity's
    ``r`` earliest rows (by timestamp, then the other index; random order without timestamps) go
    to train instead, as onboarding interactions, and only the rest is tested. A held-out entity
    with ``r`` or fewer rows therefore has no test row.

    Args:
        data: The interactions to split.
        fraction: Fraction of users (items) to hold out, in (0, 1).
        kind: ``"users"`` or ``"items"``.
        seed: Seed of the draw (and of the onboarding order without timestamps).
        reveal: Rows per held-out entity given to train, >= 0.

    Returns:
        A :class:`Split` named ``"cold-start-users"`` or ``"cold-start-items"``;
        ``info["held_out"]`` holds the held-out raw ids (sorted) and ``info["held_out_idx"]`` their
        indices.
    """
    fraction = check_fraction(fraction, "fraction")
    seed = check_seed(seed)
    if kind not in ("users", "items"):
        raise ConfigError(f"kind must be 'users' or 'items', got {kind!r}")
    if isinstance(reveal, bool) or not isinstance(reveal, (int, np.integer)) or reveal < 0:
        raise ConfigError(f"reveal must be an int >= 0, got {reveal!r}")
    reveal = int(reveal)
    if kind == "users":
        group, other, vocab = data.user_idx, data.item_idx, data.users
    else:
        group, other, vocab = data.item_idx, data.user_idx, data.items
    present = np.flatnonzero(np.bincount(group, minlength=len(vocab)) > 0)
    if len(present) < 2:
        raise DataError(f"cold_start_split: {data.name!r} has fewer than two {kind} with interactions")
    n_hold = int(min(len(present) - 1, max(1, round_half_up(fraction * len(present)))))
    rng = np.random.default_rng(seed)
    held = np.sort(rng.choice(present, size=n_hold, replace=False))
    is_held = np.zeros(len(vocab), dtype=bool)
    is_held[held] = True
    part = is_held[group].astype(np.int8)
    if reveal:
        if data.timestamps is not None:
            keys: tuple[np.ndarray, ...] = (data.timestamps, other)
        else:
            keys = (rng.random(len(data)),)
        pos, _ = group_positions(group, len(vocab), *keys)
        part[(part == 1) & (pos < reveal)] = 0
    info = {"kind": kind, "held_out": vocab.ids[held], "held_out_idx": held, "reveal": reveal, "seed": seed}
    return make_split(data, part, f"cold-start-{kind}", info=info)

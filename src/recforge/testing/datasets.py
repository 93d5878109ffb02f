"""Tiny synthetic datasets whose right answers are known."""

from __future__ import annotations

import numpy as np
import pandas as pd

from recforge.data.interactions import Interactions


def toy_ratings(
    n_users: int = 40, n_items: int = 30, density: float = 0.5, rank: int = 2, seed: int = 0,
    string_ids: bool = False,
) -> Interactions:
    """Ratings 1-5 from user and item biases plus a rank-``rank`` model and noise, with timestamps.

    A low-rank model should predict the held-out cells better than the global mean; with
    ``string_ids`` the raw ids are strings (``"u0"``, ``"i0"``) to exercise id handling.
    """
    rng = np.random.default_rng(seed)
    p = rng.normal(size=(n_users, rank))
    q = rng.normal(size=(n_items, rank))
    bu = 0.5 * rng.normal(size=(n_users, 1))
    bi = 0.7 * rng.normal(size=(1, n_items))
    full = 3.0 + bu + bi + 0.8 * p @ q.T + 0.3 * rng.normal(size=(n_users, n_items))
    full = np.clip(np.rint(full), 1, 5)
    mask = rng.random((n_users, n_items)) < density
    mask[np.arange(n_users), rng.integers(0, n_items, n_users)] = True  # every user has a row
    mask[rng.integers(0, n_users, n_items), np.arange(n_items)] = True  # every item has a row
    u, i = np.nonzero(mask)
    users = np.array([f"u{x}" for x in u]) if string_ids else u + 1
    items = np.array([f"i{x}" for x in i]) if string_ids else i + 101
    df = pd.DataFrame(
        {"user_id": users, "item_id": items, "rating": full[u, i], "timestamp": rng.permutation(len(u)) + 1_000}
    )
    return Interactions.from_dataframe(df, rating="rating", timestamp="timestamp", name="toy-ratings")


def checkerboard(n: int = 20, seed: int = 0) -> Interactions:
    """Implicit feedback: even users like even items, odd users odd items; the diagonal is withheld.

    A good ranking model recommends user ``u`` the item ``u`` (the withheld one) first among unseen
    items of the same parity (implicit's test set-up).
    """
    u, i = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    keep = ((u % 2) == (i % 2)) & (u != i)
    df = pd.DataFrame({"user_id": u[keep], "item_id": i[keep]})
    rng = np.random.default_rng(seed)
    df["timestamp"] = rng.permutation(len(df))
    return Interactions.from_dataframe(df, timestamp="timestamp", name="checkerboard")

"""Tiny synthetic datasets with item and user side features, for content and hybrid models."""

from __future__ import annotations

import numpy as np
import pandas as pd

from recforge.data.interactions import Interactions

GENRES = ("Action", "Comedy", "Drama", "Horror", "Romance", "SciFi")
_WORDS = ("star", "night", "love", "war", "dead", "city", "blue", "last", "man", "world", "dark", "home")


def toy_item_features(item_ids: np.ndarray, seed: int = 0) -> pd.DataFrame:
    """Features for the given raw item ids: genre flags, a ``genres`` string, ``year``, ``title``.

    Item ``j`` (in the given order) always has genre ``GENRES[j % 6]``, plus a random second one
    half of the time; titles share words within a genre so TF-IDF has something to match.
    """
    rng = np.random.default_rng(seed)
    n = len(item_ids)
    flags = np.zeros((n, len(GENRES)), dtype=np.int64)
    flags[np.arange(n), np.arange(n) % len(GENRES)] = 1
    extra = rng.integers(0, len(GENRES), n)
    flags[np.arange(n), extra] |= (rng.random(n) < 0.5).astype(np.int64)
    df = pd.DataFrame(flags, columns=list(GENRES), index=pd.Index(item_ids, name="item_id"))
    df["genres"] = ["|".join(g for g, f in zip(GENRES, row, strict=True) if f) for row in flags]
    df["year"] = 1970 + (np.arange(n) * 7 + rng.integers(0, 5, n)) % 50
    titles = []
    for j in range(n):
        w1 = _WORDS[(j % len(GENRES)) * 2 % len(_WORDS)]
        w2 = _WORDS[rng.integers(0, len(_WORDS))]
        titles.append(f"The {w1.title()} {w2.title()} {j}")
    df["title"] = titles
    return df


def toy_user_features(user_ids: np.ndarray, seed: int = 0) -> pd.DataFrame:
    """Features for the given raw user ids: ``age`` (int), ``gender`` and ``occupation`` (strings)."""
    rng = np.random.default_rng(seed + 1)
    n = len(user_ids)
    return pd.DataFrame(
        {
            "age": rng.integers(16, 70, n),
            "gender": rng.choice(["F", "M"], n),
            "occupation": np.array(["student", "engineer", "artist", "other"])[np.arange(n) % 4],
        },
        index=pd.Index(user_ids, name="user_id"),
    )


def with_toy_features(data: Interactions, seed: int = 0) -> Interactions:
    """``data`` with :func:`toy_item_features` and :func:`toy_user_features` attached."""
    users, items = toy_user_features(data.users.ids, seed), toy_item_features(data.items.ids, seed)
    return data.with_features(users, items)


def genre_ratings(
    n_users: int = 40, n_items: int = 36, density: float = 0.4, seed: int = 0, string_ids: bool = False
) -> Interactions:
    """Ratings driven by genre taste, with item and user features attached.

    User ``u`` loves genre ``u % 6`` (rating 5) and the occupation ``["student", "engineer",
    "artist", "other"][u % 4]``; items of other genres get 1-3. A content model should rank a
    user's favourite genre first; a feature-aware factorisation should do the same for items it
    never saw in training.
    """
    rng = np.random.default_rng(seed)
    items = np.array([f"i{j}" for j in range(n_items)]) if string_ids else np.arange(n_items) + 101
    users = np.array([f"u{u}" for u in range(n_users)]) if string_ids else np.arange(n_users) + 1
    feats = toy_item_features(items, seed)
    flags = feats[list(GENRES)].to_numpy()
    fav = np.arange(n_users) % len(GENRES)
    likes = flags[:, fav].T.astype(bool)  # users x items
    mask = rng.random((n_users, n_items)) < density
    mask |= likes & (rng.random((n_users, n_items)) < 0.5)  # fans watch their genre more
    mask[np.arange(n_users), rng.integers(0, n_items, n_users)] = True
    mask[rng.integers(0, n_users, n_items), np.arange(n_items)] = True
    u, i = np.nonzero(mask)
    rating = np.where(likes[u, i], 5.0, rng.integers(1, 4, len(u)).astype(np.float64))
    df = pd.DataFrame({"user_id": users[u], "item_id": items[i], "rating": rating,
                       "timestamp": rng.permutation(len(u)) + 1_000})
    data = Interactions.from_dataframe(df, rating="rating", timestamp="timestamp", name="genre-ratings")
    return data.with_features(toy_user_features(users, seed), feats)

"""The item catalogue the pages show: titles, genres, years and popularity, search, and the reason
given next to each recommended item.

Reasons are explanations computed after the fact from the data, never the model's internals:
"because you liked X" names the liked item whose users overlap most with the recommended item's
(cosine over the binary interaction columns); "popular among similar users" gives the share of the
users who share the user's recent likes that interacted with the item; matched genres intersect
the item's genres with those of the liked items; "popular" marks items the popularity fallback
served or that sit in the top decile by interactions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recforge._arrays import id_key, plain_id
from recforge.data.interactions import Interactions

__all__ = ["Catalog", "ItemReason"]

SIMILAR_FROM = 10
"""Similar users are found from the user's latest this many liked items."""
SIMILAR_SHARE = 0.25
"""An item is "popular among similar users" when at least this share of them interacted with it."""
MIN_SIMILAR = 5
"""Fewer similar users than this say nothing."""
MAX_REASONS = 3
"""Reasons shown per item, strongest first (plain popularity is the first dropped)."""


@dataclass
class ItemReason:
    """Why one item is on a list: the reasons as short sentences (first = strongest)."""

    item_id: Any
    title: str
    genres: list[str]
    year: int | None
    reasons: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {"item_id": plain_id(self.item_id), "title": self.title, "genres": self.genres, "year": self.year,
                "reasons": self.reasons}


class Catalog:
    """Titles, genres, years and popularity of a dataset's items, looked up by raw id.

    Args:
        data: The interactions (``item_features`` with ``title``, ``genres`` as ``"A|B"`` and
            ``year`` are used where present; items without them show their id).
    """

    def __init__(self, data: Interactions) -> None:
        self.data = data
        self.ids = data.items.ids
        n = len(self.ids)
        feats = data.item_features
        self.titles = [str(plain_id(x)) for x in self.ids]
        self.genres: list[list[str]] = [[] for _ in range(n)]
        self.years: list[int | None] = [None] * n
        if feats is not None:
            pos = data.items.index(feats.index.to_numpy())
            ok = pos >= 0
            rows = feats[ok]
            pos = pos[ok]
            if "title" in rows.columns:
                for p, t in zip(pos.tolist(), rows["title"].tolist(), strict=True):
                    if isinstance(t, str) and t:
                        self.titles[p] = t
            if "genres" in rows.columns:
                for p, g in zip(pos.tolist(), rows["genres"].tolist(), strict=True):
                    if isinstance(g, str) and g:
                        self.genres[p] = [x for x in g.split("|") if x and x != "unknown"]
            if "year" in rows.columns:
                for p, y in zip(pos.tolist(), rows["year"].tolist(), strict=True):
                    if y is not None and not pd.isna(y):
                        self.years[p] = int(y)
        self.counts = data.item_counts().astype(np.int64)
        order = np.argsort(-self.counts, kind="stable")
        self.popular_cut = int(self.counts[order[max(0, int(np.ceil(0.1 * n)) - 1)]]) if n else 0
        self._key = {id_key(x): j for j, x in enumerate(self.ids.tolist())}
        self._lower = [t.lower() for t in self.titles]
        self._cols: sp.csc_matrix | None = None

    # ------------------------------------------------------------------ lookup
    def index(self, raw: Any) -> int:
        """Index of a raw item id (``7`` and ``"7"`` alike), else ``-1``."""
        return self._key.get(id_key(raw), -1)

    def title(self, raw: Any) -> str:
        j = self.index(raw)
        return self.titles[j] if j >= 0 else str(raw)

    def info(self, j: int) -> dict[str, Any]:
        """The catalogue entry of item index ``j``."""
        return {"item_id": plain_id(self.ids[j]), "title": self.titles[j], "genres": self.genres[j],
                "year": self.years[j], "n": int(self.counts[j])}

    def genre_list(self) -> list[str]:
        """Every genre, sorted."""
        return sorted({g for gs in self.genres for g in gs})

    def search(self, query: str = "", genre: str | None = None, limit: int = 20, *, year_min: int | None = None,
               year_max: int | None = None) -> list[dict[str, Any]]:
        """Items whose title contains ``query`` (case-insensitive), that carry ``genre`` and whose
        year lies in ``[year_min, year_max]`` (items without a year pass only when no bound is
        given), most popular first (ties by title)."""
        q = query.strip().lower()

        def in_years(j: int) -> bool:
            y = self.years[j]
            if year_min is None and year_max is None:
                return True
            return y is not None and (year_min is None or y >= year_min) and (year_max is None or y <= year_max)

        hits = [j for j, t in enumerate(self._lower)
                if (not q or q in t) and (not genre or genre in self.genres[j]) and in_years(j)]
        hits.sort(key=lambda j: (-int(self.counts[j]), self._lower[j]))
        return [self.info(j) for j in hits[: max(0, limit)]]

    # ------------------------------------------------------------------ reasons
    def _columns(self) -> sp.csc_matrix:
        """Binary item columns scaled to unit length (cosine = a dot product), built once."""
        if self._cols is None:
            x = self.data.csr().astype(np.float64).tocsc(copy=True)
            x.data[:] = 1.0
            norms = np.sqrt(np.asarray(x.sum(axis=0)).ravel())
            norms[norms == 0] = 1.0
            self._cols = (x @ sp.diags(1.0 / norms)).tocsc()
        return self._cols

    def similar_users_share(self, liked_idx: list[int], items_idx: list[int], user: Any = None) -> tuple[np.ndarray, int]:
        """Per item, the share of *similar users* who interacted with it, and how many they are.

        Similar users share at least two of the user's latest 10 liked items (one when only one is
        liked); the user (a raw id in the data) is not counted.
        """
        recent = liked_idx[:SIMILAR_FROM]
        if not recent or not items_idx:
            return np.zeros(len(items_idx)), 0
        cols = self._columns()
        shared = np.asarray((cols[:, recent] != 0).sum(axis=1)).ravel()
        similar = shared >= min(2, len(recent))
        if user is not None:
            u = self.data.users.index_one(user)
            if u >= 0:
                similar[u] = False
        n = int(similar.sum())
        if n == 0:
            return np.zeros(len(items_idx)), 0
        hits = np.asarray((cols[similar][:, items_idx] != 0).sum(axis=0)).ravel()
        return hits / n, n

    def explain(self, items: Sequence[Any], liked: Sequence[Any], source: str = "model",
                user: Any = None) -> list[ItemReason]:
        """The reasons for each recommended item given the user's liked items (raw ids).

        Args:
            items: Recommended raw item ids, in list order.
            liked: Raw ids of the items the user liked (ratings at or above the middle of the
                scale, clicks), most recent first.
            source: Where the list came from (the service's ``source``: ``model``,
                ``fallback-popularity``, ``cold-start``...).
            user: The user's raw id, left out of "similar users" when the data holds it.
        """
        rec_idx = [self.index(x) for x in items]
        liked_idx = [j for j in (self.index(x) for x in liked) if j >= 0]
        liked_idx = list(dict.fromkeys(liked_idx))
        sims = None
        share, n_similar = np.zeros(0), 0
        known = [j for j in rec_idx if j >= 0]
        if liked_idx and known:
            cols = self._columns()
            sims = np.asarray((cols[:, liked_idx].T @ cols[:, known]).todense())  # liked x known recs
        share, n_similar = self.similar_users_share(liked_idx, known, user)
        liked_genres: dict[str, int] = {}
        for j in liked_idx:
            for g in self.genres[j]:
                liked_genres[g] = liked_genres.get(g, 0) + 1
        out = []
        col = 0
        for raw, j in zip(items, rec_idx, strict=True):
            if j < 0:
                out.append(ItemReason(raw, str(raw), [], None, ["not in the catalogue"]))
                continue
            reasons = []
            if source.startswith("fallback-popularity"):
                # the list ignores the user's taste: say so rather than invent a link to it
                out.append(ItemReason(self.ids[j], self.titles[j], self.genres[j], self.years[j],
                                      [f"popular: {int(self.counts[j]):,} interactions (popularity fallback)"]))
                col += 1
                continue
            if sims is not None:
                s = sims[:, col]
                best = int(np.argmax(s))
                if s[best] > 0:
                    reasons.append(f"because you liked {self.titles[liked_idx[best]]}")
            if n_similar >= MIN_SIMILAR and share[col] >= SIMILAR_SHARE:
                reasons.append(f"popular among similar users: {share[col]:.0%} of {n_similar:,} who liked your picks")
            col += 1
            matched = sorted((g for g in self.genres[j] if g in liked_genres), key=lambda g: (-liked_genres[g], g))
            if matched:
                reasons.append("matches your genres: " + ", ".join(matched[:3]))
            if self.counts[j] >= self.popular_cut and len(reasons) < MAX_REASONS:
                reasons.append(f"popular: {int(self.counts[j]):,} interactions")
            if not reasons:
                reasons.append(f"scored high by the model ({source})")
            out.append(ItemReason(self.ids[j], self.titles[j], self.genres[j], self.years[j], reasons))
        return out

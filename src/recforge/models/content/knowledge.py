"""Knowledge-based (constraint-based) recommendation for users with no history."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Literal

import numpy as np
import pandas as pd

from recforge._arrays import check_k
from recforge.config import FitOptions, ModelConfig
from recforge.data.interactions import Interactions
from recforge.data.vocabulary import normalize_ids
from recforge.errors import ConfigError, DataError
from recforge.models.base import Recommender
from recforge.topk import order_by_score

__all__ = ["Constraints", "KnowledgeBased", "KnowledgeConfig", "KnowledgeResult"]


@dataclass(frozen=True)
class Constraints:
    """What a user asks for; ``None`` or empty = no constraint.

    Attributes:
        genres: Wanted genres: an item must have at least one of them.
        exclude_genres: An item must have none of these.
        year_min: Earliest release year (inclusive).
        year_max: Latest release year (inclusive).
        min_avg_rating: Minimum average training rating (raw mean, not shrunk).
        min_ratings: Minimum number of training ratings.
    """

    genres: tuple[str, ...] = ()
    exclude_genres: tuple[str, ...] = ()
    year_min: int | None = None
    year_max: int | None = None
    min_avg_rating: float | None = None
    min_ratings: int | None = None

    @classmethod
    def parse(cls, value: Constraints | dict[str, Any] | None) -> Constraints:
        """Accept a :class:`Constraints`, a dict of its fields, or None."""
        if value is None:
            return cls()
        if isinstance(value, Constraints):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"constraints must be a Constraints or a dict, not {type(value).__name__}")
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(value) - names)
        if unknown:
            raise ConfigError(f"unknown constraint(s) {', '.join(unknown)}; "
                              f"valid: {', '.join(sorted(names))}")
        v = dict(value)
        for key in ("genres", "exclude_genres"):
            if isinstance(v.get(key), str):
                v[key] = (v[key],)
            if key in v:
                v[key] = tuple(v[key])
        return cls(**v)

    def active(self) -> list[str]:
        """Names of the constraints that are set, in declaration order."""
        return [f.name for f in fields(self) if getattr(self, f.name) not in (None, ())]


@dataclass(frozen=True)
class KnowledgeResult:
    """Recommendations for stated constraints.

    Attributes:
        item_ids: Raw item ids, best first (up to ``k``).
        scores: Their utilities.
        relaxed: Names of the constraints that were dropped (empty when all held).
        n_matching: How many items satisfy the constraints that were kept.
    """

    item_ids: np.ndarray
    scores: np.ndarray
    relaxed: tuple[str, ...]
    n_matching: int


@dataclass(frozen=True)
class KnowledgeConfig(ModelConfig):
    """Hyperparameters of :class:`KnowledgeBased`."""

    utility: Literal["rating", "popularity", "recency", "weighted"] = "weighted"
    """How items that satisfy the constraints are ranked: average rating shrunk towards the global
    mean, number of ratings, release year, or the weighted sum of the three (see ``weights``)."""
    shrinkage: float = 10.0
    """Pseudo-ratings at the global mean added to every item's average (``m`` below)."""
    weights: tuple[float, ...] = (1.0, 1.0, 0.1)
    """Weights of (shrunk rating, standardised log popularity, standardised year) in the weighted
    utility; with the first at 1 the utility stays on the rating scale."""
    genre_columns: tuple[str, ...] = ()
    """Item feature columns holding genres: 0/1 flag columns, or one column of values joined by
    ``separator``; empty = every 0/1 column, else a column named ``genres``."""
    year_column: str = "year"
    """Item feature column holding the release year (a datetime column counts as its year); when
    it is missing, an item's year is that of its first training interaction."""
    separator: str = "|"
    """Joins several genres in one cell."""

    def validate(self) -> None:
        self.check(self.shrinkage >= 0, "shrinkage", "must be >= 0")
        self.check(len(self.weights) == 3, "weights", "needs three numbers (rating, popularity, recency)")
        self.check(all(w >= 0 for w in self.weights) and sum(self.weights) > 0, "weights",
                   "must be >= 0 and not all zero")


class KnowledgeBased(Recommender):
    r"""Constraint-based recommendation with a declared utility and minimal relaxation.

    Items that satisfy the user's :class:`Constraints` are ranked by a utility:
    ``rating`` :math:`= (\sum_u r_{ui} + m\mu) / (n_i + m)` (the average rating shrunk towards the
    global mean :math:`\mu` by ``m`` pseudo-ratings), ``popularity`` :math:`= n_i`, ``recency`` = the
    release year, or ``weighted``
    :math:`= w_1 \cdot \text{rating} + w_2 z(\log(1 + n_i)) + w_3 z(\text{year})`
    (:math:`z`: standardised over the catalogue). When no item satisfies every constraint, the
    smallest set of constraints whose removal leaves a non-empty result is dropped (ties: the set
    that keeps more items) and reported. As a :class:`Recommender` it ranks every user's unseen items
    by the utility (it is not personalised; a user with no history gets the same list), and
    ``predict`` returns the shrunk average rating whatever the ranking utility.
    Reference: Felfernig and Burke, "Constraint-based Recommender Systems:
    Technologies and Research Issues", ICEC 2008; Burke, "Knowledge-based recommender systems" (2000).
    """

    name = "knowledge"
    task = "rating"
    # its ranking (utility, popularity) reads any feedback, as a hybrid component on implicit data
    # does; predict averages the values as given
    feedback = "any"
    config_class = KnowledgeConfig
    scores_history = True

    def _fit(self, data: Interactions, options: FitOptions) -> None:
        self.__dict__.pop("_pop_order", None)
        cfg = self.config
        n = data.n_items
        cnt = np.bincount(data.item_idx, minlength=n).astype(np.float64)
        vals = data.values.astype(np.float64)
        sums = np.bincount(data.item_idx, weights=vals, minlength=n)
        mu = float(vals.mean())
        self.global_mean_ = mu
        self.item_count_ = cnt
        self.item_mean_ = np.divide(sums, cnt, out=np.full(n, np.nan), where=cnt > 0)
        self.item_shrunk_ = (sums + cfg.shrinkage * mu) / (cnt + cfg.shrinkage) if cfg.shrinkage > 0 else \
            np.where(cnt > 0, self.item_mean_, mu)
        feats = data.item_features
        self.item_year_ = self._years(data, feats)
        genres, names = self._genres(data, feats)
        self.item_genres_ = genres
        self.genre_names_ = names
        if feats is not None and len(feats.columns):
            ids = pd.Index(data.items.ids)
            self.item_known_ = self.item_known_ | ids.isin(feats.index)
        self.utility_ = self._utility()
        # not personalised: a user with no history gets the same utility ranking as anyone
        self.user_known_ = np.ones(data.n_users, dtype=bool)

    def _years(self, data: Interactions, feats: pd.DataFrame | None) -> np.ndarray:
        col = self.config.year_column
        if feats is not None and col in feats.columns:
            s = feats[col].reindex(pd.Index(data.items.ids))
            if pd.api.types.is_datetime64_any_dtype(s):
                s = s.dt.year
            return pd.to_numeric(s, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        years = np.full(data.n_items, np.nan)
        if data.timestamps is not None:
            first = np.full(data.n_items, np.iinfo(np.int64).max)
            np.minimum.at(first, data.item_idx, data.timestamps)
            ok = first < np.iinfo(np.int64).max
            years[ok] = pd.to_datetime(first[ok], unit="s").year
        return years

    def _genres(self, data: Interactions, feats: pd.DataFrame | None) -> tuple[np.ndarray, np.ndarray]:
        cfg = self.config
        n = data.n_items
        if feats is None or len(feats.columns) == 0:
            return np.zeros((n, 0), dtype=bool), np.array([], dtype=str)
        table = feats.reindex(pd.Index(data.items.ids))
        cols = list(cfg.genre_columns)
        missing = [c for c in cols if c not in feats.columns]
        if missing:
            raise DataError(f"knowledge: genre column(s) {', '.join(missing)} not in the item features")
        if not cols:
            cols = [str(c) for c in feats.columns if pd.api.types.is_numeric_dtype(feats[c])
                    and feats[c].dropna().isin([0, 1]).all() and str(c) != cfg.year_column]
            if not cols and "genres" in feats.columns:
                cols = ["genres"]
        if len(cols) == 1 and not pd.api.types.is_numeric_dtype(feats[cols[0]]):
            parts = table[cols[0]].astype("string").str.split(cfg.separator, regex=False)
            names = sorted({g.strip() for row in parts.dropna() for g in row if g.strip()})
            pos = {g: j for j, g in enumerate(names)}
            out = np.zeros((n, len(names)), dtype=bool)
            for r, row in enumerate(parts.tolist()):
                if isinstance(row, list):
                    for g in row:
                        if g.strip() in pos:
                            out[r, pos[g.strip()]] = True
            return out, np.array(names, dtype=str)
        flags = table[cols].apply(pd.to_numeric, errors="coerce").fillna(0).to_numpy() != 0
        return flags, np.array(cols, dtype=str)

    def _utility(self, utility: str | None = None) -> np.ndarray:
        cfg = self.config
        utility = utility or cfg.utility
        if utility == "rating":
            return self.item_shrunk_.copy()
        if utility == "popularity":
            return self.item_count_.copy()
        known = np.isfinite(self.item_year_)
        year = np.nan_to_num(self.item_year_, nan=np.nanmin(self.item_year_) if known.any() else 0.0)
        if utility == "recency":
            return year
        w = cfg.weights
        return w[0] * self.item_shrunk_ + w[1] * _z(np.log1p(self.item_count_)) + w[2] * _z(year)

    # ------------------------------------------------------------------ scoring
    def _score_pairs(self, u: np.ndarray, i: np.ndarray) -> np.ndarray:
        return self.utility_[i]

    def _score_users(self, u: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.utility_, (len(u), len(self.utility_))).copy()

    def _score_history(self, item_idx: np.ndarray, values: np.ndarray | None,
                       context: Mapping[str, Any]) -> np.ndarray:
        # not personalised: any history, even an empty one, gets the utility ranking
        return self.utility_.copy()

    def _scores_empty_history(self) -> bool:
        return True

    def _score_partial(self, u: np.ndarray, i: np.ndarray) -> np.ndarray:
        out = np.full(len(u), np.nan)
        ok = i >= 0
        out[ok] = self.utility_[i[ok]]
        return out

    def predict(self, users: Any, items: Any, *, fallback: Literal["nan", "mean"] = "nan") -> np.ndarray:
        """Predicted ratings: the item's shrunk average rating (NaN for unknown ids, or the global
        mean with ``fallback="mean"``), clipped to the training scale."""
        if fallback not in ("nan", "mean"):
            raise ConfigError(f"fallback must be 'nan' or 'mean', not {fallback!r}")
        self.check_is_fitted()
        u, i = self._pair_indices(users, items)
        ok = (u >= 0) & (i >= 0)
        ok[ok] = self.user_known_[u[ok]] & self.item_known_[i[ok]]
        out = np.full(len(u), np.nan)
        out[ok] = self.item_shrunk_[i[ok]]
        self.n_impossible_last_ = int((~ok).sum())
        if fallback == "mean":
            item_ok = (i >= 0) & ~ok
            item_ok[item_ok] = self.item_known_[i[item_ok]]
            out[item_ok] = self.item_shrunk_[i[item_ok]]
            out[np.isnan(out)] = self.global_mean_
        if self.explicit_:
            out = np.clip(out, self.rating_min_, self.rating_max_)
        return out

    # ------------------------------------------------------------------ constraints
    def satisfying(self, constraints: Constraints | dict[str, Any] | None) -> np.ndarray:
        """Boolean mask over item indices of the items that satisfy every constraint."""
        self.check_is_fitted()
        c = Constraints.parse(constraints)
        mask = self.item_known_.copy()
        for name in c.active():
            mask &= self._constraint_mask(c, name)
        return mask

    def _constraint_mask(self, c: Constraints, name: str) -> np.ndarray:
        n = len(self.utility_)
        if name in ("genres", "exclude_genres"):
            cols = self._genre_cols(getattr(c, name))
            has = self.item_genres_[:, cols].any(axis=1) if len(cols) else np.zeros(n, bool)
            return has if name == "genres" else ~has
        with np.errstate(invalid="ignore"):
            if name == "year_min":
                return self.item_year_ >= c.year_min
            if name == "year_max":
                return self.item_year_ <= c.year_max
            if name == "min_avg_rating":
                return np.nan_to_num(self.item_mean_, nan=-np.inf) >= c.min_avg_rating
            return self.item_count_ >= c.min_ratings

    def _genre_cols(self, wanted: tuple[str, ...]) -> np.ndarray:
        lookup = {g.lower(): j for j, g in enumerate(self.genre_names_.tolist())}
        bad = [g for g in wanted if g.lower() not in lookup]
        if bad:
            raise DataError(f"unknown genre(s) {', '.join(map(repr, bad))}; known: "
                            f"{', '.join(self.genre_names_.tolist()) or '(no genre column)'}")
        return np.array([lookup[g.lower()] for g in wanted], dtype=np.int64)

    def relax(self, constraints: Constraints | dict[str, Any] | None, min_results: int = 1
              ) -> tuple[np.ndarray, tuple[str, ...]]:
        """The satisfying-item mask after the minimal relaxation, and the dropped constraint names.

        Tries every subset of the active constraints in order of size and keeps the smallest one
        whose removal leaves at least ``min_results`` items (ties: more items left, then the
        subset listed first).
        """
        self.check_is_fitted()
        c = Constraints.parse(constraints)
        active = c.active()
        masks = {name: self._constraint_mask(c, name) for name in active}
        base = self.item_known_
        for size in range(len(active) + 1):
            best: tuple[int, tuple[str, ...], np.ndarray] | None = None
            for drop in itertools.combinations(active, size):
                m = base.copy()
                for name in active:
                    if name not in drop:
                        m &= masks[name]
                cnt = int(m.sum())
                if cnt >= min_results and (best is None or cnt > best[0]):
                    best = (cnt, drop, m)
            if best is not None:
                return best[2], best[1]
        return base.copy(), tuple(active)

    def recommend_for_constraints(
        self,
        constraints: Constraints | dict[str, Any] | None,
        k: int = 10,
        *,
        exclude: Any = None,
        min_results: int = 1,
        utility: Literal["rating", "popularity", "recency", "weighted"] | None = None,
    ) -> KnowledgeResult:
        """Top-``k`` items for a user with no history who states ``constraints``.

        Args:
            constraints: A :class:`Constraints` or a dict of its fields.
            k: List length.
            exclude: Raw item ids to leave out (e.g. already seen).
            min_results: Relax constraints until at least this many items qualify.
            utility: Override the configured utility for this call.

        Returns:
            A :class:`KnowledgeResult` naming the constraints that had to be relaxed.
        """
        check_k(k)
        if utility is not None and utility not in ("rating", "popularity", "recency", "weighted"):
            raise ConfigError(f"unknown utility {utility!r}")
        allowed = self.item_known_.copy()
        if exclude is not None and np.size(exclude):
            ex = self.items_.index(normalize_ids(np.atleast_1d(np.asarray(exclude))))
            allowed[ex[ex >= 0]] = False
        mask, relaxed = self.relax(constraints, min_results)
        mask &= allowed
        util = self.utility_ if utility is None else self._utility(utility)
        cand = np.flatnonzero(mask)
        order = cand[order_by_score(util[cand], cand, k, keep_missing=True)]
        return KnowledgeResult(self.items_.ids[order], util[order].astype(np.float64), relaxed,
                               int(mask.sum()))


def _z(x: np.ndarray) -> np.ndarray:
    sd = float(x.std())
    return (x - x.mean()) / sd if sd > 0 else np.zeros_like(x)

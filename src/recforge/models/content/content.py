"""Content-based recommendation: attribute profiles of items and users, cosine scoring."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp

from recforge.config import FitOptions, ModelConfig
from recforge.data.interactions import Interactions
from recforge.data.vocabulary import normalize_ids
from recforge.errors import DataError
from recforge.models.base import Recommender
from recforge.models.content._features import encode, spec_from

__all__ = ["ContentBased", "ContentConfig"]


@dataclass(frozen=True)
class ContentConfig(ModelConfig):
    """Hyperparameters of :class:`ContentBased`."""

    columns: tuple[str, ...] = ()
    """Item feature columns to use; empty = every usable column (see
    :func:`recforge.models.content._features.infer_kinds`)."""
    text_columns: tuple[str, ...] = ()
    """Columns encoded as TF-IDF over words (ML-100K's ``title`` is detected as text anyway)."""
    categorical_columns: tuple[str, ...] = ()
    """Columns one-hot encoded whatever their type (values split on ``separator``)."""
    separator: str = "|"
    """Joins several values in one categorical cell (``"Action|Comedy"``)."""
    n_bins: int = 8
    """Quantile bins for numeric columns (release year, price, ...)."""
    idf: bool = True
    """Weight one-hot attributes by inverse document frequency."""
    text_weight: float = 0.5
    """Weight of a text block relative to a categorical block."""
    numeric_weight: float = 0.5
    """Weight of a numeric block."""
    weighting: Literal["uniform", "rating", "recency"] = "uniform"
    """Weight of each interacted item in the user profile: equal; rating minus the user's mean
    (Rocchio: disliked items push the profile away; implicit data falls back to equal); or
    ``0.5 ** (age / half_life)`` with age = how many of the user's later interactions follow it."""
    half_life: float = 20.0
    """Half-life in interactions for ``weighting="recency"``."""

    def validate(self) -> None:
        self.check(self.n_bins >= 1, "n_bins", "must be >= 1")
        self.check(self.text_weight >= 0, "text_weight", "must be >= 0")
        self.check(self.numeric_weight >= 0, "numeric_weight", "must be >= 0")
        self.check(self.half_life > 0, "half_life", "must be > 0")


class ContentBased(Recommender):
    r"""Content-based filtering: cosine between a user's attribute profile and each item's.

    Item ``i`` has an attribute vector :math:`x_i` (genres, binned release year, TF-IDF title words,
    any categorical or text column; see :class:`ContentConfig`). A user's profile is the weighted
    sum :math:`p_u = \sum_{j \in I_u} w_{uj} x_j` over the items they interacted with, and the score
    is :math:`s_{ui} = \cos(p_u, x_i)`. Items without training rows are scored from their attributes,
    so new items are recommended at once; a new user's profile comes from
    :meth:`recommend_for_history` (no refit). Reference: Pazzani and Billsus, "Content-Based Recommendation
    Systems", The Adaptive Web (2007); Lops, de Gemmis, Semeraro, "Content-based Recommender
    Systems: State of the Art and Trends", Recommender Systems Handbook (2011).

    Uses ``data.item_features`` (a DataFrame indexed by raw item id); without them it warns and
    treats each item as its own attribute, so only already-seen items match.
    """

    name = "content"
    task = "ranking"
    config_class = ContentConfig
    scores_history = True
    feedback = "any"  # weighting="rating" reads the ratings; the other weightings ignore values

    def _fit(self, data: Interactions, options: FitOptions) -> None:
        for cache in ("_xn", "_pop_order"):
            self.__dict__.pop(cache, None)
        feats = data.item_features
        if feats is None or len(feats.columns) == 0:
            # without attributes each item is its own attribute: the model still runs (every unseen
            # item scores 0), and says so
            warnings.warn("content: the data has no item features; every unseen item scores 0 "
                          "(attach them with Interactions.with_features)", stacklevel=3)
            X = sp.identity(data.n_items, format="csr", dtype=np.float64)
            names = np.array([f"item={x}" for x in data.items.ids], dtype=str)
        else:
            X, names = encode(feats, data.items.ids, spec_from(self.config))
            if X.shape[1] == 0:
                raise DataError("content: the item feature table has no usable column")
        self.item_matrix_ = X.tocsr()
        self.feature_names_ = names
        has = self.item_matrix_.getnnz(axis=1) > 0
        self.item_known_ = self.item_known_ | has
        W = self._weights(data)
        P = (W @ self.item_matrix_).tocsr()
        self.user_profiles_ = P
        self.user_known_ = self.user_known_ & (P.getnnz(axis=1) > 0)

    def _weights(self, data: Interactions) -> sp.csr_matrix:
        cfg = self.config
        u, i = data.user_idx, data.item_idx
        w = np.ones(len(u))
        if cfg.weighting == "rating" and data.explicit:
            sums = np.bincount(u, weights=data.values, minlength=data.n_users)
            cnt = np.maximum(np.bincount(u, minlength=data.n_users), 1)
            w = data.values - (sums / cnt)[u]
            flat = np.bincount(u, weights=np.abs(w), minlength=data.n_users) == 0
            w = np.where(flat[u], 1.0, w)  # a user who rated everything alike: equal weights
        elif cfg.weighting == "recency" and data.timestamps is not None:
            from recforge._arrays import group_positions

            pos, size = group_positions(u, data.n_users, data.timestamps, i)
            w = 0.5 ** ((size - 1 - pos) / cfg.half_life)
        return sp.csr_matrix((w, (u, i)), shape=(data.n_users, data.n_items))

    # ------------------------------------------------------------------ scoring
    def _cosine(self, P: sp.csr_matrix) -> np.ndarray:
        X = self.item_matrix_
        dots = np.asarray((P @ X.T).todense(), dtype=np.float64)
        pn = np.sqrt(np.asarray(P.multiply(P).sum(axis=1)).ravel())
        xn = self._item_norms()
        denom = pn[:, None] * xn[None, :]
        return np.divide(dots, denom, out=np.zeros_like(dots), where=denom > 0)

    def _item_norms(self) -> np.ndarray:
        if "_xn" not in self.__dict__:
            X = self.item_matrix_
            self._xn = np.sqrt(np.asarray(X.multiply(X).sum(axis=1)).ravel())
        return self._xn

    def _score_users(self, u: np.ndarray) -> np.ndarray:
        return self._cosine(self.user_profiles_[u])

    def _score_pairs(self, u: np.ndarray, i: np.ndarray) -> np.ndarray:
        P = self.user_profiles_[u]
        X = self.item_matrix_[i]
        dots = np.asarray(P.multiply(X).sum(axis=1)).ravel()
        pn = np.sqrt(np.asarray(P.multiply(P).sum(axis=1)).ravel())
        denom = pn * self._item_norms()[i]
        return np.divide(dots, denom, out=np.zeros_like(dots), where=denom > 0)

    # ------------------------------------------------------------------ cold users and explanations
    def _profile(self, idx: np.ndarray, values: np.ndarray | None) -> sp.csr_matrix:
        """The attribute profile (1 x n_features) of a history of known item indices, oldest first."""
        cfg = self.config
        w = np.ones(len(idx))
        if values is not None and cfg.weighting == "rating" and len(values) and \
                np.abs(values - values.mean()).sum() > 0:
            w = values - values.mean()
        if cfg.weighting == "recency" and len(idx):
            w = w * 0.5 ** ((len(idx) - 1 - np.arange(len(idx))) / cfg.half_life)
        rows = np.zeros(len(idx), np.int64)
        return sp.csr_matrix(sp.csr_matrix((w, (rows, idx)), shape=(1, len(self.items_))) @ self.item_matrix_)

    def profile_for_history(self, item_ids: Any, values: Any = None) -> sp.csr_matrix:
        """The attribute profile (1 x n_features) of a user who interacted with ``item_ids``.

        ``values`` (ratings) weight the items as in fit (``weighting="rating"``: minus their mean);
        otherwise, and with ``weighting="recency"``, the list is taken as oldest first.
        """
        self.check_is_fitted()
        return self._profile(*self._history_indices(item_ids, values))

    def _score_history(self, item_idx: np.ndarray, values: np.ndarray | None,
                       context: Mapping[str, Any]) -> np.ndarray:
        return self._cosine(self._profile(item_idx, values))[0]

    def explain(self, user_id: Any, item_id: Any, top: int = 5) -> list[tuple[str, float]]:
        """The attributes shared by the user's profile and the item, largest contribution first.

        Returns ``[(attribute, contribution), ...]`` where the contributions sum to the cosine score
        over the listed attributes (all of them when ``top`` is large enough); empty when the user
        or item is unknown or nothing matches.
        """
        self.check_is_fitted()
        u = self.users_.index(normalize_ids(np.atleast_1d(np.asarray(user_id, dtype=object))))[0]
        if u < 0 or not self.user_known_[u]:
            return []
        return self._explain_profile(self.user_profiles_[u], item_id, top)

    def explain_history(
        self, item_ids: Any, item_id: Any, values: Any = None, top: int = 5
    ) -> list[tuple[str, float]]:
        """:meth:`explain` for an ad-hoc history (a new user)."""
        return self._explain_profile(sp.csr_matrix(self.profile_for_history(item_ids, values)), item_id, top)

    def _explain_profile(self, p: sp.csr_matrix, item_id: Any, top: int) -> list[tuple[str, float]]:
        i = self.items_.index(normalize_ids(np.atleast_1d(np.asarray(item_id, dtype=object))))[0]
        if i < 0:
            return []
        p = p.toarray().ravel()
        x = self.item_matrix_[i].toarray().ravel()
        denom = np.linalg.norm(p) * np.linalg.norm(x)
        if denom == 0:
            return []
        contrib = p * x / denom
        order = np.argsort(-contrib, kind="stable")
        order = order[contrib[order] > 0][:top]
        return [(str(self.feature_names_[j]), float(contrib[j])) for j in order]


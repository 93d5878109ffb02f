"""Demographic popularity: what users with the same attributes interact with."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from recforge.config import FitOptions, ModelConfig
from recforge.data.interactions import Interactions
from recforge.errors import ConfigError
from recforge.models.base import Recommender

__all__ = ["DemographicConfig", "DemographicPopularity"]


@dataclass(frozen=True)
class DemographicConfig(ModelConfig):
    """Hyperparameters of :class:`DemographicPopularity`."""

    attributes: tuple[str, ...] = ()
    """User-feature columns to use; empty: every column with at most ``max_levels`` distinct values
    (numeric columns always qualify)."""
    bandwidth: float = 0.66
    """Numeric attributes (age): width of the Gaussian kernel over the attribute, in units of the
    attribute's standard deviation over the training users."""
    shrinkage: float = 20.0
    """Pseudo-users of global popularity added to every attribute group (smoothing of small groups)."""
    max_levels: int = 50
    """Categorical columns with more distinct values than this (zip codes, free text) are skipped
    when ``attributes`` is empty."""

    def validate(self) -> None:
        self.check(self.bandwidth > 0, "bandwidth", "must be > 0")
        self.check(self.shrinkage > 0, "shrinkage", "must be > 0")
        self.check(self.max_levels >= 1, "max_levels", "must be >= 1")


class DemographicPopularity(Recommender):
    r"""Popularity among users who share the user's attributes, combined naive-Bayes style.

    With :math:`x_{vi} \in \{0, 1\}` the training interactions and :math:`n` the number of training
    users, the global rate is :math:`p(i) = (\sum_v x_{vi} + 1) / (n + 1)`. For every attribute
    :math:`a` (age, gender, occupation, ...) the rate among users like :math:`u` is

    .. math::
        p_a(i \mid u) = \frac{\sum_v w_a(u, v)\, x_{vi} + m\, p(i)}{\sum_v w_a(u, v) + m},

    where :math:`w_a(u, v) = 1[a_u = a_v]` for a categorical attribute and a Gaussian kernel
    :math:`\exp(-(a_u - a_v)^2 / 2 (h \sigma_a)^2)` for a numeric one, and :math:`m` is
    ``shrinkage``. The score multiplies the lifts (naive Bayes over attributes),

    .. math::
        s_{ui} = \log p(i) + \sum_a \left[\log p_a(i \mid u) - \log p(i)\right],

    so a user without attributes gets plain popularity. It needs no history at all, which makes it
    the prior of the cold-start hybrids. Reference: Pazzani, "A Framework for Collaborative,
    Content-Based and Demographic Filtering", AI Review 13(5-6), 1999; Burke, "Hybrid Recommender
    Systems: Survey and Experiments", UMUAI 12(4), 2002 (demographic recommenders).
    """

    name = "demographic"
    task = "ranking"
    config_class = DemographicConfig
    scores_history = True

    def _fit(self, data: Interactions, options: FitOptions) -> None:
        cfg = self.config
        x = data.csr().copy()
        x.data[:] = 1.0
        has_u = data.user_counts() > 0
        n = int(has_u.sum())
        log_p = np.log((np.asarray(x.sum(axis=0)).ravel() + 1.0) / (n + 1.0))
        self.log_popularity_ = log_p
        feats = data.user_features
        cols: list[str] = []
        if feats is not None and len(feats.columns):
            if cfg.attributes:
                missing = [c for c in cfg.attributes if c not in feats.columns]
                if missing:
                    raise ConfigError(f"demographic: user features have no column {missing}")
                cols = list(cfg.attributes)
            else:
                cols = [c for c in feats.columns
                        if pd.api.types.is_numeric_dtype(feats[c]) or feats[c].nunique() <= cfg.max_levels]
        table = feats.reindex(data.users.ids) if cols else None
        lifts: list[np.ndarray] = []
        attr_of: list[str] = []
        value_of: list[str] = []
        numeric_value: list[float] = []
        groups = np.full((data.n_users, len(cols)), -1, dtype=np.int64)
        p = np.exp(log_p)
        xw = x[np.flatnonzero(has_u)]
        for c, col in enumerate(cols):
            raw = table[col]  # type: ignore[index]
            numeric = pd.api.types.is_numeric_dtype(raw)
            present = raw.notna().to_numpy()
            vals = raw.to_numpy()
            levels = pd.unique(vals[present])
            levels = np.sort(levels) if numeric else np.array(sorted(map(str, levels)), dtype=object)
            train_vals = vals[has_u]
            train_ok = present[has_u]
            if numeric:
                v = np.asarray(levels, dtype=np.float64)
                tv = np.asarray(train_vals, dtype=np.float64)
                sd = float(np.nanstd(tv[train_ok])) if train_ok.any() else 1.0
                width = cfg.bandwidth * (sd if sd > 0 else 1.0)
                w = np.exp(-0.5 * ((v[:, None] - np.where(train_ok, tv, np.nan)[None, :]) / width) ** 2)
                w = np.nan_to_num(w)
            else:
                sv = np.array([str(t) for t in train_vals], dtype=object)
                w = (levels[:, None] == sv[None, :]) & train_ok[None, :]
                w = w.astype(np.float64)
            counts = np.asarray(xw.T @ w.T).T  # levels x items
            rate = (counts + cfg.shrinkage * p[None, :]) / (w.sum(axis=1)[:, None] + cfg.shrinkage)
            lifts.append(np.log(rate) - log_p[None, :])
            base = len(attr_of)
            attr_of += [col] * len(levels)
            value_of += [str(t) for t in levels]
            numeric_value += [float(t) if numeric else np.nan for t in levels]
            key = np.asarray(vals[present], dtype=np.float64) if numeric else \
                np.array([str(t) for t in vals[present]], dtype=object)
            groups[np.flatnonzero(present), c] = base + np.searchsorted(levels, key)
        n_items = data.n_items
        self.group_lift_ = np.vstack(lifts) if lifts else np.zeros((0, n_items))
        self.group_attribute_ = np.array(attr_of, dtype=str)
        self.group_value_ = np.array(value_of, dtype=str)
        self.group_numeric_ = np.array(numeric_value, dtype=np.float64)
        self.user_groups_ = groups
        self.user_known_ = has_u | (groups >= 0).any(axis=1)

    # ------------------------------------------------------------------ scoring
    def _rows(self, groups: np.ndarray) -> np.ndarray:
        out = np.repeat(self.log_popularity_[None, :], len(groups), axis=0)
        for c in range(groups.shape[1]):
            g = groups[:, c]
            ok = g >= 0
            out[ok] += self.group_lift_[g[ok]]
        return out

    def _score_users(self, u: np.ndarray) -> np.ndarray:
        return self._rows(self.user_groups_[u])

    def _score_pairs(self, u: np.ndarray, i: np.ndarray) -> np.ndarray:
        return Recommender._score_pairs(self, u, i)

    def scores_for_attributes(self, attributes: dict[str, Any] | None = None) -> np.ndarray:
        """Scores of every item index for a user described only by attributes, e.g.
        ``{"age": 31, "gender": "F"}`` (unknown columns and values are ignored; a numeric value
        takes the nearest value seen in training)."""
        self.check_is_fitted()
        rows = []
        for col, value in (attributes or {}).items():
            sel = np.flatnonzero(self.group_attribute_ == str(col))
            if not len(sel) or value is None:
                continue
            num = self.group_numeric_[sel]
            if np.isfinite(num).all():
                try:
                    rows.append(sel[int(np.argmin(np.abs(num - float(value))))])
                except (TypeError, ValueError):
                    continue
            else:
                hit = sel[self.group_value_[sel] == str(value)]
                if len(hit):
                    rows.append(int(hit[0]))
        g = np.full((1, max(1, len(rows))), -1, dtype=np.int64)
        g[0, : len(rows)] = rows
        return self._rows(g)[0]

    def _score_history(self, item_idx: np.ndarray, values: np.ndarray | None,
                       context: Mapping[str, Any]) -> np.ndarray:
        # the history does not matter to this model, only the attributes (popularity without them)
        return self.scores_for_attributes(context.get("attributes"))

    def _scores_empty_history(self) -> bool:
        return True

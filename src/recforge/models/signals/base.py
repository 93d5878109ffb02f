"""What the implicit-to-explicit models share: the target, the feature rows, scoring and filling in ratings.

A model of this family learns ``r_ui ~ f(x_ui)`` on the rows of a log that carry a rating, where
``x_ui`` are the pair's implicit signals and the user's and item's signal (and rating) aggregates
(:mod:`recforge.models.signals._features`), and predicts the rating of every other pair: the rows
whose rating is missing above all (a user who played an item ten times and never rated it), and
pairs without a row (all signals 0). Subclasses give the regressor (:meth:`_fit_regressor`,
:meth:`_regress`): ridge regression or an MLP.

The rating is the log's signal of kind ``rating`` (NaN where missing; ``rating_signal`` names it
when there are several), or the values of an explicit log without one. The features are every
other named signal (``signals`` picks some); an implicit log without named signals uses its values
as the one signal ``value``; an explicit log without signals has only the aggregates (the model is
then a learned user-item bias model: it runs on ML-100K, but has nothing implicit to learn from).

Known users are the users with rows in the fitted log, rated or not: the point of the model is the
users who never rated anything (:meth:`SignalRatingModel.fill_ratings` hands their predicted
ratings to any rating model, the cold-start route).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from recforge.config import FitOptions, ModelConfig
from recforge.data.interactions import Interactions, rating_signal_name
from recforge.errors import DataError
from recforge.models.base import Recommender
from recforge.models.signals._features import FeatureTable, transform_signals

__all__ = ["SignalConfig", "SignalRatingModel", "resolve_columns"]


@dataclass(frozen=True)
class SignalConfig(ModelConfig):
    """Hyperparameters every implicit-to-explicit model has."""

    rating_signal: str = ""
    """The signal that holds the explicit rating (NaN = missing). Empty: the one signal of kind
    ``rating``, else the values of an explicit log."""
    signals: tuple[str, ...] = ()
    """The implicit signals to learn from (empty: every named signal but the rating)."""
    rating_aggregates: bool = True
    """Add the user's and the item's shrunk mean rating and rating counts to the features (without
    them the model sees behaviour only, as for a user who never rated)."""
    shrinkage: float = 5.0
    """Pseudo-ratings at the global mean added to each user's and item's rating mean."""

    def validate(self) -> None:
        self.check(self.shrinkage >= 0, "shrinkage", "must be >= 0")
        self.check(len(set(self.signals)) == len(self.signals), "signals", "names a signal twice")
        self.check(self.rating_signal not in self.signals, "signals", "must not include the rating signal")


def resolve_columns(data: Interactions, rating_signal: str, signals: tuple[str, ...]
                    ) -> tuple[np.ndarray, list[str], list[str], list[np.ndarray], str]:
    """``(target, signal names, kinds, columns, rating name)`` of a log, as the config asks.

    Raises:
        DataError: A named signal is missing, or the log has no ratings to learn from.
    """
    kinds = dict(data.signal_kinds)
    for name in (*signals, *([rating_signal] if rating_signal else [])):
        if name not in data.signals:
            have = ", ".join(sorted(data.signals)) or "none"
            raise DataError(f"{data.name}: no signal {name!r} (signals: {have})")
    rating = rating_signal or rating_signal_name(data, several="set rating_signal")
    if rating:
        target = np.asarray(data.signals[rating], dtype=np.float64)
    elif data.explicit:
        target = np.asarray(data.values, dtype=np.float64)
    else:
        raise DataError(f"{data.name}: no ratings to learn from: give a signal of kind 'rating' (NaN where "
                        "missing) or explicit values")
    if rating in signals:
        raise DataError(f"{data.name}: signals: {rating!r} is the rating signal (the target); "
                        "leave it out of signals")
    names = list(signals) or [k for k in data.signals if k != rating]
    cols = [np.asarray(data.signals[k]) for k in names]
    kind_list = [kinds.get(k, "count") for k in names]
    if not names and not data.explicit:
        names, kind_list, cols = ["value"], ["count"], [np.asarray(data.values)]
    return target, names, kind_list, cols, rating


class SignalRatingModel(Recommender):
    """Base of the implicit-to-explicit models (see the module docstring).

    Subclasses implement :meth:`_fit_regressor` and :meth:`_regress` on standardised feature rows
    and set ``name`` and ``config_class`` (a :class:`SignalConfig`).
    """

    task = "rating"
    feedback = "any"
    config_class: ClassVar[type[ModelConfig]] = SignalConfig
    #: The model reads the named signals of the rows it is fitted on (protocols that hide ratings
    #: give it the whole log with the held-out ratings masked, rather than the rated rows only).
    uses_signals: ClassVar[bool] = True

    # ------------------------------------------------------------------ subclass hooks
    def _fit_regressor(self, x: np.ndarray, y: np.ndarray, options: FitOptions) -> None:
        raise NotImplementedError

    def _regress(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    # ------------------------------------------------------------------ fit
    def _fit(self, data: Interactions, options: FitOptions) -> None:
        cfg: SignalConfig = self.config  # type: ignore[assignment]
        target, names, kinds, cols, rating = resolve_columns(data, cfg.rating_signal, cfg.signals)
        rated = np.isfinite(target)
        if not rated.any():
            raise DataError(f"{type(self).__name__}.fit: {data.name!r} has no row with a rating to "
                            "learn from")
        self.signal_names_ = names
        self.signal_kinds_ = kinds
        self.rating_signal_ = rating
        t = transform_signals(cols, kinds, len(data))
        table = FeatureTable.build(data.user_idx, data.item_idx, t, target, data.n_users, data.n_items,
                                   shrinkage=cfg.shrinkage, ratings=cfg.rating_aggregates)
        keys = data.pair_keys()
        order = np.argsort(keys, kind="stable")
        self.pair_keys_ = keys[order]
        self.row_signals_ = t[order]
        self.row_rating_ = target[order].astype(np.float32)
        ur, ir = data.user_idx[rated], data.item_idx[rated]
        x = table.raw(ur, ir, t[rated], target[rated])
        table.standardise_from(x)
        self._keep_table(table)
        y = target[rated]
        self.global_mean_ = float(y.mean())
        # the rating scale is the rating's, also on an implicit log whose values are counts
        self.rating_min_, self.rating_max_ = float(y.min()), float(y.max())
        self.explicit_ = True
        self.n_rated_ = int(rated.sum())
        self._fit_regressor((x - table.center) / table.scale, y.astype(np.float32), options)

    def _keep_table(self, table: FeatureTable) -> None:
        self.user_signal_mean_ = table.user_mean
        self.item_signal_mean_ = table.item_mean
        self.user_rows_ = table.user_rows
        self.item_rows_ = table.item_rows
        self.user_rating_sum_ = table.user_sum
        self.user_rating_n_ = table.user_n
        self.item_rating_sum_ = table.item_sum
        self.item_rating_n_ = table.item_n
        self.rating_mean_ = table.mu
        self.feature_center_ = table.center
        self.feature_scale_ = table.scale
        self.__dict__["_feature_table"] = table

    def _table(self) -> FeatureTable:
        table = self.__dict__.get("_feature_table")
        if table is None:
            cfg: SignalConfig = self.config  # type: ignore[assignment]
            table = FeatureTable(self.user_signal_mean_, self.item_signal_mean_, self.user_rows_,
                                 self.item_rows_,
                                 self.user_rating_sum_, self.user_rating_n_, self.item_rating_sum_,
                                 self.item_rating_n_, float(self.rating_mean_), cfg.shrinkage,
                                 cfg.rating_aggregates, self.feature_center_, self.feature_scale_)
            self.__dict__["_feature_table"] = table
        return table

    def set_state(self, state: dict[str, Any]) -> None:
        self.__dict__.pop("_feature_table", None)
        super().set_state(state)

    def check_state(self) -> None:
        n = len(self.pair_keys_)
        s = len(self.signal_names_)
        if self.row_signals_.shape != (n, s) or self.row_rating_.shape != (n,):
            raise DataError(f"array 'row_signals_' has shape {self.row_signals_.shape}; expected {(n, s)}")
        if (self.user_signal_mean_.shape != (len(self.users_), s)
                or self.item_signal_mean_.shape != (len(self.items_), s)):
            raise DataError("the signal aggregates do not match the vocabularies")
        super().check_state()

    # ------------------------------------------------------------------ features of pairs
    def _rows_of(self, u: np.ndarray, i: np.ndarray) -> np.ndarray:
        """Row positions (in the sorted fitted log) of pairs; -1 where the pair has no row."""
        keys = np.asarray(u, np.int64) * len(self.items_) + np.asarray(i, np.int64)
        pos = np.searchsorted(self.pair_keys_, keys)
        pos = np.minimum(pos, max(len(self.pair_keys_) - 1, 0))
        found = (len(self.pair_keys_) > 0) & (self.pair_keys_[pos] == keys) & (u >= 0) & (i >= 0)
        return np.where(found, pos, -1)

    def pair_features(self, u: np.ndarray, i: np.ndarray) -> np.ndarray:
        """Standardised feature rows of (user index, item index) pairs (``-1``: unknown side).

        A pair with a row in the fitted log uses that row's signals; a pair without one (the user
        never touched the item) uses the behaviour expected of the pair,
        :meth:`~recforge.models.signals._features.FeatureTable.expected_signals`."""
        u = np.asarray(u, np.int64)
        i = np.asarray(i, np.int64)
        rows = self._rows_of(u, i)
        has = rows >= 0
        own = self._table().expected_signals(u, i)
        own[has] = self.row_signals_[rows[has]]
        own_rating = np.full(len(u), np.nan)
        own_rating[has] = self.row_rating_[rows[has]]
        return self._table().features(u, i, own, own_rating)

    def log_features(self, data: Interactions) -> tuple[np.ndarray, np.ndarray]:
        """Feature rows and ratings (NaN = missing) of another log's rows, with this model's
        aggregates: each row's own signals come from ``data`` (the signal names the model was
        fitted on), the user and item aggregates from the fitted log (rows of users or items it
        lacks get the population's). ``data`` needs no rating column."""
        self.check_is_fitted()
        cols = []
        for name in self.signal_names_:
            if name in data.signals:
                cols.append(np.asarray(data.signals[name]))
            elif name == "value":
                cols.append(np.asarray(data.values))  # an implicit log whose values were the signal
            else:
                have = ", ".join(sorted(data.signals)) or "none"
                raise DataError(f"{data.name}: no signal {name!r}, which the model was fitted on "
                                f"(signals: {have})")
        if self.rating_signal_ and self.rating_signal_ in data.signals:
            target = np.asarray(data.signals[self.rating_signal_], dtype=np.float64)
        elif not self.rating_signal_ and data.explicit:
            target = np.asarray(data.values, dtype=np.float64)
        else:
            target = np.full(len(data), np.nan)
        t = transform_signals(cols, self.signal_kinds_, len(data))
        u = self.users_.index(data.users.ids[data.user_idx]) if len(data) else np.empty(0, np.int64)
        i = self.items_.index(data.items.ids[data.item_idx]) if len(data) else np.empty(0, np.int64)
        u = np.where((u >= 0) & self.user_known_[np.maximum(u, 0)], u, -1)
        i = np.where((i >= 0) & self.item_known_[np.maximum(i, 0)], i, -1)
        # a row of the fitted log leaves its own rating out of the aggregates, as in training
        rows = self._rows_of(u, i)
        own_rating = np.full(len(u), np.nan)
        own_rating[rows >= 0] = self.row_rating_[rows[rows >= 0]]
        return self._table().features(u, i, t, own_rating), target

    # ------------------------------------------------------------------ scoring
    def _score_pairs(self, u: np.ndarray, i: np.ndarray) -> np.ndarray:
        out = np.empty(len(u), np.float64)
        step = 1 << 16
        for s in range(0, len(u), step):
            out[s : s + step] = self._regress_all(self.pair_features(u[s : s + step], i[s : s + step]))
        return out

    def _score_partial(self, u: np.ndarray, i: np.ndarray) -> np.ndarray:
        # the unknown side gets the population's aggregates
        return self._score_pairs(u, i)

    def predict_log(self, data: Interactions) -> np.ndarray:
        """Predicted rating of every row of ``data`` from the row's own signals (see
        :meth:`log_features`), clipped to the training rating scale: rows of a new log with the
        same signal columns, or held-out rows whose ratings are hidden."""
        x, _ = self.log_features(data)
        return np.clip(self._regress_all(x), self.rating_min_, self.rating_max_)

    def _regress_all(self, x: np.ndarray) -> np.ndarray:
        out = np.empty(len(x), np.float64)
        step = 1 << 16
        for s in range(0, len(x), step):
            out[s : s + step] = self._regress(x[s : s + step])
        return out

    def fill_ratings(self, data: Interactions, *, keep_observed: bool = True) -> Interactions:
        """An explicit log with a rating on every row of ``data``: the observed rating where there
        is one (``keep_observed``), the predicted one elsewhere. Feed it to any rating model (``svd``,
        ``bias``) to give users who never rated a rating profile (the cold-start route).

        The result keeps ``data``'s vocabularies, timestamps and signals, plus a ``predicted``
        signal (kind ``binary``: 1 where the rating was predicted).
        """
        x, target = self.log_features(data)
        pred = np.clip(self._regress_all(x), self.rating_min_, self.rating_max_)
        observed = np.isfinite(target) if keep_observed else np.zeros(len(data), bool)
        values = np.where(observed, target, pred).astype(np.float32)
        out = data.subset(np.arange(len(data)), name=f"{data.name}+{self.name}")
        out.values = values
        out.explicit = True
        out.signals = {**out.signals, "predicted": (~observed).astype(np.float32)}
        out.signal_kinds = {**out.signal_kinds, "predicted": "binary"}
        out._cache.clear()
        return out

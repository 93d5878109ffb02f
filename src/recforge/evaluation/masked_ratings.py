"""The ``rating-masked`` and ``rating-masked-users`` protocols: hide ratings, keep the behaviour.

A log with implicit signals and a rating on some rows (``rating`` signal, NaN where missing) is
evaluated by hiding observed ratings while the rows themselves, with their plays and watch time,
stay in the training log: exactly the situation an implicit-to-explicit model is for.

- ``rating-masked``: 20% of the rated rows (seeded) lose their rating;
- ``rating-masked-users``: 20% of the users who rated anything lose every rating, so they become
  users who never rated (the cold-start route: their ratings can only come from behaviour).

RMSE and MAE are computed on the hidden ratings. A model that ``uses_signals`` is fitted on the
whole log with the hidden ratings set to NaN; every other rating model (``bias``, ``svd``...) is
fitted on the rows whose rating is still observed, as explicit ratings, and predicts the hidden
pairs with its usual fallback for users it never saw. One fold; the seed drives the choice.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from recforge.config import FitOptions
from recforge.data.datasets import Dataset
from recforge.data.interactions import Interactions, rating_signal_name
from recforge.data.split import Split
from recforge.errors import ConfigError, DataError
from recforge.evaluation.protocols import (
    Prepare,
    Protocol,
    Scored,
    _rating_scores,
    interactions_of,
    register_protocol,
)

__all__ = ["MaskedRatingProtocol", "observed_ratings", "rating_column"]

FRACTION = 0.2


def rating_column(data: Interactions) -> tuple[str, np.ndarray]:
    """``(name, ratings)`` of a log: its one signal of kind ``rating`` (NaN = missing), or ``""``
    and the values of an explicit log.

    Raises:
        DataError: The log has no ratings, or several rating signals.
    """
    name = rating_signal_name(data)
    if name:
        return name, np.asarray(data.signals[name], dtype=np.float64)
    if data.explicit:
        return "", np.asarray(data.values, dtype=np.float64)
    raise DataError(f"{data.name}: no ratings to hide: the log needs a signal of kind 'rating' (NaN where "
                    "missing) or explicit values")


def observed_ratings(data: Interactions) -> Interactions:
    """The rows of ``data`` whose rating is observed, as an explicit log (values = the rating):
    what a rating model without signals learns from."""
    _, r = rating_column(data)
    keep = np.isfinite(r)
    out = data.subset(keep)
    out.values = r[keep].astype(np.float32)
    out.explicit = True
    return out


def _masked(data: Interactions, hide: np.ndarray) -> Interactions:
    """``data`` with the ratings of rows ``hide`` (a boolean mask) set to NaN."""
    name, r = rating_column(data)
    r = np.where(hide, np.nan, r).astype(np.float32)
    if name:
        return replace(data, signals={**data.signals, name: r}, _cache={})
    return replace(data, values=r, _cache={})


@dataclass(frozen=True)
class MaskedRatingProtocol(Protocol):
    """Hide a fraction of the observed ratings (rows or whole users), keep the rows; RMSE/MAE on them.

    Attributes:
        unit: ``"rows"`` (a fraction of the rated rows) or ``"users"`` (every rating of a fraction
            of the rating users).
        fraction: The share hidden.
    """

    unit: str = "rows"
    fraction: float = FRACTION

    def check_model(self, model: Any) -> None:
        if model.task != "rating":
            raise ConfigError(f"protocol {self.name!r} needs a rating model; {model.name!r} is a "
                              f"{model.task} model")

    def check_data(self, model: Any, train: Any) -> None:
        hidden, _ = rating_column(train)
        own = getattr(getattr(model, "config", None), "rating_signal", "")
        if model.uses_signals and own and own != hidden:
            raise ConfigError(f"protocol {self.name!r} hides the ratings of {hidden or 'the values'!r}, "
                              f"but the model's rating_signal {own!r} is another signal; "
                              f"set rating_signal = {hidden!r} or leave it empty")

    def splits(self, dataset: Dataset | Interactions, seed: int = 0) -> list[Split]:
        data = interactions_of(dataset)
        _, r = rating_column(data)
        rated = np.flatnonzero(np.isfinite(r))
        rng = np.random.default_rng(seed)
        if self.unit == "users":
            raters = np.unique(data.user_idx[rated])
            n = max(1, round(self.fraction * len(raters)))
            chosen = rng.choice(raters, size=min(n, len(raters)), replace=False)
            hide = np.isin(data.user_idx, chosen) & np.isfinite(r)
        else:
            n = max(1, round(self.fraction * len(rated)))
            hide = np.zeros(len(data), bool)
            hide[rng.choice(rated, size=min(n, len(rated)), replace=False)] = True
        if hide.sum() == len(rated):
            raise DataError(f"{data.name}: too few ratings to hide some and learn from the rest "
                            f"({len(rated)} rated rows)")
        test = data.subset(hide)
        test.values = r[hide].astype(np.float32)
        test.explicit = True
        return [Split(_masked(data, hide), test, name=f"masked-{self.unit}", fold=1,
                      info={"seed": seed, "hidden": int(hide.sum()), "rated": len(rated)})]

    def run_splits(self, model: Any, splits: list[Any], dataset: Dataset | str, *,
                   prepare: Prepare | None = None,
                   **kwargs: Any) -> Any:
        def own(split: Any, fold: int, options: FitOptions) -> tuple[Any, FitOptions]:
            train, opts = prepare(split, fold, options) if prepare is not None else (split.train, options)
            if not model.uses_signals:
                train = observed_ratings(train)
            return train, opts

        return super().run_splits(model, splits, dataset, prepare=own, **kwargs)

    def score(self, fitted: Any, split: Any, *, k: int, dataset: Any, seed: int) -> Scored:
        return _rating_scores(fitted, split)

    def notes(self, seed: int, splits: list[Any]) -> list[str]:
        what = "rated rows" if self.unit == "rows" else "rating users (all their ratings)"
        hidden = splits[0].info["hidden"] if splits else 0
        return [(f"{self.name}: {self.fraction:.0%} of the {what} hidden (seed {seed}, {hidden} ratings); "
                 "the rows and their signals stay in training; models without uses_signals learn from "
                 "the observed ratings")]


for _p in (
    MaskedRatingProtocol("rating-masked", "rating",
                         "20% of observed ratings hidden, rows and signals kept; RMSE/MAE"
                         " on them (implicit-to-explicit)"),
    MaskedRatingProtocol("rating-masked-users", "rating",
                         "every rating of 20% of the rating users hidden (users "
                         "who never rated), rows and signals kept; RMSE/MAE on them", unit="users"),
):
    register_protocol(_p)

"""Global mean, popularity and random scorers."""

from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np

from recforge.config import FitOptions, ModelConfig
from recforge.data.interactions import Interactions
from recforge.models.base import Recommender


@dataclass(frozen=True)
class GlobalMeanConfig(ModelConfig):
    """GlobalMean has no hyperparameters."""


class GlobalMean(Recommender):
    """Predicts the mean training rating for every pair: the floor any rating model must beat."""

    name = "global-mean"
    task = "rating"
    config_class = GlobalMeanConfig

    def _fit(self, data: Interactions, options: FitOptions) -> None:
        self.global_mean_ = float(data.values.mean())

    def _score_pairs(self, u: np.ndarray, i: np.ndarray) -> np.ndarray:
        return np.full(len(u), self.global_mean_)

    def _score_users(self, u: np.ndarray) -> np.ndarray:
        return np.full((len(u), len(self.items_)), self.global_mean_)


@dataclass(frozen=True)
class PopularityConfig(ModelConfig):
    """Hyperparameters of :class:`Popularity`."""

    by: Literal["count", "sum"] = "count"
    """Rank items by number of interactions (``count``) or by the sum of their values (``sum``)."""


class Popularity(Recommender):
    """Ranks items by how often they were interacted with in training; same list for everyone.

    Score of item ``i``: ``|{u : r_ui observed}|`` (``by="count"``) or ``sum_u r_ui`` (``by="sum"``).
    """

    name = "popularity"
    task = "ranking"
    config_class = PopularityConfig
    scores_history = True

    def _fit(self, data: Interactions, options: FitOptions) -> None:
        if self.config.by == "count":
            pop = np.bincount(data.item_idx, minlength=data.n_items)
        else:
            pop = np.bincount(data.item_idx, weights=data.values, minlength=data.n_items)
        self.item_scores_ = pop.astype(np.float64)

    def _score_pairs(self, u: np.ndarray, i: np.ndarray) -> np.ndarray:
        return self.item_scores_[i]

    def _score_users(self, u: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.item_scores_, (len(u), len(self.item_scores_))).copy()

    def _score_history(self, item_idx: np.ndarray, values: np.ndarray | None,
                       context: Mapping[str, Any]) -> np.ndarray:
        # the same list for everyone: a history changes nothing (it is a prior for an empty one)
        return self.item_scores_.copy()

    def _scores_empty_history(self) -> bool:
        return True


@dataclass(frozen=True)
class RandomConfig(ModelConfig):
    """Hyperparameters of :class:`RandomScorer`."""

    salt: int = 0
    """Mixed with the fit seed; different salts give different (but fixed) random scores."""


class RandomScorer(Recommender):
    """Scores every pair with a fixed pseudo-random number: the chance level of any metric.

    The score of (u, i) is a hash of (seed, salt, u, i), so batch and single calls agree and a
    fitted model is deterministic.
    """

    name = "random"
    task = "ranking"
    config_class = RandomConfig

    def _fit(self, data: Interactions, options: FitOptions) -> None:
        seed = 0 if options.seed is None else int(options.seed)
        self.key_ = int(np.random.default_rng([seed, self.config.salt]).integers(1, 2**31))

    def _score_pairs(self, u: np.ndarray, i: np.ndarray) -> np.ndarray:
        x = (u.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)) ^ (
            i.astype(np.uint64) * np.uint64(0xC2B2AE3D27D4EB4F)
        ) ^ np.uint64(self.key_)
        x ^= x >> np.uint64(33)
        x *= np.uint64(0xFF51AFD7ED558CCD)
        x ^= x >> np.uint64(33)
        return (x >> np.uint64(11)).astype(np.float64) / float(2**53)

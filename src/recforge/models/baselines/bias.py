"""User and item biases: the regularised baseline predictor."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recforge.config import FitOptions, ModelConfig
from recforge.data.interactions import Interactions
from recforge.models.base import Recommender


@dataclass(frozen=True)
class BiasConfig(ModelConfig):
    """Hyperparameters of :class:`Bias`."""

    reg_user: float = 15.0
    """L2 penalty on user biases (scikit-surprise's ``reg_u``)."""
    reg_item: float = 10.0
    """L2 penalty on item biases (scikit-surprise's ``reg_i``)."""
    epochs: int = 10
    """Alternating least-squares sweeps over (item, user) biases."""

    def validate(self) -> None:
        self.check(self.reg_user >= 0, "reg_user", "must be >= 0")
        self.check(self.reg_item >= 0, "reg_item", "must be >= 0")
        self.check(self.epochs >= 1, "epochs", "must be >= 1")


class Bias(Recommender):
    """Baseline predictor ``r_ui = mu + b_u + b_i`` (Koren, "Factor in the Neighbors", TKDD 2010).

    Minimises ``sum (r_ui - mu - b_u - b_i)^2 + reg_user * sum b_u^2 + reg_item * sum b_i^2`` by
    alternating closed-form updates, as scikit-surprise's ``BaselineOnly`` with ALS does:
    ``b_i = sum_u (r_ui - mu - b_u) / (reg_item + |U_i|)`` then
    ``b_u = sum_i (r_ui - mu - b_i) / (reg_user + |I_u|)``.
    """

    name = "bias"
    task = "rating"
    config_class = BiasConfig

    def _fit(self, data: Interactions, options: FitOptions) -> None:
        cfg = self.config
        u, i, r = data.user_idx, data.item_idx, data.values.astype(np.float64)
        mu = float(r.mean())
        n_u = np.bincount(u, minlength=data.n_users)
        n_i = np.bincount(i, minlength=data.n_items)
        bu = np.zeros(data.n_users)
        bi = np.zeros(data.n_items)
        for _ in range(cfg.epochs):
            bi = np.bincount(i, weights=r - mu - bu[u], minlength=data.n_items) / (cfg.reg_item + n_i)
            bu = np.bincount(u, weights=r - mu - bi[i], minlength=data.n_users) / (cfg.reg_user + n_u)
        self.global_mean_ = mu
        self.user_bias_ = bu
        self.item_bias_ = bi

    def _score_pairs(self, u: np.ndarray, i: np.ndarray) -> np.ndarray:
        return self.global_mean_ + self.user_bias_[u] + self.item_bias_[i]

    def _score_users(self, u: np.ndarray) -> np.ndarray:
        return self.global_mean_ + self.user_bias_[u][:, None] + self.item_bias_[None, :]

    def _score_partial(self, u: np.ndarray, i: np.ndarray) -> np.ndarray:
        bu = np.where(u >= 0, self.user_bias_[np.maximum(u, 0)], 0.0)
        bi = np.where(i >= 0, self.item_bias_[np.maximum(i, 0)], 0.0)
        return self.global_mean_ + bu + bi

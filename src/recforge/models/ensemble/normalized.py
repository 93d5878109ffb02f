"""Any rating model trained on per-user (or per-item) normalised values, predicting on the original scale."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np

from recforge.config import FitOptions, ModelConfig
from recforge.data.interactions import Interactions
from recforge.data.utility import FittedNormalizer, Normalizer
from recforge.models._members import make_member, members_from_state, members_state, own_state
from recforge.models.base import Recommender

__all__ = ["Normalized", "NormalizedConfig"]


@dataclass(frozen=True)
class NormalizedConfig(ModelConfig):
    """Hyperparameters of :class:`Normalized`."""

    model: str = "svd"
    """The registered rating model trained on the normalised values."""
    params: dict[str, Any] | None = None
    """Its hyperparameters (a table in a config file)."""
    kind: Literal["center", "divide", "zscore"] = "zscore"
    """``center``: ``r - mean``; ``divide``: ``r / mean``; ``zscore``: ``(r - mean) / std``."""
    side: Literal["user", "item"] = "user"
    """Whose mean (and std) the values are normalised by."""

    ALIASES: ClassVar[dict[str, str]] = {}

    def validate(self) -> None:
        self.check(self.kind in ("center", "divide", "zscore"), "kind", "must be center, divide or zscore")
        self.check(self.side in ("user", "item"), "side", "must be user or item")
        self.check(self.params is None or isinstance(self.params, dict), "params", "must be a table")
        inner = make_member(self.model, self.params)  # unknown names and bad hyperparameters raise here
        self.check(inner.task == "rating", "model",
                   f"{self.model!r} is a {inner.task} model; wrap a rating model")
        self.check(not inner.uses_signals, "model",
                   f"{self.model!r} learns its rating signal, not the normalised values; "
                   "it cannot be normalised")


class Normalized(Recommender):
    r"""A rating model fitted on normalised ratings, whose predictions are mapped back.

    With per-user statistics :math:`\mu_u, \sigma_u` of the training values (per item with
    ``side="item"``), the inner model learns :math:`z_{ui} = (r_{ui} - \mu_u) / \sigma_u`
    (``zscore``; ``center``: :math:`r_{ui} - \mu_u`; ``divide``: :math:`r_{ui} / \mu_u`, as in
    "rating_user_i / average_rating_from_user_i") and the prediction is the inverse,
    :math:`\hat r_{ui} = \mu_u + \sigma_u \hat z_{ui}`. Users (items) unknown to the fit use the
    global mean and std. Normalising each user's ratings removes their personal scale (a harsh and
    a lenient rater mean the same by "one star above my average"); see Herlocker, Konstan, Borchers
    and Riedl, "An Algorithmic Framework for Performing Collaborative Filtering", SIGIR 1999, on mean
    centring and z-scores in neighbourhood prediction.
    """

    name = "normalized"
    task = "rating"
    config_class = NormalizedConfig

    def target_transform(self) -> str | None:
        """``user-zscore``, ``item-center``, ...: the normalisation the inner model learns under."""
        return Normalizer(self.config.kind, self.config.side).label

    def _fit(self, data: Interactions, options: FitOptions) -> None:
        cfg = self.config
        norm = Normalizer(cfg.kind, cfg.side).fit(data)
        self.norm_mean_, self.norm_std_ = norm.mean, norm.std
        self.norm_global_ = np.array([norm.global_mean, norm.global_std])
        self._inner = make_member(cfg.model, cfg.params).fit(norm.apply_to(data), options)

    def _normalizer(self) -> FittedNormalizer:
        return FittedNormalizer(self.config.kind, self.config.side, self.norm_mean_, self.norm_std_,
                                float(self.norm_global_[0]), float(self.norm_global_[1]))

    def _side(self, u: np.ndarray, i: np.ndarray) -> np.ndarray:
        return u if self.config.side == "user" else i

    def _score_pairs(self, u: np.ndarray, i: np.ndarray) -> np.ndarray:
        z = self._inner.predict(self.users_.ids[u], self.items_.ids[i], fallback="mean")
        return self._normalizer().inverse(self._side(u, i), z)

    def _score_partial(self, u: np.ndarray, i: np.ndarray) -> np.ndarray:
        z = self._inner._score_partial(u, i)
        z[np.isnan(z)] = self._inner._fallback_rating()
        return self._normalizer().inverse(self._side(u, i), z)

    def inner(self) -> Recommender:
        """The fitted inner model (it predicts normalised values)."""
        self.check_is_fitted()
        return self._inner

    def get_state(self) -> dict[str, Any]:
        return {**Recommender.get_state(self), **members_state([self._inner])}

    def set_state(self, state: dict[str, Any]) -> None:
        Recommender.set_state(self, own_state(state))
        self._inner = members_from_state([(self.config.model, self.config.params)], state)[0]

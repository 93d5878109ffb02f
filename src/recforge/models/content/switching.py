"""Switching hybrid: one model per user by history length, and a new-item model for unseen items."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from recforge.config import FitOptions, ModelConfig
from recforge.data.interactions import Interactions
from recforge.errors import DataError
from recforge.models.base import Recommender
from recforge.models.content._blend import (
    component_history_row,
    fit_component,
    own_state,
    parts_from_state,
    parts_state,
    resolve,
    standardise,
)

__all__ = ["SwitchingConfig", "SwitchingHybrid"]


@dataclass(frozen=True)
class SwitchingConfig(ModelConfig):
    """Hyperparameters of :class:`SwitchingHybrid`."""

    warm_model: str = "ease"
    """Model for users with at least ``threshold`` interactions (``"auto"``, from older configs,
    means ``"ease"``)."""
    cold_model: str = "onboarding-knn"
    """Model for users with 1 to ``threshold - 1`` interactions. The default, neighbours' later
    interactions (:class:`~recforge.models.neighbors.onboarding.OnboardingKNN`), beats popularity
    and EASE on validation users of ML-100K revealing 10, 20 and 40 interactions."""
    new_user_model: str = "demographic"
    """Model for users with no interactions: in the training vocabulary without rows, or through
    :meth:`SwitchingHybrid.recommend_for_history` with an empty history (the default ranks by
    popularity among users of the same age band, gender and occupation when the data has user
    attributes, by popularity otherwise; ``"knowledge"`` ranks by a declared utility)."""
    new_item_model: str = "content"
    """Model for the items the routed model cannot score (no training rows): scored from their
    features, on the same per-user standardised scale as the rest of the row."""
    new_item_penalty: float = 1.0
    """Subtracted from the new-item model's standardised scores (in [0, 1) with ``rank``) before
    they join a row of known items: 1 puts items nobody has interacted with below every known item
    in a full ranking, while their order among themselves (``candidates`` = new items) is the
    new-item model's; 0 mixes them in on equal terms."""
    threshold: int = 20
    """History length from which a user counts as warm."""
    model_configs: dict[str, dict[str, Any]] | None = None
    """Optional hyperparameters per component name."""

    def validate(self) -> None:
        self.check(self.threshold >= 1, "threshold", "must be >= 1")
        self.check(self.new_item_penalty >= 0, "new_item_penalty", "must be >= 0")


class SwitchingHybrid(Recommender):
    r"""Switching hybrid: picks one model per user (and per item) by how much is known.

    A user with :math:`n_u \ge \tau` training interactions is scored by the warm (collaborative)
    model, one with :math:`1 \le n_u < \tau` by the cold model (by default onboarding kNN, made for
    short histories), one with none by the new-user (demographic) model. Items without
    training rows, which collaborative models cannot score, get the new-item (content-based)
    model's scores, on the same per-user standardised scale as the rest of the row.
    Reference: Burke, "Hybrid Recommender Systems: Survey and Experiments", UMUAI 12(4), 2002
    (switching hybrids; Billsus and Pazzani's DailyLearner).
    """

    name = "hybrid-switching"
    task = "ranking"
    config_class = SwitchingConfig
    scores_history = True

    def _fit(self, data: Interactions, options: FitOptions) -> None:
        self.__dict__.pop("_pop_order", None)
        cfg = self.config
        names = [resolve(cfg.warm_model), resolve(cfg.cold_model), resolve(cfg.new_user_model),
                 resolve(cfg.new_item_model)]
        self.component_names_ = names
        self._parts = []
        fitted: dict[str, Recommender] = {}  # a model named twice (e.g. cold and new-item) fits once
        for n in names:
            if n not in fitted:
                try:
                    fitted[n] = fit_component(n, cfg.model_configs, data, options)
                except DataError as exc:
                    if n == names[0]:
                        raise
                    warnings.warn(f"hybrid-switching: {n} cannot be fitted ({exc}); using the warm model",
                                  stacklevel=2)
                    fitted[n] = self._parts[0]
            self._parts.append(fitted[n])
        self.history_len_ = data.user_counts().astype(np.int64)
        self.user_known_ = np.logical_or.reduce([p.user_known_ for p in self._parts])
        self.item_known_ = np.logical_or.reduce([p.item_known_ for p in self._parts])

    def route(self, lengths: np.ndarray) -> np.ndarray:
        """0 = warm model, 1 = cold model, 2 = new-user model, per history length (the new-item
        model, component 3, fills in the items the routed model cannot score)."""
        lengths = np.asarray(lengths)
        return np.where(lengths >= self.config.threshold, 0, np.where(lengths > 0, 1, 2))

    def _part_rows(self, part: Recommender, u: np.ndarray | None,
                   history: tuple[np.ndarray, np.ndarray | None, Any] | None, n_rows: int) -> np.ndarray:
        """Standardised scores of one component for users ``u``, or for an ad-hoc history."""
        if history is None:
            return standardise(part.score_all(self.users_.ids[u]))
        idx, vals, attributes = history
        row = component_history_row(part, self.items_.ids[idx], vals, attributes, self.name)
        return np.repeat(standardise(row[None, :]), n_rows, axis=0)

    def _rows(self, route: np.ndarray, u: np.ndarray | None,
              history: tuple[np.ndarray, np.ndarray | None, Any] | None) -> np.ndarray:
        out = np.zeros((len(route), len(self.items_)))
        for r in (0, 1, 2):
            sel = np.flatnonzero(route == r)
            if not len(sel):
                continue
            us = None if u is None else u[sel]
            part = self._parts[r]
            z = self._part_rows(part, us, history, len(sel))
            if r < 2 and not part.item_known_.all() and self._parts[3] is not part:
                # items the routed model cannot score take the new-item model's (standardised) scores
                new = self._part_rows(self._parts[3], us, history, len(sel)) - self.config.new_item_penalty
                z = np.where(part.item_known_[None, :], z, new)
            out[sel] = z
        return out

    def _score_users(self, u: np.ndarray) -> np.ndarray:
        return self._rows(self.route(self.history_len_[u]), u, None)

    def _score_pairs(self, u: np.ndarray, i: np.ndarray) -> np.ndarray:
        return Recommender._score_pairs(self, u, i)

    def _score_history(self, item_idx: np.ndarray, values: np.ndarray | None,
                       context: Mapping[str, Any]) -> np.ndarray:
        # routed by the history's length; attributes reach the components that use them (the
        # default new-user model, demographic)
        route = self.route(np.array([len(item_idx)]))
        return self._rows(route, None, (item_idx, values, context.get("attributes")))[0]

    def _scores_empty_history(self) -> bool:
        return True  # the new-user model answers

    def components(self) -> list[Recommender]:
        """The fitted components: warm, cold, new-user and new-item model (a model named twice is
        one object)."""
        self.check_is_fitted()
        return list(self._parts)

    def get_state(self) -> dict[str, Any]:
        return {**Recommender.get_state(self), **parts_state(self._parts)}

    def set_state(self, state: dict[str, Any]) -> None:
        Recommender.set_state(self, own_state(state))
        self._parts = parts_from_state(self.component_names_, self.config.model_configs, state)
        if len(self._parts) == 3:  # saved before new_item_model existed: the cold model filled in
            self.component_names_ = [*self.component_names_, self.component_names_[1]]
            self._parts.append(self._parts[1])

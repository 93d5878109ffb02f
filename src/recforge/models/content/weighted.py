"""Weighted hybrid: a blend of standardised component scores, weights learned per history length."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
import scipy.sparse as sp

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
    search,
    simplex,
    standardise,
)

__all__ = ["WeightedConfig", "WeightedHybrid"]


@dataclass(frozen=True)
class WeightedConfig(ModelConfig):
    """Hyperparameters of :class:`WeightedHybrid`."""

    models: tuple[str, ...] = ("lightfm-style", "ease", "demographic", "popularity", "onboarding-knn")
    """Registered model names to blend (``"auto"``, from older configs, means ``"ease"``). Every
    component must score ad-hoc histories (``scores_history``) for
    :meth:`WeightedHybrid.recommend_for_history`."""
    model_configs: dict[str, dict[str, Any]] | None = field(
        default_factory=lambda: {"ease": {"reg": 200_000.0}})
    """Hyperparameters per component name, e.g. ``{"lightfm-style": {"epochs": 10}}``. The default
    regularises EASE heavily (``reg`` 200,000 instead of 500): with a handful of items in the
    history, a strongly shrunk item-item matrix (close to co-occurrence counts) ranks better than
    the sharp default one (NDCG@10 on validation users revealing 5 ratings, ML-100K)."""
    buckets: tuple[int, ...] = (1, 3, 6, 11, 21)
    """History-length boundaries: users with fewer than ``buckets[0]`` interactions form the
    first group, and so on; each group learns its own weights."""
    grid_steps: int = 10
    """Weights are searched on the simplex grid with step ``1 / grid_steps``."""
    validation_fraction: float = 0.2
    """Fraction of users held out (most of their history hidden) to learn the weights."""
    valid_reveals: tuple[int, ...] = (0, 1, 3, 5, 10, 20, -1)
    """History lengths simulated for the held-out users (cycled over them); ``-1`` keeps a random
    80% of the user's history instead."""
    min_valid_items: int = 5
    """A held-out user revealing ``r`` interactions needs at least ``r + min_valid_items`` of them,
    so that the weights are scored on a real later history: users with short histories (such as
    new users whose only rows are their onboarding ones) would otherwise score the blend on their
    last one or two onboarding items, which favours the popularity prior."""
    max_valid_users: int = 1000
    """At most this many held-out users score the weight grid (a random subset, over all rounds):
    the search holds a ``models x users x items`` array in memory."""
    valid_rounds: int = 3
    """Independent hold-outs (different users, history lengths rotated) pooled to learn the weights:
    one round leaves only a few dozen users per history-length bucket, and the learned weights
    jump from bucket to bucket with the noise. Each round refits the components once."""
    k: int = 10
    """List length of the NDCG@k that the weights maximise."""
    fixed_weights: tuple[float, ...] = ()
    """Skip learning and use these weights (one per model, for every history length)."""
    normalise: Literal["rank", "minmax", "z"] = "rank"
    """How each component's row of scores is put on a common scale before blending (see
    :func:`standardise`)."""

    ALIASES: ClassVar[dict[str, str]] = {"valid_fraction": "validation_fraction"}

    def validate(self) -> None:
        self.check(len(self.models) >= 1, "models", "needs at least one model")
        self.check(list(self.buckets) == sorted(set(self.buckets)) and all(b >= 1 for b in self.buckets),
                   "buckets", "must be increasing integers >= 1")
        self.check(self.grid_steps >= 1, "grid_steps", "must be >= 1")
        self.check(0 < self.validation_fraction < 1, "validation_fraction", "must be in (0, 1)")
        self.check(all(r >= -1 for r in self.valid_reveals) and len(self.valid_reveals) > 0, "valid_reveals",
                   "must be integers >= -1")
        self.check(self.k >= 1, "k", "must be >= 1")
        self.check(self.max_valid_users >= 1, "max_valid_users", "must be >= 1")
        self.check(self.min_valid_items >= 1, "min_valid_items", "must be >= 1")
        self.check(self.valid_rounds >= 1, "valid_rounds", "must be >= 1")
        self.check(not self.fixed_weights or (len(self.fixed_weights) == len(self.models)
                                              and all(w >= 0 for w in self.fixed_weights)),
                   "fixed_weights", "needs one weight >= 0 per model")
        if self.model_configs is not None:
            self.check(isinstance(self.model_configs, dict), "model_configs", "must be a dict of dicts")


class WeightedHybrid(Recommender):
    r"""Weighted hybrid: a blend of standardised scores whose weights depend on history length.

    Each component model :math:`c` scores every item; scores are standardised per user
    (:math:`z_c(u, i)`, items a component cannot score get its lowest value) and blended,
    :math:`s_{ui} = \sum_c w_{b(u), c}\, z_c(u, i)`, where :math:`b(u)` is the user's history-length
    bucket. The weights maximise NDCG@k on validation data: by default a fraction of the training
    users is held out, each keeping only its first 0, 1, 3, 5, 10 or 20 interactions (or a random
    80%), the components are fitted on the rest, the weights of every bucket are searched on a
    simplex grid, and the components are refitted on all the data. ``FitOptions.validation``
    replaces the internal hold-out. Reference: Burke, "Hybrid Recommender Systems: Survey and
    Experiments", UMUAI 12(4), 2002 (weighted hybrids); Claypool et al., "Combining Content-Based and
    Collaborative Filters in an Online Newspaper" (1999).
    """

    name = "hybrid-weighted"
    task = "ranking"
    config_class = WeightedConfig
    scores_history = True

    def _fit(self, data: Interactions, options: FitOptions) -> None:
        self.__dict__.pop("_pop_order", None)
        cfg = self.config
        names = [resolve(n) for n in cfg.models]
        self.component_names_ = names
        nb = len(cfg.buckets) + 1
        if cfg.fixed_weights:
            W = np.tile(np.asarray(cfg.fixed_weights, dtype=np.float64), (nb, 1))
        else:
            W = self._learn(data, names, options)
        self.weights_ = W
        self._parts = [fit_component(n, cfg.model_configs, data, options) for n in names]
        self._set_known(data)

    def _set_known(self, data: Interactions) -> None:
        self.history_len_ = data.user_counts().astype(np.int64)
        self.user_known_ = np.logical_or.reduce([p.user_known_ for p in self._parts])
        self.item_known_ = np.logical_or.reduce([p.item_known_ for p in self._parts])

    def _bucket(self, lengths: np.ndarray) -> np.ndarray:
        return np.searchsorted(np.asarray(self.config.buckets), lengths, side="right")

    # ------------------------------------------------------------------ weight learning
    def _learn(self, data: Interactions, names: list[str], options: FitOptions) -> np.ndarray:
        cfg = self.config
        seed = 0 if options.seed is None else int(options.seed)
        if options.validation is not None:
            valid = options.validation
            if not isinstance(valid, Interactions) or valid.items is not data.items and \
                    not np.array_equal(valid.items.ids, data.items.ids):
                raise DataError("FitOptions.validation must be Interactions that share the training "
                                "vocabularies")
            splits = [(data, valid)]
        else:
            splits = [self._holdout(data, options, r) for r in range(cfg.valid_rounds)]
        vopts = FitOptions(seed=options.seed, threads=options.threads)
        per_round = max(1, cfg.max_valid_users // len(splits))
        Zs, truths, lengths = [], [], []
        for r, (train, valid) in enumerate(splits):
            truth = valid.csr()
            users = np.flatnonzero(np.diff(truth.indptr) > 0)
            if len(users) > per_round:
                rng = np.random.default_rng([seed, 43, r])
                users = np.sort(rng.choice(users, per_round, replace=False))
            if not len(users):
                continue
            parts = [fit_component(n, cfg.model_configs, train, vopts) for n in names]
            # (components, users, items); the users' training items cannot be recommended
            Z = np.stack([standardise(p.score_all(train.users.ids[users]), cfg.normalise) for p in parts])
            sub = train.csr()[users]
            rows = np.repeat(np.arange(len(users)), np.diff(sub.indptr))
            Z[:, rows, sub.indices] = -np.inf
            Zs.append(Z.astype(np.float32))
            truths.append(truth[users])
            lengths.append(train.user_counts()[users])
        nb = len(cfg.buckets) + 1
        W = np.full((nb, len(names)), 1.0 / len(names))
        if not Zs:
            return W
        Z = np.concatenate(Zs, axis=1)
        truth = sp.vstack(truths, format="csr")
        buckets = self._bucket(np.concatenate(lengths))
        grid = simplex(len(names), cfg.grid_steps)
        best_all = search(Z, truth, grid, cfg.k)
        for b in range(nb):
            sel = np.flatnonzero(buckets == b)
            W[b] = search(Z[:, sel], truth[sel], grid, cfg.k) if len(sel) else best_all
        return W

    def _holdout(self, data: Interactions, options: FitOptions, round_: int = 0
                 ) -> tuple[Interactions, Interactions]:
        """Round ``round_`` of the validation split: a fresh random ``validation_fraction`` of the users
        keeps only its earliest ``valid_reveals[j]`` interactions (the rest is validation), with the
        history lengths rotated so that every round covers every length with other users."""
        from recforge._arrays import group_positions

        cfg = self.config
        seed = 0 if options.seed is None else int(options.seed)
        rng = np.random.default_rng([seed, 41, round_])
        counts = data.user_counts()
        present = np.flatnonzero(counts >= 2)
        n_hold = max(1, int(round(cfg.validation_fraction * len(present)))) if len(present) > 1 else 0
        held = rng.permutation(present)[:n_hold]
        reveal = np.full(data.n_users, -2, dtype=np.int64)  # -2: not held out
        levels = np.roll(np.asarray(cfg.valid_reveals, dtype=np.int64), -round_)
        reveal[held] = np.resize(levels, n_hold)
        # too short for the history length drawn: not held out (see min_valid_items)
        reveal[(reveal >= 0) & (counts < reveal + cfg.min_valid_items)] = -2
        keys = (data.timestamps, data.item_idx) if data.timestamps is not None else (rng.random(len(data)),)
        pos, size = group_positions(data.user_idx, data.n_users, *keys)
        r = reveal[data.user_idx]
        to_valid = (r >= 0) & (pos >= np.minimum(r, size - 1))
        frac = (r == -1) & (rng.random(len(data)) < 0.2)
        to_valid |= frac
        if not to_valid.any():
            to_valid[rng.integers(len(data))] = True
        return data.subset(~to_valid), data.subset(to_valid)

    # ------------------------------------------------------------------ scoring
    def _blend(self, parts_scores: list[np.ndarray], buckets: np.ndarray) -> np.ndarray:
        W = self.weights_[buckets]  # (U, C)
        out = np.zeros_like(parts_scores[0])
        for c, z in enumerate(parts_scores):
            out += W[:, c : c + 1] * z
        return out

    def _score_users(self, u: np.ndarray) -> np.ndarray:
        ids = self.users_.ids[u]
        Zs = [standardise(p.score_all(ids), self.config.normalise) for p in self._parts]
        return self._blend(Zs, self._bucket(self.history_len_[u]))

    def _score_pairs(self, u: np.ndarray, i: np.ndarray) -> np.ndarray:
        # standardisation needs the whole row, so score rows and gather (the base default)
        return Recommender._score_pairs(self, u, i)

    def components(self) -> list[Recommender]:
        """The fitted component models, in the order of ``component_names_``."""
        self.check_is_fitted()
        return list(self._parts)

    def _score_history(self, item_idx: np.ndarray, values: np.ndarray | None,
                       context: Mapping[str, Any]) -> np.ndarray:
        # each component scores the history through its public API (the LightFM-style fold-in,
        # EASE's x B, the popularity and demographic priors); the weights learned for this history
        # length blend them; attributes reach the components that use them (demographic)
        ids = self.items_.ids[item_idx]
        Zs = []
        for p in self._parts:
            s = component_history_row(p, ids, values, context.get("attributes"), self.name)
            Zs.append(standardise(s[None, :], self.config.normalise))
        return self._blend(Zs, self._bucket(np.array([len(item_idx)])))[0]

    def _scores_empty_history(self) -> bool:
        return True  # the 0-interaction bucket's weights, mostly on the priors

    # ------------------------------------------------------------------ persistence
    def get_state(self) -> dict[str, Any]:
        return {**Recommender.get_state(self), **parts_state(self._parts)}

    def set_state(self, state: dict[str, Any]) -> None:
        Recommender.set_state(self, own_state(state))
        self._parts = parts_from_state(self.component_names_, self.config.model_configs, state)

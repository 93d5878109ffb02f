"""Hybrid recommenders: a weighted blend with learned weights, and a switching router."""

from __future__ import annotations

import itertools
import warnings
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp

from recforge.config import FitOptions, ModelConfig
from recforge.data.interactions import Interactions
from recforge.data.vocabulary import normalize_ids
from recforge.errors import ConfigError, DataError
from recforge.models.base import Recommender

__all__ = [
    "SwitchingConfig", "SwitchingHybrid", "WeightedConfig", "WeightedHybrid", "available_cf_model",
    "history_scores",
]

#: collaborative-filtering models tried in order when a hybrid's CF component is ``"auto"``
CF_PREFERENCE = ("ease", "ials", "item-knn-implicit", "bpr", "popularity")


def available_cf_model() -> str:
    """The first registered CF model of :data:`CF_PREFERENCE` that can be built here."""
    from recforge.models.registry import get_model_class

    for name in CF_PREFERENCE:
        try:
            get_model_class(name)
            return name
        except Exception:  # not written yet or its extra is missing: try the next
            continue
    return "popularity"


def _resolve(name: str) -> str:
    return available_cf_model() if name == "auto" else name


def _make(name: str, configs: dict[str, Any] | None) -> Recommender:
    from recforge.models.registry import make_model

    return make_model(name, dict((configs or {}).get(name, {})))


def _fit_component(model: Recommender, data: Interactions, options: FitOptions) -> Recommender:
    # the protocols' convention: ranking models learn from implicit feedback
    if model.task != "rating" and data.explicit:
        data = data.to_implicit()
    return model.fit(data, options)


def _component_scores(model: Recommender, u: np.ndarray) -> np.ndarray:
    """Scores of users ``u`` (indices shared by the hybrid and its parts); NaN where unknown."""
    out = np.full((len(u), len(model.items_)), np.nan)
    ok = model.user_known_[u]
    if ok.any():
        out[ok] = model._score_users(u[ok])
    out[:, ~model.item_known_] = np.nan
    return out


def standardise(scores: np.ndarray, method: str = "rank") -> np.ndarray:
    """Put each row of scores on a common scale; non-finite entries get the row's lowest value.

    ``rank``: the fraction of the row's finite scores that are lower (ties: the mean rank), in
    [0, 1), so a component with a few huge scores (EASE, kNN on a short history) cannot drown the
    others; ``minmax``: scaled to [0, 1]; ``z``: z-scores.
    """
    s = np.array(scores, dtype=np.float64)
    fin = np.isfinite(s)
    if method == "rank":
        from scipy.stats import rankdata

        r = rankdata(np.where(fin, s, -np.inf), axis=1, method="average") - 1.0
        low = (~fin).sum(axis=1)  # the non-finite entries take the lowest ranks
        n_fin = fin.sum(axis=1)
        out = np.where(fin, (r - low[:, None]) / np.maximum(n_fin, 1)[:, None], 0.0)
        return out
    if method == "minmax":
        lo = np.where(fin, s, np.inf).min(axis=1)
        hi = np.where(fin, s, -np.inf).max(axis=1)
        span = np.where(np.isfinite(hi - lo) & (hi > lo), hi - lo, 1.0)
        lo = np.where(np.isfinite(lo), lo, 0.0)
        return np.where(fin, (s - lo[:, None]) / span[:, None], 0.0)
    cnt = fin.sum(axis=1)
    z = np.where(fin, s, 0.0)
    mean = z.sum(axis=1) / np.maximum(cnt, 1)
    var = np.where(fin, (z - mean[:, None]) ** 2, 0.0).sum(axis=1) / np.maximum(cnt, 1)
    sd = np.sqrt(var)
    z = np.where(sd[:, None] > 0, (z - mean[:, None]) / np.where(sd > 0, sd, 1.0)[:, None], 0.0)
    low = np.where(fin, z, np.inf).min(axis=1)
    low = np.where(np.isfinite(low), low, 0.0)
    return np.where(fin, z, low[:, None])


def history_scores(
    model: Recommender, item_idx: np.ndarray, values: np.ndarray | None = None
) -> np.ndarray | None:
    """Scores over all item indices for an ad-hoc history, without refitting, or None.

    Uses the model's own ``scores_for_history`` when it has one, an ALS fold-in
    (``recalculate_user``), an item-item matrix (EASE, item kNN), or a global item score
    (popularity, knowledge); a model that can do none of these gives None.
    """
    ids = model.items_.ids[item_idx]
    vals = None if values is None else np.asarray(values, dtype=np.float64)
    if hasattr(model, "scores_for_history"):
        return np.asarray(model.scores_for_history(ids, vals), dtype=np.float64)
    if hasattr(model, "recalculate_user") and hasattr(model, "item_factors_"):
        x = np.asarray(model.recalculate_user(ids, vals), dtype=np.float64)
        return np.asarray(model.item_factors_, dtype=np.float64) @ x
    n = len(model.items_)
    h = sp.csr_matrix((np.ones(len(item_idx)) if vals is None else vals,
                       (np.zeros(len(item_idx), np.int64), item_idx)), shape=(1, n))
    if hasattr(model, "weights_") and hasattr(model, "history_"):
        return np.asarray(h @ model.weights_, dtype=np.float64).ravel()
    if hasattr(model, "_item_scorer") and not getattr(model, "user_based", True):
        return np.asarray((h @ model._item_scorer()).toarray(), dtype=np.float64).ravel()
    for attr in ("item_scores_", "utility_"):
        if hasattr(model, attr):
            return np.asarray(getattr(model, attr), dtype=np.float64).copy()
    return None


def _history_indices(model: Recommender, item_ids: Any) -> np.ndarray:
    if not np.size(item_ids):
        return np.empty(0, np.int64)
    return model.items_.index(normalize_ids(np.atleast_1d(np.asarray(item_ids))))


def _check_k(k: Any) -> None:
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k <= 0:
        raise ConfigError(f"k must be a positive integer, got {k!r}")


# =============================================================================== weighted
@dataclass(frozen=True)
class WeightedConfig(ModelConfig):
    """Hyperparameters of :class:`WeightedHybrid`."""

    models: tuple[str, ...] = ("lightfm-style", "auto", "demographic", "popularity", "onboarding-knn")
    """Registered model names to blend; ``"auto"`` = the first available CF model of
    :data:`CF_PREFERENCE`."""
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
    valid_fraction: float = 0.2
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

    def validate(self) -> None:
        self.check(len(self.models) >= 1, "models", "needs at least one model")
        self.check(list(self.buckets) == sorted(set(self.buckets)) and all(b >= 1 for b in self.buckets),
                   "buckets", "must be increasing integers >= 1")
        self.check(self.grid_steps >= 1, "grid_steps", "must be >= 1")
        self.check(0 < self.valid_fraction < 1, "valid_fraction", "must be in (0, 1)")
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

    def _fit(self, data: Interactions, options: FitOptions) -> None:
        self.__dict__.pop("_pop_order", None)
        cfg = self.config
        names = [_resolve(n) for n in cfg.models]
        self.component_names_ = names
        nb = len(cfg.buckets) + 1
        if cfg.fixed_weights:
            W = np.tile(np.asarray(cfg.fixed_weights, dtype=np.float64), (nb, 1))
        else:
            W = self._learn(data, names, options)
        self.weights_ = W
        self._parts = [_fit_component(_make(n, cfg.model_configs), data, options) for n in names]
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
            parts = [_fit_component(_make(n, cfg.model_configs), train, vopts) for n in names]
            # (components, users, items); the users' training items cannot be recommended
            Z = np.stack([standardise(_component_scores(p, users), cfg.normalise) for p in parts])
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
        grid = _simplex(len(names), cfg.grid_steps)
        best_all = _search(Z, truth, grid, cfg.k)
        for b in range(nb):
            sel = np.flatnonzero(buckets == b)
            W[b] = _search(Z[:, sel], truth[sel], grid, cfg.k) if len(sel) else best_all
        return W

    def _holdout(self, data: Interactions, options: FitOptions, round_: int = 0
                 ) -> tuple[Interactions, Interactions]:
        """Round ``round_`` of the validation split: a fresh random ``valid_fraction`` of the users
        keeps only its earliest ``valid_reveals[j]`` interactions (the rest is validation), with the
        history lengths rotated so that every round covers every length with other users."""
        from recforge._arrays import group_positions

        cfg = self.config
        seed = 0 if options.seed is None else int(options.seed)
        rng = np.random.default_rng([seed, 41, round_])
        counts = data.user_counts()
        present = np.flatnonzero(counts >= 2)
        n_hold = max(1, int(round(cfg.valid_fraction * len(present)))) if len(present) > 1 else 0
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
        Zs = [standardise(_component_scores(p, u), self.config.normalise) for p in self._parts]
        return self._blend(Zs, self._bucket(self.history_len_[u]))

    def _score_pairs(self, u: np.ndarray, i: np.ndarray) -> np.ndarray:
        # standardisation needs the whole row, so score rows and gather (the base default)
        return Recommender._score_pairs(self, u, i)

    def components(self) -> list[Recommender]:
        """The fitted component models, in the order of ``component_names_``."""
        self._check_fitted()
        return list(self._parts)

    def scores_for_history(
        self, item_ids: Any, values: Any = None, attributes: dict[str, Any] | None = None
    ) -> np.ndarray:
        """Blended scores of every item index for a new user with this history (no refit).

        Args:
            item_ids: Raw ids of the items the user rated or clicked (may be empty; unknown ids
                are ignored).
            values: Optional rating or click value per item (used by the components that weigh
                history items, e.g. the LightFM-style fold-in).
            attributes: Optional user attributes, e.g. ``{"age": 31, "gender": "F"}``, for the
                components that use them (``demographic``).

        Returns:
            One score per item index (``len(self.items_)``), on the blended standardised scale.
        """
        self._check_fitted()
        idx = _history_indices(self, item_ids)
        vals = None if values is None else np.asarray(values, dtype=np.float64)
        ok = idx >= 0
        idx = idx[ok]
        vals = None if vals is None else vals[ok]
        Zs = []
        for p in self._parts:
            if hasattr(p, "scores_for_attributes"):
                s = np.asarray(p.scores_for_attributes(attributes), dtype=np.float64)
            else:
                global_scores = hasattr(p, "utility_") or hasattr(p, "item_scores_")
                s = history_scores(p, idx, vals) if len(idx) or global_scores else None
            if s is None:
                s = np.full(len(self.items_), np.nan)
            s = np.where(p.item_known_, s, np.nan)
            Zs.append(standardise(s[None, :], self.config.normalise))
        return self._blend(Zs, self._bucket(np.array([len(idx)])))[0]

    def recommend_for_history(
        self, item_ids: Any, k: int = 10, values: Any = None, *, exclude_seen: bool = True,
        candidates: Any = None, attributes: dict[str, Any] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` raw item ids and scores for a new user with a handful of interactions.

        No refit: each component folds the history in (see :func:`history_scores`: EASE
        ``x B``, the LightFM-style user fold-in, popularity and demographic priors), and the
        weights learned for this history length blend them. The history's items are excluded
        unless ``exclude_seen`` is False; ``candidates`` (raw ids) restricts the choice; an empty
        history is allowed (the weights of the 0-interaction bucket, mostly the priors).
        """
        from recforge.models.content.content import _top_from_scores

        _check_k(k)
        scores = self.scores_for_history(item_ids, values, attributes)
        return _top_from_scores(self, scores, item_ids, k, exclude_seen, candidates)

    # ------------------------------------------------------------------ persistence
    def get_state(self) -> dict[str, Any]:
        return _state_with_parts(self)

    def set_state(self, state: dict[str, Any]) -> None:
        _restore_parts(self, state)


def _state_with_parts(model: Recommender) -> dict[str, Any]:
    state = Recommender.get_state(model)
    for c, p in enumerate(model._parts):  # type: ignore[attr-defined]
        state.update({f"part{c}__{k}": v for k, v in p.get_state().items()})
    return state


def _restore_parts(model: Recommender, state: dict[str, Any]) -> None:
    Recommender.set_state(model, {k: v for k, v in state.items() if not k.startswith("part")})
    parts = []
    for c, name in enumerate(model.component_names_):  # type: ignore[attr-defined]
        part = _make(name, model.config.model_configs)  # type: ignore[attr-defined]
        prefix = f"part{c}__"
        part.set_state({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)})
        parts.append(part)
    model._parts = parts  # type: ignore[attr-defined]


def _simplex(n: int, steps: int) -> np.ndarray:
    if n == 1:
        return np.ones((1, 1))
    pts = [c for c in itertools.product(range(steps + 1), repeat=n - 1) if sum(c) <= steps]
    return np.array([[*c, steps - sum(c)] for c in pts], dtype=np.float64) / steps


def _search(Z: np.ndarray, truth: sp.csr_matrix, grid: np.ndarray, k: int) -> np.ndarray:
    """The grid row with the best mean NDCG@k (ties: the first, i.e. the most even split is not
    preferred over an earlier one; the grid order is fixed so the result is deterministic)."""
    from recforge.metrics import ndcg_at_k
    from recforge.topk import topk_rows

    best, best_w = -1.0, grid[0]
    Zf = np.where(np.isfinite(Z), Z, -1e9)
    for w in grid:
        s = np.tensordot(w, Zf, axes=1)
        idx, _ = topk_rows(s, k)
        val = float(np.mean(ndcg_at_k(idx, truth, k)))
        if val > best + 1e-12:
            best, best_w = val, w
    return best_w


# =============================================================================== switching
@dataclass(frozen=True)
class SwitchingConfig(ModelConfig):
    """Hyperparameters of :class:`SwitchingHybrid`."""

    warm_model: str = "auto"
    """Model for users with at least ``threshold`` interactions (``"auto"``: the first available
    CF model of :data:`CF_PREFERENCE`)."""
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

    def _fit(self, data: Interactions, options: FitOptions) -> None:
        self.__dict__.pop("_pop_order", None)
        cfg = self.config
        names = [_resolve(cfg.warm_model), _resolve(cfg.cold_model), _resolve(cfg.new_user_model),
                 _resolve(cfg.new_item_model)]
        self.component_names_ = names
        self._parts = []
        fitted: dict[str, Recommender] = {}  # a model named twice (e.g. cold and new-item) fits once
        for n in names:
            if n not in fitted:
                try:
                    fitted[n] = _fit_component(_make(n, cfg.model_configs), data, options)
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

    def _part_rows(self, part: Recommender, u: np.ndarray | None, history: tuple[np.ndarray, Any, Any] | None,
                   n_rows: int) -> np.ndarray:
        """Standardised scores of one component for users ``u``, or for an ad-hoc history."""
        if history is None:
            return standardise(_component_scores(part, u))
        idx, vals, attributes = history
        if hasattr(part, "scores_for_attributes"):
            h = np.asarray(part.scores_for_attributes(attributes), dtype=np.float64)
        else:
            h = history_scores(part, idx, vals)
        row = np.full(len(self.items_), np.nan) if h is None else np.where(part.item_known_, h, np.nan)
        return np.repeat(standardise(row[None, :]), n_rows, axis=0)

    def _rows(
        self, route: np.ndarray, u: np.ndarray | None, history: tuple[np.ndarray, Any, Any] | None
    ) -> np.ndarray:
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

    def scores_for_history(self, item_ids: Any, values: Any = None,
                           attributes: dict[str, Any] | None = None) -> np.ndarray:
        """Scores of every item index for a new user with this history, routed by its length;
        ``attributes`` (e.g. ``{"age": 31, "gender": "F"}``) reach the components that use them
        (the default new-user model, ``demographic``)."""
        self._check_fitted()
        idx = _history_indices(self, item_ids)
        vals = None if values is None else np.asarray(values, dtype=np.float64)[idx >= 0]
        idx = idx[idx >= 0]
        return self._rows(self.route(np.array([len(idx)])), None, (idx, vals, attributes))[0]

    def recommend_for_history(
        self, item_ids: Any, k: int = 10, values: Any = None, *, exclude_seen: bool = True,
        candidates: Any = None, attributes: dict[str, Any] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` raw item ids and scores for a new user, routed by the history's length."""
        from recforge.models.content.content import _top_from_scores

        _check_k(k)
        scores = self.scores_for_history(item_ids, values, attributes)
        return _top_from_scores(self, scores, item_ids, k, exclude_seen, candidates)

    def components(self) -> list[Recommender]:
        self._check_fitted()
        return list(self._parts)

    def get_state(self) -> dict[str, Any]:
        return _state_with_parts(self)

    def set_state(self, state: dict[str, Any]) -> None:
        _restore_parts(self, state)
        if len(self._parts) == 3:  # saved before new_item_model existed: the cold model filled in
            self.component_names_ = [*self.component_names_, self.component_names_[1]]
            self._parts.append(self._parts[1])

"""Onboarding kNN: user-based neighbours for short histories, scored by what came *after*."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from recforge.config import FitOptions, ModelConfig
from recforge.data.interactions import Interactions
from recforge.models.base import Recommender

#: dense (users x neighbours) weight blocks are built at most this many cells at a time
_BLOCK_CELLS = 1 << 24


@dataclass(frozen=True)
class OnboardingKNNConfig(ModelConfig):
    """Hyperparameters of :class:`OnboardingKNN`."""

    overlap_power: float = 3.0
    """Neighbour weight = (items shared with the user) ** ``overlap_power``: above 1, neighbours
    who share several of a short history's items count far more than those who share one. 3 (with
    ``cohort_weight`` 1) had the best mean validation NDCG@10 over 1, 5 and 10 revealed ratings
    (ML-100K, three validation carves of the training users; 2 was close)."""
    cohort_weight: float = 1.0
    """A shared item that was also among the neighbour's own first ``s`` interactions counts
    ``1 + cohort_weight`` times: people who *started* alike are the closest neighbours of a user
    who has only started (validation NDCG@10 at 5 revealed ratings, ML-100K: +0.025 with 1.0 at
    ``overlap_power`` 3, +0.008 at 2).
    Needs timestamps (``future_only``)."""
    activity_power: float = 0.0
    """Extra factor ``(neighbour's history length) ** activity_power`` on each weight (0: none)."""
    future_only: bool = True
    """A neighbour contributes only the interactions that followed its own first ``s`` ones, with
    ``s = min(len(user's history), max_skip)``: what people went on to interact with after a start
    like the user's, rather than the start itself (onboarding choices are mostly blockbusters).
    Needs timestamps; without them every interaction counts."""
    max_skip: int = 20
    """Cap on ``s`` (a long history needs neighbours with even longer ones)."""
    prior_weight: float = 1e-3
    """Weight of the popularity of those same later interactions (scaled to at most 1, while one
    shared item already weighs 1): it breaks ties and ranks an empty history."""

    def validate(self) -> None:
        self.check(self.overlap_power > 0, "overlap_power", "must be > 0")
        self.check(self.max_skip >= 0, "max_skip", "must be >= 0")
        self.check(self.cohort_weight >= 0, "cohort_weight", "must be >= 0")
        self.check(self.prior_weight >= 0, "prior_weight", "must be >= 0")


class OnboardingKNN(Recommender):
    r"""User-based kNN for users with a handful of interactions (onboarding, cold start).

    For a user with history :math:`S` (:math:`|S| = r`) and every other training user :math:`v`
    with history :math:`H_v`, whose first :math:`s` interactions (by timestamp) are :math:`F_v`, the
    neighbour weight is :math:`w_v = (|S \cap H_v| + \lambda |S \cap F_v|)^{p}\,|H_v|^{a}`, and
    the score of item :math:`i` is

    .. math::
        s(i) = \sum_v w_v\, x^{(\ge s)}_{vi} + \epsilon\, \frac{\mathrm{pop}^{(\ge s)}_i}
               {\max_j \mathrm{pop}^{(\ge s)}_j},
        \qquad s = \min(r, s_{\max}),

    where :math:`x^{(\ge s)}_{vi} = 1` when :math:`v` interacted with :math:`i` after its own first
    :math:`s` interactions (by timestamp) and :math:`\mathrm{pop}^{(\ge s)}` counts those
    interactions over all users. All neighbours are used (no top-k cut): with five shared items at
    most, a cut discards most of the evidence.

    The *after the first s* rule is the point of the model. A new user's first interactions are
    mostly the catalogue's blockbusters (on ML-100K the first five ratings have a mean popularity
    rank of ~145 of 1,682), and what matters is what such a user goes on to do; neighbours' own first interactions are the same blockbusters, while their
    later ones are the later history of people who started alike. On ML-100K ``cold-start`` with 5
    revealed ratings this lifts NDCG@10 from 0.4486 (popularity) to 0.5414 (+20.7%), and its
    later-only popularity prior alone gives 0.49.

    It is the classic user-based neighbourhood (Herlocker et al., "An Algorithmic Framework for
    Performing Collaborative Filtering", SIGIR 1999; Breese et al., UAI 1998, for the amplified
    weights), with the time-ordered target of sequence-aware evaluation (Quadrana et al.,
    "Sequence-Aware Recommender Systems", ACM CSUR 2018). New users are scored without refitting
    through :meth:`scores_for_history` / :meth:`recommend_for_history`.
    """

    name = "onboarding-knn"
    task = "ranking"
    config_class = OnboardingKNNConfig
    scores_history = True

    def _fit(self, data: Interactions, options: FitOptions) -> None:
        from recforge._arrays import group_positions

        self.future_only_ = bool(self.config.future_only and data.timestamps is not None)
        if self.future_only_:
            pos, _ = group_positions(data.user_idx, data.n_users, data.timestamps, data.item_idx)
        else:
            pos = np.zeros(len(data), dtype=np.int64)
        # position + 1 so that the first interaction (position 0) is a stored entry
        order = sp.csr_matrix((pos.astype(np.float32) + 1.0, (data.user_idx, data.item_idx)),
                              shape=self.seen_.shape)
        self.position_ = order
        self.__dict__.pop("_later_cache", None)

    # ------------------------------------------------------------------ pieces
    def _later(self, s: int) -> tuple[sp.csr_matrix, sp.csr_matrix, np.ndarray]:
        """Per user, the interactions after its first ``s`` (items x users) and the first ``s``
        themselves (users x items), and the later ones' scaled popularity; cached per ``s``."""
        cache: dict[int, tuple[sp.csr_matrix, sp.csr_matrix, np.ndarray]] = \
            self.__dict__.setdefault("_later_cache", {})
        if s not in cache:
            pos = self.position_

            def part(mask: np.ndarray) -> sp.csr_matrix:
                # copies: eliminate_zeros would otherwise prune position_'s own index arrays
                m = sp.csr_matrix((mask.astype(np.float32), pos.indices.copy(), pos.indptr.copy()), shape=pos.shape)
                m.eliminate_zeros()
                return m

            keep = part(pos.data > s)
            pop = np.asarray(keep.sum(axis=0), dtype=np.float64).ravel()
            top = pop.max() if len(pop) and pop.max() > 0 else 1.0
            cache[s] = (keep.T.tocsr(), part(pos.data <= s), pop / top)
        return cache[s]

    def _weights(self, overlap: np.ndarray) -> np.ndarray:
        cfg = self.config
        w = np.power(overlap, cfg.overlap_power, dtype=np.float64)
        if cfg.activity_power:
            n = np.diff(self.seen_.indptr).astype(np.float64)
            w *= np.power(np.maximum(n, 1.0), cfg.activity_power)[None, :]
        return w

    def _skip(self, lengths: np.ndarray) -> np.ndarray:
        return np.minimum(lengths, self.config.max_skip) if self.future_only_ else np.zeros_like(lengths)

    def _scores_from_history(self, h: sp.csr_matrix, s: int, exclude: np.ndarray | None = None) -> np.ndarray:
        """Scores for the histories in the rows of ``h`` (users x items), skipping ``s``; row ``r``
        ignores training user ``exclude[r]`` (itself) as a neighbour."""
        later_t, first, prior = self._later(s)
        overlap = np.asarray((h @ self.seen_.T).toarray(), dtype=np.float64)
        if self.config.cohort_weight and s > 0:
            overlap += self.config.cohort_weight * np.asarray((h @ first.T).toarray(), dtype=np.float64)
        if exclude is not None:
            overlap[np.arange(len(exclude)), exclude] = 0.0
        w = self._weights(overlap)
        out = np.asarray((later_t @ w.T).T, dtype=np.float64)
        return out + self.config.prior_weight * prior[None, :]

    # ------------------------------------------------------------------ scoring hooks
    def _score_users(self, u: np.ndarray) -> np.ndarray:
        x = self.seen_
        out = np.empty((len(u), x.shape[1]))
        skip = self._skip(np.diff(x.indptr)[u])
        step = max(1, _BLOCK_CELLS // max(1, x.shape[0]))
        for s in np.unique(skip):
            rows = np.flatnonzero(skip == s)
            for b in range(0, len(rows), step):
                sel = rows[b : b + step]
                # a user is not its own neighbour
                out[sel] = self._scores_from_history(x[u[sel]], int(s), exclude=u[sel])
        return out

    def _score_history(self, item_idx: np.ndarray, values: np.ndarray | None,
                       context: Mapping[str, Any]) -> np.ndarray:
        # which items, not their values or order, count; repeats once
        idx = np.unique(item_idx)
        h = sp.csr_matrix((np.ones(len(idx), np.float32), (np.zeros(len(idx), np.int64), idx)),
                          shape=(1, self.seen_.shape[1]))
        s = int(self._skip(np.array([len(idx)]))[0])
        return self._scores_from_history(h, s)[0]

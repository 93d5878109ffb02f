"""What every latent-factor model shares: factor scoring, cosine neighbours, thread control, RNG."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import numba
import numpy as np
from numba import njit

from recforge.config import FitOptions, StopTraining
from recforge.errors import ConfigError
from recforge.models.base import Recommender
from recforge.topk import topk_rows

__all__ = [
    "BiasedFactorRecommender",
    "FactorRecommender",
    "chunk_bounds",
    "end_of_epoch",
    "kernel_threads",
    "seed_sequence",
]


# Below this many multiply-adds per parallel region a kernel runs on one thread: on a shared
# machine each parallel region can wait a scheduler time slice for a busy core (measured ~6 ms per
# region with 2 threads under load, against ~0.5 ms of work for an ML-100K NMF sweep).
PARALLEL_MIN_WORK = 1 << 23


@contextlib.contextmanager
def kernel_threads(options: FitOptions, work: float | None = None) -> Iterator[int]:
    """Run the block with ``options.threads`` numba threads (all cores when None), BLAS on one.

    ``work`` (multiply-adds per parallel region) below :data:`PARALLEL_MIN_WORK` drops to one
    thread. BLAS only forms small Gram matrices here; its own thread pool spin-waits against the
    numba threads (a 1682 x 64 Gram took 30 ms with 2 OpenBLAS threads on a busy 2-core machine,
    0.8 ms with 1), so it is held to one thread. Restores the previous settings afterwards.
    """
    from threadpoolctl import threadpool_limits

    before = numba.get_num_threads()
    n = options.threads
    if n is None:
        n = numba.config.NUMBA_NUM_THREADS
    if n < 1:
        raise ConfigError(f"FitOptions.threads must be >= 1, got {n}")
    n = min(int(n), numba.config.NUMBA_NUM_THREADS)
    if work is not None and work < PARALLEL_MIN_WORK:
        n = 1
    numba.set_num_threads(n)
    try:
        with threadpool_limits(limits=1, user_api="blas"):
            yield n
    finally:
        numba.set_num_threads(before)


def chunk_bounds(indptr: np.ndarray, per_row: float, per_nnz: float, n_chunks: int) -> np.ndarray:
    """Boundaries splitting the rows of a CSR into ``<= n_chunks`` runs of about equal cost.

    Row ``r`` costs ``per_row + per_nnz * nnz(r)``. Parallel kernels loop over the chunks, so each
    chunk allocates its scratch once and a static schedule stays balanced on power-law rows.
    """
    n = len(indptr) - 1
    cost = np.cumsum(per_row + per_nnz * np.diff(indptr).astype(np.float64))
    if n == 0:
        return np.zeros(1, np.int64)
    targets = cost[-1] * np.arange(1, n_chunks) / n_chunks
    inner = np.searchsorted(cost, targets) + 1
    return np.unique(np.concatenate(([0], np.clip(inner, 0, n), [n]))).astype(np.int64)


def seed_sequence(options: FitOptions, salt: int) -> np.random.Generator:
    """The fit's random generator: a pure function of ``options.seed`` and a per-model salt."""
    seed = 0 if options.seed is None else int(options.seed)
    return np.random.default_rng([seed, salt])


def end_of_epoch(model: Recommender, options: FitOptions, epoch: int, publish: Callable[[], None]) -> bool:
    """Run ``options.epoch_callback`` after epoch ``epoch`` (1-based); True when it asks to stop.

    ``publish`` first sets the model's learned attributes to the state being trained, so the
    callback can score the model. Fit loops call this between compiled epochs, and only when a
    callback is set (``if options.epoch_callback is not None and end_of_epoch(...)``): without
    one a fit does exactly what it did before. :class:`~recforge.config.StopTraining` stops the
    fit; any other exception propagates out of ``fit``.
    """
    callback = options.epoch_callback
    if callback is None:
        return False
    publish()
    try:
        callback(epoch, model)
    except StopTraining:
        return True
    return False


class FactorRecommender(Recommender):
    """A model that scores ``score(u, i) = offset(u, i) + <user_vector(u), item_vector(i)>``.

    Subclasses store ``user_factors_`` and ``item_factors_`` (index order) and may add biases by
    overriding :meth:`_offsets` / :meth:`_item_offsets`, or replace the user vectors (SVD++) by
    overriding :meth:`_user_vectors`.
    """

    # ------------------------------------------------------------------ scoring
    def _user_vectors(self, u: np.ndarray | None = None) -> np.ndarray:
        vecs = self.user_factors_  # type: ignore[attr-defined]
        return vecs if u is None else vecs[u]

    def _item_vectors(self) -> np.ndarray:
        return self.item_factors_  # type: ignore[attr-defined]

    def _user_offsets(self, u: np.ndarray) -> np.ndarray | float:
        return 0.0

    def _item_offsets(self) -> np.ndarray | float:
        return 0.0

    def _score_pairs(self, u: np.ndarray, i: np.ndarray) -> np.ndarray:
        pu = self._user_vectors(u).astype(np.float64, copy=False)
        qi = self._item_vectors()[i].astype(np.float64, copy=False)
        io = self._item_offsets()
        out = np.einsum("ij,ij->i", pu, qi) + self._user_offsets(u)
        if not np.isscalar(io):
            out = out + io[i]  # type: ignore[index]
        else:
            out = out + io
        return out

    def _score_users(self, u: np.ndarray) -> np.ndarray:
        scores = self._user_vectors(u) @ self._item_vectors().T
        uo = self._user_offsets(u)
        if not np.isscalar(uo):
            scores += np.asarray(uo, dtype=scores.dtype)[:, None]
        else:
            scores += uo
        scores += self._item_offsets()
        return scores

    # ------------------------------------------------------------------ embeddings and neighbours
    def embeddings(self) -> tuple[np.ndarray, np.ndarray]:
        """``(user_vectors, item_vectors)`` in index order (the latent factors, without biases)."""
        self._check_fitted()
        return np.asarray(self._user_vectors()), np.asarray(self._item_vectors())

    def similar_items(self, item_id: Any, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` items whose factor vectors have the largest cosine with ``item_id``'s.

        Args:
            item_id: One raw item id (1-D results) or an array of them (2-D results).
            k: How many neighbours (the item itself is left out).

        Returns:
            ``(item_ids, cosines)``, best first; an unknown item gives a row of ``-1`` (``""`` for
            string ids) and NaN.
        """
        self._check_fitted()
        return self._similar(item_id, k, self.items_, self._item_vectors(), self.item_known_)

    def similar_users(self, user_id: Any, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` users whose factor vectors have the largest cosine with ``user_id``'s.

        Same conventions as :meth:`similar_items`, over users.
        """
        self._check_fitted()
        return self._similar(user_id, k, self.users_, self._user_vectors(), self.user_known_)

    def _similar(
        self, ids: Any, k: int, vocab: Any, vecs: np.ndarray, known: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k <= 0:
            raise ConfigError(f"k must be a positive integer, got {k!r}")
        single = np.ndim(ids) == 0
        raw = np.atleast_1d(np.asarray(ids, dtype=object if single else None))
        q = vocab.index(raw) if len(raw) else np.empty(0, np.int64)
        ok = q >= 0
        ok[ok] = known[q[ok]]
        vecs = np.asarray(vecs, dtype=np.float64)
        norms = np.linalg.norm(vecs, axis=1)
        norms[norms == 0] = 1.0
        unit = vecs / norms[:, None]
        n = len(unit)
        kk = min(k, max(n - 1, 0))
        out_idx = np.full((len(q), k), -1, dtype=np.int64)
        out_sc = np.full((len(q), k), np.nan)
        rows = np.flatnonzero(ok)
        step = max(1, 2**22 // max(n, 1))
        for s in range(0, len(rows), step):
            r = rows[s : s + step]
            sims = unit[q[r]] @ unit.T
            sims[:, ~known] = -np.inf
            sims[np.arange(len(r)), q[r]] = -np.inf
            idx, sc = topk_rows(sims, kk)
            bad = ~np.isfinite(sc)
            idx[bad] = -1
            sc = np.where(bad, np.nan, sc)
            out_idx[r, :kk] = idx
            out_sc[r, :kk] = sc
        ids_out = self._ids_with_padding_for(vocab, out_idx)
        if single:
            return ids_out[0], out_sc[0]
        return ids_out, out_sc

    @staticmethod
    def _ids_with_padding_for(vocab: Any, idx: np.ndarray) -> np.ndarray:
        ids = vocab.ids
        pad: Any = "" if ids.dtype.kind == "U" else -1
        if len(ids) == 0:
            return np.full(idx.shape, pad)
        return np.where(idx >= 0, ids[np.clip(idx, 0, len(ids) - 1)], pad)


class BiasedFactorRecommender(FactorRecommender):
    """Scores ``intercept_ + user_bias_[u] + item_bias_[i] + <user vector, item vector>``."""

    def _user_offsets(self, u: np.ndarray) -> np.ndarray | float:
        return self.intercept_ + self.user_bias_[u]  # type: ignore[attr-defined]

    def _item_offsets(self) -> np.ndarray | float:
        return self.item_bias_  # type: ignore[attr-defined]


# ---------------------------------------------------------------------- compiled RNG
# A counter-free splitmix64 stream per independent unit of work: results depend only on the seed and
# the unit's id, never on which thread ran it, so parallel kernels stay deterministic.
@njit(cache=True, inline="always")
def splitmix_next(state: np.ndarray, slot: int) -> np.uint64:
    z = state[slot] + np.uint64(0x9E3779B97F4A7C15)
    state[slot] = z
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@njit(cache=True, inline="always")
def rand_below(state: np.ndarray, slot: int, n: int) -> int:
    """A uniform integer in ``[0, n)`` (Lemire's multiply-shift on the high 32 bits; n < 2**32)."""
    x = splitmix_next(state, slot) >> np.uint64(32)
    return np.int64((x * np.uint64(n)) >> np.uint64(32))

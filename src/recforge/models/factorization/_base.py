"""What every latent-factor model shares: factor scoring, embeddings, row chunks and the fit's RNG."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from recforge.config import FitOptions
from recforge.models.base import Recommender

__all__ = [
    "BiasedFactorRecommender",
    "FactorRecommender",
    "chunk_bounds",
    "init_factors",
    "seed_sequence",
]


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


def init_factors(rng: np.random.Generator, n_users: int, n_items: int, size: int, std: float,
                 item_known: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Float32 user and item factors drawn from ``N(0, std^2)``, users first (the draw order keeps
    every seed's factors as they were); items without training data start at zero, so that they
    score 0 rather than noise."""
    users = rng.normal(0.0, std, (n_users, size)).astype(np.float32)
    items = rng.normal(0.0, std, (n_items, size)).astype(np.float32)
    items[~item_known] = 0.0
    return users, items


class FactorRecommender(Recommender):
    """A model that scores ``score(u, i) = offset(u, i) + <user_vector(u), item_vector(i)>``.

    Subclasses store ``user_factors_`` and ``item_factors_`` (index order) and may add biases by
    overriding :meth:`_user_offsets` / :meth:`_item_offsets`, or replace the user vectors (SVD++) by
    overriding :meth:`_user_vectors`. Every factor model has embeddings, so the base
    ``similar_items``/``similar_users`` work on the cosine of its factors.
    """

    has_embeddings: ClassVar[bool] = True

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

    # ------------------------------------------------------------------ embeddings
    def embeddings(self) -> tuple[np.ndarray, np.ndarray]:
        """``(user_vectors, item_vectors)`` in index order (the latent factors, without biases).

        The base :meth:`~recforge.models.base.Recommender.similar_items` and ``similar_users``
        rank neighbours by the cosine of these vectors.
        """
        self.check_is_fitted()
        return np.asarray(self._user_vectors()), np.asarray(self._item_vectors())


class BiasedFactorRecommender(FactorRecommender):
    """Scores ``intercept_ + user_bias_[u] + item_bias_[i] + <user vector, item vector>``."""

    def _user_offsets(self, u: np.ndarray) -> np.ndarray | float:
        return self.intercept_ + self.user_bias_[u]  # type: ignore[attr-defined]

    def _item_offsets(self) -> np.ndarray | float:
        return self.item_bias_  # type: ignore[attr-defined]

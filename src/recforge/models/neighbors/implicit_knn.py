"""Neighbourhood top-N recommenders for implicit feedback (item-based and user-based)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np
import scipy.sparse as sp

from recforge.config import FitOptions, ModelConfig
from recforge.data.interactions import Interactions
from recforge.errors import ConfigError
from recforge.models._threads import kernel_threads
from recforge.models.base import Recommender
from recforge.models.neighbors import _similarity_kernels as K
from recforge.models.neighbors._item_item import ItemItemScores, TrainingRows

Weighting = Literal["none", "tfidf", "bm25"]


@dataclass(frozen=True)
class ImplicitKNNConfig(ModelConfig):
    """Hyperparameters of :class:`ItemKNNImplicit` and :class:`UserKNNImplicit`."""

    ALIASES: ClassVar[dict[str, str]] = {"k": "n_neighbors"}

    n_neighbors: int = 100
    """Neighbours kept per entity (the entity itself is never its own neighbour)."""
    weighting: Weighting = "none"
    """How interaction values are weighted before comparing, as in the ``implicit`` library:
    ``none`` (cosine), ``tfidf`` (cosine of ``sqrt(x) * idf``) or ``bm25`` (dot product of BM25
    weights, not normalised)."""
    bm25_k1: float = 1.2
    """BM25 term-saturation constant ``K1`` (``bm25`` only)."""
    bm25_b: float = 0.75
    """BM25 length-normalisation strength ``B`` in [0, 1] (``bm25`` only)."""
    binarize: bool = False
    """Treat every interaction as 1 (ignore counts or ratings in the values)."""

    def validate(self) -> None:
        self.check(self.n_neighbors >= 1, "n_neighbors", "must be >= 1")
        self.check(self.bm25_k1 > 0, "bm25_k1", "must be > 0")
        self.check(0.0 <= self.bm25_b <= 1.0, "bm25_b", "must be in [0, 1]")


@dataclass(frozen=True)
class ItemKNNImplicitConfig(ImplicitKNNConfig):
    """Hyperparameters of :class:`ItemKNNImplicit`."""

    neighbors_of: Literal["target", "history"] = "target"
    """Whose neighbours count: ``target`` sums the similarities of the scored item's
    ``n_neighbors`` nearest items that the user has (LensKit-style, stronger on ML-100K);
    ``history`` sums, over the user's items, the similarity to the scored item when it is among
    *their* ``n_neighbors`` nearest
    (the ``implicit`` library's ItemItemRecommender)."""


def weight_rows(mat: sp.csr_matrix, weighting: str, k1: float = 1.2, b: float = 0.75) -> sp.csr_matrix:
    """Weight an entities x features matrix as ``implicit`` does before its item-item products.

    ``none``: L2-normalise each row. ``tfidf``: ``sqrt(x) * idf_f`` then L2-normalise, with
    ``idf_f = log(N) - log(1 + df_f)``, ``N`` the number of rows and ``df_f`` the rows feature ``f``
    occurs in. ``bm25``: ``x (k1 + 1) / (k1 (1 - b + b len_r / avg_len) + x) * idf_f`` (Robertson
    et al., "Okapi at TREC-3", 1994), where ``len_r`` is the row sum.
    """
    m = sp.csr_matrix(mat, dtype=np.float64, copy=True)
    n_rows = m.shape[0]
    rows = np.repeat(np.arange(n_rows), np.diff(m.indptr))
    if weighting in ("tfidf", "bm25"):
        df = np.bincount(m.indices, minlength=m.shape[1])
        idf = np.log(max(n_rows, 1)) - np.log1p(df)
        if weighting == "tfidf":
            m.data = np.sqrt(m.data) * idf[m.indices]
        else:
            length = np.asarray(m.sum(axis=1)).ravel()
            avg = length.mean() if n_rows and length.mean() > 0 else 1.0
            norm = (1.0 - b) + b * length / avg
            m.data = m.data * (k1 + 1.0) / (k1 * norm[rows] + m.data) * idf[m.indices]
            return m
    norms = np.sqrt(np.bincount(rows, weights=m.data**2, minlength=n_rows))
    m.data = m.data / np.where(norms > 0, norms, 1.0)[rows]
    return m


_WEIGHTINGS = {"cosine": "none", "tfidf": "tfidf", "bm25": "bm25"}


def item_neighbors(matrix: sp.spmatrix, n_neighbors: int, *, similarity: str = "cosine",
                   threads: int | None = None) -> sp.csr_matrix:
    """The ``n_neighbors`` most similar items of every item, from a users x items matrix.

    The similarity kernel of :class:`ItemKNNImplicit` (so serving's item-to-item retrieval and the
    model agree): with ``similarity="cosine"``, ``s_ij`` is the cosine of columns ``i`` and ``j``
    of ``matrix``; ``"tfidf"`` and ``"bm25"`` weight the columns first (see :func:`weight_rows`).

    Args:
        matrix: Users x items interaction values (any scipy sparse matrix; values are used as
            given, so binarise first for plain co-occurrence cosine).
        n_neighbors: Neighbours kept per item (>= 1).
        similarity: ``"cosine"``, ``"tfidf"`` or ``"bm25"``.
        threads: Numba threads for the kernel (None: all cores).

    Returns:
        An items x items float32 CSR matrix; row ``i`` holds the ``n_neighbors`` items most similar
        to ``i`` with their similarity, only positive ones, never ``i`` itself. Each row's entries
        are ordered by decreasing similarity with ties to the lower item index (not by column:
        ``has_sorted_indices`` is False).

    Raises:
        ConfigError: ``n_neighbors`` < 1 or an unknown ``similarity``.
    """
    if isinstance(n_neighbors, bool) or not isinstance(n_neighbors, (int, np.integer)) or n_neighbors < 1:
        raise ConfigError(f"n_neighbors must be a positive integer, got {n_neighbors!r}")
    if similarity not in _WEIGHTINGS:
        raise ConfigError(f"unknown similarity {similarity!r}; choose from {sorted(_WEIGHTINGS)}")
    by_item = sp.csr_matrix(matrix, dtype=np.float64).T.tocsr()
    weighted = weight_rows(by_item, _WEIGHTINGS[similarity])
    with kernel_threads(threads, limit_blas=False):
        return K.similarity_matrix(weighted, K.DOT, width=int(n_neighbors))


class _ImplicitKNN(TrainingRows, Recommender):
    task = "ranking"
    config_class = ImplicitKNNConfig
    user_based = False

    def _fit(self, data: Interactions, options: FitOptions) -> None:
        cfg = self.config
        x = data.csr().astype(np.float64)
        if cfg.binarize:
            x.data[:] = 1.0
        self._keep_values(x)
        entities = x if self.user_based else x.T.tocsr()
        del x  # each copy is dropped once the next exists: at 20M rows every one is ~200 MB
        weighted = weight_rows(entities, cfg.weighting, cfg.bm25_k1, cfg.bm25_b)
        del entities
        with kernel_threads(options.threads, limit_blas=False):
            self.similarity_ = K.similarity_matrix(weighted, K.DOT, width=cfg.n_neighbors)

    def _neighbor_matrix(self, side: Literal["user", "item"]) -> sp.csr_matrix | None:
        return self.similarity_ if (side == "user") == self.user_based else None


class ItemKNNImplicit(ItemItemScores, _ImplicitKNN):
    """Item-based top-N recommendation (Deshpande & Karypis, "Item-based top-N recommendation
    algorithms", ACM TOIS 2004), with the weighting schemes of the ``implicit`` library.

    Each item ``i`` keeps its ``n_neighbors`` (``k``) most similar other items ``N_k(i)`` under
    ``s_{ij} = w_i . w_j`` (the columns of the user x item matrix after ``weighting``; with
    ``none`` this is the cosine). A user's score for item ``i`` sums the similarities to the items
    in their history, by default over the scored item's neighbours (``neighbors_of="target"``):

    .. math::
        \\text{score}(u, i) = \\sum_{j \\in I_u \\cap N_k(i)} x_{uj}\\, s_{ij}

    or, with ``neighbors_of="history"``, ``sum_{j in I_u, i in N_k(j)} x_uj s_ji``, which is
    ``implicit``'s CosineRecommender / TFIDFRecommender / BM25Recommender (there an item also
    counts as its own neighbour and takes one of the ``K`` slots; here it never does).
    """

    name = "item-knn-implicit"
    config_class = ItemKNNImplicitConfig
    user_based = False

    def _item_matrix(self) -> sp.csr_matrix:
        """Item x item matrix ``M`` with scores ``x_u M`` (the similarity or its transpose)."""
        cached = self.__dict__.get("_scorer")
        if cached is not None and cached[0] is self.similarity_:
            return cached[1]
        sim = self.similarity_
        mat = sim.T.tocsr() if self.config.neighbors_of == "target" else sim
        self._scorer = (sim, mat)
        return mat


class UserKNNImplicit(_ImplicitKNN):
    """User-based top-N recommendation (Sarwar et al., "Analysis of recommendation algorithms for
    e-commerce", EC 2000) on weighted implicit feedback.

    Each user ``u`` keeps the ``n_neighbors`` (``k``) most similar other users ``N_k(u)`` under
    ``s_{uv} = w_u . w_v`` (rows of the weighted user x item matrix); the score of item ``i`` is

    .. math::
        \\text{score}(u, i) = \\sum_{v \\in N_k(u)} s_{uv}\\, x_{vi}
    """

    name = "user-knn-implicit"
    user_based = True

    def _score_users(self, u: np.ndarray) -> np.ndarray:
        return K.sparse_rows_dot(self.similarity_, u, self._user_rows())

    def _sparse_product(self) -> tuple[sp.csr_matrix, sp.csr_matrix]:
        return self.similarity_, self._user_rows()

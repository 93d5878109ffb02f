"""What the graph-filter rankers share: the normalised interaction matrix, the item-item linear filter
applied through it, the ideal low-pass filter from a truncated SVD, and user scoring by blocks.

Notation (Shen et al., CIKM 2021): ``R`` is the binary users x items matrix, ``D_U`` and ``D_I`` its
user and item degrees, ``R~ = D_U^-a R D_I^-b`` the normalised matrix (``a = b = 1/2``: the symmetric
normalisation of GF-CF and BSPM) and ``P~ = R~^T R~`` the normalised item-item graph.

Memory: ``P~`` is never formed for the SVD-based models. ``y P~`` for a block of dense score rows
``y`` is computed as ``(y R~^T) R~`` with two sparse products, which costs ``2 nnz(R)`` multiply-adds
per row instead of ``nnz(P~)`` (Gowalla: 1.6M against 42M) and keeps only ``R~`` (one float32 and
one int32 per interaction). Score rows are dense, ``n_items`` floats each, and are worked on in user
blocks bounded by the base class's score budget.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from recforge.data.interactions import Interactions
from recforge.models.base import Recommender

__all__ = [
    "FilterScores",
    "SpectralGraphModel",
    "apply_gram",
    "ideal_filter",
    "normalized",
    "top_right_singular_vectors",
]


def degrees(x: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    """User and item degrees of a binary users x items matrix (float64)."""
    d_user = np.diff(x.indptr).astype(np.float64)
    d_item = np.bincount(x.indices, minlength=x.shape[1]).astype(np.float64)
    return d_user, d_item


def safe_power(d: np.ndarray, exponent: float) -> np.ndarray:
    """``d ** exponent`` with 0 where ``d == 0`` (an item nobody touched stays out of the graph)."""
    out = np.zeros_like(d, dtype=np.float64)
    pos = d > 0
    out[pos] = d[pos] ** exponent
    return out


def binary(x: sp.spmatrix) -> sp.csr_matrix:
    """A float32 0/1 copy of ``x`` (the graph's edges)."""
    b = sp.csr_matrix(x, dtype=np.float32, copy=True)
    b.sum_duplicates()
    b.data[:] = 1.0
    b.eliminate_zeros()
    b.sort_indices()
    return b


def normalized(x: sp.csr_matrix, user_exponent: float = 0.5, item_exponent: float = 0.5) -> sp.csr_matrix:
    """``R~ = D_U^-a R D_I^-b`` of the binary matrix of ``x`` (float32 CSR, users x items)."""
    r = binary(x)
    d_user, d_item = degrees(r)
    rows = np.repeat(np.arange(r.shape[0]), np.diff(r.indptr))
    scale = safe_power(d_user, -user_exponent)[rows] * safe_power(d_item, -item_exponent)[r.indices]
    r.data = scale.astype(np.float32)
    return r


def apply_gram(norm: sp.csr_matrix, norm_t: sp.csr_matrix, yt: np.ndarray) -> np.ndarray:
    """``(y R~^T R~)^T`` for ``yt = y^T`` of shape ``(n_items, b)``: two sparse products, no ``P~``.

    Works on the transposed block so that both products read and write C-ordered dense arrays.
    """
    return np.asarray(norm_t @ np.asarray(norm @ yt))


def top_right_singular_vectors(norm: sp.csr_matrix, k: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` largest singular values of ``R~`` and their right singular vectors (``k x n_items``).

    ARPACK (``scipy.sparse.linalg.svds``) on the sparse matrix, started from a seeded vector so that
    a fit repeats; for a matrix with ``min(shape) <= k + 1`` (tiny data) a dense SVD. Rows are sorted
    by singular value, largest first, and each row's sign is fixed (largest entry positive) so that
    two fits agree exactly.
    """
    from scipy.sparse.linalg import svds

    m = sp.csr_matrix(norm, dtype=np.float64)
    k = int(min(k, min(m.shape)))
    if min(m.shape) <= k + 1 or min(m.shape) <= 64:
        _, s, vt = np.linalg.svd(m.toarray(), full_matrices=False)
        s, vt = s[:k], vt[:k]
    else:
        v0 = np.random.default_rng(seed).standard_normal(min(m.shape))
        _, s, vt = svds(m, k=k, v0=v0, return_singular_vectors="vh")
        order = np.argsort(-s, kind="stable")
        s, vt = s[order], vt[order]
    flip = np.sign(vt[np.arange(len(vt)), np.argmax(np.abs(vt), axis=1)])
    flip[flip == 0] = 1.0
    return s, np.ascontiguousarray(vt * flip[:, None], dtype=np.float32)


def ideal_filter(components: np.ndarray, item_degree: np.ndarray, rows: sp.csr_matrix) -> np.ndarray:
    """``(x D_I^-1/2 V V^T D_I^1/2)^T`` for sparse rows ``x``: GF-CF's ideal low-pass filter, transposed.

    ``V`` (``components``, ``k x n_items``) holds the top right singular vectors of ``R~``; the
    degree scaling maps the filtered signal back from the normalised graph to item space. The first
    product reads only the rows' non-zeros (``nnz x k``); the second is one dense ``n x k x b`` GEMM.
    """
    inv_sqrt = safe_power(item_degree, -0.5)
    z = np.asarray(sp.csr_matrix(rows, dtype=np.float32) @ (components * inv_sqrt[None, :].astype(np.float32)).T)
    sqrt = np.sqrt(item_degree).astype(np.float32)[:, None]
    return sqrt * (components.T @ np.ascontiguousarray(z.T, dtype=np.float32))


class FilterScores:
    """Mixin for a :class:`~recforge.models.base.Recommender` whose scores are a linear filter of the
    user's binary training row, ``s_u = F(r_u)``.

    Subclasses implement :meth:`_filter_block` on a transposed block of rows. An ad-hoc history is
    the same binary row, so a known user's own training items give exactly that user's scores
    (fold-in is exact: the filter does not depend on who is scored, only on the training graph).
    """

    scores_history: ClassVar[bool] = True
    seen_: sp.csr_matrix
    items_: Any

    def _filter_block(self, xt: np.ndarray, rows: sp.csr_matrix) -> np.ndarray:
        """Filtered scores, transposed: ``xt`` (the binary ``rows``, dense and transposed) and the
        result have shape ``(n_items, b)``."""
        raise NotImplementedError

    def _filter_rows(self, rows: sp.csr_matrix) -> np.ndarray:
        xt = np.ascontiguousarray(rows.T.toarray(), dtype=np.float32)
        return np.ascontiguousarray(self._filter_block(xt, rows).T, dtype=np.float64)

    def _score_users(self, u: np.ndarray) -> np.ndarray:
        return self._filter_rows(self.seen_[u])

    def _score_history(self, item_idx: np.ndarray, values: np.ndarray | None,
                       context: Mapping[str, Any]) -> np.ndarray:
        n = len(self.items_)
        h = sp.csr_matrix((np.ones(len(item_idx), np.float32), (np.zeros(len(item_idx), np.int64), item_idx)),
                          shape=(1, n))
        return self._filter_rows(binary(h))[0]



class SpectralGraphModel(FilterScores, Recommender):
    """Base of the models filtering over ``P~ = R~^T R~`` with GF-CF's ideal low-pass filter (GF-CF,
    BSPM). Learned state: ``norm_`` (``R~``, users x items CSR), ``item_degree_``, and the top
    singular values and right singular vectors of ``R~`` (``singular_values_``, ``components_``)."""

    norm_: sp.csr_matrix
    item_degree_: np.ndarray
    components_: np.ndarray

    def _fit_graph(self, data: Interactions, n_components: int, seed: int) -> None:
        self.norm_ = normalized(data.csr())
        _, self.item_degree_ = degrees(self.norm_)
        if n_components > 0:
            self.singular_values_, self.components_ = top_right_singular_vectors(self.norm_, n_components, seed)
        else:
            self.singular_values_ = np.zeros(0)
            self.components_ = np.zeros((0, data.n_items), np.float32)

    def _norm_t(self) -> sp.csr_matrix:
        """``R~^T`` as CSR, built once per fitted (or loaded) ``R~``."""
        cached = self.__dict__.get("_norm_t_cache")
        if cached is None or cached[0] is not self.norm_:
            cached = (self.norm_, self.norm_.T.tocsr())
            self._norm_t_cache = cached
        return cached[1]

    def _gram(self, yt: np.ndarray) -> np.ndarray:
        """``(y P~)^T`` for ``yt = y^T``."""
        return apply_gram(self.norm_, self._norm_t(), yt)

    def _ideal(self, rows: sp.csr_matrix, weight: float) -> np.ndarray:
        """``weight * (x P_I)^T`` for sparse rows ``x``; zeros without components or weight."""
        if len(self.components_) == 0 or weight == 0:
            return np.zeros((rows.shape[1], rows.shape[0]), np.float32)
        return np.float32(weight) * ideal_filter(self.components_, self.item_degree_, rows)

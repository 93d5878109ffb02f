"""EASE: the closed-form shallow autoencoder of Steck (2019)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
from scipy.linalg import lapack

from recforge.config import FitOptions, ModelConfig
from recforge.data.interactions import Interactions
from recforge.errors import ConfigError
from recforge.models.base import Recommender
from recforge.models.neighbors._blocked_spd import PackedSymmetric, packed_bytes
from recforge.models.neighbors._item_item import ItemItemScores

_FLOAT64_ITEMS = 10_000  # above this the Gram matrix is inverted in float32 to halve memory
# OpenBLAS's in-place dense Cholesky is verified up to 20k items (it segfaulted on Gowalla's 41k);
# above this the inverse is computed and kept as a block-packed triangle (_blocked_spd)
_DENSE_MAX_ITEMS = 20_000
_BLOCK = 2048  # block side of the packed triangle: BLAS-3 sized, 16 MB per block
_GB = 1e9
log = logging.getLogger("recforge.models.ease")


def memory_estimate(n_items: int) -> tuple[float, str]:
    """Peak bytes of EASE's solve and scores for ``n_items`` items, and the method that is used.

    Up to 10,000 items: a dense float64 Gram inverted in place (8 n^2) plus the float32 weights
    (4 n^2). Up to 20,000: the same in float32 (4 n^2, the weights are the inverse itself). Above:
    the block-packed lower triangle of the float32 inverse (about 2 n^2) plus one dense block column
    of the Gram while it is formed (``n x 2048``, twice).
    """
    n = int(n_items)
    if n <= _FLOAT64_ITEMS:
        return 12.0 * n * n, "dense float64 Cholesky inverse"
    if n <= _DENSE_MAX_ITEMS:
        return 4.0 * n * n + 8.0 * n * _BLOCK, "dense float32 Cholesky inverse"
    return float(packed_bytes(n, _BLOCK)) + 8.0 * n * _BLOCK, "block-packed float32 inverse (half of a dense one)"


@dataclass(frozen=True)
class EASEConfig(ModelConfig):
    """Hyperparameters of :class:`EASE`."""

    reg: float = 500.0
    """L2 penalty ``lambda`` on the item-item weights (added to the Gram matrix diagonal)."""
    max_memory: float = 8.0
    """Refuse to fit (one-line error stating the need) when the solve's estimated peak memory, in
    GB, exceeds this. EASE's weights are dense in ``n_items``: 1,682 items need 0.03 GB; 20,000 items
    1.9 GB; Gowalla's 40,981 items 4.0 GB (a block-packed float32 inverse). The estimate is logged
    (logger ``recforge.models.ease``, and printed with ``FitOptions(verbose=True)``) before fitting."""
    max_items: int | None = None
    """Optional guard: refuse to fit on more items than this (None: only ``max_memory`` applies)."""
    binarize: bool = True
    """Use 0/1 interactions (the paper's setting) instead of the interaction values."""

    def validate(self) -> None:
        self.check(self.reg > 0, "reg", "must be > 0 (the Gram matrix is singular without it)")
        self.check(self.max_memory > 0, "max_memory", "must be > 0 (GB)")
        self.check(self.max_items is None or self.max_items >= 1, "max_items", "must be >= 1 or None")


class EASE(ItemItemScores, Recommender):
    """Embarrassingly Shallow Autoencoder (Steck, "Embarrassingly Shallow Autoencoders for Sparse
    Data", WWW 2019).

    Learns an item-item weight matrix with a zero diagonal,

    .. math::
        \\min_B \\|X - XB\\|_F^2 + \\lambda \\|B\\|_F^2 \\quad \\text{s.t. } \\operatorname{diag}(B) = 0,

    whose closed form is ``B = I - P diag(1 / diag(P))`` with ``P = (X^T X + lambda I)^{-1}``
    (so ``B_ij = -P_ij / P_jj`` off the diagonal). A user's scores are ``x_u B``, for a training
    user and for an ad-hoc history alike; ``similar_items`` lists the largest weights ``B_ij`` of row ``i``.

    Memory (stated before fitting, see :func:`memory_estimate`; above ``max_memory`` GB the fit
    refuses): up to 20,000 items the weights are a dense float32 matrix from LAPACK's in-place
    Cholesky inverse (float64 up to 10,000 items). Above 20,000 items (Gowalla: 40,981) ``B`` is
    never formed: the symmetric ``P`` is inverted and kept as the block-packed lower triangle of
    2048 x 2048 float32 blocks (``_blocked_spd``: about half of a dense matrix, 3.4 GB on Gowalla),
    and scores are ``x_u B = x_u - (x_u P) / diag(P)``, which is the same product. That path costs
    ``n^3`` flops of BLAS-3 work (about 7e13 on Gowalla: tens of minutes on 2 cores) and has no
    ``similar_items``.
    """

    name = "ease"
    task = "ranking"
    config_class = EASEConfig

    def _fit(self, data: Interactions, options: FitOptions) -> None:
        cfg = self.config
        n = data.n_items
        if cfg.max_items is not None and n > cfg.max_items:
            raise ConfigError(f"EASE.max_items = {cfg.max_items}: the data has {n:,} items; raise max_items "
                              "or use the sparse 'rp3beta', 'slim' or 'item-knn-implicit' models")
        need, method = memory_estimate(n)
        msg = f"EASE: {n:,} items, {method}: needs about {need / _GB:.1f} GB (max_memory = {cfg.max_memory:g} GB)"
        log.info(msg)
        if options.verbose:
            print(msg, flush=True)
        if need > cfg.max_memory * _GB:
            raise ConfigError(f"{msg}; raise max_memory if the machine has it, or use the sparse 'rp3beta', "
                              "'slim' or 'item-knn-implicit' models")
        x = data.csr().astype(np.float32 if n > _FLOAT64_ITEMS else np.float64)
        if cfg.binarize:
            x.data[:] = 1.0
        if n > _DENSE_MAX_ITEMS:
            packed = PackedSymmetric.gram(x, _BLOCK, cfg.reg)
            packed.invert_spd()
            self.gram_inverse_ = packed.data
            self.inverse_diagonal_ = packed.diagonal()
            self.block_size_ = _BLOCK
            self._keep_values(x)
            return
        dtype = np.float64 if n <= _FLOAT64_ITEMS else np.float32
        gram = np.asarray((x.T @ x).toarray(), dtype=dtype)
        gram[np.diag_indices(n)] += cfg.reg
        p = _spd_inverse(gram)
        del gram
        diag = np.diag(p).copy()
        p /= -diag[None, :]
        p[np.diag_indices(n)] = 0.0
        self.weights_ = p if p.dtype == np.float32 else p.astype(np.float32)
        self._keep_values(x)

    def _packed(self) -> PackedSymmetric | None:
        data = self.__dict__.get("gram_inverse_")
        if data is None:
            return None
        cached = self.__dict__.get("_packed_cache")
        if cached is None or cached.data is not data:
            cached = PackedSymmetric(len(self.items_), int(self.block_size_), data)
            self._packed_cache = cached
        return cached

    def _packed_scores(self, rows: sp.csr_matrix) -> np.ndarray:
        packed = self._packed()
        assert packed is not None
        xp = packed.left_multiply(rows)
        xp /= -self.inverse_diagonal_[None, :]
        # x B = x - (x P) / diag(P): the zero diagonal of B is x_j - x_j P_jj / P_jj = 0 up to rounding
        xp += rows.toarray().astype(np.float32)
        return np.asarray(xp, dtype=np.float64)

    def _score_users(self, u: np.ndarray) -> np.ndarray:
        if self._packed() is not None:
            return self._packed_scores(self._user_rows()[u])
        return super()._score_users(u)

    def _sparse_product(self) -> tuple[sp.csr_matrix, sp.csr_matrix] | None:
        return None if self._packed() is not None else super()._sparse_product()

    def _score_history(self, item_idx: np.ndarray, values: np.ndarray | None,
                       context: Mapping[str, Any]) -> np.ndarray:
        if self._packed() is not None:
            return self._packed_scores(self._history_row(item_idx, values))[0]
        return super()._score_history(item_idx, values, context)

    def _item_matrix(self) -> np.ndarray:
        return self.weights_

    def _neighbor_matrix(self, side: Literal["user", "item"]) -> np.ndarray | None:
        if self._packed() is not None:
            return None
        return self.weights_ if side == "item" else None


def _spd_inverse(a: np.ndarray) -> np.ndarray:
    """Inverse of a symmetric positive definite C-ordered matrix, in place where LAPACK allows.

    Cholesky (``potrf``) then ``potri`` is about twice as fast as an LU inverse and needs no second
    ``n x n`` buffer; ``potri`` fills one triangle, mirrored here block by block (index arrays for
    the whole triangle would cost more memory than the matrix).
    """
    potrf, potri = lapack.get_lapack_funcs(("potrf", "potri"), (a,))
    # a C-ordered symmetric matrix is its own Fortran-ordered transpose, so pass the view
    c, info = potrf(a.T, lower=0, clean=0, overwrite_a=1)
    if info != 0:
        raise np.linalg.LinAlgError(f"EASE: the regularised Gram matrix is not positive definite ({info})")
    p, info = potri(c, lower=0, overwrite_c=1)
    if info != 0:
        raise np.linalg.LinAlgError(f"EASE: inverting the Gram matrix failed ({info})")
    n = p.shape[0]
    step = 1024
    for r0 in range(0, n, step):
        r1 = min(n, r0 + step)
        p[r0:r1, :r0] = p[:r0, r0:r1].T
        d = p[r0:r1, r0:r1]
        d[...] = np.triu(d) + np.triu(d, 1).T
    return p.T  # symmetric, so the C-ordered view is the same matrix

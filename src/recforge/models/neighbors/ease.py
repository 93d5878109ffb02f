"""EASE: the closed-form shallow autoencoder of Steck (2019)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.linalg import lapack

from recforge.config import FitOptions, ModelConfig
from recforge.data.interactions import Interactions
from recforge.errors import ConfigError
from recforge.models.base import Recommender
from recforge.models.neighbors._item_item import ItemItemScores

_FLOAT64_ITEMS = 10_000  # above this the Gram matrix is inverted in float32 to halve memory
# OpenBLAS's Cholesky (the LAPACK numpy and scipy ship) segfaults on a 41k x 41k matrix
# (Gowalla) and is verified up to 20k; stay well inside what was run rather than crash the process
_LAPACK_MAX_ITEMS = 30_000


@dataclass(frozen=True)
class EASEConfig(ModelConfig):
    """Hyperparameters of :class:`EASE`."""

    reg: float = 500.0
    """L2 penalty ``lambda`` on the item-item weights (added to the Gram matrix diagonal)."""
    max_items: int = 20_000
    """Refuse to fit on more items than this: EASE holds dense ``n_items x n_items`` matrices
    (``4 * n^2`` bytes for the weights, about twice that while inverting; 20k items need ~3.2 GB).
    At most 30,000: the bundled OpenBLAS Cholesky crashes on larger matrices (41k items)."""
    binarize: bool = True
    """Use 0/1 interactions (the paper's setting) instead of the interaction values."""

    def validate(self) -> None:
        self.check(self.reg > 0, "reg", "must be > 0 (the Gram matrix is singular without it)")
        self.check(self.max_items >= 1, "max_items", "must be >= 1")
        self.check(
            self.max_items <= _LAPACK_MAX_ITEMS, "max_items",
            f"must be <= {_LAPACK_MAX_ITEMS:,} (the dense inversion crashes OpenBLAS beyond that; for larger "
            "catalogues use 'rp3beta', 'slim' or 'item-knn-implicit')",
        )


class EASE(ItemItemScores, Recommender):
    """Embarrassingly Shallow Autoencoder (Steck, "Embarrassingly Shallow Autoencoders for Sparse
    Data", WWW 2019).

    Learns an item-item weight matrix with a zero diagonal,

    .. math::
        \\min_B \\|X - XB\\|_F^2 + \\lambda \\|B\\|_F^2 \\quad \\text{s.t. } \\operatorname{diag}(B) = 0,

    whose closed form is ``B = I - P diag(1 / diag(P))`` with ``P = (X^T X + lambda I)^{-1}``
    (so ``B_ij = -P_ij / P_jj`` off the diagonal). A user's scores are ``x_u B``, for a training
    user and for an ad-hoc history alike; ``similar_items`` lists the largest weights ``B_ij`` of row ``i``.

    The weights are dense: memory grows as ``n_items^2`` (1,682 items: 11 MB; 20k items: 1.6 GB
    in float32 plus the inversion's workspace), so fitting above ``max_items`` (at most 30,000) is
    refused with a pointer to the sparse alternatives (``rp3beta``, ``slim``, ``item-knn-implicit``;
    on Gowalla's 41k items ``rp3beta`` matches the published EASE figure). Above 10,000 items the
    inversion runs in float32 (a 20k-item inversion takes about 3 minutes on 2 cores).
    """

    name = "ease"
    task = "ranking"
    config_class = EASEConfig

    def _fit(self, data: Interactions, options: FitOptions) -> None:
        cfg = self.config
        n = data.n_items
        if n > cfg.max_items:
            gb = 4 * n * n / 1e9
            raise ConfigError(
                f"EASE.max_items = {cfg.max_items}: the data has {n} items, and EASE needs a dense "
                f"{n} x {n} matrix ({gb:.1f} GB in float32, about twice that while fitting); raise "
                "max_items if you have the memory, or use the sparse 'slim' or 'item-knn-implicit' models"
            )
        dtype = np.float64 if n <= _FLOAT64_ITEMS else np.float32
        x = data.csr().astype(dtype)
        if cfg.binarize:
            x.data[:] = 1.0
        gram = np.asarray((x.T @ x).toarray(), dtype=dtype)
        gram[np.diag_indices(n)] += cfg.reg
        p = _spd_inverse(gram)
        del gram
        diag = np.diag(p).copy()
        p /= -diag[None, :]
        p[np.diag_indices(n)] = 0.0
        self.weights_ = p if p.dtype == np.float32 else p.astype(np.float32)
        self._keep_values(x)

    def _item_matrix(self) -> np.ndarray:
        return self.weights_

    def _neighbor_matrix(self, side: Literal["user", "item"]) -> np.ndarray | None:
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

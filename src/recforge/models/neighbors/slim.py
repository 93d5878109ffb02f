"""SLIM: sparse linear item-item model, fitted by coordinate descent on a restricted Gram matrix."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import numba
import numpy as np
import scipy.sparse as sp

from recforge.config import FitOptions, ModelConfig
from recforge.data.interactions import Interactions
from recforge.models._threads import kernel_threads
from recforge.models.base import Recommender
from recforge.models.neighbors import _slim_kernels as K
from recforge.models.neighbors._item_item import ItemItemScores

# up to this many items the whole Gram matrix is formed densely (float32, <= 144 MB) and the
# candidates' entries are read from it; above, each item's candidate Gram is built from user rows
_DENSE_GRAM_ITEMS = 6000


@dataclass(frozen=True)
class SLIMConfig(ModelConfig):
    """Hyperparameters of :class:`SLIM`."""

    ALIASES: ClassVar[dict[str, str]] = {"l1_reg": "reg_l1", "l2_reg": "reg_l2", "k": "n_neighbors"}

    reg_l1: float = 1.0
    """L1 penalty ``lambda`` on the weights (sparsity)."""
    reg_l2: float = 30.0
    """L2 penalty ``beta`` on the weights."""
    n_neighbors: int = 100
    """Candidate neighbours per item: each item's regression only uses its ``n_neighbors`` most
    cosine-similar items (feature selection as in fsSLIM); the rest of its column is zero."""
    max_iter: int = 50
    """Most coordinate-descent sweeps per item."""
    tol: float = 1e-4
    """Stop an item's sweeps when no weight moves by more than this."""
    binarize: bool = True
    """Use 0/1 interactions instead of the interaction values."""

    def validate(self) -> None:
        self.check(self.reg_l1 >= 0, "reg_l1", "must be >= 0")
        self.check(self.reg_l2 >= 0, "reg_l2", "must be >= 0")
        self.check(self.reg_l1 + self.reg_l2 > 0, "reg_l2", "reg_l1 and reg_l2 cannot both be 0")
        self.check(self.n_neighbors >= 1, "n_neighbors", "must be >= 1")
        self.check(self.max_iter >= 1, "max_iter", "must be >= 1")
        self.check(self.tol > 0, "tol", "must be > 0")


class SLIM(ItemItemScores, Recommender):
    """Sparse Linear Methods for top-N recommendation (Ning & Karypis, ICDM 2011), with the
    feature selection of fsSLIM (same paper, section 4.2).

    Learns a sparse, non-negative item-item matrix ``W`` with a zero diagonal, one column at a time:

    .. math::
        \\min_{w_j \\ge 0,\\ w_{jj} = 0} \\tfrac12 \\|x_j - X w_j\\|_2^2
            + \\tfrac{\\beta}{2} \\|w_j\\|_2^2 + \\lambda \\|w_j\\|_1

    (``beta = reg_l2``, ``lambda = reg_l1``), where ``w_j`` may only be non-zero on the
    ``n_neighbors`` items most cosine-similar to ``j``. Each column is solved exactly by cyclic
    coordinate descent on the ``n_neighbors x n_neighbors`` Gram matrix of its candidates. Up to 6,000
    items these are read from the dense ``X^T X``; above, each one is built from the rows of the users
    of the candidates, so memory stays ``O(n_items * n_neighbors)`` (Gowalla, 41k items: about 10 s and
    under 1 GB). Scores are ``x_u W``, for a training user and an ad-hoc history alike.
    """

    name = "slim"
    task = "ranking"
    config_class = SLIMConfig

    def _fit(self, data: Interactions, options: FitOptions) -> None:
        cfg = self.config
        x = sp.csr_matrix(data.csr(), dtype=np.float64)
        if cfg.binarize:
            x.data[:] = 1.0
        x.sort_indices()
        xt = x.T.tocsr()
        xt.sort_indices()
        n_items = x.shape[1]
        norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=0)).ravel())
        n_cand = max(1, min(cfg.n_neighbors, n_items - 1))
        max_deg = int(np.diff(xt.indptr).max()) if n_items else 0
        out_idx = np.empty((n_items, n_cand), np.int32)
        out_val = np.empty((n_items, n_cand), np.float64)
        out_cnt = np.zeros(n_items, np.int64)
        l1, l2, iters, tol = float(cfg.reg_l1), float(cfg.reg_l2), int(cfg.max_iter), float(cfg.tol)
        with kernel_threads(options.threads, limit_blas=False):
            n_chunks = max(1, min(n_items, numba.get_num_threads() * 16))
            if n_items <= _DENSE_GRAM_ITEMS:
                full = np.asarray((xt @ x).toarray(), np.float32)
                K.slim_columns_dense(full, norms, n_cand, l1, l2, iters, tol, n_chunks,
                                     out_idx, out_val, out_cnt)
            else:
                K.slim_columns(x.indptr, x.indices, x.data, xt.indptr, xt.indices, xt.data, norms, n_cand,
                              l1, l2, iters, tol, max(1, max_deg), n_chunks, out_idx, out_val, out_cnt)
        keep = np.arange(n_cand)[None, :] < out_cnt[:, None]
        cols = np.repeat(np.arange(n_items), out_cnt)
        # out rows are target columns j; W[c, j] is the weight of item c in predicting j
        w = sp.csr_matrix((out_val[keep].astype(np.float32), (out_idx[keep], cols)), shape=(n_items, n_items))
        self.weights_ = w
        self._keep_values(x)

    def _item_matrix(self) -> sp.csr_matrix:
        return self.weights_

    def _neighbor_matrix(self, side: Literal["user", "item"]) -> sp.csr_matrix | None:
        return self.weights_ if side == "item" else None

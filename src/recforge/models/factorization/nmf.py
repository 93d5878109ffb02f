"""Non-negative matrix factorisation of ratings by multiplicative updates."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit, prange

from recforge.config import FitOptions, ModelConfig
from recforge.data.interactions import Interactions
from recforge.models._threads import kernel_threads
from recforge.models.factorization._base import FactorRecommender, chunk_bounds, seed_sequence
from recforge.training.epochs import fit_epochs, validation_rmse

__all__ = ["NMF", "NMFConfig"]


@dataclass(frozen=True)
class NMFConfig(ModelConfig):
    """Hyperparameters of :class:`NMF` (defaults tuned on ML-100K 5-fold CV)."""

    embedding_size: int = 20
    """Number of latent factors ``k``."""
    epochs: int = 150
    """Multiplicative-update sweeps (each updates every ``p_u`` and every ``q_i`` once)."""
    reg_user: float = 0.1
    """L2 penalty on user factors (per rating of the user)."""
    reg_item: float = 0.1
    """L2 penalty on item factors (per rating of the item)."""
    init_low: float = 0.0
    """Lower end of the uniform initialisation (must be >= 0)."""
    init_high: float = 1.0
    """Upper end of the uniform initialisation."""

    def validate(self) -> None:
        self.check(self.embedding_size >= 1, "embedding_size", "must be >= 1")
        self.check(self.epochs >= 1, "epochs", "must be >= 1")
        self.check(self.reg_user >= 0, "reg_user", "must be >= 0")
        self.check(self.reg_item >= 0, "reg_item", "must be >= 0")
        self.check(self.init_low >= 0, "init_low", "must be >= 0 (factors stay non-negative)")
        self.check(self.init_high > self.init_low, "init_high", "must be > init_low")


class NMF(FactorRecommender):
    r"""Non-negative matrix factorisation (scikit-surprise's ``NMF``, unbiased).

    Predicts :math:`\hat r_{ui} = p_u^\top q_i` with :math:`p_u, q_i \ge 0` and minimises

    .. math::
        \sum_{(u,i) \in R} (r_{ui} - p_u^\top q_i)^2
        + \lambda_u \sum_u |I_u| \lVert p_u \rVert^2 + \lambda_i \sum_i |U_i| \lVert q_i \rVert^2

    by the regularised multiplicative updates of Luo et al., with both factor matrices updated from
    the same estimates in each sweep:

    .. math::
        p_{uf} \leftarrow p_{uf} \frac{\sum_{i \in I_u} q_{if} r_{ui}}
            {\sum_{i \in I_u} q_{if} \hat r_{ui} + |I_u| \lambda_u p_{uf}}, \qquad
        q_{if} \leftarrow q_{if} \frac{\sum_{u \in U_i} p_{uf} r_{ui}}
            {\sum_{u \in U_i} p_{uf} \hat r_{ui} + |U_i| \lambda_i q_{if}}.

    Reference: X. Luo, M. Zhou, Y. Xia, Q. Zhu, "An Efficient Non-Negative Matrix-Factorization-Based
    Approach to Collaborative Filtering for Recommender Systems", IEEE TII 10(2), 2014.
    """

    name = "nmf"
    task = "rating"
    config_class = NMFConfig

    def _fit(self, data: Interactions, options: FitOptions) -> None:
        cfg = self.config
        rng = seed_sequence(options, 13)
        k = cfg.embedding_size
        csr = data.csr()
        csc = data.csc()
        P = rng.uniform(cfg.init_low, cfg.init_high, (data.n_users, k))
        Q = rng.uniform(cfg.init_low, cfg.init_high, (data.n_items, k))
        with kernel_threads(options, work=2.0 * len(data) * k) as threads:
            n_chunks = 8 * threads
            args = (
                chunk_bounds(csr.indptr, k, k, n_chunks),
                csr.indptr.astype(np.int64),
                csr.indices.astype(np.int64),
                csr.data.astype(np.float64),
                chunk_bounds(csc.indptr, k, k, n_chunks),
                csc.indptr.astype(np.int64),
                csc.indices.astype(np.int64),
                csc.data.astype(np.float64),
            )
            state = [P, Q]  # each sweep returns new arrays

            def step(epoch: int) -> None:
                state[:] = _nmf_sweep(*args, *state, cfg.reg_user, cfg.reg_item)

            fit_epochs(self, cfg.epochs, step, options, name=self.name,
                       publish=lambda: self._set_factors(data, *state),
                       evaluate=validation_rmse(options.validation))

    def _set_factors(self, data: Interactions, P: np.ndarray, Q: np.ndarray) -> None:
        self.global_mean_ = float(data.values.mean())
        self.user_factors_ = P
        self.item_factors_ = Q


@njit(cache=True, parallel=True, fastmath=True)
def _mu_rows(bounds, indptr, indices, vals, A, B, reg, out):  # type: ignore[no-untyped-def]
    """One multiplicative update of every row of ``A`` given fixed ``B`` (rows of a CSR/CSC)."""
    k = A.shape[1]
    for c in prange(bounds.shape[0] - 1):
        num = np.empty(k)
        den = np.empty(k)
        for a in range(bounds[c], bounds[c + 1]):
            lo = indptr[a]
            hi = indptr[a + 1]
            if hi == lo:
                out[a] = A[a]
                continue
            num[:] = 0.0
            den[:] = 0.0
            for m in range(lo, hi):
                b = indices[m]
                est = 0.0
                for f in range(k):
                    est += A[a, f] * B[b, f]
                r = vals[m]
                for f in range(k):
                    num[f] += B[b, f] * r
                    den[f] += B[b, f] * est
            n = hi - lo
            for f in range(k):
                d = den[f] + n * reg * A[a, f]
                out[a, f] = A[a, f] * num[f] / d if d > 0 else 0.0


@njit(cache=True)
def _nmf_sweep(rb, rp, ri, rv, cb, cp, ci, cv, P, Q, reg_u, reg_i):  # type: ignore[no-untyped-def]
    P2 = np.empty_like(P)
    Q2 = np.empty_like(Q)
    _mu_rows(rb, rp, ri, rv, P, Q, reg_u, P2)
    _mu_rows(cb, cp, ci, cv, Q, P, reg_i, Q2)
    return P2, Q2

"""Explicit-feedback alternating least squares with weighted-lambda regularisation (ALS-WR, Zhou et al.).

The implicit-feedback model (Hu et al.) is :class:`~recforge.models.factorization.ials.ImplicitALS`;
both solve their rows with the one row-solve kernel of :mod:`recforge.models.factorization._als_kernels`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from recforge.config import FitOptions, ModelConfig
from recforge.data.interactions import Interactions
from recforge.models._threads import kernel_threads
from recforge.models.factorization._als_kernels import als_half, als_objective
from recforge.models.factorization._base import BiasedFactorRecommender, chunk_bounds, seed_sequence
from recforge.models.factorization.ials import ImplicitALS, ImplicitALSConfig
from recforge.training.epochs import fit_epochs, validation_rmse

# ImplicitALS moved to ials.py; it stays importable from here
__all__ = ["ALS", "ALSConfig", "ImplicitALS", "ImplicitALSConfig"]


@dataclass(frozen=True)
class ALSConfig(ModelConfig):
    """Hyperparameters of :class:`ALS` (defaults tuned on ML-100K 5-fold CV)."""

    ALIASES: ClassVar[dict[str, str]] = {"bias": "use_bias"}

    embedding_size: int = 50
    """Number of latent factors ``k``."""
    epochs: int = 15
    """ALS sweeps (each solves every user, then every item)."""
    reg: float = 0.1
    """Weighted-lambda penalty: row ``a`` is penalised by ``reg * n_a * ||x_a||^2``."""
    use_bias: bool = True
    """Learn a global mean plus user and item biases alongside the factors (was ``bias``)."""
    init_std: float = 0.1
    """Standard deviation of the normal initialisation of the item factors."""

    def validate(self) -> None:
        self.check(self.embedding_size >= 1, "embedding_size", "must be >= 1")
        self.check(self.epochs >= 1, "epochs", "must be >= 1")
        self.check(self.reg > 0, "reg", "must be > 0 (the normal equations need it)")
        self.check(self.init_std >= 0, "init_std", "must be >= 0")


class ALS(BiasedFactorRecommender):
    r"""Explicit-feedback ALS with weighted-lambda regularisation (ALS-WR), biases optional.

    With ``use_bias=True`` it predicts :math:`\hat r_{ui} = \mu + b_u + b_i + p_u^\top q_i`
    (``mu``: the training mean, fixed), otherwise :math:`\hat r_{ui} = p_u^\top q_i`, and minimises

    .. math::
        \sum_{(u,i) \in R} (r_{ui} - \hat r_{ui})^2
        + \lambda \Big(\sum_u n_u (\lVert p_u \rVert^2 + b_u^2)
        + \sum_i n_i (\lVert q_i \rVert^2 + b_i^2)\Big)

    (``n_u``, ``n_i``: rating counts) by solving the normal equations exactly for every user with
    the items fixed, then for every item, in parallel; the bias is one more coordinate of each
    solve, paired with a constant 1 on the other side. Every half-step minimises the objective over
    its block, so the objective never increases (``history_["train_loss"]``). A new user's ratings
    are folded in by the same user step (:meth:`fold_in`), which also scores ad-hoc histories
    (:meth:`~recforge.models.base.Recommender.recommend_for_history`). Reference: Y. Zhou,
    D. Wilkinson, R. Schreiber, R. Pan, "Large-Scale Parallel Collaborative Filtering for the
    Netflix Prize", AAIM 2008.
    """

    name = "als"
    task = "rating"
    config_class = ALSConfig
    folds_in: ClassVar[bool] = True
    scores_history: ClassVar[bool] = True

    def _fit(self, data: Interactions, options: FitOptions) -> None:
        cfg = self.config
        rng = seed_sequence(options, 14)
        k = cfg.embedding_size
        bias = cfg.use_bias
        d = k + 1 if bias else k
        mu = float(data.values.mean()) if bias else 0.0
        X = np.zeros((data.n_users, d))
        Y = rng.normal(0.0, cfg.init_std, (data.n_items, d))
        if bias:
            Y[:, k] = 0.0
        Y[~self.item_known_] = 0.0
        csr, csc = data.csr(), data.csc()
        work = len(data) * d * d + (data.n_users + data.n_items) * d**3 / 3
        with kernel_threads(options, work=work) as threads:
            ub = chunk_bounds(csr.indptr, d**3 / 3, d * d, 8 * threads)
            ib = chunk_bounds(csc.indptr, d**3 / 3, d * d, 8 * threads)
            rows = (csr.indptr.astype(np.int64), csr.indices.astype(np.int64), csr.data.astype(np.float64))
            cols = (csc.indptr.astype(np.int64), csc.indices.astype(np.int64), csc.data.astype(np.float64))

            def step(epoch: int) -> dict[str, float]:
                als_half(ub, *rows, X, Y, k, bias, mu, cfg.reg)
                als_half(ib, *cols, Y, X, k, bias, mu, cfg.reg)
                return {"train_loss": als_objective(*rows, X, Y, k, bias, mu, cfg.reg)}  # the objective

            fit_epochs(self, cfg.epochs, step, options, name=self.name,
                       publish=lambda: self._set_factors(data, X, Y, mu),
                       evaluate=validation_rmse(options.validation))

    def _set_factors(self, data: Interactions, X: np.ndarray, Y: np.ndarray, mu: float) -> None:
        k = self.config.embedding_size
        bias = self.config.use_bias
        self.global_mean_ = float(data.values.mean())
        self.intercept_ = mu
        self.user_factors_ = np.ascontiguousarray(X[:, :k])
        self.item_factors_ = np.ascontiguousarray(Y[:, :k])
        self.user_bias_ = X[:, k].copy() if bias else np.zeros(data.n_users)
        self.item_bias_ = Y[:, k].copy() if bias else np.zeros(data.n_items)

    def objective(self, data: Interactions) -> float:
        """The ALS-WR objective (above) of the fitted model on ``data`` (same vocabularies)."""
        self.check_is_fitted()
        csr = data.csr()
        k = self.config.embedding_size
        X = np.column_stack([self.user_factors_, self.user_bias_])
        Y = np.column_stack([self.item_factors_, self.item_bias_])
        return float(
            als_objective(
                csr.indptr.astype(np.int64),
                csr.indices.astype(np.int64),
                csr.data.astype(np.float64),
                X,
                Y,
                k,
                True,
                self.intercept_,
                self.config.reg,
            )
        )

    # ------------------------------------------------------------------ fold-in
    def fold_in(self, item_ids: Any, values: Any = None) -> np.ndarray:
        """The factor vector of a user with these ratings, solved exactly against the item factors.

        This is the ALS-WR user step for one new (or updated) user (the user bias, with
        ``use_bias``, is solved alongside and used by :meth:`scores_for_history`).

        Args:
            item_ids: Raw ids of the rated items (unknown ids are ignored; repeats count again).
            values: The ratings; without them every item counts as rated ``rating_max_`` (liked).

        Returns:
            The user vector, shape ``(embedding_size,)`` (zeros for an empty history).
        """
        self.check_is_fitted()
        return self._solve_user(*self._history_indices(item_ids, values))[0]

    def _solve_user(self, idx: np.ndarray, values: np.ndarray | None) -> tuple[np.ndarray, float]:
        k = self.config.embedding_size
        if len(idx) == 0:
            return np.zeros(k), 0.0
        r = np.full(len(idx), float(self.rating_max_)) if values is None else values
        F = self.item_factors_[idx]
        t = r - self.intercept_
        if self.config.use_bias:
            F = np.column_stack([F, np.ones(len(idx))])
            t = t - self.item_bias_[idx]
        M = F.T @ F + self.config.reg * len(idx) * np.eye(F.shape[1])
        x = np.linalg.solve(M, F.T @ t)
        return x[:k], float(x[k]) if self.config.use_bias else 0.0

    def _score_history(self, item_idx: np.ndarray, values: np.ndarray | None,
                       context: Mapping[str, Any]) -> np.ndarray:
        p, b_u = self._solve_user(item_idx, values)
        return self.intercept_ + b_u + self.item_bias_ + self.item_factors_ @ p

"""Rating prediction by stochastic gradient descent: biased MF (Funk SVD) and SVD++."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np
from numba import njit

from recforge.config import FitOptions, ModelConfig
from recforge.data.interactions import Interactions
from recforge.models.factorization._base import BiasedFactorRecommender, seed_sequence
from recforge.models.factorization.pure_svd import truncated_svd
from recforge.training.epochs import fit_epochs, validation_rmse
from recforge.training.progress import NULL, reporting

__all__ = ["BiasedMF", "BiasedMFConfig", "SVDpp", "SVDppConfig"]


@dataclass(frozen=True)
class BiasedMFConfig(ModelConfig):
    """Hyperparameters of :class:`BiasedMF` (defaults tuned on ML-100K 5-fold CV)."""

    embedding_size: int = 50
    """Number of latent factors ``k``."""
    epochs: int = 30
    """Passes over the training ratings (each in a fresh random order)."""
    learning_rate: float = 0.015
    """SGD step size for factors and biases."""
    reg: float = 0.1
    """L2 penalty on the factors ``p_u`` and ``q_i``."""
    reg_bias: float = 0.02
    """L2 penalty on the biases ``b_u`` and ``b_i``."""
    init_std: float = 0.1
    """Standard deviation of the normal initialisation of the factors."""
    learning_rate_decay: float = 1.0
    """The step size is multiplied by this after every epoch (1.0: constant)."""
    reg_scale: float | Literal["auto"] = "auto"
    """Multiplier of the factor penalties ``reg`` (and SVD++'s ``reg_implicit``; not ``reg_bias``).
    ``"auto"``: chosen per fit from the training ratings alone (:func:`auto_reg_scale`): a random
    10 % of them is held out and the scale walks from 1 in steps of sqrt(2) while the held-out RMSE
    improves; the model is then refitted on every rating. No single rule read off the data
    (density, ratings per user, rating spread) predicts the best penalty on ML-100K, FilmTrust and
    sparser MovieLens samples alike (``benchmarks/results/defaults.md``); this does, at 3-5 times
    the fit time. The scale used is ``reg_scale_``."""
    init: Literal["normal", "svd"] = "normal"
    """Starting factors: ``"normal"`` draws (``init_std``), or ``"svd"``: the truncated SVD of the
    zero-filled residuals ``r - mu`` split as ``P = U S^1/2``, ``Q = V S^1/2`` (gradient descent
    then starts from the least-squares answer of the filled matrix; see ``pure-svd``)."""

    def validate(self) -> None:
        self.check(self.init in ("normal", "svd"), "init", "must be 'normal' or 'svd'")
        self.check(self.embedding_size >= 1, "embedding_size", "must be >= 1")
        self.check(self.epochs >= 1, "epochs", "must be >= 1")
        self.check(0 < self.learning_rate < 1, "learning_rate", "must be in (0, 1)")
        self.check(self.reg >= 0, "reg", "must be >= 0")
        self.check(self.reg_bias >= 0, "reg_bias", "must be >= 0")
        self.check(self.init_std >= 0, "init_std", "must be >= 0")
        self.check(0 < self.learning_rate_decay <= 1, "learning_rate_decay", "must be in (0, 1]")
        self.check(self.reg_scale == "auto" or (isinstance(self.reg_scale, (int, float))
                                                and not isinstance(self.reg_scale, bool) and self.reg_scale > 0),
                   "reg_scale", "must be a number > 0 or 'auto'")


class BiasedMF(BiasedFactorRecommender):
    r"""Biased matrix factorisation fitted by SGD ("Funk SVD", scikit-surprise's ``SVD``).

    Predicts :math:`\hat r_{ui} = \mu + b_u + b_i + p_u^\top q_i` and minimises

    .. math::
        \sum_{(u,i) \in R} (r_{ui} - \hat r_{ui})^2
        + \lambda (\lVert p_u \rVert^2 + \lVert q_i \rVert^2) + \lambda_b (b_u^2 + b_i^2)

    by per-rating SGD over a fresh random order each epoch (the step may decay geometrically).
    ``mu`` is the training mean. References: S. Funk, "Netflix Update: Try This at Home" (2006);
    Koren, Bell, Volinsky, "Matrix Factorization Techniques for Recommender Systems", IEEE Computer
    42(8), 2009.
    """

    name = "svd"
    task = "rating"
    config_class = BiasedMFConfig

    def _fit(self, data: Interactions, options: FitOptions) -> None:
        cfg = self.config
        rng = seed_sequence(options, 11)
        u, i = data.user_idx, data.item_idx
        r = data.values.astype(np.float64)
        scale = penalty_scale(self, data, options)
        mu, bu, bi, P, Q = _biased_start(data, cfg, rng, r)
        lr = [cfg.learning_rate]

        def step(epoch: int) -> dict[str, float]:
            order = rng.permutation(len(r)).astype(np.int64)
            sse = _biased_mf_epoch(u, i, r, order, mu, bu, bi, P, Q, lr[0], cfg.reg * scale, cfg.reg_bias)
            lr[0] *= cfg.learning_rate_decay
            return {"train_loss": np.sqrt(sse / len(r))}  # the training RMSE

        fit_epochs(self, cfg.epochs, step, options, name=self.name,
                   publish=lambda: _publish(self, mu, bu, bi, P, Q),
                   evaluate=validation_rmse(options.validation))


#: ``reg_scale="auto"``: the share of the training ratings held out, the step of the walk, its
#: bounds, and the fewest ratings worth a search (below it the scale is 1).
AUTO_HOLDOUT = 0.1
AUTO_STEP = 2**0.5
AUTO_BOUNDS = (0.25, 4.0)
AUTO_MIN_RATINGS = 1000


def auto_reg_scale(model: BiasedFactorRecommender, data: Interactions, options: FitOptions) -> float:
    """The penalty multiplier ``reg_scale="auto"`` picks for ``data`` (the training ratings only).

    A random :data:`AUTO_HOLDOUT` of the ratings (drawn from the fit's seed) is held out; the model
    with ``reg_scale=1`` is fitted on the rest and scored by RMSE on the held-out ratings (unknown
    users or items: the training mean). The scale is multiplied by sqrt(2) while the held-out RMSE
    improves, and if the first step up does not improve, divided by sqrt(2) instead; the walk
    stays within :data:`AUTO_BOUNDS`. A greedy version of choosing the penalty by validation, as
    Koren, Bell and Volinsky ("Matrix Factorization Techniques for Recommender Systems", IEEE
    Computer 2009) set it ("usually determined by cross-validation").
    """
    if len(data) < AUTO_MIN_RATINGS:
        return 1.0
    held = seed_sequence(options, 97).random(len(data)) < AUTO_HOLDOUT
    part, val = data.subset(~held), data.subset(held)
    users, items, truth = val.users.ids[val.user_idx], val.items.ids[val.item_idx], val.values.astype(np.float64)
    quiet = FitOptions(seed=options.seed, threads=options.threads)

    def rmse(scale: float) -> float:
        with reporting(NULL):  # the search's fits show no progress of their own; the final fit does
            sub = type(model)(replace(model.config, reg_scale=scale)).fit(part, quiet)
        return float(np.sqrt(np.mean((sub.predict(users, items, fallback="mean") - truth) ** 2)))

    best_scale, best = 1.0, rmse(1.0)
    for step in (AUTO_STEP, 1 / AUTO_STEP):
        scale, moved = best_scale * step, False
        while AUTO_BOUNDS[0] - 1e-9 <= scale <= AUTO_BOUNDS[1] + 1e-9:
            value = rmse(scale)
            if value >= best:
                break
            best_scale, best, moved = scale, value, True
            scale *= step
        if moved:
            break
    return round(best_scale, 6)


def penalty_scale(model: BiasedFactorRecommender, data: Interactions, options: FitOptions) -> float:
    """The multiplier of the factor penalties for this fit (``reg_scale``, searched when ``"auto"``),
    kept as ``model.reg_scale_``."""
    cfg: Any = model.config
    scale = auto_reg_scale(model, data, options) if cfg.reg_scale == "auto" else float(cfg.reg_scale)
    model.reg_scale_ = scale
    return scale


def _biased_start(
    data: Interactions, cfg: BiasedMFConfig, rng: np.random.Generator, r: np.ndarray
) -> tuple[float, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The SGD models' starting point: the mean of ``r``, zero biases, normal (or SVD) user and item factors."""
    k = cfg.embedding_size
    mu = float(r.mean())
    bu = np.zeros(data.n_users)
    bi = np.zeros(data.n_items)
    P = rng.normal(0.0, cfg.init_std, (data.n_users, k))
    Q = rng.normal(0.0, cfg.init_std, (data.n_items, k))
    if cfg.init == "svd":  # drawn above all the same, so the epochs' random stream is the same
        resid = data.csr().astype(np.float64)
        resid.data -= mu
        U, s, Vt = truncated_svd(resid, k, rng)
        P, Q = U * np.sqrt(s), Vt.T * np.sqrt(s)
    return mu, bu, bi, P, Q


def _publish(
    model: BiasedFactorRecommender, mu: float, bu: np.ndarray, bi: np.ndarray, P: np.ndarray, Q: np.ndarray
) -> None:
    # the kernels update these arrays in place, so publishing costs nothing
    model.global_mean_ = mu
    model.intercept_ = mu
    model.user_bias_ = bu
    model.item_bias_ = bi
    model.user_factors_ = P
    model.item_factors_ = Q


@njit(cache=True, fastmath=True)
def _biased_mf_epoch(u, i, r, order, mu, bu, bi, P, Q, lr, reg, reg_b):  # type: ignore[no-untyped-def]
    k = P.shape[1]
    sse = 0.0
    for t in range(order.shape[0]):
        n = order[t]
        uu = u[n]
        ii = i[n]
        dot = 0.0
        for f in range(k):
            dot += P[uu, f] * Q[ii, f]
        err = r[n] - (mu + bu[uu] + bi[ii] + dot)
        sse += err * err
        bu[uu] += lr * (err - reg_b * bu[uu])
        bi[ii] += lr * (err - reg_b * bi[ii])
        for f in range(k):
            pf = P[uu, f]
            qf = Q[ii, f]
            P[uu, f] = pf + lr * (err * qf - reg * pf)
            Q[ii, f] = qf + lr * (err * pf - reg * qf)
    return sse


@dataclass(frozen=True)
class SVDppConfig(BiasedMFConfig):
    """Hyperparameters of :class:`SVDpp` (defaults tuned on ML-100K 5-fold CV); as
    :class:`BiasedMFConfig` plus ``reg_implicit``."""

    epochs: int = 30
    """Passes over the users (each user's ratings in a fresh random order)."""
    learning_rate: float = 0.007
    """SGD step size for factors and biases."""
    init_std: float = 0.1
    """Standard deviation of the normal initialisation of ``p``, ``q`` and ``y``."""
    reg_implicit: float = 0.4
    """L2 penalty on the implicit-feedback factors ``y_j`` (applied once per user block)."""

    def validate(self) -> None:
        super().validate()
        self.check(self.reg_implicit >= 0, "reg_implicit", "must be >= 0")


class SVDpp(BiasedFactorRecommender):
    r"""SVD++: biased MF whose user vector also sums the factors of every item the user rated.

    Predicts

    .. math::
        \hat r_{ui} = \mu + b_u + b_i + q_i^\top \Big(p_u + |N(u)|^{-1/2} \sum_{j \in N(u)} y_j\Big)

    (``N(u)``: the items ``u`` rated in training) and minimises the squared error plus
    :math:`\lambda(\lVert p_u\rVert^2 + \lVert q_i\rVert^2) + \lambda_y \sum_j \lVert y_j\rVert^2 +
    \lambda_b(b_u^2 + b_i^2)` by SGD. Ratings are visited user by user: the implicit sum is formed
    once per user, the gradients with respect to it are accumulated over the user's ratings, and
    every ``y_j`` of the user is updated once at the end of the block. This costs ``O(|R| k)`` per
    epoch instead of the ``O(sum_u |N(u)|^2 k)`` of per-rating updates. Reference: Y. Koren,
    "Factorization Meets the Neighborhood: a Multifaceted Collaborative Filtering Model", KDD 2008.
    """

    name = "svdpp"
    task = "rating"
    config_class = SVDppConfig

    def _fit(self, data: Interactions, options: FitOptions) -> None:
        cfg = self.config
        rng = seed_sequence(options, 12)
        csr = data.csr()
        indptr = csr.indptr.astype(np.int64)
        indices = csr.indices.astype(np.int64)
        r = csr.data.astype(np.float64)
        scale = penalty_scale(self, data, options)
        mu, bu, bi, P, Q = _biased_start(data, cfg, rng, r)
        Y = rng.normal(0.0, cfg.init_std, (data.n_items, cfg.embedding_size))
        lr = [cfg.learning_rate]

        def step(epoch: int) -> dict[str, float]:
            user_order = rng.permutation(data.n_users).astype(np.int64)
            keys = rng.random(len(r))  # a random permutation per user's row, drawn as one global sort key
            sse = _svdpp_epoch(indptr, indices, r, user_order, keys, mu, bu, bi, P, Q, Y, lr[0],
                               cfg.reg * scale, cfg.reg_implicit * scale, cfg.reg_bias)
            lr[0] *= cfg.learning_rate_decay
            return {"train_loss": np.sqrt(sse / len(r))}  # the training RMSE

        def publish() -> None:  # the implicit sums are derived, so they are formed at publication
            _publish(self, mu, bu, bi, P, Q)
            self.implicit_factors_ = Y
            self.user_implicit_ = _implicit_sums(indptr, indices, Y)

        fit_epochs(self, cfg.epochs, step, options, name=self.name, publish=publish,
                   evaluate=validation_rmse(options.validation))

    def _user_vectors(self, u: np.ndarray | None = None) -> np.ndarray:
        vecs = self.user_factors_ + self.user_implicit_
        return vecs if u is None else vecs[u]


@njit(cache=True, fastmath=True)
def _svdpp_epoch(indptr, indices, r, user_order, keys, mu, bu, bi, P, Q, Y, lr, reg, reg_y, reg_b):  # type: ignore[no-untyped-def]
    k = P.shape[1]
    z = np.empty(k)
    pz = np.empty(k)
    gz = np.empty(k)
    sse = 0.0
    for t in range(user_order.shape[0]):
        uu = user_order[t]
        lo = indptr[uu]
        hi = indptr[uu + 1]
        n = hi - lo
        if n == 0:
            continue
        nrm = 1.0 / np.sqrt(n)
        z[:] = 0.0
        for m in range(lo, hi):
            j = indices[m]
            for f in range(k):
                z[f] += Y[j, f]
        for f in range(k):
            z[f] *= nrm
            gz[f] = 0.0
        order = lo + np.argsort(keys[lo:hi])
        for m in order:
            ii = indices[m]
            dot = 0.0
            for f in range(k):
                pz[f] = P[uu, f] + z[f]
                dot += pz[f] * Q[ii, f]
            err = r[m] - (mu + bu[uu] + bi[ii] + dot)
            sse += err * err
            bu[uu] += lr * (err - reg_b * bu[uu])
            bi[ii] += lr * (err - reg_b * bi[ii])
            for f in range(k):
                qf = Q[ii, f]
                gz[f] += err * qf
                P[uu, f] += lr * (err * qf - reg * P[uu, f])
                Q[ii, f] = qf + lr * (err * pz[f] - reg * qf)
        for m in range(lo, hi):
            j = indices[m]
            for f in range(k):
                Y[j, f] += lr * (nrm * gz[f] - reg_y * Y[j, f])
    return sse


@njit(cache=True)
def _implicit_sums(indptr, indices, Y):  # type: ignore[no-untyped-def]
    n_users = indptr.shape[0] - 1
    out = np.zeros((n_users, Y.shape[1]))
    for u in range(n_users):
        lo = indptr[u]
        hi = indptr[u + 1]
        if hi == lo:
            continue
        for m in range(lo, hi):
            out[u] += Y[indices[m]]
        out[u] /= np.sqrt(hi - lo)
    return out

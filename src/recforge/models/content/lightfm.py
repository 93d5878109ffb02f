"""Feature-augmented factorisation in the style of LightFM: ids and attributes share one space."""

from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
from numba import njit

from recforge.config import FitOptions, ModelConfig
from recforge.data.interactions import Interactions
from recforge.models.base import Recommender
from recforge.models.content._features import FeatureSpec, encode
from recforge.training.epochs import fit_epochs

__all__ = ["LightFMConfig", "LightFMStyle"]


@dataclass(frozen=True)
class LightFMConfig(ModelConfig):
    """Hyperparameters of :class:`LightFMStyle`."""

    embedding_size: int = 32
    """Dimension ``d`` of every id and feature embedding."""
    epochs: int = 20
    """Passes over the training interactions."""
    learning_rate: float = 0.05
    """Adagrad step size."""
    loss: Literal["warp", "bpr"] = "warp"
    """``warp``: sample negatives until one violates the margin, weight by the estimated rank;
    ``bpr``: one uniform negative, logistic loss on the score difference."""
    max_sampled: int = 20
    """WARP: negatives tried per positive before giving up."""
    reg: float = 1e-5
    """L2 penalty on every embedding and bias touched by an update."""
    use_item_features: bool = True
    """Add item attribute embeddings (genres, year, title words, ...) to the item id embedding."""
    use_user_features: bool = True
    """Add user attribute embeddings (age, gender, occupation, ...) when the data has them."""
    item_id_weight: float = 1.0
    """Weight of the id feature in an item's row before the row is normalised to sum 1 (LightFM
    normalises rows the same way); a smaller weight leans on the shared attributes."""
    user_id_weight: float = 1.0
    """Weight of the id feature in a user's row."""
    fold_in_epochs: int = 30
    """Passes over a new user's handful of items in :meth:`LightFMStyle.recommend_for_history`."""

    def validate(self) -> None:
        self.check(self.embedding_size >= 1, "embedding_size", "must be >= 1")
        self.check(self.epochs >= 1, "epochs", "must be >= 1")
        self.check(self.learning_rate > 0, "learning_rate", "must be > 0")
        self.check(self.max_sampled >= 1, "max_sampled", "must be >= 1")
        self.check(self.reg >= 0, "reg", "must be >= 0")
        self.check(self.item_id_weight >= 0, "item_id_weight", "must be >= 0")
        self.check(self.user_id_weight >= 0, "user_id_weight", "must be >= 0")
        self.check(self.fold_in_epochs >= 1, "fold_in_epochs", "must be >= 1")


class LightFMStyle(Recommender):
    r"""Hybrid matrix factorisation with side features (LightFM, Kula 2015).

    A user is the sum of the embeddings of their features, :math:`p_u = \sum_f x_{uf} e^U_f`, where
    the features are the user's id (when the user has training rows) and their attributes; an item
    likewise, :math:`q_i = \sum_g x_{ig} e^I_g`, plus a bias :math:`b_i = \sum_g x_{ig} \beta_g`.
    Each row of :math:`x` sums to 1. The score is :math:`s_{ui} = p_u^\top q_i + b_i`, trained on
    implicit positives with WARP (Weston et al., "WSABIE", IJCAI 2011) or BPR (Rendle et al., UAI
    2009) by Adagrad SGD. An item with attributes but no training rows gets :math:`q_i` from its
    attributes alone, so it can be recommended at once; a user with attributes but no history gets a
    vector from them; a new user's few interactions are folded in by :meth:`recommend_for_history`.
    Reference: M. Kula, "Metadata Embeddings for User and Item Cold-start Recommendations",
    CBRecSys 2015.
    """

    name = "lightfm-style"
    task = "ranking"
    config_class = LightFMConfig
    scores_history = True
    has_embeddings = True

    def _fit(self, data: Interactions, options: FitOptions) -> None:
        self.__dict__.pop("_pop_order", None)
        cfg = self.config
        seed = 0 if options.seed is None else int(options.seed)
        rng = np.random.default_rng([seed, 31])
        has_u = data.user_counts() > 0
        has_i = data.item_counts() > 0
        item_feats = sp.csr_matrix((data.n_items, 0))
        self.item_feature_names_ = np.array([], dtype=str)
        if cfg.use_item_features and data.item_features is not None and len(data.item_features.columns):
            item_feats, self.item_feature_names_ = encode(data.item_features, data.items.ids, FeatureSpec())
        user_feats = sp.csr_matrix((data.n_users, 0))
        self.user_feature_names_ = np.array([], dtype=str)
        if cfg.use_user_features and data.user_features is not None and len(data.user_features.columns):
            user_feats, self.user_feature_names_ = encode(data.user_features, data.users.ids, FeatureSpec())
        IF = _with_ids(item_feats, has_i, cfg.item_id_weight)
        UF = _with_ids(user_feats, has_u, cfg.user_id_weight)
        self.item_rows_ = IF
        self.user_rows_ = UF
        d = cfg.embedding_size
        EU = ((rng.random((UF.shape[1], d)) - 0.5) / d).astype(np.float32)
        EI = ((rng.random((IF.shape[1], d)) - 0.5) / d).astype(np.float32)
        BI = np.zeros(IF.shape[1], dtype=np.float32)
        GU = np.ones_like(EU)
        GI = np.ones_like(EI)
        GB = np.ones_like(BI)
        seen = data.csr()
        pool = np.flatnonzero(has_i).astype(np.int64)  # never-seen items are not sampled as negatives
        u = data.user_idx.astype(np.int64)
        i = data.item_idx.astype(np.int64)
        w = np.ones(len(u), dtype=np.float32)
        warp = cfg.loss == "warp"

        def step(epoch: int) -> dict[str, float]:
            order = rng.permutation(len(u)).astype(np.int64)
            return {"train_loss": _epoch(
                u, i, w, order, seen.indptr, seen.indices, pool,
                UF.indptr, UF.indices, UF.data.astype(np.float32), IF.indptr, IF.indices,
                IF.data.astype(np.float32), EU, EI, BI, GU, GI, GB, np.float32(cfg.learning_rate),
                np.float32(cfg.reg), warp, cfg.max_sampled, int(rng.integers(0, 2**31 - 1)),
            )}

        def publish() -> None:  # the epochs update the embeddings in place; the vectors are derived
            self.user_embeddings_ = EU
            self.item_feature_embeddings_ = EI
            self.item_feature_bias_ = BI
            self._finish(has_u, has_i)

        fit_epochs(self, cfg.epochs, step, options, name=self.name, publish=publish)

    def _finish(self, has_u: np.ndarray, has_i: np.ndarray) -> None:
        self.user_vectors_ = np.asarray(self.user_rows_ @ self.user_embeddings_, dtype=np.float64)
        self.item_vectors_ = np.asarray(self.item_rows_ @ self.item_feature_embeddings_, dtype=np.float64)
        self.item_bias_ = np.asarray(self.item_rows_ @ self.item_feature_bias_, dtype=np.float64).ravel()
        self.user_known_ = has_u | (self.user_rows_.getnnz(axis=1) > 0)
        self.item_known_ = has_i | (self.item_rows_.getnnz(axis=1) > 0)

    # ------------------------------------------------------------------ scoring
    def _score_users(self, u: np.ndarray) -> np.ndarray:
        return self.user_vectors_[u] @ self.item_vectors_.T + self.item_bias_[None, :]

    def _score_pairs(self, u: np.ndarray, i: np.ndarray) -> np.ndarray:
        return np.einsum("ij,ij->i", self.user_vectors_[u], self.item_vectors_[i]) + self.item_bias_[i]

    def embeddings(self) -> tuple[np.ndarray, np.ndarray]:
        return self.user_vectors_, self.item_vectors_

    # ------------------------------------------------------------------ onboarding
    def user_vector_for_history(self, item_ids: Any, values: Any = None, seed: int = 0) -> np.ndarray:
        """A vector for a new user who interacted with ``item_ids`` (no refit of the model).

        The item representations stay fixed; a fresh user embedding is trained on these items alone
        with the model's loss for ``fold_in_epochs`` passes. ``values`` weight each item's updates
        (divided by their maximum), e.g. ratings.
        """
        self.check_is_fitted()
        return self._fold_in_vector(*self._history_indices(item_ids, values), seed=seed)

    def _fold_in_vector(self, idx: np.ndarray, values: np.ndarray | None, seed: int = 0) -> np.ndarray:
        d = self.config.embedding_size
        if len(idx) == 0:
            return np.zeros(d)
        w = np.ones(len(idx), dtype=np.float32)
        if values is not None:
            w = (values / max(float(np.abs(values).max()), 1e-12)).astype(np.float32)
        rng = np.random.default_rng([seed, 37])
        vec = ((rng.random(d) - 0.5) / d).astype(np.float64)
        pool = np.flatnonzero(np.asarray(self.seen_.sum(axis=0)).ravel() > 0).astype(np.int64)
        pos = np.unique(idx)
        cfg = self.config
        _fold_in(idx.astype(np.int64), w, np.sort(pos), pool, self.item_vectors_, self.item_bias_, vec,
                 cfg.learning_rate, cfg.reg, cfg.loss == "warp", cfg.max_sampled, cfg.fold_in_epochs,
                 int(rng.integers(0, 2**31 - 1)))
        return vec

    def _score_history(self, item_idx: np.ndarray, values: np.ndarray | None,
                       context: Mapping[str, Any]) -> np.ndarray:
        return self.item_vectors_ @ self._fold_in_vector(item_idx, values) + self.item_bias_

def _with_ids(feats: sp.csr_matrix, has_id: np.ndarray, id_weight: float) -> sp.csr_matrix:
    """``[id one-hot (rows with training data) | features]``, each row scaled to sum 1."""
    n = feats.shape[0]
    rows = np.flatnonzero(has_id) if id_weight > 0 else np.empty(0, np.int64)
    ids = sp.csr_matrix((np.full(len(rows), id_weight), (rows, rows)), shape=(n, n))
    m = sp.hstack([ids, sp.csr_matrix(np.abs(feats))], format="csr")
    s = np.asarray(m.sum(axis=1)).ravel()
    m = sp.csr_matrix(sp.diags(np.divide(1.0, s, out=np.zeros_like(s), where=s > 0)) @ m)
    m.sort_indices()
    m.indices = m.indices.astype(np.int64)
    m.indptr = m.indptr.astype(np.int64)
    return m


@njit(cache=True)
def _seed(s: int) -> None:
    np.random.seed(s)


@njit(cache=True)
def _contains(indices, lo, hi, x):
    a, b = lo, hi
    while a < b:
        mid = (a + b) // 2
        if indices[mid] < x:
            a = mid + 1
        else:
            b = mid
    return a < hi and indices[a] == x


@njit(cache=True, fastmath=True)
def _rep(indptr, indices, data, E, row, out):
    out[:] = 0.0
    for p in range(indptr[row], indptr[row + 1]):
        f = indices[p]
        x = data[p]
        for k in range(out.shape[0]):
            out[k] += x * E[f, k]


@njit(cache=True, fastmath=True)
def _bias(indptr, indices, data, B, row):
    s = 0.0
    for p in range(indptr[row], indptr[row + 1]):
        s += data[p] * B[indices[p]]
    return s


@njit(cache=True, fastmath=True)
def _update(indptr, indices, data, E, G, B, GB, row, grad_vec, g_bias, lr, reg, use_bias):
    d = grad_vec.shape[0]
    for p in range(indptr[row], indptr[row + 1]):
        f = indices[p]
        x = data[p]
        for k in range(d):
            g = x * grad_vec[k] - reg * E[f, k]
            G[f, k] += g * g
            E[f, k] += lr * g / np.sqrt(G[f, k])
        if use_bias:
            gb = x * g_bias - reg * B[f]
            GB[f] += gb * gb
            B[f] += lr * gb / np.sqrt(GB[f])


@njit(cache=True, fastmath=True)
def _epoch(u, i, w, order, s_indptr, s_indices, pool, u_indptr, u_indices, u_data, i_indptr, i_indices,
           i_data, EU, EI, BI, GU, GI, GB, lr, reg, warp, max_sampled, seed):
    _seed(seed)
    d = EU.shape[1]
    pu = np.zeros(d, dtype=np.float32)
    qi = np.zeros(d, dtype=np.float32)
    qj = np.zeros(d, dtype=np.float32)
    gu = np.zeros(d, dtype=np.float32)
    gi = np.zeros(d, dtype=np.float32)
    gj = np.zeros(d, dtype=np.float32)
    n_pool = len(pool)
    total = 0.0
    for t in range(len(order)):
        r = order[t]
        uu = u[r]
        ii = i[r]
        _rep(u_indptr, u_indices, u_data, EU, uu, pu)
        _rep(i_indptr, i_indices, i_data, EI, ii, qi)
        si = _bias(i_indptr, i_indices, i_data, BI, ii)
        for k in range(d):
            si += pu[k] * qi[k]
        lo = s_indptr[uu]
        hi = s_indptr[uu + 1]
        if hi - lo >= n_pool:
            continue
        jj = -1
        weight = 0.0
        sj = 0.0
        if warp:
            for trial in range(1, max_sampled + 1):
                cand = pool[np.random.randint(n_pool)]
                if _contains(s_indices, lo, hi, cand):
                    continue
                _rep(i_indptr, i_indices, i_data, EI, cand, qj)
                sc = _bias(i_indptr, i_indices, i_data, BI, cand)
                for k in range(d):
                    sc += pu[k] * qj[k]
                if sc > si - 1.0:
                    jj = cand
                    sj = sc
                    weight = np.log(max(1.0, np.floor((n_pool - 1) / trial)))
                    break
            if jj < 0:
                continue
            total += weight * (1.0 - si + sj)
        else:
            for _ in range(20):
                cand = pool[np.random.randint(n_pool)]
                if not _contains(s_indices, lo, hi, cand):
                    jj = cand
                    break
            if jj < 0:
                continue
            _rep(i_indptr, i_indices, i_data, EI, jj, qj)
            sj = _bias(i_indptr, i_indices, i_data, BI, jj)
            for k in range(d):
                sj += pu[k] * qj[k]
            x = si - sj
            weight = 1.0 / (1.0 + np.exp(x))
            total += np.log1p(np.exp(-x)) if x > -30 else -x
        weight *= w[r]
        for k in range(d):
            gu[k] = weight * (qi[k] - qj[k])
            gi[k] = weight * pu[k]
            gj[k] = -weight * pu[k]
        _update(u_indptr, u_indices, u_data, EU, GU, BI, GB, uu, gu, 0.0, lr, reg, False)
        _update(i_indptr, i_indices, i_data, EI, GI, BI, GB, ii, gi, weight, lr, reg, True)
        _update(i_indptr, i_indices, i_data, EI, GI, BI, GB, jj, gj, -weight, lr, reg, True)
    return total / max(1, len(order))


@njit(cache=True, fastmath=True)
def _fold_in(items, w, pos_sorted, pool, Q, b, vec, lr, reg, warp, max_sampled, epochs, seed):
    _seed(seed)
    d = vec.shape[0]
    G = np.ones(d)
    n_pool = len(pool)
    n_pos = len(pos_sorted)
    for _ in range(epochs):
        for _ in range(len(items)):
            r = np.random.randint(len(items))
            ii = items[r]
            si = b[ii]
            for k in range(d):
                si += vec[k] * Q[ii, k]
            jj = -1
            weight = 0.0
            for trial in range(1, max_sampled + 1):
                cand = pool[np.random.randint(n_pool)]
                if _contains(pos_sorted, 0, n_pos, cand):
                    continue
                sj = b[cand]
                for k in range(d):
                    sj += vec[k] * Q[cand, k]
                if warp:
                    if sj > si - 1.0:
                        jj = cand
                        weight = np.log(max(1.0, np.floor((n_pool - 1) / trial)))
                        break
                else:
                    jj = cand
                    weight = 1.0 / (1.0 + np.exp(si - sj))
                    break
            if jj < 0:
                continue
            weight *= w[r]
            for k in range(d):
                g = weight * (Q[ii, k] - Q[jj, k]) - reg * vec[k]
                G[k] += g * g
                vec[k] += lr * g / np.sqrt(G[k])

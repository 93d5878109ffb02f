"""Bayesian personalised ranking (BPR-MF) trained by parallel, race-free SGD."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from numba import njit, prange

from recforge.config import FitOptions, ModelConfig
from recforge.data.interactions import Interactions
from recforge.models.factorization._base import (
    FactorRecommender,
    chunk_bounds,
    end_of_epoch,
    kernel_threads,
    rand_below,
    seed_sequence,
    splitmix_next,
)

__all__ = ["BPR", "BPRConfig", "draw_negatives"]

# Give up on a sample after this many rejected negatives (the user holds nearly all the candidates).
_MAX_TRIES = 64


@dataclass(frozen=True)
class BPRConfig(ModelConfig):
    """Hyperparameters of :class:`BPR`.

    Defaults chosen to hold up on both ML-100K protocols rather than one: uniform negatives with
    4 candidates (dynamic negative sampling) give loo-full HR@10/NDCG@10 0.098/0.048 and
    ratio-full Recall@20/NDCG@20 0.353/0.421 (3 seeds); the popularity negatives of implicit's BPR
    give 0.099/0.051 on loo-full but only 0.214/0.254 on ratio-full.
    """

    embedding_size: int = 64
    """Number of latent factors ``k`` (the item bias is extra)."""
    epochs: int = 100
    """Epochs; each makes as many updates as there are training pairs."""
    learning_rate: float = 0.01
    """SGD step size."""
    learning_rate_decay: float = 1.0
    """The step size is multiplied by this after every epoch (1.0: constant)."""
    reg: float = 0.01
    """L2 penalty on the user and item factors, applied at every update that touches them."""
    reg_bias: float = 0.01
    """L2 penalty on the item biases."""
    item_bias: bool = True
    """Learn an item bias ``b_i`` (as implicit's BPR does)."""
    negatives: Literal["uniform", "popularity"] = "uniform"
    """How negatives are drawn among the user's non-positives: ``uniform`` over the items (the BPR
    paper) or ``popularity``: proportional to each item's training count, as implicit's BPR does,
    by picking the item of a random training pair (slightly better on leave-last-out splits,
    where the held-out item is often a popular one, much worse on random holdouts)."""
    n_candidates: int = 4
    """Negatives drawn per update; with more than one, the update uses the candidate the model
    currently scores highest (dynamic negative sampling, Zhang et al., SIGIR 2013). 1 is plain BPR."""
    collisions: Literal["redraw", "skip"] = "redraw"
    """What happens when a drawn negative is one of the user's positives: ``redraw`` until a true
    negative turns up (up to 64 tries), or ``skip`` the update, as implicit's BPR does (with
    popularity negatives this leaves active users' pairs less trained: set it, with ``negatives=
    "popularity"``, ``n_candidates=1``, ``sampling="pairs"`` and ``init_std=0.0045``, to reproduce
    implicit's BPR)."""
    init_std: float = 0.01
    """Standard deviation of the normal initialisation of the factors."""
    sampling: Literal["pairs", "users"] = "users"
    """What an epoch visits: ``users``: as many draws as there are pairs, each a uniform random
    user and one of their positives (the sampler of NGCF/LightGCN; every user weighs the same,
    which lifts ML-100K loo-full NDCG@10 from 0.047 to 0.054); ``pairs``: every training pair
    once, in random order (active users weigh more). ``users`` needs ``parallel="hogwild"``."""
    parallel: Literal["blocks", "hogwild"] = "hogwild"
    """How threads share the work. ``blocks``: race-free rounds over user x item blocks (a fit
    is a pure function of the seed and the thread count; ``threads`` barriers per epoch).
    ``hogwild``: each thread runs every epoch over its own users with unsynchronised item updates
    (one parallel region per fit, so it degrades least on an oversubscribed machine, but with
    several threads the result varies from run to run)."""

    def validate(self) -> None:
        self.check(self.embedding_size >= 1, "embedding_size", "must be >= 1")
        self.check(self.epochs >= 1, "epochs", "must be >= 1")
        self.check(0 < self.learning_rate < 10, "learning_rate", "must be in (0, 10)")
        self.check(0 < self.learning_rate_decay <= 1, "learning_rate_decay", "must be in (0, 1]")
        self.check(self.reg >= 0, "reg", "must be >= 0")
        self.check(self.reg_bias >= 0, "reg_bias", "must be >= 0")
        self.check(self.init_std >= 0, "init_std", "must be >= 0")
        self.check(1 <= self.n_candidates <= 1024, "n_candidates", "must be in [1, 1024]")
        self.check(
            self.sampling == "pairs" or self.parallel == "hogwild",
            "sampling",
            "sampling='users' needs parallel='hogwild' (set sampling='pairs' for parallel='blocks')",
        )


class BPR(FactorRecommender):
    r"""BPR-MF: matrix factorisation trained to rank each user's positives above other items.

    With :math:`\hat x_{ui} = b_i + p_u^\top q_i`, it maximises over triples of a user, an observed
    (positive) item ``i`` and an unobserved item ``j``

    .. math::
        \sum_{(u,i,j)} \ln \sigma(\hat x_{ui} - \hat x_{uj})
        - \lambda (\lVert p_u \rVert^2 + \lVert q_i \rVert^2 + \lVert q_j \rVert^2)
        - \lambda_b (b_i^2 + b_j^2)

    by SGD: every epoch makes as many updates as there are positive pairs, each on a uniform
    random user and one of their positives (``sampling="users"``) or on every pair once in random
    order (``sampling="pairs"``), each with a
    negative ``j`` drawn by rejection against the user's positives (a bit test, or a binary search
    of the sorted CSR row), so a positive is never used as a negative. Negatives are uniform over
    the items or proportional to their popularity (``negatives``); with ``n_candidates > 1`` the
    update uses the highest-scoring of that many draws (dynamic negative sampling).

    Threads (``FitOptions.threads``; one thread below ~10^7 multiply-adds per epoch):

    - ``parallel="hogwild"`` (default): Hogwild (Niu et al., NIPS 2011). Users are split into one
      contiguous range per thread with equal shares of the pairs; each thread runs all epochs on
      its range in one parallel region, with unsynchronised updates of the shared item vectors.
      With one thread the fit is a pure function of the seed; with several, update races make
      it vary slightly from run to run.
    - ``parallel="blocks"``: race-free. Users and items are split at random (afresh every epoch)
      into ``T`` blocks each, and an epoch runs ``T`` rounds; in round ``s`` thread ``b`` trains
      the pairs of user block ``b`` whose positive lies in item block ``(b + s) mod T``, drawing
      negatives from that item block too. No two threads touch the same vector, so the fit is a
      pure function of the seed and the thread count, and because the blocks are redrawn each
      epoch the negatives keep their distribution in expectation. It costs ``T`` barriers per
      epoch, which an oversubscribed machine makes expensive.

    References: S. Rendle, C. Freudenthaler, Z. Gantner, L. Schmidt-Thieme, "BPR: Bayesian
    Personalized Ranking from Implicit Feedback", UAI 2009; W. Zhang, T. Chen, J. Wang, Y. Yu,
    "Optimizing Top-N Collaborative Filtering via Dynamic Negative Item Sampling", SIGIR 2013;
    F. Niu, B. Recht, C. Re, S. Wright, "Hogwild!", NIPS 2011; block rounds as in R. Gemulla et al.,
    "Large-Scale Matrix Factorization with Distributed Stochastic Gradient Descent", KDD 2011.
    """

    name = "bpr"
    task = "ranking"
    config_class = BPRConfig

    def _fit(self, data: Interactions, options: FitOptions) -> None:
        cfg = self.config
        rng = seed_sequence(options, 16)
        k = cfg.embedding_size
        P = rng.normal(0.0, cfg.init_std, (data.n_users, k)).astype(np.float32)
        Q = rng.normal(0.0, cfg.init_std, (data.n_items, k)).astype(np.float32)
        Q[~self.item_known_] = 0.0
        bias = np.zeros(data.n_items, np.float32)
        csr = data.csr()
        indptr = csr.indptr.astype(np.int64)
        indices = csr.indices.astype(np.int32)
        bitmap = positives_bitmap(indptr, indices, data.n_items)
        base_seed = np.uint64(rng.integers(0, 2**63))
        self.train_auc_ = np.zeros(cfg.epochs)
        self.updates_ = np.zeros(cfg.epochs, np.int64)
        popular = cfg.negatives == "popularity"
        tries = _MAX_TRIES if cfg.collisions == "redraw" else 1
        lr, reg, reg_b = np.float32(cfg.learning_rate), np.float32(cfg.reg), np.float32(cfg.reg_bias)
        decay = np.float32(cfg.learning_rate_decay)
        with kernel_threads(options, work=(5.0 + cfg.n_candidates) * len(data) * k) as threads:
            if cfg.parallel == "hogwild":
                by_user = cfg.sampling == "users"
                # threads split the users at equal shares of their draws: pairs, or users
                bounds = chunk_bounds(csr.indptr, float(by_user), float(not by_user), threads)
                active = (np.diff(indptr) > 0).astype(np.int64)
                share = np.add.reduceat(active, bounds[:-1]) if by_user else np.diff(indptr[bounds])
                draws = np.floor(len(indices) * share / max(share.sum(), 1) + 0.5).astype(np.int64)
                stats = np.zeros((cfg.epochs, len(bounds) - 1, 2), np.int64)
                # verbose runs and epoch callbacks see every epoch, at the price of one parallel region each
                step = 1 if options.verbose or options.epoch_callback is not None else cfg.epochs
                for e0 in range(0, cfg.epochs, step):
                    _bpr_hogwild(
                        indptr,
                        indices,
                        bitmap,
                        bounds,
                        draws,
                        P,
                        Q,
                        bias,
                        popular,
                        cfg.n_candidates,
                        tries,
                        by_user,
                        base_seed,
                        e0,
                        min(step, cfg.epochs - e0),
                        lr,
                        decay,
                        reg,
                        reg_b,
                        cfg.item_bias,
                        stats,
                    )
                    self._report(stats[:, :, 0].sum(1), stats[:, :, 1].sum(1), e0, step, options)
                    if options.epoch_callback is not None and end_of_epoch(
                        self, options, e0 + 1, lambda: self._set_factors(P, Q, bias)
                    ):
                        self.train_auc_, self.updates_ = self.train_auc_[: e0 + 1], self.updates_[: e0 + 1]
                        break
            else:
                entries = np.empty((2, len(indices)), np.int32)
                scratch = np.empty((2, len(indices)), np.int32)
                for epoch in range(cfg.epochs):
                    correct, used = _bpr_epoch(
                        indptr,
                        indices,
                        bitmap,
                        P,
                        Q,
                        bias,
                        popular,
                        cfg.n_candidates,
                        tries,
                        entries,
                        scratch,
                        threads,
                        base_seed,
                        epoch,
                        np.float32(lr * decay**epoch),
                        reg,
                        reg_b,
                        cfg.item_bias,
                    )
                    self._report(np.array([correct]), np.array([used]), epoch, 1, options, offset=epoch)
                    if options.epoch_callback is not None and end_of_epoch(
                        self, options, epoch + 1, lambda: self._set_factors(P, Q, bias)
                    ):
                        self.train_auc_, self.updates_ = self.train_auc_[: epoch + 1], self.updates_[: epoch + 1]
                        break
        self._set_factors(P, Q, bias)

    def _set_factors(self, P: np.ndarray, Q: np.ndarray, bias: np.ndarray) -> None:
        self.user_factors_ = P
        self.item_factors_ = Q
        self.item_bias_ = bias

    def _report(
        self, correct: np.ndarray, used: np.ndarray, e0: int, n: int, options: FitOptions, offset: int = 0
    ) -> None:
        for e in range(e0, min(e0 + n, len(self.train_auc_))):
            self.train_auc_[e] = correct[e - offset] / max(used[e - offset], 1)
            self.updates_[e] = used[e - offset]
            if options.verbose:
                print(f"bpr epoch {e + 1}: train AUC {self.train_auc_[e]:.4f}")

    def _item_offsets(self) -> np.ndarray | float:
        return self.item_bias_


# A users x items bit matrix answers "is (u, j) a positive?" with one load; above this many bits
# (32 MiB) the sampler binary-searches the sorted CSR row instead. On ML-100K the bitmap takes
# 0.2 MB and halves the cost of a draw.
BITMAP_MAX_BITS = 1 << 28


def positives_bitmap(indptr: np.ndarray, indices: np.ndarray, n_items: int) -> np.ndarray:
    """The users x items positives as packed uint64 bits, or an empty array when too large."""
    n_users = len(indptr) - 1
    if n_users * n_items > BITMAP_MAX_BITS:
        return np.zeros(0, np.uint64)
    rows = np.repeat(np.arange(n_users, dtype=np.int64), np.diff(indptr))
    flat = rows * n_items + indices
    bits = np.zeros((n_users * n_items + 63) // 64, np.uint64)
    np.bitwise_or.at(bits, flat >> 6, np.left_shift(np.uint64(1), (flat & 63).astype(np.uint64)))
    return bits


@njit(cache=True, inline="always")
def _is_positive(indptr, indices, bitmap, n_items, u, j):  # type: ignore[no-untyped-def]
    """Whether ``j`` is in user ``u``'s row: a bit test, else a branch-free binary search of the
    sorted row (its probes are unpredictable, so a mispredicted branch costs more than a compare)."""
    if bitmap.shape[0] > 0:
        bit = np.int64(u) * n_items + j
        return (bitmap[bit >> 6] >> np.uint64(bit & 63)) & np.uint64(1) != 0
    base = indptr[u]
    n = indptr[u + 1] - base
    if n == 0:
        return False
    while n > 1:
        half = n >> 1
        base = base + half if indices[base + half] <= j else base
        n -= half
    return indices[base] == j


@njit(cache=True, inline="always")
def _sample_negative(indptr, indices, bitmap, n_items, u, cand, lo, size, state, slot, tries):  # type: ignore[no-untyped-def]
    """A uniform draw from ``cand[lo:lo+size]`` that ``u`` has not interacted with, or -1."""
    for _ in range(tries):
        j = cand[lo + rand_below(state, slot, size)]
        if not _is_positive(indptr, indices, bitmap, n_items, u, j):
            return j
    return -1


@njit(cache=True, inline="always")
def _sample_popular(indptr, indices, bitmap, n_items, u, item_block, s, B, state, slot, tries):  # type: ignore[no-untyped-def]
    """The item of a uniform random training pair, kept if it lies in item block ``s`` and is not
    ``u``'s: a draw proportional to popularity among ``u``'s non-positives in the block, or -1."""
    nnz = indices.shape[0]
    for _ in range(tries * B):
        j = indices[rand_below(state, slot, nnz)]
        if B > 1 and item_block[j] != s:
            continue
        if not _is_positive(indptr, indices, bitmap, n_items, u, j):
            return j
    return -1


@njit(cache=True)
def draw_negatives(indptr, indices, users, n_items, seed, popular=False):  # type: ignore[no-untyped-def]
    """One negative per entry of ``users`` from all ``n_items`` items, drawn as the trainer draws
    them (uniform, or ``popular``) with binary search; ``-1`` where none was found (for tests)."""
    cand = np.arange(n_items).astype(np.int32)
    state = np.array([np.uint64(seed)])
    no_bitmap = np.zeros(0, np.uint64)
    block = np.zeros(n_items, np.int32)
    out = np.empty(users.shape[0], np.int64)
    for t in range(users.shape[0]):
        if popular:
            out[t] = _sample_popular(indptr, indices, no_bitmap, n_items, users[t], block, 0, 1, state, 0, _MAX_TRIES)
        else:
            out[t] = _sample_negative(
                indptr, indices, no_bitmap, n_items, users[t], cand, 0, n_items, state, 0, _MAX_TRIES
            )
    return out


@njit(cache=True)
def _shuffle(arr, state, slot):  # type: ignore[no-untyped-def]
    for t in range(arr.shape[0] - 1, 0, -1):
        s = rand_below(state, slot, t + 1)
        tmp = arr[t]
        arr[t] = arr[s]
        arr[s] = tmp


@njit(cache=True, parallel=True, fastmath=True)
def _bpr_epoch(
    indptr,
    indices,
    bitmap,
    P,
    Q,
    bias,
    popular,
    n_cand,
    tries,
    entries,
    scratch,
    B,
    base_seed,
    epoch,
    lr,  # type: ignore[no-untyped-def]
    reg,
    reg_b,
    use_bias,
):
    n_users = P.shape[0]
    n_items = Q.shape[0]
    k = P.shape[1]
    state = np.empty(B + 1, np.uint64)
    for b in range(B + 1):
        state[b] = base_seed ^ (np.uint64(epoch) * np.uint64(0x9E3779B97F4A7C15)) ^ np.uint64(b * 7919 + 1)
        splitmix_next(state, b)
    # random item blocks of equal size; block s holds items_perm[item_off[s]:item_off[s + 1]]
    items_perm = np.arange(n_items).astype(np.int32)
    _shuffle(items_perm, state, B)
    item_block = np.empty(n_items, np.int32)
    item_off = np.empty(B + 1, np.int64)
    for s in range(B + 1):
        item_off[s] = (s * n_items) // B
    for s in range(B):
        for t in range(item_off[s], item_off[s + 1]):
            item_block[items_perm[t]] = s
    # random user blocks cut at equal shares of the positives
    users_perm = np.arange(n_users).astype(np.int32)
    _shuffle(users_perm, state, B)
    user_off = np.zeros(B + 1, np.int64)  # into users_perm
    entry_off = np.zeros(B + 1, np.int64)  # into entries
    nnz = indptr[n_users]
    acc = 0
    b = 1
    for t in range(n_users):
        acc += indptr[users_perm[t] + 1] - indptr[users_perm[t]]
        while b < B and acc * B >= b * nnz:
            user_off[b] = t + 1
            entry_off[b] = acc
            b += 1
    for bb in range(b, B + 1):
        user_off[bb] = n_users
        entry_off[bb] = nnz
    # bucket[b, s]: start of the pairs of user block b with the positive in item block s
    bucket = np.zeros((B, B + 1), np.int64)
    correct = np.zeros(B, np.int64)
    used = np.zeros(B, np.int64)
    # B parallel rounds: the fewer, the less a busy machine's scheduler stalls the barriers
    for s in range(B):
        for b in prange(B):
            if s == 0:
                _fill_block(
                    indptr,
                    indices,
                    users_perm,
                    user_off[b],
                    user_off[b + 1],
                    entry_off[b],
                    entry_off[b + 1],
                    item_block,
                    B,
                    entries,
                    scratch,
                    bucket[b],
                    state,
                    b,
                )
            ib = (b + s) % B
            c, n = _train_bucket(
                indptr,
                indices,
                bitmap,
                entries,
                bucket[b, ib],
                bucket[b, ib + 1],
                items_perm,
                item_off[ib],
                item_off[ib + 1] - item_off[ib],
                item_block,
                ib,
                B,
                popular,
                n_cand,
                tries,
                P,
                Q,
                bias,
                k,
                lr,
                reg,
                reg_b,
                use_bias,
                state,
                b,
            )
            correct[b] += c
            used[b] += n
    return correct.sum(), used.sum()


@njit(cache=True)
def _fill_block(
    indptr,
    indices,
    users_perm,
    ulo,
    uhi,
    elo,
    ehi,
    item_block,
    B,
    entries,
    scratch,  # type: ignore[no-untyped-def]
    bucket,
    state,
    slot,
):
    """Lay out user block's pairs in ``entries[:, elo:ehi]``: shuffled, then grouped by item block."""
    t = elo
    for p in range(ulo, uhi):
        u = users_perm[p]
        for m in range(indptr[u], indptr[u + 1]):
            scratch[0, t] = u
            scratch[1, t] = indices[m]
            t += 1
    # Fisher-Yates on the pairs, then a stable counting sort by the positive's item block
    for t in range(ehi - 1, elo, -1):
        s = elo + rand_below(state, slot, t - elo + 1)
        a0 = scratch[0, t]
        a1 = scratch[1, t]
        scratch[0, t] = scratch[0, s]
        scratch[1, t] = scratch[1, s]
        scratch[0, s] = a0
        scratch[1, s] = a1
    counts = np.zeros(B + 1, np.int64)
    for t in range(elo, ehi):
        counts[item_block[scratch[1, t]] + 1] += 1
    bucket[0] = elo
    for s in range(B):
        bucket[s + 1] = bucket[s] + counts[s + 1]
    pos = bucket[:B].copy()
    for t in range(elo, ehi):
        s = item_block[scratch[1, t]]
        entries[0, pos[s]] = scratch[0, t]
        entries[1, pos[s]] = scratch[1, t]
        pos[s] += 1


@njit(cache=True, fastmath=True)
def _train_bucket(
    indptr,
    indices,
    bitmap,
    entries,
    lo,
    hi,
    cand,
    clo,
    csize,
    item_block,
    s,
    B,
    popular,  # type: ignore[no-untyped-def]
    n_cand,
    tries,
    P,
    Q,
    bias,
    k,
    lr,
    reg,
    reg_b,
    use_bias,
    state,
    slot,
):
    """SGD over ``entries[:, lo:hi]``, negatives drawn from item block ``s`` of ``B``."""
    correct = 0
    used = 0
    if csize == 0:
        return correct, used
    n_items = Q.shape[0]
    one = np.float32(1.0)
    for t in range(lo, hi):
        u = entries[0, t]
        i = entries[1, t]
        pu = P[u]
        j = -1
        best = np.float32(0.0)
        for _ in range(n_cand):
            if popular:
                c = _sample_popular(indptr, indices, bitmap, n_items, u, item_block, s, B, state, slot, tries)
            else:
                c = _sample_negative(indptr, indices, bitmap, n_items, u, cand, clo, csize, state, slot, tries)
            if c < 0:
                continue
            if n_cand == 1:
                j = c
                break
            # dynamic negative sampling: keep the candidate the model ranks highest
            sc = bias[c]
            qc = Q[c]
            for f in range(k):
                sc += pu[f] * qc[f]
            if j < 0 or sc > best:
                best = sc
                j = c
        if j < 0:
            continue
        qi = Q[i]
        qj = Q[j]
        x = bias[i] - bias[j]
        for f in range(k):
            x += pu[f] * (qi[f] - qj[f])
        if x > 0:
            correct += 1
        used += 1
        z = one / (one + np.exp(x))
        for f in range(k):
            puf = pu[f]
            qif = qi[f]
            qjf = qj[f]
            pu[f] = puf + lr * (z * (qif - qjf) - reg * puf)
            qi[f] = qif + lr * (z * puf - reg * qif)
            qj[f] = qjf + lr * (-z * puf - reg * qjf)
        if use_bias:
            bias[i] += lr * (z - reg_b * bias[i])
            bias[j] += lr * (-z - reg_b * bias[j])
    return correct, used


@njit(cache=True, parallel=True, fastmath=True)
def _bpr_hogwild(
    indptr,
    indices,
    bitmap,
    bounds,
    draws,
    P,
    Q,
    bias,
    popular,
    n_cand,
    tries,
    by_user,
    base_seed,
    e0,  # type: ignore[no-untyped-def]
    n_epochs,
    lr0,
    decay,
    reg,
    reg_b,
    use_bias,
    stats,
):
    """Epochs ``e0 .. e0 + n_epochs`` with one thread per user range ``bounds``, Hogwild-style."""
    n_items = Q.shape[0]
    k = P.shape[1]
    T = bounds.shape[0] - 1
    all_items = np.arange(n_items).astype(np.int32)
    no_blocks = np.zeros(1, np.int32)
    for t in prange(T):
        lo = indptr[bounds[t]]
        hi = indptr[bounds[t + 1]]
        n_draws = draws[t] if by_user else hi - lo
        entries = np.empty((2, n_draws), np.int32)
        if not by_user:
            for u in range(bounds[t], bounds[t + 1]):
                for m in range(indptr[u], indptr[u + 1]):
                    entries[0, m - lo] = u
                    entries[1, m - lo] = indices[m]
        active = np.empty(bounds[t + 1] - bounds[t], np.int32)
        n_active = 0
        for u in range(bounds[t], bounds[t + 1]):
            if indptr[u + 1] > indptr[u]:
                active[n_active] = u
                n_active += 1
        if n_draws > 0 and n_active > 0:
            for e in range(e0, e0 + n_epochs):
                lr = np.float32(lr0 * decay**e)
                state = np.empty(1, np.uint64)
                state[0] = (
                    base_seed ^ (np.uint64(e) * np.uint64(0x9E3779B97F4A7C15)) ^ np.uint64(t * 7919 + 1)
                )
                splitmix_next(state, 0)
                if by_user:
                    # LightGCN/NGCF's sampler: a uniform user, then a uniform positive of theirs
                    for a in range(n_draws):
                        u = active[rand_below(state, 0, n_active)]
                        entries[0, a] = u
                        entries[1, a] = indices[indptr[u] + rand_below(state, 0, indptr[u + 1] - indptr[u])]
                else:
                    for a in range(hi - lo - 1, 0, -1):
                        b = rand_below(state, 0, a + 1)
                        x0 = entries[0, a]
                        x1 = entries[1, a]
                        entries[0, a] = entries[0, b]
                        entries[1, a] = entries[1, b]
                        entries[0, b] = x0
                        entries[1, b] = x1
                c, n = _train_bucket(
                    indptr,
                    indices,
                    bitmap,
                    entries,
                    0,
                    n_draws,
                    all_items,
                    0,
                    n_items,
                    no_blocks,
                    0,
                    1,
                    popular,
                    n_cand,
                    tries,
                    P,
                    Q,
                    bias,
                    k,
                    lr,
                    reg,
                    reg_b,
                    use_bias,
                    state,
                    0,
                )
                stats[e, t, 0] += c
                stats[e, t, 1] += n

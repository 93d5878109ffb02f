"""Compiled kernels of BPR: the positives test, the negative samplers and the two epoch drivers.

:func:`train_block` is the one SGD loop over a run of (user, positive) pairs; the race-free
``blocks`` driver (:func:`bpr_blocks_epoch`) and the ``hogwild`` driver (:func:`bpr_hogwild_epochs`)
both call it with the same bundles: the positives ``(indptr, indices, bitmap)``, the parameters
``(P, Q, bias)`` and the :class:`SGDSettings`, so the two cannot drift apart.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit, prange

from recforge.models._prefetch import prefetch

__all__ = [
    "BITMAP_MAX_BITS",
    "LOOKAHEAD",
    "MAX_TRIES",
    "SGDSettings",
    "bpr_blocks_epoch",
    "bpr_hogwild_epochs",
    "draw_negatives",
    "positives_bitmap",
    "train_block",
]

# Give up on a sample after this many rejected negatives (the user holds nearly all the candidates).
MAX_TRIES = 64


class SGDSettings(NamedTuple):
    """The hyperparameters every SGD update reads (float32 where the kernels compute in float32)."""

    popular: bool
    """Negatives proportional to popularity (else uniform)."""
    n_candidates: int
    """Negatives drawn per update; the highest-scoring one is used."""
    tries: int
    """Draws before a negative is given up (1: skip on a collision)."""
    learning_rate: np.float32
    """Step size of the first epoch."""
    decay: np.float32
    """Factor on the step size per epoch."""
    reg: np.float32
    """L2 penalty on the factors."""
    reg_bias: np.float32
    """L2 penalty on the item biases."""
    use_bias: bool
    """Learn the item biases."""
    hinge: bool = False
    """Pairwise hinge loss ``max(0, margin - x_uij)`` instead of BPR's ``-ln sigmoid(x_uij)``."""
    margin: np.float32 = np.float32(1.0)
    """The hinge's margin."""


# A counter-free splitmix64 stream per independent unit of work: results depend only on the seed and
# the unit's id, never on which thread ran it, so parallel kernels stay deterministic.
@njit(cache=True, inline="always")
def splitmix_next(state: np.ndarray, slot: int) -> np.uint64:
    z = state[slot] + np.uint64(0x9E3779B97F4A7C15)
    state[slot] = z
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@njit(cache=True, inline="always")
def rand_below(state: np.ndarray, slot: int, n: int) -> int:
    """A uniform integer in ``[0, n)`` (Lemire's multiply-shift on the high 32 bits; n < 2**32)."""
    x = splitmix_next(state, slot) >> np.uint64(32)
    return np.int64((x * np.uint64(n)) >> np.uint64(32))


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
            out[t] = _sample_popular(indptr, indices, no_bitmap, n_items, users[t], block, 0, 1, state, 0, MAX_TRIES)
        else:
            out[t] = _sample_negative(
                indptr, indices, no_bitmap, n_items, users[t], cand, 0, n_items, state, 0, MAX_TRIES
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
def bpr_blocks_epoch(pos, params, settings, lr, entries, scratch, B, base_seed, epoch):  # type: ignore[no-untyped-def]
    """One race-free epoch: ``B`` rounds over random user x item blocks, ``B`` threads each round.

    Args:
        pos: The positives ``(indptr, indices, bitmap)`` (CSR of the users, :func:`positives_bitmap`).
        params: ``(P, Q, bias)``, updated in place.
        settings: :class:`SGDSettings`.
        lr: This epoch's step size.
        entries, scratch: ``(2, nnz)`` int32 work arrays.
        B: Blocks (threads).
        base_seed, epoch: The stream of random draws.

    Returns:
        ``(correct, used)``: updates whose positive already outscored the negative, and updates made.
    """
    indptr, indices, _ = pos
    P, Q, _ = params
    n_users = P.shape[0]
    n_items = Q.shape[0]
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
                _fill_block(indptr, indices, users_perm, user_off[b], user_off[b + 1], entry_off[b],
                            entry_off[b + 1], item_block, B, entries, scratch, bucket[b], state, b)
            ib = (b + s) % B
            negatives = (items_perm, item_off[ib], item_off[ib + 1] - item_off[ib], item_block, ib, B)
            c, n = train_block(pos, params, settings, lr, entries, bucket[b, ib], bucket[b, ib + 1],
                               negatives, state, b)
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


# Updates drawn ahead of their use (see :func:`train_block`): the negatives of update ``t + LOOKAHEAD``
# are drawn at update ``t`` and their item rows prefetched; the user's row of positives is
# prefetched ``LOOKAHEAD`` updates before that, and the user's and positive's vectors 3x ahead.
LOOKAHEAD = 8


@njit(cache=True, inline="always")
def _prefetch_row(arr, k):  # type: ignore[no-untyped-def]
    """Prefetch the cache lines of a float32 vector of length ``k`` (16 to a 64-byte line)."""
    for f in range(0, k, 16):
        prefetch(arr, f)


@njit(cache=True, inline="always")
def _draw_candidates(pos, negatives, settings, n_items, u, out, state, slot):  # type: ignore[no-untyped-def]
    """Draw an update's ``n_candidates`` negatives for user ``u`` into ``out`` (-1: none found)."""
    indptr, indices, bitmap = pos
    cand, clo, csize, item_block, s, B = negatives
    for a in range(settings.n_candidates):
        if settings.popular:
            out[a] = _sample_popular(indptr, indices, bitmap, n_items, u, item_block, s, B, state, slot,
                                     settings.tries)
        else:
            out[a] = _sample_negative(indptr, indices, bitmap, n_items, u, cand, clo, csize, state, slot,
                                      settings.tries)


@njit(cache=True, fastmath=True)
def train_block(pos, params, settings, lr, entries, lo, hi, negatives, state, slot):  # type: ignore[no-untyped-def]
    """SGD over the pairs ``entries[:, lo:hi]`` (rows: user, positive item), updating ``params``.

    The negatives are drawn :data:`LOOKAHEAD` updates ahead of their use, in the same order from
    the same stream (a draw depends only on the positives, never on the parameters), so the
    results are those of drawing them at the update; meanwhile the memory the coming updates will
    touch is prefetched (:mod:`recforge.models._prefetch`), which hides most of the cache misses
    that bound this loop.

    Args:
        pos, params, settings: As for :func:`bpr_blocks_epoch`.
        lr: The step size.
        entries, lo, hi: The pairs to train.
        negatives: Where negatives come from: ``(cand, clo, csize, item_block, s, B)``, uniform
            draws from ``cand[clo:clo + csize]`` or popularity draws within item block ``s`` of ``B``.
        state, slot: The random stream.

    Returns:
        ``(correct, used)`` as for :func:`bpr_blocks_epoch`.
    """
    indptr, indices, bitmap = pos
    P, Q, bias = params
    n_cand = settings.n_candidates
    reg = settings.reg
    reg_b = settings.reg_bias
    use_bias = settings.use_bias
    k = P.shape[1]
    correct = 0
    used = 0
    if negatives[2] == 0 or hi <= lo:
        return correct, used
    n_items = Q.shape[0]
    one = np.float32(1.0)
    L = LOOKAHEAD
    ring = np.empty((L, n_cand), np.int64)
    # prime the pipeline: the first updates' rows of positives, then their negatives
    for t in range(lo, min(hi, lo + 2 * L)):
        u = entries[0, t]
        prefetch(indptr, u)
        prefetch(P[u], 0)
        prefetch(Q[entries[1, t]], 0)
    for t in range(lo, min(hi, lo + L)):
        _draw_candidates(pos, negatives, settings, n_items, entries[0, t], ring[(t - lo) % L], state, slot)
    for t in range(lo, hi):
        # the pipeline: vectors of update t + 3L, positives of t + 2L, negatives of t + L
        ahead = t + 3 * L
        if ahead < hi:
            ua = entries[0, ahead]
            prefetch(indptr, ua)
            _prefetch_row(P[ua], k)
            _prefetch_row(Q[entries[1, ahead]], k)
        ahead = t + 2 * L
        if ahead < hi and bitmap.shape[0] == 0:
            ua = entries[0, ahead]
            for m in range(indptr[ua], indptr[ua + 1], 16):
                prefetch(indices, m)
        u = entries[0, t]
        i = entries[1, t]
        pu = P[u]
        drawn = ring[(t - lo) % L]
        j = -1
        best = np.float32(0.0)
        for a in range(n_cand):
            c = drawn[a]
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
        ahead = t + L
        if ahead < hi:  # this update's slot now takes the negatives of update t + L
            _draw_candidates(pos, negatives, settings, n_items, entries[0, ahead], drawn, state, slot)
            for a in range(n_cand):
                if drawn[a] >= 0:
                    _prefetch_row(Q[drawn[a]], k)
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
        # the loss's negative derivative in x: sigmoid(-x) for BPR, 1 inside the hinge's margin
        if settings.hinge:
            z = one if x < settings.margin else np.float32(0.0)
        else:
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
def bpr_hogwild_epochs(pos, params, settings, bounds, draws, by_user, base_seed, e0, n_epochs, stats):  # type: ignore[no-untyped-def]
    """Epochs ``e0 .. e0 + n_epochs`` with one thread per user range ``bounds``, Hogwild-style.

    Thread ``t`` makes ``draws[t]`` updates per epoch (``by_user``: a uniform active user, then one
    of their positives) or visits its range's pairs in a fresh random order; ``stats[e, t]`` gets
    ``(correct, used)`` (see :func:`bpr_blocks_epoch`).
    """
    indptr, indices, _ = pos
    P, Q, _ = params
    n_items = Q.shape[0]
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
                lr = np.float32(settings.learning_rate * settings.decay**e)
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
                negatives = (all_items, 0, n_items, no_blocks, 0, 1)
                c, n = train_block(pos, params, settings, lr, entries, 0, n_draws, negatives, state, 0)
                stats[e, t, 0] += c
                stats[e, t, 1] += n

"""BPR's pipelined SGD loop (negatives drawn LOOKAHEAD updates ahead, memory prefetched) makes
exactly the updates of the plain loop that draws each update's negatives when it makes it."""

from __future__ import annotations

import numpy as np
import pytest
from numba import njit

from recforge.models.factorization._bpr_kernels import (
    LOOKAHEAD,
    MAX_TRIES,
    SGDSettings,
    _sample_negative,
    _sample_popular,
    positives_bitmap,
    splitmix_next,
    train_block,
)


@njit(cache=False, fastmath=True)
def _plain_train_block(pos, params, settings, lr, entries, lo, hi, negatives, state, slot):  # type: ignore[no-untyped-def]
    """The loop before pipelining (recforge 40ee1ec), kept as the reference."""
    indptr, indices, bitmap = pos
    P, Q, bias = params
    cand, clo, csize, item_block, s, B = negatives
    k = P.shape[1]
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
        for _ in range(settings.n_candidates):
            if settings.popular:
                c = _sample_popular(indptr, indices, bitmap, n_items, u, item_block, s, B, state, slot, settings.tries)
            else:
                c = _sample_negative(indptr, indices, bitmap, n_items, u, cand, clo, csize, state, slot, settings.tries)
            if c < 0:
                continue
            if settings.n_candidates == 1:
                j = c
                break
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
        if settings.hinge:
            z = one if x < settings.margin else np.float32(0.0)
        else:
            z = one / (one + np.exp(x))
        for f in range(k):
            puf = pu[f]
            qif = qi[f]
            qjf = qj[f]
            pu[f] = puf + lr * (z * (qif - qjf) - settings.reg * puf)
            qi[f] = qif + lr * (z * puf - settings.reg * qif)
            qj[f] = qjf + lr * (-z * puf - settings.reg * qjf)
        if settings.use_bias:
            bias[i] += lr * (z - settings.reg_bias * bias[i])
            bias[j] += lr * (-z - settings.reg_bias * bias[j])
    return correct, used


def _problem(seed: int, n_users: int = 40, n_items: int = 30, nnz: int = 500, heavy: bool = False):
    rng = np.random.default_rng(seed)
    keys = np.sort(rng.choice(n_users * n_items, nnz, replace=False))
    if heavy:  # user 0 holds all but two items: many rejected draws, some given up
        keys = np.union1d(keys, np.arange(n_items - 2))
    rows, cols = keys // n_items, keys % n_items
    indptr = np.zeros(n_users + 1, np.int64)
    np.cumsum(np.bincount(rows, minlength=n_users), out=indptr[1:])
    indices = cols.astype(np.int32)
    order = rng.permutation(len(keys))
    entries = np.stack([rows[order], cols[order]]).astype(np.int32)
    P = rng.normal(0, 0.1, (n_users, 16)).astype(np.float32)
    Q = rng.normal(0, 0.1, (n_items, 16)).astype(np.float32)
    bias = rng.normal(0, 0.1, n_items).astype(np.float32)
    return indptr, indices, entries, (P, Q, bias)


@pytest.mark.parametrize("popular", [False, True])
@pytest.mark.parametrize("n_cand", [1, 4])
@pytest.mark.parametrize("skip", [False, True])
@pytest.mark.parametrize("bitmap", [False, True])
@pytest.mark.parametrize("hinge", [False, True])
def test_pipelined_loop_makes_the_plain_loops_updates(popular, n_cand, skip, bitmap, hinge):
    indptr, indices, entries, params = _problem(3, heavy=True)
    n_items = params[1].shape[0]
    bits = positives_bitmap(indptr, indices, n_items) if bitmap else np.zeros(0, np.uint64)
    pos = (indptr, indices, bits)
    settings = SGDSettings(popular=popular, n_candidates=n_cand, tries=1 if skip else MAX_TRIES,
                           learning_rate=np.float32(0.05), decay=np.float32(1.0), reg=np.float32(0.01),
                           reg_bias=np.float32(0.01), use_bias=True, hinge=hinge, margin=np.float32(0.5))
    negatives = (np.arange(n_items).astype(np.int32), 0, n_items, np.zeros(1, np.int32), 0, 1)
    nnz = entries.shape[1]
    # runs shorter than, equal to and longer than the look-ahead, and an empty one
    for lo, hi in [(0, 0), (0, 1), (1, 1 + LOOKAHEAD), (10, 10 + 3 * LOOKAHEAD - 1), (0, nnz)]:
        got_params = tuple(a.copy() for a in params)
        ref_params = tuple(a.copy() for a in params)
        s1 = np.array([np.uint64(12345)])
        s2 = s1.copy()
        splitmix_next(s1, 0)
        splitmix_next(s2, 0)
        got = train_block(pos, got_params, settings, np.float32(0.05), entries, lo, hi, negatives, s1, 0)
        ref = _plain_train_block(pos, ref_params, settings, np.float32(0.05), entries, lo, hi, negatives, s2, 0)
        assert got == ref
        assert s1[0] == s2[0]  # the same number of draws from the stream
        for a, b in zip(got_params, ref_params, strict=True):
            np.testing.assert_array_equal(a, b)
    assert ref[1] > 0 and ref[0] > 0  # the full run trained and ordered some pairs


def test_blocked_negatives_match_too():
    """The race-free driver's negatives come from one item block (``cand[clo:clo + csize]``)."""
    indptr, indices, entries, params = _problem(5)
    n_items = params[1].shape[0]
    perm = np.random.default_rng(0).permutation(n_items).astype(np.int32)
    block = np.zeros(n_items, np.int32)
    block[perm[n_items // 2:]] = 1
    pos = (indptr, indices, np.zeros(0, np.uint64))
    for popular in (False, True):
        settings = SGDSettings(popular=popular, n_candidates=2, tries=MAX_TRIES, learning_rate=np.float32(0.05),
                               decay=np.float32(1.0), reg=np.float32(0.01), reg_bias=np.float32(0.01), use_bias=True)
        negatives = (perm, n_items // 2, n_items - n_items // 2, block, 1, 2)
        a = tuple(x.copy() for x in params)
        b = tuple(x.copy() for x in params)
        s1, s2 = np.array([np.uint64(7)]), np.array([np.uint64(7)])
        assert train_block(pos, a, settings, np.float32(0.05), entries, 0, entries.shape[1], negatives, s1, 0) == \
            _plain_train_block(pos, b, settings, np.float32(0.05), entries, 0, entries.shape[1], negatives, s2, 0)
        for x, y in zip(a, b, strict=True):
            np.testing.assert_array_equal(x, y)

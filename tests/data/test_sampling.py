"""The one negative sampler (recforge.data.sampling) and the samplers that draw from it."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from recforge.data.sampling import UnseenSampler, sample_unseen
from recforge.errors import ConfigError, DataError


def _seen(n_users: int, n_items: int, density: float, seed: int) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    return sp.csr_matrix((rng.random((n_users, n_items)) < density).astype(np.float32))


def _rows(m: sp.csr_matrix, u: int) -> set[int]:
    return set(m.indices[m.indptr[u] : m.indptr[u + 1]].tolist())


# ------------------------------------------------------------------------------ exact small cases
def test_exact_small_case_with_replacement():
    seen = sp.csr_matrix(np.array([[1, 1, 0, 0, 0], [0, 0, 0, 0, 1]], np.float32))
    got = sample_unseen(seen, np.array([0, 1, 0]), 4, 0)
    # default_rng(0).integers(0, 5, 12), seen pairs redrawn from the same stream (as the torch
    # models' NegativeSampler drew them before the one sampler)
    assert got.tolist() == [[4, 3, 2, 2], [1, 0, 0, 0], [3, 4, 3, 4]]


def test_exact_small_case_distinct():
    seen = sp.csr_matrix(np.array([[1, 0, 1, 0, 0, 0], [0, 0, 0, 0, 0, 0]], np.float32))
    got = sample_unseen(seen, np.array([0, 1]), 3, np.random.default_rng(5), replace=False)
    assert got.tolist() == [[3, 1, 4], [1, 0, 3]]  # as loo-sampled drew them before
    # a user with exactly n unseen items gets all of them
    assert sorted(sample_unseen(seen, np.array([0]), 4, 1, replace=False)[0].tolist()) == [1, 3, 4, 5]


def test_no_exclusions_is_the_plain_uniform_stream():
    got = sample_unseen(None, np.zeros(4, np.int64), 3, 7, n_items=10)
    np.testing.assert_array_equal(got, np.random.default_rng(7).integers(0, 10, size=(4, 3)))


# ------------------------------------------------------------------------------ properties
@settings(max_examples=60, deadline=None)
@given(
    n_users=st.integers(1, 10),
    n_items=st.integers(2, 14),
    density=st.floats(0.0, 0.9),
    seed=st.integers(0, 10_000),
    n=st.integers(0, 6),
    dist=st.sampled_from(["uniform", "popularity"]),
)
def test_never_returns_a_seen_item_shape_and_determinism(n_users, n_items, density, seed, n, dist):
    seen = _seen(n_users, n_items, density, seed)
    has_free = np.diff(seen.indptr) < n_items
    if dist == "popularity":
        counts = np.bincount(seen.indices, minlength=n_items)
        # a user needs an unseen item of positive weight
        has_free &= np.array([np.any((counts > 0) & ~np.isin(np.arange(n_items), list(_rows(seen, u))))
                              for u in range(n_users)])
        if counts.sum() == 0:
            return
    users = np.flatnonzero(has_free)
    users = np.concatenate([users, users[::-1]])
    a = sample_unseen(seen, users, n, seed, distribution=dist)
    b = sample_unseen(seen, users, n, np.random.default_rng(seed), distribution=dist)
    assert a.shape == (len(users), n) and a.dtype == np.int64
    np.testing.assert_array_equal(a, b)
    for row, u in zip(a, users, strict=True):
        assert not set(row.tolist()) & _rows(seen, u)
        assert all(0 <= j < n_items for j in row)


@settings(max_examples=60, deadline=None)
@given(n_users=st.integers(1, 8), n_items=st.integers(3, 14), density=st.floats(0.0, 0.7),
       seed=st.integers(0, 10_000), n=st.integers(0, 3))
def test_distinct_draws_are_distinct_unseen_and_deterministic(n_users, n_items, density, seed, n):
    seen = _seen(n_users, n_items, density, seed)
    users = np.flatnonzero(n_items - np.diff(seen.indptr) >= n)
    a = sample_unseen(seen, users, n, seed, replace=False)
    assert a.shape == (len(users), n)
    np.testing.assert_array_equal(a, sample_unseen(seen, users, n, seed, replace=False))
    for row, u in zip(a, users, strict=True):
        assert len(set(row.tolist())) == n and not set(row.tolist()) & _rows(seen, u)


def _old_protocol_sampler(seen: sp.csr_matrix, users: np.ndarray, n: int, seed: int) -> np.ndarray:
    """The loo-sampled candidate sampler as it was before the one sampler (reference)."""
    rng = np.random.default_rng(seed)
    n_items = seen.shape[1]
    out = np.empty((len(users), n), dtype=np.int64)
    for row, u in enumerate(users):
        pos = seen.indices[seen.indptr[u] : seen.indptr[u + 1]]
        free = n_items - len(pos)
        r = np.sort(rng.choice(free, size=n, replace=False))
        shift = np.searchsorted(pos - np.arange(len(pos)), r, side="right")
        out[row] = rng.permutation(r + shift)
    return out


@settings(max_examples=40, deadline=None)
@given(n_users=st.integers(1, 8), n_items=st.integers(5, 30), density=st.floats(0.0, 0.5),
       seed=st.integers(0, 10_000))
def test_loo_sampled_candidates_are_unchanged(n_users, n_items, density, seed):
    from recforge.evaluation.protocols import sample_negatives

    seen = _seen(n_users, n_items, density, seed)
    n = 3
    users = np.flatnonzero(n_items - np.diff(seen.indptr) >= n)
    np.testing.assert_array_equal(sample_negatives(seen, users, n, seed),
                                  _old_protocol_sampler(seen, users, n, seed))


def test_sequential_negatives_are_the_plain_uniform_stream():
    """The sequential models' BCE negatives: the same draws as ``rng.integers(0, n, shape)`` before."""
    rng_a, rng_b = np.random.default_rng(3), np.random.default_rng(3)
    got = sample_unseen(None, np.zeros(6 * 4, np.int64), 2, rng_a, n_items=9).reshape(6, 4, 2)
    np.testing.assert_array_equal(got, rng_b.integers(0, 9, size=(6, 4, 2)))


def test_popularity_follows_counts():
    seen = sp.csr_matrix(np.array([[1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0], [0, 0, 0, 0]], np.float32))
    draws = sample_unseen(seen, np.full(20_000, 3), 1, 0, distribution="popularity").ravel()
    freq = np.bincount(draws, minlength=4) / len(draws)
    np.testing.assert_allclose(freq, [3 / 6, 2 / 6, 1 / 6, 0.0], atol=0.015)


def test_uniform_frequencies_within_a_chi_square_band():
    seen = sp.csr_matrix(np.array([[1, 0, 1, 0, 0, 0, 0, 0, 0, 0]], np.float32))
    draws = sample_unseen(seen, np.zeros(16_000, np.int64), 1, 11).ravel()
    counts = np.bincount(draws, minlength=10)
    assert counts[0] == counts[2] == 0
    free = counts[np.r_[1, 3:10]]
    expected = len(draws) / 8
    chi2 = float(np.sum((free - expected) ** 2 / expected))
    assert chi2 < 24.3  # 0.999 quantile of chi-square with 7 degrees of freedom


def test_errors():
    seen = sp.csr_matrix(np.ones((1, 4), np.float32))
    with pytest.raises(DataError, match="every item"):
        sample_unseen(seen, np.array([0]), 2, 0)
    with pytest.raises(DataError, match="only 0 unseen"):
        sample_unseen(seen, np.array([0]), 1, 0, replace=False)
    with pytest.raises(DataError, match="out of range"):
        sample_unseen(seen, np.array([1]), 1, 0)
    with pytest.raises(ConfigError):
        sample_unseen(seen, np.array([0]), 1, 0, distribution="zipf")
    with pytest.raises(ConfigError):
        UnseenSampler(None)
    with pytest.raises(DataError):
        sample_unseen(sp.csr_matrix((1, 0)), np.array([0]), 1, 0)


# ------------------------------------------------------------------------------ BPR's numba sampler
def test_bpr_kernel_sampler_matches_sample_unseen_distribution():
    """BPR keeps its sampler inside the numba kernel; its draws must follow sample_unseen's law."""
    from recforge.models.factorization.bpr import draw_negatives

    seen = sp.csr_matrix(np.array([[1, 1, 0, 0, 0, 1, 0, 0], [0, 0, 0, 1, 0, 0, 0, 0]], np.float32))
    n_draws = 16_000
    users = np.repeat(np.array([0, 1]), n_draws // 2).astype(np.int64)
    kernel = draw_negatives(seen.indptr.astype(np.int64), seen.indices.astype(np.int32), users, 8, 123)
    shared = sample_unseen(seen, users, 1, 123).ravel()
    for u in (0, 1):
        k = kernel[users == u]
        s = shared[users == u]
        assert (k >= 0).all() and not set(k.tolist()) & _rows(seen, u)
        free = np.setdiff1d(np.arange(8), list(_rows(seen, u)))
        kc = np.bincount(k, minlength=8)[free]
        sc = np.bincount(s, minlength=8)[free]
        # two-sample chi-square homogeneity test, df = len(free) - 1 (5 or 6): 0.999 quantile < 22.5
        total = kc + sc
        ek, es = total * len(k) / (len(k) + len(s)), total * len(s) / (len(k) + len(s))
        chi2 = float(np.sum((kc - ek) ** 2 / ek + (sc - es) ** 2 / es))
        assert chi2 < 22.5, (u, kc, sc)

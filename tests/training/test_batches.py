"""Torch batchers, negative samplers and rating rows (recforge.training.batches)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

torch = pytest.importorskip("torch")
from hypothesis import given, settings
from hypothesis import strategies as st

from recforge.training.batches import NegativeSampler, RatingRows, TensorBatcher, torch_generator
from recforge.errors import DataError


def _positives(n_users: int, n_items: int, density: float, seed: int) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    m = rng.random((n_users, n_items)) < density
    return sp.csr_matrix(m.astype(np.float32))


# ------------------------------------------------------------------------------ TensorBatcher
def test_batcher_covers_every_row_once_per_epoch():
    x = torch.arange(103)
    y = x * 10
    b = TensorBatcher(x, y, batch_size=10, shuffle=True, generator=torch_generator(0))
    assert len(b) == 11
    for _ in range(2):
        batches = list(b)
        assert [len(bx) for bx, _ in batches] == [10] * 10 + [3]
        got = torch.cat([bx for bx, _ in batches])
        assert sorted(got.tolist()) == list(range(103))
        # rows stay aligned across tensors
        assert all(torch.equal(by, bx * 10) for bx, by in batches)


def test_batcher_shuffles_differently_each_epoch_and_reproducibly():
    x = torch.arange(50)
    a = TensorBatcher(x, batch_size=50, generator=torch_generator(3))
    b = TensorBatcher(x, batch_size=50, generator=torch_generator(3))
    e1, e2 = next(iter(a))[0], next(iter(a))[0]
    assert not torch.equal(e1, e2)
    assert torch.equal(e1, next(iter(b))[0]) and torch.equal(e2, next(iter(b))[0])


def test_batcher_without_shuffle_keeps_order_and_drop_last():
    b = TensorBatcher(torch.arange(7), batch_size=3, shuffle=False, drop_last=True)
    assert len(b) == 2
    assert [t[0].tolist() for t in b] == [[0, 1, 2], [3, 4, 5]]


def test_batcher_source_is_called_every_epoch():
    calls = []

    def source(epoch):
        calls.append(epoch)
        return (torch.full((4,), epoch),)

    b = TensorBatcher(source=source, batch_size=2, shuffle=False)
    assert len(b) == 2  # building the first epoch to know its length
    first = [t[0].tolist() for t in b]
    second = [t[0].tolist() for t in b]
    assert first == [[0, 0], [0, 0]] and second == [[1, 1], [1, 1]]
    assert calls == [0, 1]


def test_batcher_rejects_misaligned_tensors():
    with pytest.raises(ValueError):
        TensorBatcher(torch.arange(3), torch.arange(4), batch_size=2)


# ------------------------------------------------------------------------------ NegativeSampler
@settings(max_examples=40, deadline=None)
@given(
    n_users=st.integers(1, 12),
    n_items=st.integers(2, 15),
    density=st.floats(0.0, 0.95),
    seed=st.integers(0, 10_000),
    dist=st.sampled_from(["uniform", "popularity"]),
    n=st.integers(1, 6),
)
def test_sampler_never_returns_a_positive(n_users, n_items, density, seed, dist, n):
    pos = _positives(n_users, n_items, density, seed)
    dense = pos.toarray() > 0
    # every user needs at least one negative, and popularity needs some mass outside each user's positives
    dense[:, -1] = False
    pos = sp.csr_matrix(dense.astype(np.float32))
    if dist == "popularity" and pos.nnz == 0:
        dist = "uniform"
    sampler = NegativeSampler(pos, distribution=dist, seed=seed, max_rounds=3)
    users = np.random.default_rng(seed).integers(0, n_users, size=40)
    neg = sampler.sample(users, n)
    assert neg.shape == (40, n)
    assert (neg >= 0).all() and (neg < n_items).all()
    assert not dense[np.repeat(users, n), neg.ravel()].any()


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), ratio=st.integers(1, 5))
def test_pointwise_and_pairwise_never_label_a_positive_as_negative(seed, ratio):
    dense = _positives(20, 30, 0.4, seed).toarray() > 0
    dense[:, 0] = False
    pos = sp.csr_matrix(dense.astype(np.float32))
    sampler = NegativeSampler(pos, seed=seed)
    u, i = pos.nonzero()
    uu, ii, y = sampler.pointwise(u, i, ratio)
    assert len(uu) == len(u) * (1 + ratio) and y.dtype == np.float32
    assert (y[: len(u)] == 1).all() and (y[len(u):] == 0).all()
    np.testing.assert_array_equal(dense[uu, ii], y == 1)
    tu, ti, tj = sampler.pairwise(u, i, n=ratio)
    assert dense[tu, ti].all() and not dense[tu, tj].any()


def test_sampler_exact_fallback_when_almost_everything_is_positive():
    # user 0 has every item but one: rejection sampling almost never succeeds in 1 round
    dense = np.ones((2, 200), bool)
    dense[0, 137] = False
    dense[1, :100] = False
    sampler = NegativeSampler(sp.csr_matrix(dense.astype(np.float32)), seed=1, max_rounds=1)
    neg = sampler.sample(np.zeros(50, np.int64), 3)
    assert (neg == 137).all()


def test_sampler_popularity_follows_counts():
    # items 0..3 seen by 1, 2, 3, 4 of 10 users; user 9 has no positives and draws by popularity
    dense = np.zeros((10, 4), bool)
    for item, count in enumerate([1, 2, 3, 4]):
        dense[:count, item] = True
    sampler = NegativeSampler(sp.csr_matrix(dense.astype(np.float32)), distribution="popularity", seed=0)
    draws = sampler.sample(np.full(20_000, 9), 1).ravel()
    freq = np.bincount(draws, minlength=4) / len(draws)
    np.testing.assert_allclose(freq, [0.1, 0.2, 0.3, 0.4], atol=0.015)
    uniform = NegativeSampler(sp.csr_matrix(dense.astype(np.float32)), seed=0).sample(np.full(20_000, 9), 1)
    np.testing.assert_allclose(np.bincount(uniform.ravel(), minlength=4) / 20_000, 0.25, atol=0.015)


def test_sampler_is_deterministic_under_a_seed():
    pos = _positives(30, 40, 0.2, 0)
    users = np.arange(30)
    a = NegativeSampler(pos, seed=5).sample(users, 4)
    b = NegativeSampler(pos, seed=5).sample(users, 4)
    c = NegativeSampler(pos, seed=6).sample(users, 4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_sampler_errors_when_a_user_has_no_negative():
    sampler = NegativeSampler(sp.csr_matrix(np.ones((2, 3), np.float32)), seed=0, max_rounds=2)
    with pytest.raises(DataError, match="every item"):
        sampler.sample(np.array([0]), 1)


def test_is_positive_matches_the_matrix():
    pos = _positives(15, 9, 0.3, 2)
    u, i = np.meshgrid(np.arange(15), np.arange(9), indexing="ij")
    got = NegativeSampler(pos, seed=0).is_positive(u.ravel(), i.ravel())
    np.testing.assert_array_equal(got, pos.toarray().ravel() > 0)


# ------------------------------------------------------------------------------ RatingRows
def _ratings():
    # rows 0, 2, 3 rated; (3, 0) is a stored 0 rating, which counts as observed
    r, c = [0, 0, 2, 3, 3, 3], [0, 2, 1, 0, 1, 2]
    return sp.csr_matrix(sp.coo_matrix(([5.0, 3.0, 1.0, 0.0, 2.0, 2.0], (r, c)), shape=(4, 3)))


def test_rating_rows_dense_values_and_mask():
    mat = _ratings()
    rows = RatingRows(mat, batch_size=2, shuffle=True, generator=torch_generator(0), layout="dense")
    assert sorted(rows.rows.tolist()) == [0, 2, 3]  # row 1 has no ratings
    seen = []
    for idx, vals, mask in rows:
        for r, v, m in zip(idx.tolist(), vals, mask, strict=True):
            seen.append(r)
            np.testing.assert_array_equal(v.numpy(), mat[r].toarray().ravel())
            expect = np.zeros(3, np.float32)
            expect[mat[r].indices] = 1
            np.testing.assert_array_equal(m.numpy(), expect)
    assert sorted(seen) == [0, 2, 3]
    vals, mask = rows.get(np.array([3]))
    np.testing.assert_array_equal(mask.numpy(), [[1, 1, 1]])
    np.testing.assert_array_equal(vals.numpy(), [[0, 2, 2]])


def test_rating_rows_sparse_entries():
    mat = _ratings()
    rows = RatingRows(mat, batch_size=10, shuffle=False)
    (idx, offsets, cols, vals, local), = list(rows)
    assert idx.tolist() == [0, 2, 3]
    assert offsets.tolist() == [0, 2, 3]
    assert local.tolist() == [0, 0, 1, 2, 2, 2]
    assert cols.tolist() == [0, 2, 1, 0, 1, 2]
    assert vals.tolist() == [5, 3, 1, 0, 2, 2]
    # embedding_bag over the entries is the dense product
    w = torch.randn(3, 4)
    bag = torch.nn.functional.embedding_bag(cols, w, offsets, mode="sum", per_sample_weights=vals)
    dense, _ = rows.get(idx)
    np.testing.assert_allclose(bag.numpy(), (dense @ w).numpy(), rtol=1e-5, atol=1e-6)


def test_negative_sampler_is_the_one_sampler():
    """The torch batches' sampler draws exactly what recforge.data.sampling draws for the same seed."""
    from recforge.data.sampling import UnseenSampler, sample_unseen

    pos = _positives(9, 13, 0.4, 2)
    users = np.array([0, 3, 3, 8, 5])
    assert isinstance(NegativeSampler(pos), UnseenSampler)
    for dist in ("uniform", "popularity"):
        got = NegativeSampler(pos, distribution=dist, alpha=0.75, seed=4).sample(users, 6)
        np.testing.assert_array_equal(got, sample_unseen(pos, users, 6, 4, distribution=dist, alpha=0.75))

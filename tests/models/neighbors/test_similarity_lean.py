"""The lean DOT similarity kernel (item-knn-implicit, rp3beta, serving's item neighbours) agrees with
the general kernel it replaces for ``kind=DOT`` without support or shrinkage."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from recforge.models.neighbors import _similarity_kernels as K
from recforge.models.neighbors.implicit_knn import weight_rows


def _general(m: sp.csr_matrix, width: int, col_scale: np.ndarray | None) -> sp.csr_matrix:
    """The general kernel on the same input (what ``similarity_matrix`` ran before)."""
    x = sp.csr_matrix(m, dtype=np.float64)
    x.sort_indices()
    y = x.T.tocsr()
    y.sort_indices()
    n = x.shape[0]
    w = min(width, n - 1)
    out_idx, out_val, out_cnt = np.empty((n, w), np.int32), np.empty((n, w), np.float64), np.zeros(n, np.int64)
    scale = np.empty(0) if col_scale is None else col_scale
    K._similarity_block(0, n, x.indptr, x.indices, x.data, y.indptr, y.indices, y.data, n, K.DOT, 1, 0.0, w,
                        3, scale, out_idx, out_val, out_cnt)
    keep = np.arange(w)[None, :] < out_cnt[:, None]
    indptr = np.r_[0, np.cumsum(out_cnt)]
    return sp.csr_matrix((out_val[keep].astype(np.float32), out_idx[keep], indptr), shape=(n, n))


# (entities, features, density): light rows (tracked touches), heavy rows (dense read-back), mixed
SHAPES = [(300, 2000, 0.002), (200, 150, 0.08), (400, 300, 0.01)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("width", [3, 50])
@pytest.mark.parametrize("scaled", [False, True])
def test_rated_values_give_the_same_matrix(shape, width, scaled):
    m = sp.random(shape[0], shape[1], density=shape[2], random_state=4, format="csr", dtype=np.float64)
    m.data = np.round(m.data * 4) / 4  # ties, and zeros that must not become neighbours
    scale = np.random.default_rng(1).uniform(0.2, 2.0, shape[0]) if scaled else None
    got = K.similarity_matrix(m, K.DOT, width=width, col_scale=scale)
    ref = _general(m, width, scale)
    for a, b in ((got.indptr, ref.indptr), (got.indices, ref.indices), (got.data, ref.data)):
        np.testing.assert_array_equal(a, b)
    assert got.nnz > 0 and (got.data > 0).all()


@pytest.mark.parametrize("shape", SHAPES)
def test_binary_log_takes_the_factored_path_with_the_same_neighbours(shape):
    m = sp.random(shape[0], shape[1], density=shape[2], random_state=5, format="csr", dtype=np.float64)
    m.data[:] = 1.0
    w = weight_rows(m, "none")  # cosine: each row's values are one number
    assert K._lean_features(w, w.T.tocsr())[1].shape == (0,)  # values factored out
    got = K.similarity_matrix(w, K.DOT, width=None)
    ref = _general(w, shape[0], None)
    np.testing.assert_array_equal(got.indptr, ref.indptr)
    np.testing.assert_allclose(got.toarray(), ref.toarray(), rtol=1e-6, atol=0)
    # with a width, each row keeps the same similarities (ties may swap equal-valued items)
    got5 = K.similarity_matrix(w, K.DOT, width=5)
    ref5 = _general(w, 5, None)
    np.testing.assert_array_equal(got5.indptr, ref5.indptr)
    np.testing.assert_allclose(got5.data, ref5.data, rtol=1e-6)
    # the exact answer on a tiny case: cosine of binary columns = common / sqrt(n_a n_b)
    tiny = sp.csr_matrix(np.array([[1, 1, 0, 0], [1, 0, 1, 0], [1, 1, 1, 1]], np.float64))
    sim = K.similarity_matrix(weight_rows(tiny, "none"), K.DOT, width=None).toarray()
    np.testing.assert_allclose(sim[0, 2], 2 / np.sqrt(2 * 4), rtol=1e-6)
    np.testing.assert_allclose(sim[0, 1], 1 / np.sqrt(2 * 2), rtol=1e-6)
    assert sim[0, 0] == 0 and sim[1, 2] == sim[2, 1]


def test_narrow_ids_only_below_65536_entities():
    small = sp.csr_matrix(np.ones((3, 2)))
    assert K._lean_features(small, small.T.tocsr())[0].dtype == np.uint16
    big = sp.csr_matrix((np.ones(2), (np.array([0, 70_000]), np.array([0, 1]))), shape=(70_001, 2))
    lean = K._lean_features(big, big.T.tocsr())
    assert lean[0].dtype == np.int32
    sim = K.similarity_matrix(big, K.DOT, width=2)
    assert sim.nnz == 0  # the two rows share no feature

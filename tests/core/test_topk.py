"""Top-k selection: the compiled dense path against a sort, and the sparse-product path against it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from recforge.data.interactions import Interactions
from recforge.models.neighbors.implicit_knn import ItemKNNImplicit
from recforge.topk import topk_excluding, topk_sparse_product


def _reference(scores: np.ndarray, excl: sp.csr_matrix, banned: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    idx = np.full((scores.shape[0], k), -1)
    vals = np.full((scores.shape[0], k), np.nan)
    for r, row in enumerate(scores):
        allowed = [j for j in range(len(row)) if not banned[j] and j not in set(excl[r].indices)]
        order = sorted(allowed, key=lambda j: (-row[j], j))[:k]
        idx[r, : len(order)] = order
        vals[r, : len(order)] = row[order]
    return idx, vals


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("k", [1, 5, 40])
def test_sparse_product_equals_dense_and_reference(seed, k):
    rng = np.random.default_rng(seed)
    n_users, n_items = 25, 30
    # small integers make many exact ties, and sparse rows leave most items at exactly 0
    a = sp.random(n_users, n_items, density=0.1, random_state=seed, data_rvs=lambda n: rng.integers(1, 3, n)).tocsr()
    m = sp.random(n_items, n_items, density=0.08, random_state=seed + 1,
                  data_rvs=lambda n: rng.integers(1, 4, n)).tocsr()
    excl = sp.random(n_users, n_items, density=0.15, random_state=seed + 2).tocsr()
    excl.sort_indices()
    banned = rng.random(n_items) < 0.1
    rows = rng.permutation(n_users)[:20]
    excl_rows = excl[rows].tocsr()
    excl_rows.sort_indices()
    dense = np.asarray((a[rows] @ m).todense(), dtype=np.float64)
    ref_idx, ref_val = _reference(dense, excl_rows, banned, k)
    d_idx, d_val = topk_excluding(dense, excl_rows.indptr, excl_rows.indices, banned, k)
    s_idx, s_val = topk_sparse_product(a, rows, m, excl_rows.indptr, excl_rows.indices, banned, k)
    np.testing.assert_array_equal(d_idx, ref_idx)
    np.testing.assert_array_equal(s_idx, ref_idx)
    np.testing.assert_allclose(s_val, ref_val, equal_nan=True)
    np.testing.assert_allclose(d_val, ref_val, equal_nan=True)


def test_fill_with_zero_scored_items_in_index_order():
    a = sp.csr_matrix(np.array([[1.0, 0, 0, 0, 0]]))
    m = sp.csr_matrix(np.array([[0, 0, 0, 2.0, 0], [0] * 5, [0] * 5, [0] * 5, [0] * 5]))
    excl = sp.csr_matrix(np.array([[1.0, 0, 0, 0, 0]]))  # the history item itself
    banned = np.array([False, True, False, False, False])
    idx, val = topk_sparse_product(a, np.array([0]), m, excl.indptr, excl.indices, banned, 4)
    # item 3 scores 2; then the zero-scored allowed items by index: 2, 4 (0 excluded, 1 banned)
    assert idx.tolist() == [[3, 2, 4, -1]]
    assert val[0, :3].tolist() == [2.0, 0.0, 0.0] and np.isnan(val[0, 3])


def _data() -> Interactions:
    rng = np.random.default_rng(3)
    users = rng.integers(0, 40, 400)
    items = rng.integers(0, 60, 400)
    df = pd.DataFrame({"u": users, "i": items}).drop_duplicates()
    return Interactions.from_dataframe(df, user="u", item="i")


def test_models_take_the_sparse_path_only_when_non_negative():
    data = _data()
    m = ItemKNNImplicit(n_neighbors=5).fit(data)
    assert m._nonnegative_sparse_product() is not None
    fast = m.recommend_indices(np.arange(data.n_users), 10)
    m._sparse_product = lambda: None  # force the dense path
    dense = m.recommend_indices(np.arange(data.n_users), 10)
    np.testing.assert_array_equal(fast[0], dense[0])
    np.testing.assert_allclose(fast[1], dense[1], equal_nan=True)
    m2 = ItemKNNImplicit(n_neighbors=5).fit(data)
    m2.similarity_.data[0] = -1.0  # a negative weight: zero is no longer the floor
    m2.__dict__.pop("_scorer", None)
    assert m2._nonnegative_sparse_product() is None

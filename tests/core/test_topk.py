"""Top-k selection: every variant of recforge.topk against one plain numpy reference.

The reference sorts each row's candidates by ``(-score, index)``; NaN and ``-inf`` are never
candidates; short rows are padded with ``(-1, NaN)``; a ``k`` beyond the items gives ``n_items`` columns. Scores come from a handful of values so
that ties are the rule, not the exception.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from recforge.data.interactions import Interactions
from recforge.errors import ConfigError
from recforge.models.neighbors.implicit_knn import ItemKNNImplicit
from recforge.topk import topk_excluding, topk_rows, topk_sparse_product, topk_sparse_rows

SCORES = st.sampled_from([-2.0, -0.5, 0.0, 0.0, 1.0, 1.0, 2.5, 3.0, np.nan, -np.inf, np.inf])
PROPERTY = settings(max_examples=150, deadline=None)


def reference(scores: np.ndarray, k: int, candidate: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Plain numpy top-k: ``candidate`` marks the cells that may be listed."""
    n_rows = scores.shape[0]
    k = min(k, scores.shape[1])
    idx = np.full((n_rows, k), -1, np.int64)
    vals = np.full((n_rows, k), np.nan)
    for r in range(n_rows):
        row = scores[r]
        cols = np.flatnonzero(candidate[r] & (row > -np.inf))  # NaN > -inf is False
        order = np.lexsort((cols, -row[cols]))[:k]  # primary key -score, then the index
        idx[r, : len(order)] = cols[order]
        vals[r, : len(order)] = row[cols[order]]
    return idx, vals


def assert_same(got: tuple[np.ndarray, np.ndarray], want: tuple[np.ndarray, np.ndarray]) -> None:
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])  # NaN == NaN for assert_array_equal
    assert got[0].dtype == np.int64 and got[1].dtype == np.float64


@st.composite
def problems(draw: st.DrawFn) -> tuple[np.ndarray, int, sp.csr_matrix, np.ndarray]:
    """Scores (0-6 rows, 0-12 items), k (0 to beyond the row), exclusions and an allowed mask."""
    n_rows = draw(st.integers(0, 6))
    n_items = draw(st.integers(0, 12))
    scores = draw(arrays(np.float64, (n_rows, n_items), elements=SCORES))
    k = draw(st.integers(0, n_items + 3))
    excl = draw(arrays(np.bool_, (n_rows, n_items)))
    allowed = draw(arrays(np.bool_, (n_items,), elements=st.booleans() | st.just(True)))
    return scores, k, sp.csr_matrix(excl.astype(np.float64)), allowed


@PROPERTY
@given(problems())
def test_dense_equals_reference(problem):
    scores, k, excl, allowed = problem
    candidate = ~excl.toarray().astype(bool) & allowed[None, :]
    assert_same(topk_rows(scores, k, exclude=excl, allowed=allowed), reference(scores, k, candidate))
    assert_same(topk_rows(scores, k), reference(scores, k, np.ones(scores.shape, bool)))


@PROPERTY
@given(problems())
def test_masked_equals_dense(problem):
    """Masking by ``exclude``/``allowed`` (compiled, no copy) is the same as writing ``-inf`` in."""
    scores, k, excl, allowed = problem
    masked = scores.copy()
    masked[excl.toarray().astype(bool)] = -np.inf
    masked[:, ~allowed] = -np.inf
    want = topk_rows(masked, k)
    assert_same(topk_rows(scores, k, exclude=excl, allowed=allowed), want)
    assert_same(topk_excluding(scores, excl.indptr, excl.indices, ~allowed, k), want)
    assert_same(topk_rows(scores.astype(np.float32), k, exclude=excl, allowed=allowed),
                topk_rows(masked.astype(np.float32), k))


@PROPERTY
@given(problems(), st.data())
def test_sparse_equals_reference(problem, data):
    """A sparse score matrix ranks only its stored entries (zeros stored explicitly included)."""
    scores, k, excl, allowed = problem
    stored = data.draw(arrays(np.bool_, scores.shape))
    rows, cols = np.nonzero(stored)
    # stored entries in a shuffled order within rows, as the neighbour matrices keep them
    perm = data.draw(st.permutations(range(len(rows))))
    rows, cols = rows[list(perm)], cols[list(perm)]
    order = np.argsort(rows, kind="stable")
    rows, cols = rows[order], cols[order]
    indptr = np.searchsorted(rows, np.arange(scores.shape[0] + 1))
    mat = sp.csr_matrix((scores[rows, cols], cols, indptr), shape=scores.shape)
    candidate = stored & ~excl.toarray().astype(bool) & allowed[None, :]
    want = reference(scores, k, candidate)
    assert_same(topk_rows(mat, k, exclude=excl, allowed=allowed), want)
    # every cell stored: the sparse path is the dense one
    full = sp.csr_matrix(np.ones(scores.shape))
    full.data = scores.ravel().copy()
    assert_same(topk_rows(full, k, exclude=excl, allowed=allowed),
                topk_rows(scores, k, exclude=excl, allowed=allowed))
    # rows picked by index without slicing
    pick = np.arange(scores.shape[0])[::-1]
    ex = sp.csr_matrix(excl.toarray()[pick])
    got = topk_sparse_rows(mat, pick, k, ex.indptr, ex.indices, ~allowed)
    assert_same(got, (want[0][pick], want[1][pick]))


@st.composite
def products(draw: st.DrawFn) -> tuple[sp.csr_matrix, np.ndarray, sp.csr_matrix, sp.csr_matrix, np.ndarray,
                                       int]:
    """Non-negative small-integer factors (exact sums, many ties, many exact zeros)."""
    n_users = draw(st.integers(1, 6))
    n_items = draw(st.integers(1, 10))
    small = st.sampled_from([0.0, 0.0, 0.0, 1.0, 2.0])
    a = draw(arrays(np.float64, (n_users, n_items), elements=small))
    m = draw(arrays(np.float64, (n_items, n_items), elements=small))
    rows = np.asarray(draw(st.lists(st.integers(0, n_users - 1), max_size=6)), np.int64)
    excl = draw(arrays(np.bool_, (len(rows), n_items)))
    banned = draw(arrays(np.bool_, (n_items,)))
    k = draw(st.integers(1, n_items + 2))
    return sp.csr_matrix(a), rows, sp.csr_matrix(m), sp.csr_matrix(excl.astype(np.float64)), banned, k


@PROPERTY
@given(products())
def test_sparse_product_equals_dense_and_reference(problem):
    a, rows, m, excl, banned, k = problem
    dense = (a[rows] @ m).toarray() if len(rows) else np.zeros((0, m.shape[1]))
    candidate = ~excl.toarray().astype(bool) & ~banned[None, :]
    want = reference(dense, k, candidate)
    assert_same(topk_sparse_product(a, rows, m, excl.indptr, excl.indices, banned, k), want)
    assert_same(topk_rows(dense, k, exclude=excl, allowed=~banned), want)


def test_ties_nan_inf_and_padding_by_hand():
    s = np.array([[1.0, 3.0, 3.0, -np.inf, np.nan, 3.0], [np.nan] * 6])
    idx, vals = topk_rows(s, 8)  # clamped to the 6 items
    assert idx.tolist() == [[1, 2, 5, 0, -1, -1], [-1] * 6]
    assert vals[0, :4].tolist() == [3.0, 3.0, 3.0, 1.0]
    assert np.isnan(vals[0, 4:]).all() and np.isnan(vals[1]).all()
    skip = sp.csr_matrix([[0, 1, 0, 0, 0, 0], [0] * 6])
    idx, _ = topk_rows(s, 2, exclude=skip, allowed=np.array([1, 1, 1, 1, 1, 0], bool))
    assert idx.tolist() == [[2, 0], [-1, -1]]
    assert topk_rows(np.empty((3, 0)), 2)[0].shape == (3, 0)
    assert topk_rows(np.empty((0, 4)), 2)[0].shape == (0, 2)
    assert topk_rows(s, 0)[0].shape == (2, 0)
    with pytest.raises(ConfigError):
        topk_rows(s, -1)
    with pytest.raises(ConfigError):
        topk_rows(s, 2, allowed=np.ones(3, bool))


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


def test_order_by_score_by_hand():
    from recforge.topk import order_by_score

    s = np.array([1.0, np.nan, 3.0, 1.0, 3.0])
    ids = np.array([9, 8, 7, 2, 5])
    # best first, ties to the lower id, NaN dropped or last
    assert order_by_score(s, ids).tolist() == [4, 2, 3, 0]
    assert order_by_score(s, ids, keep_missing=True).tolist() == [4, 2, 3, 0, 1]
    assert order_by_score(s, k=2).tolist() == [2, 4]


@settings(max_examples=50, deadline=None)
@given(st.lists(st.sampled_from([0.0, 1.0, 2.0, -np.inf]), min_size=1, max_size=30), st.integers(1, 40))
def test_order_by_score_agrees_with_topk_rows(values, k):
    from recforge.topk import order_by_score

    s = np.array(values)
    idx, _ = topk_rows(s[None, :], k)
    got = order_by_score(s, k=k)
    got = got[np.isfinite(s[got])]
    assert got.tolist() == idx[0][idx[0] >= 0].tolist()


def test_huge_k_allocates_only_the_catalogue():
    """k = 10**9 on a handful of items: every entry point returns n_items columns (no k-sized buffer)."""
    s = np.array([[0.5, 2.0, 1.0], [1.0, 1.0, np.nan]])
    none = np.zeros(3, np.int64)
    for idx, vals in (topk_rows(s, 10**9), topk_rows(sp.csr_matrix(s), 10**9),
                      topk_excluding(s, none, none[:0], np.zeros(3, bool), 10**9)):
        assert idx.shape == vals.shape == (2, 3)
    assert topk_rows(s, 10**9)[0].tolist() == [[1, 2, 0], [0, 1, -1]]
    a = sp.csr_matrix(np.eye(3))
    idx, _ = topk_sparse_product(a, np.arange(3), a, np.zeros(4, np.int64), none[:0], np.zeros(3, bool), 10**9)
    assert idx.shape == (3, 3)

"""Retrieval: exact and faiss indexes, co-occurrence and popularity retrievers, on known answers."""

from __future__ import annotations

import pytest

pytest.importorskip("faiss")

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402

from recforge.errors import ConfigError  # noqa: E402
from recforge.serving.retrieval import (  # noqa: E402
    CooccurrenceRetriever,
    EmbeddingIndex,
    EmbeddingRetriever,
    IndexConfig,
    PopularityRetriever,
    Query,
    recall_against_exact,
)


@pytest.fixture(scope="module")
def vectors():
    rng = np.random.default_rng(0)
    return rng.normal(size=(2000, 16)).astype(np.float32), rng.normal(size=(50, 16)).astype(np.float32)


def brute(items, queries, n):
    s = queries @ items.T
    order = np.argsort(-s, axis=1, kind="stable")[:, :n]
    return order, np.take_along_axis(s, order, axis=1)


def test_exact_index_is_brute_force(vectors):
    items, q = vectors
    idx, sc = EmbeddingIndex(items, IndexConfig(kind="exact")).search(q, 10)
    want, want_sc = brute(items, q, 10)
    np.testing.assert_array_equal(idx, want)
    np.testing.assert_allclose(sc, want_sc, rtol=1e-5)


def test_flat_index_matches_exact(vectors):
    items, q = vectors
    idx, sc = EmbeddingIndex(items, IndexConfig(kind="flat")).search(q, 10)
    want, want_sc = brute(items, q, 10)
    np.testing.assert_array_equal(idx, want)
    np.testing.assert_allclose(sc, want_sc, rtol=1e-4)


def test_ivf_with_every_cell_probed_is_exact_and_fewer_cells_lose_recall(vectors):
    items, q = vectors
    exact, _ = brute(items, q, 20)
    full = EmbeddingIndex(items, IndexConfig(kind="ivf", nlist=16, nprobe=16)).search(q, 20)[0]
    assert recall_against_exact(full, exact) == 1.0
    one = EmbeddingIndex(items, IndexConfig(kind="ivf", nlist=16, nprobe=1)).search(q, 20)[0]
    r = recall_against_exact(one, exact)
    assert 0.2 < r < 1.0


def test_hnsw_recall_is_high(vectors):
    items, q = vectors
    exact, _ = brute(items, q, 20)
    got = EmbeddingIndex(items, IndexConfig(kind="hnsw", hnsw_m=16, ef_search=128)).search(q, 20)[0]
    assert recall_against_exact(got, exact) >= 0.95


@pytest.mark.parametrize("kind", ["exact", "flat", "ivf", "hnsw"])
def test_inactive_items_never_returned_and_short_index_pads(kind):
    rng = np.random.default_rng(1)
    items = rng.normal(size=(60, 4)).astype(np.float32)
    active = np.zeros(60, bool)
    active[::3] = True  # 20 items
    index = EmbeddingIndex(items, IndexConfig(kind=kind, nlist=1, nprobe=1), active=active)
    idx, sc = index.search(rng.normal(size=(3, 4)), 25)
    assert idx.shape == (3, 25)
    assert set(idx[idx >= 0].tolist()) <= set(np.flatnonzero(active).tolist())
    assert (idx[:, 20:] == -1).all() and np.isneginf(sc[:, 20:]).all()
    assert (idx[:, :20] >= 0).sum() >= 3 * 18  # HNSW may miss a couple at this size


def test_index_config_rejects_bad_values():
    with pytest.raises(ConfigError, match="index kind"):
        IndexConfig(kind="annoy")
    with pytest.raises(ConfigError, match="nprobe"):
        IndexConfig(nprobe=0)
    with pytest.raises(ConfigError, match="unknown index option"):
        IndexConfig.from_dict({"kind": "flat", "efsearch": 3})
    with pytest.raises(ConfigError, match="dimensions"):
        EmbeddingIndex(np.ones((5, 3)), IndexConfig(kind="exact")).search(np.ones((1, 4)), 2)


def test_embedding_retriever_excludes_and_overfetches():
    items = np.eye(5, dtype=np.float32) * np.arange(5, 0, -1)[:, None]  # item j scores 5-j on axis j
    r = EmbeddingRetriever(EmbeddingIndex(items, IndexConfig(kind="exact")))
    q = Query(np.ones(5, np.float32), np.empty(0, np.int64), np.empty(0, np.int64))
    idx, sc = r.retrieve(q, 3, exclude=np.array([0, 2]))
    np.testing.assert_array_equal(idx, [1, 3, 4])
    np.testing.assert_allclose(sc, [4, 2, 1])
    assert not r.can_answer(Query(None, np.empty(0, np.int64), np.empty(0, np.int64)))
    many = r.retrieve_many(np.ones((2, 5), np.float32), 2, [np.array([0]), np.array([1, 2])])
    np.testing.assert_array_equal(many[0][0], [1, 2])
    np.testing.assert_array_equal(many[1][0], [0, 3])


def test_cooccurrence_cosine_known_values():
    # users x items: item 0 and 1 always together, item 2 with 0 once, item 3 alone
    x = sp.csr_matrix(np.array([[1, 1, 0, 0], [1, 1, 1, 0], [0, 0, 0, 1]], np.float32))
    r = CooccurrenceRetriever.from_interactions(x, neighbors=10, recent_weight=2.0)
    sim = r.similarity.toarray()
    # s(0,1) = 2/sqrt(2*2) = 1; s(0,2) = 1/sqrt(2*1); s(.,3) = 0; diagonal 0
    np.testing.assert_allclose(sim[0], [0, 1, 1 / np.sqrt(2), 0], rtol=1e-6)
    np.testing.assert_allclose(sim[3], [0, 0, 0, 0])
    q = Query(None, np.array([0]), np.array([2]))
    idx, sc = r.retrieve(q, 5, exclude=np.array([0, 2]))
    # item 1: history 0 (w 1) * 1 + recent 2 (w 2) * 1/sqrt(2)
    np.testing.assert_array_equal(idx, [1])
    np.testing.assert_allclose(sc, [1 + 2 / np.sqrt(2)], rtol=1e-6)
    nb, nsc = r.similar(0, 2)
    np.testing.assert_array_equal(nb, [1, 2])
    assert not r.can_answer(Query(None, np.empty(0, np.int64), np.empty(0, np.int64)))


def test_cooccurrence_keeps_top_neighbors_only():
    rng = np.random.default_rng(0)
    x = sp.csr_matrix((rng.random((50, 30)) < 0.3).astype(np.float32))
    r = CooccurrenceRetriever.from_interactions(x, neighbors=5)
    counts = np.diff(r.similarity.indptr)
    assert counts.max() <= 5
    dense = (x.T @ x).toarray()
    n = np.sqrt(np.diag(dense))
    cos = dense / n[:, None] / n[None, :]
    np.fill_diagonal(cos, 0)
    for i in range(30):
        row = r.similarity[i]
        kth = np.sort(cos[i])[::-1][4]
        assert (row.data >= kth - 1e-6).all()


def test_cooccurrence_neighbours_are_brute_force_cosine():
    # every positive neighbour kept: the retriever's matrix is the binary item-column cosine itself
    rng = np.random.default_rng(1)
    counts = rng.integers(1, 4, size=(40, 12)) * (rng.random((40, 12)) < 0.35)
    x = sp.csr_matrix(counts.astype(np.float32))  # values are binarised: counts must not matter
    r = CooccurrenceRetriever.from_interactions(x, neighbors=11)
    b = (counts > 0).astype(np.float64)
    norms = np.sqrt(b.sum(axis=0))
    norms[norms == 0] = 1.0
    cos = (b.T @ b) / norms[:, None] / norms[None, :]
    np.fill_diagonal(cos, 0.0)
    np.testing.assert_allclose(r.similarity.toarray(), cos, rtol=1e-5, atol=1e-7)
    assert (r.similarity.data > 0).all()


def test_popularity_retriever_order_ties_and_exclusion():
    counts = np.array([3, 5, 5, 0, 1])
    r = PopularityRetriever(counts, active=np.array([True, True, True, False, True]))
    q = Query(None, np.empty(0, np.int64), np.empty(0, np.int64))
    idx, sc = r.retrieve(q, 10)
    np.testing.assert_array_equal(idx, [1, 2, 0, 4])  # ties by lower index; inactive item 3 left out
    idx, _ = r.retrieve(q, 2, exclude=np.array([1]))
    np.testing.assert_array_equal(idx, [2, 0])


def test_recall_against_exact_value():
    approx = np.array([[1, 2, 3], [4, 5, -1]])
    exact = np.array([[1, 2, 9], [4, 6, -1]])
    assert recall_against_exact(approx, exact) == pytest.approx(3 / 5)

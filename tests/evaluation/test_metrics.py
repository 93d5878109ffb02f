"""Metrics: hand-computed cases, closed forms, and hypothesis properties."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from recforge.errors import DataError
from recforge.metrics import (
    average_popularity,
    average_precision_at_k,
    catalog_coverage,
    hit_rate_at_k,
    hits_at_k,
    intra_list_diversity,
    log_loss,
    mae,
    ndcg_at_k,
    novelty,
    precision_at_k,
    recall_at_k,
    reciprocal_rank_at_k,
    rmse,
    roc_auc,
)

RANKING = [
    hit_rate_at_k, precision_at_k, recall_at_k, ndcg_at_k, average_precision_at_k, reciprocal_rank_at_k,
]


def as_csr(truth: list[list[int]], n_items: int) -> sp.csr_matrix:
    rows = np.repeat(np.arange(len(truth)), [len(t) for t in truth])
    cols = np.concatenate([np.asarray(t, dtype=np.int64) for t in truth]) if truth else np.empty(0, int)
    return sp.csr_matrix((np.full(len(cols), 4.0), (rows, cols)), shape=(len(truth), n_items))


# ---------------------------------------------------------------------------------------- rating
def test_rmse_mae_exact() -> None:
    assert rmse([1, 2, 3, 4], [2, 2, 3, 2]) == pytest.approx(math.sqrt(5 / 4))
    assert mae([1, 2, 3, 4], [2, 2, 3, 2]) == pytest.approx(3 / 4)
    assert rmse([3.5], [3.5]) == 0.0
    assert isinstance(rmse([1.0], [2.0]), float)


def test_rmse_rejects_bad_input() -> None:
    with pytest.raises(DataError, match="differ in length"):
        rmse([1, 2], [1])
    with pytest.raises(DataError, match="empty"):
        mae([], [])
    with pytest.raises(DataError, match="non-finite"):
        rmse([1, 2], [1, np.nan])


# ---------------------------------------------------------------------------------------- ranking: exact
def test_ndcg_miss_then_hit() -> None:
    assert ndcg_at_k(np.array([[5, 2]]), [np.array([2])], 2)[0] == pytest.approx(1 / math.log2(3))


def test_hand_computed_lists() -> None:
    # user 0: [hit, miss, hit, miss] with 3 relevant; user 1: [miss, miss, -1, -1] with 1 relevant
    recs = np.array([[1, 7, 3, 8], [4, 5, -1, -1]])
    truth = [[1, 3, 9], [6]]
    for t in (truth, as_csr(truth, 10)):
        assert np.allclose(hit_rate_at_k(recs, t, 4), [1, 0])
        assert np.allclose(precision_at_k(recs, t, 4), [2 / 4, 0])
        assert np.allclose(recall_at_k(recs, t, 4), [2 / 3, 0])
        dcg = 1 + 1 / math.log2(4)
        idcg = 1 + 1 / math.log2(3) + 1 / math.log2(4)
        assert np.allclose(ndcg_at_k(recs, t, 4), [dcg / idcg, 0])
        assert np.allclose(average_precision_at_k(recs, t, 4), [(1 / 1 + 2 / 3) / 3, 0])
        assert np.allclose(reciprocal_rank_at_k(recs, t, 4), [1, 0])
        # at k=2 only the first two columns count; IDCG and MAP use min(|truth|, k) = 2
        assert np.allclose(ndcg_at_k(recs, t, 2), [1 / (1 + 1 / math.log2(3)), 0])
        assert np.allclose(average_precision_at_k(recs, t, 2), [1 / 2, 0])
        assert np.allclose(precision_at_k(recs, t, 2), [1 / 2, 0])
        assert np.allclose(recall_at_k(recs, t, 2), [1 / 3, 0])


def test_reciprocal_rank_of_third_position() -> None:
    assert reciprocal_rank_at_k(np.array([[0, 1, 2]]), [[2]], 3)[0] == pytest.approx(1 / 3)
    assert reciprocal_rank_at_k(np.array([[0, 1, 2]]), [[2]], 2)[0] == 0.0


def test_empty_truth_is_nan_and_perfect_list_scores_one() -> None:
    recs = np.array([[2, 0, 1], [0, 1, 2], [4, 3, -1]])
    truth = [[0, 1, 2], [], [3, 4]]
    for metric in RANKING:
        vals = metric(recs, truth, 3)
        assert np.isnan(vals[1]), metric.__name__
        if metric is precision_at_k:
            assert np.allclose(vals[[0, 2]], [1.0, 2 / 3])  # the list is one item short of k
        else:
            assert np.allclose(vals[[0, 2]], 1.0), metric.__name__


def test_recall_of_a_perfect_list_with_more_relevant_than_k() -> None:
    # NGCF/LightGCN recall divides by |truth|, so a perfect top-2 of 4 relevant items gives 0.5
    recs, truth = np.array([[0, 1]]), [[0, 1, 2, 3]]
    assert recall_at_k(recs, truth, 2)[0] == 0.5
    assert ndcg_at_k(recs, truth, 2)[0] == pytest.approx(1.0)
    assert average_precision_at_k(recs, truth, 2)[0] == pytest.approx(1.0)


def test_repeated_item_counts_once() -> None:
    recs = np.array([[3, 3, 1]])
    hits, n_rel = hits_at_k(recs, [[3]], 3)
    assert hits.tolist() == [[True, False, False]] and n_rel.tolist() == [1]
    assert precision_at_k(recs, [[3, 1]], 3)[0] == pytest.approx(2 / 3)


def test_k_larger_than_lists_and_sparse_truth_untouched() -> None:
    recs = np.array([[1, 0]])
    truth = sp.csr_matrix(np.array([[2.0, 0.0, 0.0]]))
    truth.data[:] = 2.0
    before = truth.copy()
    assert precision_at_k(recs, truth, 4)[0] == pytest.approx(1 / 4)
    assert ndcg_at_k(recs, truth, 4)[0] == pytest.approx(1 / math.log2(3))
    assert (truth != before).nnz == 0


def test_stored_zeros_are_not_relevant() -> None:
    truth = sp.csr_matrix((np.array([0.0, 1.0]), np.array([0, 1]), np.array([0, 2])), shape=(1, 3))
    assert hit_rate_at_k(np.array([[0]]), truth, 1)[0] == 0.0
    assert hit_rate_at_k(np.array([[1]]), truth, 1)[0] == 1.0
    assert truth.nnz == 2  # the caller's matrix keeps its explicit zero


def test_ranking_input_checks() -> None:
    with pytest.raises(DataError, match="rows"):
        ndcg_at_k(np.array([[0]]), [[0], [1]], 1)
    with pytest.raises(DataError, match="2-D"):
        ndcg_at_k(np.array([0, 1]), [[0]], 1)
    with pytest.raises(DataError, match="k must be"):
        ndcg_at_k(np.array([[0]]), [[0]], 0)
    with pytest.raises(DataError, match="item index 5"):
        ndcg_at_k(np.array([[5]]), as_csr([[0]], 3), 1)
    with pytest.raises(DataError, match="-2"):
        ndcg_at_k(np.array([[-2]]), [[0]], 1)


def test_vectorised_on_many_users() -> None:
    rng = np.random.default_rng(0)
    n_users, n_items, k = 3000, 500, 20
    truth = sp.random(n_users, n_items, density=0.02, format="csr", random_state=1, data_rvs=np.ones)
    recs = np.argsort(-rng.random((n_users, n_items)), axis=1)[:, :k]
    hits, n_rel = hits_at_k(recs, truth, k)
    dense = truth.toarray() > 0
    assert np.array_equal(hits, np.take_along_axis(dense, recs, axis=1))
    assert np.array_equal(n_rel, dense.sum(axis=1))


# ---------------------------------------------------------------------------------------- ranking: properties
@st.composite
def ranking_case(draw: st.DrawFn) -> tuple[np.ndarray, list[list[int]], int]:
    n_items = draw(st.integers(1, 12))
    n_users = draw(st.integers(1, 6))
    width = draw(st.integers(1, 8))
    recs = np.full((n_users, width), -1, dtype=np.int64)
    truth = []
    for u in range(n_users):
        items = draw(st.lists(st.integers(0, n_items - 1), max_size=width, unique=True))
        recs[u, : len(items)] = items
        truth.append(draw(st.lists(st.integers(0, n_items - 1), max_size=n_items, unique=True)))
    return recs, truth, n_items


def brute_force(recs: np.ndarray, truth: list[list[int]], k: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {m.__name__: [] for m in RANKING}
    for row, rel in zip(recs, truth):
        rel = set(rel)
        top = [i for i in row[:k].tolist()]
        hits = [i >= 0 and i in rel for i in top]
        n = sum(hits)
        if not rel:
            for vals in out.values():
                vals.append(float("nan"))
            continue
        out["hit_rate_at_k"].append(float(n > 0))
        out["precision_at_k"].append(n / k)
        out["recall_at_k"].append(n / len(rel))
        dcg = sum(1 / math.log2(r + 2) for r, h in enumerate(hits) if h)
        idcg = sum(1 / math.log2(r + 2) for r in range(min(len(rel), k)))
        out["ndcg_at_k"].append(dcg / idcg)
        ap = sum(sum(hits[: r + 1]) / (r + 1) for r, h in enumerate(hits) if h)
        out["average_precision_at_k"].append(ap / min(len(rel), k))
        first = next((r for r, h in enumerate(hits) if h), None)
        out["reciprocal_rank_at_k"].append(0.0 if first is None else 1 / (first + 1))
    return out


@settings(max_examples=150, deadline=None)
@given(ranking_case(), st.integers(1, 9), st.booleans())
def test_ranking_metrics_match_brute_force(case, k: int, sparse_truth: bool) -> None:
    recs, truth, n_items = case
    t = as_csr(truth, n_items) if sparse_truth else [np.asarray(x, dtype=np.int64) for x in truth]
    expected = brute_force(recs, truth, k)
    for metric in RANKING:
        got = metric(recs, t, k)
        assert got.shape == (len(recs),) and got.dtype == np.float64
        name = metric.__name__
        np.testing.assert_allclose(got, expected[name], rtol=1e-12, atol=1e-12, err_msg=name)
        finite = got[~np.isnan(got)]
        assert ((finite >= 0) & (finite <= 1 + 1e-12)).all()


@settings(max_examples=100, deadline=None)
@given(ranking_case(), st.integers(1, 8))
def test_monotone_in_k(case, k: int) -> None:
    recs, truth, _ = case
    for metric in (hit_rate_at_k, recall_at_k):
        a, b = metric(recs, truth, k), metric(recs, truth, k + 1)
        ok = ~np.isnan(a)
        assert (b[ok] >= a[ok] - 1e-12).all()
    rr_a, rr_b = reciprocal_rank_at_k(recs, truth, k), reciprocal_rank_at_k(recs, truth, k + 1)
    ok = ~np.isnan(rr_a)
    assert (rr_b[ok] >= rr_a[ok]).all()
    # hit rate bounds recall, precision and every other per-user metric from above
    hr = hit_rate_at_k(recs, truth, k)
    for metric in RANKING:
        v = metric(recs, truth, k)
        assert (v[ok] <= hr[ok] + 1e-12).all()


# ---------------------------------------------------------------------------------------- AUC and log loss
def pairwise_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    pos, neg = scores[labels > 0], scores[labels <= 0]
    total = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg))
    return total / (len(pos) * len(neg))


def test_auc_exact() -> None:
    assert roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)
    assert roc_auc([0, 1], [0.5, 0.5]) == pytest.approx(0.5)  # a tie counts one half
    assert roc_auc([-1, 1, 1], [0.0, 1.0, 2.0]) == 1.0
    assert math.isnan(roc_auc([1, 1], [0.2, 0.3]))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(-3, 3)), min_size=2, max_size=30))
def test_auc_matches_pairwise_count_and_reverses(pairs) -> None:
    labels = np.array([p[0] for p in pairs], dtype=int)
    scores = np.array([p[1] for p in pairs], dtype=float)
    if labels.min() == labels.max():
        assert math.isnan(roc_auc(labels, scores))
        return
    auc = roc_auc(labels, scores)
    assert auc == pytest.approx(pairwise_auc(labels, scores), abs=1e-12)
    assert roc_auc(labels, -scores) == pytest.approx(1 - auc, abs=1e-12)
    assert 0 <= auc <= 1


def test_log_loss_exact() -> None:
    assert log_loss([1, 0], [0.8, 0.4]) == pytest.approx(-(math.log(0.8) + math.log(0.6)) / 2)
    assert log_loss([1], [0.0]) == pytest.approx(-math.log(1e-15))  # clipped, finite
    assert log_loss([0, 1], [0.0, 1.0]) == pytest.approx(-math.log(1 - 1e-15), abs=1e-12)
    with pytest.raises(DataError, match=r"\[0, 1\]"):
        log_loss([1], [1.5])


# ---------------------------------------------------------------------------------------- beyond accuracy
def test_coverage_novelty_popularity_exact() -> None:
    recs = np.array([[0, 1], [1, -1], [-1, -1]])
    assert catalog_coverage(recs, 4) == 0.5
    assert catalog_coverage(recs, 4, k=1) == 0.5  # items 0 and 1 are both in column 0
    assert catalog_coverage(np.array([[0, 1], [0, 2]]), 4, k=1) == 0.25
    pop = np.array([8.0, 2.0, 0.0, 1.0])
    nov = novelty(recs, pop, 8)
    assert nov[0] == pytest.approx((0.0 + 2.0) / 2)  # -log2(8/8) = 0, -log2(2/8) = 2
    assert nov[1] == pytest.approx(2.0) and np.isnan(nov[2])
    assert novelty(np.array([[2]]), pop, 8)[0] == pytest.approx(3.0)  # unseen item counted once
    avg = average_popularity(recs, pop)
    assert avg[:2].tolist() == [5.0, 2.0] and np.isnan(avg[2])


def test_intra_list_diversity_exact() -> None:
    vecs = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0], [0.0, 0.0]])
    recs = np.array([[0, 1, -1], [0, 2, -1], [0, 1, 2], [3, -1, -1], [0, 0, -1]])
    got = intra_list_diversity(recs, vecs)
    c = 1 / math.sqrt(2)
    assert got[0] == pytest.approx(1.0)
    assert got[1] == pytest.approx(1 - c)
    assert got[2] == pytest.approx((1 + (1 - c) + (1 - c)) / 3)
    assert np.isnan(got[3])
    assert got[4] == pytest.approx(0.0)
    assert np.allclose(intra_list_diversity(recs, sp.csr_matrix(vecs), block=2), got, equal_nan=True)
    assert intra_list_diversity(recs, vecs, k=1)[[0, 1]].tolist() != got[[0, 1]].tolist()


@settings(max_examples=60, deadline=None)
@given(ranking_case())
def test_beyond_accuracy_ranges(case) -> None:
    recs, _, n_items = case
    rng = np.random.default_rng(len(recs))
    vecs = rng.random((n_items, 3))
    ild = intra_list_diversity(recs, vecs)
    finite = ild[~np.isnan(ild)]
    assert ((finite >= -1e-12) & (finite <= 2 + 1e-12)).all()
    assert 0 <= catalog_coverage(recs, n_items) <= 1
    pop = rng.integers(1, 10, n_items).astype(float)
    nov = novelty(recs, pop, 10)
    n_valid = (recs >= 0).sum(axis=1)
    assert np.isnan(nov[n_valid == 0]).all() and (nov[n_valid > 0] >= 0).all()

"""Exact small cases: each kernel against the closed form computed with numpy."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from recforge.config import FitOptions
from recforge.data.interactions import Interactions
from recforge.models import _threads
from recforge.models.factorization import _base
from recforge.models.factorization._als_kernels import als_half, ials_cg_half, ials_exact_half
from recforge.models.factorization._base import chunk_bounds
from recforge.models.factorization.als import ALS
from recforge.models.factorization.bpr import BPR, draw_negatives
from recforge.models.factorization.ials import ImplicitALS
from recforge.models.factorization.nmf import NMF
from recforge.models.factorization.sgd import BiasedMF, SVDpp


def _ratings(rows: list[tuple[int, int, float]]) -> Interactions:
    return Interactions.from_dataframe(
        pd.DataFrame(rows, columns=["user_id", "item_id", "rating"]), rating="rating"
    )


def _csr_args(m: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return m.indptr.astype(np.int64), m.indices.astype(np.int64), m.data.astype(np.float64)


# ------------------------------------------------------------------------------------------ ALS
R3 = sp.csr_matrix(np.array([[5.0, 3.0, 0.0], [4.0, 0.0, 1.0], [0.0, 2.0, 5.0]]))


@pytest.mark.parametrize("bias", [False, True])
def test_als_user_step_matches_normal_equations(bias):
    rng = np.random.default_rng(0)
    k, reg, mu = 2, 0.1, (3.3 if bias else 0.0)
    d = k + 1 if bias else k
    Y = rng.normal(size=(3, d))
    X = np.zeros((3, d))
    als_half(np.array([0, 3]), *_csr_args(R3), X, Y, k, bias, mu, reg)
    for u in range(3):
        items = R3[u].indices
        r = R3[u].data - mu
        F = Y[items, :k]
        if bias:
            r = r - Y[items, k]
            F = np.column_stack([F, np.ones(len(items))])
        want = np.linalg.solve(F.T @ F + reg * len(items) * np.eye(d), F.T @ r)
        np.testing.assert_allclose(X[u], want, rtol=1e-10, atol=1e-12)


def test_als_objective_never_increases():
    data = _ratings(
        [(u, i, float(1 + (u * 7 + i * 3) % 5)) for u in range(12) for i in range(10) if (u + i) % 3]
    )
    model = ALS(embedding_size=3, epochs=8, reg=0.05).fit(data)
    hist = np.array(model.history_["train_loss"])
    assert model.history_["epoch"] == [float(e) for e in range(8)]
    assert np.all(np.diff(hist) <= 1e-9 * hist[0])
    assert model.objective(data) == pytest.approx(hist[-1], rel=1e-9)


def test_als_unbiased_predicts_dot_product():
    data = _ratings([(1, 1, 4.0), (1, 2, 2.0), (2, 1, 5.0), (2, 3, 1.0), (3, 2, 3.0), (3, 3, 4.0)])
    m = ALS(embedding_size=2, epochs=3, use_bias=False).fit(data)
    assert m.intercept_ == 0.0 and not m.user_bias_.any() and not m.item_bias_.any()
    want = m.user_factors_[0] @ m.item_factors_[1]
    assert m.score([1], [2])[0] == pytest.approx(want)


# ------------------------------------------------------------------------------------------ implicit ALS
def _implicit_problem(seed=0, n_users=6, n_items=9, k=4):
    rng = np.random.default_rng(seed)
    dense = (rng.random((n_users, n_items)) < 0.4) * rng.integers(1, 4, (n_users, n_items))
    dense[np.arange(n_users), rng.integers(0, n_items, n_users)] = 2
    R = sp.csr_matrix(dense.astype(np.float32))
    Y = rng.normal(scale=0.5, size=(n_items, k)).astype(np.float32)
    return R, Y


def _hu_solution(R, Y, alpha, reg):
    """Hu et al.'s user step with the dense n_items x n_items confidence matrix."""
    out = []
    Yd = Y.astype(np.float64)
    for u in range(R.shape[0]):
        r = R[u].toarray().ravel()
        c = 1.0 + alpha * r
        p = (r > 0).astype(np.float64)
        A = Yd.T @ np.diag(c) @ Yd + reg * np.eye(Y.shape[1])
        out.append(np.linalg.solve(A, Yd.T @ (c * p)))
    return np.array(out)


def _ials_args(R, alpha):
    return R.indptr.astype(np.int64), R.indices.astype(np.int32), (alpha * R.data).astype(np.float32)


def test_ials_exact_step_matches_hu_normal_equations():
    R, Y = _implicit_problem()
    alpha, reg = 2.0, 0.3
    G = (Y.T.astype(np.float64) @ Y + reg * np.eye(Y.shape[1])).astype(np.float32)
    X = np.zeros((R.shape[0], Y.shape[1]), np.float32)
    ials_exact_half(chunk_bounds(R.indptr, 1, 1, 3), *_ials_args(R, alpha), X, Y, G)
    np.testing.assert_allclose(X, _hu_solution(R, Y, alpha, reg), rtol=2e-4, atol=2e-5)


def test_ials_cg_with_enough_steps_equals_direct_solve():
    R, Y = _implicit_problem(seed=1, k=5)
    alpha, reg = 1.5, 0.2
    G = (Y.T.astype(np.float64) @ Y + reg * np.eye(Y.shape[1])).astype(np.float32)
    rng = np.random.default_rng(2)
    X = rng.normal(size=(R.shape[0], Y.shape[1])).astype(np.float32)  # any warm start
    ials_cg_half(chunk_bounds(R.indptr, 1, 1, 2), *_ials_args(R, alpha), X, Y, G, Y.shape[1] + 2)
    np.testing.assert_allclose(X, _hu_solution(R, Y, alpha, reg), rtol=1e-3, atol=1e-4)


def test_ials_one_cg_step_is_not_the_solution_but_closer():
    R, Y = _implicit_problem(seed=3, k=6)
    G = (Y.T.astype(np.float64) @ Y + 0.1 * np.eye(6)).astype(np.float32)
    want = _hu_solution(R, Y, 1.0, 0.1)
    X = np.zeros((R.shape[0], 6), np.float32)
    ials_cg_half(chunk_bounds(R.indptr, 1, 1, 1), *_ials_args(R, 1.0), X, Y, G, 1)
    err1 = np.linalg.norm(X - want)
    ials_cg_half(chunk_bounds(R.indptr, 1, 1, 1), *_ials_args(R, 1.0), X, Y, G, 1)
    err2 = np.linalg.norm(X - want)
    assert 1e-4 < err2 < err1 < np.linalg.norm(want)


@pytest.mark.parametrize("solver", ["cg", "cholesky"])
def test_ials_objective_decreases_with_epochs(solver):
    rng = np.random.default_rng(4)
    rows = [(u, i) for u in range(40) for i in range(30) if rng.random() < 0.2]
    data = Interactions.from_dataframe(pd.DataFrame(rows, columns=["user_id", "item_id"]))
    losses = [
        ImplicitALS(embedding_size=5, epochs=e, solver=solver, reg=0.1).fit(data).objective(data)
        for e in (1, 2, 4, 8)
    ]
    assert all(b <= a * (1 + 1e-5) for a, b in itertools.pairwise(losses))
    assert losses[-1] < losses[0]


def test_fold_in_solves_the_user_step():
    rng = np.random.default_rng(5)
    rows = [(u, i) for u in range(30) for i in range(20) if rng.random() < 0.3]
    data = Interactions.from_dataframe(pd.DataFrame(rows, columns=["user_id", "item_id"]))
    m = ImplicitALS(embedding_size=4, epochs=5, alpha=3.0, reg=0.2).fit(data)
    hist = np.array([2, 5, 7])
    vals = np.array([1.0, 2.0, 0.5])
    x = m.fold_in(hist, vals)
    Y = m.item_factors_.astype(np.float64)
    c = np.ones(len(Y))
    p = np.zeros(len(Y))
    idx = m.items_.index(hist)
    c[idx] += 3.0 * vals
    p[idx] = 1.0
    want = np.linalg.solve(Y.T @ (c[:, None] * Y) + 0.2 * np.eye(4), Y.T @ (c * p))
    np.testing.assert_allclose(x, want, rtol=1e-4, atol=1e-6)
    # unknown ids are ignored; an empty history is the zero vector
    np.testing.assert_allclose(m.fold_in([2, 5, 7, 999], [1.0, 2.0, 0.5, 9.0]), x, rtol=1e-6)
    assert not m.fold_in([999]).any()


def test_recommend_for_history_matches_scores_and_excludes_history():
    rng = np.random.default_rng(6)
    rows = [(u, i) for u in range(30) for i in range(20) if rng.random() < 0.3]
    data = Interactions.from_dataframe(pd.DataFrame(rows, columns=["user_id", "item_id"]))
    m = ImplicitALS(embedding_size=4, epochs=5).fit(data)
    ids, scores = m.recommend_for_history([3, 4], k=5)
    assert len(ids) == 5 and not {3, 4} & set(ids.tolist())
    x = m.fold_in([3, 4])
    np.testing.assert_allclose(scores, m.item_factors_[m.items_.index(ids)] @ x, rtol=1e-5)
    assert np.all(np.diff(scores) <= 0)
    ids_all, _ = m.recommend_for_history([3, 4], k=20, exclude_seen=False)
    assert {3, 4} <= set(ids_all.tolist())
    pad_ids, pad_scores = m.recommend_for_history([3, 4], k=25)
    assert (pad_ids[18:] == -1).all() and np.isnan(pad_scores[18:]).all()
    # nothing known in the history: the popularity fallback of recommend() for unknown users
    fb_ids, fb_scores = m.recommend_for_history([999], k=4)
    want, _ = m.recommend(-1, k=4)
    np.testing.assert_array_equal(fb_ids, want)
    assert np.isnan(fb_scores).all()


# ------------------------------------------------------------------------------------------ BPR sampler
def test_bpr_sampler_never_returns_a_positive():
    rng = np.random.default_rng(7)
    n_users, n_items = 50, 40
    dense = rng.random((n_users, n_items)) < rng.uniform(0.05, 0.97, (n_users, 1))
    R = sp.csr_matrix(dense.astype(np.float32))
    users = np.repeat(np.arange(n_users), 200).astype(np.int64)
    neg = draw_negatives(R.indptr.astype(np.int64), R.indices.astype(np.int32), users, n_items, 123)
    found = neg >= 0
    assert found.mean() > 0.95
    assert not dense[users[found], neg[found]].any()
    # every non-positive item of a user can be drawn, roughly uniformly
    u = int(np.argmin(dense.sum(1)))
    draws = draw_negatives(
        R.indptr.astype(np.int64), R.indices.astype(np.int32), np.full(20_000, u, np.int64), n_items, 5
    )
    counts = np.bincount(draws, minlength=n_items)
    assert set(np.flatnonzero(counts)) == set(np.flatnonzero(~dense[u]))
    expect = len(draws) / (~dense[u]).sum()
    assert np.abs(counts[~dense[u]] - expect).max() < 6 * np.sqrt(expect)


def test_bpr_sampler_gives_up_when_a_user_has_every_item():
    R = sp.csr_matrix(np.ones((2, 5), np.float32))
    neg = draw_negatives(R.indptr.astype(np.int64), R.indices.astype(np.int32), np.array([0, 1]), 5, 1)
    assert (neg == -1).all()


def test_bpr_block_parallel_fit_is_deterministic(monkeypatch):
    monkeypatch.setattr(_threads, "PARALLEL_MIN_WORK", 0)
    rng = np.random.default_rng(8)
    rows = {(int(u), int(i)) for u, i in zip(rng.integers(0, 300, 6000), rng.zipf(1.3, 6000) % 200)}
    data = Interactions.from_dataframe(pd.DataFrame(sorted(rows), columns=["user_id", "item_id"]))
    for negatives in ("popularity", "uniform"):
        model = BPR(
            embedding_size=8,
            epochs=3,
            learning_rate=0.05,
            parallel="blocks",
            pair_sampling="pairs",
            negative_sampling=negatives,
            n_candidates=1,
        )
        fits = [BPR(model.config).fit(data, FitOptions(seed=3, threads=2)) for _ in range(2)]
        np.testing.assert_array_equal(fits[0].user_factors_, fits[1].user_factors_)
        np.testing.assert_array_equal(fits[0].item_bias_, fits[1].item_bias_)
        assert fits[0].history_["train_auc"][-1] > 0.6
    # Hogwild on one thread is plain sequential SGD: deterministic too
    hog = [BPR(embedding_size=8, epochs=3).fit(data, FitOptions(seed=3, threads=1)) for _ in range(2)]
    np.testing.assert_array_equal(hog[0].item_factors_, hog[1].item_factors_)


# ------------------------------------------------------------------------------------------ NMF, SGD
def test_nmf_one_sweep_matches_multiplicative_update():
    data = _ratings([(0, 0, 5.0), (0, 1, 3.0), (1, 0, 4.0), (1, 2, 1.0), (2, 1, 2.0), (2, 2, 5.0)])
    cfg = {"embedding_size": 2, "reg_user": 0.1, "reg_item": 0.2}
    m0 = NMF(epochs=1, **cfg)
    rng = _base.seed_sequence(FitOptions(seed=0), 13)
    P = rng.uniform(0.0, 1.0, (3, 2))
    Q = rng.uniform(0.0, 1.0, (3, 2))
    R = data.csr().toarray()
    M = R > 0
    est = np.where(M, P @ Q.T, 0.0)
    P1 = P * ((R @ Q) / (est @ Q + M.sum(1, keepdims=True) * 0.1 * P))
    Q1 = Q * ((R.T @ P) / (est.T @ P + M.sum(0)[:, None] * 0.2 * Q))
    m0.fit(data, FitOptions(seed=0))
    np.testing.assert_allclose(m0.user_factors_, P1, rtol=1e-10)
    np.testing.assert_allclose(m0.item_factors_, Q1, rtol=1e-10)
    assert (m0.user_factors_ >= 0).all() and (m0.item_factors_ >= 0).all()


def test_biased_mf_single_rating_sgd_step():
    # one rating, one epoch: the update is the textbook step on mu + b_u + b_i + p.q
    data = _ratings([(1, 1, 4.0), (2, 2, 2.0)])
    m = BiasedMF(embedding_size=2, epochs=1, learning_rate=0.1, reg=0.5, reg_bias=0.2).fit(data)
    rng = _base.seed_sequence(FitOptions(seed=0), 11)
    P = rng.normal(0.0, 0.1, (2, 2))
    Q = rng.normal(0.0, 0.1, (2, 2))
    mu = 3.0
    for u in range(2):  # each row touches its own user and item, so the order does not matter
        r = 4.0 if u == 0 else 2.0
        err = r - (mu + P[u] @ Q[u])
        assert m.user_bias_[u] == pytest.approx(0.1 * err)
        np.testing.assert_allclose(m.user_factors_[u], P[u] + 0.1 * (err * Q[u] - 0.5 * P[u]))
        np.testing.assert_allclose(m.item_factors_[u], Q[u] + 0.1 * (err * P[u] - 0.5 * Q[u]))


def test_svdpp_user_vector_includes_implicit_sum():
    data = _ratings([(1, 1, 4.0), (1, 2, 2.0), (2, 1, 5.0), (2, 3, 1.0), (3, 2, 3.0), (3, 3, 4.0)])
    m = SVDpp(embedding_size=3, epochs=3).fit(data)
    Y = m.implicit_factors_
    want = m.user_factors_[0] + (Y[0] + Y[1]) / np.sqrt(2)
    np.testing.assert_allclose(m.embeddings()[0][0], want)
    pred = m.intercept_ + m.user_bias_[0] + m.item_bias_[2] + want @ m.item_factors_[2]
    assert m.score([1], [3])[0] == pytest.approx(pred)


# ------------------------------------------------------------------------------------------ neighbours
def test_similar_items_is_cosine_over_factors():
    rng = np.random.default_rng(9)
    rows = [(u, i, float(rng.integers(1, 6))) for u in range(20) for i in range(15) if rng.random() < 0.5]
    m = BiasedMF(embedding_size=4, epochs=3).fit(_ratings(rows))
    V = m.item_factors_
    unit = V / np.linalg.norm(V, axis=1, keepdims=True)
    ids, sims = m.similar_items(m.items_.ids[3], k=4)
    cos = unit @ unit[3]
    cos[3] = -np.inf
    order = np.argsort(-cos)[:4]
    np.testing.assert_array_equal(ids, m.items_.ids[order])
    np.testing.assert_allclose(sims, cos[order])
    ids2, _ = m.similar_users(m.users_.ids[[0, 1]], k=3)
    assert ids2.shape == (2, 3) and m.users_.ids[0] not in ids2[0].tolist()
    bad_ids, bad_sims = m.similar_items(-42, k=2)
    assert bad_ids.tolist() == [-1, -1] and np.isnan(bad_sims).all()


def test_embeddings_shapes():
    data = _ratings([(1, 1, 4.0), (1, 2, 2.0), (2, 1, 5.0), (2, 3, 1.0)])
    for model in (
        BiasedMF(embedding_size=3, epochs=1),
        SVDpp(embedding_size=3, epochs=1),
        NMF(embedding_size=3, epochs=1),
        ALS(embedding_size=3, epochs=1),
    ):
        u, i = model.fit(data).embeddings()
        assert u.shape == (2, 3) and i.shape == (3, 3)
    imp = data.to_implicit()
    for model in (ImplicitALS(embedding_size=3, epochs=1), BPR(embedding_size=3, epochs=1)):
        u, i = model.fit(imp).embeddings()
        assert u.shape == (2, 3) and i.shape == (3, 3)


# ------------------------------------------------------------------------------------------ top-k
def _reference_topk(m, users, k, exclude_seen=True, candidate_mask=None, fallback="popular", exclude=None):
    """Brute force: mask, then sort every row by (score desc, item index asc)."""
    n_items = len(m.items_)
    out_i = np.full((len(users), k), -1)
    out_v = np.full((len(users), k), np.nan)
    for row, u in enumerate(users):
        if u < 0 or not m.user_known_[u]:
            if fallback == "popular":
                pop = m._popularity_order()
                pop = pop if candidate_mask is None else pop[candidate_mask[pop]]
                out_i[row, : min(k, len(pop))] = pop[:k]
            continue
        sc = m._score_users(np.array([u]))[0].astype(np.float64)
        ok = m.item_known_.copy()
        if candidate_mask is not None:
            ok &= candidate_mask
        if exclude_seen:
            ok[m.seen_[u].indices] = False
        if exclude is not None:
            ok[exclude[u].indices] = False
        items = np.flatnonzero(ok)
        order = items[np.lexsort((items, -sc[items]))][:k]
        out_i[row, : len(order)] = order
        out_v[row, : len(order)] = sc[order]
    return out_i, out_v


def test_recommend_indices_matches_brute_force_with_ties():
    rng = np.random.default_rng(10)
    rows = [(u, i, float(rng.integers(1, 6))) for u in range(40) for i in range(60) if rng.random() < 0.2]
    m = BiasedMF(embedding_size=3, epochs=2).fit(_ratings(rows))
    m.item_factors_[::7] = m.item_factors_[3]  # exact ties between items
    m.item_bias_[::7] = m.item_bias_[3]
    users = np.array([0, 5, 7, -1, 39, 2, 2])
    cand = rng.random(len(m.items_)) < 0.7
    exclude = sp.random(len(m.users_), len(m.items_), density=0.1, format="csr", random_state=1)
    for kw in (
        {},
        {"exclude_seen": False},
        {"candidate_mask": cand},
        {"exclude": exclude},
        {"fallback": "none"},
    ):
        for k in (1, 5, 80):  # 80 > 60 items: the lists are as long as the catalogue
            got = m.recommend_indices(users, k, **kw)
            want = _reference_topk(m, users, min(k, len(m.items_)), **kw)
            np.testing.assert_array_equal(got[0], want[0])
            np.testing.assert_allclose(got[1], want[1], rtol=1e-12)
    tied = m.recommend_indices(np.array([0]), 60, exclude_seen=False)[0][0]
    pos = {int(i): j for j, i in enumerate(tied)}
    group = sorted({3, *range(0, len(m.items_), 7)})  # the tied items, adjacent and by index in the list
    assert [pos[i] for i in group] == list(range(pos[group[0]], pos[group[0]] + len(group)))


def test_bpr_collisions_skip_leaves_updates_out_and_redraw_does_not():
    # each user has 18 of 20 items: a popularity-drawn negative is almost always a positive
    rng = np.random.default_rng(4)
    rows = [(u, i) for u in range(30) for i in rng.permutation(20)[:18]]
    data = Interactions.from_dataframe(pd.DataFrame(rows, columns=["user_id", "item_id"]))
    cfg = {"embedding_size": 4, "epochs": 3, "negative_sampling": "popularity", "n_candidates": 1, "pair_sampling": "pairs"}
    redraw = BPR(**cfg).fit(data, FitOptions(seed=0, threads=1))
    skip = BPR(**cfg, collisions="skip").fit(data, FitOptions(seed=0, threads=1))
    assert np.all(np.array(redraw.history_["updates"]) >= 0.99 * len(data))  # 64 tries nearly always find one of the 2 negatives
    assert np.all(np.array(skip.history_["updates"]) < 0.3 * len(data))  # ~10% of draws miss the user's positives
    assert np.all(np.array(skip.history_["updates"]) > 0)

"""Exact small cases for the neighbourhood models: similarities, prediction formulas, closed forms."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import scipy.optimize
import scipy.sparse as sp

from recforge.config import FitOptions
from recforge.data.interactions import Interactions
from recforge.errors import ConfigError, DataError
from recforge.models.neighbors import _similarity_kernels as K
from recforge.models.neighbors.ease import EASE
from recforge.models.neighbors.implicit_knn import ItemKNNImplicit, UserKNNImplicit, weight_rows
from recforge.models.neighbors.knn import ItemKNN, KNNBaseline, UserKNN
from recforge.models.neighbors.slim import SLIM
from recforge.models.registry import make_model
from recforge.testing.datasets import checkerboard, toy_ratings

# 3 users x 4 items (a, b, c, d); "-" = not rated
#        a  b  c  d
#   u1   5  3  4  -
#   u2   4  -  5  2
#   u3   1  2  -  4
ROWS = [(1, "a", 5), (1, "b", 3), (1, "c", 4), (2, "a", 4), (2, "c", 5), (2, "d", 2),
        (3, "a", 1), (3, "b", 2), (3, "d", 4)]
A, B, C, D = range(4)


def small() -> Interactions:
    df = pd.DataFrame(ROWS, columns=["user_id", "item_id", "rating"])
    return Interactions.from_dataframe(df, rating="rating")


def item_sims(similarity: str, **kw) -> np.ndarray:
    model = ItemKNN(similarity=similarity, n_neighbors=3, prune=None, **kw).fit(small())
    return model.similarity_.toarray()


# expected item-item similarities over co-rating users, worked out by hand:
#   a,b share u1,u3: a=(5,1) b=(3,2); a,c share u1,u2: (5,4),(4,5); a,d share u2,u3: (4,1),(2,4);
#   b,c share u1 only: 3,4; b,d share u3 only: 2,4; c,d share u2 only: 5,2.
COSINE = {(A, B): 17 / math.sqrt(26 * 13), (A, C): 40 / 41, (A, D): 12 / math.sqrt(17 * 20),
          (B, C): 1.0, (B, D): 1.0, (C, D): 1.0}
# pearson with co-rated means: a,b -> +1; a,c and a,d -> -1 (dropped); single co-raters -> 0 (dropped)
PEARSON = {(A, B): 1.0}
# 1 / (1 + mean squared difference)
MSD = {(A, B): 1 / (1 + 2.5), (A, C): 1 / (1 + 1.0), (A, D): 1 / (1 + 6.5), (B, C): 1 / 2, (B, D): 1 / 5,
       (C, D): 1 / 10}
# ratings centred on user means (u1: 4, u2: 11/3, u3: 7/3): only a,c has a positive cosine,
# (1, 1/3).(0, 4/3) / (|(1, 1/3)| |(0, 4/3)|) = 1/sqrt(10); b,c is exactly 0 (u1's c is centred to 0)
ADJUSTED = {(A, C): 1 / math.sqrt(10)}


def _dense(pairs: dict) -> np.ndarray:
    out = np.zeros((4, 4))
    for (i, j), v in pairs.items():
        out[i, j] = out[j, i] = v
    return out


@pytest.mark.parametrize(
    "name, expected",
    [("cosine", COSINE), ("pearson", PEARSON), ("msd", MSD), ("adjusted_cosine", ADJUSTED)],
)
def test_item_similarities_hand_computed(name, expected):
    np.testing.assert_allclose(item_sims(name), _dense(expected), atol=1e-6)


def test_pearson_baseline_similarity_matches_formula():
    model = ItemKNN(similarity="pearson_baseline", n_neighbors=3, prune=None).fit(small())
    # the pearson_baseline variant uses the baseline only inside the similarity: get the biases
    # from a baseline model with the same regularisation
    bias = KNNBaseline(prune=None).fit(small())
    mu, bu, bi = bias.global_mean_, bias.user_bias_, bias.item_bias_
    r = np.full((3, 4), np.nan)
    for u, i, v in ROWS:
        r[u - 1, "abcd".index(i)] = v
    res = r - mu - bu[:, None] - bi[None, :]
    expected = np.zeros((4, 4))
    for i in range(4):
        for j in range(4):
            both = ~np.isnan(res[:, i]) & ~np.isnan(res[:, j])
            n = both.sum()
            if i == j or n < 2:  # min_support is at least 2 for pearson_baseline
                continue
            x, y = res[both, i], res[both, j]
            rho = (x @ y) / math.sqrt((x @ x) * (y @ y))
            expected[i, j] = max(0.0, rho * (n - 1) / (n - 1 + 100))
    assert (expected > 0).any()
    np.testing.assert_allclose(model.similarity_.toarray(), expected, atol=1e-6)


def test_user_similarity_cosine_hand_computed():
    model = UserKNN(similarity="cosine", n_neighbors=2, prune=None).fit(small())
    s = model.similarity_.toarray()
    # u1,u2 share a,c: (5,4).(4,5) / 41; u1,u3 share a,b: (5,3).(1,2) / sqrt(34 * 5)
    assert s[0, 1] == pytest.approx(40 / 41, abs=1e-6)
    assert s[0, 2] == pytest.approx(11 / math.sqrt(34 * 5), abs=1e-6)
    assert s[1, 2] == pytest.approx((4 + 8) / math.sqrt(20 * 17), abs=1e-6)
    np.testing.assert_allclose(s, s.T, atol=1e-7)


def test_shrinkage_and_min_support():
    raw = item_sims("cosine", shrinkage=1.0)
    # factor (n - 1) / (n - 1 + 1): 1/2 for two co-raters, 0 for one
    two_raters = {(A, B), (A, C), (A, D)}
    halved = {k: v / 2 for k, v in COSINE.items() if k in two_raters}
    np.testing.assert_allclose(raw, _dense(halved), atol=1e-6)
    only_two = item_sims("cosine", min_support=2)
    np.testing.assert_allclose(only_two, _dense({k: COSINE[k] for k in two_raters}), atol=1e-6)


def test_prune_keeps_the_most_similar():
    model = ItemKNN(similarity="msd", n_neighbors=1, prune=1).fit(small())
    s = model.similarity_
    assert np.diff(s.indptr).max() == 1
    # a's msd similarities: b 2/7, c 1/2, d 2/15 -> c; d's: a 2/15, b 1/5, c 1/10 -> b
    assert s[A].indices.tolist() == [C]
    assert s[D].indices.tolist() == [B]


# ------------------------------------------------------------------------------ prediction formulas
def test_basic_prediction_weighted_average():
    data = small()
    # u1 has rated a, b, c; cosine sims to d: a 0.6508, b 1, c 1
    full = ItemKNN(similarity="cosine", variant="basic", n_neighbors=3, prune=None).fit(data)
    s = COSINE
    want = (5 * s[(A, D)] + 3 * 1 + 4 * 1) / (s[(A, D)] + 2)
    assert full.predict([1], ["d"])[0] == pytest.approx(want, abs=1e-6)
    # with k=2 only the two most similar (b and c) count
    top2 = ItemKNN(similarity="cosine", variant="basic", n_neighbors=2, prune=None).fit(data)
    assert top2.predict([1], ["d"])[0] == pytest.approx(3.5, abs=1e-6)


def test_means_prediction_and_fallbacks():
    data = small()
    item_mean = {"a": 10 / 3, "b": 2.5, "c": 4.5, "d": 3.0}
    m = ItemKNN(similarity="cosine", variant="means", n_neighbors=2, prune=None).fit(data)
    # u1 -> d: neighbours b, c (sim 1): mean_d + ((3 - 2.5) + (4 - 4.5)) / 2 = mean_d
    assert m.predict([1], ["d"])[0] == pytest.approx(item_mean["d"], abs=1e-6)
    # u3 -> c: neighbours b (sim 1) and d (sim 1): 4.5 + ((2 - 2.5) + (4 - 3)) / 2
    assert m.predict([3], ["c"])[0] == pytest.approx(4.5 + 0.25, abs=1e-6)
    # pearson leaves c without positive neighbours: means falls back to c's mean, basic to mu
    pm = ItemKNN(similarity="pearson", variant="means", prune=None).fit(data)
    assert pm.predict([3], ["c"])[0] == pytest.approx(item_mean["c"], abs=1e-6)
    pb = ItemKNN(similarity="pearson", variant="basic", prune=None).fit(data)
    assert pb.predict([3], ["c"])[0] == pytest.approx(30 / 9, abs=1e-6)


def test_min_k_fallback_and_k_limit():
    data = small()
    # with min_support=2 only a-b, a-c, a-d have similarities, so u1 -> d has one neighbour (a)
    one = ItemKNN(similarity="cosine", variant="means", n_neighbors=3, min_k=1, min_support=2, prune=None).fit(data)
    assert one.predict([1], ["d"])[0] == pytest.approx(3.0 + (5 - 10 / 3), abs=1e-6)
    two = ItemKNN(similarity="cosine", variant="means", n_neighbors=3, min_k=2, min_support=2, prune=None).fit(data)
    assert two.predict([1], ["d"])[0] == pytest.approx(3.0, abs=1e-6)  # too few: d's mean
    # user-based, k=1: u3 -> c uses only the most similar rater of c; u3's similarities are
    # u1 11/sqrt(170) = 0.844 and u2 12/sqrt(340) = 0.651, so u1
    user_mean = {1: 4.0, 2: 11 / 3, 3: 7 / 3}
    k1 = UserKNN(similarity="cosine", variant="means", n_neighbors=1, prune=None).fit(data)
    assert k1.predict([3], ["c"])[0] == pytest.approx(user_mean[3] + (4 - user_mean[1]), abs=1e-6)
    k2 = UserKNN(similarity="cosine", variant="means", n_neighbors=2, prune=None).fit(data)
    s31, s32 = 11 / math.sqrt(170), 12 / math.sqrt(340)
    want = user_mean[3] + (s31 * (4 - user_mean[1]) + s32 * (5 - user_mean[2])) / (s31 + s32)
    assert k2.predict([3], ["c"])[0] == pytest.approx(want, abs=1e-6)
    # pearson: u3 is anti-correlated with both raters of c -> no neighbour -> u3's mean
    none = UserKNN(similarity="pearson", variant="means", n_neighbors=1, prune=None).fit(data)
    assert none.predict([3], ["c"])[0] == pytest.approx(user_mean[3], abs=1e-6)


def test_zscore_and_baseline_predictions():
    data = small()
    z = ItemKNN(similarity="cosine", variant="zscore", n_neighbors=3, prune=None).fit(data)
    mean = {A: 10 / 3, B: 2.5, C: 4.5, D: 3.0}
    sd = {A: math.sqrt(78 / 27), B: 0.5, C: 0.5, D: 1.0}  # population standard deviations
    # u3 -> c: neighbours a (40/41, rating 1), b (1, rating 2), d (1, rating 4)
    sa = COSINE[(A, C)]
    dev = sa * (1 - mean[A]) / sd[A] + (2 - mean[B]) / sd[B] + (4 - mean[D]) / sd[D]
    want = mean[C] + sd[C] * dev / (sa + 2)
    assert z.predict([3], ["c"])[0] == pytest.approx(want, abs=1e-6)
    bl = KNNBaseline(similarity="cosine", n_neighbors=2, prune=None).fit(data)
    mu, bu, bi = bl.global_mean_, bl.user_bias_, bl.item_bias_
    base = mu + bu[0] + bi
    want = base[D] + ((3 - base[B]) + (4 - base[C])) / 2
    assert bl.predict([1], ["d"])[0] == pytest.approx(np.clip(want, 1, 5), abs=1e-6)


def test_baseline_fallback_for_unknown_item_is_partial_baseline():
    data = small()
    train = data.subset(data.item_idx != D)  # d unknown to the model, vocabulary kept
    m = KNNBaseline(prune=None).fit(train)
    want = m.global_mean_ + m.user_bias_[0]
    assert m.predict([1], ["d"], fallback="mean")[0] == pytest.approx(want)
    assert np.isnan(m.predict([1], ["d"])[0])
    assert m.predict([99], ["a"], fallback="mean")[0] == pytest.approx(m.global_mean_ + m.item_bias_[A])


def test_matches_surprise_on_toy_data():
    surprise = pytest.importorskip("surprise")
    data = toy_ratings(n_users=30, n_items=25, seed=3)
    df = data.to_dataframe()
    reader = surprise.Reader(rating_scale=(1, 5))
    sdata = surprise.Dataset.load_from_df(df[["user_id", "item_id", "value"]], reader)
    trainset = sdata.build_full_trainset()
    cases = [
        (surprise.KNNBaseline(sim_options={"name": "pearson_baseline", "user_based": False}, verbose=False),
         KNNBaseline(prune=None)),
        (surprise.KNNWithMeans(k=10, sim_options={"name": "pearson", "user_based": True}, verbose=False),
         UserKNN(similarity="pearson", variant="means", n_neighbors=10, prune=None)),
        (surprise.KNNWithZScore(k=15, sim_options={"name": "pearson", "user_based": False}, verbose=False),
         ItemKNN(similarity="pearson", variant="zscore", n_neighbors=15, prune=None)),
    ]
    # only unrated cells: on a training pair surprise counts the item itself (similarity 1) as a
    # neighbour, which a held-out pair never has
    unrated = np.argwhere(data.csr().toarray() == 0)
    users, items = data.users.ids[unrated[:, 0]], data.items.ids[unrated[:, 1]]
    for theirs, ours in cases:
        theirs.fit(trainset)
        want = np.array([theirs.predict(u, i).est for u, i in zip(users.tolist(), items.tolist())])
        got = ours.fit(data).predict(users, items, fallback="mean")
        np.testing.assert_allclose(got, want, atol=1e-5, err_msg=type(theirs).__name__)


def test_knn_learns_better_than_global_mean():
    data = toy_ratings(n_users=60, n_items=40, seed=1)
    test_mask = np.random.default_rng(0).random(len(data)) < 0.2
    train, test = data.subset(~test_mask), data.subset(test_mask)
    u, i = test.users.ids[test.user_idx], test.items.ids[test.item_idx]
    mean_rmse = np.sqrt(np.mean((train.values.mean() - test.values) ** 2))
    for model in (KNNBaseline(), ItemKNN(), UserKNN()):
        pred = model.fit(train).predict(u, i, fallback="mean")
        rmse = np.sqrt(np.mean((pred - test.values) ** 2))
        assert rmse < 0.9 * mean_rmse, type(model).__name__


# ------------------------------------------------------------------------------ config validation
@pytest.mark.parametrize(
    "cls, bad, field",
    [
        (ItemKNN, {"shrinkage": -1.0}, "shrinkage"),
        (ItemKNN, {"n_neighbors": 0}, "n_neighbors"),
        (UserKNN, {"n_neighbors": -5}, "n_neighbors"),
        (ItemKNN, {"similarity": "jaccard"}, "similarity"),
        (KNNBaseline, {"similarity": "euclid"}, "similarity"),
        (ItemKNNImplicit, {"n_neighbors": 0}, "n_neighbors"),
        (ItemKNNImplicit, {"weighting": "okapi"}, "weighting"),
        (EASE, {"reg": -1.0}, "reg"),
        (SLIM, {"reg_l1": -1.0}, "reg_l1"),
    ],
)
def test_invalid_hyperparameters_name_the_field(cls, bad, field):
    with pytest.raises(ConfigError, match=field):
        cls(**bad)


def test_registry_names():
    assert isinstance(make_model("item-knn"), ItemKNN)
    assert isinstance(make_model("user-knn"), UserKNN)
    assert isinstance(make_model("knn-baseline"), KNNBaseline)
    assert isinstance(make_model("item-knn-implicit"), ItemKNNImplicit)
    assert isinstance(make_model("user-knn-implicit"), UserKNNImplicit)
    assert isinstance(make_model("ease"), EASE)
    assert isinstance(make_model("slim"), SLIM)
    kb = KNNBaseline()
    cfg = kb.config
    assert (cfg.similarity, cfg.variant, cfg.user_based) == ("pearson_baseline", "baseline", False)


# ------------------------------------------------------------------------------ implicit kNN
def _binary(rows: list[tuple[int, int]]) -> Interactions:
    df = pd.DataFrame(rows, columns=["user_id", "item_id"])
    return Interactions.from_dataframe(df)


def test_implicit_cosine_and_scores_hand_computed():
    # items 0..2; users: 0 {0,1}, 1 {0,1,2}, 2 {1,2}, 3 {0}
    data = _binary([(0, 0), (0, 1), (1, 0), (1, 1), (1, 2), (2, 1), (2, 2), (3, 0)])
    m = ItemKNNImplicit(n_neighbors=2).fit(data)
    s = m.similarity_.toarray()
    # item columns: 0 = {u0,u1,u3}, 1 = {u0,u1,u2}, 2 = {u1,u2}
    assert s[0, 1] == pytest.approx(2 / 3)
    assert s[0, 2] == pytest.approx(1 / math.sqrt(6))
    assert s[1, 2] == pytest.approx(2 / math.sqrt(6))
    assert np.all(np.diag(s) == 0)
    # user 3 has item 0: scores are the similarities of items 1 and 2 to item 0
    np.testing.assert_allclose(m.score([3, 3], [1, 2]), [2 / 3, 1 / math.sqrt(6)], atol=1e-6)
    # with k=1 each item keeps one neighbour; "target" sums over the scored item's neighbours
    one = ItemKNNImplicit(n_neighbors=1).fit(data)
    # N_1(1) = {0}? sims of 1: to 0 2/3, to 2 2/sqrt(6)=0.816 -> {2}; N_1(2) = {1}
    np.testing.assert_allclose(one.score([3, 3], [1, 2]), [0.0, 0.0], atol=1e-7)
    hist = ItemKNNImplicit(n_neighbors=1, neighbors_of="history").fit(data)
    # history: N_1(0) = {1} (2/3 > 0.408): user 3's item 0 votes for item 1 only
    np.testing.assert_allclose(hist.score([3, 3], [1, 2]), [2 / 3, 0.0], atol=1e-6)


def test_tfidf_and_bm25_weights_match_formulas():
    mat = sp.csr_matrix(np.array([[1.0, 0, 2], [0, 3, 1], [4, 0, 0], [0, 0, 5], [2, 1, 0]]))
    n = 5
    df = np.array([3, 2, 3])
    idf = np.log(n) - np.log1p(df)
    dense = mat.toarray()
    tf = np.where(dense > 0, np.sqrt(dense) * idf[None, :], 0.0)
    tf /= np.linalg.norm(tf, axis=1, keepdims=True)
    np.testing.assert_allclose(weight_rows(mat, "tfidf").toarray(), tf, atol=1e-12)
    k1, b = 1.2, 0.75
    length = dense.sum(axis=1)
    norm = (1 - b) + b * length / length.mean()
    bm = np.where(dense > 0, dense * (k1 + 1) / (k1 * norm[:, None] + dense) * idf[None, :], 0.0)
    np.testing.assert_allclose(weight_rows(mat, "bm25", k1, b).toarray(), bm, atol=1e-12)
    cos = dense / np.linalg.norm(dense, axis=1, keepdims=True)
    np.testing.assert_allclose(weight_rows(mat, "none").toarray(), cos, atol=1e-12)


def test_history_mode_matches_implicit_library():
    implicit_nn = pytest.importorskip("implicit.nearest_neighbours")
    # random weights (not 0/1) so no two similarities tie: tie order is implementation-defined
    data = toy_ratings(n_users=40, n_items=30, seed=2).to_implicit()
    data.values = np.random.default_rng(0).uniform(0.5, 3.0, len(data)).astype(np.float32)
    x = data.csr().astype(np.float32)
    for weighting, theirs in (("none", implicit_nn.CosineRecommender(K=6)),
                              ("bm25", implicit_nn.BM25Recommender(K=6))):
        theirs.fit(x, show_progress=False)
        # implicit counts the item itself among its K neighbours; ours excludes it, so K - 1
        ours = ItemKNNImplicit(n_neighbors=5, weighting=weighting, neighbors_of="history").fit(data)
        ref = theirs.similarity.toarray()
        np.fill_diagonal(ref, 0.0)
        np.testing.assert_allclose(ours.similarity_.toarray(), ref, atol=1e-5)


def test_user_knn_implicit_scores():
    data = _binary([(0, 0), (0, 1), (1, 0), (1, 1), (1, 2), (2, 1), (2, 2), (3, 0)])
    m = UserKNNImplicit(n_neighbors=1).fit(data)
    s = m.similarity_.toarray()
    # user rows: 0 {0,1}, 1 {0,1,2}, 2 {1,2}, 3 {0}; user 3's nearest is user 0 (1/sqrt 2)
    assert s[3].nonzero()[0].tolist() == [0]
    assert s[3, 0] == pytest.approx(1 / math.sqrt(2))
    np.testing.assert_allclose(m.score([3, 3], [1, 2]), [1 / math.sqrt(2), 0.0], atol=1e-6)


def test_implicit_knn_ranks_checkerboard():
    data = checkerboard(20)
    models = (ItemKNNImplicit(n_neighbors=5), UserKNNImplicit(n_neighbors=5), EASE(reg=1.0),
              SLIM(reg_l1=0.01, reg_l2=0.1, n_neighbors=10))
    for model in models:
        model.fit(data)
        for u in range(20):
            ids, _ = model.recommend(u, k=1)
            assert ids[0] == u, type(model).__name__


# ------------------------------------------------------------------------------ EASE and SLIM
def test_ease_closed_form():
    data = toy_ratings(n_users=25, n_items=12, seed=4).to_implicit()
    x = data.csr().toarray()
    lam = 7.0
    p = np.linalg.inv(x.T @ x + lam * np.eye(x.shape[1]))
    want = -p / np.diag(p)[None, :]
    np.fill_diagonal(want, 0.0)
    m = EASE(reg=lam).fit(data)
    np.testing.assert_allclose(m.weights_, want, atol=1e-5)
    scores = m.score(np.repeat(data.users.ids[0], 12), data.items.ids)
    np.testing.assert_allclose(scores, x[0] @ want, atol=1e-5)
    # the closed form is the least-squares optimum: perturbing an off-diagonal weight raises the loss
    def loss(b):
        return np.sum((x - x @ b) ** 2) + lam * np.sum(b**2)
    nudged = want.copy()
    nudged[0, 1] += 1e-3
    assert loss(nudged) > loss(want)


def test_ease_max_items_guard():
    data = toy_ratings(n_users=20, n_items=15, seed=1).to_implicit()
    with pytest.raises(ConfigError, match="slim"):
        EASE(max_items=10).fit(data)


def _slim_reference(x: np.ndarray, j: int, l1: float, l2: float) -> np.ndarray:
    n = x.shape[1]
    others = [c for c in range(n) if c != j]
    xo = x[:, others]

    def f(w):
        r = x[:, j] - xo @ w
        return 0.5 * r @ r + 0.5 * l2 * w @ w + l1 * w.sum(), -(xo.T @ r) + l2 * w + l1

    res = scipy.optimize.minimize(f, np.zeros(n - 1), jac=True, method="L-BFGS-B",
                                  bounds=[(0, None)] * (n - 1),
                                  options={"ftol": 1e-14, "gtol": 1e-10, "maxiter": 5000})
    out = np.zeros(n)
    out[others] = res.x
    return out


def test_slim_matches_constrained_least_squares():
    data = toy_ratings(n_users=30, n_items=10, seed=6).to_implicit()
    x = data.csr().toarray()
    l1, l2 = 0.5, 2.0
    m = SLIM(reg_l1=l1, reg_l2=l2, n_neighbors=9, tol=1e-9, max_iter=10_000).fit(data)
    w = m.weights_.toarray()
    assert np.all(np.diag(w) == 0) and np.all(w >= 0)
    for j in range(10):
        np.testing.assert_allclose(w[:, j], _slim_reference(x, j, l1, l2), atol=1e-4)


def test_slim_sparse_gram_path_equals_dense(monkeypatch):
    import recforge.models.neighbors.slim as slim_mod

    data = toy_ratings(n_users=40, n_items=30, seed=8).to_implicit()
    cfg = {"reg_l1": 0.2, "reg_l2": 1.0, "n_neighbors": 8, "tol": 1e-8, "max_iter": 1000}
    dense = SLIM(**cfg).fit(data).weights_.toarray()
    monkeypatch.setattr(slim_mod, "_DENSE_GRAM_ITEMS", 0)
    sparse = SLIM(**cfg).fit(data).weights_.toarray()
    np.testing.assert_allclose(sparse, dense, atol=1e-5)
    assert (np.count_nonzero(dense, axis=0) <= 8).all()


def test_slim_l1_makes_weights_sparser():
    data = toy_ratings(n_users=40, n_items=30, seed=8).to_implicit()
    loose = SLIM(reg_l1=0.01, reg_l2=1.0, n_neighbors=20).fit(data).weights_.nnz
    tight = SLIM(reg_l1=5.0, reg_l2=1.0, n_neighbors=20).fit(data).weights_.nnz
    assert tight < loose


# ------------------------------------------------------------------------------ similar items/users
def test_similar_items_and_users():
    data = small()
    m = ItemKNN(similarity="cosine", n_neighbors=3, prune=None).fit(data)
    ids, sims = m.similar_items("a", k=3)
    assert ids.tolist() == ["c", "b", "d"]
    np.testing.assert_allclose(sims, [COSINE[(A, C)], COSINE[(A, B)], COSINE[(A, D)]], atol=1e-6)
    ids2, sims2 = m.similar_items(["a", "d"], k=4)
    assert ids2.shape == (2, 4) and ids2[0, 3] == "" and np.isnan(sims2[0, 3])
    with pytest.raises(NotImplementedError, match="similar_items"):
        m.similar_users(1)
    # an unknown id gives a padded row (the base contract), not an error
    ids3, sims3 = m.similar_items(["zz", "a"], k=2)
    assert ids3[0].tolist() == ["", ""] and np.isnan(sims3[0]).all() and ids3[1].tolist() == ["c", "b"]
    with pytest.raises(ConfigError):
        m.similar_items("a", k=0)
    u = UserKNN(similarity="cosine", n_neighbors=2, prune=None).fit(data)
    ids, sims = u.similar_users(3, k=2)
    assert ids.tolist() == [1, 2]
    np.testing.assert_allclose(sims, [11 / math.sqrt(170), 12 / math.sqrt(340)], atol=1e-6)


def test_similar_items_for_ranking_models():
    data = checkerboard(12)
    for model in (ItemKNNImplicit(n_neighbors=4), EASE(reg=1.0), SLIM(reg_l1=0.01, reg_l2=0.1, n_neighbors=6)):
        model.fit(data)
        ids, sims = model.similar_items(0, k=3)
        assert 0 not in ids.tolist()
        assert all(i % 2 == 0 for i in ids.tolist()), type(model).__name__  # same parity
        assert np.all(np.diff(sims) <= 0)
    u = UserKNNImplicit(n_neighbors=3).fit(data)
    ids, _ = u.similar_users(1, k=3)
    assert all(i % 2 == 1 for i in ids.tolist())


# ------------------------------------------------------------------------------ kernels
def test_similarity_matrix_blocks_and_ties_are_deterministic(monkeypatch):
    x = sp.random(50, 40, density=0.3, random_state=1, format="csr")
    x.data[:] = 1.0  # binary rows: many tied similarities
    x = weight_rows(x, "none")
    whole = K.similarity_matrix(x, K.DOT, width=7)
    monkeypatch.setattr(K, "_OUT_BUDGET", 7 * 3)  # 3 rows per block
    blocked = K.similarity_matrix(x, K.DOT, width=7)
    assert (whole != blocked).nnz == 0
    np.testing.assert_array_equal(whole.indices, blocked.indices)
    dense = (x @ x.T).toarray()
    np.fill_diagonal(dense, 0)
    for r in range(50):
        row = whole[r]
        # kept values are the 7 largest (ties may pick either member)
        kth = np.sort(dense[r])[::-1][6]
        assert row.nnz == min(7, int((dense[r] > 0).sum()))
        assert row.data.min() >= kth - 1e-6
        assert np.all(np.diff(whole.data[whole.indptr[r]:whole.indptr[r + 1]]) <= 0)


def test_fit_threads_option():
    data = toy_ratings(n_users=30, n_items=25, seed=3)
    a = KNNBaseline().fit(data, FitOptions(threads=1)).similarity_.toarray()
    b = KNNBaseline().fit(data).similarity_.toarray()
    np.testing.assert_array_equal(a, b)

"""Neighbourhood models on the base contract: ad-hoc histories, similar items, item_neighbors, renamed
options."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.sparse as sp

from recforge.config import FitOptions
from recforge.errors import ConfigError, DataError
from recforge.models import make_model
from recforge.models.neighbors import item_neighbors
from recforge.models.neighbors.ease import EASE
from recforge.models.neighbors.implicit_knn import ItemKNNImplicit, UserKNNImplicit
from recforge.models.neighbors.knn import ItemKNN, KNNBaseline, UserKNN
from recforge.models.neighbors.rp3beta import RP3beta
from recforge.models.neighbors.slim import SLIM
from recforge.testing.datasets import toy_ratings


def _implicit(seed: int = 2, values: bool = False):
    data = toy_ratings(n_users=40, n_items=30, seed=seed).to_implicit()
    if values:
        data.values = np.random.default_rng(0).integers(1, 5, len(data)).astype(np.float32)
    return data


ITEM_BASED = [
    lambda: EASE(reg=5.0),
    lambda: SLIM(reg_l1=0.05, reg_l2=1.0, n_neighbors=10),
    lambda: RP3beta(n_neighbors=10),
    lambda: ItemKNNImplicit(n_neighbors=8),
    lambda: ItemKNNImplicit(n_neighbors=8, neighbors_of="history", weighting="bm25"),
]


@pytest.mark.parametrize("make", ITEM_BASED)
@pytest.mark.parametrize("values", [False, True])
def test_history_of_a_training_user_scores_like_the_user(make, values):
    data = _implicit(values=values)
    model = make().fit(data)
    assert model.scores_history and not hasattr(model, "history_")
    x = data.csr()
    all_items = model.items_.ids
    for u in range(0, data.n_users, 7):
        items = x.indices[x.indptr[u] : x.indptr[u + 1]]
        vals = x.data[x.indptr[u] : x.indptr[u + 1]]
        got = model.scores_for_history(model.items_.ids[items], vals)
        want = model.score(np.repeat(model.users_.ids[u], len(all_items)), all_items)
        np.testing.assert_array_equal(got, want)
        ids, _ = model.recommend_for_history(model.items_.ids[items], 5, vals)
        np.testing.assert_array_equal(ids, model.recommend(model.users_.ids[u], 5)[0])


def test_valued_data_keeps_values_only_when_they_matter():
    plain = ItemKNNImplicit(n_neighbors=5).fit(_implicit())
    assert not hasattr(plain, "train_values_")  # 0/1 data: the base's seen_ is the training matrix
    valued = ItemKNNImplicit(n_neighbors=5).fit(_implicit(values=True))
    assert hasattr(valued, "train_values_")
    binary = ItemKNNImplicit(n_neighbors=5, binarize=True).fit(_implicit(values=True))
    assert not hasattr(binary, "train_values_")
    assert not hasattr(SLIM(n_neighbors=5).fit(_implicit(values=True)), "train_values_")  # binarize=True


def test_user_based_models_do_not_score_histories():
    assert not UserKNNImplicit.scores_history and not UserKNN.scores_history
    m = UserKNNImplicit(n_neighbors=3).fit(_implicit())
    with pytest.raises(NotImplementedError):
        m.scores_for_history([m.items_.ids[0]])
    kb = KNNBaseline(user_based=True).fit(toy_ratings(n_users=20, n_items=15, seed=1))
    with pytest.raises(NotImplementedError):
        kb.scores_for_history([kb.items_.ids[0]], [4.0])


@pytest.mark.parametrize("make", [
    lambda: ItemKNN(similarity="cosine", variant="means", n_neighbors=5),
    lambda: ItemKNN(similarity="pearson", variant="zscore", n_neighbors=5, min_k=2),
    lambda: ItemKNN(similarity="msd", variant="basic", n_neighbors=5),
    lambda: KNNBaseline(n_neighbors=5),
])
def test_rating_knn_history_is_the_users_prediction(make):
    data = toy_ratings(n_users=30, n_items=20, seed=4)
    model = make().fit(data)
    x = data.csr()
    items = model.items_.ids
    for u in range(0, data.n_users, 5):
        cols = x.indices[x.indptr[u] : x.indptr[u + 1]]
        vals = x.data[x.indptr[u] : x.indptr[u + 1]]
        user = model.users_.ids[u]
        got = model.scores_for_history(items[cols], vals, user=user)
        want = model.score(np.repeat(user, len(items)), items)
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    with pytest.raises(DataError, match="values"):
        model.scores_for_history(items[:2])


def test_similar_items_lists_the_matrix_neighbours_exactly():
    """The base's similar_items over a neighbour matrix is the per-row sort by (-value, index)."""
    data = _implicit(seed=5)
    for model in (ItemKNNImplicit(n_neighbors=6).fit(data), RP3beta(n_neighbors=6).fit(data),
                  EASE(reg=3.0).fit(data)):
        mat = model.weights_ if hasattr(model, "weights_") else model.similarity_
        ids, sims = model.similar_items(model.items_.ids, k=8)
        for a in range(len(model.items_)):
            if sp.issparse(mat):
                lo, hi = mat.indptr[a], mat.indptr[a + 1]
                cols, vals = mat.indices[lo:hi].astype(np.int64), mat.data[lo:hi].astype(np.float64)
            else:
                vals = np.asarray(mat[a], np.float64)
                cols = np.arange(len(vals))
            keep = (cols != a) & model.item_known_[cols]
            cols, vals = cols[keep], vals[keep]
            order = np.lexsort((cols, -vals))[:8]
            assert ids[a, : len(order)].tolist() == model.items_.ids[cols[order]].tolist()
            np.testing.assert_array_equal(sims[a, : len(order)], vals[order])
            assert (ids[a, len(order):] == -1).all() and np.isnan(sims[a, len(order):]).all()


def _cosine_reference(x: np.ndarray, n: int) -> sp.csr_matrix:
    norms = np.linalg.norm(x, axis=0)
    unit = x / np.where(norms > 0, norms, 1.0)
    sims = unit.T @ unit
    np.fill_diagonal(sims, 0.0)
    out = np.zeros_like(sims)
    for i in range(len(sims)):
        cols = np.flatnonzero(sims[i] > 0)
        top = cols[np.lexsort((cols, -sims[i, cols]))][:n]
        out[i, top] = sims[i, top]
    return sp.csr_matrix(out)


@pytest.mark.parametrize("n", [1, 4, 50])
def test_item_neighbors_is_a_brute_force_cosine(n):
    rng = np.random.default_rng(n)
    x = (rng.random((60, 25)) < 0.2) * rng.integers(1, 4, (60, 25)).astype(np.float64)
    x[:, 3] = 0.0  # an item nobody has: no neighbours, nobody's neighbour
    got = item_neighbors(sp.csr_matrix(x), n)
    assert got.shape == (25, 25) and got.dtype == np.float32
    want = _cosine_reference(x, n)
    np.testing.assert_array_equal(got.toarray() != 0, want.toarray() != 0)
    np.testing.assert_allclose(got.toarray(), want.toarray(), atol=1e-6)
    for i in range(25):  # each row best first
        assert np.all(np.diff(got.data[got.indptr[i] : got.indptr[i + 1]]) <= 0)


def test_item_neighbors_is_the_models_similarity():
    data = _implicit(values=True)
    model = ItemKNNImplicit(n_neighbors=7).fit(data, FitOptions(threads=1))
    got = item_neighbors(data.csr(), 7, threads=1)
    assert (got != model.similarity_).nnz == 0
    np.testing.assert_array_equal(got.indices, model.similarity_.indices)
    bm = item_neighbors(data.csr(), 7, similarity="bm25")
    assert (bm != ItemKNNImplicit(n_neighbors=7, weighting="bm25").fit(data).similarity_).nnz == 0
    with pytest.raises(ConfigError):
        item_neighbors(data.csr(), 0)
    with pytest.raises(ConfigError):
        item_neighbors(data.csr(), 3, similarity="pearson")


@pytest.mark.parametrize("cls, old, new, value", [
    (ItemKNN, "k", "n_neighbors", 7),
    (UserKNN, "k", "n_neighbors", 7),
    (KNNBaseline, "k", "n_neighbors", 7),
    (ItemKNNImplicit, "k", "n_neighbors", 7),
    (UserKNNImplicit, "k", "n_neighbors", 7),
    (RP3beta, "k", "n_neighbors", 7),
    (SLIM, "k", "n_neighbors", 7),
    (SLIM, "l1_reg", "reg_l1", 0.3),
    (SLIM, "l2_reg", "reg_l2", 3.0),
])
def test_old_names_warn_and_work(cls, old, new, value):
    with pytest.warns(DeprecationWarning, match=f"'{old}' is renamed '{new}'"):
        model = cls(**{old: value})
    assert getattr(model.config, new) == value and old not in model.config.to_dict()
    with pytest.warns(DeprecationWarning):
        assert getattr(make_model(cls.name, {old: value}).config, new) == value
    with pytest.raises(ConfigError, match="both"):
        cls(**{old: value, new: value})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cls(**{new: value})  # the new name is silent


def test_old_names_give_the_same_model():
    data = _implicit()
    with pytest.warns(DeprecationWarning):
        old = SLIM(l1_reg=0.1, l2_reg=2.0, k=8).fit(data)
    new = SLIM(reg_l1=0.1, reg_l2=2.0, n_neighbors=8).fit(data)
    assert (old.weights_ != new.weights_).nnz == 0

"""The model contract as the factor models declare it: capabilities, fold-in, renamed hyperparameters."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recforge.config import FitOptions
from recforge.data.interactions import Interactions
from recforge.models.factorization.als import ALS
from recforge.models.factorization.bpr import BPR
from recforge.models.factorization.ials import ImplicitALS
from recforge.models.factorization.nmf import NMF
from recforge.models.factorization.sgd import BiasedMF, SVDpp


def _ratings(seed: int = 0) -> Interactions:
    rng = np.random.default_rng(seed)
    rows = [(u, i, float(rng.integers(1, 6))) for u in range(30) for i in range(20) if rng.random() < 0.3]
    return Interactions.from_dataframe(pd.DataFrame(rows, columns=["user_id", "item_id", "rating"]), rating="rating")


@pytest.mark.parametrize(
    ("cls", "folds_in"),
    [(BiasedMF, False), (SVDpp, False), (NMF, False), (ALS, True), (ImplicitALS, True), (BPR, False)],
)
def test_declared_capabilities(cls, folds_in):
    assert cls.has_embeddings
    assert cls.folds_in is folds_in and cls.scores_history is folds_in


def test_base_similar_items_use_the_factor_embeddings():
    m = ImplicitALS(embedding_size=4, epochs=3).fit(_ratings())
    V = m.embeddings()[1].astype(np.float64)
    unit = V / np.linalg.norm(V, axis=1, keepdims=True)
    cos = unit @ unit[2]
    cos[2] = -np.inf
    ids, sims = m.similar_items(m.items_.ids[2], k=3)
    np.testing.assert_array_equal(ids, m.items_.ids[np.argsort(-cos, kind="stable")[:3]])
    np.testing.assert_allclose(sims, np.sort(cos)[::-1][:3], rtol=1e-6)


@pytest.mark.parametrize("use_bias", [True, False])
def test_als_fold_in_is_the_als_wr_user_step(use_bias):
    data = _ratings(1)
    m = ALS(embedding_size=3, epochs=4, reg=0.2, use_bias=use_bias).fit(data)
    items, ratings = [2, 5, 7, 999], [4.0, 1.0, 5.0, 3.0]  # the unknown id is ignored
    idx = m.items_.index(np.array(items[:3]))
    F = m.item_factors_[idx]
    t = np.array(ratings[:3]) - m.intercept_
    if use_bias:
        F = np.column_stack([F, np.ones(3)])
        t = t - m.item_bias_[idx]
    x = np.linalg.solve(F.T @ F + 0.2 * 3 * np.eye(F.shape[1]), F.T @ t)
    np.testing.assert_allclose(m.fold_in(items, ratings), x[:3], rtol=1e-10)
    b_u = x[3] if use_bias else 0.0
    want = m.intercept_ + b_u + m.item_bias_ + m.item_factors_ @ x[:3]
    np.testing.assert_allclose(m.scores_for_history(items, ratings), want, rtol=1e-10)
    # without ratings every item counts as a top rating
    np.testing.assert_allclose(m.fold_in(items[:3]), m.fold_in(items[:3], [m.rating_max_] * 3))
    assert not m.fold_in([999]).any()


def test_ials_history_scores_are_the_folded_in_user_times_the_items():
    m = ImplicitALS(embedding_size=4, epochs=3).fit(_ratings(2))
    x = m.fold_in([3, 4, 4], [1.0, 0.5, 0.5])
    np.testing.assert_array_equal(x, m.fold_in([3, 4], [1.0, 1.0]))  # repeats add up
    np.testing.assert_allclose(m.scores_for_history([3, 4]), m.item_factors_ @ m.fold_in([3, 4]), rtol=1e-6)
    with pytest.warns(DeprecationWarning, match="fold_in"):
        old = m.recalculate_user([3, 4])
    np.testing.assert_array_equal(old, m.fold_in([3, 4]))


@pytest.mark.parametrize(
    ("cls", "old", "new"),
    [
        (BPR, {"negatives": "popularity"}, {"negative_sampling": "popularity"}),
        (BPR, {"sampling": "pairs"}, {"pair_sampling": "pairs"}),
        (BPR, {"item_bias": False}, {"use_bias": False}),
        (ALS, {"bias": False}, {"use_bias": False}),
    ],
)
def test_renamed_hyperparameters_still_work_and_warn(cls, old, new):
    with pytest.warns(DeprecationWarning, match="renamed"):
        model = cls(embedding_size=3, epochs=2, **old)
    assert model.config == cls(embedding_size=3, epochs=2, **new).config
    data = _ratings(3)
    a = model.fit(data, FitOptions(seed=1, threads=1))
    b = cls(embedding_size=3, epochs=2, **new).fit(data, FitOptions(seed=1, threads=1))
    np.testing.assert_array_equal(a.item_factors_, b.item_factors_)

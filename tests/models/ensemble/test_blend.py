"""The rating blend: combiners with known answers, the carve-then-refit fit, conformance, ML-100K band."""

from __future__ import annotations

import numpy as np
import pytest

from recforge.config import FitOptions
from recforge.data.interactions import Interactions
from recforge.errors import ConfigError, DataError
from recforge.models.baselines.bias import Bias
from recforge.models.ensemble._combiners import fit_gbdt, fit_ridge, predict_trees
from recforge.models.ensemble.blend import RatingBlend
from recforge.splits import kfold, random_split, ratio_user_split
from recforge.testing.conformance import RecommenderConformance
from recforge.testing.datasets import toy_ratings

SMALL = ({"model": "bias"}, {"model": "svd", "embedding_size": 4, "epochs": 5})


class TestBlendConformance(RecommenderConformance):
    model_class = RatingBlend
    config = {"members": SMALL, "combiner": "gbdt", "n_trees": 5, "min_samples_leaf": 5,
              "validation_fraction": 0.3, "validation_split": "random"}
    changes = {"members": ({"model": "bias"},), "combiner": "ridge", "support_features": False,
               "validation_fraction": 0.5, "validation_split": "kfold", "n_trees": 2, "learning_rate": 0.5,
               "max_leaf_nodes": 2, "min_samples_leaf": 30, "l2_regularization": 100.0}
    unchanged = {"reg": "ridge combiner only (the checks fit the gbdt one); test_ridge_penalty_shrinks covers it",
                 "folds": "kfold split only; test_kfold_stacking_learns_on_out_of_fold_predictions covers it"}
    invalid = [{"members": ()}, {"members": ({"model": "ease"},)}, {"members": ({"name": "svd"},)},
               {"members": ({"model": "svd", "no_such": 1},)}, {"members": ({"model": "no-such-model"},)},
               {"validation_fraction": 0.0}, {"validation_fraction": 1.0}, {"reg": -1.0}, {"n_trees": 0},
               {"learning_rate": 0.0}, {"max_leaf_nodes": 1}, {"min_samples_leaf": 0},
               {"l2_regularization": -1.0}, {"combiner": "mean"}, {"validation_split": "time"}, {"folds": 1}]


def _ids(d: Interactions) -> tuple[np.ndarray, np.ndarray]:
    return d.users.ids[d.user_idx], d.items.ids[d.item_idx]


def test_ridge_recovers_known_weights():
    rng = np.random.default_rng(0)
    X = rng.normal(3.5, 0.6, size=(400, 3))
    y = 0.25 + X @ np.array([0.2, 0.5, 0.3])
    w, b = fit_ridge(X, y, 0.0)
    np.testing.assert_allclose(w, [0.2, 0.5, 0.3], atol=1e-10)
    assert b == pytest.approx(0.25, abs=1e-9)
    # a penalty small against 400 rows moves the weights by a small, known amount: the closed form
    w1, b1 = fit_ridge(X, y, 1.0)
    Xc = X - X.mean(axis=0)
    expect = np.linalg.solve(Xc.T @ Xc + np.eye(3), Xc.T @ (y - y.mean()))
    np.testing.assert_allclose(w1, expect, atol=1e-12)
    assert b1 == pytest.approx(y.mean() - expect @ X.mean(axis=0))


def test_ridge_penalty_shrinks():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(50, 2))
    y = X @ np.array([1.0, -2.0]) + rng.normal(0, 0.1, 50)
    norms = [np.linalg.norm(fit_ridge(X, y, reg)[0]) for reg in (0.0, 10.0, 1000.0)]
    assert norms[0] > norms[1] > norms[2]


def test_trees_as_arrays_predict_like_scikit_learn():
    from sklearn.ensemble import HistGradientBoostingRegressor

    rng = np.random.default_rng(0)
    X = rng.normal(size=(2000, 3))
    y = X[:, 0] + np.sin(2 * X[:, 1]) + rng.normal(0, 0.1, 2000)
    X[::13, 2] = np.nan
    kw = dict(learning_rate=0.1, max_leaf_nodes=7, min_samples_leaf=20, l2_regularization=0.5)
    nodes, roots, base = fit_gbdt(X, y, n_trees=30, seed=0, **kw)
    ref = HistGradientBoostingRegressor(max_iter=30, early_stopping=False, random_state=0, **kw).fit(X, y)
    Xt = rng.normal(size=(500, 3))
    Xt[::4, 2] = np.nan
    assert len(roots) == 30
    np.testing.assert_allclose(predict_trees(nodes, roots, base, Xt, block=97), ref.predict(Xt), atol=1e-12)


def test_one_member_blend_is_that_member_up_to_the_affine_fit():
    data = toy_ratings(n_users=40, n_items=30, seed=2)
    blend = RatingBlend(members=({"model": "bias"},), combiner="ridge", reg=0.0, support_features=False,
                        validation_split="random", validation_fraction=0.25).fit(data, FitOptions(seed=7))
    # the affine map is the least-squares fit of the carve's ratings on the carve-fitted member
    carve = random_split(data, test_fraction=0.25, seed=7)
    p = Bias().fit(carve.train).predict(*_ids(carve.test), fallback="mean")
    slope, intercept = np.polyfit(p, carve.test.values.astype(np.float64), 1)
    np.testing.assert_allclose(blend.weights_, [slope], rtol=1e-9)
    assert blend.intercept_ == pytest.approx(intercept, rel=1e-9)
    # and the blend applies it to the member refitted on all the training data
    full = Bias().fit(data)
    u, i = _ids(data)
    np.testing.assert_allclose(blend.score(u, i), slope * full.score(u, i) + intercept, rtol=1e-9)
    np.testing.assert_allclose(blend.predict(u, i), np.clip(slope * full.score(u, i) + intercept, 1, 5), rtol=1e-9)


def test_members_are_refitted_on_all_training_data():
    data = toy_ratings(n_users=40, n_items=30, seed=4)
    blend = RatingBlend(members=SMALL, combiner="ridge", validation_split="random",
                        validation_fraction=0.3).fit(data, FitOptions(seed=1))
    for member, spec in zip(blend.members(), SMALL, strict=True):
        assert (member.seen_ != data.csr().astype(bool)).nnz == 0
        fresh = type(member)({k: v for k, v in spec.items() if k != "model"}).fit(data, FitOptions(seed=1))
        np.testing.assert_allclose(member.score(*_ids(data)), fresh.score(*_ids(data)))
    assert blend.n_validation_ == round(0.3 * len(data))
    # the support counts are those of all the data, scaled to the carve's share
    np.testing.assert_allclose(blend.user_support_, data.user_counts() * (1 - blend.n_validation_ / len(data)))


def test_validation_option_replaces_the_carve():
    data = toy_ratings(n_users=40, n_items=30, seed=5)
    split = random_split(data, test_fraction=0.2, seed=3)
    blend = RatingBlend(members=({"model": "bias"},), combiner="ridge", reg=0.0, support_features=False)
    blend.fit(split.train, FitOptions(seed=0, validation=split.test))
    member = Bias().fit(split.train)
    p = member.predict(*_ids(split.test), fallback="mean")
    slope, intercept = np.polyfit(p, split.test.values.astype(np.float64), 1)
    np.testing.assert_allclose(blend.weights_, [slope], rtol=1e-9)
    assert blend.n_validation_ == len(split.test) and blend.support_scale_ == 1.0
    u, i = _ids(split.test)
    np.testing.assert_allclose(blend.members()[0].score(u, i), member.score(u, i))
    with pytest.raises(DataError, match="vocabularies"):
        blend.fit(split.train, FitOptions(validation=toy_ratings(n_users=5, n_items=5, seed=0)))


def test_kfold_stacking_learns_on_out_of_fold_predictions():
    data = toy_ratings(n_users=40, n_items=30, seed=9)
    blend = RatingBlend(members=({"model": "bias"},), combiner="ridge", reg=0.0, support_features=False,
                        validation_split="kfold", folds=4).fit(data, FitOptions(seed=3))
    # every training rating is predicted once, by the member fitted on the other three folds
    oof = np.empty(len(data))
    for s in kfold(data, n_folds=4, seed=3):
        oof[_rows(data, s.test)] = Bias().fit(s.train).predict(*_ids(s.test), fallback="mean")
    slope, intercept = np.polyfit(oof, data.values.astype(np.float64), 1)
    np.testing.assert_allclose(blend.weights_, [slope], rtol=1e-9)
    assert blend.intercept_ == pytest.approx(intercept, rel=1e-9)
    assert blend.n_validation_ == len(data)
    assert blend.support_scale_ == pytest.approx(len(kfold(data, n_folds=4, seed=3)[0].train) / len(data))
    # the member is refitted on all the training data
    u, i = _ids(data)
    np.testing.assert_allclose(blend.members()[0].score(u, i), Bias().fit(data).score(u, i))


def _rows(data: Interactions, part: Interactions) -> np.ndarray:
    """Row numbers in ``data`` of the (user, item) pairs of ``part``."""
    keys = data.pair_keys()
    order = np.argsort(keys)
    return order[np.searchsorted(keys, part.pair_keys(), sorter=order)]


def test_user_carve_is_a_per_user_holdout():
    data = toy_ratings(n_users=40, n_items=30, seed=6)
    blend = RatingBlend(members=({"model": "bias"},), combiner="ridge", validation_split="user",
                        validation_fraction=0.2).fit(data, FitOptions(seed=2))
    assert blend.n_validation_ == len(ratio_user_split(data, test_fraction=0.2, seed=2).test)


def test_unknown_pairs_use_the_members_fallbacks():
    data = toy_ratings(n_users=30, n_items=20, seed=8)
    blend = RatingBlend(members=({"model": "bias"},), combiner="ridge", support_features=False).fit(data)
    member = blend.members()[0]
    user = data.users.ids[0]
    got = blend.predict([user, "nobody"], [-12345, data.items.ids[0]], fallback="mean")
    want = blend.weights_[0] * member.predict([user, "nobody"], [-12345, data.items.ids[0]], fallback="mean")
    np.testing.assert_allclose(got, np.clip(want + blend.intercept_, 1, 5))
    assert np.isnan(blend.predict([user], [-12345])).all()


def test_members_table_from_a_config_file(tmp_path):
    from recforge.config import read_config

    path = tmp_path / "blend.toml"
    path.write_text('[model]\nname = "blend"\n[model.params]\ncombiner = "ridge"\n'
                    'members = [{model = "bias", reg_user = 5.0}, {model = "knn-baseline", user_based = true}]\n')
    params = read_config(path)["model"]["params"]
    blend = RatingBlend(params)
    assert blend.config.member_specs() == [("bias", {"reg_user": 5.0}), ("knn-baseline", {"user_based": True})]
    with pytest.raises(ConfigError, match="reg_usr"):
        RatingBlend(members=({"model": "bias", "reg_usr": 5.0},))


@pytest.mark.slow
@pytest.mark.realdata
def test_ml100k_u1_band(ml100k):
    """The shipped defaults on u1.base / u1.test: ten members, 5-fold stacking, boosted trees with
    support counts (measured 0.8823: below the issue's target 0.885, GLocal-K's published 0.8889 and
    AutoRec's 0.8943 alone; benchmarks/RESULTS.md, "Rating blends")."""
    from recforge.evaluation.protocols import evaluate

    res = evaluate(RatingBlend(), ml100k, "rating-u1", options=FitOptions(seed=0))
    rmse = float(res.metric("RMSE"))
    assert 0.875 < rmse <= 0.885, rmse

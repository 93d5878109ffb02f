"""The content family on the model contract: recommend_for_history as before, capabilities, failures.

``OLD`` holds what the hand-written ``recommend_for_history`` bodies returned before the contract
(``_top_from_scores`` and the hybrids' ``history_scores`` dispatcher), on a fixed case and seed;
the base implementation driven by each model's ``_score_history`` must give the same lists.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from recforge.config import FitOptions
from recforge.errors import ConfigError, DataError
from recforge.models import registry
from recforge.models.registry import make_model
from recforge.testing.feature_datasets import genre_ratings

nan = float("nan")

#: (item ids, scores rounded to 6 decimals) of the code before the contract (commit d92088a)
OLD = {
    'content': (
        [124, 130, 136, 121, 111, 104],
        [0.807627, 0.779789, 0.74154, 0.676807, 0.542619, 0.530498],
    ),
    'content+vals': (
        [124, 130, 136, 121, 111, 104],
        [0.807627, 0.779789, 0.74154, 0.676807, 0.542619, 0.530498],
    ),
    'content+cand': (
        [124, 130, 121, 111, 127, 115],
        [0.807627, 0.779789, 0.676807, 0.542619, 0.319498, 0.265504],
    ),
    'content-rating': (
        [124, 130, 136, 121, 111, 104],
        [0.807627, 0.779789, 0.74154, 0.676807, 0.542619, 0.530498],
    ),
    'content-rating+vals': (
        [109, 115, 101, 135, 127, 133],
        [0.608971, 0.496751, 0.362537, 0.356893, 0.348933, 0.346631],
    ),
    'content-rating+cand': (
        [124, 130, 121, 111, 127, 115],
        [0.807627, 0.779789, 0.676807, 0.542619, 0.319498, 0.265504],
    ),
    'lightfm': (
        [110, 130, 104, 102, 128, 120],
        [0.155713, 0.15, 0.125698, 0.124941, 0.119717, 0.114677],
    ),
    'lightfm+vals': (
        [128, 110, 130, 114, 125, 134],
        [0.118417, 0.11471, 0.107648, 0.1024, 0.096271, 0.090414],
    ),
    'onboarding': (
        [108, 105, 130, 127, 119, 134],
        [745.00075, 740.000969, 731.00075, 702.000781, 649.000719, 593.000813],
    ),
    'onboarding+vals': (
        [108, 105, 130, 127, 119, 134],
        [745.00075, 740.000969, 731.00075, 702.000781, 649.000719, 593.000813],
    ),
    'weighted': (
        [105, 114, 121, 127, 134, 125],
        [0.907407, 0.824074, 0.814815, 0.796296, 0.759259, 0.731481],
    ),
    'weighted+vals': (
        [105, 114, 121, 127, 134, 125],
        [0.907407, 0.824074, 0.814815, 0.796296, 0.759259, 0.731481],
    ),
    'weighted+empty': (
        [125, 114, 136, 122, 105],
        [0.324074, 0.314815, 0.305556, 0.296296, 0.287037],
    ),
    'weighted+users': (
        [[121, 114, 134, 135, 106], [114, 136, 134, 122, 116], [105, 107, 111, 102, 113]],
        [
            [0.842593, 0.796296, 0.712963, 0.712963, 0.666667],
            [0.888889, 0.888889, 0.851852, 0.814815, 0.787037],
            [0.768519, 0.666667, 0.657407, 0.592593, 0.574074],
        ],
    ),
    'switching': (
        [114, 122, 125, 105, 121, 128],
        [0.958333, 0.958333, 0.916667, 0.888889, 0.861111, 0.819444],
    ),
    'switching+vals': (
        [114, 122, 125, 105, 121, 128],
        [0.958333, 0.958333, 0.916667, 0.888889, 0.861111, 0.819444],
    ),
    'switching+empty': (
        [125, 114, 136, 122, 105],
        [0.972222, 0.944444, 0.916667, 0.888889, 0.861111],
    ),
    'switching+users': (
        [[114, 121, 136, 127, 134], [114, 122, 105, 121, 128], [105, 128, 115, 102, 107]],
        [
            [0.958333, 0.861111, 0.819444, 0.763889, 0.763889],
            [0.958333, 0.958333, 0.888889, 0.861111, 0.819444],
            [0.888889, 0.819444, 0.722222, 0.666667, 0.666667],
        ],
    ),
    'switching-cold': (
        [108, 105, 130, 127, 119, 134],
        [0.972222, 0.944444, 0.916667, 0.861111, 0.833333, 0.75],
    ),
    'switching-cold+vals': (
        [108, 105, 130, 127, 119, 134],
        [0.972222, 0.944444, 0.916667, 0.861111, 0.833333, 0.75],
    ),
    'switching-cold+empty': (
        [125, 114, 136, 122, 105],
        [0.972222, 0.944444, 0.916667, 0.888889, 0.861111],
    ),
    'switching-cold+users': (
        [[114, 121, 136, 127, 134], [114, 122, 105, 121, 128], [105, 128, 115, 102, 107]],
        [
            [0.958333, 0.861111, 0.819444, 0.763889, 0.763889],
            [0.958333, 0.958333, 0.888889, 0.861111, 0.819444],
            [0.888889, 0.819444, 0.722222, 0.666667, 0.666667],
        ],
    ),
}

CASES = {
    "content": ("content", {}),
    "content-rating": ("content", {"weighting": "rating"}),
    "lightfm": ("lightfm-style", {"epochs": 3, "embedding_size": 8}),
    "onboarding": ("onboarding-knn", {}),
    "weighted": ("hybrid-weighted", {"models": ("content", "popularity", "demographic", "onboarding-knn",
                                                "lightfm-style"), "grid_steps": 3, "valid_rounds": 1,
                                     "model_configs": {"lightfm-style": {"epochs": 3, "embedding_size": 8}}}),
    "switching": ("hybrid-switching", {"warm_model": "popularity", "threshold": 3}),
    "switching-cold": ("hybrid-switching", {"warm_model": "popularity", "threshold": 10}),
}


def _check(got: tuple[np.ndarray, np.ndarray], key: str) -> None:
    ids, scores = got
    want_ids, want_scores = OLD[key]
    assert ids.tolist() == want_ids, key
    np.testing.assert_allclose(scores, np.asarray(want_scores, dtype=np.float64), atol=2e-6, err_msg=key)


@pytest.mark.parametrize("key", list(CASES))
def test_recommend_for_history_is_unchanged(key):
    data = genre_ratings(n_users=60, n_items=36, seed=1)
    imp = data.to_implicit()
    name, cfg = CASES[key]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = make_model(name, cfg).fit(data if name == "content" else imp, FitOptions(seed=0, threads=1))
    assert model.scores_history
    hist = list(imp.items.ids[[2, 5, 11, 17]])
    _check(model.recommend_for_history(hist, 6), key)
    _check(model.recommend_for_history(hist, 6, values=[5.0, 3.0, 1.0, 4.0]), key + "+vals")
    if name.startswith("hybrid"):
        _check(model.recommend_for_history([], 5, attributes={"gender": "F", "age": 30}), key + "+empty")
        _check(model.recommend(imp.users.ids[:3], 5), key + "+users")
    if name == "content":
        _check(model.recommend_for_history(hist, 6, candidates=imp.items.ids[10:30]), key + "+cand")


def test_declared_capabilities():
    from recforge.models.registry import get_model_class

    for name in ("content", "knowledge", "demographic", "lightfm-style", "hybrid-weighted",
                 "hybrid-switching", "onboarding-knn", "popularity"):
        assert get_model_class(name).scores_history, name
    assert get_model_class("lightfm-style").has_embeddings
    assert not get_model_class("random").scores_history
    assert get_model_class("content").feedback == "any"  # weighting="rating" reads the ratings
    # its ranking reads any feedback (a hybrid component on implicit data); predict averages values as given
    assert get_model_class("knowledge").feedback == "any"


def test_empty_history_scores_only_with_a_prior():
    data = genre_ratings(n_users=40, n_items=30, seed=2).to_implicit()
    content = make_model("content").fit(data)
    assert np.isnan(content.scores_for_history([])).all()  # no prior: no opinion
    assert np.isnan(content.scores_for_history(["no-such-item"])).all()
    pop = make_model("popularity").fit(data)
    np.testing.assert_array_equal(pop.scores_for_history([]), pop.item_scores_)
    demo = make_model("demographic").fit(data)
    np.testing.assert_allclose(demo.scores_for_history([], attributes={"gender": "F"}),
                               demo.scores_for_attributes({"gender": "F"}))


def test_score_all_is_the_dense_score():
    data = genre_ratings(n_users=40, n_items=30, seed=2).to_implicit()
    m = make_model("content").fit(data)
    users = data.users.ids[:4]
    rows = m.score_all(users)
    assert rows.shape == (4, len(m.items_))
    uu, ii = np.meshgrid(users, m.items_.ids, indexing="ij")
    np.testing.assert_allclose(rows, m.score(uu.ravel(), ii.ravel()).reshape(4, -1), atol=1e-12)
    assert np.isnan(m.score_all(["nobody"])).all() and m.score_all(users[0]).ndim == 1


def test_hybrid_with_a_component_that_cannot_score_histories_raises():
    data = genre_ratings(n_users=40, n_items=30, seed=2).to_implicit()
    cfg = {"models": ("content", "random"), "fixed_weights": (0.5, 0.5)}
    m = make_model("hybrid-weighted", cfg).fit(data)
    m.recommend(data.users.ids[0], 3)  # known users: every component scores them
    with pytest.raises(NotImplementedError, match="'random' cannot score an ad-hoc history"):
        m.recommend_for_history(data.items.ids[:3], 3)
    s = make_model("hybrid-switching", {"warm_model": "random", "threshold": 2}).fit(data)
    with pytest.raises(NotImplementedError, match="'random'"):
        s.scores_for_history(data.items.ids[:3])


def test_hybrid_component_failures_are_not_swapped(monkeypatch):
    data = genre_ratings(n_users=40, n_items=30, seed=2)
    # a component that fails to fit fails the hybrid
    bad = {"knowledge": {"genre_columns": ("no-such-column",)}}
    with pytest.raises(DataError, match="no-such-column"):
        make_model("hybrid-weighted", {"models": ("knowledge", "popularity"), "fixed_weights": (0.5, 0.5),
                                       "model_configs": bad}).fit(data)
    with pytest.raises(DataError, match="no-such-column"):
        make_model("hybrid-switching", {"warm_model": "knowledge", "model_configs": bad}).fit(data)
    with pytest.raises(ConfigError):
        make_model("hybrid-weighted", {"models": ("no-such-model",), "fixed_weights": (1.0,)}).fit(data)
    # "auto" is EASE, and a broken EASE is an error, never another CF model in its place
    real = registry.make_model

    def broken(name, *args, **kwargs):
        if name == "ease":
            raise RuntimeError("ease is broken")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(registry, "make_model", broken)
    for cfg in ({"models": ("auto", "popularity"), "fixed_weights": (0.5, 0.5)},):
        with pytest.raises(RuntimeError, match="ease is broken"):
            make_model("hybrid-weighted", cfg).fit(data)
    with pytest.raises(RuntimeError, match="ease is broken"):
        make_model("hybrid-switching", {"warm_model": "auto"}).fit(data)


def test_old_validation_fraction_name_warns_and_works():
    from recforge.models.content.weighted import WeightedConfig

    with pytest.warns(DeprecationWarning, match="valid_fraction"):
        cfg = WeightedConfig.from_dict({"valid_fraction": 0.3})
    assert cfg.validation_fraction == 0.3
    with pytest.warns(DeprecationWarning):
        m = make_model("hybrid-weighted", {"valid_fraction": 0.4})
    assert m.config.validation_fraction == 0.4

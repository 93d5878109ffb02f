"""Demographic popularity: conformance, exact naive-Bayes scores, attribute-only scoring."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recforge.config import FitOptions
from recforge.data.interactions import Interactions
from recforge.errors import ConfigError
from recforge.models.base import Recommender
from recforge.models.content.demographic import DemographicPopularity
from recforge.testing.conformance import RecommenderConformance
from recforge.testing.feature_datasets import genre_ratings


class TestDemographicConformance(RecommenderConformance):
    checkerboard_exempt = "ranks by user attributes, which the checkerboard data does not have"
    model_class = DemographicPopularity
    config = {}
    changes = {"shrinkage": 0.5, "bandwidth": 0.05, "attributes": ("gender",), "max_levels": 1}
    unchanged = {}
    invalid = [{"bandwidth": 0.0}, {"shrinkage": 0.0}, {"max_levels": 0}]
    atol = 1e-9

    def make_data(self) -> Interactions:
        return genre_ratings(n_users=30, n_items=25, seed=3, string_ids=self.string_ids).to_implicit()

    def test_string_ids(self) -> None:
        data = genre_ratings(n_users=20, n_items=15, seed=5, string_ids=True).to_implicit()
        ids, _ = self.fit(data=data).recommend("u1", k=3)
        assert all(isinstance(x, str) and x.startswith("i") for x in ids.tolist())


def _tiny() -> Interactions:
    # users 1, 2 are "F" and watched item 10; users 3, 4 are "M" and watched item 20; user 4 also 10;
    # user 5 has features but no interactions (not in the vocabulary)
    df = pd.DataFrame({"user_id": [1, 2, 3, 4, 4], "item_id": [10, 10, 20, 20, 10]})
    data = Interactions.from_dataframe(df, "user_id", "item_id")
    feats = pd.DataFrame({"gender": ["F", "F", "M", "M", "F"]}, index=pd.Index([1, 2, 3, 4, 5], name="user_id"))
    return data.with_features(user_features=feats)


def test_exact_naive_bayes_scores():
    close = {"rtol": 1e-6}  # counts are summed in float32
    data = _tiny()
    m = DemographicPopularity(shrinkage=2.0).fit(data)
    p = np.array([(3 + 1) / 5, (2 + 1) / 5])  # items 10, 20 over 4 training users
    # the "F" group (users 1, 2): item 10 twice, item 20 never
    rate_f = (np.array([2.0, 0.0]) + 2.0 * p) / (2 + 2.0)
    want = np.log(p) + np.log(rate_f) - np.log(p)
    np.testing.assert_allclose(m._score_users(np.array([0]))[0], want, **close)
    rate_m = (np.array([1.0, 2.0]) + 2.0 * p) / (2 + 2.0)
    np.testing.assert_allclose(m._score_users(np.array([3]))[0], np.log(rate_m), **close)
    # a new user known only by the attribute is scored like the other "F" users
    np.testing.assert_allclose(m.scores_for_attributes({"gender": "F"}), want, **close)
    np.testing.assert_allclose(m.scores_for_attributes({"gender": "M"}), np.log(rate_m), **close)
    np.testing.assert_allclose(m.scores_for_attributes({}), np.log(p), **close)  # no attributes: popularity
    np.testing.assert_allclose(m.scores_for_attributes({"gender": "X", "nope": 1}), np.log(p), **close)


def test_numeric_kernel_and_nearest_value():
    data = genre_ratings(n_users=40, n_items=20, seed=2).to_implicit()
    m = DemographicPopularity(attributes=("age",), bandwidth=0.3).fit(data)
    ages = data.user_features["age"]
    u = 0
    a = float(ages.loc[data.users.ids[u]])
    np.testing.assert_allclose(m.scores_for_attributes({"age": a}), m._score_users(np.array([u]))[0])
    # an unseen age takes the nearest seen one
    seen = np.sort(ages.unique())
    np.testing.assert_allclose(m.scores_for_attributes({"age": seen[0] - 5}),
                               m.scores_for_attributes({"age": seen[0]}))
    # a very wide kernel is plain popularity shrunk: every age gives nearly the same ranking
    wide = DemographicPopularity(attributes=("age",), bandwidth=1e6).fit(data)
    np.testing.assert_allclose(wide._score_users(np.array([0]))[0], wide._score_users(np.array([1]))[0])


def test_unknown_attribute_column_is_an_error():
    with pytest.raises(ConfigError):
        DemographicPopularity(attributes=("shoe_size",)).fit(_tiny())


def test_without_user_features_it_is_popularity():
    df = pd.DataFrame({"user_id": [1, 2, 3], "item_id": [7, 7, 8]})
    data = Interactions.from_dataframe(df, "user_id", "item_id")
    m = DemographicPopularity().fit(data)
    ids, _ = m.recommend(1, k=2, exclude_seen=False)
    assert ids.tolist() == [7, 8]


def test_save_load(tmp_path):
    data = genre_ratings(n_users=30, n_items=25, seed=3).to_implicit()
    m = DemographicPopularity().fit(data, FitOptions(seed=0))
    again = Recommender.load(m.save(tmp_path / "d.npz"))
    np.testing.assert_allclose(again._score_users(np.arange(5)), m._score_users(np.arange(5)))
    np.testing.assert_allclose(again.scores_for_attributes({"gender": "F", "age": 30}),
                               m.scores_for_attributes({"gender": "F", "age": 30}))

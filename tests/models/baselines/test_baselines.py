import numpy as np
import pandas as pd
import pytest

from recforge.config import FitOptions
from recforge.data.interactions import Interactions
from recforge.models.baselines.bias import Bias
from recforge.models.baselines.simple import GlobalMean, Popularity, RandomScorer
from recforge.testing.conformance import RecommenderConformance


class TestBias(RecommenderConformance):
    model_class = Bias
    config = {"epochs": 5}
    changes = {"reg_user": 0.0, "reg_item": 0.0, "epochs": 1}
    unchanged = {}
    invalid = [{"reg_user": -1.0}, {"reg_item": -0.5}, {"epochs": 0}]


class TestGlobalMean(RecommenderConformance):
    model_class = GlobalMean


class TestPopularity(RecommenderConformance):
    checkerboard_exempt = "popularity ranks every user's list alike: no personal block structure"
    model_class = Popularity
    invalid = [{"by": "nonsense"}]

    def make_data(self) -> Interactions:
        # 'sum' differs from 'count' only when values differ, so keep the ratings as weights
        data = super().make_data()
        data.values = np.arange(len(data), dtype=np.float32) % 5 + 1
        data.explicit = False  # implicit counts: fit keeps them (explicit ratings would become 1s)
        return data

    changes = {"by": "sum"}
    unchanged = {}


class TestRandom(RecommenderConformance):
    checkerboard_exempt = "random scores by design"
    model_class = RandomScorer
    changes = {"salt": 3}
    unchanged = {}


def _frame(rows):
    return Interactions.from_dataframe(pd.DataFrame(rows, columns=["user_id", "item_id", "rating"]), rating="rating")


def test_bias_closed_form_single_user():
    # one user, two items, no regularisation: biases reproduce the ratings exactly
    data = _frame([(1, 10, 4.0), (1, 11, 2.0)])
    m = Bias(reg_user=0.0, reg_item=0.0, epochs=1).fit(data)
    assert m.global_mean_ == pytest.approx(3.0)
    np.testing.assert_allclose(m.predict([1, 1], [10, 11]), [4.0, 2.0])


def test_bias_shrinks_towards_mean():
    data = _frame([(1, 10, 5.0), (2, 10, 5.0), (2, 11, 1.0), (3, 11, 1.0)])
    loose = Bias(reg_user=0.0, reg_item=0.0).fit(data).item_bias_
    tight = Bias(reg_user=0.0, reg_item=100.0).fit(data).item_bias_
    assert np.all(np.abs(tight) < np.abs(loose))


def test_popularity_orders_by_count():
    data = Interactions.from_dataframe(pd.DataFrame({"user_id": [1, 2, 3, 1, 2, 4], "item_id": [5, 5, 5, 6, 6, 7]}))
    m = Popularity().fit(data)
    ids, scores = m.recommend(4, k=3)
    assert ids.tolist() == [5, 6, -1]  # 7 is seen; only two unseen items exist
    assert scores[:2].tolist() == [3.0, 2.0] and np.isnan(scores[2])


def test_random_differs_by_seed():
    data = _frame([(u, i, 3.0) for u in range(5) for i in range(5)])
    a = RandomScorer().fit(data, FitOptions(seed=1)).score([0, 1], [2, 3])
    b = RandomScorer().fit(data, FitOptions(seed=2)).score([0, 1], [2, 3])
    assert not np.allclose(a, b)

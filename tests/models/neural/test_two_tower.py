"""Two-tower retrieval model: features, history windows, in-batch softmax training."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")

from recforge.config import FitOptions
from recforge.data.interactions import Interactions
from recforge.models.neural.two_tower import TwoTower, encode_features, history_windows
from recforge.testing.conformance import RecommenderConformance


class TestTwoTower(RecommenderConformance):
    checkerboard_config = {"epochs": 30, "batch_size": 32}
    model_class = TwoTower
    config = {"epochs": 2, "embedding_size": 8, "hidden": (16,), "output_size": 8, "batch_size": 64,
              "history_length": 3}
    changes = {"history_length": 0, "hidden": (), "temperature": 0.5, "logq_correction": False,
               "output_size": 4, "dropout": 0.5, "reg": 0.5,
               "batch_size": 7, "ema_decay": 0.9, "embedding_size": 10, "epochs": 1, "learning_rate": 0.003,
               "optimizer": "sgd", "loss": "bpr"}
    unchanged = {"margin": "used only with loss='hinge' (tests/models/test_hinge.py covers it)",
                 "max_categories": "encodes side features: the toy data has none",
                 "use_features": "reads side features: the toy data has none"}
    invalid = [{"temperature": 0.0}, {"history_length": -1}, {"hidden": (0,)}, {"output_size": 0},
               {"loss": "mse"}, {"margin": -1.0}]
    atol = 1e-5


def test_history_windows_by_hand():
    df = pd.DataFrame({"user_id": [1, 1, 1, 2, 2], "item_id": [10, 11, 12, 10, 13],
                       "timestamp": [30, 10, 20, 5, 1]})
    data = Interactions.from_dataframe(df, timestamp="timestamp")
    per_row, per_user = history_windows(data, 2)
    pad = data.n_items  # items 10, 11, 12, 13 -> 0..3, pad 4
    # user 1 in time order: 11 (t10), 12 (t20), 10 (t30); user 2: 13 (t1), 10 (t5)
    np.testing.assert_array_equal(per_row, [[1, 2], [pad, pad], [pad, 1], [pad, 3], [pad, pad]])
    np.testing.assert_array_equal(per_user, [[2, 0], [3, 0]])
    assert history_windows(data, 0)[0].shape == (5, 0)


def test_encode_features():
    frame = pd.DataFrame(
        {"age": [20.0, 40.0, np.nan], "kind": ["a", "b", "a"], "zip": ["x1", "x2", "x3"], "flag": [True, False, True]},
        index=[7, 8, 9],
    )
    x, names = encode_features(frame, np.array([9, 7, 8, 99]), max_categories=2)
    assert names == ["age", "kind=a", "kind=b", "flag"]  # zip has 3 levels > 2: left out
    np.testing.assert_allclose(x[:, 0], [0.0, -1.0, 1.0, 0.0])  # missing and unknown ids -> 0
    np.testing.assert_array_equal(x[:, 1:3], [[1, 0], [1, 0], [0, 1], [0, 0]])
    np.testing.assert_allclose(x[:, 3], [2**-0.5, 2**-0.5, -(2**0.5), 0.0], rtol=1e-5)
    empty, none = encode_features(None, np.array([1, 2]), 5)
    assert empty.shape == (2, 0) and none == []


def test_learns_structure(nh):
    train, test = nh.clustered()
    m = TwoTower(epochs=30, embedding_size=16, hidden=(32,), output_size=16, batch_size=128, learning_rate=0.01,
                 history_length=5, temperature=0.1)
    m.fit(train, FitOptions(seed=0))
    h = m.history_["train_loss"]
    assert h[-1] < 0.8 * h[0]
    assert nh.hit_rate(m, test) > nh.popularity_hit_rate(train, test) + 0.3


def test_side_features_reach_the_towers(nh):
    train, test = nh.clustered()
    groups = np.arange(train.n_items) % 4
    items = pd.DataFrame({"group": [f"g{g}" for g in groups]}, index=train.items.ids)
    users = pd.DataFrame({"group": [f"g{g}" for g in np.arange(train.n_users) % 4]}, index=train.users.ids)
    with_f = train.with_features(users, items)
    m = TwoTower(epochs=15, embedding_size=8, hidden=(16,), output_size=8, batch_size=128, learning_rate=0.01,
                 history_length=0, temperature=0.1).fit(with_f, FitOptions(seed=0))
    assert m.item_features_.shape == (train.n_items, 4) and m.item_feature_names_[0] == "group=g0"
    assert m.user_features_.shape == (train.n_users, 4)
    assert nh.hit_rate(m, test) > nh.popularity_hit_rate(train, test) + 0.3
    off = TwoTower(**{**m.config.to_dict(), "use_features": False}).fit(with_f, FitOptions(seed=0))
    assert off.item_features_.shape == (train.n_items, 0)


def test_embeddings_are_unit_vectors_and_give_the_scores(nh):
    train, _ = nh.clustered(n_users=20, n_items=16)
    m = TwoTower(epochs=2, output_size=8, history_length=2).fit(train)
    u, v = m.embeddings()
    assert u.shape == (train.n_users, 8) and v.shape == (train.n_items, 8)
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(m._score_users(np.arange(4)), u[:4] @ v.T, rtol=1e-4, atol=1e-5)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cpu_gpu_parity(nh):
    train, _ = nh.clustered()
    nh.assert_cpu_gpu_parity(lambda: TwoTower(epochs=3, history_length=3), train)

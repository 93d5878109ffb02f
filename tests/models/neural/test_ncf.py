"""GMF, MLP and NeuMF."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from recforge.config import FitOptions
from recforge.errors import ConfigError
from recforge.models.neural.ncf import GMF, MLP, NeuMF
from recforge.testing.conformance import RecommenderConformance

FAST = {"epochs": 2, "batch_size": 256, "learning_rate": 0.01}


class TestGMF(RecommenderConformance):
    model_class = GMF
    config = {**FAST, "embedding_size": 4}
    changes = {"embedding_size": 8, "negatives": 1, "negative_sampling": "popularity", "reg": 0.1, "epochs": 1,
               "batch_size": 7, "ema_decay": 0.9, "learning_rate": 0.03, "optimizer": "sgd", "loss": "bpr"}
    unchanged = {"margin": "used only with loss='hinge' (tests/models/test_hinge.py covers it)"}
    invalid = [{"embedding_size": 0}, {"negatives": 0}, {"reg": -1.0}, {"negative_sampling": "zipf"}]
    atol = 1e-5


class TestMLP(RecommenderConformance):
    checkerboard_config = {"epochs": 40, "batch_size": 64, "learning_rate": 0.03}
    model_class = MLP
    config = {**FAST, "hidden": (16, 8, 4)}
    changes = {"hidden": (8, 4), "dropout": 0.5, "negatives": 2,
               "batch_size": 7, "ema_decay": 0.9, "epochs": 1, "learning_rate": 0.03,
               "negative_sampling": "popularity", "optimizer": "sgd", "reg": 0.5, "loss": "hinge"}
    unchanged = {"margin": "used only with loss='hinge' (tests/models/test_hinge.py covers it)"}
    invalid = [{"hidden": ()}, {"hidden": (7, 4)}, {"hidden": (8, 0)}, {"dropout": 1.0}]
    atol = 1e-5


class TestNeuMF(RecommenderConformance):
    checkerboard_config = {"epochs": 30, "batch_size": 64}
    model_class = NeuMF
    config = {**FAST, "embedding_size": 4, "hidden": (16, 8)}
    changes = {"embedding_size": 8, "hidden": (8, 4), "pretrain": True, "negatives": 2,
               "batch_size": 7, "dropout": 0.5, "ema_decay": 0.9, "epochs": 1, "learning_rate": 0.03,
               "negative_sampling": "popularity", "optimizer": "sgd", "reg": 0.5, "loss": "bpr"}
    unchanged = {"margin": "used only with loss='hinge' (tests/models/test_hinge.py covers it)",
                 "alpha": "used only with pretrain=True (False here)",
                 "pretrain_epochs": "used only with pretrain=True (False here)"}
    invalid = [{"alpha": 1.5}, {"pretrain_epochs": 0}, {"hidden": (9,)}, {"loss": "mse"}, {"margin": 0.0}]
    atol = 1e-5


def _learn(model, nh):
    train, test = nh.clustered()
    model.fit(train, FitOptions(seed=0))
    h = model.history_["train_loss"]
    assert h[-1] < 0.8 * h[0]
    assert nh.hit_rate(model, test) > nh.popularity_hit_rate(train, test) + 0.3


def test_gmf_learns(nh):
    _learn(GMF(embedding_size=8, epochs=20, batch_size=256, learning_rate=0.02), nh)


def test_mlp_learns(nh):
    _learn(MLP(hidden=(32, 16), epochs=25, batch_size=256, learning_rate=0.01), nh)


def test_neumf_learns(nh):
    _learn(NeuMF(embedding_size=8, hidden=(32, 16), epochs=20, batch_size=256, learning_rate=0.01), nh)


def test_neumf_pretraining_starts_from_gmf_and_mlp(nh):
    train, test = nh.clustered()
    m = NeuMF(embedding_size=8, hidden=(16, 8), epochs=1, pretrain=True, pretrain_epochs=15, batch_size=256,
              learning_rate=0.01, optimizer="sgd")
    m.fit(train, FitOptions(seed=0))
    # one plain SGD epoch after pretraining: the pretrained towers already rank well
    assert nh.hit_rate(m, test) > nh.popularity_hit_rate(train, test) + 0.3


def test_full_ranking_matches_pairwise_scores(nh):
    train, _ = nh.clustered(n_users=20, n_items=15)
    for model in (GMF(epochs=1), MLP(epochs=1, hidden=(8, 4, 2)), MLP(epochs=1, hidden=(8,)),
                  NeuMF(epochs=1, hidden=(8, 4))):
        model.fit(train)
        u = np.arange(5)
        dense = model._score_users(u)
        uu = np.repeat(u, train.n_items)
        ii = np.tile(np.arange(train.n_items), len(u))
        np.testing.assert_allclose(dense.ravel(), model._score_pairs(uu, ii), rtol=1e-5, atol=1e-6)


def test_negative_ratio_sets_the_epoch_size(nh):
    train, _ = nh.clustered(n_users=20, n_items=15)
    from recforge.training.loop import run_context

    m = GMF(negatives=3, batch_size=10_000)
    m.fit(train)
    with run_context(FitOptions(seed=0)) as ctx:
        batches = m._batches(train, ctx, m._net)
        (_, i, y), = list(batches)
        assert len(y) == 4 * len(train) and float(y.sum()) == len(train)
        (_, i2, y2), = list(batches)
        assert not torch.equal(i[y == 0].sort().values, i2[y2 == 0].sort().values)  # fresh negatives


def test_hidden_must_be_even_first():
    with pytest.raises(ConfigError, match="even"):
        MLP(hidden=(9, 4))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cpu_gpu_parity(nh):
    train, _ = nh.clustered()
    for make in (lambda: GMF(epochs=2), lambda: MLP(epochs=2, hidden=(16, 8)), lambda: NeuMF(epochs=2)):
        nh.assert_cpu_gpu_parity(make, train)

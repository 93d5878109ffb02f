"""Torch matrix factorisation (mf-torch)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from recforge.config import FitOptions
from recforge.models.baselines.bias import Bias
from recforge.models.neural.mf import TorchMF
from recforge.testing.conformance import RecommenderConformance


class TestTorchMF(RecommenderConformance):
    model_class = TorchMF
    config = {"epochs": 3, "embedding_size": 8, "batch_size": 256, "learning_rate": 0.01}
    changes = {"embedding_size": 4, "reg": 0.5, "use_bias": False, "epochs": 1, "learning_rate": 0.001,
               "init_std": 0.5, "reg_bias": 1.0, "batch_size": 32, "optimizer": "sgd",
               "ema_decay": 0.9, "loss": "bpr", "reg_exponent": 0.0}
    unchanged = {"negatives": "used only by the implicit losses (loss 'auto' is mse on ratings here)",
                 "negative_sampling": "used only by the implicit losses (loss 'auto' is mse on ratings here)",
                 "margin": "used only with loss='hinge' (test_hinge covers it)"}
    invalid = [{"embedding_size": 0}, {"reg": -1.0}, {"loss": "warp"}, {"margin": -1.0}, {"negatives": 0}, {"epochs": 0},
               {"learning_rate": 0.0}, {"optimizer": "lbfgs"}, {"reg_bias": -0.1}]
    atol = 1e-5


class TestTorchMFImplicit(RecommenderConformance):
    model_class = TorchMF
    config = {"epochs": 3, "embedding_size": 8, "batch_size": 256, "loss": "bce"}
    changes = {"negatives": 1, "negative_sampling": "popularity", "loss": "bpr",
               "batch_size": 7, "ema_decay": 0.9, "embedding_size": 10, "epochs": 2, "init_std": 0.5,
               "learning_rate": 0.006, "optimizer": "sgd", "reg": 0.5, "reg_bias": 1.0, "reg_exponent": 0.0,
               "use_bias": False}
    unchanged = {"margin": "used only with loss='hinge' (test_hinge covers it)"}
    atol = 1e-5

    def make_data(self):
        return super().make_data().to_implicit()


def test_explicit_learning_beats_bias_baseline(nh):
    train, test = nh.rating_split()
    model = TorchMF(epochs=40, embedding_size=8, reg=0.02, learning_rate=0.02, batch_size=128)
    model.fit(train, FitOptions(seed=0))
    loss = model.history_["train_loss"]
    assert loss[-1] < 0.5 * loss[0]
    assert model.loss_ == "mse"
    assert nh.rmse(model, test) < nh.rmse(Bias().fit(train), test) - 0.05


@pytest.mark.parametrize("loss", ["bpr", "bce"])
def test_implicit_learning_beats_popularity(loss, nh):
    train, test = nh.clustered()
    model = TorchMF(loss=loss, epochs=25, embedding_size=8, learning_rate=0.02, batch_size=256, reg=1e-4)
    model.fit(train, FitOptions(seed=0))
    assert model.loss_ == loss and model.global_mean_ == 0.0
    h = model.history_["train_loss"]
    assert h[-1] < 0.7 * h[0]
    assert nh.hit_rate(model, test) > nh.popularity_hit_rate(train, test) + 0.3


def test_auto_loss_picks_bpr_for_implicit_data(nh):
    train, _ = nh.clustered()
    assert TorchMF(epochs=1).fit(train).loss_ == "bpr"


def test_score_is_the_biased_dot_product(nh):
    train, _ = nh.rating_split()
    m = TorchMF(epochs=2, embedding_size=4).fit(train)
    p, q = m.embeddings()
    net = m._net
    assert p.shape == (train.n_users, 4) and q.shape == (train.n_items, 4)
    bu = net.user_bias.weight.detach().numpy().ravel()
    bi = net.item_bias.weight.detach().numpy().ravel()
    u, i = train.user_idx[:10], train.item_idx[:10]
    expect = m.global_mean_ + bu[u] + bi[i] + (p[u] * q[i]).sum(1)
    np.testing.assert_allclose(m.score(train.users.ids[u], train.items.ids[i]), expect, rtol=1e-5)


def test_early_stopping_on_validation_rmse(nh):
    from recforge.training import TrainingOptions

    train, valid = nh.rating_split()
    m = TorchMF(epochs=60, embedding_size=16, reg=0.0, learning_rate=0.05, batch_size=64)
    m.fit(train, TrainingOptions(seed=0, validation=valid, patience=3))
    h = m.history_["val_rmse"]
    assert len(h) < 60  # unregularised MF overfits, so validation RMSE turns up and training stops
    assert m.best_epoch_ == int(np.argmin(h))
    assert nh.rmse(m, valid) == pytest.approx(min(h), abs=1e-4)  # the best weights were restored


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cpu_gpu_parity(nh):
    train, _ = nh.rating_split()
    nh.assert_cpu_gpu_parity(lambda: TorchMF(epochs=3, embedding_size=8), train)

"""NGCF and LightGCN: the normalised adjacency, propagation, learning."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp

torch = pytest.importorskip("torch")

from recforge.config import FitOptions
from recforge.models.neural.graph import (
    NGCF,
    LightGCN,
    _spmm,
    normalized_adjacency,
    sparse_tensor,
)
from recforge.testing.conformance import RecommenderConformance


class TestLightGCN(RecommenderConformance):
    checkerboard_config = {"epochs": 30, "batch_size": 64}
    model_class = LightGCN
    config = {"epochs": 2, "embedding_size": 8, "batch_size": 256, "learning_rate": 0.01}
    changes = {"n_layers": 1, "embedding_size": 4, "reg": 1.0, "negative_sampling": "popularity", "epochs": 1,
               "batch_size": 7, "ema_decay": 0.9, "learning_rate": 0.03, "optimizer": "sgd", "loss": "hinge"}
    unchanged = {"margin": "used only with loss='hinge' (test_hinge covers it)"}
    invalid = [{"n_layers": -1}, {"embedding_size": 0}, {"reg": -1.0}, {"loss": "warp"}, {"margin": 0.0}]
    atol = 1e-5


class TestNGCF(RecommenderConformance):
    checkerboard_config = {"epochs": 30, "batch_size": 64}
    model_class = NGCF
    config = {"epochs": 2, "embedding_size": 8, "layer_sizes": (8, 8), "batch_size": 256, "learning_rate": 0.01}
    changes = {"layer_sizes": (8,), "node_dropout": 0.5, "message_dropout": 0.5, "embedding_size": 4,
               "batch_size": 7, "ema_decay": 0.9, "epochs": 1, "learning_rate": 0.03,
               "negative_sampling": "popularity", "optimizer": "sgd", "reg": 3e-5, "loss": "hinge"}
    unchanged = {"margin": "used only with loss='hinge' (test_hinge covers it)"}
    invalid = [{"layer_sizes": ()}, {"node_dropout": 1.0}, {"message_dropout": -0.1}]
    atol = 1e-5


# ------------------------------------------------------------------------------ adjacency
def _graph():
    # users u0, u1, u2 (no items); items i0, i1. Edges u0-i0, u0-i1, u1-i0.
    return sp.csr_matrix(np.array([[1, 1], [1, 0], [0, 0]], np.float32))


def test_normalized_adjacency_by_hand():
    a = normalized_adjacency(_graph()).toarray()
    # node order: u0 u1 u2 i0 i1; degrees 2 1 0 2 1
    expect = np.zeros((5, 5))
    expect[0, 3] = expect[3, 0] = 1 / math.sqrt(2 * 2)
    expect[0, 4] = expect[4, 0] = 1 / math.sqrt(2 * 1)
    expect[1, 3] = expect[3, 1] = 1 / math.sqrt(1 * 2)
    np.testing.assert_allclose(a, expect, rtol=1e-6)


def test_normalized_adjacency_with_self_loops_and_weights_ignored():
    r = _graph() * 5.0  # values (ratings, counts) do not weight the edges
    a = normalized_adjacency(r, self_loops=True).toarray()
    deg = np.array([3, 2, 1, 3, 2], float)
    dense = np.zeros((5, 5))
    dense[[0, 0, 1], [3, 4, 3]] = 1
    dense = dense + dense.T + np.eye(5)
    np.testing.assert_allclose(a, dense / np.sqrt(np.outer(deg, deg)), rtol=1e-6)


def test_symmetric_spmm_forward_and_gradient_match_dense():
    adj = normalized_adjacency(_graph())
    x = torch.randn(5, 3, requires_grad=True, dtype=torch.float32)
    y = _spmm(sparse_tensor(adj), x)
    dense = torch.from_numpy(adj.toarray())
    np.testing.assert_allclose(y.detach().numpy(), (dense @ x).detach().numpy(), rtol=1e-5, atol=1e-6)
    w = torch.randn(5, 3)
    (y * w).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), (dense.T @ w).numpy(), rtol=1e-5, atol=1e-6)


def test_lightgcn_final_embeddings_are_the_layer_mean(nh):
    train, _ = nh.clustered(n_users=12, n_items=10)
    m = LightGCN(epochs=1, embedding_size=4, n_layers=2).fit(train, FitOptions(seed=0))
    e0 = m._net.embedding.weight.detach().numpy().astype(np.float64)
    a = normalized_adjacency(m.seen_).toarray()
    expect = (e0 + a @ e0 + a @ a @ e0) / 3
    users, items = m.embeddings()
    np.testing.assert_allclose(users, expect[: train.n_users], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(items, expect[train.n_users :], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(m._score_users(np.arange(3)), users[:3] @ items.T, rtol=1e-4, atol=1e-6)


def test_ngcf_embedding_concatenates_normalised_layers(nh):
    train, _ = nh.clustered(n_users=12, n_items=10)
    m = NGCF(epochs=1, embedding_size=4, layer_sizes=(6, 5)).fit(train, FitOptions(seed=0))
    users, items = m.embeddings()
    assert users.shape == (train.n_users, 4 + 6 + 5) and items.shape == (train.n_items, 15)
    norms = np.linalg.norm(users[:, 4:10], axis=1)
    np.testing.assert_allclose(norms[norms > 0], 1.0, rtol=1e-5)


# ------------------------------------------------------------------------------ learning
def test_lightgcn_learns(nh):
    train, test = nh.clustered()
    m = LightGCN(epochs=30, embedding_size=16, batch_size=256, learning_rate=0.02).fit(train, FitOptions(seed=0))
    h = m.history_["train_loss"]
    assert h[-1] < 0.6 * h[0]
    assert nh.hit_rate(m, test) > nh.popularity_hit_rate(train, test) + 0.3


def test_ngcf_learns(nh):
    train, test = nh.clustered()
    m = NGCF(epochs=30, embedding_size=16, layer_sizes=(16, 16), batch_size=256, learning_rate=0.01,
             node_dropout=0.0, message_dropout=0.0).fit(train, FitOptions(seed=0))
    h = m.history_["train_loss"]
    assert h[-1] < 0.6 * h[0]
    assert nh.hit_rate(m, test) > nh.popularity_hit_rate(train, test) + 0.3


def test_ranking_validation_and_early_stopping(nh):
    from recforge.training import TrainingOptions

    train, test = nh.clustered()
    m = LightGCN(epochs=40, embedding_size=16, batch_size=256, learning_rate=0.02)
    m.fit(train, TrainingOptions(seed=0, validation=test, patience=3))
    h = m.history_["val_ndcg@20"]
    assert len(h) == len(m.history_["val_recall@20"]) and max(h) > 0.3
    assert m.history_["epoch"][-1] + 1 <= 40


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cpu_gpu_parity(nh):
    train, _ = nh.clustered()
    nh.assert_cpu_gpu_parity(lambda: LightGCN(epochs=3, embedding_size=8), train)
    nh.assert_cpu_gpu_parity(lambda: NGCF(epochs=3, embedding_size=8, layer_sizes=(8, 8), node_dropout=0.0,
                                       message_dropout=0.0), train)

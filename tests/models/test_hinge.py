"""The pairwise hinge loss: its value and gradient by hand, and as the ``loss`` option of every
pairwise-trained model (BPR-MF, mf-torch, LightGCN, NGCF, NeuMF with pairs, the two-tower), where
its margin must matter."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recforge.config import FitOptions
from recforge.models.factorization.bpr import BPR
from recforge.models.neural import losses
from recforge.models.neural.graph import LightGCN
from recforge.models.neural.mf import TorchMF
from recforge.models.neural.ncf import NeuMF
from recforge.models.neural.two_tower import TwoTower
from recforge.testing.datasets import checkerboard


def test_hinge_value_and_gradient_by_hand() -> None:
    pos = torch.tensor([2.0, 0.5, -1.0], requires_grad=True)
    neg = torch.tensor([0.0, 0.0, 0.0], requires_grad=True)
    loss = losses.hinge(pos, neg, margin=1.0)
    # max(0, 1 - 2) = 0, max(0, 1 - 0.5) = 0.5, max(0, 1 + 1) = 2 -> mean 2.5 / 3
    assert loss.item() == pytest.approx(2.5 / 3)
    loss.backward()
    # outside the margin no gradient; inside -1/n on the positive and +1/n on the negative
    np.testing.assert_allclose(pos.grad.numpy(), [0.0, -1 / 3, -1 / 3])
    np.testing.assert_allclose(neg.grad.numpy(), [0.0, 1 / 3, 1 / 3])
    assert losses.pairwise("hinge", pos, neg, 3.0).item() == pytest.approx((1 + 2.5 + 4) / 3)
    assert losses.pairwise("bpr", pos, neg).item() == pytest.approx(losses.bpr(pos, neg).item())


def _auc(model, data) -> float:
    """Share of (positive, negative) pairs per user ranked right, averaged over users."""
    seen = data.csr().toarray() > 0
    scores = model._score_users(np.arange(data.n_users))
    out = []
    for u in range(data.n_users):
        p, n = scores[u, seen[u]], scores[u, ~seen[u]]
        if len(p) and len(n):
            out.append((p[:, None] > n[None, :]).mean())
    return float(np.mean(out))


MODELS = [
    (BPR, {"epochs": 150, "learning_rate": 0.05, "embedding_size": 4, "pair_sampling": "pairs"}),
    (TorchMF, {"epochs": 30, "embedding_size": 4, "batch_size": 64, "learning_rate": 0.05}),
    (LightGCN, {"epochs": 30, "embedding_size": 4, "batch_size": 64, "learning_rate": 0.05}),
]


@pytest.mark.parametrize(("cls", "params"), MODELS, ids=lambda x: getattr(x, "__name__", ""))
def test_hinge_learns_the_checkerboard_and_its_margin_matters(cls, params) -> None:
    data = checkerboard()
    opts = FitOptions(seed=0, threads=1)
    hinge = cls(loss="hinge", margin=1.0, **params).fit(data, opts)
    assert _auc(hinge, data) > 0.9
    other = cls(loss="hinge", margin=0.05, **params).fit(data, opts)
    assert not np.allclose(hinge._score_users(np.arange(data.n_users)), other._score_users(np.arange(data.n_users)))
    bpr = cls(loss="bpr", **params).fit(data, opts)
    assert not np.allclose(hinge._score_users(np.arange(data.n_users)), bpr._score_users(np.arange(data.n_users)))


# ---------------------------------------------------------------------------------------------
# NeuMF with pairs and the two-tower: the option trains, and the network's loss is the one named


PAIRED = [
    (NeuMF, {"epochs": 25, "embedding_size": 4, "hidden": (8, 4), "batch_size": 64, "learning_rate": 0.02,
             "negatives": 1}),
    (TwoTower, {"epochs": 30, "embedding_size": 8, "hidden": (), "output_size": 8, "batch_size": 32,
                "history_length": 0, "temperature": 0.2, "learning_rate": 0.01}),
]


@pytest.mark.parametrize(("cls", "params"), PAIRED, ids=lambda x: getattr(x, "__name__", ""))
def test_paired_models_learn_the_checkerboard_with_hinge(cls, params) -> None:
    data = checkerboard()
    opts = FitOptions(seed=0, threads=1)
    hinge = cls(loss="hinge", margin=1.0, **params).fit(data, opts)
    assert _auc(hinge, data) > 0.9
    assert hinge.history_["train_loss"][-1] < 0.5 * hinge.history_["train_loss"][0]
    wide = cls(loss="hinge", margin=0.05, **params).fit(data, opts)
    bpr = cls(loss="bpr", **params).fit(data, opts)
    s = hinge._score_users(np.arange(data.n_users))
    assert not np.allclose(s, wide._score_users(np.arange(data.n_users)))
    assert not np.allclose(s, bpr._score_users(np.arange(data.n_users)))


def _triples(data):
    u = torch.tensor([0, 1, 2, 3])
    i = torch.tensor([0, 1, 0, 1])
    j = torch.tensor([1, 0, 1, 0])
    return u, i, j


@pytest.mark.parametrize("name", ["hinge", "bpr"])
def test_neumf_network_uses_the_named_pairwise_loss(name) -> None:
    data = checkerboard()
    m = NeuMF(loss=name, margin=2.5, epochs=1, embedding_size=4, hidden=(8, 4), batch_size=64).fit(
        data, FitOptions(seed=0, threads=1))
    net = m.network()
    u, i, j = _triples(data)
    with torch.no_grad():
        got = net.loss((u, i, j)).item()
        pos, neg = net.score_pairs(u, i), net.score_pairs(u, j)
    want = losses.hinge(pos, neg, 2.5) if name == "hinge" else losses.bpr(pos, neg)
    assert got == pytest.approx(want.item(), rel=1e-6)
    # the default stays the paper's pointwise BCE on (u, i, label)
    bce = NeuMF(epochs=1, embedding_size=4, hidden=(8, 4)).fit(data, FitOptions(seed=0, threads=1)).network()
    y = torch.tensor([1.0, 0.0, 1.0, 0.0])
    with torch.no_grad():
        assert bce.loss((u, i, y)).item() == pytest.approx(losses.bce(bce.score_pairs(u, i), y).item(), rel=1e-6)


def test_two_tower_network_uses_the_hinge_on_its_logits() -> None:
    data = checkerboard()
    m = TwoTower(loss="hinge", margin=3.0, epochs=1, embedding_size=4, hidden=(), output_size=4, batch_size=32,
                 history_length=2, temperature=0.5).fit(data, FitOptions(seed=0, threads=1))
    net = m.network().eval()
    u, i, j = _triples(data)
    hist = torch.full((4, 2), data.n_items, dtype=torch.long)
    with torch.no_grad():
        got = net.loss((u, i, hist, j)).item()
        q = net.users(u, hist)
        pos = (q * net.items(i)).sum(-1) / 0.5
        neg = (q * net.items(j)).sum(-1) / 0.5
    assert got == pytest.approx(losses.hinge(pos, neg, 3.0).item(), rel=1e-6)

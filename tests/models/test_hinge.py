"""The pairwise hinge loss: its value and gradient by hand, and as the ``loss`` option of every
pairwise-trained model (BPR-MF, mf-torch, LightGCN, NGCF), where its margin must matter."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recforge.config import FitOptions
from recforge.models.factorization.bpr import BPR
from recforge.models.neural import losses
from recforge.models.neural.graph import LightGCN
from recforge.models.neural.mf import TorchMF
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

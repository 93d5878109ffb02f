"""The shared losses on hand-computed values."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from recforge.models.neural import losses


def t(x):
    return torch.tensor(x, dtype=torch.float32)


def test_mse():
    assert losses.mse(t([1.0, 2.0]), t([0.0, 4.0])).item() == pytest.approx(2.5)


def test_masked_mse_counts_only_observed_entries():
    pred = t([[1.0, 2.0], [3.0, 4.0]])
    target = t([[0.0, 0.0], [3.0, 0.0]])
    mask = t([[1.0, 0.0], [1.0, 0.0]])
    assert losses.masked_mse(pred, target, mask).item() == pytest.approx(0.5)  # (1^2 + 0^2) / 2
    other = pred.clone()
    other[:, 1] = t([100.0, -7.0])  # change every unobserved prediction
    assert losses.masked_mse(other, target, mask).item() == pytest.approx(0.5)
    # gradients never reach unobserved entries
    p = pred.clone().requires_grad_()
    losses.masked_mse(p, target, mask).backward()
    assert p.grad[:, 1].abs().sum().item() == 0
    assert losses.masked_mse(pred, target, torch.zeros(2, 2)).item() == 0.0


def test_bce():
    got = losses.bce(t([0.0, math.log(3.0)]), t([1.0, 0.0])).item()
    # -log s(0) = ln 2;  -log(1 - s(ln 3)) = -log(1/4) = ln 4
    assert got == pytest.approx((math.log(2) + math.log(4)) / 2, rel=1e-6)


def test_bpr():
    got = losses.bpr(t([2.0, 0.0]), t([0.0, 0.0])).item()
    assert got == pytest.approx((math.log1p(math.exp(-2.0)) + math.log(2)) / 2, rel=1e-6)
    # large margins do not overflow
    assert losses.bpr(t([1000.0]), t([-1000.0])).item() == pytest.approx(0.0, abs=1e-6)
    assert losses.bpr(t([-1000.0]), t([1000.0])).item() == pytest.approx(2000.0)


def test_sampled_softmax_plain_temperature_and_logq():
    eye = t([[1.0, 0.0], [0.0, 1.0]])
    # logits [[1, 0], [0, 1]]: each row -log(e / (e + 1))
    assert losses.sampled_softmax(eye, eye).item() == pytest.approx(math.log1p(math.exp(-1.0)), rel=1e-6)
    assert losses.sampled_softmax(eye, eye, temperature=0.5).item() == pytest.approx(
        math.log1p(math.exp(-2.0)), rel=1e-6)
    q = [0.5, 0.25]
    got = losses.sampled_softmax(eye, eye, log_q=torch.log(t(q))).item()
    row0 = math.log1p(math.exp((0 - math.log(q[1])) - (1 - math.log(q[0]))))
    row1 = math.log1p(math.exp((0 - math.log(q[0])) - (1 - math.log(q[1]))))
    assert got == pytest.approx((row0 + row1) / 2, rel=1e-5)


def test_sampled_softmax_masks_accidental_hits():
    qk = t([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    # rows 0 and 1 hold the same item: each must not count the other copy as a negative
    got = losses.sampled_softmax(qk, qk, item_ids=torch.tensor([7, 7, 3])).item()
    row01 = math.log1p(math.exp(0.0 - 1.0))  # logits: positive 1, other item 0
    row2 = math.log1p(2 * math.exp(0.0 - 1.0))  # positive 1, two negatives at 0
    assert got == pytest.approx((2 * row01 + row2) / 3, rel=1e-6)

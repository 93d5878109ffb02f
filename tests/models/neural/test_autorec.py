"""AutoRec (item- and user-based)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from recforge.config import FitOptions
from recforge.models.baselines.bias import Bias
from recforge.models.neural import losses
from recforge.models.neural.autorec import AutoRec, _AutoRecNet
from recforge.testing.conformance import RecommenderConformance


class TestAutoRec(RecommenderConformance):
    model_class = AutoRec
    config = {"epochs": 3, "hidden_size": 16, "batch_size": 16, "learning_rate": 0.01}
    changes = {"based": "user", "hidden_size": 8, "activation": "relu", "output_activation": "sigmoid",
               "reg": 1000.0, "epochs": 1, "learning_rate": 0.001, "batch_size": 4, "dropout": 0.0,
               "ema_decay": 0.0, "validation_fraction": 0.3, "average_selection": False,
               "optimizer": "sgd"}
    unchanged = {}
    invalid = [{"hidden_size": 0}, {"reg": -1.0}, {"based": "both"}, {"activation": "swish"}, {"batch_size": 0},
               {"dropout": 1.0}, {"ema_decay": 1.0}, {"validation_fraction": 1.0}, {"validation_fraction": -0.1}]
    atol = 1e-5


class TestUserAutoRec(RecommenderConformance):
    model_class = AutoRec
    config = {"based": "user", "epochs": 3, "hidden_size": 16, "batch_size": 16, "learning_rate": 0.01,
              "validation_fraction": 0.0}
    changes = {"based": "item",
               "activation": "relu", "batch_size": 7, "epochs": 2, "hidden_size": 7, "learning_rate": 0.03,
               "optimizer": "sgd", "output_activation": "sigmoid", "reg": 300.0, "validation_fraction": 0.5,
               "dropout": 0.0}
    unchanged = {"average_selection": "used only with validation_fraction > 0 (0 here)",
                 "ema_decay": "checked by TestAutoRec (same config class)"}
    atol = 1e-5


def _batch():
    import scipy.sparse as sp

    from recforge.training.batches import RatingRows

    dense = np.array([[5.0, 0.0, 0.0, 3.0], [0.0, 2.0, 0.0, 0.0]], np.float32)
    rows = RatingRows(sp.csr_matrix(dense), batch_size=2, shuffle=False)
    (batch,) = list(rows)
    vals, mask = rows.get(torch.tensor([0, 1]))
    return batch, vals, mask


def test_masked_loss_matches_hand_computation_and_ignores_unobserved():
    torch.manual_seed(0)
    net = _AutoRecNet(4, 3, "sigmoid", "identity", reg=0.0, n_observed=3, item_based=True)
    batch, vals, mask = _batch()
    loss = net.loss(batch)
    recon = net(vals).detach()
    expect = ((recon[0, 0] - 5) ** 2 + (recon[0, 3] - 3) ** 2 + (recon[1, 1] - 2) ** 2) / 3
    assert loss.item() == pytest.approx(expect.item(), rel=1e-5)
    assert loss.item() == pytest.approx(losses.masked_mse(recon, vals, mask).item(), rel=1e-5)
    loss.backward()
    # column 2 is never observed: its decoder row and bias get no gradient
    assert net.decoder.grad[2].abs().sum().item() == 0
    assert net.decoder_bias.grad[2].item() == 0
    assert net.decoder.grad[0].abs().sum().item() > 0
    # moving the unobserved outputs does not move the loss
    with torch.no_grad():
        net.decoder_bias[2] += 100.0
        net.decoder[2] += 1.0
    assert net.loss(batch).item() == pytest.approx(loss.item(), rel=1e-6)


def test_weight_penalty_is_lambda_over_2n():
    net = _AutoRecNet(4, 3, "sigmoid", "identity", reg=6.0, n_observed=3, item_based=True)
    batch, _, _ = _batch()
    free = _AutoRecNet(4, 3, "sigmoid", "identity", reg=0.0, n_observed=3, item_based=True)
    free.load_state_dict(net.state_dict())
    sq = net.encoder.pow(2).sum() + net.decoder.pow(2).sum()
    diff = net.loss(batch) - free.loss(batch)
    assert diff.item() == pytest.approx((6.0 / (2 * 3) * sq).item(), rel=1e-5)


@pytest.mark.parametrize("based", ["item", "user"])
def test_learning_beats_bias_baseline(based, nh):
    train, test = nh.rating_split()
    model = AutoRec(based=based, hidden_size=32, epochs=150, batch_size=16, learning_rate=3e-3, reg=1.0,
                    validation_fraction=0.0)
    model.fit(train, FitOptions(seed=0))
    loss = model.history_["train_loss"]
    assert loss[-1] < 0.2 * loss[0]
    assert nh.rmse(model, test) < nh.rmse(Bias().fit(train), test) - 0.03


def test_predictions_read_the_reconstruction(nh):
    train, _ = nh.rating_split()
    m = AutoRec(hidden_size=8, epochs=2, validation_fraction=0.0).fit(train, FitOptions(seed=0))
    net = m._net
    rows = torch.from_numpy(m.ratings_.T.toarray())  # items x users
    with torch.no_grad():
        recon = net(rows).numpy()
    u, i = train.user_idx[:20], train.item_idx[:20]
    np.testing.assert_allclose(m.score(train.users.ids[u], train.items.ids[i]), recon[i, u], rtol=1e-5, atol=1e-5)


def test_epoch_count_is_chosen_on_held_out_ratings_then_refitted(nh):
    train, _ = nh.rating_split()
    cfg = {"hidden_size": 16, "epochs": 12, "batch_size": 16, "learning_rate": 0.01}
    m = AutoRec(**cfg).fit(train, FitOptions(seed=0))
    h = m.history_["val_rmse"]  # the selection run's curve on the held-out 5%
    assert 1 <= len(h) <= 12
    assert m.selected_epochs_ == m.best_epoch_ + 1 == int(np.argmin(h)) + 1
    # the first member is the refit on every rating for that many epochs; predictions average it
    # with the selection run's network
    assert m.n_members_ == 2
    again = AutoRec(**{**cfg, "epochs": m.selected_epochs_, "validation_fraction": 0.0}).fit(train, FitOptions(seed=0))
    u, i = train.user_idx[:50], train.item_idx[:50]
    a = m.score(train.users.ids[u], train.items.ids[i])
    refit = again.score(train.users.ids[u], train.items.ids[i])
    with torch.no_grad():
        uu, ii = torch.as_tensor(u, dtype=torch.long), torch.as_tensor(i, dtype=torch.long)
        first, second = (net.score_pairs(uu, ii).double().numpy() for net in m._net.members)
    np.testing.assert_allclose(first, refit, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(a, (first + second) / 2, rtol=1e-5, atol=1e-5)
    assert np.abs(second - first).max() > 1e-3
    single = AutoRec(**cfg, average_selection=False).fit(train, FitOptions(seed=0))
    assert single.n_members_ == 1
    np.testing.assert_allclose(single.score(train.users.ids[u], train.items.ids[i]), refit, rtol=1e-5, atol=1e-5)
    # deterministic under a seed, including the held-out draw
    b = AutoRec(**cfg).fit(train, FitOptions(seed=0)).score(train.users.ids[u], train.items.ids[i])
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


def test_unseen_items_get_the_baseline_estimate(nh):
    train, _ = nh.rating_split()
    counts = train.item_counts()
    keep = train.item_idx != int(np.argmax(counts))  # an item with ratings in general, none in training
    sub = train.subset(keep)
    gone = int(np.argmax(counts))
    users = sub.users.ids[:5]
    items = np.repeat(sub.items.ids[gone], 5)
    m = AutoRec(hidden_size=8, epochs=2, validation_fraction=0.0).fit(sub, FitOptions(seed=0))
    assert np.isnan(m.predict(users, items)).all()
    expect = Bias().fit(sub).predict(users, items, fallback="mean")  # mu + b_u, same regularisation
    np.testing.assert_allclose(m.predict(users, items, fallback="mean"), expect, rtol=1e-6)
    assert np.ptp(expect) > 0  # the user's bias matters, not one constant


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cpu_gpu_parity(nh):
    train, _ = nh.rating_split()
    nh.assert_cpu_gpu_parity(lambda: AutoRec(hidden_size=16, epochs=3, batch_size=16), train)


def test_tiny_data_trains_without_a_held_out_split():
    import pandas as pd

    from recforge.data.interactions import Interactions

    df = pd.DataFrame({"u": [1, 1, 2, 2, 3], "i": [10, 11, 10, 12, 11], "r": [5.0, 3.0, 4.0, 1.0, 2.0]})
    data = Interactions.from_dataframe(df, "u", "i", rating="r")
    m = AutoRec(hidden_size=4, epochs=3).fit(data, FitOptions(seed=0))
    assert m.n_members_ == 1 and m.selected_epochs_ == 3
    assert np.isfinite(m.predict([1, 2], [12, 11])).all()


@pytest.mark.parametrize("factor", [2.0, 0.5])
def test_defaults_mean_the_same_on_any_rating_scale(nh, factor):
    import dataclasses

    train, test = nh.rating_split()
    scaled = dataclasses.replace(train, values=(train.values * factor).astype(np.float32), _cache={})
    cfg = {"hidden_size": 16, "epochs": 4, "batch_size": 16}
    a = AutoRec(**cfg).fit(train, FitOptions(seed=0))
    b = AutoRec(**cfg).fit(scaled, FitOptions(seed=0))
    assert b.selected_epochs_ == a.selected_epochs_
    users, items = test.users.ids[test.user_idx], test.items.ids[test.item_idx]
    np.testing.assert_allclose(b.predict(users, items, fallback="mean"),
                               factor * a.predict(users, items, fallback="mean"), rtol=1e-4, atol=1e-4)

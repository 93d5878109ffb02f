"""CTR models: the CTR conformance suite, exact FM maths, and what each model can learn."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")

from recforge.config import FitOptions
from recforge.data.ctr import CTRData
from recforge.metrics import roc_auc
from recforge.models.ctr.dcn import DCNv2, CrossLayer
from recforge.models.ctr.fm import FM, DeepFM, fm_interaction
from recforge.models.ctr.linear import LogisticRegression
from recforge.testing.ctr_conformance import CTRConformance, toy_ctr


_NEG_FIELDS = {
    "negative_item": "read only when negatives > 0 (negatives changes the output)",
    "negative_user": "read only when negatives > 0 (negatives changes the output)",
    "lr_decay": "acts only with validation rows (test_lr_decay_on_plateau_changes_the_fit)",
}


class TestLogisticRegression(CTRConformance):
    model_class = LogisticRegression
    config = {"epochs": 8, "batch_size": 256, "learning_rate": 0.1}
    changes = {"reg": 0.1, "learning_rate": 0.01, "batch_size": 128, "epochs": 3, "optimizer": "adagrad",
               "embedding_reg": 0.1, "ema_decay": 0.9, "negatives": 1}
    unchanged = {**_NEG_FIELDS,
                 "ensemble": "logistic-regression members all start at zero and see the same batches: the same "
                             "network m times (float rounding only)"}
    invalid = [{"reg": -1.0}, {"embedding_reg": -0.1}, {"epochs": 0}, {"batch_size": 0}, {"learning_rate": 0.0}, {"optimizer": "lbfgs"}]
    min_auc = 0.6


class TestFM(CTRConformance):
    model_class = FM
    config = {"epochs": 10, "batch_size": 256, "embedding_size": 4, "learning_rate": 0.05, "init_std": 0.1}
    changes = {"embedding_size": 6, "reg": 0.1, "init_std": 0.01, "learning_rate": 0.005, "batch_size": 128,
               "epochs": 5, "embedding_reg": 0.1, "optimizer": "adagrad", "ema_decay": 0.9, "negatives": 1,
               "ensemble": 2}
    unchanged = _NEG_FIELDS
    invalid = [{"embedding_size": 0}, {"init_std": 0.0}, {"reg": -0.1}, {"embedding_reg": -1.0}]
    min_auc = 0.72


class TestDeepFM(CTRConformance):
    model_class = DeepFM
    config = {"epochs": 10, "batch_size": 256, "embedding_size": 4, "learning_rate": 0.02, "init_std": 0.1,
              "hidden": (16, 16), "dropout": 0.1}
    changes = {"hidden": (8,), "dropout": 0.0, "batch_norm": False, "embedding_size": 6, "reg": 0.1,
               "embedding_reg": 0.1, "init_std": 0.01, "learning_rate": 0.005, "batch_size": 128, "epochs": 5,
               "optimizer": "adagrad", "ema_decay": 0.9, "negatives": 1, "ensemble": 2, "dense_init": "xavier"}
    unchanged = _NEG_FIELDS
    invalid = [{"hidden": ()}, {"dense_init": "he"}, {"hidden": (0, 4)}, {"dropout": 1.0}, {"dropout": -0.1}, {"embedding_size": 0}]
    min_auc = 0.72


class TestDCNv2(CTRConformance):
    model_class = DCNv2
    config = {"epochs": 10, "batch_size": 256, "embedding_size": 4, "learning_rate": 0.02, "init_std": 0.1,
              "hidden": (16, 16), "dropout": 0.1, "cross_layers": 2}
    changes = {"hidden": (8,), "dropout": 0.0, "batch_norm": False, "embedding_size": 6, "reg": 0.1,
               "embedding_reg": 0.1, "init_std": 0.01, "learning_rate": 0.005, "batch_size": 128, "epochs": 5,
               "optimizer": "adagrad", "ema_decay": 0.9, "negatives": 1, "ensemble": 2, "cross_layers": 1,
               "low_rank": 2, "structure": "stacked", "dense_init": "xavier"}
    unchanged = _NEG_FIELDS
    invalid = [{"hidden": (0, 4)}, {"dropout": 1.0}, {"cross_layers": 0}, {"low_rank": -1},
               {"structure": "serial"}, {"embedding_size": 0}]
    min_auc = 0.72


def test_cross_layer_is_the_dcn_v2_formula():
    """``x0 * (W x + b) + x`` exactly, and the low-rank layer is ``W = U V^T``."""
    torch.manual_seed(0)
    layer = CrossLayer(3)
    x0, x = torch.randn(4, 3), torch.randn(4, 3)
    want = x0 * (x @ layer.w.weight.T + layer.w.bias) + x
    assert torch.allclose(layer(x0, x), want, atol=1e-6)
    low = CrossLayer(3, rank=1)
    w = low.u.weight @ low.v.weight  # (3, 1) @ (1, 3): rank one
    assert torch.linalg.matrix_rank(w) == 1
    assert torch.allclose(low(x0, x), x0 * (x @ w.T + low.u.bias) + x, atol=1e-6)


@pytest.mark.parametrize("cls", [TestLogisticRegression, TestFM, TestDeepFM, TestDCNv2])
def test_changes_and_unchanged_cover_every_config_field(cls):
    fields = set(cls.model_class().config.to_dict())
    assert set(cls.changes) | set(cls.unchanged) == fields
    assert not set(cls.changes) & set(cls.unchanged)


def test_fm_identity_matches_double_loop():
    g = torch.Generator().manual_seed(0)
    e = torch.randn(5, 7, 3, generator=g, dtype=torch.float64)
    slow = torch.zeros(5, dtype=torch.float64)
    for a in range(7):
        for b in range(a + 1, 7):
            slow += (e[:, a] * e[:, b]).sum(-1)
    torch.testing.assert_close(fm_interaction(e), slow)


def test_fm_score_is_the_fm_equation():
    train, _, test, _ = toy_ctr(400)
    model = FM(epochs=2, batch_size=64, embedding_size=3, init_std=0.1).fit(train, FitOptions(seed=0, threads=1))
    net = model._net
    w = net.weight.weight.detach().double().numpy().ravel()
    v = net.factors.weight.detach().double().numpy()
    w0 = float(net.bias.detach())
    idx, val = test.index[:20], test.value[:20].astype(np.float64)
    expect = []
    for r in range(len(idx)):
        y = w0 + float((w[idx[r]] * val[r]).sum())
        for a in range(idx.shape[1]):
            for b in range(a + 1, idx.shape[1]):
                y += float(v[idx[r, a]] @ v[idx[r, b]]) * val[r, a] * val[r, b]
        expect.append(y)
    np.testing.assert_allclose(model.decision_function(idx, test.value[:20]), expect, rtol=1e-5, atol=1e-6)


def test_deepfm_shares_one_embedding_table():
    train, _, _, _ = toy_ctr(300)
    model = DeepFM(epochs=1, batch_size=64, embedding_size=4, hidden=(8,)).fit(train, FitOptions(seed=0, threads=1))
    net = model._net
    tables = [m for m in net.modules() if isinstance(m, torch.nn.Embedding) and m.embedding_dim == 4]
    assert len(tables) == 1 and tables[0] is net.factors
    # a gradient of the deep part alone reaches the shared factors
    net.train()
    net.zero_grad()
    idx = torch.as_tensor(train.index[:16])
    val = torch.as_tensor(train.value[:16])
    _, e = net.fm_parts(idx, val)
    from recforge.models.ctr._networks import field_pool

    net.mlp(field_pool(e, net.slot_fields, net.n_fields).flatten(1)).sum().backward()
    assert net.factors.weight.grad is not None and net.factors.weight.grad.abs().sum() > 0


def test_fm_learns_interaction_that_lr_cannot():
    """Clicks that depend only on a user x item sign product: LR sits near 0.5 AUC, FM does not."""
    rng = np.random.default_rng(1)
    n, nu, ni = 3000, 10, 10
    su, si = rng.choice([-1, 1], nu), rng.choice([-1, 1], ni)
    u, i = rng.integers(0, nu, n), rng.integers(0, ni, n)
    p = 1 / (1 + np.exp(-3.0 * su[u] * si[i]))
    y = (rng.random(n) < p).astype(np.float32)
    x = np.stack([1 + u, 1 + nu + i], axis=1)
    rows = CTRData.from_indices(y, x, n_features=1 + nu + ni, field_names=("user", "item"))
    tr, te = rows.subset(np.arange(n) < 2400), rows.subset(np.arange(n) >= 2400)
    lr = LogisticRegression(epochs=10, batch_size=128, learning_rate=0.05).fit(tr, FitOptions(seed=0, threads=1))
    fm = FM(epochs=20, batch_size=128, embedding_size=2, learning_rate=0.05, init_std=0.1).fit(tr, FitOptions(seed=0, threads=1))
    auc_lr = roc_auc(te.labels, lr.predict_proba(te))
    auc_fm = roc_auc(te.labels, fm.predict_proba(te))
    assert auc_fm > 0.8
    assert auc_fm > auc_lr + 0.15


def test_fit_accepts_libfm_pair():
    train, _, test, _ = toy_ctr(300)
    pair = (train.labels, train.index)
    model = LogisticRegression(epochs=2).fit(pair, FitOptions(seed=0, threads=1))
    assert model.predict_proba(test.index).shape == (len(test),)


def test_validation_must_share_encoding():
    from recforge.errors import DataError
    from recforge.training import TrainingOptions

    train, valid, _, _ = toy_ctr(300)
    other = CTRData.from_indices(valid.labels, valid.index[:, :3], n_features=valid.n_features)
    with pytest.raises(DataError, match="encoded differently"):
        LogisticRegression(epochs=2).fit(train, TrainingOptions(validation=other))


def test_every_ctr_model_has_a_ctr_conformance_test():
    from recforge.models.registry import get_model_class, list_models

    covered = {c.model_class for c in (TestLogisticRegression, TestFM, TestDeepFM, TestDCNv2)}
    missing = [e.name for e in list_models() if e.task == "ctr" and get_model_class(e.name) not in covered]
    assert not missing


def test_embedding_reg_shrinks_the_whole_table():
    """``embedding_reg`` also decays rows no training row touches (here the padding feature 0,
    whose value is always 0), which the per-row ``reg`` never reaches."""
    train, _, _, _ = toy_ctr(400)
    cfg = {"epochs": 5, "batch_size": 64, "embedding_size": 4, "init_std": 0.1, "learning_rate": 0.02}
    plain = FM(cfg).fit(train, FitOptions(seed=0, threads=1))
    per_row = FM({**cfg, "reg": 1.0}).fit(train, FitOptions(seed=0, threads=1))
    whole = FM({**cfg, "embedding_reg": 1.0}).fit(train, FitOptions(seed=0, threads=1))
    row0 = [m.feature_factors()[0].norm().item() for m in (plain, per_row, whole)]
    assert row0[0] == pytest.approx(row0[1])  # untouched by per-row L2
    assert row0[2] < 0.5 * row0[0]
    assert whole.feature_factors().norm() < 0.5 * plain.feature_factors().norm()


def test_score_frame_and_candidates_use_the_training_encoder(tmp_path):
    from recforge.errors import DataError
    from recforge.models.base import Estimator
    from recforge.testing.ctr_conformance import toy_ctr_frame

    train, _, test, _ = toy_ctr(600)
    model = DeepFM(epochs=2, batch_size=64, embedding_size=4, hidden=(8,)).fit(train, FitOptions(seed=0, threads=1))
    assert model.encoder_ is not train.encoder and model.encoder_.to_dict() == train.encoder.to_dict()
    df, _ = toy_ctr_frame(600)
    tail = df.iloc[480:]  # toy_ctr's test rows, raw
    np.testing.assert_allclose(model.score_frame(tail), model.predict_proba(test), atol=1e-7)
    # one request: the context is broadcast over the candidates; unseen values go to OOV, no error
    cand = pd.DataFrame({"item": ["i1", "i2", "i-new"], "price": [1.0, 5.0, 2.0], "tags": ["x", "", "y|z"]})
    got = model.score_candidates({"user": "u4", "ctx": "b"}, cand)
    want = model.score_frame(cand.assign(user="u4", ctx="b"))
    np.testing.assert_allclose(got, want, atol=0)
    assert got.shape == (3,) and np.all((got > 0) & (got < 1))
    # the encoder is saved with the model (as JSON, no pickle)
    back = Estimator.load(model.save(tmp_path / "m.npz"))
    np.testing.assert_allclose(back.score_candidates({"user": "u4", "ctx": "b"}, cand), got, atol=1e-7)
    with pytest.raises(DataError, match="missing field"):
        model.score_candidates({"user": "u4"}, cand)
    bare = LogisticRegression(epochs=1).fit((train.labels, train.index), FitOptions(seed=0, threads=1))
    with pytest.raises(DataError, match="FeatureEncoder"):
        bare.score_frame(tail)


def test_ctr_models_are_torch_estimators_without_the_user_item_api():
    from recforge.models._torch import TorchConfig
    from recforge.models.base import Estimator, Recommender
    from recforge.models.ctr import CTRConfig, CTRModel

    assert issubclass(CTRConfig, TorchConfig)
    for cls in (LogisticRegression, FM, DeepFM):
        assert issubclass(cls, CTRModel) and issubclass(cls, Estimator) and not issubclass(cls, Recommender)
        assert cls.backend == "torch" and cls.task == "ctr"
        for name in ("score", "predict", "recommend", "recommend_for_history"):
            assert not hasattr(cls, name), name


def test_lr_decay_on_plateau_changes_the_fit():
    """With validation rows, ``lr_decay`` cuts the learning rate after a check without improvement."""
    train, valid = toy_ctr(600)[:2]
    # the last weights, not the best check's: the decay acts on the epochs after a plateau
    opts = FitOptions(seed=0, threads=1, validation=valid, patience=None, restore_best=False)
    cfg = {"epochs": 12, "batch_size": 128, "embedding_size": 4, "learning_rate": 0.2, "init_std": 0.1}
    a = FM(cfg).fit(train, opts)
    b = FM({**cfg, "lr_decay": 0.1}).fit(train, opts)
    assert not np.allclose(a.predict_proba(valid), b.predict_proba(valid))


def test_decay_on_plateau_schedule():
    """Exact schedule: improve, plateau (x0.1), improve, plateau (x0.1), floor at min_lr."""
    from types import SimpleNamespace

    from recforge.training.plateau import DecayOnPlateau

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    cb = DecayOnPlateau("val_auc", "max", factor=0.1, min_lr=0.005)
    lrs = []
    for auc in (0.6, 0.6, 0.7, 0.65, 0.5, 0.8):
        cb.on_validation_end(SimpleNamespace(sanity_checking=False, callback_metrics={"val_auc": torch.tensor(auc)},
                                             optimizers=[opt]), None)
        lrs.append(opt.param_groups[0]["lr"])
    assert lrs == pytest.approx([1.0, 0.1, 0.1, 0.01, 0.005, 0.005])
    assert cb.decays == 3 and cb.best == pytest.approx(0.8)


def test_xavier_dense_init_is_glorot_normal_with_zero_biases():
    import torch

    from recforge.models.ctr.base import xavier_dense_

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(300, 200), torch.nn.ReLU(), torch.nn.Linear(200, 1))
    emb = torch.nn.Embedding(10, 4)
    before = emb.weight.detach().clone()
    net.append(emb)
    xavier_dense_(net)
    w = net[0].weight.detach()
    assert float(w.std()) == pytest.approx((2.0 / (300 + 200)) ** 0.5, rel=0.02)
    assert float(w.mean()) == pytest.approx(0.0, abs=3e-4)
    assert torch.count_nonzero(net[0].bias) == 0 and torch.count_nonzero(net[2].bias) == 0
    assert torch.equal(emb.weight.detach(), before)  # embeddings keep their own initialisation

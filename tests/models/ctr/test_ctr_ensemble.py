"""CTR ``ensemble``: networks trained side by side, logits averaged; save/load and ONNX export."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from recforge.config import FitOptions
from recforge.errors import ConfigError
from recforge.models.ctr._networks import EnsembleNetwork
from recforge.models.ctr.fm import FM, DeepFM
from recforge.models.ctr.linear import LogisticRegression
from recforge.testing.ctr_conformance import toy_ctr
from recforge.training import TrainingOptions

SMALL = {"epochs": 3, "batch_size": 64, "embedding_size": 4, "hidden": (8,)}


@pytest.fixture(scope="module")
def toy():
    return toy_ctr(600)


@pytest.fixture(scope="module")
def fitted(toy):
    train, valid, _, _ = toy
    return DeepFM(**SMALL, ensemble=3).fit(train, TrainingOptions(seed=0, threads=1, validation=valid, patience=2))


def test_logit_is_the_mean_of_the_members(fitted, toy):
    test = toy[2]
    net = fitted._net
    assert isinstance(net, EnsembleNetwork) and len(net.members) == 3
    idx, val = torch.from_numpy(test.index), torch.from_numpy(test.value)
    with torch.inference_mode():
        each = np.stack([m.logits(idx, val).double().numpy() for m in net.members])
    np.testing.assert_allclose(fitted.decision_function(test), each.mean(0), rtol=1e-6, atol=1e-6)
    # independent initialisations: the members disagree
    assert np.abs(each[0] - each[1]).max() > 1e-3
    w = [m.factors.weight.detach() for m in net.members]
    assert not torch.allclose(w[0], w[1])


def test_ensemble_loss_is_the_mean_of_the_member_losses(fitted, toy):
    train = toy[0]
    net = fitted._net
    batch = (torch.from_numpy(train.index[:50]), torch.from_numpy(train.value[:50]), torch.from_numpy(train.labels[:50]))
    with torch.no_grad():
        expect = np.mean([float(m.loss(batch)) for m in net.members])
        assert float(net.loss(batch)) == pytest.approx(expect, rel=1e-6)


def test_save_load_round_trip(fitted, toy, tmp_path):
    again = DeepFM.load(fitted.save(tmp_path / "m.npz"))
    assert isinstance(again._net, EnsembleNetwork)
    np.testing.assert_array_equal(again.predict_proba(toy[2]), fitted.predict_proba(toy[2]))


def test_onnx_export_of_an_ensemble(fitted, tmp_path):
    pytest.importorskip("onnxruntime")
    from recforge.export import export_model

    files = export_model(fitted, tmp_path, format="onnx")  # verifies onnxruntime parity itself
    assert (tmp_path / "score.onnx") in [type(tmp_path)(f) for f in files]


@pytest.mark.parametrize("cls", [LogisticRegression, FM, DeepFM])
def test_ensemble_changes_the_output_and_is_seeded(cls, toy):
    train, _, test, _ = toy
    cfg = {"epochs": 2, "batch_size": 64} | ({"embedding_size": 4} if cls is not LogisticRegression else {})
    one = cls(**cfg).fit(train, FitOptions(seed=0, threads=1))
    a = cls(**cfg, ensemble=2).fit(train, FitOptions(seed=0, threads=1))
    b = cls(**cfg, ensemble=2).fit(train, FitOptions(seed=0, threads=1))
    np.testing.assert_array_equal(a.predict_proba(test), b.predict_proba(test))
    if cls is not LogisticRegression:  # LR's members all start at zero: they stay identical
        assert not np.allclose(a.predict_proba(test), one.predict_proba(test))


def test_invalid_ensemble_and_factor_table():
    with pytest.raises(ConfigError):
        DeepFM(ensemble=0)
    train, _, _, _ = toy_ctr(300)
    model = FM(epochs=1, embedding_size=3, ensemble=2).fit(train, FitOptions(seed=0, threads=1))
    with pytest.raises(ConfigError, match="own factor table"):
        model.feature_factors()

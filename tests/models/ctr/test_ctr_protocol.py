"""The ``ctr-holdout`` protocol: registered, refuses non-CTR models, scores CTR models."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("torch")

from recforge.config import FitOptions
from recforge.data.ctr import CTRSplit
from recforge.errors import ConfigError
from recforge.evaluation.ctr_protocol import score_split
from recforge.evaluation.protocols import evaluate, get_protocol, list_protocols
from recforge.models.baselines.simple import Popularity
from recforge.models.ctr.fm import FM
from recforge.models.ctr.linear import LogisticRegression
from recforge.testing.ctr_conformance import toy_ctr
from tests.conftest import has_dataset


def test_registered():
    assert get_protocol("ctr-holdout").task == "ctr"
    assert "ctr-holdout" in [p.name for p in list_protocols()]


def test_score_split_on_known_structure():
    train, valid, test, _ = toy_ctr()
    split = CTRSplit(train, valid, test, None, "toy")
    res = score_split(FM(epochs=20, batch_size=256, embedding_size=4, learning_rate=0.05, init_std=0.1), split,
                      FitOptions(seed=0, threads=1), "fm", "toy")
    auc = res.metric("AUC")
    assert 0.72 < auc <= 1.0
    assert 0 < res.metric("LogLoss") < np.log(2)
    row = res.summary.iloc[0]
    assert row["n_eval"] == len(test) and row["n_valid"] == len(valid)
    assert row["epochs_run"] >= 1 and row["ms_per_1000_candidates"] > 0
    assert res.notes == ["toy"]
    json.loads(res.to_json())


def test_refuses_ranking_models(ml100k):
    with pytest.raises(ConfigError, match="CTR model"):
        evaluate(Popularity(), ml100k, "ctr-holdout")


@pytest.mark.skipif(not has_dataset("criteo-sample"), reason="criteo sample not available")
def test_criteo_sample_end_to_end():
    from recforge.data import load

    res = evaluate(LogisticRegression(epochs=5), load("criteo-sample"), "ctr-holdout",
                   options=FitOptions(seed=0, threads=1))
    assert 0.0 <= res.metric("AUC") <= 1.0
    assert "seed 0" in res.notes[0]


@pytest.mark.slow
@pytest.mark.skipif(not has_dataset("frappe"), reason="frappe data not available")
def test_frappe_fm_band():
    from recforge.data import load

    res = evaluate(FM(embedding_size=16, batch_size=1024, learning_rate=2e-3, reg=1e-4, init_std=0.1, epochs=6),
                   load("frappe-pooled"), "ctr-holdout", options=FitOptions(seed=0, threads=1))
    assert res.metric("AUC") > 0.92  # LR reaches ~0.92 here; the FM must do better


@pytest.mark.slow
@pytest.mark.skipif(not has_dataset("frappe"), reason="frappe data not available")
def test_frappe_deepfm_defaults_band():
    """The default DeepFM (BARS' set-up) beats fully trained LR (0.9326) after 3 epochs on 8:1:1 Frappe
    (fully trained: 0.9628; benchmarks/results/ctr.md)."""
    from recforge.data import load
    from recforge.models.ctr.fm import DeepFM

    res = evaluate(DeepFM(epochs=3), load("frappe-pooled"), "ctr-holdout", options=FitOptions(seed=0, threads=1))
    assert res.summary.iloc[0]["n_train"] == 69266
    assert res.metric("AUC") > 0.94

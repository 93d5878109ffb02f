"""configs/ml100k/{lr,fm,deepfm}.toml: ML-100K as a CTR task under ``ctr-holdout``, run as a user would."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recforge.experiments import ExperimentSpec, run

pytest.importorskip("torch")

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "configs" / "ml100k"
# small and short: these check the plumbing and the files, not the accuracy
FAST = {
    "lr": {"epochs": 2, "batch_size": 8192},
    "fm": {"epochs": 2, "batch_size": 8192, "embedding_size": 4},
    "deepfm": {"epochs": 2, "batch_size": 8192, "embedding_size": 4, "hidden": [16, 16]},
}


@pytest.mark.slow
@pytest.mark.realdata
@pytest.mark.parametrize("name", ["lr", "fm", "deepfm"])
def test_ctr_config_runs_logs_saves_and_exports(ml100k, name, tmp_path):
    from recforge.data.ctr import ctr_splits
    from recforge.metrics import roc_auc
    from recforge.loggers.readers import read_csv_run
    from recforge.models.base import Recommender

    spec = ExperimentSpec.from_file(CONFIGS / f"{name}.toml")
    assert spec.protocol == "ctr-holdout" and spec.logger["kind"] == "csv"
    res = run(spec.replace(params=FAST[name], output=tmp_path / name, threads=1))
    out = res.output_dir

    # results: AUC and log loss on the 10% test rows, the model learned something
    table = pd.read_csv(out / "results.csv")
    row = table[table["fold"].astype(str) == "mean"].iloc[0]
    assert 0.65 < row["AUC"] < 0.9 and 0.45 < row["LogLoss"] < 0.69
    assert row["n_train"] == 80_000 and row["n_valid"] == 10_000 and row["n_eval"] == 10_000
    record = json.loads((out / "run.json").read_text())
    assert record["protocol"] == "ctr-holdout" and record["metrics"]["AUC"] == pytest.approx(row["AUC"])

    # the CSV log: config, environment, per-epoch training loss and validation AUC, final test metrics
    logged = read_csv_run(res.log_dir)
    assert logged["config"]["model"] == {"name": name, "params": {**spec.params, **FAST[name]}}
    assert "python" in json.dumps(logged["environment"]).lower()
    m = logged["metrics"]
    for metric in ("train_loss", "val_auc", "val_logloss"):
        assert sorted(m.loc[m["metric"] == metric, "step"].astype(int)) == [0, 1], metric
    assert m.loc[m["metric"] == "test/AUC", "value"].iloc[0] == pytest.approx(row["AUC"])
    assert 0.6 < m.loc[m["metric"] == "val_auc", "value"].max() < 0.9

    # the saved model (no pickle) scores the protocol's test rows to the same AUC
    model = Recommender.load(out / "model.npz")
    test = ctr_splits(ml100k, seed=spec.seed).test
    assert roc_auc(test.labels, model.predict_proba(test)) == pytest.approx(row["AUC"], abs=1e-6)

    files = {Path(p).relative_to(out).as_posix() for ps in record["files"].values() for p in ps}
    assert "plots/learning_curve.png" in files
    assert (out / "plots" / "learning_curve.png").read_bytes()[:4] == b"\x89PNG"
    if "onnx/score.onnx" in files:  # CTR ONNX export (recforge.export)
        assert (out / "onnx" / "score.onnx").stat().st_size > 0


@pytest.mark.slow
@pytest.mark.realdata
def test_deepfm_config_with_wandb_offline(ml100k, tmp_path, monkeypatch):
    """`recforge run configs/ml100k/deepfm.toml --logger wandb`: no account, no network."""
    pytest.importorskip("wandb")
    import typer
    from typer.testing import CliRunner

    from recforge.cli.experiment_cmds import register
    from recforge.loggers.readers import read_wandb_run

    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc, no saved login
    monkeypatch.chdir(tmp_path)
    app = typer.Typer()

    @app.command("version")
    def _version() -> None:  # a second command keeps typer in multi-command mode
        pass

    register(app)
    fast = ["--set", "epochs=2", "--set", "embedding_size=4", "--set", "hidden=[16,16]", "--set", "batch_size=8192"]
    res = CliRunner().invoke(app, ["run", str(CONFIGS / "deepfm.toml"), "--logger", "wandb", *fast, "--threads", "1",
                                   "--format", "json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout[res.stdout.index("{"):])
    run_dir = Path(out["log_dir"])
    assert run_dir.name.startswith("offline-run-") and list(run_dir.glob("run-*.wandb"))
    logged = read_wandb_run(run_dir)
    assert logged["config"]["model"]["name"] == "deepfm"
    assert logged["summary"]["test/AUC"] == pytest.approx(out["metrics"]["AUC"])
    val = [r["val_auc"] for r in logged["history"] if "val_auc" in r]
    assert len(val) == 2 and all(0.5 < v < 1 for v in val)
    assert np.isfinite([r["train_loss"] for r in logged["history"] if "train_loss" in r]).all()


def test_frappe_config_names_the_validated_options():
    """configs/frappe-pooled/deepfm.toml: the settings benchmarks/results/ctr_frappe_options.md chose on validation."""
    from recforge.models.registry import make_model

    spec = ExperimentSpec.from_file(REPO / "configs" / "frappe-pooled" / "deepfm.toml")
    assert spec.dataset == {"name": "frappe-pooled"} and spec.protocol == "ctr-holdout"
    model = make_model(spec.model, spec.params)
    assert model.config.negatives == 4 and model.config.ensemble == 5
    assert spec.training.get("threads") == 1


def test_frappe_published_config_is_the_bars_setting():
    """configs/frappe/deepfm.toml: BARS' Frappe_x1 DeepFM setting on the published split (bench_frappe's)."""
    from recforge.models.registry import make_model

    spec = ExperimentSpec.from_file(REPO / "configs" / "frappe" / "deepfm.toml")
    assert spec.dataset == {"name": "frappe"} and spec.protocol == "ctr-holdout"
    cfg = make_model(spec.model, spec.params).config
    want = {"embedding_size": 10, "hidden": (400, 400, 400), "dropout": 0.2, "batch_norm": True,
            "learning_rate": 1e-3, "batch_size": 4096, "embedding_reg": 0.05, "reg": 0.0, "lr_decay": 0.1,
            "epochs": 30, "negatives": 0, "ensemble": 1, "dense_init": "xavier"}
    assert {k: getattr(cfg, k) for k in want} == want
    from benchmarks.bench_frappe import _shared

    assert {k: v for k, v in _shared(4096, 30).items() if k in want} == {k: want[k] for k in _shared(4096, 30)}
    assert spec.training.get("patience") == 2 and spec.training.get("threads") == 1

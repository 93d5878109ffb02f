"""Every logger backend: write a run, read the files back, check what is in them."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from recforge.config import FitOptions
from recforge.errors import ConfigError
from recforge.loggers import environment_info, flatten, make_logger
from recforge.loggers.readers import read_csv_run, read_mlflow_run, read_tensorboard, read_wandb_run
from recforge.testing.datasets import toy_ratings

CONFIG = {"name": "toy", "seed": 3, "model": {"name": "mf-torch", "params": {"embedding_size": 4, "epochs": 3}}}
HISTORY = {"epoch": [0, 1, 2], "train_loss": [1.5, 1.25, 1.0], "val_rmse": [1.4, 1.3, 1.35]}
SUMMARY = {"test/RMSE": 0.93, "test/NDCG@10": 0.25, "time/fit_seconds": 1.5}


def _write_run(kind, root):
    lg = make_logger(kind, root=root, name="toy run", project="recforge-tests")
    with lg:
        lg.log_config(CONFIG)
        lg.log_environment(device="cpu")
        assert lg.log_history(HISTORY) == 3
        lg.log_summary({**SUMMARY, "note": "strings are not metrics"})
    return lg


def _fit_torch(lg):
    pytest.importorskip("lightning")
    from recforge.models.neural.mf import TorchMF

    model = TorchMF(epochs=3, embedding_size=4, batch_size=256)
    model.fit(toy_ratings(), FitOptions(seed=0, threads=1, logger=lg.lightning()))
    return model.history_["train_loss"]


def test_environment_and_flatten():
    env = environment_info("cpu")
    assert env["device"] == "cpu" and env["cpu_count"] >= 1
    import numpy

    assert env["packages"]["numpy"] == numpy.__version__
    assert flatten({"a": {"b": 1, "c": [1, 2]}, "d": "x"}) == {"a.b": 1, "a.c": "[1, 2]", "d": "x"}


def test_unknown_and_none_kinds(tmp_path):
    assert make_logger("none", root=tmp_path) is None
    with pytest.raises(ConfigError, match="unknown logger 'neptune'"):
        make_logger("neptune", root=tmp_path)


def test_csv_files_hold_config_history_summary(tmp_path):
    lg = _write_run("csv", tmp_path)
    assert lg.run_dir == tmp_path / "toy-run" / "version_0"
    run = read_csv_run(lg.run_dir)
    assert run["config"] == CONFIG
    assert run["environment"]["device"] == "cpu" and "numpy" in run["environment"]["packages"]
    m = run["metrics"]
    assert list(m.columns) == ["time", "step", "metric", "value"]
    loss = m[m["metric"] == "train_loss"]
    assert loss["step"].tolist() == [0, 1, 2] and loss["value"].tolist() == [1.5, 1.25, 1.0]
    assert m[m["metric"] == "val_rmse"]["value"].tolist() == [1.4, 1.3, 1.35]
    final = m[m["step"].isna()].set_index("metric")["value"].to_dict()
    assert final == SUMMARY
    assert run["summary"] == SUMMARY
    # a second run goes to the next version, the first is kept
    assert make_logger("csv", root=tmp_path, name="toy run").run_dir.name == "version_1"


def test_csv_lightning_logs_each_epoch(tmp_path):
    lg = make_logger("csv", root=tmp_path, name="torch")
    losses = _fit_torch(lg)
    lg.close()
    df = pd.read_csv(lg.run_dir / "lightning" / "metrics.csv")
    assert df["epoch"].tolist() == [0, 1, 2]
    assert df["train_loss"].tolist() == pytest.approx(losses, rel=1e-6)


def test_tensorboard_event_files(tmp_path):
    pytest.importorskip("tensorboard")
    lg = _write_run("tensorboard", tmp_path)
    tb = read_tensorboard(lg.run_dir)
    assert tb["scalars"]["train_loss"] == [(0, 1.5), (1, 1.25), (2, 1.0)]
    assert [v for _, v in tb["scalars"]["val_rmse"]] == pytest.approx([1.4, 1.3, 1.35], rel=1e-6)
    assert tb["scalars"]["test/NDCG@10"][0][1] == pytest.approx(0.25, rel=1e-6)
    assert json.loads(tb["text"]["config"].strip("`\n")) == CONFIG
    assert '"device": "cpu"' in tb["text"]["environment"]
    assert json.loads((lg.run_dir / "summary.json").read_text()) == SUMMARY


def test_tensorboard_lightning_logger(tmp_path):
    pytest.importorskip("tensorboard")
    lg = make_logger("tensorboard", root=tmp_path, name="torch")
    losses = _fit_torch(lg)
    lg.close()
    tb = read_tensorboard(lg.run_dir)
    assert [v for _, v in tb["scalars"]["train_loss"]] == pytest.approx(losses, rel=1e-6)


@pytest.fixture
def offline_wandb(monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    # an unreachable server: an online call would fail, offline mode never makes one
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")


def test_wandb_offline_run_folder(tmp_path, offline_wandb):
    lg = make_logger("wandb", root=tmp_path, name="toy run", project="recforge-tests")
    assert lg.mode == "offline"
    with lg:
        lg.log_config(CONFIG)
        lg.log_environment(device="cpu")
        lg.log_history(HISTORY)
        losses = _fit_torch(lg)
        lg.log_summary(SUMMARY)
    assert lg.run_dir.parent == tmp_path / "wandb" and lg.run_dir.name.startswith("offline-run-")
    run = read_wandb_run(lg.run_dir)
    assert run["project"] == "recforge-tests" and run["run_id"] == lg.run_id
    assert run["config"]["model"] == CONFIG["model"] and run["config"]["seed"] == 3
    assert run["config"]["environment"]["device"] == "cpu"
    mine = [r for r in run["history"] if "val_rmse" in r]
    assert [r["epoch"] for r in mine] == [0, 1, 2] and [r["train_loss"] for r in mine] == [1.5, 1.25, 1.0]
    lightning_rows = [r for r in run["history"] if "trainer/global_step" in r]
    assert [r["train_loss"] for r in lightning_rows] == pytest.approx(losses, rel=1e-6)
    for key, val in SUMMARY.items():
        assert run["summary"][key] == pytest.approx(val)


def test_mlflow_file_store(tmp_path):
    pytest.importorskip("mlflow")
    lg = make_logger("mlflow", root=tmp_path, name="toy run", project="recforge-tests")
    with lg:
        lg.log_config(CONFIG)
        lg.log_environment(device="cpu")
        lg.log_history(HISTORY)
        losses = _fit_torch(lg)
        lg.log_summary(SUMMARY)
    assert lg.run_dir.parent.parent == tmp_path / "mlruns"
    run = read_mlflow_run(lg.run_dir)
    assert run["params"] == {"name": "toy", "seed": "3", "model.name": "mf-torch",
                             "model.params.embedding_size": "4", "model.params.epochs": "3"}
    assert run["metrics"]["val_rmse"] == [(0, 1.4), (1, 1.3), (2, 1.35)]
    assert run["metrics"]["test/NDCG_at_10"] == [(0, 0.25)]
    assert run["metrics"]["time/fit_seconds"] == [(0, 1.5)]
    # the Lightning logger wrote into the same run; the hand-logged history is first
    train = run["metrics"]["train_loss"]
    assert [v for _, v in train[:3]] == [1.5, 1.25, 1.0]
    assert [v for _, v in train[3:]] == pytest.approx(losses, rel=1e-6)
    assert run["artifacts"] == ["environment.json"]
    assert run["tags"]["env.device"] == "cpu"
    assert "status: 3" in (lg.run_dir / "meta.yaml").read_text()  # FINISHED


def test_failed_run_is_marked(tmp_path):
    pytest.importorskip("mlflow")
    with pytest.raises(RuntimeError), make_logger("mlflow", root=tmp_path, name="boom") as lg:
        raise RuntimeError("boom")
    assert "status: 4" in (lg.run_dir / "meta.yaml").read_text()  # FAILED


def test_nan_values_are_kept_and_non_numbers_dropped(tmp_path):
    lg = make_logger("csv", root=tmp_path, name="nan")
    lg.log_metrics({"a": float("nan"), "b": None, "c": "x", "d": 2}, step=1)
    lg.close()
    m = read_csv_run(lg.run_dir)["metrics"]
    assert m["metric"].tolist() == ["a", "d"] and math.isnan(m["value"].iloc[0])

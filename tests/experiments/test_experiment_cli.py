"""`recforge run|compare|export|plot|tune` and the generated configs/ml100k files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from recforge.cli.experiment_cmds import register
from recforge.experiments import ExperimentSpec
from recforge.models.registry import get_model_class, list_models

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "configs" / "ml100k"
runner = CliRunner()


@pytest.fixture(scope="module")
def app():
    app = typer.Typer()

    @app.command("version")
    def _version() -> None:  # a second command keeps typer in multi-command mode
        pass

    register(app)
    return app


def invoke(app, *args):
    res = runner.invoke(app, [str(a) for a in args])
    return res


def test_main_app_has_the_commands_once_registered():
    from recforge.cli import main

    names = [c.name for c in main.app.registered_commands]
    assert {"run", "compare", "export", "tune", "batch", "serve"} <= set(names)
    assert len(names) == len(set(names))  # registered once
    assert "plot" in {g.name for g in main.app.registered_groups}


def test_run_json_and_overrides(app, make_spec):
    path = make_spec("cli-svd", "svd", {"epochs": 3}, extra='save_model = true')
    res = invoke(app, "run", path, "--set", "embedding_size=2", "--logger", "csv", "--format", "json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout[res.stdout.index("{"):])
    assert out["name"] == "cli-svd" and out["metrics"]["RMSE"] > 0
    assert Path(out["log_dir"]).exists() and "/cli-svd/version_" in out["log_dir"]
    run_json = json.loads((Path(out["output_dir"]) / "run.json").read_text())
    assert run_json["spec"]["model"]["params"] == {"epochs": 3, "embedding_size": 2}
    assert run_json["spec"]["logger"]["kind"] == "csv"


def test_run_errors_are_one_line(app, make_spec, tmp_path):
    res = invoke(app, "run", tmp_path / "missing.toml")
    assert res.exit_code == 2 and "no such config file" in res.output
    res = invoke(app, "run", make_spec("bad", "svd"), "--set", "reg=-1")
    assert res.exit_code == 2 and "reg" in res.output
    res = invoke(app, "run", make_spec("bad2", "svd"), "--logger", "neptune")
    assert res.exit_code == 2 and "unknown logger" in res.output


def test_run_and_tune_take_dotted_sets_and_name_the_nearest_key(app, make_spec):
    path = make_spec("dotted", "svd", {"epochs": 2},
                     extra='[tune]\nn_trials = 1\n[tune.space]\nreg = { type = "float", low = 0.01, high = 0.5 }')
    res = invoke(app, "run", path, "--set", "protocol.name=rating-u1", "--set", "training.threads=1", "--no-outputs",
                 "--format", "json")
    assert res.exit_code == 2 and "no predefined split 'u1'" in res.output  # the toy CSV has no u1: the set arrived
    for command in ("run", "tune"):
        res = invoke(app, command, path, "--set", "trainig.threads=1")
        assert res.exit_code == 2 and "did you mean 'training'?" in res.output
        res = invoke(app, command, path, "--set", "epoch=1")
        assert res.exit_code == 2 and "did you mean 'epochs'?" in res.output


def test_compare_table(app, make_spec, tmp_path):
    a = make_spec("bias", "bias", protocol="loo-full")
    b = make_spec("pop", "popularity", protocol="loo-full")
    res = invoke(app, "compare", a, b, "--output", tmp_path / "cmp")
    assert res.exit_code == 0, res.output
    assert "baseline bias" in res.stdout and "NDCG@10 p(t)" in (tmp_path / "cmp" / "comparison.md").read_text()


def test_export_and_learning_curve_from_a_saved_model(app, make_spec, tmp_path):
    path = make_spec("exp-svd", "svd", {"epochs": 3}, extra="save_model = true")
    assert invoke(app, "run", path).exit_code == 0
    model = tmp_path / "runs" / "exp-svd" / "model.npz"
    res = invoke(app, "export", model, "--format", "npz", "--output", tmp_path / "npz")
    assert res.exit_code == 0, res.output
    from recforge.models.base import Estimator

    assert Estimator.load(tmp_path / "npz" / "model.npz").name == "svd"  # the one model file format
    res = invoke(app, "export", model, "--format", "onnx", "--output", tmp_path / "onnx")
    assert res.exit_code == 2 and "not a torch model" in res.output
    res = invoke(app, "plot", "learning-curve", model, "--output", tmp_path / "lc.png")
    assert res.exit_code == 0 and (tmp_path / "lc.png").read_bytes()[:4] == b"\x89PNG"


def test_tune_command(app, make_spec, tmp_path):
    path = make_spec("tune-svd", "svd", {"epochs": 3},
                     extra='[tune]\nn_trials = 2\n[tune.space]\nreg = { type = "float", low = 0.01, high = 0.5 }')
    res = invoke(app, "tune", path, "--output", tmp_path / "t")
    assert res.exit_code == 0, res.output
    assert "best RMSE" in res.stdout and (tmp_path / "t" / "tune-svd-best.toml").exists()


# ---------------------------------------------------------------------------------------- configs
NAMES = [e.name for e in list_models()]
ALL_FILES = sorted(p for ext in ("*.toml", "*.yaml", "*.yml") for p in (REPO / "configs").rglob(ext))
PROTOCOL_TASK = {"rating": "rating", "ctr": "ctr"}  # every other task is ranked under a ranking protocol


def test_every_registered_model_has_a_config_file():
    missing = [n for n in NAMES if not (CONFIGS / f"{n}.toml").exists()]
    assert not missing, f"no configs/ml100k file for {missing}: run python -m recforge.experiments.templates configs/ml100k"


@pytest.mark.parametrize("name", NAMES)
def test_config_file_builds_its_model(name):
    spec = ExperimentSpec.from_file(CONFIGS / f"{name}.toml")
    assert spec.model == name and spec.dataset == {"name": "ml-100k"}
    model = get_model_class(name)(spec.params)
    from recforge.evaluation.protocols import get_protocol

    proto = get_protocol(spec.protocol)
    assert proto.task == PROTOCOL_TASK.get(model.task, "ranking")
    if spec.tune:
        from recforge.tuning import parse_space

        for dim in parse_space(spec.tune["space"]):
            assert dim.name in model.config.to_dict()


def test_ctr_models_have_ctr_holdout_files():
    ctr = [e.name for e in list_models() if e.task == "ctr"]
    assert {"lr", "fm", "deepfm"} <= set(ctr)
    for name in ctr:
        spec = ExperimentSpec.from_file(CONFIGS / f"{name}.toml")
        assert spec.protocol == "ctr-holdout" and spec.tune["space"]
        assert "embeddings" not in spec.outputs["plots"]  # CTR models embed features, not users and items


@pytest.mark.parametrize("path", ALL_FILES, ids=[p.relative_to(REPO / "configs").as_posix() for p in ALL_FILES])
def test_every_file_under_configs_parses_and_names_a_registered_model(path):
    from recforge.data.datasets import list_datasets
    from recforge.evaluation.protocols import get_protocol
    spec = ExperimentSpec.from_file(path)
    assert spec.model in NAMES, f"{path}: model {spec.model!r} is not registered"
    if spec.protocol is not None:
        get_protocol(spec.protocol)  # raises ConfigError for an unknown protocol
    if spec.dataset.get("name"):
        assert spec.dataset["name"] in {name for name, _ in list_datasets()}
    if spec.tune:
        from recforge.tuning import parse_space

        parse_space(spec.tune.get("space"))


def test_generator_writes_the_ctr_files_as_they_are(tmp_path):
    """configs/ml100k/{lr,fm,deepfm}.toml are exactly what the template generator writes."""
    from recforge.experiments.templates import write_configs

    ctr = [e.name for e in list_models() if e.task == "ctr"]
    written = write_configs(tmp_path, models=ctr)
    assert sorted(p.name for p in written) == sorted(f"{n}.toml" for n in ctr)
    for p in written:
        got = p.read_text().replace(tmp_path.as_posix(), "configs/ml100k")
        assert got == (CONFIGS / p.name).read_text(), f"{p.name}: regenerate with --models {','.join(ctr)} --overwrite"


# ---------------------------------------------------------------------------------------- done means
@pytest.mark.slow
@pytest.mark.realdata
def test_new_user_run_with_wandb_offline(ml100k, tmp_path, monkeypatch):
    """`recforge run configs/ml100k/neumf.toml --logger wandb`: no account, no network; run, ONNX, UMAP on disk."""
    pytest.importorskip("wandb")
    pytest.importorskip("umap")
    pytest.importorskip("onnxruntime")
    name = "neumf"
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc, no saved login
    monkeypatch.chdir(tmp_path)
    app = typer.Typer()
    register(app)
    # small and short: this checks the plumbing, not the accuracy
    fast = ["--set", "epochs=1", "--set", "embedding_size=8", "--set", "batch_size=8192", "--threads", "1"]
    fast += ["--set", "negatives=1", "--set", "hidden=[16,8]"]
    res = runner.invoke(app, ["run", str(CONFIGS / f"{name}.toml"), "--logger", "wandb", *fast, "--format", "json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout[res.stdout.index("{"):])
    run_dir = Path(out["log_dir"])
    assert run_dir.name.startswith("offline-run-") and list(run_dir.glob("run-*.wandb"))
    from recforge.loggers.readers import read_wandb_run

    logged = read_wandb_run(run_dir)
    metric = next(iter(out["metrics"]))
    assert logged["summary"][f"test/{metric}"] == pytest.approx(out["metrics"][metric])
    assert logged["config"]["model"]["name"] == name
    assert any("train_loss" in row for row in logged["history"])
    files = {Path(p).name for ps in out["files"].values() for p in ps}
    assert {"score.onnx", "items_embeddings.png", "items_embeddings.html"} <= files
    assert os.path.getsize(Path(out["output_dir"]) / "onnx" / "score.onnx") > 0


def test_a_failed_run_leaves_no_folders(app, make_spec, tmp_path):
    """A run that fails after its logger started (a ranking model under a rating protocol) removes
    the output and log folders it made (finding D13)."""
    path = make_spec("fails", "bpr", {"epochs": 1}, protocol="rating-kfold5", logger="csv")
    res = invoke(app, "run", path)
    assert res.exit_code == 2, res.output
    assert not (tmp_path / "runs" / "fails").exists()
    assert not (tmp_path / "runs").exists()  # made by this run, so removed with it

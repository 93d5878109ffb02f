"""Optuna tuning: search spaces from the file, seeded studies, pruning through the Lightning loop."""

from __future__ import annotations

import pandas as pd
import pytest

from recforge.errors import ConfigError
from recforge.experiments import ExperimentSpec
from recforge.testing.datasets import toy_ratings

optuna = pytest.importorskip("optuna")

from recforge.tuning import parse_space, suggest, tune
from recforge.tuning import search as search_mod


@pytest.fixture
def spec_file(tmp_path):
    def make(model="svd", params=None, space=None, n_trials=4, extra=""):
        csv = tmp_path / "toy.csv"
        toy_ratings().to_dataframe().to_csv(csv, index=False)
        space = space or {"embedding_size": '{ type = "int", low = 2, high = 16, log = true }',
                          "reg": '{ type = "float", low = 0.001, high = 0.5, log = true }'}
        lines = [f'name = "{model}-t"', "seed = 7", 'protocol = "rating-kfold5"', 'logger = "csv"',
                 "[dataset]", f'path = "{csv.as_posix()}"', 'rating_col = "value"', 'timestamp_col = "timestamp"',
                 "[model]", f'name = "{model}"', "[model.params]",
                 *[f"{k} = {v}" for k, v in (params or {"epochs": 4}).items()],
                 "[training]", "threads = 1",
                 "[outputs]", f'dir = "{(tmp_path / "runs" / model).as_posix()}"',
                 "[tune]", f"n_trials = {n_trials}", extra, "[tune.space]", *[f"{k} = {v}" for k, v in space.items()]]
        path = tmp_path / f"{model}.toml"
        path.write_text("\n".join(lines) + "\n")
        return path

    return make


@pytest.mark.parametrize("space, message", [
    ({}, "empty"),
    ({"a": {"type": "int", "low": 5, "high": 1}}, "low <= high"),
    ({"a": {"type": "float", "low": 0, "high": 1, "log": True}}, "log scale needs low > 0"),
    ({"a": {"type": "normal"}}, "type must be"),
    ({"a": {"type": "categorical", "choices": []}}, "non-empty"),
    ({"a": {"type": "int", "low": 1, "high": 4, "bins": 3}}, "unknown key"),
])
def test_bad_spaces(space, message):
    with pytest.raises(ConfigError, match=message):
        parse_space(space)


def test_suggest_draws_each_kind():
    dims = parse_space({"k": {"type": "int", "low": 1, "high": 9, "step": 2},
                        "lr": {"type": "float", "low": 1e-3, "high": 1.0, "log": True}, "loss": ["bpr", "bce"]})
    trial = optuna.trial.FixedTrial({"k": 5, "lr": 0.01, "loss": "bce"})
    assert suggest(trial, dims) == {"k": 5, "lr": 0.01, "loss": "bce"}


def test_tune_is_seeded_writes_table_and_best_file(spec_file, tmp_path):
    path = spec_file()
    a = tune(path, output=tmp_path / "t1")
    b = tune(path, output=tmp_path / "t2")
    cols = ["trial", "state", "value", "param_embedding_size", "param_reg"]
    pd.testing.assert_frame_equal(a.trials[cols], b.trials[cols])  # same seed, same study
    table = pd.read_csv(tmp_path / "t1" / "trials.csv")
    assert len(table) == 4 and (table["state"] == "complete").all()
    assert a.metric == "RMSE" and a.direction == "minimize"
    assert a.best_value == pytest.approx(table["value"].min())
    best = ExperimentSpec.from_file(a.best_file)
    assert a.best_file.name == "svd-t-best.toml" and best.name == "svd-t-best"
    assert best.params == {"epochs": 4, **a.study.best_params}
    assert best.protocol == "rating-kfold5" and best.tune == ExperimentSpec.from_file(path).tune
    assert "best validation RMSE" in best.description
    assert "| trial |" in (tmp_path / "t1" / "trials.md").read_text()


def test_tune_scores_on_validation_not_test(spec_file, tmp_path, monkeypatch):
    seen = []
    real = search_mod._score

    def spy(model, valid, metric):
        seen.append(len(valid))
        return real(model, valid, metric)

    monkeypatch.setattr(search_mod, "_score", spy)
    res = tune(spec_file(n_trials=2), output=tmp_path / "t")
    data = toy_ratings()
    train = round(len(data) * 0.8)  # first fold's training part (5-fold CV)
    assert seen and all(abs(n - round(train * 0.1)) <= 1 for n in seen)
    assert len(res.trials) == 2


class _PruneAfterFirstTrial(optuna.pruners.BasePruner):
    def prune(self, study, trial):
        return trial.number >= 1


def test_torch_trials_are_pruned_through_the_epoch_callback(spec_file, tmp_path, monkeypatch):
    """The torch loop calls FitOptions.epoch_callback after every epoch, as the classical models do."""
    pytest.importorskip("lightning")
    scored = []
    real = search_mod._score

    def spy(model, valid, metric):
        value = real(model, valid, metric)
        scored.append((metric, value))
        return value

    monkeypatch.setattr(search_mod, "_score", spy)
    monkeypatch.setattr(search_mod, "_pruner", lambda name: _PruneAfterFirstTrial())
    path = spec_file("mf-torch", {"epochs": 4, "embedding_size": 4, "batch_size": 128},
                     space={"learning_rate": '{ type = "float", low = 0.001, high = 0.05, log = true }'}, n_trials=3)
    res = tune(path, output=tmp_path / "t")
    assert res.trials["state"].tolist() == ["complete", "pruned", "pruned"]
    assert res.trials["epochs_reported"].tolist() == [4, 1, 1]  # pruned after the first epoch
    assert res.best_params["learning_rate"] == res.study.trials[0].params["learning_rate"]
    # the reports are the tune metric of the model as it stood after epochs 1..4 (then the final score)
    first = res.study.trials[0].intermediate_values
    assert sorted(first) == [1, 2, 3, 4]
    assert [v for _, v in scored[:4]] == pytest.approx([first[e] for e in (1, 2, 3, 4)])
    assert {m for m, _ in scored} == {"RMSE"} and len(scored) == 4 + 1 + 1 + 1


def test_unknown_tune_key(spec_file):
    with pytest.raises(ConfigError, match="unknown key"):
        tune(spec_file(extra="trials = 3"))


# ---------------------------------------------------------------------------------------- classical models
def test_classical_trials_report_every_few_epochs_and_bad_ones_are_pruned(spec_file, tmp_path):
    """SVD under the file's median pruner: three sane step sizes run to the end, a step size too small
    to learn anything in 10 epochs is pruned at its first report (no monkeypatching)."""
    enqueue = "enqueue = [{learning_rate = 0.02}, {learning_rate = 0.03}, {learning_rate = 0.015}, " \
              "{learning_rate = 0.0001}]"
    path = spec_file("svd", {"epochs": 10, "embedding_size": 4}, n_trials=4,
                     space={"learning_rate": '{ type = "float", low = 0.0001, high = 0.1, log = true }'},
                     extra=f'pruner = "median"\nreport_every = 2\n{enqueue}')
    res = tune(path, output=tmp_path / "t")
    table = pd.read_csv(tmp_path / "t" / "trials.csv")
    assert table["state"].tolist() == ["complete", "complete", "complete", "pruned"]
    assert table["epochs_reported"].tolist() == [5, 5, 5, 1]  # epochs 2, 4, ..., 10; pruned after epoch 2
    assert table["param_learning_rate"].tolist() == [0.02, 0.03, 0.015, 0.0001]
    steps = [sorted(t.intermediate_values) for t in res.study.trials]
    assert steps[0] == [2, 4, 6, 8, 10] and steps[3] == [2]
    # the value reported at the last epoch is the trial's final validation score
    first = res.study.trials[0]
    assert first.intermediate_values[10] == pytest.approx(first.value)
    assert res.best_params["learning_rate"] != 0.0001


def test_ranking_model_pruned_through_the_epoch_callback(spec_file, tmp_path, monkeypatch):
    seen = []
    real = search_mod._score

    def spy(model, valid, metric):
        seen.append(metric)
        return real(model, valid, metric)

    monkeypatch.setattr(search_mod, "_score", spy)
    monkeypatch.setattr(search_mod, "_pruner", lambda name: _PruneAfterFirstTrial())
    path = spec_file("ials", {"epochs": 3, "embedding_size": 4}, n_trials=2,
                     space={"reg": '{ type = "float", low = 0.01, high = 1.0, log = true }'})
    path.write_text(path.read_text().replace('protocol = "rating-kfold5"', 'protocol = "loo-full"'))
    res = tune(path, output=tmp_path / "t")
    assert res.metric == "NDCG@10" and res.direction == "maximize"
    assert res.trials["state"].tolist() == ["complete", "pruned"]
    assert res.trials["epochs_reported"].tolist() == [3, 1]  # report_every defaults to epochs // 10 -> 1
    assert seen == ["NDCG@10"] * (3 + 1 + 1)  # per epoch, then the final score of the complete trial


@pytest.mark.parametrize("extra, message", [
    ("report_every = 0", "report_every"),
    ("enqueue = [{embedding_size = 4, nope = 1}]", "nope not in"),
])
def test_bad_pruning_settings(spec_file, extra, message):
    with pytest.raises(ConfigError, match=message):
        tune(spec_file(extra=extra))


# ---------------------------------------------------------------------------------------- CTR configs
@pytest.mark.slow
@pytest.mark.realdata
def test_tune_ctr_config_from_the_command_line(ml100k, tmp_path, monkeypatch):
    """`recforge tune configs/ml100k/deepfm.toml --trials 3`: AUC on the ctr-holdout validation rows."""
    pytest.importorskip("torch")
    from pathlib import Path

    import typer
    from typer.testing import CliRunner

    from recforge.cli.experiment_cmds import register

    config = Path(__file__).resolve().parents[2] / "configs" / "ml100k" / "deepfm.toml"
    monkeypatch.chdir(tmp_path)
    app = typer.Typer()

    @app.command("version")
    def _version() -> None:  # a second command keeps typer in multi-command mode
        pass

    register(app)
    fast = ["--set", "epochs=1", "--set", "hidden=[16]", "--set", "batch_size=16384"]
    res = CliRunner().invoke(app, ["tune", str(config), "--trials", "3", *fast, "--output", str(tmp_path / "t")])
    assert res.exit_code == 0, res.output
    assert "best AUC" in res.stdout
    table = pd.read_csv(tmp_path / "t" / "trials.csv")
    assert len(table) == 3 and set(table["state"]) <= {"complete", "pruned"}
    assert (table["state"] == "complete").sum() >= 1
    done = table[table["state"] == "complete"]
    assert done["value"].between(0.55, 0.9).all()
    assert (done["epochs_reported"] == 1).all()  # validation AUC reported to Optuna every epoch
    assert {"param_learning_rate", "param_reg", "param_embedding_size", "param_dropout"} <= set(table.columns)
    best = ExperimentSpec.from_file(tmp_path / "t" / "deepfm-ml100k-best.toml")
    assert best.protocol == "ctr-holdout" and best.params["hidden"] == [16]
    assert best.params["learning_rate"] == pytest.approx(done.loc[done["value"].idxmax(), "param_learning_rate"])

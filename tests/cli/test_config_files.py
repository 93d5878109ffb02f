"""One config-file schema: every command that takes ``--config`` reads experiment files, flags and
``--set`` override them, and unknown keys are a one-line error that names the nearest valid key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from recforge.cli.main import app
from recforge.testing.datasets import toy_ratings

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "configs"
runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def one_line_error(res) -> str:
    assert res.exit_code == 2, res.output
    # the loader's statement of what it read ("data: ...") may come first; the error is one line
    lines = [ln for ln in res.output.strip().splitlines() if not ln.startswith("data: ")]
    assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in res.output, res.output
    return lines[0]


@pytest.fixture
def toy_file(tmp_path):
    """An experiment file over a small ratings CSV: bias on rating-kfold5."""
    csv = tmp_path / "toy.csv"
    toy_ratings().to_dataframe().to_csv(csv, index=False)

    def write(extra: str = "", model: str = "bias", protocol: str = "rating-kfold5", params: str = "") -> Path:
        path = tmp_path / "exp.toml"
        path.write_text(
            f'name = "toy"\nseed = 0\n{extra}\n'
            f'[dataset]\npath = "{csv.as_posix()}"\nrating_col = "value"\ntimestamp_col = "timestamp"\n'
            f'[protocol]\nname = "{protocol}"\nk = 5\n'
            f'[model]\nname = "{model}"\n[model.params]\n{params}\n'
            '[training]\nthreads = 1\n'
        )
        return path

    return write


# ---------------------------------------------------------------------------------------- unknown keys
# every command that takes --config, with the arguments it needs besides the file
COMMANDS = {
    "train": ["train"],
    "evaluate": ["evaluate"],
    "recommend": ["recommend", "--user", "1"],
    "batch": ["batch", "--no-progress"],
    "serve": ["serve"],
    "data stats": ["data", "stats"],
    "split": ["split"],
}


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("typo, suggestion", [
    ("[trainig]\nthreads = 1", "did you mean 'training'?"),
    ("[outputs]\nsave_modle = true", "did you mean 'save_model'?"),
    ("desciption = \"x\"", "did you mean 'description'?"),
])
def test_unknown_key_in_the_file_is_a_one_line_error_with_the_nearest_key(toy_file, tmp_path, command, typo,
                                                                         suggestion):
    path = toy_file()
    text = path.read_text()
    path.write_text(typo + "\n" + text if typo.startswith("desc") else text + typo + "\n")  # top level first
    line = one_line_error(run(*COMMANDS[command], "--config", path))
    assert suggestion in line and str(path) in line


@pytest.mark.parametrize("command", list(COMMANDS))
def test_unknown_table_in_set_is_a_one_line_error_with_the_nearest_table(toy_file, command):
    line = one_line_error(run(*COMMANDS[command], "--config", toy_file(), "--set", "trainig.threads=2"))
    assert "--set trainig.threads" in line and "did you mean 'training'?" in line


@pytest.mark.parametrize("command", ["train", "evaluate", "recommend", "split", "data stats"])
def test_unknown_key_of_a_table_in_set_names_the_nearest_key(toy_file, command):
    line = one_line_error(run(*COMMANDS[command], "--config", toy_file(), "--set", "training.thread=2"))
    assert "did you mean 'threads'?" in line


@pytest.mark.parametrize("command", ["train", "evaluate", "recommend", "batch"])
def test_unknown_hyperparameter_in_set_names_the_nearest(toy_file, command):
    line = one_line_error(run(*COMMANDS[command], "--config", toy_file(model="svd"), "--set", "embeding_size=4"))
    assert "unknown hyperparameter 'embeding_size'" in line and "did you mean 'embedding_size'?" in line


def test_unknown_hyperparameter_in_the_file_names_the_nearest(toy_file):
    line = one_line_error(run("evaluate", "--config", toy_file(model="svd", params="embeding_size = 4")))
    assert "did you mean 'embedding_size'?" in line


@pytest.mark.parametrize("command", ["split", "data stats", "serve"])
def test_commands_without_a_model_refuse_a_hyperparameter_set(toy_file, command):
    line = one_line_error(run(*COMMANDS[command], "--config", toy_file(), "--set", "epochs=3"))
    assert "--set epochs" in line and "builds no model" in line or "serve.key=value" in line


def test_unknown_split_method_names_the_nearest(toy_file, tmp_path):
    line = one_line_error(run("split", "--config", toy_file(), "--method", "kfld", "--output", tmp_path / "s"))
    assert "did you mean 'kfold'?" in line


# ---------------------------------------------------------------------------------------- flags win
def test_flags_and_set_override_the_file(toy_file):
    path = toy_file(model="popularity", protocol="ratio-full")
    base = run("evaluate", "--config", path, "--format", "json")
    assert base.exit_code == 0, base.output
    out = json.loads(base.stdout)
    assert out["model"] == "popularity" and out["protocol"] == "ratio-full" and "NDCG@5" in out["rows"][-1]
    res = run("evaluate", "--config", path, "--k", "3", "--protocol", "loo-full", "--format", "json")
    out = json.loads(res.stdout)
    assert out["protocol"] == "loo-full" and "NDCG@3" in out["rows"][-1] and "NDCG@5" not in out["rows"][-1]
    res = run("evaluate", "--config", path, "--model", "bias", "--protocol", "rating-kfold5", "--set", "epochs=2",
              "--format", "json")
    out = json.loads(res.stdout)
    assert out["model"] == "bias" and out["config"]["epochs"] == 2 and "RMSE" in out["rows"][-1]
    res = run("evaluate", "--config", path, "--set", "protocol.k=4", "--format", "json")
    assert "NDCG@4" in json.loads(res.stdout)["rows"][-1]


def test_the_file_hyperparameters_reach_the_model_and_set_overrides_them(toy_file):
    path = toy_file(model="svd", params="embedding_size = 3\nepochs = 2")
    out = json.loads(run("evaluate", "--config", path, "--format", "json").stdout)
    assert out["config"]["embedding_size"] == 3 and out["config"]["epochs"] == 2
    res = run("evaluate", "--config", path, "--set", "epochs=1", "--set", "model.params.reg=0.5", "--format", "json")
    out = json.loads(res.stdout)
    assert out["config"]["embedding_size"] == 3 and out["config"]["epochs"] == 1 and out["config"]["reg"] == 0.5


def test_dataset_flag_replaces_the_file_dataset(toy_file, tmp_path):
    other = tmp_path / "other.csv"
    other.write_text("user_id,item_id\n" + "\n".join(f"{u},{(u * 3 + j) % 11}" for u in range(9) for j in range(4)))
    res = run("data", "stats", "--config", toy_file(), "--format", "json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["n_users"] == 40
    res = run("data", "stats", other, "--config", toy_file(), "--format", "json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["n_users"] == 9


def test_split_reads_its_table_and_flags_win(toy_file, tmp_path):
    path = toy_file(extra="")
    path.write_text(path.read_text() + f'[split]\nmethod = "kfold"\nn_folds = 3\noutput = "{(tmp_path / "k").as_posix()}"\n')
    res = run("split", "--config", path)
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in (tmp_path / "k").iterdir()) == ["fold1", "fold2", "fold3"]
    res = run("split", "--config", path, "--method", "loo", "--output", tmp_path / "l")
    assert res.exit_code == 0, res.output
    assert sum(1 for _ in open(tmp_path / "l" / "test.csv")) == 40 + 1  # one row per user + header


def test_train_saves_where_the_file_says_and_recommend_reads_k_from_it(toy_file, tmp_path):
    path = toy_file(model="popularity", protocol="loo-full")
    path.write_text(path.read_text() + f'[outputs]\ndir = "{(tmp_path / "run").as_posix()}"\n')
    res = run("train", "--config", path)
    assert res.exit_code == 0, res.output
    assert (tmp_path / "run" / "model.npz").exists()
    res = run("recommend", "--config", path, "--user", "3", "--user", "no-such-user", "--format", "json")
    assert res.exit_code == 0, res.output
    users = json.loads(res.stdout)["users"]
    assert [len(u["recommendations"]) for u in users] == [5, 5]  # [protocol] k = 5
    assert users[0]["known_user"] and users[0]["user_id"] == 3 and not users[1]["known_user"]


def test_batch_and_serve_read_their_tables(toy_file, tmp_path):
    pytest.importorskip("sqlalchemy")
    pytest.importorskip("fastapi")
    path = toy_file(model="popularity", protocol="loo-full")
    db = tmp_path / "recs.db"
    path.write_text(path.read_text() + f'[batch]\ndatabase = "{db.as_posix()}"\ntable = "recs"\n'
                    f'[serve]\ndatabase = "{db.as_posix()}"\n')
    res = run("batch", "--config", path, "--no-progress")
    assert res.exit_code == 0, res.output
    assert "rows for 40 users into recs" in res.output
    res = run("batch", "--config", path, "--no-progress", "--table", "bad-name")
    assert "table name 'bad-name'" in one_line_error(res)  # the flag wins over [batch] table
    # two workers without a shared history: refused after the file was read
    res = run("serve", "--config", path, "--set", "serve.default_k=5", "--workers", "2")
    assert "need a shared history: set redis" in one_line_error(res)
    res = run("serve", "--config", path, "--set", "serve.default_kk=5", "--workers", "2")
    assert "default_kk" in one_line_error(res)


# ---------------------------------------------------------------------------------------- shipped files
SHIPPED = {  # command -> a shipped file and what makes it quick here
    "train": ("ml100k/ials.toml", ["--set", "epochs=1"]),
    "evaluate": ("ml100k/svd.toml", ["--set", "epochs=1"]),
    "recommend": ("ml100k/bpr.toml", ["--set", "epochs=1", "--user", "1"]),
    "batch": ("ml100k/popularity.toml", ["--no-progress"]),
    "data stats": ("ml100k/svd.toml", []),
    "split": ("ml100k/item-knn.toml", ["--method", "loo"]),
}


@pytest.mark.realdata
@pytest.mark.parametrize("command", list(SHIPPED))
def test_every_command_accepts_a_shipped_config_file(ml100k, command, tmp_path, monkeypatch):
    if command == "batch":
        pytest.importorskip("sqlalchemy")
    monkeypatch.chdir(tmp_path)  # default outputs (models/, splits/, recommendations.db) land here
    file, extra = SHIPPED[command]
    res = run(*COMMANDS[command][:2 if command == "data stats" else 1], "--config", CONFIGS / file, *extra)
    assert res.exit_code == 0, res.output


@pytest.mark.realdata
def test_serve_accepts_a_shipped_config_file(ml100k):
    pytest.importorskip("fastapi")
    res = run("serve", "--config", CONFIGS / "ml100k" / "popularity.toml", "--workers", "2")
    assert "need a shared history: set redis" in one_line_error(res)  # the file itself was accepted


@pytest.mark.slow
@pytest.mark.realdata
def test_the_gowalla_config_trains_and_recommends(gowalla, tmp_path):
    path = CONFIGS / "gowalla" / "rp3beta.toml"
    res = run("train", "--config", path, "--output", tmp_path / "rp3.npz")
    assert res.exit_code == 0, res.output
    res = run("recommend", "--config", path, "--model-path", tmp_path / "rp3.npz", "--user", "0", "--format", "json")
    assert res.exit_code == 0, res.output
    assert len(json.loads(res.stdout)["users"][0]["recommendations"]) == 20  # [protocol] k = 20


@pytest.mark.slow
@pytest.mark.realdata
def test_the_frappe_config_evaluates_and_trains(tmp_path):
    from tests.conftest import has_dataset  # noqa: PLC0415

    if not has_dataset("frappe"):
        pytest.skip("Frappe not available: set RECFORGE_DATA_DIR to a folder holding frappe/")
    pytest.importorskip("torch")
    path = CONFIGS / "frappe-pooled" / "deepfm.toml"
    fast = ["--set", "epochs=1", "--set", "ensemble=1", "--set", "hidden=[16]", "--device", "cpu"]
    res = run("evaluate", "--config", path, *fast, "--format", "json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["protocol"] == "ctr-holdout" and 0.5 < out["rows"][-1]["AUC"] <= 1
    res = run("train", "--config", path, *fast, "--output", tmp_path / "deepfm.npz")
    assert res.exit_code == 0, res.output
    res = run("recommend", "--config", path, "--model-path", tmp_path / "deepfm.npz", "--user", "1")
    assert "is a CTR model" in one_line_error(res)

import json

import pytest
from typer.testing import CliRunner

from recforge.cli.main import app

runner = CliRunner()


def run(*args):
    return runner.invoke(app, list(args))


def test_models_lists_baselines_with_tasks():
    res = run("models", "--format", "json")
    assert res.exit_code == 0
    names = {m["name"]: m["task"] for m in json.loads(res.stdout)}
    assert names["bias"] == "rating" and names["popularity"] == "ranking"


def test_unknown_dataset_one_line_error():
    res = run("evaluate", "--dataset", "nope", "--model", "bias")
    assert res.exit_code == 2
    assert "unknown dataset 'nope'" in res.output
    assert "Traceback" not in res.output


def test_unknown_model_error():
    res = run("evaluate", "--dataset", "nope", "--model", "no-such-model")
    assert res.exit_code == 2 and "unknown model 'no-such-model'" in res.output


def test_bad_k_error(tmp_path):
    p = tmp_path / "log.csv"
    p.write_text("user_id,item_id\n1,2\n2,3\n")
    res = run("recommend", "--dataset", str(p), "--model", "popularity", "--user", "1", "--k", "0")
    assert res.exit_code == 2 and "k must be a positive integer" in res.output


def test_csv_missing_column_error(tmp_path):
    p = tmp_path / "log.csv"
    p.write_text("u,i\n1,2\n")
    res = run("data", "stats", str(p))
    assert res.exit_code == 2 and "missing column(s) 'user_id', 'item_id'" in res.output


def test_any_csv_end_to_end(tmp_path):
    p = tmp_path / "plays.csv"
    rows = [f"user{u},song{(u * 7 + j) % 13},{j + 1}" for u in range(12) for j in range(5)]
    p.write_text("listener,track,plays\n" + "\n".join(rows) + "\n")
    stats = run("data", "stats", str(p), "--user-col", "listener", "--item-col", "track", "--format", "json")
    assert stats.exit_code == 0, stats.output
    assert json.loads(stats.stdout)["n_users"] == 12
    cfg = tmp_path / "exp.toml"
    cfg.write_text(
        'model = "popularity"\nprotocol = "ratio-full"\nk = 5\n'
        f'[dataset]\npath = "{p.as_posix()}"\nuser_col = "listener"\nitem_col = "track"\nrating_col = "plays"\n'
    )
    res = run("evaluate", "--config", str(cfg), "--format", "json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["rows"][-1]["protocol"] == "ratio-full" and "Recall@5" in out["rows"][-1]
    rec = run("recommend", "--config", str(cfg), "--user", "user3", "--format", "json")
    assert rec.exit_code == 0, rec.output
    items = [r["item_id"] for r in json.loads(rec.stdout)["users"][0]["recommendations"]]
    assert len(items) == 5 and all(i.startswith("song") for i in items)


def test_set_overrides_and_rejects_bad_values(tmp_path):
    p = tmp_path / "r.csv"
    p.write_text("user_id,item_id,rating\n" + "\n".join(f"{u},{i},{(u + i) % 5 + 1}" for u in range(8) for i in range(6)) + "\n")
    res = run("evaluate", "--dataset", str(p), "--model", "bias", "--set", "reg_user=-1", "--format", "json")
    assert res.exit_code == 2 and "reg_user" in res.output
    res = run("evaluate", "--dataset", str(p), "--model", "bias", "--set", "epochs=2", "--format", "json")
    # the CSV has no rating column configured -> implicit -> bias still fits on values 1.0
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["config"]["epochs"] == 2


@pytest.mark.realdata
def test_data_stats_ml100k_json(ml100k, tmp_path):
    res = run("data", "stats", "ml-100k", "--format", "json", "--plot", str(tmp_path))
    assert res.exit_code == 0
    out = json.loads(res.stdout)
    assert out["n_users"] == 943 and round(out["sparsity"], 4) == 0.9370
    assert len(out["plots"]) == 2


@pytest.mark.realdata
def test_evaluate_and_recommend_ml100k(ml100k):
    res = run("evaluate", "--dataset", "ml-100k", "--model", "popularity", "--protocol", "loo-full", "--k", "10",
              "--format", "json")
    assert res.exit_code == 0
    row = json.loads(res.stdout)["rows"][-1]
    assert abs(row["HR@10"] - 0.0498) < 0.002 and row["fit_seconds"] >= 0 and "predict_seconds" in row
    res = run("recommend", "--dataset", "ml-100k", "--model", "popularity", "--user", "1", "--k", "10",
              "--format", "json")
    recs = json.loads(res.stdout)["users"][0]["recommendations"]
    assert len(recs) == 10 and recs[0]["title"]


@pytest.mark.realdata
def test_train_then_recommend_from_file(ml100k, tmp_path):
    path = tmp_path / "bias.npz"
    res = run("train", "--dataset", "ml-100k", "--model", "bias", "--output", str(path))
    assert res.exit_code == 0 and path.exists()
    res = run("recommend", "--model-path", str(path), "--user", "1", "--user", "99999", "--format", "json")
    users = json.loads(res.stdout)["users"]
    assert users[0]["known_user"] and not users[1]["known_user"]
    assert len(users[1]["recommendations"]) == 10


@pytest.mark.realdata
def test_split_writes_files(ml100k, tmp_path):
    res = run("split", "--dataset", "ml-100k", "--method", "loo", "--output", str(tmp_path))
    assert res.exit_code == 0
    assert sum(1 for _ in open(tmp_path / "test.csv")) == 943 + 1

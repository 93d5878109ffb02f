"""The CLI on interaction logs the tests write: column flags on every command, RMSE-0 cases refused
with exit 2, the split -> evaluate round trip, and given-split equal to the Python API's split."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from recforge.cli.main import app
from recforge.data import DataSource
from recforge.evaluation.protocols import evaluate, get_protocol
from recforge.models.registry import make_model
from recforge.splits import kfold, leave_one_out

runner = CliRunner()


def _ratings(path: Path, n_users: int = 30, n_items: int = 40, n: int = 450, seed: int = 0,
             header: str = "userId,movieId,rating,timestamp") -> Path:
    rng = np.random.default_rng(seed)
    pairs = rng.choice(n_users * n_items, size=n, replace=False)
    lines = [header]
    for j, p in enumerate(pairs):
        lines.append(f"{p // n_items + 1},{p % n_items + 1},{rng.integers(1, 11) / 2:g},{964982703 + 37 * j}")
    path.write_text("\n".join(lines) + "\n")
    return path


def _json(args: list[str]) -> dict:
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def _fails(args: list[str], *needles: str) -> str:
    res = runner.invoke(app, args)
    assert res.exit_code == 2, res.output
    # after the loader's "data: ..." statements, the error is one line
    lines = [ln for ln in res.stderr.strip().splitlines() if not ln.startswith("data: ")]
    err = "\n".join(lines)
    assert "Traceback" not in res.output and len(lines) == 1 and err.startswith("error:"), res.output
    for needle in needles:
        assert needle in err, err
    return err


def test_every_command_takes_the_column_flags(tmp_path: Path) -> None:
    path = _ratings(tmp_path / "log.csv", header="uid,iid,stars,ts")
    cols = ["--user-col", "uid", "--item-col", "iid", "--rating-col", "stars", "--timestamp-col", "ts"]
    stats = _json(["data", "stats", str(path), *cols, "--format", "json"])
    assert stats["n_users"] == 30 and stats["explicit"] is True
    ev = _json(["evaluate", "--dataset", str(path), *cols, "--model", "bias", "--protocol", "rating-kfold5",
                "--format", "json"])
    assert ev["rows"][-1]["feedback"] == "explicit" and ev["rows"][-1]["RMSE"] > 0.3
    out = tmp_path / "m.npz"
    res = runner.invoke(app, ["train", "--dataset", str(path), *cols, "--model", "bias", "--output", str(out)])
    assert res.exit_code == 0, res.output
    rec = _json(["recommend", "--dataset", str(path), *cols, "--model", "popularity", "--user", "1", "--k", "3",
                 "--format", "json"])
    assert len(rec["users"][0]["recommendations"]) == 3
    res = runner.invoke(app, ["split", "--dataset", str(path), *cols, "--method", "loo", "--output",
                              str(tmp_path / "sp")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "sp" / "train.csv").read_text().startswith("user_id,item_id,rating,timestamp\n")
    db = tmp_path / "recs.db"
    res = runner.invoke(app, ["batch", "--dataset", str(path), *cols, "--model", "popularity", "--k", "2",
                              "--database", str(db), "--no-progress"])
    assert res.exit_code == 0, res.output
    # the loader says what it read, on stderr
    assert "explicit ratings (user=uid, item=iid, rating=stars, timestamp=ts)" in res.stderr


def test_rmse_zero_cases_are_exit_2(tmp_path: Path) -> None:
    clicks = tmp_path / "clicks.csv"
    clicks.write_text("user_id,item_id\n" + "".join(f"{u},{i}\n" for u in range(1, 6) for i in range(1, 5)))
    _fails(["evaluate", "--dataset", str(clicks), "--model", "bias", "--protocol", "rating-kfold5"],
           "protocol 'rating-kfold5' needs explicit ratings", "implicit feedback")
    ratings = _ratings(tmp_path / "r.csv")
    _fails(["evaluate", "--dataset", str(ratings), "--feedback", "implicit", "--model", "svd",
            "--protocol", "rating-kfold5"], "needs explicit ratings")
    const = tmp_path / "const.csv"
    const.write_text("user,item,rating\n" + "".join(f"{u},{i},1\n" for u in range(1, 6) for i in range(1, 5)))
    _fails(["evaluate", "--dataset", str(const), "--model", "bias", "--protocol", "rating-kfold5"],
           "needs ratings that vary", "every value of")
    _fails(["evaluate", "--dataset", str(const), "--model", "svd", "--protocol", "loo-full"],
           "svd (a rating model) needs ratings that vary")
    _fails(["train", "--dataset", str(clicks), "--model", "bias", "--output", str(tmp_path / "x.npz")],
           "bias (a rating model) needs explicit ratings")
    assert not (tmp_path / "x.npz").exists()
    bad = tmp_path / "bad.csv"
    bad.write_text("userId,movieId,rating\n1,10,4\n1,20,five\n")
    _fails(["evaluate", "--dataset", str(bad), "--model", "popularity", "--protocol", "ratio-full"],
           f"{bad}: line 3: column 'rating' is not a number ('five')")
    _fails(["evaluate", "--dataset", str(ratings), "--rating-col", "ratng", "--model", "bias"],
           "no column 'ratng' (--rating-col)", "did you mean 'rating'", "userId, movieId, rating, timestamp")
    _fails(["evaluate", "--dataset", str(ratings), "--weights", "tfidf", "--model", "ials"], "weights 'tfidf'")


def test_split_then_evaluate_round_trip_equals_named_protocol(tmp_path: Path) -> None:
    path = _ratings(tmp_path / "r.csv")
    res = runner.invoke(app, ["split", "--dataset", str(path), "--method", "loo", "--output", str(tmp_path / "loo")])
    assert res.exit_code == 0, res.output
    named = _json(["evaluate", "--dataset", str(path), "--model", "item-knn-implicit", "--protocol", "loo-full",
                   "--k", "10", "--format", "json"])["rows"][-1]
    files = ["--train", str(tmp_path / "loo" / "train.csv"), "--test", str(tmp_path / "loo" / "test.csv")]
    own = _json(["evaluate", *files, "--model", "item-knn-implicit", "--protocol", "given-split", "--k", "10",
                 "--format", "json"])["rows"][-1]
    for metric in ("HR@10", "NDCG@10"):
        assert own[metric] == pytest.approx(named[metric], abs=1e-12), metric
    assert own["n_eval"] == named["n_eval"]
    # ratings survive the trip: fold 1 of the written 5-fold split equals rating-kfold5's fold 1
    res = runner.invoke(app, ["split", "--dataset", str(path), "--method", "kfold", "--output", str(tmp_path / "kf")])
    assert res.exit_code == 0, res.output
    kf = _json(["evaluate", "--dataset", str(path), "--model", "bias", "--protocol", "rating-kfold5",
                "--format", "json"])["rows"][0]
    fold1 = ["--train", str(tmp_path / "kf" / "fold1" / "train.csv"), "--test", str(tmp_path / "kf" / "fold1" / "test.csv")]
    mine = _json(["evaluate", *fold1, "--model", "bias", "--format", "json"])  # given-split is the default
    row = mine["rows"][-1]
    assert mine["protocol"] == "given-split" and row["feedback"] == "explicit"
    assert row["RMSE"] == pytest.approx(kf["RMSE"], abs=1e-9) and row["RMSE"] > 0.3


def test_given_split_files_equal_the_python_api_split(tmp_path: Path) -> None:
    path = _ratings(tmp_path / "r.csv", seed=3)
    data = DataSource(path=str(path)).load().interactions
    sp = leave_one_out(data)
    for part in ("train", "test"):
        getattr(sp, part).to_dataframe().rename(columns={"value": "rating"}).to_csv(tmp_path / f"{part}.csv",
                                                                                    index=False)
    api = get_protocol("given-split").run_splits(make_model("popularity"), [sp], "r", k=5)
    ds = DataSource(train=str(tmp_path / "train.csv"), test=str(tmp_path / "test.csv")).load()
    mine = evaluate(make_model("popularity"), ds, "given-split", k=5)
    for metric in ("Recall@5", "NDCG@5", "Precision@5", "HR@5"):
        assert mine.metric(metric) == pytest.approx(api.metric(metric), abs=1e-12)
    # and for a rating model, on a k-fold split
    fold = kfold(data, 5, seed=0)[2]
    for part in ("train", "test"):
        getattr(fold, part).to_dataframe().rename(columns={"value": "rating"}).to_csv(tmp_path / f"k{part}.csv",
                                                                                     index=False)
    api = get_protocol("given-split").run_splits(make_model("bias"), [fold], "r")
    source = DataSource(train=str(tmp_path / "ktrain.csv"), test=str(tmp_path / "ktest.csv"))  # loaded by evaluate
    assert evaluate(make_model("bias"), source, "given-split").metric("RMSE") == pytest.approx(api.metric("RMSE"))


def test_split_date_and_split_column_from_the_cli(tmp_path: Path) -> None:
    path = _ratings(tmp_path / "r.csv")
    # timestamps run 964982703 + 37 j; this cut puts rows j >= 300 in test
    cut = "2000-07-30T21:50:03"
    row = _json(["evaluate", "--dataset", str(path), "--split-date", cut, "--model", "popularity",
                 "--protocol", "given-split", "--format", "json"])["rows"][-1]
    assert row["protocol"] == "given-split" and row["n_eval"] > 0
    _fails(["evaluate", "--dataset", str(path), "--split-date", cut, "--model", "popularity",
            "--protocol", "loo-full"], "use --protocol given-split")
    lines = path.read_text().splitlines()
    tagged = tmp_path / "tagged.csv"
    tagged.write_text("\n".join([lines[0] + ",part"] + [f"{x},{'test' if j % 5 == 0 else 'train'}"
                                                         for j, x in enumerate(lines[1:])]) + "\n")
    res = runner.invoke(app, ["split", "--dataset", str(tagged), "--split-column", "part", "--output",
                              str(tmp_path / "own")])
    assert res.exit_code == 0, res.output
    assert "test 90 rows" in res.stdout


def test_cleaning_flags_report_what_they_dropped(tmp_path: Path) -> None:
    path = _ratings(tmp_path / "r.csv")
    res = runner.invoke(app, ["data", "stats", str(path), "--positive-threshold", "4", "--min-user-interactions", "3",
                              "--min-item-interactions", "2", "--format", "json"])
    assert res.exit_code == 0, res.output
    assert "--positive-threshold 4: kept" in res.stderr and "k-core (users >= 3, items >= 2" in res.stderr
    assert json.loads(res.stdout)["explicit"] is False


def test_config_dataset_table_is_the_same_source(tmp_path: Path) -> None:
    path = _ratings(tmp_path / "log.csv", header="uid,iid,stars,ts")
    cfg = tmp_path / "exp.toml"
    cfg.write_text(f'model = "ials"\n[dataset]\npath = "{path}"\nuser_col = "uid"\nitem_col = "iid"\n'
                   f'rating_col = "stars"\ntimestamp_col = "ts"\nweights = "log1p"\nmin_item_interactions = 2\n')
    res = runner.invoke(app, ["evaluate", "--config", str(cfg), "--set", "epochs=2", "--format", "json"])
    assert res.exit_code == 0, res.output
    row = json.loads(res.stdout)["rows"][-1]
    assert row["feedback"] == "implicit/log1p" and row["protocol"] == "loo-full"
    assert "weights=log1p" in res.stderr and "k-core (users >= 0, items >= 2" in res.stderr
    flags = _json(["evaluate", "--dataset", str(path), "--user-col", "uid", "--item-col", "iid", "--rating-col",
                   "stars", "--timestamp-col", "ts", "--weights", "log1p", "--min-item-interactions", "2",
                   "--model", "ials", "--set", "epochs=2", "--format", "json"])["rows"][-1]
    assert flags["HR@10"] == row["HR@10"] and flags["NDCG@10"] == row["NDCG@10"]
    cfg.write_text(f'model = "ials"\n[dataset]\npath = "{path}"\nuser_column = "uid"\n')
    _fails(["evaluate", "--config", str(cfg)], "unknown key 'user_column'", "did you mean 'user_col'")


def test_run_and_tune_print_the_loaders_notes(tmp_path: Path) -> None:
    """`run` and `tune` state what the loader read and dropped, the same ``data:`` lines as `evaluate`."""
    path = _ratings(tmp_path / "log.csv", header="uid,iid,stars,ts")
    cfg = tmp_path / "exp.toml"
    cfg.write_text(f'name = "notes"\n[model]\nname = "svd"\n[model.params]\nepochs = 2\n[protocol]\nname = "rating-kfold5"\n'
                   f'[dataset]\npath = "{path}"\nuser_col = "uid"\nitem_col = "iid"\nrating_col = "stars"\n'
                   f'timestamp_col = "ts"\nmin_item_interactions = 12\n'
                   '[tune]\nn_trials = 1\n[tune.space]\nreg = { type = "float", low = 0.01, high = 0.5 }\n')

    def notes(res) -> list[str]:
        assert res.exit_code == 0, res.output
        return [ln for ln in res.stderr.splitlines() if ln.startswith("data: ")]

    expected = notes(runner.invoke(app, ["evaluate", "--config", str(cfg), "--format", "json"]))
    assert any("explicit ratings (user=uid, item=iid, rating=stars, timestamp=ts)" in n for n in expected)
    assert any("k-core (users >= 0, items >= 12" in n for n in expected), expected
    for fmt in ("table", "json"):
        res = runner.invoke(app, ["run", str(cfg), "--no-outputs", "--output", str(tmp_path / f"run-{fmt}"),
                                  "--format", fmt])
        assert notes(res) == expected
        if fmt == "json":  # stdout stays one JSON document
            assert json.loads(res.stdout)["name"] == "notes"
    run_json = json.loads((tmp_path / "run-json" / "run.json").read_text())
    assert run_json["data_notes"] == [n.removeprefix("data: ") for n in expected]
    assert notes(runner.invoke(app, ["tune", str(cfg), "--output", str(tmp_path / "tune")])) == expected

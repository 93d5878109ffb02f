"""Signals, utility and normalisation from the CLI and config files: statistics, checks, result rows,
and the composite-utility example config end to end (signals -> utility -> normalisation -> model ->
recommendations)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from recforge.cli.main import app

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "configs" / "examples" / "composite_utility.toml"
SIGNALS = ["--signal", "plays", "--signal", "hours:duration", "--signal", "rating:rating"]


def _json(args: list[str]) -> dict:
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def _fails(args: list[str], *needles: str) -> None:
    res = runner.invoke(app, args)
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.stderr.strip().splitlines() if not ln.startswith("data: ")]
    assert "Traceback" not in res.output and len(lines) == 1 and lines[0].startswith("error:"), res.output
    for needle in needles:
        assert needle in lines[0], lines[0]


def _log(path: Path) -> Path:
    # user 1 rated a and b; user 2 rated a only; plays/hours everywhere; c has no rating
    path.write_text("user_id,item_id,plays,hours,rating\n"
                    "1,a,4,1.0,5\n1,b,0,0.0,1\n1,c,2,3.0,\n2,a,1,0.5,3\n2,c,0,,\n")
    return path


def test_data_stats_and_check_describe_each_signal(tmp_path: Path) -> None:
    log = _log(tmp_path / "log.csv")
    stats = _json(["data", "stats", str(log), *SIGNALS, "--format", "json"])
    assert stats["signals"]["plays"] == {"kind": "count", "count": 5, "missing": 0, "mean": 1.4, "min": 0.0,
                                         "max": 4.0, "zero_share": 0.4}
    assert stats["signals"]["rating"]["count"] == 3 and stats["signals"]["rating"]["mean"] == 3.0
    assert stats["signals"]["hours"]["missing"] == 1 and stats["explicit"] is False  # all columns are signals
    res = runner.invoke(app, ["data", "stats", str(log), *SIGNALS], env={"COLUMNS": "80"})
    assert "signal plays (count)     5 of 5 rows, mean 1.4" in res.stdout
    assert "signal rating (rating)   3 of 5 rows, mean 3" in res.stdout
    check = _json(["data", "check", str(log), *SIGNALS, "--format", "json"])
    assert check["signals"]["hours"]["count"] == 4 and check["signals"]["hours"]["n_not_numeric"] == 0
    res = runner.invoke(app, ["data", "check", str(log), *SIGNALS], env={"COLUMNS": "80"})
    assert res.exit_code == 0 and "signal hours (duration)  4 of 5 rows" in res.stdout
    # a config file's [dataset] table says the same as the flags (the table form of signals)
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[dataset]\npath = "{log}"\n[dataset.signals]\nplays = "count"\nhours = "duration"\n'
                   'rating = "rating"\n')
    assert _json(["data", "stats", "--config", str(cfg), "--format", "json"])["signals"] == stats["signals"]


def test_data_check_takes_the_data_options(tmp_path: Path) -> None:
    rows = [f"{u} {i} {1 + (u * i) % 5} {1_600_000_000 + 100 * u + i}"
            for u in range(1, 13) for i in range(1, u % 4 + 3)]
    raw = tmp_path / "log.dat"
    raw.write_text("\n".join(rows) + "\n")
    cols = ["--columns", "uid,iid,stars,ts", "--rating-col", "stars"]
    full = _json(["data", "check", str(raw), *cols, "--format", "json"])
    assert full["columns"] == {"user": "uid", "item": "iid", "rating": "stars", "timestamp": "ts"}
    assert full["n_rows"] == len(rows) and full["rating"]["kind"] == "ratings"
    # cleaning options change the data the protocols' splits are made from (users with < 4 rows go)
    kept = _json(["data", "check", str(raw), *cols, "--min-user-interactions", "4", "--format", "json"])
    n_kept = sum(1 for u in range(1, 13) if u % 4 + 2 >= 4)
    assert kept["protocols"]["latest per user"]["test_rows"] == n_kept
    assert full["protocols"]["latest per user"]["test_rows"] == 12
    # FILE --test TEST is the given split, as --train FILE --test TEST
    train, test = tmp_path / "train.csv", tmp_path / "test.csv"
    train.write_text("user_id,item_id,timestamp\n1,a,10\n1,b,30\n2,a,5\n")
    test.write_text("user_id,item_id,timestamp\n1,c,20\n2,b,50\n3,a,60\n")
    for args in (["data", "check", str(train), "--test", str(test)],
                 ["data", "check", "--train", str(train), "--test", str(test)]):
        g = _json([*args, "--format", "json"])["protocols"]["given split"]
        assert (g["cold_users"], g["cold_items"], g["leak_rows_user"]) == (1, 1, 1)
    # --split-date gives a given split too
    g = _json(["data", "check", str(train), "--split-date", "25", "--format", "json"]
              )["protocols"]["given split"]
    assert (g["train_rows"], g["test_rows"]) == (2, 1)
    # a cell the loaders refuse is reported, not a crash
    bad = tmp_path / "bad.csv"
    bad.write_text("user_id,item_id,plays\n1,a,3\n1,b,x\n2,a,1\n")
    doc = _json(["data", "check", str(bad), "--signal", "plays", "--format", "json"])
    assert doc["signals"]["plays"]["n_not_numeric"] == 1
    assert any("the loaders refuse this log" in w and "signal 'plays' is not a number" in w
               for w in doc["warnings"])


def test_utility_and_normalize_are_on_every_result_row(tmp_path: Path) -> None:
    log = _log(tmp_path / "log.csv")
    formula = "log1p(plays) + 0.5*clip(hours, 0, 2) + rating"
    train = tmp_path / "train.csv"
    test = tmp_path / "test.csv"
    frame = pd.read_csv(log)
    frame.iloc[[0, 1, 2, 4]].to_csv(train, index=False)
    frame.iloc[[3]].to_csv(test, index=False)
    # known answer: the global mean of per-user centred values is 0, so normalised global-mean
    # predicts each user's mean utility; user 2's training utility is log1p(0) + 0 + 0 = 0 (c only)
    doc = _json(["evaluate", "--train", str(train), "--test", str(test), *SIGNALS, "--utility", formula,
                 "--model", "global-mean", "--normalize", "user-center", "--protocol", "given-split",
                 "--format", "json"])
    row = doc["rows"][-1]
    assert row["utility"] == formula and row["normalize"] == "user-center" and row["feedback"] == "explicit"
    truth = np.log1p(1) + 0.5 * 0.5 + 3
    assert row["RMSE"] == pytest.approx(abs(truth - 0.0), rel=1e-5)
    assert doc["utility"] == formula and doc["normalize"] == "user-center"
    res = runner.invoke(app, ["evaluate", "--train", str(train), "--test", str(test), *SIGNALS,
                              "--utility", formula,
                              "--model", "global-mean", "--normalize", "user-center"], env={"COLUMNS": "80"})
    flat = " ".join(res.stdout.split())  # the header line wraps at 80 columns
    assert "normalize: user-center" in flat and f"utility: {formula}" in flat
    # one-line errors
    _fails(["evaluate", "--dataset", str(log), *SIGNALS, "--utility", "plays", "--model", "popularity",
            "--normalize", "user-zscore"], "popularity is a ranking model")
    _fails(["evaluate", "--dataset", str(log), *SIGNALS, "--model", "implicit-to-explicit-linear",
            "--normalize", "user-zscore"], "learns its rating signal, not the normalised values")
    _fails(["evaluate", "--dataset", str(log), *SIGNALS, "--utility", "clip(hours, 5, 1)", "--model", "bias"],
           "clip low 5 is above high 1")
    _fails(["evaluate", "--dataset", str(log), *SIGNALS, "--utility", "log2(plays)", "--model", "bias"],
           "unknown transform 'log2'")
    _fails(["evaluate", "--dataset", str(log), *SIGNALS, "--utility", "plays + skips", "--model", "bias"],
           "not declared as a signal")
    _fails(["data", "stats", str(log), "--signal", "hours:minutes"], "kind 'minutes' is not one of")
    _fails(["evaluate", "--dataset", str(log), *SIGNALS, "--model", "bias", "--normalize", "user-zcore"],
           "did you mean 'user-zscore'")


def test_synth_signals_are_deterministic_and_follow_the_preference(tmp_path: Path) -> None:
    args = ["data", "synth", "--users", "200", "--items", "100", "--interactions", "4000"]
    for name, extra in (("a.csv", ["--signals"]), ("b.csv", ["--signals"]), ("plain.csv", [])):
        res = runner.invoke(app, [*args, *extra, "--output", str(tmp_path / name)])
        assert res.exit_code == 0, res.output
    a, b, plain = (pd.read_csv(tmp_path / n) for n in ("a.csv", "b.csv", "plain.csv"))
    pd.testing.assert_frame_equal(a, b)
    assert list(a.columns) == ["user_id", "item_id", "rating", "timestamp", "plays", "hours"]
    # the same ids, times and (where kept) ratings as without signals
    keys = ["user_id", "item_id", "timestamp"]
    pd.testing.assert_frame_equal(a[keys], plain[keys])
    kept = a["rating"].notna()
    np.testing.assert_array_equal(a.loc[kept, "rating"], plain.loc[kept, "rating"])
    assert 0.25 < kept.mean() < 0.35  # rated_share 0.3 of 4,000 rows
    assert ((a["plays"] == 0) == (a["hours"] == 0)).all()
    by_star = plain.assign(plays=a["plays"]).groupby("rating")["plays"].mean()
    assert by_star.is_monotonic_increasing and by_star.iloc[-1] > 3 * by_star.iloc[0]


def test_the_composite_utility_example_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = tmp_path / EXAMPLE.name
    shutil.copy(EXAMPLE, cfg)
    # the commands of the file's header, as the README shows them
    res = runner.invoke(app, ["data", "synth", "--users", "300", "--items", "200", "--interactions", "6000",
                              "--signals", "--output", "runs/composite-utility/plays.csv"])
    assert res.exit_code == 0, res.output
    stats = _json(["data", "stats", "--config", str(cfg), "--format", "json"])
    assert set(stats["signals"]) == {"plays", "hours", "rating"} and stats["explicit"] is True
    assert stats["utility"] == "log1p(plays) + 0.5*clip(hours, 0, 10) + rating"
    run = _json(["run", str(cfg), "--logger", "none", "--format", "json"])
    assert run["normalize"] == "user-zscore" and run["utility"] == stats["utility"]
    record = json.loads((tmp_path / "runs" / "composite-utility" / "run.json").read_text())
    assert record["utility"] == stats["utility"] and record["normalize"] == "user-zscore"
    rows = pd.read_csv(tmp_path / "runs" / "composite-utility" / "results.csv")
    assert (rows["utility"] == stats["utility"]).all() and (rows["normalize"] == "user-zscore").all()
    # the normalised model beats predicting the global mean of the utility on the same 5 folds
    base = _json(["evaluate", "--config", str(cfg), "--model", "global-mean", "--normalize", "none",
                  "--format", "json"])
    assert run["metrics"]["RMSE"] < base["rows"][-1]["RMSE"] - 0.05
    rec = _json(["recommend", "--config", str(cfg), "--user", "1", "--k", "5", "--format", "json"])
    recs = rec["users"][0]["recommendations"]
    assert len(recs) == 5 and all(r["score"] is not None for r in recs)
    scores = [r["score"] for r in recs]
    assert scores == sorted(scores, reverse=True) and 0 < scores[0] < 20  # the utility's own scale


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    body = text.split("## Signals, composite utility and normalisation", 1)[1].split("\n## ", 1)[0]
    blocks = body.split("```bash", 1)[1].split("```", 1)[0]
    return [line.partition("  #")[0].strip() for line in blocks.splitlines() if line.startswith("recforge ")]


def test_the_readme_section_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shlex

    commands = _readme_commands()
    assert len(commands) == 5 and commands[0].startswith("recforge data synth")
    (tmp_path / "configs" / "examples").mkdir(parents=True)
    shutil.copy(EXAMPLE, tmp_path / "configs" / "examples" / EXAMPLE.name)
    monkeypatch.chdir(tmp_path)
    for command in commands:
        quiet = ["--logger", "none"] if " run " in command else []
        res = runner.invoke(app, [*shlex.split(command)[1:], *quiet])
        assert res.exit_code == 0, (command, res.output)
    assert "normalize: user-center" in " ".join(res.stdout.split())

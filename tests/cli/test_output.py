"""The one result renderer (finding D4): 80 columns, plain text, no truncated number; json and csv
parse back to the same numbers; every result command takes --format table|json|csv|markdown."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from recforge.cli._output import Report, format_number, render
from recforge.cli.main import app
from recforge.errors import ConfigError

METRICS = ["HR@20", "Precision@20", "Recall@20", "NDCG@20", "MAP@20", "Coverage@20", "Novelty@20", "AvgPop@20",
           "fit_seconds", "predict_seconds"]
BOX = set("─│┃┏┓└┘├┤┬┴┼━╭╮╰╯═║")


def _results(n_models: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for j in range(n_models):
        row = {"protocol": "ratio-full", "dataset": "ml-100k", "model": f"model-{j}", "fold": "mean"}
        row.update({m: float(rng.uniform(0, 400) if m == "AvgPop@20" else rng.uniform(0, 1)) for m in METRICS})
        row.update({"n_eval": 943.0, "n_fallback": 0.0,
                    "config": "{'embedding_size': 64, 'reg': 0.01, 'epochs': 30, 'learning_rate': 0.001}"})
        rows.append(row)
    return pd.DataFrame(rows)


@pytest.mark.parametrize("n_models", [1, 3])
def test_table_fits_80_columns_and_keeps_every_number(n_models):
    df = _results(n_models)
    text = render(Report.of(df, "results", keys=("model",), notes=["ratio-full: random 80/20, seed 0"]), width=80)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert "…" not in text and not (BOX & set(text))
    for rec in df.to_dict(orient="records"):
        for m in METRICS:
            assert format_number(rec[m]) in text  # the whole value, 4 decimals
    assert "943" in text and "943.0" not in text  # counts as whole numbers
    # constant columns go to the header line, the long config to a footer
    assert "protocol: ratio-full" in text and "dataset: ml-100k" in text
    assert "[1] config: {'embedding_size': 64" in text


def test_json_and_csv_parse_back_to_the_same_numbers():
    df = _results(3)
    df.loc[1, "HR@20"] = np.nan
    report = Report.of(df, "results")
    back = json.loads(render(report, "json"))["rows"]
    rows = list(csv.DictReader(io.StringIO(render(report, "csv"))))
    for rec, j, c in zip(df.to_dict(orient="records"), back, rows, strict=True):
        for m in METRICS:
            if np.isnan(rec[m]):
                assert j[m] is None and c[m] == ""
            else:
                assert j[m] == rec[m] and float(c[m]) == rec[m]
        assert c["config"] == rec["config"]


def test_markdown_is_a_table_with_every_column():
    md = render(Report.of(_results(2)), "markdown")
    head = md.splitlines()[0]
    assert head.startswith("| protocol | dataset | model |") and "| config |" in head
    assert md.splitlines()[1].startswith("|---|")


def test_unknown_format_is_an_error():
    with pytest.raises(ConfigError, match="--format must be one of table, json, csv, markdown"):
        render(Report.of(_results(1)), "xml")


def test_long_title_column_wraps_instead_of_truncating():
    from recforge.cli._output import Section

    title = "A Very Long Movie Title That Goes On, The (Original Director's Cut, Remastered Edition) (1997)"
    frame = pd.DataFrame({"rank": [1], "item": [50], "score": [0.123456], "title": [title]})
    text = render(Report([Section(frame, "user 1", keys=tuple(frame.columns), inline=("title",))]), width=80)
    assert max(len(line) for line in text.splitlines()) <= 80
    assert " ".join(text.split()).count("Remastered Edition) (1997)") == 1


@pytest.fixture
def log_csv(tmp_path):
    p = tmp_path / "log.csv"
    p.write_text("user_id,item_id,rating\n" + "".join(
        f"{u},{i},{1 + (u * i) % 5}\n" for u in range(1, 13) for i in range(1, 9) if (u + i) % 3))
    return p


@pytest.mark.parametrize("fmt", ["table", "json", "csv", "markdown"])
def test_every_result_command_takes_format(log_csv, fmt):
    runner = CliRunner()
    commands = [
        ["models"], ["protocols"], ["data", "list"],
        ["data", "stats", str(log_csv), "--rating-col", "rating"],
        ["evaluate", "--dataset", str(log_csv), "--model", "popularity", "--protocol", "ratio-full", "--k", "3"],
        ["recommend", "--dataset", str(log_csv), "--model", "popularity", "--user", "1", "--k", "3"],
    ]
    for cmd in commands:
        res = runner.invoke(app, [*cmd, "--format", fmt], env={"COLUMNS": "80"})
        assert res.exit_code == 0, (cmd, res.output)
        out = res.stdout
        if fmt == "json":
            json.loads(out)
        elif fmt == "csv":
            assert len(list(csv.reader(io.StringIO(out)))) >= 2
        elif fmt == "markdown":
            assert "|---" in out or "| " in out or cmd == ["data", "list"]
        else:
            assert max(len(line) for line in out.splitlines()) <= 80, (cmd, out)
            assert "…" not in out and not (BOX & set(out))
    res = runner.invoke(app, ["models", "--format", "xml"])
    assert res.exit_code == 2 and "--format must be one of" in res.output


def test_ints_are_never_grouped_since_they_may_be_ids():
    assert format_number(1234567) == "1234567" and format_number(1234567.0) == "1234567"
    assert format_number(0.00012345) == "1.23e-04" and format_number(0.5) == "0.5000"
    assert format_number(np.float64("nan")) == "" and format_number(None) == ""

"""Block scoring under a memory budget: sizes, identical metrics, one-line refusals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recforge.errors import ConfigError
from recforge.evaluation.blocks import (
    check_fit_memory,
    current_budget,
    format_bytes,
    memory_budget,
    parse_bytes,
    per_user_bytes,
    plan_blocks,
)
from recforge.evaluation.protocols import full_ranking
from recforge.models.baselines.simple import Popularity
from recforge.models.registry import make_model
from recforge.splits import random_split
from recforge.testing import toy_ratings


def test_parse_and_format_bytes():
    assert parse_bytes("8GB") == 8 * 10**9
    assert parse_bytes("8 GiB") == 8 * 2**30
    assert parse_bytes("1.5g") == 1_500_000_000
    assert parse_bytes("512MB") == 512 * 10**6
    assert parse_bytes(1234) == 1234
    for bad in ("8x", "GB", "-1GB", "0"):
        with pytest.raises(ConfigError, match="memory budget"):
            parse_bytes(bad)
    assert format_bytes(3.2e9) == "3.2 GB" and format_bytes(12) == "12 B"


def test_plan_from_budget_exact():
    model = Popularity().fit(toy_ratings())
    n_items = len(model.items_)
    per_user = per_user_bytes(n_items, 5)
    assert per_user == 16 * n_items + 256 * 5 + 64
    no_budget = plan_blocks(model, 100, 5)
    assert no_budget.block_users == 100 and no_budget.n_blocks == 1 and no_budget.budget is None
    resident = plan_blocks(model, 100, 5, 10**9).resident
    budget = resident + 7 * per_user + 3
    plan = plan_blocks(model, 100, 5, budget)
    assert plan.block_users == 7 and plan.n_blocks == 15
    with pytest.raises(ConfigError, match=r"memory budget .* too small .* raise --memory-budget"):
        plan_blocks(model, 100, 5, resident + per_user - 1)
    with memory_budget("1MB") as b:
        assert current_budget() == b == 10**6
        assert plan_blocks(model, 100, 5).budget == 10**6
    assert current_budget() is None


def test_full_ranking_same_metrics_in_small_blocks():
    split = random_split(toy_ratings(), test_fraction=0.3, seed=0)
    model = make_model("ials", {"epochs": 3}).fit(split.train)
    base_per, base_recs, _ = full_ranking(model, split.test, 5, ("HR", "NDCG"))
    resident = plan_blocks(model, len(base_recs), 5, 10**12).resident
    tight = resident + 2 * per_user_bytes(len(model.items_), 5) + 2_000_000  # small blocks (truth matrix counted)
    with memory_budget(tight):
        per, recs, _ = full_ranking(model, split.test, 5, ("HR", "NDCG"))
    np.testing.assert_array_equal(recs, base_recs)
    np.testing.assert_array_equal(per["NDCG@5"], base_per["NDCG@5"])
    # explicit users: a sample of the test users
    users = np.flatnonzero(np.diff(split.test.csr().indptr) > 0)[:3]
    _, sub, _ = full_ranking(model, split.test, 5, ("HR",), users=users)
    np.testing.assert_array_equal(sub, base_recs[:3])


def test_ease_refused_above_the_budget_with_what_it_needs():
    data = toy_ratings()
    ease = make_model("ease")
    check_fit_memory(ease, data, None)  # no budget: nothing to check
    with pytest.raises(ConfigError, match=r"ease on 30 items needs about .* to fit .*item-knn-implicit"):
        check_fit_memory(ease, data, 100)
    check_fit_memory(make_model("item-knn-implicit"), data, 100)  # not a dense model


def test_cli_memory_budget(tmp_path):
    from typer.testing import CliRunner

    from recforge.cli.main import app

    df = toy_ratings().to_dataframe()
    df.rename(columns={"value": "rating"}).to_csv(tmp_path / "log.csv", index=False)
    runner = CliRunner()
    res = runner.invoke(app, ["evaluate", "--model", "ease", "--dataset", str(tmp_path / "log.csv"),
                              "--memory-budget", "1kB"])
    assert res.exit_code == 2 and "needs about" in res.output and "Traceback" not in res.output
    res = runner.invoke(app, ["evaluate", "--model", "popularity", "--dataset", str(tmp_path / "log.csv"),
                              "--memory-budget", "50MB", "--format", "json"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["batch", "--model", "popularity", "--dataset", str(tmp_path / "log.csv"),
                              "--database", str(tmp_path / "r.db"), "--memory-budget", "50MB", "--no-progress"])
    assert res.exit_code == 0, res.output
    import sqlite3

    n = sqlite3.connect(tmp_path / "r.db").execute("select count(distinct user_id) from recommendations").fetchone()[0]
    assert n == toy_ratings().n_users
    res = runner.invoke(app, ["evaluate", "--model", "popularity", "--dataset", str(tmp_path / "log.csv"),
                              "--memory-budget", "lots"])
    assert res.exit_code == 2 and "not a size" in res.output

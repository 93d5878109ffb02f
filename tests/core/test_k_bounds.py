"""Bounds on k (finding D2): a k beyond the catalogue is clamped to it, and memory for top-k is
bounded by users x min(k, n_items), never by k alone. Each huge-k call is watched by tracemalloc
(numpy reports its buffers to it): k = 10**9 would need gigabytes, the catalogue a few bytes."""

from __future__ import annotations

import tracemalloc

import pandas as pd
import pytest
from typer.testing import CliRunner

from recforge.cli.main import app
from recforge.data.interactions import Interactions
from recforge.errors import ConfigError
from recforge.evaluation.protocols import evaluate
from recforge.models.registry import make_model

HUGE = 10**9
LIMIT = 32 * 2**20  # bytes: far above what 4 items need, far below what 10**9 slots would


def _log() -> Interactions:
    df = pd.DataFrame({"user": [1, 1, 2, 2, 3, 3, 4, 5], "item": [10, 11, 10, 12, 11, 13, 12, 10]})
    return Interactions.from_dataframe(df, user="user", item="item")


def _peak(fn):
    tracemalloc.start()
    try:
        out = fn()
        return out, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_recommend_clamps_k_to_the_catalogue_without_allocating_it():
    model = make_model("popularity").fit(_log())
    (ids, scores), peak = _peak(lambda: model.recommend([1, 2, 99], k=HUGE))
    assert peak < LIMIT
    assert ids.shape == scores.shape == (3, 4)  # min(k, n_items) columns
    # user 1 saw 10 and 11: the two others, then padding; the unknown user 99 gets every item
    assert ids[0].tolist() == [12, 13, -1, -1]
    assert sorted(ids[2].tolist()) == [10, 11, 12, 13]
    one, _ = model.recommend(1, k=HUGE)
    assert one.tolist() == [12, 13, -1, -1]
    (hist, _), peak = _peak(lambda: model.recommend_for_history([10], k=HUGE))
    assert peak < LIMIT and len(hist) == 4


def test_similar_items_and_dense_models_clamp_too():
    model = make_model("item-knn-implicit").fit(_log())
    (ids, _), peak = _peak(lambda: model.similar_items(10, k=HUGE))
    assert peak < LIMIT and len(ids) == 4  # itself left out: a padded slot
    mf = make_model("ials", {"embedding_size": 2, "epochs": 1}).fit(_log())
    (ids, _), peak = _peak(lambda: mf.recommend([1, 2], k=HUGE))
    assert peak < LIMIT and ids.shape == (2, 4)


def test_evaluation_with_huge_k_scores_the_whole_list():
    """The metrics of a 10**9 list are those of the full list: HR, recall and NDCG equal k = n_items,
    precision divides by k (as documented); nothing of size k is allocated."""
    data = _log()
    huge, peak = _peak(lambda: evaluate(make_model("popularity"), data, "ratio-full", k=HUGE))
    assert peak < LIMIT
    full = evaluate(make_model("popularity"), data, "ratio-full", k=4)
    for m in ("HR", "Recall", "NDCG"):
        assert huge.metric(f"{m}@{HUGE}") == pytest.approx(full.metric(f"{m}@4"))
    assert huge.metric(f"Precision@{HUGE}") == pytest.approx(full.metric("Precision@4") * 4 / HUGE)


def test_batch_with_huge_k_writes_at_most_the_catalogue(tmp_path):
    pytest.importorskip("sqlalchemy")
    import sqlalchemy as sa

    from recforge.serving.batch import run_batch

    model = make_model("popularity").fit(_log())
    res, peak = _peak(lambda: run_batch(model, tmp_path / "r.db", k=HUGE, progress=False))
    assert peak < LIMIT
    with sa.create_engine(f"sqlite:///{tmp_path / 'r.db'}").connect() as con:
        n = con.execute(sa.text(f"select count(*), max(rank) from {res.table}")).one()
    # 5 users, each gets the items they have not seen: 2 + 2 + 2 + 3 + 3
    assert tuple(n) == (12, 3)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "3"])
def test_k_that_is_not_a_positive_integer_is_one_line_error(bad):
    model = make_model("popularity").fit(_log())
    with pytest.raises(ConfigError, match="k must be a positive integer"):
        model.recommend(1, k=bad)


def test_cli_clamps_with_a_note_and_rejects_bad_k(tmp_path):
    p = tmp_path / "log.csv"
    _log().to_dataframe()[["user_id", "item_id"]].to_csv(p, index=False)
    runner = CliRunner()
    res = runner.invoke(app, ["recommend", "--dataset", str(p), "--model", "popularity", "--user", "1",
                              "--k", str(HUGE), "--format", "json"])
    assert res.exit_code == 0, res.output
    assert "k=1,000,000,000 is more than the 4 items" in res.stderr
    import json

    assert [r["item_id"] for r in json.loads(res.stdout)["users"][0]["recommendations"]] == [12, 13]
    for k in ("0", "-3"):
        res = runner.invoke(app, ["recommend", "--dataset", str(p), "--model", "popularity", "--user", "1", "--k", k])
        assert res.exit_code == 2 and "k must be a positive integer" in res.output
        assert "Traceback" not in res.output
    res = runner.invoke(app, ["evaluate", "--dataset", str(p), "--model", "popularity", "--protocol", "ratio-full",
                              "--k", str(HUGE), "--format", "json"])
    assert res.exit_code == 0, res.output
    assert "k=4 used" in res.stderr and "HR@4" in json.loads(res.stdout)["rows"][0]

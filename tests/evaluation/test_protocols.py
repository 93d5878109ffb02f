import json

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from recforge.config import FitOptions
from recforge.data.interactions import Interactions
from recforge.errors import ConfigError, DataError
from recforge.evaluation.protocols import evaluate, full_ranking, list_protocols, sample_negatives
from recforge.models.baselines.bias import Bias
from recforge.models.baselines.simple import GlobalMean, Popularity, RandomScorer
from recforge.splits import Split
from recforge.testing import toy_ratings


def test_protocol_names():
    names = {p.name for p in list_protocols()}
    assert {"rating-kfold5", "rating-u1", "loo-full", "loo-sampled", "ratio-full", "given-split"} <= names


def test_unknown_protocol_and_bad_k():
    data = toy_ratings()
    with pytest.raises(ConfigError, match="unknown protocol 'nope'"):
        evaluate(Bias(), data, "nope")
    with pytest.raises(ConfigError, match="k must be a positive integer"):
        evaluate(Popularity(), data, "loo-full", k=0)


def test_rating_protocol_rejects_ranking_model():
    with pytest.raises(ConfigError, match="needs a rating model"):
        evaluate(Popularity(), toy_ratings(), "rating-kfold5")


def test_kfold_result_table_shape_and_protocol_on_every_row():
    res = evaluate(Bias(), toy_ratings(), "rating-kfold5")
    assert list(res.table["fold"]) == ["1", "2", "3", "4", "5", "mean"]
    assert set(res.table["protocol"]) == {"rating-kfold5"}
    assert res.metric("RMSE") == pytest.approx(res.table["RMSE"][:5].mean())
    assert res.metric("RMSE") < evaluate(GlobalMean(), toy_ratings(), "rating-kfold5").metric("RMSE")


def test_full_ranking_exact_case():
    # 2 users, 4 items; the model ranks by popularity (item 0 > 1 > 2 > 3)
    train = Interactions.from_dataframe(
        pd.DataFrame({"user_id": [0, 1, 1, 0, 1, 2, 2], "item_id": [0, 0, 1, 1, 2, 0, 3]})
    )
    test = Interactions(np.array([0, 1]), np.array([2, 3]), np.ones(2), train.users, train.items, explicit=False)
    model = Popularity().fit(train)
    per, recs, n_fb = full_ranking(model, test, 2, ("HR", "NDCG"))
    # user 0 saw items 0,1 -> recs [2, 3]; its test item 2 is first. user 1 saw 0,1,2 -> recs [3, -1]
    assert recs.tolist() == [[2, 3], [3, -1]]
    np.testing.assert_allclose(per["HR@2"], [1.0, 1.0])
    np.testing.assert_allclose(per["NDCG@2"], [1.0, 1.0])
    assert n_fb == 0


def test_sample_negatives_never_positive():
    rng = np.random.default_rng(0)
    m = sp.random(50, 300, density=0.3, format="csr", random_state=1)
    users = rng.integers(0, 50, 40)
    neg = sample_negatives(m, users, 99, seed=3)
    for row, u in enumerate(users):
        assert len(set(neg[row])) == 99
        assert not set(neg[row]) & set(m[u].indices)
        assert neg[row].min() >= 0 and neg[row].max() < 300
    with pytest.raises(DataError, match="cannot sample"):
        sample_negatives(sp.csr_matrix(np.ones((1, 10))), np.array([0]), 5, 0)


def test_results_save_atomic_files(tmp_path):
    res = evaluate(Popularity(), toy_ratings(), "loo-full", k=5)
    paths = res.save(tmp_path / "out")
    assert sorted(p.suffix for p in paths) == [".csv", ".json", ".md"]
    rows = json.loads((tmp_path / "out.json").read_text())["rows"]
    assert rows[-1]["protocol"] == "loo-full" and "HR@5" in rows[-1]
    assert "| loo-full |" in (tmp_path / "out.md").read_text()
    assert not list(tmp_path.glob(".*tmp"))


def test_random_is_chance_level_and_popularity_beats_it():
    data = toy_ratings(n_users=60, n_items=40, seed=1)
    rand = evaluate(RandomScorer(), data, "ratio-full", k=10).metric("Recall@10")
    pop = evaluate(Popularity(), data, "ratio-full", k=10).metric("Recall@10")
    assert 0.1 < rand < 0.45  # about k / n_unseen_items
    assert pop >= rand


def test_loo_sampled_labelled_sampled():
    res = evaluate(Popularity(), toy_ratings(n_users=50, n_items=200, density=0.2), "loo-sampled")
    assert "HR@10 (sampled)" in res.table.columns
    assert any("sampled" in n for n in res.notes)


def test_given_split_requires_split():
    with pytest.raises(DataError, match="no published split"):
        evaluate(Popularity(), toy_ratings(), "given-split")


@pytest.mark.realdata
def test_bias_reproduces_surprise_baselineonly(ml100k):
    res = evaluate(Bias(), ml100k, "rating-kfold5", options=FitOptions(seed=0))
    assert res.metric("RMSE") == pytest.approx(0.9440, abs=0.005)


@pytest.mark.realdata
def test_popularity_loo_full_anchor(ml100k):
    res = evaluate(Popularity(), ml100k, "loo-full", k=10)
    assert res.metric("HR@10") == pytest.approx(0.0498, abs=0.002)
    assert res.metric("NDCG@10") == pytest.approx(0.0252, abs=0.002)


@pytest.mark.realdata
def test_rating_u1_uses_predefined_split(ml100k):
    res = evaluate(Bias(), ml100k, "rating-u1")
    assert res.table["n_eval"].iloc[0] == 20_000
    assert 0.94 < res.metric("RMSE") < 0.98

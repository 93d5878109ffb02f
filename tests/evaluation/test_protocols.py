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


# ---------------------------------------------------------------------------------------- Protocol objects
def test_default_for_is_the_one_table():
    from recforge.evaluation.protocols import DEFAULT_PROTOCOL, Protocol, default_protocol

    for task, name in DEFAULT_PROTOCOL.items():
        assert Protocol.default_for(task).name == name == default_protocol(task)
    assert Protocol.default_for("rating").name == "rating-kfold5"
    with pytest.raises(ConfigError, match="unknown task"):
        Protocol.default_for("nope")


def test_plugins_register_on_first_use_without_back_imports():
    import subprocess
    import sys

    code = ("import sys, recforge.evaluation.protocols as p\n"
            "assert 'recforge.evaluation.ctr_protocol' not in sys.modules\n"
            "assert 'recforge.evaluation.cold_start' not in sys.modules\n"
            "assert p.get_protocol('cold-start').name == 'cold-start'\n"
            "assert 'recforge.evaluation.cold_start' in sys.modules\n"
            "assert 'recforge.evaluation.ctr_protocol' not in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("name, n_splits", [("rating-kfold5", 5), ("loo-full", 1), ("loo-sampled", 1),
                                            ("ratio-full", 1)])
def test_on_fit_sees_every_split_the_protocol_scores(name, n_splits):
    from recforge.evaluation.protocols import get_protocol

    # loo-sampled needs 99 unseen items per user
    data = toy_ratings(n_items=150, density=0.2) if name == "loo-sampled" else toy_ratings()
    model = Bias() if name.startswith("rating") else Popularity()
    seen = []
    res = evaluate(model, data, name, options=FitOptions(seed=3),
                   on_fit=lambda fitted, split, fold: seen.append((fitted, split, fold)))
    assert [f for _, _, f in seen] == list(range(1, n_splits + 1))
    assert all(fitted is not model and fitted.is_fitted() for fitted, _, _ in seen)
    assert not model.is_fitted()  # the protocol fits clones
    again = get_protocol(name).splits(data, 3)
    assert len(again) == n_splits
    for (_, split, _), other in zip(seen, again, strict=True):
        np.testing.assert_array_equal(split.test.user_idx, other.test.user_idx)
        np.testing.assert_array_equal(split.test.item_idx, other.test.item_idx)
    rows = res.table[res.table["fold"] != "mean"]
    assert rows["n_eval"].tolist() == [
        len(s.test) if name.startswith("rating") or name == "loo-sampled" else int((np.diff(s.test.csr().indptr) > 0).sum())
        for _, s, _ in seen]


def test_prepare_sets_the_training_data_and_options_of_each_fold():
    data = toy_ratings()
    calls = []

    def prepare(split, fold, options):
        calls.append((fold, options.seed))
        keep = split.train.user_idx != 0  # user 0 is left out of every fold's training data
        return split.train.subset(keep), options.replace(verbose=False)

    res = evaluate(Bias(), data, "rating-kfold5", options=FitOptions(seed=2), prepare=prepare,
                   on_fit=lambda fitted, split, fold: calls.append(("fit", bool(fitted.user_known_[0]))))
    assert calls[:2] == [(1, 2), ("fit", False)] and len(calls) == 10
    plain = evaluate(Bias(), data, "rating-kfold5", options=FitOptions(seed=2))
    assert res.metric("RMSE") != plain.metric("RMSE")
    # the test rows are the protocol's whatever prepare returns
    assert res.table["n_eval"].tolist() == plain.table["n_eval"].tolist()


def test_evaluate_takes_a_protocol_object_and_run_splits_given_splits():
    from recforge.evaluation.protocols import get_protocol

    data = toy_ratings()
    proto = get_protocol("loo-full")
    a = evaluate(Popularity(), data, proto)
    b = proto.run_splits(Popularity(), proto.splits(data, 0), data)
    c = evaluate(Popularity(), data, "loo-full")
    cols = ["HR@10", "NDCG@10", "MRR@10", "n_eval", "n_fallback"]
    assert a.table[cols].equals(b.table[cols]) and a.table[cols].equals(c.table[cols])


def test_sampled_ranks_exact_case_with_unknown_users_and_items_ranked_last():
    from recforge.evaluation.protocols import sampled_ranks

    full = Interactions.from_dataframe(pd.DataFrame({"user_id": [0, 1, 2, 1, 2, 2, 0, 3],
                                                     "item_id": [0, 0, 0, 1, 1, 2, 2, 3]}))
    is_test = np.array([False] * 6 + [True, True])
    model = Popularity().fit(full.subset(~is_test))  # popularity 0: 3, 1: 2, 2: 1; item 3 and user 3 unknown
    test = full.subset(is_test)
    rank = sampled_ranks(model, full, test, n_negatives=2, seed=0)
    # user 0: test item 2 (score 1) against its unseen items 1 (score 2) and 3 (unknown: last) -> rank 1;
    # user 3 is unknown: every score is -inf and ties count against the test item -> rank 2
    assert rank.tolist() == [1, 2]

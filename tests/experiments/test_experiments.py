"""Experiment files, run() and compare(): parsing, reproducibility, outputs, paired tests."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from recforge.config import FitOptions
from recforge.errors import ConfigError
from recforge.evaluation.protocols import evaluate
from recforge.evaluation.results import EvaluationResult
from recforge.experiments import ExperimentSpec, compare, paired_tests, run
from recforge.loggers.readers import read_csv_run
from recforge.models.registry import make_model


# ---------------------------------------------------------------------------------------- spec
def test_shorthand_and_tables_parse_to_the_same_spec():
    short = ExperimentSpec.from_dict({"name": "a", "dataset": "ml-100k", "model": "svd", "params": {"epochs": 3},
                                      "protocol": "rating-u1", "logger": "wandb"})
    full = ExperimentSpec.from_dict({"name": "a", "dataset": {"name": "ml-100k"},
                                     "model": {"name": "svd", "params": {"epochs": 3}},
                                     "protocol": {"name": "rating-u1"}, "logger": {"kind": "wandb"}})
    assert short.to_dict() == full.to_dict()
    assert short.logger == {"kind": "wandb"} and short.params == {"epochs": 3}


@pytest.mark.parametrize("raw, message", [
    ({"dataset": "ml-100k"}, "no model"),
    ({"model": "svd"}, "no dataset"),
    ({"model": "svd", "dataset": "x", "k": 0}, "k must be a positive integer"),
    ({"model": "svd", "dataset": "x", "seed": -1}, "seed must be"),
    ({"model": "svd", "dataset": "x", "logger": "neptune"}, "unknown logger"),
    ({"model": "svd", "dataset": "x", "outputs": {"export": ["pmml"]}}, "unknown format"),
    ({"model": "svd", "dataset": "x", "outputs": {"plots": ["pie"]}}, "unknown plot"),
    ({"model": "svd", "dataset": "x", "training": {"epochs": 3}}, r"\[training\]: unknown key"),
    ({"model": "svd", "dataset": "x", "training": {"validation": 2}}, "validation must be"),
    ({"model": "svd", "dataset": "x", "modle": "svd"}, "unknown top-level key"),
])
def test_bad_specs_name_the_problem(raw, message):
    with pytest.raises(ConfigError, match=message):
        ExperimentSpec.from_dict(raw)


@pytest.mark.parametrize("suffix", [".toml", ".yaml"])
def test_save_and_read_back(tmp_path, suffix):
    spec = ExperimentSpec.from_dict({"name": "rt", "dataset": "ml-100k", "model": "svd", "params": {"reg": 0.05},
                                     "protocol": {"name": "loo-full", "k": 20}, "outputs": {"plots": "embeddings"},
                                     "tune": {"n_trials": 3, "space": {"reg": {"type": "float", "low": 0.01, "high": 1}}}})
    back = ExperimentSpec.from_file(spec.save(tmp_path / f"rt{suffix}"))
    assert back.to_dict() == spec.to_dict() and back.k == 20 and back.outputs["plots"] == ["embeddings"]


def test_replace_merges_params_and_overrides():
    spec = ExperimentSpec.from_dict({"name": "a", "dataset": "ml-100k", "model": "svd", "params": {"epochs": 3}})
    new = spec.replace(params={"reg": 0.2}, logger="mlflow", seed=5, output="out/x", device="cpu")
    assert new.params == {"epochs": 3, "reg": 0.2} and new.logger["kind"] == "mlflow" and new.seed == 5
    assert str(new.output_dir) == "out/x" and new.training["device"] == "cpu"
    assert spec.params == {"epochs": 3}  # the original is unchanged


# ---------------------------------------------------------------------------------------- run
def test_run_matches_the_protocol_and_is_reproducible(make_spec):
    path = make_spec("svd-run", "svd", {"epochs": 4, "embedding_size": 3}, logger="csv",
                     extra="save_model = true\nexport = [\"auto\"]")
    a = run(path)
    b = run(path)
    assert a.metrics == b.metrics  # same file, same numbers
    spec = ExperimentSpec.from_file(path)
    from recforge.experiments.runner import load_dataset

    direct = evaluate(make_model("svd", spec.params), load_dataset(spec), "rating-kfold5", options=FitOptions(seed=0))
    assert a.metrics["RMSE"] == pytest.approx(direct.metric("RMSE"), abs=1e-12)
    assert len(a.result.table) == 6  # five folds and the mean

    out = a.output_dir
    record = json.loads((out / "run.json").read_text())
    assert record["metrics"]["RMSE"] == a.metrics["RMSE"] and record["protocol"] == "rating-kfold5"
    assert record["environment"]["packages"]["numpy"] == np.__version__
    assert pd.read_csv(out / "results.csv")["fold"].tolist()[-1] == "mean"
    from recforge.models.base import Recommender

    saved = Recommender.load(out / "model.npz")
    np.testing.assert_array_equal(saved.item_factors_, a.model.item_factors_)
    assert Recommender.load(out / "export" / "model.npz").name == "svd"  # export writes the one model format
    assert (out / "export" / "embeddings.npz").exists()

    # the log: config, environment, per-fold training curves and the final metrics
    log = read_csv_run(a.log_dir)
    assert log["config"]["model"] == {"name": "svd", "params": {"epochs": 4, "embedding_size": 3}}
    m = log["metrics"]
    for fold in range(1, 6):
        assert m[m["metric"] == f"fold{fold}/train_loss"]["step"].tolist() == [0, 1, 2, 3]
    final = m[m["step"].isna()].set_index("metric")["value"]
    assert final["test/RMSE"] == pytest.approx(a.metrics["RMSE"])
    assert final["time/total_seconds"] > 0


def test_torch_run_logs_epochs_exports_onnx_and_plots(make_spec):
    pytest.importorskip("onnxruntime")
    path = make_spec("mf", "mf-torch", {"epochs": 3, "embedding_size": 4, "batch_size": 128}, protocol="ratio-full",
                     logger="csv", extra='export = ["auto"]\nplots = ["learning_curve", "metric_vs_k"]',
                     training="validation = 0.1\npatience = 5")
    res = run(path)
    assert res.model.name == "mf-torch" and res.result.table["protocol"].iloc[0] == "ratio-full"
    lightning = pd.read_csv(res.log_dir / "lightning" / "metrics.csv")
    assert lightning["epoch"].dropna().astype(int).unique().tolist() == [0, 1, 2]
    assert {"train_loss"} <= set(lightning.columns) and any(c.startswith("val_") for c in lightning.columns)
    meta = json.loads((res.output_dir / "onnx" / "model.json").read_text())
    assert meta["parity_max_abs_diff"]["score"] <= 1e-4
    assert (res.output_dir / "plots" / "learning_curve.png").read_bytes()[:4] == b"\x89PNG"
    mk = pd.read_csv(res.output_dir / "plots" / "metric_vs_k.csv")
    assert sorted(mk["k"].unique()) == [1, 5, 10, 20, 50]


def test_spec_validation_duplicates_are_caught_before_training(make_spec):
    path = make_spec("bad", "svd", {"epochs": -1})
    with pytest.raises(ConfigError, match="epochs"):
        run(path)


# ---------------------------------------------------------------------------------------- compare
def test_paired_tests_match_scipy_exactly():
    rng = np.random.default_rng(0)
    a = rng.random(50)
    b = a + rng.normal(0.05, 0.1, 50)
    c = a.copy()
    a_nan = a.copy()
    a_nan[3] = np.nan
    table = pd.DataFrame({"protocol": "p", "dataset": "d", "model": ["A", "B", "C"], "fold": "mean",
                          "NDCG@10": [a.mean(), b.mean(), c.mean()]})
    res = EvaluationResult(table, {("A", "NDCG@10"): a_nan, ("B", "NDCG@10"): b, ("C", "NDCG@10"): c})
    tests = paired_tests(res).set_index("model")
    ok = np.isfinite(a_nan)
    assert tests.loc["B", "n"] == 49
    assert tests.loc["B", "p_ttest"] == pytest.approx(stats.ttest_rel(b[ok], a[ok]).pvalue)
    assert tests.loc["B", "p_wilcoxon"] == pytest.approx(stats.wilcoxon(b[ok], a[ok]).pvalue)
    assert tests.loc["B", "diff"] == pytest.approx(np.mean(b[ok] - a[ok]))
    assert tests.loc["C", "p_ttest"] == 1.0 and tests.loc["C", "p_wilcoxon"] == 1.0  # identical: no difference
    assert np.isnan(tests.loc["A", "p_ttest"])  # the baseline itself
    with pytest.raises(ConfigError, match="baseline"):
        paired_tests(res, baseline="Z")


def test_compare_runs_on_one_split_and_tests_per_metric(make_spec, tmp_path):
    files = [make_spec("bias", "bias", protocol="loo-full"), make_spec("pop", "popularity", protocol="loo-full"),
             make_spec("rnd", "random", protocol="loo-full")]
    res = compare(files, output=tmp_path / "cmp")
    table = res.table()
    assert table["model"].tolist() == ["bias", "pop", "rnd"]
    assert {"HR@10 p(t)", "NDCG@10 p(W)", "MRR@10 p(t)"} <= set(table.columns)
    t = res.tests
    assert set(t["metric"]) == {"HR@10", "NDCG@10", "MRR@10"}
    assert t["p_ttest"].dropna().between(0, 1).all() and (t["n"] == 40).all()  # one held-out item per user
    # the test compares exactly the per-user numbers each run reported
    pop = res.runs[1].result.per_user[("pop", "NDCG@10")]
    bias = res.runs[0].result.per_user[("bias", "NDCG@10")]
    row = t[(t["metric"] == "NDCG@10") & (t["model"] == "pop")].iloc[0]
    assert not np.allclose(pop, bias)
    assert row["p_ttest"] == pytest.approx(stats.ttest_rel(pop, bias).pvalue)
    assert row["p_wilcoxon"] == pytest.approx(stats.wilcoxon(pop, bias).pvalue)
    md = (tmp_path / "cmp" / "comparison.md").read_text()
    assert "| bias |" in md and "Wilcoxon" in md
    assert len(pd.read_csv(tmp_path / "cmp" / "tests.csv")) == 9


def test_compare_refuses_different_splits(make_spec):
    a = make_spec("a", "bias", protocol="rating-kfold5")
    b = make_spec("b", "svd", protocol="ratio-full")
    with pytest.raises(ConfigError, match="same dataset, protocol"):
        compare([a, b])
    with pytest.raises(ConfigError, match="unique"):
        compare([a, a])


# ---------------------------------------------------------------------------------------- runner pieces
@pytest.mark.parametrize("model, protocol", [("bias", "rating-kfold5"), ("popularity", "loo-full"),
                                             ("lr", "ctr-holdout")])
def test_a_spec_without_protocol_gets_its_tasks_default(model, protocol):
    from recforge.evaluation.protocols import default_protocol
    from recforge.experiments.runner import spec_protocol

    spec = ExperimentSpec.from_dict({"name": "x", "dataset": "ml-100k", "model": model})
    assert spec.protocol is None
    built = make_model(model)
    assert spec_protocol(spec, built).name == protocol == default_protocol(built.task)
    assert spec_protocol(spec.replace(protocol="ratio-full"), built).name == "ratio-full"


def test_epoch_history_is_the_one_reader(make_spec):
    from recforge.experiments.runner import epoch_history
    from recforge.testing.datasets import toy_ratings

    data = toy_ratings()
    svd = make_model("svd", {"epochs": 3, "embedding_size": 2}).fit(data)
    hist = epoch_history(svd)
    assert "train_loss" in hist and len(hist["train_loss"]) == 3
    assert epoch_history(make_model("popularity").fit(data)) is None


def test_run_fits_each_fold_once_with_the_real_class(make_spec):
    from recforge.models.registry import get_model_class

    res = run(make_spec("bias-folds", "bias", protocol="rating-kfold5"))
    assert type(res.model) is get_model_class("bias")
    assert 0 < res.timings["fit_seconds"] <= res.timings["evaluate_seconds"]

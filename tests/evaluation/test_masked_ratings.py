"""rating-masked / rating-masked-users: ratings hidden, rows and signals kept; and the run path on a
real log."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from recforge.config import FitOptions
from recforge.data.simulate import simulate_log
from recforge.errors import ConfigError, DataError
from recforge.evaluation.masked_ratings import observed_ratings
from recforge.evaluation.protocols import evaluate, get_protocol
from recforge.models.registry import make_model
from tests.conftest import has_dataset

REPO = Path(__file__).resolve().parents[2]


def test_rows_protocol_hides_a_fifth_of_the_ratings_and_keeps_the_rows():
    sim = simulate_log(n_users=100, n_items=60, seed=1)
    data = sim.interactions
    [split] = get_protocol("rating-masked").splits(data, seed=3)
    rated = np.isfinite(data.signals["rating"])
    hidden = rated & ~np.isfinite(split.train.signals["rating"])
    assert hidden.sum() == round(0.2 * rated.sum()) == len(split.test)
    assert len(split.train) == len(data)  # every row, with its plays and watch time, stays
    np.testing.assert_array_equal(split.train.signals["plays"], data.signals["plays"])
    np.testing.assert_array_equal(np.sort(split.test.values), np.sort(data.signals["rating"][hidden]))
    assert split.test.explicit and split.info["seed"] == 3
    # another seed hides other rows
    [other] = get_protocol("rating-masked").splits(data, seed=4)
    assert not np.array_equal(other.test.pair_keys(), split.test.pair_keys())


def test_users_protocol_hides_every_rating_of_a_fifth_of_the_raters():
    sim = simulate_log(n_users=100, n_items=60, seed=1)
    data = sim.interactions
    [split] = get_protocol("rating-masked-users").splits(data, seed=0)
    raters = np.unique(data.user_idx[np.isfinite(data.signals["rating"])])
    gone = np.unique(split.test.user_idx)
    assert len(gone) == round(0.2 * len(raters))
    still = np.isfinite(split.train.signals["rating"])
    assert not np.isin(split.train.user_idx[still], gone).any()  # they rate nothing in training


def test_models_without_signals_learn_from_the_observed_ratings_only():
    sim = simulate_log(n_users=100, n_items=60, seed=1)
    opts = FitOptions(seed=0)
    res = evaluate(make_model("bias"), sim.interactions, "rating-masked", options=opts)
    [split] = get_protocol("rating-masked").splits(sim.interactions, seed=0)
    direct = make_model("bias").fit(observed_ratings(split.train), opts)
    t = split.test
    pred = direct.predict(t.users.ids[t.user_idx], t.items.ids[t.item_idx], fallback="mean")
    assert res.table.iloc[0]["RMSE"] == pytest.approx(float(np.sqrt(np.mean((pred - t.values) ** 2))))
    assert res.table.iloc[0]["dataset"].startswith("simulated")  # every row says the log is simulated


def test_bad_uses_are_one_line_errors():
    sim = simulate_log(n_users=40, n_items=30, seed=0)
    no_ratings = sim.interactions.subset(np.arange(len(sim.interactions)))
    no_ratings.signals = {k: v for k, v in no_ratings.signals.items() if k != "rating"}
    no_ratings.signal_kinds = {k: v for k, v in no_ratings.signal_kinds.items() if k != "rating"}
    with pytest.raises(DataError, match="no ratings to hide"):
        evaluate(make_model("bias"), no_ratings, "rating-masked")
    with pytest.raises(ConfigError, match="needs a rating model"):
        evaluate(make_model("popularity"), sim.interactions, "rating-masked")


def test_export_auto_writes_npz_and_onnx_is_refused(tmp_path):
    from recforge.export import auto_format, export_model

    sim = simulate_log(n_users=40, n_items=30, seed=0)
    model = make_model("implicit-to-explicit-linear").fit(sim.interactions)
    assert auto_format(model) == "npz"
    assert [p.name for p in export_model(model, tmp_path / "e")] == ["model.npz"]
    with pytest.raises(ConfigError, match="export it as npz"):
        export_model(model, tmp_path / "o", "onnx")


@pytest.mark.skipif(not has_dataset("myanimelist2020-sample"), reason="myanimelist sample not available")
def test_run_and_evaluate_on_the_real_format(tmp_path):
    """`recforge run configs/myanimelist/implicit-to-explicit.toml` and `recforge evaluate` on the sample."""
    pytest.importorskip("torch")
    from recforge.cli.main import app

    runner = CliRunner()
    res = runner.invoke(app, ["run", str(REPO / "configs" / "myanimelist" / "implicit-to-explicit.toml"),
                              "--output", str(tmp_path / "run"), "--set", "epochs=3", "--format", "json"])
    assert res.exit_code == 0, res.output
    assert '"RMSE"' in res.stdout and (tmp_path / "run" / "model.npz").exists()
    res = runner.invoke(app, ["evaluate", "--dataset", "myanimelist2020-sample", "--model",
                              "implicit-to-explicit-linear", "--protocol", "rating-masked",
                              "--format", "csv"])
    assert res.exit_code == 0, res.output
    assert "rating-masked,myanimelist2020-sample" in res.stdout


def test_a_model_predicting_another_signal_than_the_hidden_rating_is_refused():
    """rating_signal naming a signal other than the one the protocol hides would score the hidden
    ratings against predictions of something else (plays): a one-line error, not a wrong RMSE."""
    sim = simulate_log(n_users=40, n_items=30, seed=1)
    with pytest.raises(ConfigError, match="hides the ratings of 'rating'.*rating_signal 'plays'"):
        evaluate(make_model("implicit-to-explicit-linear", {"rating_signal": "plays"}), sim.interactions,
                 "rating-masked")
    res = evaluate(make_model("implicit-to-explicit-linear", {"rating_signal": "rating"}), sim.interactions,
                   "rating-masked")
    assert np.isfinite(res.table.iloc[0]["RMSE"])


def test_the_rating_signal_as_an_input_signal_is_refused():
    """signals = ["rating"] with the rating found by its kind would feed the target in as a feature."""
    sim = simulate_log(n_users=40, n_items=30, seed=1)
    with pytest.raises(DataError, match="signals.*'rating' is the rating signal"):
        make_model("implicit-to-explicit-linear", {"signals": ("plays", "rating")}).fit(sim.interactions)


def test_protocol_and_model_find_the_rating_signal_by_the_same_rule():
    """One signal of kind rating: both use it; two: both refuse in one line (the model unless told which)."""
    from dataclasses import replace

    from recforge.data.interactions import rating_signal_name

    data = simulate_log(n_users=40, n_items=30, seed=1).interactions
    assert rating_signal_name(data) == "rating"
    two = replace(data, signal_kinds={**data.signal_kinds, "completion": "rating"}, _cache={})
    with pytest.raises(DataError, match=r"several rating signals \(completion, rating\); keep one"):
        evaluate(make_model("bias"), two, "rating-masked")
    with pytest.raises(DataError, match=r"several rating signals \(completion, rating\); set rating_signal"):
        make_model("implicit-to-explicit-linear").fit(two)
    told = make_model("implicit-to-explicit-linear", {"rating_signal": "rating"}).fit(two)
    assert told.rating_signal_ == "rating"

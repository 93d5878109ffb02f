"""ExperimentSpec as the one config schema: partial files, flags (replace) and --set (with_sets)."""

from __future__ import annotations

import pytest

from recforge.errors import ConfigError
from recforge.experiments import ExperimentSpec


def full() -> ExperimentSpec:
    return ExperimentSpec.from_dict({"name": "a", "dataset": "ml-100k", "model": "svd", "params": {"epochs": 3},
                                     "protocol": {"name": "rating-u1", "k": 5}, "training": {"threads": 1}})


def test_partial_files_parse_only_when_asked():
    with pytest.raises(ConfigError, match="no model"):
        ExperimentSpec.from_dict({"dataset": "ml-100k"})
    spec = ExperimentSpec.from_dict({"dataset": "ml-100k"}, require=())
    assert spec.model == "" and spec.dataset == {"name": "ml-100k"}
    assert "model" not in spec.to_dict()
    assert ExperimentSpec.from_dict({}, require=()).dataset == {}


def test_a_file_path_is_a_dataset_path():
    assert ExperimentSpec.from_dict({"dataset": "logs/plays.csv"}, require=()).dataset == {"path": "logs/plays.csv"}


@pytest.mark.parametrize("raw, message", [
    ({"dataset": {"name": "x", "user_column": "u"}}, r"\[dataset\]: unknown key 'user_column'; did you mean 'user_col'"),
    ({"protocol": {"name": "loo-full", "kk": 3}}, r"\[protocol\]: unknown key 'kk'; did you mean 'k'"),
    ({"logger": {"kind": "csv", "projet": "p"}}, "did you mean 'project'"),
    ({"split": {"methd": "loo"}}, "did you mean 'method'"),
    ({"batch": {"databse": "x.db"}}, "did you mean 'database'"),
    ({"tune": {"n_trails": 3}}, "did you mean 'n_trials'"),
    ({"trainig": {}}, "unknown top-level key 'trainig'; did you mean 'training'"),
])
def test_every_table_names_the_nearest_valid_key(raw, message):
    with pytest.raises(ConfigError, match=message):
        ExperimentSpec.from_dict(raw, require=())


def test_replace_with_another_model_drops_the_old_params():
    spec = full().replace(model="bias", params={"reg_user": 1.0})
    assert spec.model == "bias" and spec.params == {"reg_user": 1.0}
    assert full().replace(model="svd").params == {"epochs": 3}  # same model: params kept


def test_with_sets_applies_plain_and_dotted_keys():
    spec = full().with_sets({"reg": 0.2, "model.params.lr": 0.01, "params.epochs": 5, "training.threads": 2,
                             "protocol.k": 20, "dataset.rating_col": "rating", "tune.space.reg.low": 0.1,
                             "serve.default_k": 3})
    assert spec.params == {"epochs": 5, "reg": 0.2, "lr": 0.01}
    assert spec.training == {"threads": 2} and spec.k == 20 and spec.protocol == "rating-u1"
    assert spec.dataset == {"name": "ml-100k", "rating_col": "rating"}
    assert spec.tune == {"space": {"reg": {"low": 0.1}}} and spec.serve == {"default_k": 3}
    assert full().with_sets({"model.name": "bias"}).params == {}


@pytest.mark.parametrize("sets, message", [
    ({"trainig.threads": 1}, "--set trainig.threads: unknown table 'trainig'; did you mean 'training'"),
    ({"training.thread": 1}, "unknown key of \\[training\\] 'thread'; did you mean 'threads'"),
])
def test_with_sets_rejects_unknown_keys(sets, message):
    with pytest.raises(ConfigError, match=message):
        full().with_sets(sets)


def test_run_specs_round_trip_unchanged():
    spec = full()
    assert ExperimentSpec.from_dict(spec.to_dict()) == spec
    assert set(spec.to_dict()) == {"name", "seed", "dataset", "protocol", "model", "training", "logger"}

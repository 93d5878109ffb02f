"""Every factorisation model passes the shared conformance suite."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import pytest

from recforge.models.factorization.als import ALS
from recforge.models.factorization.bpr import BPR
from recforge.models.factorization.ials import ImplicitALS
from recforge.models.factorization.nmf import NMF
from recforge.models.factorization.pure_svd import PureSVD
from recforge.models.factorization.sgd import BiasedMF, SVDpp
from recforge.testing.conformance import RecommenderConformance

_COMMON_INVALID = [{"embedding_size": 0}, {"embedding_size": -3}, {"epochs": 0}]


class TestBiasedMF(RecommenderConformance):
    model_class = BiasedMF
    config = {"embedding_size": 4, "epochs": 5}
    changes = {
        "embedding_size": 6,
        "epochs": 2,
        "learning_rate": 0.003,
        "reg": 0.5,
        "reg_bias": 0.5,
        "init_std": 0.3,
        "learning_rate_decay": 0.5,
        "init": "svd",
        "reg_scale": 3.0,
    }
    unchanged: ClassVar[dict[str, str]] = {}  # every hyperparameter changes the scores
    invalid = _COMMON_INVALID + [
        {"reg_scale": 0.0},
        {"reg_scale": "big"},
        {"reg_scale": True},
        {"init": "zeros"},
        {"reg": -0.1},
        {"reg_bias": -1.0},
        {"learning_rate": 0.0},
        {"learning_rate": 1.5},
        {"init_std": -0.1},
        {"learning_rate_decay": 0.0},
        {"learning_rate_decay": 1.5},
    ]


class TestSVDpp(RecommenderConformance):
    model_class = SVDpp
    config = {"embedding_size": 4, "epochs": 5}
    changes = {
        "embedding_size": 6,
        "epochs": 2,
        "learning_rate": 0.003,
        "reg": 0.5,
        "reg_implicit": 2.0,
        "reg_bias": 0.5,
        "init_std": 0.3,
        "learning_rate_decay": 0.5,
        "init": "svd",
        "reg_scale": 3.0,
    }
    unchanged: ClassVar[dict[str, str]] = {}  # every hyperparameter changes the scores
    invalid = _COMMON_INVALID + [
        {"reg": -0.1},
        {"reg_implicit": -1.0},
        {"reg_scale": -1.0},
        {"reg_bias": -1.0},
        {"learning_rate": 0.0},
        {"learning_rate_decay": 2.0},
    ]


class TestPureSVD(RecommenderConformance):
    model_class = PureSVD
    config = {"embedding_size": 3}
    changes = {"embedding_size": 2}
    unchanged: ClassVar[dict[str, str]] = {
        "binarize": "the toy data's values are all 1 already (test_pure_svd covers rated data)",
        "solver": "small matrices are decomposed densely whatever the solver (exact either way)",
    }
    invalid = [{"embedding_size": 0}, {"solver": "lanczos"}]


class TestNMF(RecommenderConformance):
    model_class = NMF
    config = {"embedding_size": 4, "epochs": 10}
    changes = {
        "embedding_size": 6,
        "epochs": 3,
        "reg_user": 0.5,
        "reg_item": 0.5,
        "init_low": 0.5,
        "init_high": 3.0,
    }
    unchanged: ClassVar[dict[str, str]] = {}  # every hyperparameter changes the scores
    invalid = _COMMON_INVALID + [
        {"reg_user": -0.1},
        {"reg_item": -1.0},
        {"init_low": -0.5},
        {"init_low": 1.0, "init_high": 0.5},
    ]


class TestALS(RecommenderConformance):
    model_class = ALS
    config = {"embedding_size": 4, "epochs": 3}
    changes = {"embedding_size": 6, "epochs": 1, "reg": 1.0, "use_bias": False, "init_std": 0.5}
    unchanged: ClassVar[dict[str, str]] = {}  # every hyperparameter changes the scores
    invalid = _COMMON_INVALID + [{"reg": -0.1}, {"reg": 0.0}, {"init_std": -1.0}]


class TestImplicitALS(RecommenderConformance):
    model_class = ImplicitALS
    config = {"embedding_size": 4, "epochs": 3, "reg": 1.0}
    changes = {
        "embedding_size": 6,
        "epochs": 1,
        "reg": 0.05,
        "alpha": 1.0,
        "solver": "cholesky",
        "cg_steps": 1,
        "init_std": 0.5,
    }
    unchanged: ClassVar[dict[str, str]] = {}  # every hyperparameter changes the scores
    invalid = _COMMON_INVALID + [
        {"reg": -0.05},
        {"reg": 0.0},
        {"alpha": -1.0},
        {"cg_steps": 0},
        {"solver": "lu"},
        {"init_std": -0.1},
    ]


class TestBPR(RecommenderConformance):
    checkerboard_config = {"epochs": 150, "learning_rate": 0.05}
    model_class = BPR
    config = {"embedding_size": 4, "epochs": 5, "pair_sampling": "pairs"}
    # pair_sampling is "pairs" in the base config, so parallel="blocks" alone is valid
    changes = {
        "embedding_size": 6,
        "epochs": 2,
        "learning_rate": 0.2,
        "learning_rate_decay": 0.5,
        "reg": 0.2,
        "reg_bias": 0.5,
        "use_bias": False,
        "negative_sampling": "popularity",
        "init_std": 0.5,
        "n_candidates": 1,
        "pair_sampling": "users",
        "parallel": "blocks",
        "collisions": "skip",
        "loss": "hinge",
    }
    unchanged: ClassVar[dict[str, str]] = {"margin": "used only with loss='hinge' (test_hinge covers it)"}
    invalid = _COMMON_INVALID + [
        {"loss": "warp"},
        {"margin": 0.0},
        {"reg": -0.01},
        {"reg_bias": -1.0},
        {"learning_rate": 0.0},
        {"learning_rate_decay": 0.0},
        {"negative_sampling": "hard"},
        {"init_std": -1.0},
        {"n_candidates": 0},
        {"pair_sampling": "users", "parallel": "blocks"},
    ]


@pytest.mark.parametrize(
    "case", [TestBiasedMF, TestSVDpp, TestNMF, TestALS, TestImplicitALS, TestBPR], ids=lambda c: c.__name__
)
def test_every_hyperparameter_is_declared_changing_or_not(case):
    fields = {f.name for f in dataclasses.fields(case.model_class.config_class)}
    assert set(case.changes) | set(case.unchanged) == fields
    assert not set(case.changes) & set(case.unchanged)

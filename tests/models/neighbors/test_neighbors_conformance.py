from typing import ClassVar

from recforge.models.neighbors.ease import EASE
from recforge.models.neighbors.implicit_knn import ItemKNNImplicit, UserKNNImplicit
from recforge.models.neighbors.knn import ItemKNN, KNNBaseline, UserKNN
from recforge.models.neighbors.slim import SLIM
from recforge.testing.conformance import RecommenderConformance

_BAD_KNN = [
    {"n_neighbors": 0},
    {"n_neighbors": -3},
    {"min_k": -1},
    {"min_k": 50, "n_neighbors": 10},
    {"shrinkage": -1.0},
    {"similarity": "jaccard"},
    {"variant": "median"},
    {"prune": 5, "n_neighbors": 10},
    {"reg_user": -1.0},
    {"baseline_epochs": 0},
]
_NO_BASELINE = {
    "reg_user": "fits the baseline biases, used only by variant='baseline' and pearson_baseline",
    "reg_item": "fits the baseline biases, used only by variant='baseline' and pearson_baseline",
    "baseline_epochs": "fits the baseline biases, used only by variant='baseline' and pearson_baseline",
}
_ONES = "the suite's ranking data is 0/1 (the implicit-feedback rule), so binarising changes nothing"
_NOT_BM25 = "BM25 constant, used only by weighting='bm25'"


class TestItemKNN(RecommenderConformance):
    model_class = ItemKNN
    config = {"n_neighbors": 10, "prune": 20}
    changes = {
        "n_neighbors": 2,
        "similarity": "cosine",
        "variant": "basic",
        "min_k": 5,
        "min_support": 4,
        "shrinkage": 10.0,
        "prune": 10,
    }
    unchanged: ClassVar[dict[str, str]] = _NO_BASELINE
    invalid = _BAD_KNN


class TestUserKNN(RecommenderConformance):
    model_class = UserKNN
    # min_support=5 leaves some (user, item) pairs with fewer than 10 neighbours, so min_k can bite
    config = {"n_neighbors": 10, "prune": None, "similarity": "msd", "variant": "zscore", "min_support": 5}
    changes = {"n_neighbors": 3, "similarity": "adjusted_cosine", "variant": "means", "min_k": 10,
               "min_support": 1, "shrinkage": 10.0, "prune": 10}
    unchanged: ClassVar[dict[str, str]] = _NO_BASELINE
    invalid = _BAD_KNN


class TestKNNBaseline(RecommenderConformance):
    model_class = KNNBaseline
    config = {"n_neighbors": 10, "shrinkage": 5.0}
    changes = {
        "reg_user": 0.0,
        "reg_item": 0.0,
        "baseline_epochs": 1,
        "user_based": True,
        "shrinkage": 100.0,
        "similarity": "pearson",
        "n_neighbors": 2,
        "min_k": 8,
        "min_support": 4,
        "variant": "means",
        "prune": 10,
    }
    unchanged: ClassVar[dict[str, str]] = {}
    invalid = _BAD_KNN


class TestItemKNNImplicit(RecommenderConformance):
    model_class = ItemKNNImplicit
    config = {"n_neighbors": 5}
    changes = {"n_neighbors": 2, "weighting": "bm25", "neighbors_of": "history"}
    unchanged: ClassVar[dict[str, str]] = {"bm25_k1": _NOT_BM25, "bm25_b": _NOT_BM25, "binarize": _ONES}
    invalid = [{"n_neighbors": 0}, {"weighting": "idf"}, {"bm25_b": 1.5}, {"bm25_k1": 0.0},
               {"neighbors_of": "both"}]


class TestItemKNNImplicitTFIDF(RecommenderConformance):
    model_class = ItemKNNImplicit
    config = {"n_neighbors": 5, "weighting": "tfidf"}
    changes = {"n_neighbors": 2, "weighting": "none", "neighbors_of": "history"}
    unchanged: ClassVar[dict[str, str]] = {"bm25_k1": _NOT_BM25, "bm25_b": _NOT_BM25, "binarize": _ONES}


class TestUserKNNImplicit(RecommenderConformance):
    model_class = UserKNNImplicit
    config = {"n_neighbors": 5}
    changes = {"n_neighbors": 2, "weighting": "tfidf"}
    unchanged: ClassVar[dict[str, str]] = {"bm25_k1": _NOT_BM25, "bm25_b": _NOT_BM25, "binarize": _ONES}
    invalid = [{"n_neighbors": -1}, {"weighting": "idf"}]


class TestEASE(RecommenderConformance):
    model_class = EASE
    config = {"reg": 10.0}
    changes = {"reg": 1.0}
    unchanged: ClassVar[dict[str, str]] = {
        "max_items": "a guard: above it fit refuses, below it the weights are the same",
        "max_memory": "a guard: above it fit refuses, below it the weights are the same",
        "binarize": _ONES,
    }
    invalid = [{"reg": 0.0}, {"reg": -5.0}, {"max_items": 0}, {"max_memory": 0.0}]
    atol = 1e-5


class TestSLIM(RecommenderConformance):
    model_class = SLIM
    config = {"reg_l1": 0.1, "reg_l2": 1.0, "n_neighbors": 10}
    changes = {"reg_l1": 2.0, "reg_l2": 20.0, "n_neighbors": 3, "max_iter": 1, "tol": 0.5}
    unchanged: ClassVar[dict[str, str]] = {"binarize": _ONES}
    invalid = [{"reg_l1": -1.0}, {"reg_l2": -0.1}, {"reg_l1": 0.0, "reg_l2": 0.0}, {"n_neighbors": 0},
               {"max_iter": 0}, {"tol": 0.0}]
    atol = 1e-5


def test_every_field_is_declared_changing_or_not():
    """``changes`` and ``unchanged`` together name every config field (what the suite will enforce)."""
    import dataclasses

    classes = [TestItemKNN, TestUserKNN, TestKNNBaseline, TestItemKNNImplicit, TestItemKNNImplicitTFIDF,
               TestUserKNNImplicit, TestEASE, TestSLIM]
    for cls in classes:
        fields = {f.name for f in dataclasses.fields(cls.model_class.config_class)}
        declared = set(cls.changes) | set(cls.unchanged)
        assert declared == fields, (cls.__name__, sorted(fields - declared), sorted(declared - fields))
        assert not set(cls.changes) & set(cls.unchanged), cls.__name__

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
    invalid = _BAD_KNN


class TestUserKNN(RecommenderConformance):
    model_class = UserKNN
    config = {"n_neighbors": 10, "prune": None, "similarity": "msd", "variant": "zscore"}
    changes = {"n_neighbors": 3, "similarity": "adjusted_cosine", "variant": "means"}
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
    }
    invalid = _BAD_KNN


class TestItemKNNImplicit(RecommenderConformance):
    model_class = ItemKNNImplicit
    config = {"n_neighbors": 5}
    changes = {"n_neighbors": 2, "weighting": "bm25", "neighbors_of": "history"}
    invalid = [{"n_neighbors": 0}, {"weighting": "idf"}, {"bm25_b": 1.5}, {"bm25_k1": 0.0}, {"neighbors_of": "both"}]


class TestItemKNNImplicitTFIDF(RecommenderConformance):
    model_class = ItemKNNImplicit
    config = {"n_neighbors": 5, "weighting": "tfidf"}
    changes = {"n_neighbors": 2}


class TestUserKNNImplicit(RecommenderConformance):
    model_class = UserKNNImplicit
    config = {"n_neighbors": 5}
    changes = {"n_neighbors": 2, "weighting": "tfidf"}
    invalid = [{"n_neighbors": -1}, {"weighting": "idf"}]


class TestEASE(RecommenderConformance):
    model_class = EASE
    config = {"reg": 10.0}
    changes = {"reg": 1.0}
    invalid = [{"reg": 0.0}, {"reg": -5.0}, {"max_items": 0}, {"max_items": 50_000}]
    atol = 1e-5


class TestSLIM(RecommenderConformance):
    model_class = SLIM
    config = {"reg_l1": 0.1, "reg_l2": 1.0, "n_neighbors": 10}
    changes = {"reg_l1": 2.0, "reg_l2": 20.0, "n_neighbors": 3, "max_iter": 1}
    invalid = [{"reg_l1": -1.0}, {"reg_l2": -0.1}, {"reg_l1": 0.0, "reg_l2": 0.0}, {"n_neighbors": 0}, {"max_iter": 0},
               {"tol": 0.0}]
    atol = 1e-5

"""Knowledge-based recommender: conformance, exact utilities, constraints and minimal relaxation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recforge.data.interactions import Interactions
from recforge.data.vocabulary import Vocabulary
from recforge.errors import ConfigError, DataError
from recforge.models.content.knowledge import Constraints, KnowledgeBased
from recforge.testing.conformance import RecommenderConformance
from recforge.testing.feature_datasets import genre_ratings


class TestKnowledgeConformance(RecommenderConformance):
    model_class = KnowledgeBased
    config = {}
    changes = {"utility": "popularity", "shrinkage": 0.0, "weights": (1.0, 0.0, 1.0), "year_column": "nope"}
    unchanged = {"genre_columns": "which columns hold genres: constraint matching only, not the utility",
                 "separator": "splits genre cells: constraint matching only, not the utility"}
    invalid = [{"shrinkage": -1.0}, {"weights": (1.0, 1.0)}, {"weights": (0.0, 0.0, 0.0)}, {"utility": "x"}]

    def make_data(self) -> Interactions:
        return genre_ratings(n_users=30, n_items=25, seed=3, string_ids=self.string_ids)

    def test_string_ids(self) -> None:
        data = genre_ratings(n_users=20, n_items=15, seed=5, string_ids=True)
        ids, _ = self.fit(data=data).recommend("u1", k=3)
        assert all(isinstance(x, str) and x.startswith("i") for x in ids.tolist())


def _catalogue() -> Interactions:
    """Five movies with known genres, years and ratings (global mean 3.5)."""
    feats = pd.DataFrame(
        {"genres": ["Action", "Action|Sci-Fi", "Comedy", "Drama", "Sci-Fi"],
         "year": [1980, 1995, 1999, 2001, 1990]},
        index=pd.Index(["m1", "m2", "m3", "m4", "m5"], name="item_id"),
    )
    df = pd.DataFrame({
        "user_id": [1, 2, 3, 1, 2, 3, 1, 2],
        "item_id": ["m1", "m1", "m1", "m2", "m2", "m3", "m4", "m4"],
        "rating": [5.0, 4.0, 3.0, 5.0, 5.0, 1.0, 2.0, 3.0],
    })
    items = Vocabulary(feats.index.to_numpy(), "item")  # m5 has no ratings
    return Interactions.from_dataframe(df, rating="rating", items=items).with_features(item_features=feats)


def test_exact_shrunk_means_and_utilities():
    data = _catalogue()
    m = KnowledgeBased(utility="rating", shrinkage=2.0).fit(data)
    mu = 3.5
    expected = {"m1": (12 + 2 * mu) / 5, "m2": (10 + 2 * mu) / 4, "m3": (1 + 2 * mu) / 3,
                "m4": (5 + 2 * mu) / 4, "m5": mu}
    np.testing.assert_allclose(m.score([1] * 5, list(expected)), list(expected.values()))
    assert m.genre_names_.tolist() == ["Action", "Comedy", "Drama", "Sci-Fi"]
    pop = KnowledgeBased(utility="popularity").fit(data)
    np.testing.assert_allclose(pop.utility_, [3, 2, 1, 2, 0])
    rec = KnowledgeBased(utility="recency").fit(data)
    assert rec.recommend_for_constraints({}, k=5).item_ids.tolist() == ["m4", "m3", "m2", "m5", "m1"]
    # weighted = w1 * shrunk + w2 * z(log1p count) + w3 * z(year)
    w = KnowledgeBased(weights=(1.0, 0.5, 0.25), shrinkage=2.0).fit(data)
    z = lambda x: (x - x.mean()) / x.std()  # noqa: E731
    want = m.utility_ + 0.5 * z(np.log1p(pop.utility_)) + 0.25 * z(np.array([1980, 1995, 1999, 2001, 1990.0]))
    np.testing.assert_allclose(w.utility_, want)
    # predict is the shrunk rating whatever the ranking utility; unknown items get the global mean
    np.testing.assert_allclose(w.predict([1] * 5, list(expected)), list(expected.values()))
    np.testing.assert_allclose(w.predict([1, 99], ["nope", "m1"], fallback="mean"), [mu, expected["m1"]])


def test_constraints_filter_and_rank():
    m = KnowledgeBased(utility="rating", shrinkage=0.0).fit(_catalogue())
    res = m.recommend_for_constraints({"genres": ["sci-fi"], "year_min": 1991}, k=5)
    assert res.item_ids.tolist() == ["m2"] and res.relaxed == () and res.n_matching == 1
    res = m.recommend_for_constraints(Constraints(exclude_genres=("Action",), min_ratings=1), k=5)
    assert res.item_ids.tolist() == ["m4", "m3"]  # means 2.5 and 1.0
    res = m.recommend_for_constraints({"min_avg_rating": 4.0}, k=5, exclude=["m2"])
    assert res.item_ids.tolist() == ["m1"]
    assert m.satisfying({"genres": "Drama"}).tolist() == [False, False, False, True, False]


def test_minimal_relaxation_reports_what_was_dropped():
    m = KnowledgeBased(utility="rating", shrinkage=0.0).fit(_catalogue())
    # no Comedy after 2000: dropping either constraint works; dropping year_min keeps m3 only, dropping
    # genres keeps m4 only, so the tie goes to the first listed (genres)
    res = m.recommend_for_constraints({"genres": ["Comedy"], "year_min": 2000}, k=3)
    assert res.relaxed == ("genres",) and res.item_ids.tolist() == ["m4"]
    # a Drama from 2000 on rated >= 4 by >= 3 users: no single drop helps, two do: {genres, year_min}
    # leaves m1 and {min_avg_rating, min_ratings} leaves m4; equal sizes, so declaration order wins
    res = m.recommend_for_constraints({"genres": ["Drama"], "min_avg_rating": 4.0, "min_ratings": 3,
                                       "year_min": 2000}, k=3)
    assert res.relaxed == ("genres", "year_min") and res.item_ids.tolist() == ["m1"]
    # min_results asks for more items: more is relaxed
    res = m.recommend_for_constraints({"genres": ["Sci-Fi"], "year_min": 1991}, k=3, min_results=2)
    assert res.relaxed in (("genres",), ("year_min",)) and res.n_matching >= 2


def test_bad_constraints_rejected():
    m = KnowledgeBased().fit(_catalogue())
    with pytest.raises(DataError, match="Western"):
        m.recommend_for_constraints({"genres": ["Western"]})
    with pytest.raises(ConfigError, match="colour"):
        m.recommend_for_constraints({"colour": "red"})
    with pytest.raises(ConfigError):
        m.recommend_for_constraints({}, k=0)


def test_without_features_uses_first_interaction_year():
    df = pd.DataFrame({"user_id": [1, 2, 2], "item_id": [10, 10, 20], "rating": [4.0, 2.0, 5.0],
                       "timestamp": [0, 10, 400_000_000]})
    data = Interactions.from_dataframe(df, rating="rating", timestamp="timestamp")
    m = KnowledgeBased(utility="recency").fit(data)
    np.testing.assert_allclose(m.item_year_, [1970, 1982])
    assert m.recommend_for_constraints({}, k=2).item_ids.tolist() == [20, 10]


@pytest.mark.slow
def test_ml100k_constraints(ml100k):
    data = ml100k.interactions
    m = KnowledgeBased().fit(data)
    res = m.recommend_for_constraints({"genres": ["Sci-Fi"], "year_min": 1990, "min_ratings": 50}, k=10)
    feats = data.item_features.loc[res.item_ids]
    assert res.relaxed == () and len(res.item_ids) == 10
    assert (feats["Sci-Fi"] == 1).all() and (feats["year"] >= 1990).all()
    assert (data.item_counts()[data.items.index(res.item_ids)] >= 50).all()
    res = m.recommend_for_constraints({"genres": ["Western"], "exclude_genres": ["Western"]}, k=5)
    assert len(res.relaxed) == 1 and len(res.item_ids) == 5

"""The conformance suites' own checks can fail: run them on small models built to pass or to break them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pytest

from recforge.config import FitOptions, ModelConfig
from recforge.data.interactions import Interactions
from recforge.models.base import Recommender
from recforge.testing.conformance import RecommenderConformance


@dataclass(frozen=True)
class CooccurrenceConfig(ModelConfig):
    power: float = 1.0
    """Exponent on the co-occurrence counts."""
    verbose: bool = False
    """Print nothing either way (a field that cannot change the output)."""


class Cooccurrence(Recommender):
    """Item-item co-occurrence: a user's score of item j is the sum over its items i of C[i, j]^power."""

    name = "cooccurrence-test"
    task = "ranking"
    config_class = CooccurrenceConfig
    scores_history = True
    has_embeddings = True

    def _fit(self, data: Interactions, options: FitOptions) -> None:
        x = self.seen_.toarray()
        cooc = (x.T @ x) ** self.config.power
        np.fill_diagonal(cooc, 0.0)
        self.cooc_ = cooc

    def _score_users(self, u: np.ndarray) -> np.ndarray:
        return self.seen_[u].toarray() @ self.cooc_

    def _score_history(self, item_idx: np.ndarray, values: np.ndarray | None, context: Any) -> np.ndarray:
        row = np.zeros(len(self.items_))
        np.add.at(row, item_idx, 1.0)
        return row @ self.cooc_

    def embeddings(self) -> tuple[np.ndarray, np.ndarray]:
        return self.seen_.toarray().astype(np.float64), self.cooc_


class ReversedHistory(Cooccurrence):
    """Breaks the capability: its history list is the worst items, not the best."""

    def recommend_for_history(self, item_ids: Any, k: int = 10, values: Any = None, **kw: Any):
        scores = self.scores_for_history(item_ids, values)
        order = np.argsort(scores, kind="stable")[:k]
        return self.items_.ids[order], scores[order]


class ShortEmbeddings(Cooccurrence):
    """Breaks the capability: one item vector missing."""

    def embeddings(self) -> tuple[np.ndarray, np.ndarray]:
        users, items = super().embeddings()
        return users, items[:-1]


class PopularOnly(Cooccurrence):
    """Breaks the checkerboard: every user gets the same scores."""

    def _score_users(self, u: np.ndarray) -> np.ndarray:
        return np.repeat(np.asarray(self.seen_.sum(axis=0)), len(u), axis=0)


class CooccurrenceChecks(RecommenderConformance):
    """Not collected (no ``Test`` prefix): the checks are called one by one below."""

    model_class: ClassVar[type[Recommender]] = Cooccurrence
    changes: ClassVar[dict[str, Any]] = {"power": 2.0}
    unchanged: ClassVar[dict[str, str]] = {"verbose": "prints nothing"}


def checks(model_class: type[Recommender], **attrs: Any) -> CooccurrenceChecks:
    cls = type("Checks", (CooccurrenceChecks,), {"model_class": model_class, **attrs})
    return cls()


def test_a_well_behaved_model_passes_the_new_checks():
    suite = checks(Cooccurrence)
    suite.test_every_config_field_is_audited()
    suite.test_unknown_hyperparameter_rejected()
    suite.test_clone_is_unfitted_with_equal_config()
    suite.test_checkerboard_known_answer()
    suite.test_feedback_rule()
    suite.test_knows_user_agrees_with_training_data()
    suite.test_history_scores_agree_with_history_recommendations()
    suite.test_embeddings_match_the_vocabularies()
    suite.test_undeclared_capabilities_raise()
    suite.test_every_hyperparameter_changes_output()


def test_audit_names_the_missing_and_the_extra_fields():
    suite = checks(Cooccurrence, unchanged={"verbos": "typo"})
    with pytest.raises(AssertionError) as err:
        suite.test_every_config_field_is_audited()
    assert "neither `changes` nor `unchanged`: ['verbose']" in str(err.value)
    assert "not fields of CooccurrenceConfig: ['verbos']" in str(err.value)
    with pytest.raises(AssertionError, match="without a reason: \\['verbose'\\]"):
        checks(Cooccurrence, unchanged={"verbose": " "}).test_every_config_field_is_audited()


def test_unknown_hyperparameter_suggests_the_nearest_field():
    with pytest.raises(Exception, match="did you mean 'verbose'"):
        Cooccurrence(verbos=True)


def test_history_recommendations_must_follow_the_history_scores():
    with pytest.raises(AssertionError):
        checks(ReversedHistory).test_history_scores_agree_with_history_recommendations()


def test_embeddings_must_cover_every_item():
    with pytest.raises(AssertionError):
        checks(ShortEmbeddings).test_embeddings_match_the_vocabularies()


def test_checkerboard_fails_a_model_that_ignores_the_user():
    with pytest.raises(AssertionError, match="own-block unseen item"):
        checks(PopularOnly).test_checkerboard_known_answer()


def test_checkerboard_opt_out_needs_a_reason():
    with pytest.raises(pytest.skip.Exception, match="exempt: scores ignore the user"):
        checks(PopularOnly, checkerboard_exempt="scores ignore the user").test_checkerboard_known_answer()


def test_undeclared_capability_that_answers_is_caught():
    class Undeclared(Cooccurrence):
        has_embeddings = False

    with pytest.raises(pytest.fail.Exception, match="DID NOT RAISE"):
        checks(Undeclared).test_undeclared_capabilities_raise()

"""The conformance suite every recforge user-item model inherits.

Usage, in a test module::

    class TestBias(RecommenderConformance):
        model_class = Bias
        config = {"epochs": 3}
        changes = {"reg_user": 0.0, "reg_item": 0.0}
        unchanged = {"epochs": "converges before 3 epochs on the toy data"}
        invalid = [{"reg_user": -1.0}]

On top of :class:`~recforge.testing.estimator_conformance.EstimatorConformance` (construction,
config round-trip and audit, validation, clone, save/load, determinism, refit from scratch, every
hyperparameter changes the output) it checks fit on toy data, unknown ids, empty inputs, batch ==
single, ``exclude_seen`` and ``candidates``, string ids, a checkerboard known answer for ranking
models, that a rating model refuses implicit or constant data in its own ``fit``, and that the
declared capabilities hold: ``feedback``, ``scores_history``,
``has_embeddings``, ``folds_in`` and ``knows_user``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pytest

from recforge.data.interactions import Interactions
from recforge.errors import ConfigError, DataError
from recforge.models.base import Recommender
from recforge.testing.datasets import checkerboard, toy_ratings
from recforge.testing.estimator_conformance import EstimatorConformance

__all__ = ["RecommenderConformance"]

_UNKNOWN = ("no-such-id", -987654)


def _real(ids: np.ndarray) -> set[Any]:
    """The ids of a recommendation row without its padding."""
    return {x for x in ids.tolist() if x not in (-1, "")}


def _as_ratings(data: Interactions) -> Interactions:
    """The same rows as explicit ratings 1-5 (for the implicit-feedback rule on implicit test data)."""
    out = data.subset(np.arange(len(data)))
    out.values = (1 + np.arange(len(data)) % 5).astype(np.float32)
    out.explicit = True
    return out


class RecommenderConformance(EstimatorConformance):
    """Shared behaviour tests of user-item models; subclass and set the class attributes.

    Besides those of :class:`EstimatorConformance`:

    - ``string_ids``: run the checks on string raw ids.
    - ``checkerboard_exempt``: why the model cannot learn the checkerboard (e.g. "popularity
      ignores who the user is"); empty for ranking models, which must pass it.
    - ``checkerboard_config``: hyperparameters that replace ``config`` for the checkerboard (a
      model may need more epochs than the quick checks use).
    """

    model_class: ClassVar[type[Recommender]]
    string_ids: ClassVar[bool] = False
    checkerboard_exempt: ClassVar[str] = ""
    checkerboard_config: ClassVar[dict[str, Any]] = {}

    # -- hooks ----------------------------------------------------------------------
    def make_data(self) -> Interactions:
        """Toy ratings; ``fit`` itself turns them into implicit feedback for ``feedback == "implicit"``
        models, and ranking models that take values as given (``"any"``) get implicit data."""
        data = toy_ratings(n_users=30, n_items=25, seed=3, string_ids=self.string_ids)
        if self.model_class.task != "rating" and self.model_class.feedback == "any":
            return data.to_implicit()
        return data

    def outputs(self, model: Recommender, data: Interactions) -> np.ndarray:
        users = data.users.ids[:8]
        items = data.items.ids[:8]
        uu, ii = np.meshgrid(users, items, indexing="ij")
        return model.score(uu.ravel(), ii.ravel())

    def call_unfitted(self, model: Recommender) -> None:
        model.recommend(1, k=5)

    def check_loaded(self, model: Recommender, again: Recommender, data: Interactions) -> None:
        a, _ = model.recommend(data.users.ids[:4], k=5)
        b, _ = again.recommend(data.users.ids[:4], k=5)
        np.testing.assert_array_equal(a, b)

    # -- fitting --------------------------------------------------------------------
    def test_empty_training_data_rejected(self) -> None:
        data = self.make_data()
        with pytest.raises(DataError):
            self.make_model().fit(data.subset(np.zeros(len(data), bool)))

    def test_scores_finite_for_known_pairs(self) -> None:
        data = self.make_data()
        model = self.fit(data=data)
        s = model.score(data.users.ids[data.user_idx[:50]], data.items.ids[data.item_idx[:50]])
        assert np.isfinite(s).all()

    # -- raw ids and unknowns ---------------------------------------------------------
    def test_unknown_ids_give_nan(self) -> None:
        data = self.make_data()
        model = self.fit(data=data)
        known_u, known_i = data.users.ids[0], data.items.ids[0]
        unknown = _UNKNOWN[0] if self.string_ids else _UNKNOWN[1]
        s = model.score([unknown, known_u, unknown], [known_i, unknown, unknown])
        assert np.isnan(s).all()
        assert model.n_impossible_last_ == 3
        p = model.predict([unknown], [known_i], fallback="mean")
        assert np.isfinite(p).all()

    def test_unknown_user_recommend_falls_back(self) -> None:
        data = self.make_data()
        model = self.fit(data=data)
        ids, scores = model.recommend(_UNKNOWN[0] if self.string_ids else _UNKNOWN[1], k=5)
        assert len(ids) == 5 and np.isnan(scores).all()
        assert set(ids.tolist()) <= set(data.items.ids.tolist())

    def test_empty_inputs(self) -> None:
        model = self.fit()
        assert model.score([], []).shape == (0,)
        ids, scores = model.recommend(np.asarray([], dtype=np.int64), k=3)
        assert ids.shape == (0, 3) and scores.shape == (0, 3)

    def test_invalid_k_rejected(self) -> None:
        model = self.fit()
        for k in (0, -1):
            with pytest.raises(ConfigError):
                model.recommend(self.make_data().users.ids[0], k=k)

    # -- consistency ------------------------------------------------------------------
    def test_batch_equals_single(self) -> None:
        data = self.make_data()
        model = self.fit(data=data)
        users = data.users.ids[:5]
        batch_ids, batch_scores = model.recommend(users, k=4)
        for row, u in enumerate(users):
            ids, scores = model.recommend(u, k=4)
            np.testing.assert_array_equal(ids, batch_ids[row])
            np.testing.assert_allclose(scores, batch_scores[row], atol=self.atol)
        items = data.items.ids[:6]
        pair = np.array([model.score([users[0]], [it])[0] for it in items])
        np.testing.assert_allclose(pair, model.score(np.repeat(users[0], 6), items), atol=self.atol)

    def test_recommend_scores_agree_with_score(self) -> None:
        data = self.make_data()
        model = self.fit(data=data)
        u = data.users.ids[1]
        ids, scores = model.recommend(u, k=5)
        np.testing.assert_allclose(model.score(np.repeat(u, 5), ids), scores, rtol=1e-4, atol=1e-4)
        assert np.all(np.diff(scores) <= 1e-9)

    def test_exclude_seen(self) -> None:
        data = self.make_data()
        model = self.fit(data=data)
        for uidx in range(5):
            u = data.users.ids[uidx]
            seen = set(data.items.ids[data.item_idx[data.user_idx == uidx]].tolist())
            ids, _ = model.recommend(u, k=len(data.items))
            got = _real(ids)
            assert not (got & seen)
            assert got == set(data.items.ids.tolist()) - seen
            ids_all, _ = model.recommend(u, k=len(data.items), exclude_seen=False)
            assert seen <= set(ids_all.tolist())

    def test_candidates_respected(self) -> None:
        data = self.make_data()
        model = self.fit(data=data)
        cands = data.items.ids[::3]
        ids, _ = model.recommend(data.users.ids[0], k=len(data.items), exclude_seen=False, candidates=cands)
        assert _real(ids) == set(cands.tolist())

    def test_string_ids(self) -> None:
        data = toy_ratings(n_users=20, n_items=15, seed=5, string_ids=True)
        if self.model_class.task != "rating" and self.model_class.feedback == "any":
            data = data.to_implicit()
        model = self.fit(data=data)
        ids, _ = model.recommend("u1", k=3)
        assert all(isinstance(x, str) and x.startswith("i") for x in ids.tolist())

    # -- known answer -----------------------------------------------------------------
    def test_checkerboard_known_answer(self) -> None:
        """Two blocks of users and items (even and odd ids); every user has interacted with all
        items of its block but one. A ranking model must rank that unseen item of the user's own
        block above every item of the other block (implicit's test set-up); popularity cannot."""
        if self.model_class.task == "rating":
            pytest.skip("rating models predict ratings; the checkerboard has none")
        if self.checkerboard_exempt:
            pytest.skip(f"exempt: {self.checkerboard_exempt}")
        data = checkerboard(20)
        model = self.model_class({**self.config, **self.checkerboard_config}).fit(data, self.fit_options(0))
        users = data.users.ids
        ids, _ = model.recommend(users, k=1)
        wrong = [(u, i) for u, i in zip(users.tolist(), ids[:, 0].tolist()) if u != i]
        assert not wrong, (f"{self.model_class.__name__} ranked another item above the user's own-block "
                           f"unseen item for {len(wrong)} of {len(users)} users (user, top item): "
                           f"{wrong[:5]}")

    # -- declared capabilities ----------------------------------------------------------
    def test_feedback_rule(self) -> None:
        """``feedback == "implicit"`` models learn the same from ratings as from their implicit copy."""
        if self.model_class.feedback != "implicit":
            pytest.skip(f"feedback is {self.model_class.feedback!r}: values are used as given")
        data = self.make_data()
        ratings = data if data.explicit else _as_ratings(data)
        a = self.outputs(self.fit(data=ratings), ratings)
        b = self.outputs(self.fit(data=ratings.to_implicit()), ratings)
        np.testing.assert_allclose(a, b, atol=self.atol)

    def test_rating_model_refuses_implicit_data(self) -> None:
        """A ``feedback == "explicit"`` (rating) model's own ``fit`` refuses implicit feedback and
        constant values with a one-line :class:`DataError` naming the model and what to do, and
        leaves an earlier fit in place (the check runs before anything is forgotten)."""
        if self.model_class.feedback != "explicit":
            pytest.skip(f"feedback is {self.model_class.feedback!r}: not a rating model")
        data = self.make_data()
        model = self.fit(data=data)
        before = self.outputs(model, data)
        name = self.model_class.name
        with pytest.raises(DataError, match=rf"^{name} \(a rating model\) needs explicit ratings, but .* is "
                                            r"implicit feedback; name a rating column .* ranking protocol and model$"
                           ) as exc:
            model.fit(data.to_implicit(), self.fit_options(0))
        assert "\n" not in str(exc.value)
        const = data.subset(np.arange(len(data)))
        const.values = np.full(len(data), 4.0, dtype=np.float32)
        with pytest.raises(DataError, match=rf"^{name} \(a rating model\) needs ratings that vary, but every "
                                            r"value of .* is 4;"):
            model.fit(const, self.fit_options(0))
        np.testing.assert_allclose(self.outputs(model, data), before, atol=self.atol)

    def test_knows_user_agrees_with_training_data(self) -> None:
        """Users with training rows are known, ids outside the data are not, and a user in the
        vocabulary without rows is known exactly when the model scores it personally (side features)."""
        data = self.make_data()
        model = self.fit(data=data.subset(data.user_idx != 0))  # user 0 stays in the vocabulary
        with_rows = data.users.ids[np.unique(data.user_idx[data.user_idx != 0])]
        assert all(model.knows_user(u) for u in with_rows), "a user with training rows is not known"
        assert not model.knows_user(_UNKNOWN[0] if self.string_ids else _UNKNOWN[1])
        _, scores = model.recommend(data.users.ids[0], k=3)
        personal = bool(np.isfinite(scores).any())
        assert model.knows_user(data.users.ids[0]) == personal, (
            f"knows_user says {not personal} for a user without training rows whose recommendations "
            f"{'are' if personal else 'are not'} scored")

    def test_undeclared_capabilities_raise(self) -> None:
        """A capability a class does not declare is not there: callers test the declaration."""
        data = self.make_data()
        model = self.fit(data=data)
        items = data.items.ids[data.item_idx[data.user_idx == 0]]
        if not self.model_class.scores_history:
            with pytest.raises(NotImplementedError):
                model.scores_for_history(items)
            with pytest.raises(NotImplementedError):
                model.recommend_for_history(items, k=3)
        if not self.model_class.has_embeddings:
            with pytest.raises(NotImplementedError):
                model.embeddings()
        if not self.model_class.folds_in:
            with pytest.raises(NotImplementedError):
                model.fold_in(items)

    def test_history_scores_agree_with_history_recommendations(self) -> None:
        if not self.model_class.scores_history:
            pytest.skip("scores_history is False")
        data = self.make_data()
        model = self.fit(data=data)
        n_items = len(model.items_)
        for uidx in range(3):
            rows = data.user_idx == uidx
            history = data.items.ids[data.item_idx[rows]]
            values = data.values[rows]
            scores = model.scores_for_history(history, values)
            assert scores.shape == (n_items,)
            ids, top = model.recommend_for_history(history, k=5, values=values)
            real = np.array([x not in (-1, "") for x in ids.tolist()], bool)
            got = model.items_.index(ids[real])
            allowed = np.asarray(model.item_known_, bool).copy()
            allowed[data.item_idx[rows]] = False
            assert allowed[got].all(), "recommend_for_history returned an item of the history"
            np.testing.assert_allclose(top[real], scores[got], rtol=1e-5, atol=self.atol)
            # the list is the top of the scores over the allowed items, best first
            ranked = np.where(allowed, np.nan_to_num(scores, nan=-np.inf), -np.inf)
            listed = ranked[got]
            assert np.all(listed[:-1] >= listed[1:] - 1e-9), "recommend_for_history is not sorted by score"
            ranked[got] = -np.inf
            assert ranked.max() <= listed.min() + 1e-9, "an allowed item outside the list scores higher"

    def test_embeddings_match_the_vocabularies(self) -> None:
        if not self.model_class.has_embeddings:
            pytest.skip("has_embeddings is False")
        model = self.fit()
        users, items = model.embeddings()
        assert isinstance(users, np.ndarray) and isinstance(items, np.ndarray)
        assert users.ndim == 2 and items.ndim == 2
        assert users.shape[0] == len(model.users_) and items.shape[0] == len(model.items_)
        assert np.isfinite(items[model.item_known_]).all()

    def test_fold_in_gives_a_user_vector(self) -> None:
        if not self.model_class.folds_in:
            pytest.skip("folds_in is False")
        data = self.make_data()
        model = self.fit(data=data)
        history = data.items.ids[data.item_idx[data.user_idx == 0]]
        vec = model.fold_in(history)
        assert vec.ndim == 1 and np.isfinite(vec).all()
        if self.model_class.has_embeddings:
            assert vec.shape[0] == model.embeddings()[0].shape[1]
        np.testing.assert_array_equal(model.fold_in([]), np.zeros_like(vec))

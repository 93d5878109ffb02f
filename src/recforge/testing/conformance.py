"""The conformance suite every recforge model inherits.

Usage, in a test module::

    class TestBias(RecommenderConformance):
        model_class = Bias
        config = {"epochs": 3}
        changes = {"reg_user": 0.0, "reg_item": 0.0}
        invalid = [{"reg_user": -1.0}]

It checks default construction, config round-trip, validation, fit on toy data, unknown ids, empty
inputs, batch == single, save/load equality, ``exclude_seen``, determinism under a seed, refit
from scratch and that every listed hyperparameter changes the output.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from recforge.config import FitOptions
from recforge.data.interactions import Interactions
from recforge.errors import ConfigError, DataError, NotFittedError
from recforge.models.base import Recommender
from recforge.testing.datasets import toy_ratings


class RecommenderConformance:
    """Shared behaviour tests; subclass and set the class attributes."""

    model_class: ClassVar[type[Recommender]]
    config: ClassVar[dict[str, Any]] = {}
    changes: ClassVar[dict[str, Any]] = {}
    invalid: ClassVar[list[dict[str, Any]]] = []
    string_ids: ClassVar[bool] = False
    atol: ClassVar[float] = 1e-6

    # -- fixtures ---------------------------------------------------------------
    def make_data(self) -> Interactions:
        data = toy_ratings(n_users=30, n_items=25, seed=3, string_ids=self.string_ids)
        return data if self.model_class.task == "rating" else data.to_implicit()

    def make_model(self, **overrides: Any) -> Recommender:
        return self.model_class({**self.config, **overrides})

    def fit(self, model: Recommender | None = None, data: Interactions | None = None, seed: int = 0) -> Recommender:
        model = model or self.make_model()
        return model.fit(data if data is not None else self.make_data(), FitOptions(seed=seed))

    def outputs(self, model: Recommender, data: Interactions) -> np.ndarray:
        users = data.users.ids[:8]
        items = data.items.ids[:8]
        uu, ii = np.meshgrid(users, items, indexing="ij")
        return model.score(uu.ravel(), ii.ravel())

    # -- construction and config -------------------------------------------------
    def test_default_construction(self) -> None:
        model = self.model_class()
        assert isinstance(model.config, self.model_class.config_class)
        assert not model.is_fitted()
        assert self.model_class.name in repr(model) or type(model).__name__ in repr(model)

    def test_config_round_trip(self) -> None:
        model = self.make_model()
        cfg = model.config
        again = self.model_class.config_class.from_dict(cfg.to_dict())
        assert again == cfg
        assert self.model_class(cfg).config == self.model_class(**self.config).config

    def test_unknown_hyperparameter_rejected(self) -> None:
        with pytest.raises(ConfigError, match="no_such_param"):
            self.model_class(no_such_param=1)

    def test_invalid_hyperparameters_rejected(self) -> None:
        for bad in self.invalid:
            with pytest.raises(ConfigError):
                self.make_model(**bad)

    def test_not_fitted(self) -> None:
        with pytest.raises(NotFittedError):
            self.make_model().recommend(1, k=5)

    # -- fitting -----------------------------------------------------------------
    def test_fit_returns_self(self) -> None:
        model = self.make_model()
        assert self.fit(model) is model
        assert model.is_fitted()

    def test_empty_training_data_rejected(self) -> None:
        data = self.make_data()
        with pytest.raises(DataError):
            self.make_model().fit(data.subset(np.zeros(len(data), bool)))

    def test_scores_finite_for_known_pairs(self) -> None:
        data = self.make_data()
        model = self.fit(data=data)
        s = model.score(data.users.ids[data.user_idx[:50]], data.items.ids[data.item_idx[:50]])
        assert np.isfinite(s).all()

    # -- raw ids and unknowns ----------------------------------------------------
    def test_unknown_ids_give_nan(self) -> None:
        data = self.make_data()
        model = self.fit(data=data)
        known_u, known_i = data.users.ids[0], data.items.ids[0]
        unknown = "no-such-id" if self.string_ids else -987654
        s = model.score([unknown, known_u, unknown], [known_i, unknown, unknown])
        assert np.isnan(s).all()
        assert model.n_impossible_last_ == 3
        p = model.predict([unknown], [known_i], fallback="mean")
        assert np.isfinite(p).all()

    def test_unknown_user_recommend_falls_back(self) -> None:
        data = self.make_data()
        model = self.fit(data=data)
        ids, scores = model.recommend("no-such-id" if self.string_ids else -987654, k=5)
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

    # -- consistency ---------------------------------------------------------------
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
            got = {x for x in ids.tolist() if x not in (-1, "")}
            assert not (got & seen)
            assert got == set(data.items.ids.tolist()) - seen
            ids_all, _ = model.recommend(u, k=len(data.items), exclude_seen=False)
            assert seen <= set(ids_all.tolist())

    def test_candidates_respected(self) -> None:
        data = self.make_data()
        model = self.fit(data=data)
        cands = data.items.ids[::3]
        ids, _ = model.recommend(data.users.ids[0], k=len(data.items), exclude_seen=False, candidates=cands)
        got = {x for x in ids.tolist() if x not in (-1, "")}
        assert got == set(cands.tolist())

    def test_save_load_equal(self, tmp_path: Path) -> None:
        data = self.make_data()
        model = self.fit(data=data)
        path = model.save(tmp_path / "model.npz")
        again = Recommender.load(path)
        assert type(again) is type(model)
        assert again.config == model.config
        np.testing.assert_allclose(self.outputs(again, data), self.outputs(model, data), atol=self.atol)
        a, _ = model.recommend(data.users.ids[:4], k=5)
        b, _ = again.recommend(data.users.ids[:4], k=5)
        np.testing.assert_array_equal(a, b)

    def test_deterministic_under_seed(self) -> None:
        data = self.make_data()
        a = self.outputs(self.fit(data=data, seed=7), data)
        b = self.outputs(self.fit(data=data, seed=7), data)
        np.testing.assert_allclose(a, b, atol=self.atol)

    def test_refit_starts_fresh(self) -> None:
        data = self.make_data()
        model = self.fit(data=data)
        first = self.outputs(model, data)
        other = self.make_data().subset(np.arange(len(data)) % 2 == 0)
        model.fit(other, FitOptions(seed=0))
        model.fit(data, FitOptions(seed=0))
        np.testing.assert_allclose(self.outputs(model, data), first, atol=self.atol)

    def test_every_hyperparameter_changes_output(self) -> None:
        data = self.make_data()
        base = self.outputs(self.fit(data=data), data)
        for name, value in self.changes.items():
            changed = self.outputs(self.fit(self.make_model(**{name: value}), data=data), data)
            same = np.allclose(np.nan_to_num(base), np.nan_to_num(changed), atol=1e-9)
            assert not same, f"hyperparameter {name}={value!r} did not change the output"

    def test_string_ids(self) -> None:
        data = toy_ratings(n_users=20, n_items=15, seed=5, string_ids=True)
        data = data if self.model_class.task == "rating" else data.to_implicit()
        model = self.fit(data=data)
        ids, _ = model.recommend("u1", k=3)
        assert all(isinstance(x, str) and x.startswith("i") for x in ids.tolist())

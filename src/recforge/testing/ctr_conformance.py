"""The conformance suite of CTR models (feature rows in, click probabilities out).

Usage, in a test module::

    class TestFM(CTRConformance):
        model_class = FM
        config = {"epochs": 5, "embedding_size": 4}
        changes = {"embedding_size": 8, "reg": 0.1}
        unchanged = {"threads": "speed only"}
        invalid = [{"embedding_size": 0}]
        min_auc = 0.75

On top of :class:`~recforge.testing.estimator_conformance.EstimatorConformance` (construction,
config round-trip and audit, validation, clone, save/load equality without pickle, determinism
under a seed, refit from scratch, every hyperparameter changes the output) it checks fitting on a
tiny synthetic CTR set whose clicks follow a known logistic model (the model must rank held-out
rows well above chance and its training loss must fall), probabilities in [0, 1], batch == single,
index-matrix input == :class:`CTRData` input, bad rows rejected, the user-item API refused, and
early stopping on validation AUC.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pytest

from recforge.config import FitOptions
from recforge.data.ctr import CTRData, FeatureEncoder, FieldSpec
from recforge.errors import ConfigError, DataError
from recforge.metrics import roc_auc
from recforge.models.base import Recommender
from recforge.testing.datasets import toy_ratings
from recforge.testing.estimator_conformance import EstimatorConformance

__all__ = ["CTRConformance", "toy_ctr", "toy_ctr_frame"]


def toy_ctr_frame(n: int = 2000, seed: int = 0, n_users: int = 20, n_items: int = 15) -> tuple[pd.DataFrame, np.ndarray]:
    """Rows of user, item, context, a numeric field and a multi-valued tag field with 0/1 clicks.

    Clicks are drawn from ``p = s(3 a_u b_i + c_i + 0.8 [ctx == "b"] + 0.3 log1p(price) - 1)``:
    a rank-one user-item interaction, item biases, a context effect and a numeric effect, so a
    factorisation machine can learn it and logistic regression only partly. Returns the frame and
    the true click probabilities.
    """
    rng = np.random.default_rng(seed)
    a = rng.choice([-1.0, 1.0], n_users) * rng.uniform(0.5, 1.0, n_users)
    b = rng.choice([-1.0, 1.0], n_items) * rng.uniform(0.5, 1.0, n_items)
    c = rng.normal(0, 0.7, n_items)
    u = rng.integers(0, n_users, n)
    i = rng.integers(0, n_items, n)
    ctx = rng.choice(["a", "b", "c"], n)
    price = rng.exponential(3.0, n)
    tags = ["|".join(sorted(set(rng.choice(["x", "y", "z", "w"], rng.integers(0, 3)).tolist()))) for _ in range(n)]
    z = 3.0 * a[u] * b[i] + c[i] + 0.8 * (ctx == "b") + 0.3 * np.log1p(price) - 1.0
    p = 1.0 / (1.0 + np.exp(-z))
    y = (rng.random(n) < p).astype(np.float32)
    df = pd.DataFrame({"user": [f"u{x}" for x in u], "item": [f"i{x}" for x in i], "ctx": ctx, "price": price,
                       "tags": tags, "label": y})
    return df, p


def toy_ctr(n: int = 2000, seed: int = 0) -> tuple[CTRData, CTRData, CTRData, np.ndarray]:
    """(train, valid, test, true test probabilities) of :func:`toy_ctr_frame`, split 60/20/20."""
    df, p = toy_ctr_frame(n, seed)
    enc = FeatureEncoder([FieldSpec("user"), FieldSpec("item"), FieldSpec("ctx"),
                          FieldSpec("price", "numeric", transform="log"), FieldSpec("tags", "multi")])
    a, b = int(0.6 * n), int(0.8 * n)
    enc.fit(df.iloc[:a])
    return (enc.transform(df.iloc[:a], "toy/train"), enc.transform(df.iloc[a:b], "toy/valid"),
            enc.transform(df.iloc[b:], "toy/test"), p[b:])


_FITTED: dict[Any, Any] = {}
_DATA: list[tuple[CTRData, CTRData, CTRData, np.ndarray]] = []


class CTRConformance(EstimatorConformance):
    """Shared behaviour tests of CTR models; subclass and set the class attributes.

    Besides those of :class:`EstimatorConformance`: ``min_auc``, the held-out AUC the model must
    reach on the toy set. ``invalid`` and ``changes`` must not be empty.
    """

    min_auc: ClassVar[float] = 0.7

    # -- hooks ----------------------------------------------------------------------
    def data(self) -> tuple[CTRData, CTRData, CTRData, np.ndarray]:
        """(train, valid, test, true test probabilities) of the toy set, built once."""
        if not _DATA:
            _DATA.append(toy_ctr())
        return _DATA[0]

    def make_data(self) -> CTRData:
        return self.data()[0]

    def fit_options(self, seed: int) -> FitOptions:
        return FitOptions(seed=seed, threads=1)

    def outputs(self, model: Any, data: Any = None) -> np.ndarray:
        """Click probabilities of the held-out rows (whatever the training data was)."""
        return model.predict_proba(self.data()[2])

    def call_unfitted(self, model: Any) -> None:
        model.predict_proba(self.data()[2])

    def fitted(self, data: Any = None) -> Any:
        """The default model fitted once per test class (for tests that only read it)."""
        if data is not None and data is not self.make_data():
            return self.fit(data=data)
        key = (type(self), tuple(sorted(self.config.items())))
        if key not in _FITTED:
            _FITTED[key] = self.fit()
        return _FITTED[key]

    # -- construction and config ------------------------------------------------------
    def test_default_construction(self) -> None:
        super().test_default_construction()
        assert self.model_class.task == "ctr"

    def test_registered(self) -> None:
        from recforge.models.registry import get_model_class

        assert get_model_class(self.model_class.name) is self.model_class

    def test_invalid_hyperparameters_rejected(self) -> None:
        assert self.invalid, "list at least one invalid configuration"
        super().test_invalid_hyperparameters_rejected()

    # -- fitting ----------------------------------------------------------------------
    def test_bad_training_data_rejected(self) -> None:
        train = self.data()[0]
        model = self.make_model()
        with pytest.raises(DataError):
            model.fit(train.subset(np.zeros(len(train), bool)))
        with pytest.raises(DataError):
            model.fit(CTRData(train.index, train.value, None, train.slot_fields, train.field_names, train.n_features))
        with pytest.raises(DataError):
            model.fit(toy_ratings(n_users=5, n_items=5))

    def test_learns_known_structure(self) -> None:
        _, _, test, p_true = self.data()
        model = self.fitted()
        auc = roc_auc(test.labels, self.outputs(model))
        oracle = roc_auc(test.labels, p_true)
        assert auc >= self.min_auc, f"held-out AUC {auc:.3f} < {self.min_auc} (true model: {oracle:.3f})"
        loss = model.history_["train_loss"]
        assert loss[-1] < loss[0]

    def test_probabilities_in_unit_interval(self) -> None:
        p = self.outputs(self.fitted())
        assert p.shape == (len(self.data()[2]),)
        assert np.isfinite(p).all() and (p >= 0).all() and (p <= 1).all()

    # -- consistency ------------------------------------------------------------------
    def test_batch_equals_single(self) -> None:
        test = self.data()[2]
        model = self.fitted()
        batch = model.predict_proba(test)
        single = np.array([model.predict_proba(test.index[j], test.value[j])[0] for j in range(8)])
        np.testing.assert_allclose(single, batch[:8], rtol=1e-5, atol=self.atol)
        np.testing.assert_allclose(model.predict_proba(test.index, test.value), batch, atol=self.atol)
        assert model.predict_proba(test.index[:0], test.value[:0]).shape == (0,)

    def test_bad_rows_rejected(self) -> None:
        test = self.data()[2]
        model = self.fitted()
        with pytest.raises(DataError):
            model.predict_proba(test.index[:, :-1], test.value[:, :-1])
        bad = test.index[:2].copy()
        bad[0, 0] = test.n_features + 5
        with pytest.raises(DataError):
            model.predict_proba(bad, test.value[:2])

    def test_user_item_api_refused(self) -> None:
        model = self.fitted()
        if isinstance(model, Recommender):  # the user-item API must refuse and name predict_proba
            with pytest.raises(ConfigError, match="predict_proba"):
                model.recommend(1, k=3)
        else:
            assert not hasattr(model, "recommend")

    def test_early_stopping_on_validation_auc(self) -> None:
        train, valid, _, _ = self.data()
        model = self.make_model(epochs=40)
        model.fit(train, FitOptions(seed=0, validation=valid, patience=2, threads=1))
        aucs = model.history_["val_auc"]
        assert 1 <= len(aucs) <= 40
        assert model.best_epoch_ is not None
        assert aucs[model.best_epoch_] == pytest.approx(max(aucs))
        # the restored weights are those of the best epoch
        p = model.predict_proba(valid)
        assert roc_auc(valid.labels, p) == pytest.approx(max(aucs), abs=1e-6)

    def test_every_hyperparameter_changes_output(self) -> None:
        assert self.changes, "list the hyperparameters to check"
        super().test_every_hyperparameter_changes_output()

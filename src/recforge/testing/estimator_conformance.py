"""What the conformance suites of every kind of model share (the :class:`Estimator` contract).

:class:`EstimatorConformance` holds the checks that do not depend on what a model predicts:
construction, config round-trip, validation of hyperparameters (unknown names suggest the nearest
valid one), not-fitted errors, ``fit`` returning ``self``, ``clone``, save/load equality,
determinism under a seed, refitting from scratch, and the hyperparameter audit: every config field
is listed either in ``changes`` (a value that changes the output on the toy data) or in
``unchanged`` (field -> why it does not). The two suites built on it,
:class:`~recforge.testing.conformance.RecommenderConformance` (user-item models) and
:class:`~recforge.testing.ctr_conformance.CTRConformance` (feature rows in, click probabilities
out), supply the data, the fit and the outputs to compare through four hooks.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from recforge.config import FitOptions
from recforge.errors import ConfigError, NotFittedError
from recforge.models.base import Estimator

__all__ = ["EstimatorConformance"]


class EstimatorConformance:
    """Shared behaviour tests of every model; subclass one of the two suites, not this class.

    Class attributes of a test class:

    - ``model_class``: the model under test.
    - ``config``: hyperparameters of the model the checks fit (small and fast).
    - ``changes``: field -> a value that must change the output on the toy data.
    - ``unchanged``: field -> the reason it cannot change the output there (``"speed only:
      threads"``, ``"verbose output only"``, ``"only used with validation data"``).
    - ``invalid``: configurations that must be rejected at construction.
    - ``atol``: tolerance of "the same output".
    """

    model_class: ClassVar[type[Estimator]]
    config: ClassVar[dict[str, Any]] = {}
    changes: ClassVar[dict[str, Any]] = {}
    unchanged: ClassVar[dict[str, str]] = {}
    invalid: ClassVar[list[dict[str, Any]]] = []
    atol: ClassVar[float] = 1e-6

    # -- hooks ----------------------------------------------------------------------
    def make_data(self) -> Any:
        """The training data of the checks."""
        raise NotImplementedError

    def fit_options(self, seed: int) -> FitOptions:
        """The run context of every fit of the checks."""
        return FitOptions(seed=seed)

    def outputs(self, model: Any, data: Any) -> np.ndarray:
        """What the model computes that the checks compare (scores, probabilities)."""
        raise NotImplementedError

    def call_unfitted(self, model: Any) -> None:
        """Use the model's prediction API before fitting (must raise :class:`NotFittedError`)."""
        raise NotImplementedError

    # -- helpers --------------------------------------------------------------------
    def make_model(self, **overrides: Any) -> Any:
        return self.model_class({**self.config, **overrides})

    def fit(self, model: Any = None, data: Any = None, seed: int = 0) -> Any:
        model = model or self.make_model()
        return model.fit(data if data is not None else self.make_data(), self.fit_options(seed))

    def fitted(self, data: Any = None) -> Any:
        """The default model fitted on ``data`` (suites may cache it for read-only checks)."""
        return self.fit(data=data)

    def check_loaded(self, model: Any, again: Any, data: Any) -> None:
        """Extra equality checks of a saved and loaded model (suites add their API)."""

    # -- construction and config ------------------------------------------------------
    def test_default_construction(self) -> None:
        model = self.model_class()
        assert isinstance(model.config, self.model_class.config_class)
        assert not model.is_fitted()
        assert type(model).__name__ in repr(model)

    def test_config_round_trip(self) -> None:
        cfg = self.make_model().config
        assert self.model_class.config_class.from_dict(cfg.to_dict()) == cfg
        assert self.model_class(cfg).config == self.model_class(**self.config).config

    def test_unknown_hyperparameter_rejected(self) -> None:
        with pytest.raises(ConfigError, match="no_such_param"):
            self.model_class(no_such_param=1)
        fields = dataclasses.fields(self.model_class.config_class)
        names = sorted((f.name for f in fields), key=lambda n: (-len(n), n))
        if not names or len(names[0]) < 4:
            return
        # a one-letter slip of the longest field name must be answered with that name
        typo = names[0][:-1]
        with pytest.raises(ConfigError, match=f"did you mean {names[0]!r}"):
            self.model_class(**{typo: self.make_model().config.to_dict()[names[0]]})

    def test_invalid_hyperparameters_rejected(self) -> None:
        for bad in self.invalid:
            with pytest.raises(ConfigError):
                self.make_model(**bad)

    def test_every_config_field_is_audited(self) -> None:
        config_class = self.model_class.config_class
        fields = {f.name for f in dataclasses.fields(config_class)}
        changes, unchanged = set(self.changes), set(self.unchanged)
        problems = []
        if missing := sorted(fields - changes - unchanged):
            problems.append(f"fields in neither `changes` nor `unchanged`: {missing} (add each to "
                            "`changes` with a value that changes the output, or to `unchanged` with the "
                            "reason it cannot)")
        if extra := sorted((changes | unchanged) - fields):
            problems.append(f"names in `changes`/`unchanged` that are not fields of "
                            f"{config_class.__name__}: {extra}")
        if both := sorted(changes & unchanged):
            problems.append(f"fields in both `changes` and `unchanged`: {both}")
        blank = sorted(k for k, why in self.unchanged.items() if not isinstance(why, str) or not why.strip())
        if blank:
            problems.append(f"`unchanged` entries without a reason: {blank}")
        assert not problems, f"{type(self).__name__} ({self.model_class.__name__}): " + "; ".join(problems)

    def test_not_fitted(self) -> None:
        model = self.make_model()
        with pytest.raises(NotFittedError):
            model.check_is_fitted()
        with pytest.raises(NotFittedError):
            self.call_unfitted(model)

    # -- fitting ----------------------------------------------------------------------
    def test_fit_returns_self(self) -> None:
        model = self.make_model()
        assert self.fit(model) is model
        assert model.is_fitted()

    def test_clone_is_unfitted_with_equal_config(self) -> None:
        model = self.fit()
        twin = model.clone()
        assert type(twin) is type(model) and twin is not model
        assert twin.config == model.config
        assert not twin.is_fitted()
        assert model.is_fitted()

    def test_save_load_equal(self, tmp_path: Path) -> None:
        data = self.make_data()
        model = self.fitted(data)
        path = model.save(tmp_path / "model.npz")
        np.load(path, allow_pickle=False)  # the format holds no pickles
        again = Estimator.load(path)
        assert type(again) is type(model)
        assert again.config == model.config
        np.testing.assert_allclose(self.outputs(again, data), self.outputs(model, data), atol=self.atol)
        self.check_loaded(model, again, data)

    def test_deterministic_under_seed(self) -> None:
        data = self.make_data()
        a = self.outputs(self.fit(data=data, seed=7), data)
        b = self.outputs(self.fit(data=data, seed=7), data)
        np.testing.assert_allclose(a, b, atol=self.atol)

    def test_refit_starts_fresh(self) -> None:
        data = self.make_data()
        model = self.fit(data=data)
        first = self.outputs(model, data)
        model.fit(data.subset(np.arange(len(data)) % 2 == 0), self.fit_options(0))
        model.fit(data, self.fit_options(0))
        np.testing.assert_allclose(self.outputs(model, data), first, atol=self.atol)

    def test_every_hyperparameter_changes_output(self) -> None:
        data = self.make_data()
        base = np.nan_to_num(self.outputs(self.fitted(data), data))
        for name, value in self.changes.items():
            changed = np.nan_to_num(self.outputs(self.fit(self.make_model(**{name: value}), data=data), data))
            assert not np.allclose(base, changed, atol=1e-9), (
                f"hyperparameter {name}={value!r} did not change the output")

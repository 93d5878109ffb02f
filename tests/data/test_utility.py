"""Composite utility formulas and reversible per-user/per-item normalisation, by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recforge.data.interactions import Interactions
from recforge.data.utility import Normalizer, UtilityFormula, add_utility
from recforge.errors import ConfigError, DataError

LOG = pd.DataFrame({
    "user_id": [1, 1, 2, 2, 3],
    "item_id": [10, 11, 10, 12, 11],
    "hours": [2.0, 0.5, 10.0, np.nan, 1.0],
    "rating": [4, 3, 5, 2, 1],
    "plays": [0, 3, 7, 1, 0],
})


def test_the_missions_formula_hours_plus_rating() -> None:
    out = add_utility(LOG, [{"signal": "hours"}, {"signal": "rating"}])
    np.testing.assert_allclose(out["utility"], [6.0, 3.5, 15.0, 2.0, 2.0])  # a missing signal counts 0
    assert out.attrs["utility"] == "utility = hours + rating"


def test_weights_and_transforms() -> None:
    f = UtilityFormula.from_config([
        {"signal": "plays", "weight": 2, "transform": "log1p"},
        {"signal": "hours", "transform": "clip", "high": 3},
        {"signal": "rating", "weight": 0.5, "transform": "binarize", "threshold": 4},
    ])
    want = 2 * np.log1p([0, 3, 7, 1, 0]) + np.array([2, 0.5, 3, 0, 1]) + 0.5 * np.array([1, 0, 1, 0, 0])
    np.testing.assert_allclose(f.apply(LOG), want)
    # the description is the formula's text syntax, which parses back to the same formula
    assert f.describe() == "utility = 2*log1p(plays) + clip(hours, -inf, 3) + 0.5*binarize(rating, 4)"
    assert UtilityFormula.from_config(f.expression()) == f
    got = UtilityFormula.from_config({"plays": 1.0, "rating": 2.0}).describe()
    assert got == "utility = plays + 2*rating"


def test_bad_formulas_and_signals_are_one_line_errors() -> None:
    with pytest.raises(DataError, match="no signal column 'hour'; did you mean 'hours'"):
        add_utility(LOG, {"hour": 1.0})
    with pytest.raises(ConfigError, match="binarize needs a threshold"):
        UtilityFormula.from_config([{"signal": "rating", "transform": "binarize"}])
    with pytest.raises(ConfigError, match="unknown key"):
        UtilityFormula.from_config([{"signal": "rating", "wieght": 2}])
    with pytest.raises(DataError, match="row 2: signal 'rating' is not a number"):
        add_utility(LOG.assign(rating=["4", "five", "5", "2", "1"]), {"rating": 1.0})


def _inter(values: list[float]) -> Interactions:
    frame = LOG.iloc[: len(values)].assign(rating=values)
    return Interactions.from_dataframe(frame[["user_id", "item_id", "rating"]], rating="rating")


def test_user_mean_divide_by_hand() -> None:
    data = _inter([4, 2, 5, 1, 3])  # user 1: mean 3, user 2: mean 3, user 3: mean 3
    fitted = Normalizer("divide", "user").fit(data)
    np.testing.assert_allclose(fitted.apply_to(data).values, [4 / 3, 2 / 3, 5 / 3, 1 / 3, 1.0], rtol=1e-6)


def test_zscore_by_hand_and_unknown_entities_use_the_global_stats() -> None:
    data = _inter([4, 2, 5, 1, 3])
    fitted = Normalizer("zscore", "user").fit(data)
    # user 1: mean 3, std 1; user 2: mean 3, std 2; user 3: one value -> std 1
    np.testing.assert_allclose(fitted.apply_to(data).values, [1, -1, 1, -1, 0], atol=1e-6)
    g = fitted.transform(np.array([-1]), np.array([3.0 + data.values.std()]))
    np.testing.assert_allclose(g, [1.0])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0.5, 10, allow_nan=False), min_size=5, max_size=5),
       st.sampled_from(["center", "divide", "zscore"]), st.sampled_from(["user", "item"]))
def test_normalisation_round_trips(values, kind, side) -> None:
    data = _inter(values)
    fitted = Normalizer(kind, side).fit(data)
    idx = data.user_idx if side == "user" else data.item_idx
    back = fitted.inverse(idx, fitted.transform(idx, data.values))
    np.testing.assert_allclose(back, data.values, rtol=1e-6)

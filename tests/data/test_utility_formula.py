"""The utility formula's text syntax (``--utility``) and the ``--normalize`` values, by hand."""

from __future__ import annotations

import numpy as np
import pytest

from recforge.data.utility import Normalizer, Term, UtilityFormula, parse_formula, parse_normalize
from recforge.errors import ConfigError

SIGNALS = {"plays": np.array([0.0, 3.0, 7.0]), "hours": np.array([2.0, 12.0, np.nan]),
           "rating": np.array([4.0, np.nan, 2.0]), "replays": np.array([0.0, 1.0, 2.0])}


def test_the_canonical_syntax_by_hand() -> None:
    f = parse_formula("log1p(plays) + 0.5*clip(hours, 0, 10) + rating + 2*binarize(replays, 1)")
    assert f.terms == (Term("plays", 1.0, "log1p"), Term("hours", 0.5, "clip", low=0.0, high=10.0),
                       Term("rating"), Term("replays", 2.0, "binarize", threshold=1.0))
    want = np.log1p([0, 3, 7]) + 0.5 * np.array([2, 10, 0]) + np.array([4, 0, 2]) + 2 * np.array([0, 1, 1])
    np.testing.assert_allclose(f.apply_signals(SIGNALS), want)


@pytest.mark.parametrize("text, terms", [
    # the brief's colon form reads the same as the function form
    ("plays:log1p*1.0 + hours:clip(0,10)*0.5 + rating",
     (Term("plays", 1.0, "log1p"), Term("hours", 0.5, "clip", low=0.0, high=10.0), Term("rating"))),
    ("hours*0.5 - skips", (Term("hours", 0.5), Term("skips", -1.0))),
    ("-2*clip(x, -inf, 3) + 3*2*y", (Term("x", -2.0, "clip", high=3.0), Term("y", 6.0))),
    ("clip(x, 1)", (Term("x", 1.0, "clip", low=1.0),)),
    ("utility = plays:binarize(3)", (Term("plays", 1.0, "binarize", threshold=3.0),)),
    ("1e-1*plays", (Term("plays", 0.1),)),
])
def test_other_spellings(text: str, terms: tuple[Term, ...]) -> None:
    f = parse_formula(text)
    assert f.terms == terms
    assert parse_formula(f.expression()) == f  # the canonical text reads back to the same formula


def test_expression_is_canonical() -> None:
    f = parse_formula("plays:log1p*1.0 + hours:clip(0,10)*0.5 - 2*binarize(rating, 4)")
    assert f.expression() == "log1p(plays) + 0.5*clip(hours, 0, 10) - 2*binarize(rating, 4)"
    assert f.describe() == "utility = " + f.expression()
    assert UtilityFormula.from_config(["plays", "0.5*hours"]).expression() == "plays + 0.5*hours"


@pytest.mark.parametrize("text, message", [
    ("", "the formula is empty"),
    ("log2(plays)", "unknown transform 'log2'"),
    ("plays:sqrt", "unknown transform 'sqrt'"),
    ("plays * hours", "a term has one signal times numbers"),
    ("plays +", "expected a signal or a number at the end"),
    ("clip(hours)", r"clip of 'hours' takes 2 number\(s\)"),
    ("binarize(plays)", r"binarize of 'plays' takes 1 number\(s\)"),
    ("plays & 3", "unexpected '& 3' at character 7"),
    ("2*3", "a term needs a signal"),
    ("clip(hours, 5, 1)", "clip low 5 is above high 1"),  # would clip every value to 1, silently
    ("clip(hours, 1, -inf)", "clip low 1 is above high -inf"),
    ("hours:clip(inf)", "clip low inf is above high inf"),
])
def test_bad_formulas_are_one_line_errors(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_formula(text)


def test_a_formula_over_undeclared_signals_names_them() -> None:
    with pytest.raises(Exception, match=r"'hour' is not a signal; did you mean 'hours'\? \(signals: hours"):
        parse_formula("hour").apply_signals(SIGNALS)


def test_normalize_values() -> None:
    assert parse_normalize("user-zscore") == Normalizer("zscore", "user")
    assert parse_normalize("user-mean") == Normalizer("divide", "user")  # r / mean, the mission's ratio
    assert parse_normalize("item-center") == Normalizer("center", "item")
    assert parse_normalize("none") is None and parse_normalize(None) is None
    assert Normalizer("divide", "item").label == "item-divide"
    with pytest.raises(ConfigError, match="did you mean 'user-zscore'"):
        parse_normalize("user-zcore")


def test_clip_bounds_in_a_term_table_are_checked_too() -> None:
    with pytest.raises(ConfigError, match="clip low 10 is above high 0"):
        UtilityFormula.from_config({"terms": [{"signal": "hours", "transform": "clip",
                                               "low": 10, "high": 0}]})
    assert parse_formula("clip(hours, -inf, 3)").expression() == "clip(hours, -inf, 3)"
    assert parse_formula("clip(hours, 2, 2)").expression() == "clip(hours, 2, 2)"


@pytest.mark.parametrize("value", ["lots", [1, 2], True])
def test_a_term_tables_number_that_is_not_a_number_is_one_line(value) -> None:
    """A config file's ``weight = "lots"`` was a ValueError traceback."""
    with pytest.raises(ConfigError, match="utility term 'plays': weight must be a number"):
        UtilityFormula.from_config({"terms": [{"signal": "plays", "weight": value}]})


@pytest.mark.parametrize("spec", [5, 2.5, {"terms": 3}, None])
def test_a_utility_that_is_not_a_formula_is_one_line(spec) -> None:
    """``utility = 5`` or ``{terms = 3}`` in a config file were TypeError tracebacks."""
    with pytest.raises(ConfigError, match="is not a formula"):
        UtilityFormula.from_config(spec)


@pytest.mark.parametrize("spec", [3, 2.5, True])
def test_signals_that_are_not_a_list_are_one_line(spec) -> None:
    """``signals = 3`` in a config file was a TypeError traceback."""
    from recforge.data.interactions import parse_signals

    with pytest.raises(ConfigError, match="is not a signal list"):
        parse_signals(spec, where="[dataset] signals")

"""From raw signals to one target: composite utility formulas and per-user (or per-item) normalisation.

A log often carries several signals per interaction (plays, hours watched, a star rating). A
:class:`UtilityFormula` turns them into one value, ``utility = sum_k w_k * t_k(signal_k)``, with a
transform per term (``none``, ``log1p``, ``clip`` to ``[low, high]``, ``binarize`` at a threshold),
and says which formula made it (:meth:`UtilityFormula.describe`), so every result row can carry it.
In a config file::

    [[utility]]
    signal = "hours"
    weight = 1.0
    [[utility]]
    signal = "rating"
    weight = 1.0

gives the mission's ``utility[user][j] = hours_watched_j + rating_j``. The same formula as text
(:func:`parse_formula`; the CLI's ``--utility`` and the ``[dataset] utility`` key)::

    log1p(plays) + 0.5*clip(hours, 0, 10) + rating + 2*binarize(replays, 1)

Terms are joined by ``+`` or ``-``; each is a signal, optionally inside one transform
(``log1p(x)``, ``clip(x, low, high)`` with ``-inf``/``inf`` for an open side, ``binarize(x, t)``
= 1 when ``x >= t``), optionally multiplied by a number on either side (``0.5*hours``,
``hours*0.5``). The colon form ``plays:log1p*1.0 + hours:clip(0,10)*0.5`` is read too.
:meth:`UtilityFormula.expression` writes the canonical text, which parses back to the same formula.

:class:`Normalizer` divides each user's values by the user's mean, subtracts it, or z-scores them
(or the same per item); it is reversible (:meth:`FittedNormalizer.inverse`), so a model trained on
normalised values predicts on the original scale (the ``normalized`` model wraps any rating model so).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from recforge.config import nearest
from recforge.data.interactions import Interactions
from recforge.errors import ConfigError, DataError

__all__ = ["FittedNormalizer", "Normalizer", "Term", "UtilityFormula", "add_utility", "parse_formula",
           "parse_normalize"]

Transform = Literal["none", "log1p", "clip", "binarize"]
TRANSFORMS = ("none", "log1p", "clip", "binarize")


@dataclass(frozen=True)
class Term:
    """One weighted, transformed signal of a utility formula."""

    signal: str
    weight: float = 1.0
    transform: Transform = "none"
    low: float | None = None
    """``clip``: lower bound (None: unbounded)."""
    high: float | None = None
    """``clip``: upper bound (None: unbounded)."""
    threshold: float | None = None
    """``binarize``: values ``>= threshold`` become 1, others 0."""

    def __post_init__(self) -> None:
        if self.transform not in TRANSFORMS:
            raise ConfigError(f"utility term {self.signal!r}: transform {self.transform!r} is not one of "
                              f"{', '.join(TRANSFORMS)}")
        if self.transform == "binarize" and self.threshold is None:
            raise ConfigError(f"utility term {self.signal!r}: binarize needs a threshold")
        if self.transform == "clip" and self.low is None and self.high is None:
            raise ConfigError(f"utility term {self.signal!r}: clip needs low and/or high")
        if self.transform == "clip":
            low = -np.inf if self.low is None else self.low
            high = np.inf if self.high is None else self.high
            if not low < np.inf or not high > -np.inf or low > high:
                raise ConfigError(f"utility term {self.signal!r}: clip low {low:g} is above high {high:g}")
        if not np.isfinite(self.weight):
            raise ConfigError(f"utility term {self.signal!r}: weight must be a finite number")

    def apply(self, x: np.ndarray) -> np.ndarray:
        """The transformed, weighted signal (missing values count as 0)."""
        x = np.nan_to_num(np.asarray(x, dtype=np.float64), nan=0.0)
        if self.transform == "log1p":
            if (x < 0).any():
                raise DataError(f"signal {self.signal!r}: log1p needs values >= 0")
            x = np.log1p(x)
        elif self.transform == "clip":
            x = np.clip(x, -np.inf if self.low is None else self.low,
                        np.inf if self.high is None else self.high)
        elif self.transform == "binarize":
            x = (x >= self.threshold).astype(np.float64)
        return self.weight * x

    def describe(self) -> str:
        """The term in the formula syntax (:func:`parse_formula`), e.g. ``0.5*clip(hours, 0, 10)``."""
        inner = {
            "none": self.signal,
            "log1p": f"log1p({self.signal})",
            "clip": f"clip({self.signal}, {_num(self.low, '-inf')}, {_num(self.high, 'inf')})",
            "binarize": f"binarize({self.signal}, {_num(self.threshold, '')})",
        }[self.transform]
        return inner if self.weight == 1 else f"{self.weight:g}*{inner}"


def _term_number(signal: Any, key: str, v: Any) -> float:
    """A term table's ``weight``/``low``/``high``/``threshold`` as a float, or a one-line error."""
    if isinstance(v, bool) or not isinstance(v, (int, float, str)):
        raise ConfigError(f"utility term {signal!r}: {key} must be a number, not {v!r}")
    try:
        return float(v)
    except ValueError:
        raise ConfigError(f"utility term {signal!r}: {key} must be a number, not {v!r}") from None


def _num(x: float | None, none: str) -> str:
    return none if x is None or (np.isinf(x)) else f"{x:g}"


@dataclass(frozen=True)
class UtilityFormula:
    """``utility = sum of the terms``; see the module docstring."""

    terms: tuple[Term, ...]

    @classmethod
    def from_config(cls, spec: str | Sequence[Mapping[str, Any]] | Mapping[str, Any] | UtilityFormula
                    ) -> UtilityFormula:
        """From a formula text (:func:`parse_formula`), a list of term tables (``[{signal = "hours",
        weight = 1}, ...]``), a table ``{terms = [...]}`` holding either, or a plain
        ``{signal: weight}`` mapping."""
        if isinstance(spec, UtilityFormula):
            return spec
        if isinstance(spec, str):
            return parse_formula(spec)
        if isinstance(spec, Mapping) and "terms" in spec:
            unknown = set(spec) - {"terms"}
            if unknown:
                raise ConfigError(f"utility: unknown key(s) {', '.join(sorted(map(str, unknown)))}; "
                                  "use terms")
            return cls.from_config(spec["terms"])
        if isinstance(spec, Sequence) and spec and all(isinstance(t, str) for t in spec):
            return parse_formula(" + ".join(spec))  # type: ignore[arg-type]
        if isinstance(spec, Mapping):
            spec = [{"signal": k, "weight": v} for k, v in spec.items()]
        if not isinstance(spec, Sequence):
            raise ConfigError(f"utility: {spec!r} is not a formula; use a text (\"log1p(plays) + rating\"), "
                              "a list of term tables or {terms = [...]}")
        terms = []
        for t in spec:
            if not isinstance(t, Mapping) or "signal" not in t:
                raise ConfigError("each utility term is a table with a 'signal' key, "
                                  "e.g. {signal = \"plays\"}")
            unknown = set(t) - {"signal", "weight", "transform", "low", "high", "threshold"}
            if unknown:
                raise ConfigError(f"utility term {t['signal']!r}: unknown key(s) "
                                  f"{', '.join(sorted(unknown))}")
            terms.append(Term(**{k: (_term_number(t["signal"], k, v)
                                     if k in ("weight", "low", "high", "threshold") and v is not None else v)
                                 for k, v in t.items()}))
        if not terms:
            raise ConfigError("a utility formula needs at least one term")
        return cls(tuple(terms))

    @property
    def signals(self) -> list[str]:
        return list(dict.fromkeys(t.signal for t in self.terms))

    def apply(self, frame: pd.DataFrame) -> np.ndarray:
        """The utility of every row of ``frame`` (one column per signal)."""
        have = [str(c) for c in frame.columns]
        out = np.zeros(len(frame))
        for t in self.terms:
            if t.signal not in frame.columns:
                hint = nearest(t.signal, have)
                did = f"; did you mean {hint!r}?" if hint else ""
                raise DataError(f"utility: no signal column {t.signal!r}{did} the columns are "
                                f"{', '.join(have)}")
            col = pd.to_numeric(frame[t.signal], errors="coerce")
            bad = col.isna() & frame[t.signal].notna()
            if bad.any():
                row = int(np.flatnonzero(bad.to_numpy())[0])
                raise DataError(f"utility: row {row + 1}: signal {t.signal!r} is not a number "
                                f"({str(frame[t.signal].iloc[row])[:40]!r})")
            out += t.apply(col.to_numpy())
        return out

    def apply_signals(self, signals: Mapping[str, np.ndarray]) -> np.ndarray:
        """The utility of every row from named signal arrays (``Interactions.signals``); a missing
        value counts 0, a signal the formula names but ``signals`` lacks is an error listing them."""
        for t in self.terms:
            if t.signal not in signals:
                have = sorted(signals)
                hint = nearest(t.signal, have)
                did = f"; did you mean {hint!r}?" if hint else ""
                listed = ", ".join(have) if have else "none: declare them with --signal NAME[:KIND]"
                raise DataError(f"utility: {t.signal!r} is not a signal{did} (signals: {listed})")
        n = len(next(iter(signals.values()))) if signals else 0
        out = np.zeros(n)
        for t in self.terms:
            out += t.apply(signals[t.signal])
        return out

    def expression(self) -> str:
        """The formula in the text syntax, e.g. ``log1p(plays) + 0.5*clip(hours, 0, 10)``;
        :func:`parse_formula` reads it back to an equal formula."""
        text = ""
        for j, t in enumerate(self.terms):
            term = t.describe()
            if t.weight < 0:
                term = Term(t.signal, -t.weight, t.transform, t.low, t.high, t.threshold).describe()
                text += ("-" if j == 0 else " - ") + term
            else:
                text += term if j == 0 else " + " + term
        return text

    def describe(self) -> str:
        """The formula as text, e.g. ``utility = hours + rating``."""
        return "utility = " + self.expression()


_TOKEN = re.compile(r"\s*(?:(?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)|(?P<name>[A-Za-z_][\w.]*)|"
                    r"(?P<op>[-+*(),:]))")
_FUNCS = {"log1p": 0, "clip": 2, "binarize": 1, "none": 0}


def parse_formula(text: str) -> UtilityFormula:
    """Read a utility formula written as text (the module docstring's syntax).

    Raises:
        ConfigError: One line naming what is wrong and where (an unknown transform, a missing
            signal, a stray character).
    """
    if not isinstance(text, str) or not text.strip():
        raise ConfigError("utility: the formula is empty (e.g. --utility \"log1p(plays) + rating\")")
    body = text.strip()
    if body.lower().startswith("utility") and "=" in body:
        body = body.split("=", 1)[1]
    tokens: list[tuple[str, str, int]] = []
    pos = 0
    while pos < len(body):
        if body[pos:].strip() == "":
            break
        m = _TOKEN.match(body, pos)
        if m is None:
            at = pos + len(body[pos:]) - len(body[pos:].lstrip())
            raise ConfigError(f"utility {text!r}: unexpected {body[at:].strip()[:10]!r} "
                              f"at character {at + 1}")
        kind = m.lastgroup or "op"
        tokens.append((kind, m.group(kind), m.start(kind)))
        pos = m.end()
    return UtilityFormula(tuple(_Parser(tokens, text).terms()))


class _Parser:
    """Recursive descent over the tokens of :func:`parse_formula`."""

    def __init__(self, tokens: list[tuple[str, str, int]], text: str) -> None:
        self.tokens, self.text, self.at = tokens, text, 0

    def fail(self, what: str) -> ConfigError:
        where = f"at character {self.tokens[self.at][2] + 1}" if self.at < len(self.tokens) else "at the end"
        return ConfigError(f"utility {self.text!r}: {what} {where}")

    def peek(self, value: str | None = None) -> bool:
        if self.at >= len(self.tokens):
            return False
        return value is None or self.tokens[self.at][1] == value

    def take(self, kind: str | None = None, value: str | None = None) -> str:
        if self.at >= len(self.tokens):
            raise self.fail(f"expected {value or kind or 'more'}")
        k, v, _ = self.tokens[self.at]
        if (kind is not None and k != kind) or (value is not None and v != value):
            wanted = value or ("a number" if kind == "num" else "a signal name")
            raise self.fail(f"expected {wanted}, got {v!r}")
        self.at += 1
        return v

    def number(self) -> float:
        sign = -1.0 if self.peek("-") else 1.0
        if self.peek("-") or self.peek("+"):
            self.at += 1
        if self.peek() and self.tokens[self.at][1].lower() in ("inf", "infinity"):
            self.at += 1
            return sign * np.inf
        return sign * float(self.take("num"))

    def terms(self) -> list[Term]:
        out = []
        sign = 1.0
        if self.peek("-") or self.peek("+"):
            sign = -1.0 if self.take() == "-" else 1.0
        while True:
            out.append(self.term(sign))
            if not self.peek():
                return out
            op = self.take("op")
            if op not in "+-":
                self.at -= 1
                raise self.fail("expected + or -")
            sign = -1.0 if op == "-" else 1.0

    def term(self, sign: float) -> Term:
        weight = sign
        found: dict[str, Any] | None = None
        while True:
            if self.peek() and self.tokens[self.at][0] == "num":
                weight *= float(self.take("num"))
            elif found is None and self.peek() and self.tokens[self.at][0] == "name":
                found = self.factor()
            elif found is not None and self.peek() and self.tokens[self.at][0] == "name":
                raise self.fail("a term has one signal times numbers (join signals with +)")
            else:
                raise self.fail("expected a signal or a number")
            if not self.peek("*"):
                break
            self.take("op", "*")
        if found is None:
            raise self.fail("a term needs a signal")
        return Term(weight=weight, **found)

    def factor(self) -> dict[str, Any]:
        name = self.take("name")
        if name not in _FUNCS and self.peek("("):
            self.at -= 1
            raise self.fail(f"unknown transform {name!r} "
                            "(use log1p(x), clip(x, low, high), binarize(x, threshold))")
        if name in _FUNCS and self.peek("("):  # log1p(plays), clip(hours, 0, 10), binarize(x, 3)
            self.take("op", "(")
            signal = self.take("name")
            args = self._more_numbers([])
            self.take("op", ")")
            return self._transform(name, signal, args)
        if self.peek(":"):  # the colon form: plays:log1p, hours:clip(0,10), plays:binarize(3)
            self.take("op", ":")
            func = self.take("name")
            args = []
            if self.peek("("):
                self.take("op", "(")
                if not self.peek(")"):
                    args = self._more_numbers([self.number()])
                self.take("op", ")")
            return self._transform(func, name, args)
        return {"signal": name}

    def _more_numbers(self, args: list[float]) -> list[float]:
        """``args`` followed by the numbers of ``, n, n ...`` at the cursor."""
        while self.peek(","):
            self.take("op", ",")
            args.append(self.number())
        return args

    def _transform(self, func: str, signal: str, args: list[float]) -> dict[str, Any]:
        if func not in _FUNCS:
            raise ConfigError(f"utility {self.text!r}: unknown transform {func!r}; use "
                              "log1p(x), clip(x, low, high), binarize(x, threshold)")
        if func == "clip" and len(args) == 1:
            args.append(np.inf)
        if len(args) != _FUNCS[func]:
            usage = {"log1p": "log1p(x)", "clip": "clip(x, low, high)", "binarize": "binarize(x, threshold)",
                     "none": "x"}[func]
            raise ConfigError(f"utility {self.text!r}: {func} of {signal!r} takes {_FUNCS[func]} "
                              f"number(s): {usage}")
        if func == "clip":
            low, high = (None if args[0] == -np.inf else args[0]), (None if args[1] == np.inf else args[1])
            return {"signal": signal, "transform": "clip", "low": low, "high": high}
        if func == "binarize":
            return {"signal": signal, "transform": "binarize", "threshold": args[0]}
        return {"signal": signal, "transform": func}


def add_utility(frame: pd.DataFrame,
                formula: UtilityFormula | Sequence[Mapping[str, Any]] | Mapping[str, float],
                column: str = "utility") -> pd.DataFrame:
    """A copy of ``frame`` with the formula's value in ``column`` (``frame.attrs["utility"]`` names
    the formula)."""
    f = formula if isinstance(formula, UtilityFormula) else UtilityFormula.from_config(formula)
    out = frame.copy()
    out[column] = f.apply(frame)
    out.attrs["utility"] = f.describe()
    return out


@dataclass(frozen=True)
class Normalizer:
    """Per-entity normalisation of interaction values.

    ``kind``: ``center`` (``r - mean``), ``divide`` (``r / mean``: the mission's
    ``rating_user_i / average_rating_from_user_i``), ``zscore`` (``(r - mean) / std``).
    ``side``: normalise per ``user`` or per ``item``. Entities with one value get std 1; a mean of 0
    under ``divide`` is an error naming the entity.
    """

    kind: Literal["center", "divide", "zscore"] = "center"
    side: Literal["user", "item"] = "user"

    def __post_init__(self) -> None:
        if self.kind not in ("center", "divide", "zscore"):
            raise ConfigError(f"normalisation {self.kind!r}: use center, divide or zscore")
        if self.side not in ("user", "item"):
            raise ConfigError(f"normalisation side {self.side!r}: use user or item")

    def fit(self, data: Interactions) -> FittedNormalizer:
        idx = data.user_idx if self.side == "user" else data.item_idx
        n = data.n_users if self.side == "user" else data.n_items
        v = data.values.astype(np.float64)
        count = np.bincount(idx, minlength=n).astype(np.float64)
        total = np.bincount(idx, weights=v, minlength=n)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(count > 0, total / np.maximum(count, 1), np.nan)
            sq = np.bincount(idx, weights=v * v, minlength=n)
            var = np.where(count > 1, sq / np.maximum(count, 1) - mean**2, np.nan)
        std = np.sqrt(np.maximum(var, 0.0))
        std = np.where(np.isfinite(std) & (std > 1e-12), std, 1.0)
        if self.kind == "divide":
            zero = np.flatnonzero((count > 0) & (np.abs(mean) < 1e-12))
            if len(zero):
                ids = (data.users if self.side == "user" else data.items).ids
                raise DataError(f"normalisation 'divide': {self.side} {ids[zero[0]]!r} has mean 0; "
                                "use 'center'")
        return FittedNormalizer(self.kind, self.side, mean, std, float(v.mean()), float(v.std() or 1.0))


    @property
    def label(self) -> str:
        """``user-zscore``, ``item-center``, ...: what :func:`parse_normalize` reads and result rows
        report."""
        return f"{self.side}-{self.kind}"


#: ``--normalize`` kinds: ``mean`` is an alias of ``divide`` (``r / mean``).
NORMALIZE_KINDS = {"center": "center", "divide": "divide", "mean": "divide", "zscore": "zscore"}


def parse_normalize(text: str | None) -> Normalizer | None:
    """``user-zscore``, ``user-center``, ``user-mean`` (= ``user-divide``: ``r / mean``),
    ``item-...``; ``none`` (or None) gives None. The CLI's ``--normalize`` and the config key
    ``normalize``.

    Raises:
        ConfigError: Anything else, listing the valid values.
    """
    if text is None:
        return None
    raw = str(text).strip().lower()
    if raw in ("", "none"):
        return None
    side, _, kind = raw.partition("-")
    valid = [f"{sd}-{k}" for sd in ("user", "item") for k in NORMALIZE_KINDS]
    if side not in ("user", "item") or kind not in NORMALIZE_KINDS:
        hint = nearest(raw, valid)
        did = f"; did you mean {hint!r}?" if hint else ""
        raise ConfigError(f"normalize {text!r}{did} use none or {', '.join(valid)}")
    return Normalizer(NORMALIZE_KINDS[kind], side)  # type: ignore[arg-type]


@dataclass(frozen=True)
class FittedNormalizer:
    """A :class:`Normalizer`'s statistics (index order); unknown entities (index -1 or never seen)
    use the global mean and std."""

    kind: str
    side: str
    mean: np.ndarray
    std: np.ndarray
    global_mean: float
    global_std: float

    def _stats(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        idx = np.asarray(idx, dtype=np.int64)
        ok = idx >= 0
        m = np.full(len(idx), self.global_mean)
        s = np.full(len(idx), self.global_std)
        m[ok], s[ok] = self.mean[idx[ok]], self.std[idx[ok]]
        miss = ~np.isfinite(m)
        m[miss], s[miss] = self.global_mean, self.global_std
        return m, s

    def transform(self, idx: np.ndarray, values: np.ndarray) -> np.ndarray:
        m, s = self._stats(idx)
        v = np.asarray(values, dtype=np.float64)
        if self.kind == "center":
            return v - m
        if self.kind == "divide":
            return v / m
        return (v - m) / s

    def inverse(self, idx: np.ndarray, values: np.ndarray) -> np.ndarray:
        m, s = self._stats(idx)
        v = np.asarray(values, dtype=np.float64)
        if self.kind == "center":
            return v + m
        if self.kind == "divide":
            return v * m
        return v * s + m

    def apply_to(self, data: Interactions) -> Interactions:
        """``data`` with normalised values (same rows and vocabularies)."""
        idx = data.user_idx if self.side == "user" else data.item_idx
        out = data.subset(np.arange(len(data)))
        out.values = self.transform(idx, data.values).astype(np.float32)
        return out

    def describe(self) -> str:
        return {"center": f"value - mean per {self.side}", "divide": f"value / mean per {self.side}",
                "zscore": f"(value - mean) / std per {self.side}"}[self.kind]

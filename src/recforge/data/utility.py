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

gives the mission's ``utility[user][j] = hours_watched_j + rating_j``.

:class:`Normalizer` divides each user's values by the user's mean, subtracts it, or z-scores them
(or the same per item); it is reversible (:meth:`FittedNormalizer.inverse`), so a model trained on
normalised values predicts on the original scale (the ``normalized`` model wraps any rating model so).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from recforge.config import nearest
from recforge.data.interactions import Interactions
from recforge.errors import ConfigError, DataError

__all__ = ["FittedNormalizer", "Normalizer", "Term", "UtilityFormula", "add_utility"]

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
            x = np.clip(x, -np.inf if self.low is None else self.low, np.inf if self.high is None else self.high)
        elif self.transform == "binarize":
            x = (x >= self.threshold).astype(np.float64)
        return self.weight * x

    def describe(self) -> str:
        inner = {
            "none": self.signal,
            "log1p": f"log1p({self.signal})",
            "clip": f"clip({self.signal}, {self.low}, {self.high})",
            "binarize": f"[{self.signal} >= {self.threshold}]",
        }[self.transform]
        return inner if self.weight == 1 else f"{self.weight:g}*{inner}"


@dataclass(frozen=True)
class UtilityFormula:
    """``utility = sum of the terms``; see the module docstring."""

    terms: tuple[Term, ...]

    @classmethod
    def from_config(cls, spec: Sequence[Mapping[str, Any]] | Mapping[str, float]) -> UtilityFormula:
        """From a list of term tables (``[{signal = "hours", weight = 1}, ...]``) or a plain
        ``{signal: weight}`` mapping."""
        if isinstance(spec, Mapping):
            spec = [{"signal": k, "weight": v} for k, v in spec.items()]
        terms = []
        for t in spec:
            if not isinstance(t, Mapping) or "signal" not in t:
                raise ConfigError("each utility term is a table with a 'signal' key, e.g. {signal = \"plays\"}")
            unknown = set(t) - {"signal", "weight", "transform", "low", "high", "threshold"}
            if unknown:
                raise ConfigError(f"utility term {t['signal']!r}: unknown key(s) {', '.join(sorted(unknown))}")
            terms.append(Term(**{k: (float(v) if k in ("weight", "low", "high", "threshold") and v is not None else v)
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
                raise DataError(f"utility: no signal column {t.signal!r}{did} the columns are {', '.join(have)}")
            col = pd.to_numeric(frame[t.signal], errors="coerce")
            bad = col.isna() & frame[t.signal].notna()
            if bad.any():
                row = int(np.flatnonzero(bad.to_numpy())[0])
                raise DataError(f"utility: row {row + 1}: signal {t.signal!r} is not a number "
                                f"({str(frame[t.signal].iloc[row])[:40]!r})")
            out += t.apply(col.to_numpy())
        return out

    def describe(self) -> str:
        """The formula as text, e.g. ``utility = hours + rating``."""
        return "utility = " + " + ".join(t.describe() for t in self.terms)


def add_utility(frame: pd.DataFrame, formula: UtilityFormula | Sequence[Mapping[str, Any]] | Mapping[str, float],
                column: str = "utility") -> pd.DataFrame:
    """A copy of ``frame`` with the formula's value in ``column`` (``frame.attrs["utility"]`` names the formula)."""
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
                raise DataError(f"normalisation 'divide': {self.side} {ids[zero[0]]!r} has mean 0; use 'center'")
        return FittedNormalizer(self.kind, self.side, mean, std, float(v.mean()), float(v.std() or 1.0))


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

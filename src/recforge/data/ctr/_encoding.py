"""CTR rows and their encoding: :class:`CTRData`, :class:`CTRSplit`, :class:`FieldSpec`, :func:`cross`
and :class:`FeatureEncoder`.

A CTR row is a set of (feature index, value) pairs grouped into *fields* (user, item, hour, ...).
:class:`CTRData` stores ``n`` rows as two ``(n, S)`` arrays over ``S`` slots, ``index`` and
``value``, plus the field of every slot. A one-hot categorical field takes one slot (value 1); a
numeric field takes one slot whose value is the transformed number; a multi-valued field (genres)
takes several slots with value ``1 / count`` each (so a field's embedding is the mean of its
values' embeddings, as libFM normalises sets) and index 0, the padding feature, with value 0 in the
unused slots. That is exactly the input ``x`` of a factorisation machine, ``y(x) = w0 + sum_i w_i
x_i + sum_{i<j} <v_i, v_j> x_i x_j``, written sparsely.

:class:`FeatureEncoder` learns the index layout from training rows only: categorical values seen
at least ``min_count`` times get their own index, every other value (rare or new at test time)
the field's out-of-vocabulary index; ``hash_buckets`` replaces the vocabulary by a stable hash for
very large fields; numeric fields are log-transformed (``log1p``) or cut into quantile bins.
A *cross* field (:func:`cross`, the memorisation part of Wide & Deep, Cheng et al. 2016) treats
each combination of several columns' values (a user x item pair) as one categorical value, with
the same ``min_count`` / OOV / hashing rules.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from recforge._arrays import category_key
from recforge.errors import ConfigError, DataError

__all__ = ["PAD", "CTRData", "CTRSplit", "FeatureEncoder", "FieldSpec", "cross"]

PAD = 0  # the padding feature: index 0, always with value 0
_MISSING = "\x00missing"
_CROSS_SEP = "\x1f"  # joins the values of a cross field's columns (not a character of ids)


# ---------------------------------------------------------------------------------------- tables
@dataclass(eq=False)
class CTRData:
    """Encoded CTR rows: feature indices and values per slot, and labels.

    Attributes:
        index: int64 ``(n, S)`` feature indices in ``[0, n_features)``.
        value: float32 ``(n, S)`` feature values (1 for one-hot slots, 0 for padding).
        labels: float32 ``(n,)`` in {0, 1}, or None for unlabelled rows (serving).
        slot_fields: int64 ``(S,)`` field number of every slot (non-decreasing).
        field_names: One name per field.
        n_features: Size of the feature space (embedding table rows).
        name: A label for reports.
        encoder: The fitted :class:`FeatureEncoder` that produced the rows, when known; a CTR
            model fitted on these rows keeps it, so it can score raw feature frames later.
    """

    index: np.ndarray
    value: np.ndarray
    labels: np.ndarray | None
    slot_fields: np.ndarray
    field_names: tuple[str, ...]
    n_features: int
    name: str = "ctr"
    encoder: FeatureEncoder | None = None

    def __post_init__(self) -> None:
        self.index = np.ascontiguousarray(np.atleast_2d(self.index), dtype=np.int64)
        self.value = np.array(np.broadcast_to(self.value, self.index.shape), dtype=np.float32)
        self.slot_fields = np.asarray(self.slot_fields, dtype=np.int64)
        self.field_names = tuple(self.field_names)
        n, s = self.index.shape
        if len(self.slot_fields) != s:
            raise DataError(f"{self.name}: {s} slots but {len(self.slot_fields)} slot fields")
        if s and (np.any(np.diff(self.slot_fields) < 0) or self.slot_fields.max() >= len(self.field_names)):
            raise DataError(f"{self.name}: slot_fields must be non-decreasing field numbers")
        if n and (self.index.min() < 0 or self.index.max() >= self.n_features):
            raise DataError(f"{self.name}: feature indices must lie in [0, {self.n_features})")
        if self.labels is not None:
            lab = np.asarray(self.labels, dtype=np.float32).ravel()
            if len(lab) != n:
                raise DataError(f"{self.name}: {len(lab)} labels for {n} rows")
            if not np.isin(lab, (0.0, 1.0)).all():
                raise DataError(f"{self.name}: labels must be 0 or 1")
            self.labels = lab

    def __len__(self) -> int:
        return int(self.index.shape[0])

    @property
    def n_slots(self) -> int:
        return int(self.index.shape[1])

    @property
    def n_fields(self) -> int:
        return len(self.field_names)

    def subset(self, rows: np.ndarray, name: str | None = None) -> CTRData:
        """The rows selected by a boolean mask or an index array."""
        return CTRData(self.index[rows], self.value[rows], None if self.labels is None else self.labels[rows],
                       self.slot_fields, self.field_names, self.n_features, name or self.name, self.encoder)

    @classmethod
    def from_indices(cls, labels: np.ndarray | None, index: np.ndarray, n_features: int | None = None,
                     field_names: Sequence[str] | None = None, name: str = "ctr") -> CTRData:
        """One-hot rows (one slot per field, value 1), e.g. a libFM ``(y, X)`` pair as read."""
        index = np.atleast_2d(np.asarray(index, dtype=np.int64))
        s = index.shape[1]
        names = tuple(field_names) if field_names is not None else tuple(f"f{j}" for j in range(s))
        nf = int(index.max()) + 1 if n_features is None else int(n_features)
        return cls(index, np.ones(index.shape, np.float32), labels, np.arange(s), names, nf, name)

    def __repr__(self) -> str:
        pos = "" if self.labels is None else f", {self.labels.mean():.3f} positive"
        return (f"CTRData({self.name!r}, {len(self)} rows, {self.n_fields} fields, {self.n_slots} slots, "
                f"{self.n_features} features{pos})")


@dataclass
class CTRSplit:
    """Train/validation/test CTR tables encoded with one encoder fitted on ``train``."""

    train: CTRData
    valid: CTRData | None
    test: CTRData
    encoder: FeatureEncoder | None = None
    description: str = ""


# ---------------------------------------------------------------------------------------- encoder
@dataclass(frozen=True)
class FieldSpec:
    """How one input column becomes features.

    Attributes:
        name: Column name.
        kind: ``"categorical"`` (one value per row), ``"numeric"``, ``"multi"`` (several values
            per row, in a list or a ``separator``-joined string) or ``"cross"`` (the combination of
            the values of ``columns`` in a row is one categorical value; see :func:`cross`).
        min_count: Categorical/multi values seen fewer times in training go to the OOV index.
        hash_buckets: Hash values into this many buckets instead of keeping a vocabulary (for very
            large fields; ``min_count`` is then not used).
        transform: Numeric fields: ``"log"`` (value ``log1p(max(x, 0))``, one slot), ``"bins"``
            (training quantile bins, each bin a categorical value; missing values get their own
            bin) or ``"none"`` (the raw number).
        n_bins: Quantile bins for ``transform="bins"``.
        separator: Multi-valued fields given as strings are split on it.
        max_values: Slots of a multi-valued field (default: the most values of a training row).
        columns: Cross fields: the (at least two) columns whose values are combined; ``name`` is
            then only the field's label.
    """

    name: str
    kind: Literal["categorical", "numeric", "multi", "cross"] = "categorical"
    min_count: int = 1
    hash_buckets: int | None = None
    transform: Literal["log", "bins", "none"] = "log"
    n_bins: int = 10
    separator: str = "|"
    max_values: int | None = None
    columns: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in ("categorical", "numeric", "multi", "cross"):
            raise ConfigError(
                f"field {self.name!r}: kind must be categorical, numeric, multi or cross, not {self.kind!r}")
        object.__setattr__(self, "columns", tuple(self.columns))  # a list read back from JSON
        if self.kind == "cross" and (len(self.columns) < 2 or len(set(self.columns)) != len(self.columns)):
            raise ConfigError(f"field {self.name!r}: a cross field needs at least two distinct columns")
        if self.kind != "cross" and self.columns:
            raise ConfigError(f"field {self.name!r}: columns is only for cross fields")
        if self.min_count < 1:
            raise ConfigError(f"field {self.name!r}: min_count must be >= 1")
        if self.hash_buckets is not None and self.hash_buckets < 1:
            raise ConfigError(f"field {self.name!r}: hash_buckets must be >= 1")
        if self.transform not in ("log", "bins", "none"):
            raise ConfigError(f"field {self.name!r}: transform must be log, bins or none")
        if self.n_bins < 1:
            raise ConfigError(f"field {self.name!r}: n_bins must be >= 1")
        if self.max_values is not None and self.max_values < 1:
            raise ConfigError(f"field {self.name!r}: max_values must be >= 1")


def cross(*columns: str, min_count: int = 1, hash_buckets: int | None = None, name: str | None = None) -> FieldSpec:
    """A cross field over ``columns``: each combination of their values is one categorical value.

    The memorisation ("wide") part of Wide & Deep (Cheng et al., "Wide & Deep Learning for
    Recommender Systems", DLRS 2016): a user x item cross gives every (user, item) pair seen at
    least ``min_count`` times in training its own feature (weight and embedding); pairs that are
    rarer or new share the field's out-of-vocabulary feature. ``hash_buckets`` hashes the pairs
    instead. The field is named ``"a_x_b"`` unless ``name`` is given.
    """
    return FieldSpec(name or "_x_".join(columns), "cross", min_count=min_count, hash_buckets=hash_buckets,
                     columns=tuple(columns))


def _cross_values(df: pd.DataFrame, spec: FieldSpec) -> np.ndarray:
    out = _as_str(df[spec.columns[0]])
    for c in spec.columns[1:]:
        out = out + _CROSS_SEP + _as_str(df[c])  # element-wise str concatenation of object arrays
    return np.asarray(out, dtype=object)


def _as_str(col: pd.Series) -> np.ndarray:
    """Category strings of a column, vectorised for numeric and string columns (the serving path)."""
    missing = col.isna().to_numpy()
    if pd.api.types.is_bool_dtype(col.dtype):
        out = np.where(col.to_numpy(dtype=bool, na_value=False), "True", "False").astype(object)
    elif pd.api.types.is_integer_dtype(col.dtype):
        out = col.to_numpy(dtype=np.int64, na_value=0).astype(str).astype(object)
    elif pd.api.types.is_float_dtype(col.dtype):
        v = col.to_numpy(dtype=np.float64, na_value=np.nan)
        whole = np.isfinite(v) & (v == np.round(v)) & (np.abs(v) < 2**62)
        out = np.where(whole, np.where(whole, v, 0).astype(np.int64).astype(str), v.astype(str)).astype(object)
    elif pd.api.types.infer_dtype(col, skipna=True) in ("string", "empty"):
        out = col.to_numpy(dtype=object, na_value=_MISSING)
    else:
        # mixed objects (3, 3.0 and "3" in one column): one call per value
        return col.astype(object).where(col.notna(), _MISSING).map(category_key).to_numpy(dtype=object)
    if missing.any():
        out[missing] = _MISSING
    return out


def _hash(values: np.ndarray, buckets: int) -> np.ndarray:
    h = pd.util.hash_array(np.asarray(values, dtype=object), categorize=True)
    return (h % np.uint64(buckets)).astype(np.int64)


def _split_multi(col: pd.Series, sep: str) -> list[list[str]]:
    out: list[list[str]] = []
    for v in col.tolist():
        if v is None or (isinstance(v, float) and np.isnan(v)):
            out.append([])
        elif isinstance(v, str):
            out.append([t for t in v.split(sep) if t != ""])
        else:
            out.append([category_key(t) for t in v])
    return out


class FeatureEncoder:
    """Maps a DataFrame of raw fields to :class:`CTRData`; fitted on training rows only.

    Index layout: 0 is the padding feature; then each field owns a contiguous block. Categorical,
    cross and multi-valued fields: ``[OOV, value_1, ..., value_m]`` (vocabulary sorted, values with at
    least ``min_count`` training rows) or ``hash_buckets`` hashed indices; numeric ``log``/``none``
    fields one index; ``bins`` fields ``n_bins + 1`` indices (the last for missing values).

    Args:
        fields: One :class:`FieldSpec` (or column name, meaning a categorical field) per field.
        label: Name of the label column (values must be 0/1 or boolean), or None.
    """

    def __init__(self, fields: Sequence[FieldSpec | str], label: str | None = "label") -> None:
        specs = [FieldSpec(f) if isinstance(f, str) else f for f in fields]
        if not specs:
            raise ConfigError("FeatureEncoder needs at least one field")
        names = [s.name for s in specs]
        if len(set(names)) != len(names):
            raise ConfigError(f"FeatureEncoder: duplicate field names in {names}")
        self.fields = specs
        self.label = label
        self.fitted_ = False

    # -- fit ---------------------------------------------------------------------
    def fit(self, df: pd.DataFrame, source: str = "DataFrame", line_offset: int | None = None) -> FeatureEncoder:
        """Learn vocabularies, bin edges and slot counts from the training rows ``df``.

        Errors name ``source`` and the row, or the file line ``df.index[row] + line_offset`` when
        ``line_offset`` is given (for frames read from a file and split without resetting the index).
        """
        self._line_offset = line_offset
        self._check_columns(df, source, need_label=False)
        if len(df) == 0:
            raise DataError(f"{source}: no rows to fit the feature encoder on")
        self.vocab_: dict[str, list[str]] = {}
        self._index_cache: dict[str, pd.Index] = {}
        self.edges_: dict[str, list[float]] = {}
        self.slots_: dict[str, int] = {}
        self.offsets_: dict[str, int] = {}
        self.sizes_: dict[str, int] = {}
        offset = 1  # index 0 is the padding feature
        for spec in self.fields:
            if spec.kind in ("categorical", "cross"):
                values = _cross_values(df, spec) if spec.kind == "cross" else _as_str(df[spec.name])
                size = self._fit_vocab(spec, pd.Series(values, dtype=object))
                self.slots_[spec.name] = 1
            elif spec.kind == "multi":
                col = df[spec.name]
                lists = _split_multi(col, spec.separator)
                flat = pd.Series([t for lst in lists for t in lst], dtype=object)
                size = self._fit_vocab(spec, flat)
                longest = max((len(lst) for lst in lists), default=1)
                self.slots_[spec.name] = spec.max_values or max(1, longest)
            else:
                x = self._numeric(df[spec.name], source, spec.name)
                if spec.transform == "bins":
                    ok = x[np.isfinite(x)]
                    qs = np.quantile(ok, np.linspace(0, 1, spec.n_bins + 1)[1:-1]) if len(ok) else np.empty(0)
                    self.edges_[spec.name] = np.unique(qs).tolist()
                    size = spec.n_bins + 1
                else:
                    size = 1
                self.slots_[spec.name] = 1
            self.offsets_[spec.name] = offset
            self.sizes_[spec.name] = size
            offset += size
        self.n_features_ = offset
        self.fitted_ = True
        return self

    def _fit_vocab(self, spec: FieldSpec, values: pd.Series) -> int:
        if spec.hash_buckets is not None:
            return spec.hash_buckets
        counts = values.value_counts()
        keep = sorted(str(v) for v in counts.index[counts.to_numpy() >= spec.min_count])
        self.vocab_[spec.name] = keep
        return len(keep) + 1

    def _numeric(self, col: pd.Series, source: str, name: str) -> np.ndarray:
        x = pd.to_numeric(col, errors="coerce")
        bad = x.isna().to_numpy() & col.notna().to_numpy()
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            where = _where(col, row, getattr(self, "_line_offset", None))
            raise DataError(f"{source}: {where}: numeric field {name!r} has value {col.iloc[row]!r}")
        return x.to_numpy(dtype=np.float64)

    def _check_columns(self, df: pd.DataFrame, source: str, need_label: bool) -> None:
        if not isinstance(df, pd.DataFrame):
            raise DataError(f"{source}: expected a DataFrame, got {type(df).__name__}")
        need = [c for s in self.fields for c in (s.columns if s.kind == "cross" else (s.name,))]
        need = list(dict.fromkeys(need)) + ([self.label] if need_label and self.label else [])
        missing = [c for c in need if c not in df.columns]
        if missing:
            # a frame read from a file: the columns come from its header, the line before the first row
            line_offset = getattr(self, "_line_offset", None)
            where = f" line {line_offset - 1} (header):" if line_offset else ""
            raise DataError(f"{source}:{where} missing field(s) {', '.join(map(repr, missing))}")

    # -- transform ---------------------------------------------------------------
    def transform(self, df: pd.DataFrame, name: str = "ctr", source: str | None = None,
                  line_offset: int | None = None) -> CTRData:
        """Encode ``df`` (labels are read when the label column is present); errors as in :meth:`fit`."""
        self._line_offset = line_offset
        if not self.fitted_:
            raise DataError("FeatureEncoder is not fitted; call fit() on the training rows first")
        source = source or name
        self._check_columns(df, source, need_label=False)
        n = len(df)
        idx_parts: list[np.ndarray] = []
        val_parts: list[np.ndarray] = []
        slot_fields: list[int] = []
        for f, spec in enumerate(self.fields):
            off = self.offsets_[spec.name]
            if spec.kind in ("categorical", "cross"):
                values = _cross_values(df, spec) if spec.kind == "cross" else _as_str(df[spec.name])
                local = self._lookup(spec, values)
                idx_parts.append((off + local)[:, None])
                val_parts.append(np.ones((n, 1), np.float32))
            elif spec.kind == "multi":
                m = self.slots_[spec.name]
                lists = _split_multi(df[spec.name], spec.separator)
                lens = np.fromiter((min(len(x), m) for x in lists), np.int64, n)
                flat = np.asarray([t for x in lists for t in x[:m]], dtype=object)
                local = self._lookup(spec, flat) if len(flat) else np.empty(0, np.int64)
                idx = np.full((n, m), PAD, np.int64)
                val = np.zeros((n, m), np.float32)
                rows = np.repeat(np.arange(n), lens)
                cols = np.arange(len(flat)) - np.repeat(np.cumsum(lens) - lens, lens)
                idx[rows, cols] = off + local
                val[rows, cols] = 1.0 / lens[rows]
                idx_parts.append(idx)
                val_parts.append(val)
            else:
                x = self._numeric(df[spec.name], source, spec.name)
                if spec.transform == "bins":
                    b = np.searchsorted(np.asarray(self.edges_[spec.name]), x, side="right")
                    b = np.where(np.isfinite(x), b, spec.n_bins)
                    idx_parts.append((off + b)[:, None])
                    val_parts.append(np.ones((n, 1), np.float32))
                else:
                    v = np.nan_to_num(x, nan=0.0)
                    if spec.transform == "log":
                        v = np.log1p(np.maximum(v, 0.0))
                    idx_parts.append(np.full((n, 1), off, np.int64))
                    val_parts.append(v.astype(np.float32)[:, None])
            slot_fields.extend([f] * idx_parts[-1].shape[1])
        labels = None
        if self.label and self.label in df.columns:
            labels = _labels(df[self.label], source, line_offset)
        return CTRData(np.concatenate(idx_parts, axis=1), np.concatenate(val_parts, axis=1), labels,
                       np.asarray(slot_fields), tuple(s.name for s in self.fields), self.n_features_, name, self)

    def fit_transform(self, df: pd.DataFrame, name: str = "ctr") -> CTRData:
        return self.fit(df, name).transform(df, name)

    def _lookup(self, spec: FieldSpec, values: np.ndarray) -> np.ndarray:
        if spec.hash_buckets is not None:
            return _hash(values, spec.hash_buckets)
        cache = self.__dict__.setdefault("_index_cache", {})
        if spec.name not in cache:
            cache[spec.name] = pd.Index(self.vocab_[spec.name], dtype=object)
        # an explicit object Index: pandas would otherwise infer (and convert to) a string dtype per call
        pos = cache[spec.name].get_indexer(pd.Index(np.asarray(values, dtype=object), dtype=object, copy=False))
        return pos.astype(np.int64) + 1  # -1 (unknown) -> 0, the OOV index

    def oov_rate(self, data: CTRData) -> dict[str, float]:
        """Share of rows whose value is out of vocabulary, per vocabulary field."""
        out = {}
        for f, spec in enumerate(self.fields):
            if spec.kind in ("categorical", "cross") and spec.hash_buckets is None:
                slot = int(np.flatnonzero(data.slot_fields == f)[0])
                out[spec.name] = float(np.mean(data.index[:, slot] == self.offsets_[spec.name]))
        return out

    # -- persistence (JSON, no pickle) ----------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        if not self.fitted_:
            raise DataError("FeatureEncoder is not fitted")
        return {"fields": [asdict(s) for s in self.fields], "label": self.label, "vocab": self.vocab_,
                "edges": self.edges_, "slots": self.slots_, "offsets": self.offsets_, "sizes": self.sizes_,
                "n_features": self.n_features_}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FeatureEncoder:
        enc = cls([FieldSpec(**s) for s in d["fields"]], d["label"])
        enc.vocab_ = {k: list(v) for k, v in d["vocab"].items()}
        enc.edges_ = {k: list(v) for k, v in d["edges"].items()}
        enc.slots_ = dict(d["slots"])
        enc.offsets_ = dict(d["offsets"])
        enc.sizes_ = dict(d["sizes"])
        enc.n_features_ = int(d["n_features"])
        enc.fitted_ = True
        return enc

    def save(self, path: str | Path) -> Path:
        from recforge.io import atomic_write

        path = Path(path)
        with atomic_write(path) as fh:
            fh.write(json.dumps(self.to_dict()))
        return path

    @classmethod
    def load(cls, path: str | Path) -> FeatureEncoder:
        path = Path(path)
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DataError(f"{path}: not a feature encoder file ({exc})") from exc


def _where(col: pd.Series, row: int, line_offset: int | None) -> str:
    if line_offset is None:
        return f"row {row}"
    return f"line {int(col.index[row]) + line_offset}"


def _labels(col: pd.Series, source: str, line_offset: int | None = None) -> np.ndarray:
    y = pd.to_numeric(col, errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isin(y, (0.0, 1.0))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(f"{source}: {_where(col, row, line_offset)}: label {col.iloc[row]!r} is not 0 or 1")
    return y.astype(np.float32)

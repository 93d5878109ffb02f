"""The canonical interaction log every model trains on."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recforge.data.vocabulary import Vocabulary, normalize_ids
from recforge.errors import ConfigError, DataError

Duplicates = Literal["error", "sum", "mean", "last", "first"]
#: The kinds a named signal can have (see :attr:`Interactions.signal_kinds`).
SIGNAL_KINDS = ("count", "duration", "rating", "binary")
#: A signal column, or several: ``"plays"``, ``"hours:duration"``, ``["plays", "hours:duration"]`` or
#: ``{"plays": "count", "hours": "duration"}`` (see :func:`parse_signals`).
SignalSpec = str | Sequence[str] | Mapping[str, str] | None


def parse_signals(spec: SignalSpec, *, where: str = "signals") -> dict[str, str]:
    """Named signal columns and their kinds, ``{column: kind}``, from any of the forms of :data:`SignalSpec`.

    A string is ``name[:kind]`` (several comma-separated: ``"plays,hours:duration"``); the kind
    defaults to ``count``. The same name twice, an empty name or an unknown kind is a
    :class:`~recforge.errors.ConfigError` naming the entry.
    """
    if spec is None:
        return {}
    items: list[tuple[str, str]] = []
    if not isinstance(spec, (str, Sequence, Mapping)):
        raise ConfigError(f"{where}: {spec!r} is not a signal list (use \"name[:kind]\", a list of them "
                          "or a {name = kind} table)")
    if isinstance(spec, Mapping):
        items = [(str(k), str(v)) for k, v in spec.items()]
    else:
        entries = [spec] if isinstance(spec, str) else list(spec)
        for entry in entries:
            if not isinstance(entry, str):
                raise ConfigError(f"{where}: {entry!r} is not a signal name (use \"name\" or \"name:kind\")")
            for part in entry.split(","):
                if not part.strip():
                    continue
                name, _, kind = part.strip().rpartition(":") if ":" in part else (part.strip(), "", "count")
                items.append((name.strip(), kind.strip() or "count"))
    out: dict[str, str] = {}
    for name, kind in items:
        if not name:
            raise ConfigError(f"{where}: a signal needs a column name (name[:kind])")
        if kind not in SIGNAL_KINDS:
            raise ConfigError(f"{where}: signal {name!r}: kind {kind!r} is not one of {', '.join(SIGNAL_KINDS)}")
        if name in out:
            raise ConfigError(f"{where}: signal {name!r} is named twice")
        out[name] = kind
    return out


def rating_signal_name(data: Interactions, *, several: str = "keep one") -> str:
    """The name of ``data``'s one signal of kind ``rating`` (``""`` when it has none).

    The rule the implicit-to-explicit models and the ``rating-masked`` protocols share, so that they
    agree on which signal is the rating.

    Raises:
        DataError: Several signals are of kind ``rating`` (``several`` says what to do).
    """
    named = [k for k, v in data.signal_kinds.items() if v == "rating"]
    if len(named) > 1:
        raise DataError(f"{data.name}: several rating signals ({', '.join(named)}); {several}")
    return named[0] if named else ""


@dataclass(eq=False)
class Interactions:
    """User-item interactions with index maps, values, optional timestamps and side features.

    Rows are (user, item) pairs stored as contiguous indices into :attr:`users` and :attr:`items`.
    ``values`` holds the rating for explicit feedback, or a weight (1.0, or a count) for implicit
    feedback. Subsets made by splits share the parent's vocabularies, so indices stay comparable
    across train and test; an entity with no rows in a training set is treated as unknown by models.

    Attributes:
        user_idx: int32 user index per row.
        item_idx: int32 item index per row.
        values: float32 value per row.
        users: Raw user id <-> index.
        items: Raw item id <-> index.
        timestamps: Optional int64 timestamp per row (any monotone unit, e.g. unix seconds).
        explicit: True when ``values`` are ratings on a scale, False for implicit feedback.
        user_features: Optional side features, one row per raw user id (the DataFrame's index).
        item_features: Optional side features, one row per raw item id (the DataFrame's index).
        name: A label for reports.
        signals: Named extra signals per row (``{"plays": array, "hours": array}``), each a float32
            array aligned with the rows; what a composite utility or an implicit-to-explicit model
            is built from. Empty when the log has one value column.
        signal_kinds: The kind of each signal, one of ``SIGNAL_KINDS`` (count, duration, rating,
            binary); a signal without an entry is taken as ``count``.
    """

    user_idx: np.ndarray
    item_idx: np.ndarray
    values: np.ndarray
    users: Vocabulary
    items: Vocabulary
    timestamps: np.ndarray | None = None
    explicit: bool = True
    user_features: pd.DataFrame | None = None
    item_features: pd.DataFrame | None = None
    name: str = "interactions"
    signals: dict[str, np.ndarray] = field(default_factory=dict)
    signal_kinds: dict[str, str] = field(default_factory=dict)
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.user_idx = np.ascontiguousarray(self.user_idx, dtype=np.int32)
        self.item_idx = np.ascontiguousarray(self.item_idx, dtype=np.int32)
        self.values = np.ascontiguousarray(self.values, dtype=np.float32)
        n = len(self.user_idx)
        if len(self.item_idx) != n or len(self.values) != n:
            raise DataError("user_idx, item_idx and values must have the same length")
        if self.timestamps is not None:
            self.timestamps = np.ascontiguousarray(self.timestamps, dtype=np.int64)
            if len(self.timestamps) != n:
                raise DataError("timestamps must have one entry per interaction")
        signals = {}
        for key, arr in (self.signals or {}).items():
            arr = np.ascontiguousarray(arr, dtype=np.float32)
            if arr.shape != (n,):
                raise DataError(f"signal {key!r} has {len(arr)} entries for {n} interactions")
            signals[str(key)] = arr
        self.signals = signals
        kinds = {str(k): str(v) for k, v in (self.signal_kinds or {}).items()}
        for key, kind in kinds.items():
            if key not in signals:
                raise DataError(f"signal_kinds names {key!r}, which is not a signal (signals: {sorted(signals)})")
            if kind not in SIGNAL_KINDS:
                raise DataError(f"signal {key!r}: kind {kind!r} is not one of {', '.join(SIGNAL_KINDS)}")
        self.signal_kinds = {k: kinds.get(k, "count") for k in signals}

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_dataframe(
        cls,
        df: pd.DataFrame,
        user: str = "user_id",
        item: str = "item_id",
        rating: str | None = None,
        timestamp: str | None = None,
        *,
        duplicates: Duplicates = "error",
        explicit: bool | None = None,
        users: Vocabulary | None = None,
        items: Vocabulary | None = None,
        source: str = "DataFrame",
        line_offset: int = 0,
        name: str | None = None,
        signals: SignalSpec = None,
    ) -> Interactions:
        """Build from a DataFrame with named columns.

        Args:
            df: One row per interaction.
            user: Column of raw user ids (any type).
            item: Column of raw item ids (any type).
            rating: Column of numeric ratings or counts; without it every row is an implicit 1.0.
            timestamp: Optional column of timestamps (numbers or datetimes).
            duplicates: What to do with repeated (user, item) rows: ``"error"`` (default),
                ``"sum"`` (implicit counts), ``"mean"``, ``"first"`` or ``"last"`` (by timestamp
                when there is one, else by row order).
            explicit: Whether values are ratings; defaults to ``rating is not None``.
            users: An existing user vocabulary to index into (rows with unknown users are an error).
            items: An existing item vocabulary to index into.
            source: Name of the file or object, used in error messages.
            line_offset: Added to the 0-based row number to give a file line number in errors.
            name: Label for reports.
            signals: Named signal columns kept per row (:attr:`signals`), e.g.
                ``["plays", "hours:duration", "rating:rating"]`` or ``{"plays": "count"}``
                (:func:`parse_signals`). Empty cells are missing (NaN); text that is not a number,
                a negative ``count``/``duration`` or a ``binary`` value other than 0/1 is an error
                naming the line. Repeated rows merge their signals by ``duplicates`` as the value
                (:func:`merge_rows`).
        """
        if not isinstance(df, pd.DataFrame):
            raise DataError(f"{source}: expected a pandas DataFrame, got {type(df).__name__}")
        kinds = parse_signals(signals)
        needed = [c for c in (user, item, rating, timestamp) if c is not None] + list(kinds)
        missing = [c for c in needed if c not in df.columns]
        if missing:
            raise DataError(
                f"{source}: missing column(s) {', '.join(map(repr, missing))}; "
                f"found {', '.join(map(repr, map(str, df.columns)))}"
            )
        if len(df) == 0:
            raise DataError(f"{source}: no interactions (the table is empty)")
        for col in (user, item):
            bad = df[col].isna().to_numpy()
            if bad.any():
                row = int(np.flatnonzero(bad)[0])
                raise DataError(f"{source}: line {row + line_offset}: column {col!r} is empty")
        if rating is not None:
            vals = pd.to_numeric(df[rating], errors="coerce")
            bad = vals.isna().to_numpy()
            if bad.any():
                row = int(np.flatnonzero(bad)[0])
                raw = df[rating].iloc[row]
                what = "is empty" if pd.isna(raw) or not str(raw).strip() else f"is not a number ({raw!r})"
                where = f"line {row + line_offset}" if line_offset else f"row {row}"
                raise DataError(f"{source}: {where}: column {rating!r} {what}")
            values = vals.to_numpy(dtype=np.float64)
            if not np.isfinite(values).all():
                row = int(np.flatnonzero(~np.isfinite(values))[0])
                raise DataError(f"{source}: line {row + line_offset}: column {rating!r} is not finite")
        else:
            values = np.ones(len(df), dtype=np.float64)
        ts: np.ndarray | None = None
        if timestamp is not None:
            ts = _timestamps(df[timestamp], source, timestamp, line_offset)
        sig = {col: signal_values(df[col], col, kind, source, line_offset) for col, kind in kinds.items()}

        raw_u = normalize_ids(df[user].to_numpy())
        raw_i = normalize_ids(df[item].to_numpy())
        users = users or Vocabulary(raw_u, "user")
        items = items or Vocabulary(raw_i, "item")
        u = users.index(raw_u)
        i = items.index(raw_i)
        for arr, raw, col in ((u, raw_u, user), (i, raw_i, item)):
            if (arr < 0).any():
                row = int(np.flatnonzero(arr < 0)[0])
                raise DataError(f"{source}: line {row + line_offset}: unknown {col} {raw[row].item()!r}")

        u, i, values, ts, sig = merge_rows(u, i, values, ts, duplicates, raw_u, raw_i, source, line_offset,
                                           signals=sig, kinds=kinds)
        if explicit is None:
            explicit = rating is not None
        return cls(u, i, values, users, items, ts, explicit=explicit, name=name or source, signals=sig,
                   signal_kinds=kinds)

    @classmethod
    def from_csv(
        cls,
        path: str | Path,
        user: str = "user_id",
        item: str = "item_id",
        rating: str | None = None,
        timestamp: str | None = None,
        *,
        sep: str | None = ",",
        duplicates: Duplicates = "error",
        explicit: bool | None = None,
        encoding: str = "utf-8",
        signals: SignalSpec = None,
    ) -> Interactions:
        """Read a delimited text file (optionally compressed) with a header row naming the columns.

        The columns are named exactly; :class:`recforge.data.source.DataSource` also finds them by
        their usual names, sniffs the separator and cleans the log. ``signals`` names extra signal
        columns (as in :meth:`from_dataframe`).
        """
        return cls._from_file(path, user, item, rating, timestamp, sep=sep, duplicates=duplicates,
                              explicit=explicit, encoding=encoding, signals=signals)

    @classmethod
    def from_parquet(
        cls,
        path: str | Path,
        user: str = "user_id",
        item: str = "item_id",
        rating: str | None = None,
        timestamp: str | None = None,
        *,
        duplicates: Duplicates = "error",
        explicit: bool | None = None,
        signals: SignalSpec = None,
    ) -> Interactions:
        """Read a Parquet file with named columns (needs pyarrow); ``signals`` as in :meth:`from_dataframe`."""
        return cls._from_file(path, user, item, rating, timestamp, sep=None, duplicates=duplicates,
                              explicit=explicit, signals=signals)

    @classmethod
    def _from_file(cls, path: str | Path, user: str, item: str, rating: str | None, timestamp: str | None, *,
                   sep: str | None, duplicates: Duplicates, explicit: bool | None,
                   encoding: str = "utf-8", signals: SignalSpec = None) -> Interactions:
        from recforge.data.reading import read_table, stem

        path = Path(path)
        df, offset = read_table(path, sep=sep, encoding=encoding, text_columns=lambda have: (user, item))
        for col in (user, item):
            if col in df.columns:
                df[col] = _maybe_int(df[col])
        return cls.from_dataframe(
            df, user, item, rating, timestamp, duplicates=duplicates, explicit=explicit,
            source=str(path), line_offset=offset, name=stem(path), signals=signals,
        )

    # ------------------------------------------------------------------ on disk
    def save(self, directory: str | Path, *, csr: bool = True) -> Path:
        """Write to a folder of ``.npy`` arrays and a ``manifest.json`` that :meth:`open` maps back.

        The write is atomic: a temporary folder beside ``directory`` is renamed into place, so a
        reader sees the old folder or the new one. ``csr=True`` also stores the users x items CSR
        matrix, so that :meth:`csr` of the opened log costs nothing. Side features are written as
        Parquet (needs pyarrow).
        """
        from recforge.data.mmap_store import save_interactions

        return save_interactions(self, directory, csr=csr)

    @classmethod
    def open(cls, directory: str | Path) -> Interactions:
        """Open a folder written by :meth:`save`: the row arrays (and the CSR matrix) are memory-mapped
        read-only, so a log of any size opens in about the time it takes to read its vocabularies."""
        from recforge.data.mmap_store import read_store

        fields, csr = read_store(directory)
        out = cls(**fields)
        if csr is not None:
            out._cache["csr"] = csr
        return out

    # ------------------------------------------------------------------ shape
    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def n_items(self) -> int:
        return len(self.items)

    def __len__(self) -> int:
        return len(self.user_idx)

    @property
    def nnz(self) -> int:
        return len(self.user_idx)

    @property
    def sparsity(self) -> float:
        """``1 - nnz / (n_users * n_items)`` over the vocabularies."""
        cells = self.n_users * self.n_items
        return 1.0 - self.csr().nnz / cells if cells else 1.0

    def __repr__(self) -> str:
        kind = "explicit" if self.explicit else "implicit"
        return (
            f"Interactions({self.name!r}, {len(self)} {kind} rows, {self.n_users} users, "
            f"{self.n_items} items)"
        )

    # ------------------------------------------------------------------ matrices
    def csr(self) -> sp.csr_matrix:
        """The users x items matrix of values (CSR, float32); built once and cached."""
        if "csr" not in self._cache:
            m = sp.csr_matrix(
                (self.values, (self.user_idx, self.item_idx)), shape=(self.n_users, self.n_items),
                dtype=np.float32,
            )
            m.sum_duplicates()
            m.sort_indices()
            self._cache["csr"] = m
        return self._cache["csr"]

    def csc(self) -> sp.csc_matrix:
        """The users x items matrix of values in CSC form (cached)."""
        if "csc" not in self._cache:
            self._cache["csc"] = self.csr().tocsc()
        return self._cache["csc"]

    def user_counts(self) -> np.ndarray:
        """Interactions per user index."""
        return np.bincount(self.user_idx, minlength=self.n_users)

    def item_counts(self) -> np.ndarray:
        """Interactions per item index."""
        return np.bincount(self.item_idx, minlength=self.n_items)

    # ------------------------------------------------------------------ derived sets
    def subset(self, mask_or_index: np.ndarray, name: str | None = None) -> Interactions:
        """Rows selected by a boolean mask or index array; vocabularies and features are shared."""
        sel = np.asarray(mask_or_index)
        return replace(
            self,
            user_idx=self.user_idx[sel],
            item_idx=self.item_idx[sel],
            values=self.values[sel],
            timestamps=None if self.timestamps is None else self.timestamps[sel],
            signals={k: v[sel] for k, v in self.signals.items()},
            signal_kinds=dict(self.signal_kinds),
            name=name or self.name,
            _cache={},
        )

    def to_implicit(self, threshold: float | None = None) -> Interactions:
        """Implicit-feedback copy: every row becomes 1.0, keeping only rows with value >= threshold."""
        keep = np.ones(len(self), bool) if threshold is None else self.values >= threshold
        out = self.subset(keep)
        out.values = np.ones(int(keep.sum()), dtype=np.float32)
        out.explicit = False
        return out

    def with_features(
        self, user_features: pd.DataFrame | None = None, item_features: pd.DataFrame | None = None
    ) -> Interactions:
        """Attach side features (DataFrames indexed by raw id)."""
        return replace(
            self,
            user_features=self.user_features if user_features is None else user_features,
            item_features=self.item_features if item_features is None else item_features,
            _cache=self._cache,
        )

    def to_dataframe(self) -> pd.DataFrame:
        """Rows with raw ids: ``user_id, item_id, value``, ``timestamp`` when present, then one
        column per named signal."""
        df = pd.DataFrame(
            {
                "user_id": self.users.ids[self.user_idx],
                "item_id": self.items.ids[self.item_idx],
                "value": self.values,
            }
        )
        if self.timestamps is not None:
            df["timestamp"] = self.timestamps
        for key, arr in self.signals.items():
            df[key] = arr
        return df

    def rating_scale(self) -> tuple[float, float]:
        """(min, max) of the values."""
        if len(self) == 0:
            return (0.0, 0.0)
        return float(self.values.min()), float(self.values.max())

    def pair_keys(self) -> np.ndarray:
        """One int64 key per row, ``user_idx * n_items + item_idx`` (for set operations)."""
        return self.user_idx.astype(np.int64) * self.n_items + self.item_idx


def _maybe_int(col: pd.Series) -> pd.Series:
    """Turn a column of digit strings into ints so ids like ``'007'`` vs ``7`` are handled once."""
    s = col.astype(str)
    if s.str.fullmatch(r"-?\d{1,18}").all():
        stripped = s.str.lstrip("-").str.lstrip("0")
        # keep strings when leading zeros carry meaning ('007' != '7')
        if (stripped.str.len().clip(lower=1) == s.str.lstrip("-").str.len()).all():
            return s.astype(np.int64)
    return col


def _timestamps(col: pd.Series, source: str, name: str, offset: int) -> np.ndarray:
    if pd.api.types.is_datetime64_any_dtype(col):
        base = pd.Timestamp(0, tz=col.dt.tz) if getattr(col.dt, "tz", None) else pd.Timestamp(0)
        return ((col - base) // pd.Timedelta(seconds=1)).to_numpy().astype(np.int64)
    num = pd.to_numeric(col, errors="coerce")
    if num.isna().any():
        parsed = pd.to_datetime(col, errors="coerce", utc=True)
        if parsed.isna().any():
            row = int(np.flatnonzero(parsed.isna().to_numpy())[0])
            raise DataError(f"{source}: line {row + offset}: column {name!r} is not a timestamp ({col.iloc[row]!r})")
        return ((parsed - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)).to_numpy().astype(np.int64)
    return num.to_numpy().astype(np.int64)


def signal_values(col: pd.Series, name: str, kind: str, source: str = "DataFrame", offset: int = 0) -> np.ndarray:
    """One signal column as float64 with NaN for empty cells, checked against its kind.

    Raises:
        DataError: Text that is not a number, an infinite value, a negative ``count`` or
            ``duration``, or a ``binary`` value other than 0 and 1 (naming the line and column).
    """
    vals = pd.to_numeric(col, errors="coerce").to_numpy(dtype=np.float64, copy=True)
    empty = col.isna().to_numpy() | col.astype(str).str.strip().eq("").to_numpy()
    where = "line" if offset else "row"
    bad = np.isnan(vals) & ~empty
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(f"{source}: {where} {row + offset}: signal {name!r} is not a number ({col.iloc[row]!r})")
    vals[empty] = np.nan
    ok = ~np.isnan(vals)
    problem = None
    if np.isinf(vals).any():
        problem, mask = "is not finite", np.isinf(vals)
    elif kind in ("count", "duration") and (vals[ok] < 0).any():
        problem, mask = f"is negative (a {kind} is >= 0)", ok & (np.nan_to_num(vals) < 0)
    elif kind == "binary" and not np.isin(vals[ok], (0.0, 1.0)).all():
        problem, mask = "is not 0 or 1 (a binary signal)", ok & ~np.isin(np.nan_to_num(vals), (0.0, 1.0))
    if problem is not None:
        row = int(np.flatnonzero(mask)[0])
        raw = col.iloc[row]
        raise DataError(f"{source}: {where} {row + offset}: signal {name!r} {problem} "
                        f"({raw!r})" if isinstance(raw, str) else f"{source}: {where} {row + offset}: signal "
                        f"{name!r} {problem} ({float(raw):g})")
    return vals


def _resolve_duplicates(
    u: np.ndarray,
    i: np.ndarray,
    values: np.ndarray,
    ts: np.ndarray | None,
    how: str,
    raw_u: np.ndarray,
    raw_i: np.ndarray,
    source: str,
    offset: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """:func:`merge_rows` without signals."""
    return merge_rows(u, i, values, ts, how, raw_u, raw_i, source, offset)[:4]  # type: ignore[return-value]


def merge_rows(
    u: np.ndarray,
    i: np.ndarray,
    values: np.ndarray,
    ts: np.ndarray | None,
    how: str,
    raw_u: np.ndarray,
    raw_i: np.ndarray,
    source: str,
    offset: int,
    *,
    signals: Mapping[str, np.ndarray] | None = None,
    kinds: Mapping[str, str] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None, dict[str, np.ndarray]]:
    """Merge repeated (user, item) rows by the ``duplicates`` policy ``how``.

    The value and every signal follow the same rule: ``first``/``last`` keep the first/last row
    (by timestamp when there is one, else row order), ``sum`` adds and ``mean`` averages. A signal's
    missing cells (NaN) are left out of ``sum`` and ``mean`` (all missing: NaN); two kinds keep
    their meaning under ``sum``: a ``binary`` signal takes the maximum (clicked in any row) and a
    ``rating`` the mean (two ratings do not add up to a better one). ``error`` refuses a repeat,
    naming its line.
    """
    sig = dict(signals or {})
    n_items = int(i.max()) + 1 if len(i) else 1
    key = u.astype(np.int64) * n_items + i
    order = np.argsort(key, kind="stable") if ts is None else np.lexsort((ts, key))
    sk = key[order]
    dup_next = sk[1:] == sk[:-1]
    if not dup_next.any():
        return u, i, values, ts, sig
    if how == "error":
        first = int(order[1:][dup_next][0])
        raise DataError(
            f"{source}: line {first + offset}: duplicate (user, item) pair "
            f"({raw_u[first].item()!r}, {raw_i[first].item()!r}); pass --duplicates sum|mean|first|last "
            "(duplicates= in Python)"
        )
    if how not in ("sum", "mean", "first", "last"):
        raise DataError(f"unknown duplicates policy {how!r}; use error, sum, mean, first or last")
    starts = np.flatnonzero(np.r_[True, ~dup_next])
    ends = np.r_[starts[1:], len(sk)]
    sv = values[order]
    if how == "sum":
        new_vals = np.add.reduceat(sv, starts)
    elif how == "mean":
        new_vals = np.add.reduceat(sv, starts) / (ends - starts)
    elif how == "first":
        new_vals = sv[starts]
    else:
        new_vals = sv[ends - 1]
    pick = order[ends - 1] if how == "last" else order[starts]
    new_ts = None
    if ts is not None:
        new_ts = ts[order][ends - 1] if how in ("last", "sum", "mean") else ts[order][starts]
    kinds = kinds or {}
    merged = {}
    for name, arr in sig.items():
        rule = how
        if how == "sum" and kinds.get(name) == "binary":
            rule = "max"
        elif how == "sum" and kinds.get(name) == "rating":
            rule = "mean"
        merged[name] = _merge_signal(np.asarray(arr, dtype=np.float64)[order], starts, ends, rule)
    return u[pick], i[pick], new_vals, new_ts, merged


def _merge_signal(sorted_vals: np.ndarray, starts: np.ndarray, ends: np.ndarray, rule: str) -> np.ndarray:
    """One signal's groups (rows ``starts[g]:ends[g]`` of ``sorted_vals``) merged by ``rule``, skipping NaN."""
    if rule == "first":
        return sorted_vals[starts]
    if rule == "last":
        return sorted_vals[ends - 1]
    have = ~np.isnan(sorted_vals)
    n = np.add.reduceat(have.astype(np.float64), starts)
    if rule == "max":
        out = np.maximum.reduceat(np.where(have, sorted_vals, -np.inf), starts)
    else:
        total = np.add.reduceat(np.where(have, sorted_vals, 0.0), starts)
        out = total if rule == "sum" else total / np.maximum(n, 1)
    out[n == 0] = np.nan
    return out


def require_ratings(inter: Interactions, what: str) -> None:
    """Raise :class:`DataError` unless ``inter`` holds ratings that vary: what a rating model
    (every ``fit`` of a model whose ``feedback`` is ``"explicit"``) and a rating protocol need. On
    implicit feedback (``explicit`` False: every value 1.0 or a count) or on constant values, a
    rating model would learn a constant and score a perfect, meaningless RMSE.

    Args:
        inter: The data.
        what: Who needs the ratings, for the message (``"svd (a rating model)"``).
    """
    if not inter.explicit:
        raise DataError(f"{what} needs explicit ratings, but {inter.name!r} is implicit feedback; name a rating "
                        "column (--rating-col on the command line, rating=COLUMN in Interactions.from_dataframe; "
                        "without --weights or --feedback implicit), or use a ranking protocol and model")
    if len(inter) and float(inter.values.min()) == float(inter.values.max()):
        raise DataError(f"{what} needs ratings that vary, but every value of {inter.name!r} is "
                        f"{float(inter.values[0]):g}; is the rating column (--rating-col) the right one?")

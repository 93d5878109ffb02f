"""One description of where interaction data comes from and how to read it: :class:`DataSource`.

Every command that takes ``--dataset``, the ``[dataset]`` table of a config file and the Python API
build the same :class:`DataSource` and call :meth:`DataSource.load`. It reads a registered dataset
by name, or any interaction log:

- delimited text (``.csv``, ``.tsv``, ``.tab``, ``.txt``, ``.dat``, also gzip/bz2/zip/xz
  compressed); the separator is sniffed from the first lines unless ``sep`` is given;
- header-less files, with ``columns`` naming the fields in order;
- Parquet (``.parquet``, ``.pq``).

Columns are found by name (``user_col``, ...) or, when not given, by the usual names
(``userId``, ``movieId``, ``artistID``, ``rating``, ``weight``, ``timestamp``, ...). The loader
states what it read (:attr:`Dataset.notes`): the columns it used, whether the feedback is explicit
(ratings) or implicit (with which weights), and what cleaning dropped.

Cleaning, in this order, each reported: duplicates (``error``/``first``/``last``/``sum``/``mean``),
``positive_threshold`` (explicit ratings >= t become implicit positives), k-core filtering
(``min_user_interactions``, ``min_item_interactions``, iterated to a fixed point), then the
implicit ``weights`` (``binary``, ``count``, ``log1p``).

Several signals per interaction: ``signals`` names extra numeric columns kept per row
(``["plays", "hours:duration", "rating:rating"]``, ``name[:kind]``, kinds count/duration/rating/
binary; :attr:`Interactions.signals`), merged over repeated rows by the ``duplicates`` rule. A
``utility`` formula (:func:`recforge.data.utility.parse_formula`, e.g. ``"log1p(plays) +
0.5*clip(hours, 0, 10) + rating"``) builds the value of every row from them, before cleaning; the
data is then a graded target (explicit) unless ``feedback="implicit"``, and every result row names
the formula (``docs/signals.md``).

A source may also carry its own train/test split: ``train`` and ``test`` files, a
``split_column`` (values ``train``/``test``) or a ``split_date`` (rows at or after it are test);
it is the dataset's ``given`` split, which the ``given-split`` protocol evaluates on.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recforge.config import nearest
from recforge.data.cleaning import apply_weights, kcore, positive_threshold, WEIGHTS
from recforge.data.datasets import DATASETS, Dataset, load
from recforge.data.interactions import Interactions, _maybe_int, parse_signals, require_ratings
from recforge.data.reading import SEP_NAMES, read_table, stem
from recforge.data.split import Split
from recforge.data.utility import UtilityFormula
from recforge.data.vocabulary import Vocabulary
from recforge.errors import ConfigError, DataError

FEEDBACK = ("auto", "explicit", "implicit")
DUPLICATES = ("error", "first", "last", "sum", "mean")

#: Column names recognised when a column is not named (compared lower-case, without ``_ -`` and spaces).
KNOWN_COLUMNS: dict[str, tuple[str, ...]] = {
    "user": ("userid", "user", "uid", "users", "customerid", "customer", "visitorid", "memberid", "readerid"),
    "item": ("itemid", "item", "iid", "items", "movieid", "movie", "artistid", "artist", "productid", "product",
             "trackid", "track", "songid", "song", "bookid", "isbn", "asin", "articleid", "poiid", "locationid",
             "venueid", "contentid", "videoid", "docid"),
    "rating": ("rating", "ratings", "score", "stars", "rate", "value", "bookrating"),
    "weight": ("weight", "weights", "count", "counts", "plays", "playcount", "clicks", "quantity", "frequency"),
    "timestamp": ("timestamp", "time", "ts", "datetime", "date", "unixtime", "unixtimestamp", "eventtime"),
}


def _norm(col: str) -> str:
    return re.sub(r"[\s_\-]", "", str(col)).lower()


@dataclass(frozen=True)
class DataSource:
    """Where interactions come from and how to read them (see the module docstring).

    Give ``name`` (a registered dataset), ``path`` (a file), or ``train`` and ``test`` (two files
    holding a given split); every other field is optional.

    Attributes:
        name: A registered dataset (``recforge data list``).
        path: An interaction log (text or Parquet).
        train: The training part of a given split (a file; read like ``path``).
        test: The test part of a given split.
        user_col: Column of user ids (default: found by name, e.g. ``user_id``, ``userId``).
        item_col: Column of item ids (default: found by name, e.g. ``item_id``, ``movieId``).
        rating_col: Column of ratings, or of implicit counts with ``feedback="implicit"`` or
            ``weights`` (default: found by name: ``rating``/``score``/... are ratings,
            ``weight``/``count``/``plays``/... are implicit counts).
        timestamp_col: Column of timestamps (numbers or dates; default: found by name).
        sep: Field separator (``,``, ``\\t``/``tab``, ``;``, ``|``, ``::``, ``whitespace``);
            sniffed from the first lines when None.
        encoding: Text encoding of the file.
        columns: Names of the fields of a header-less file, in order.
        feedback: ``auto`` (explicit when a rating column is used, else implicit), ``explicit``
            or ``implicit``.
        weights: Values of implicit data: ``binary`` (every interaction 1; the default),
            ``count`` (the count column, or the number of duplicates summed) or ``log1p``
            (``log(1 + count)``). Models that take values as confidence (iALS, item kNN with
            BM25/TF-IDF) use them.
        positive_threshold: Explicit ratings at or above it become implicit positives; the rest
            are dropped.
        min_user_interactions: Drop users with fewer interactions (k-core, to a fixed point with
            ``min_item_interactions``).
        min_item_interactions: Drop items with fewer interactions.
        duplicates: Repeated (user, item) rows: ``error`` (default), ``first``, ``last`` (by
            timestamp, else row order), ``sum`` or ``mean``.
        split_column: A column marking each row ``train`` or ``test`` (the given split).
        split_date: Rows at or after this date (``2020-01-31``, or a number in the timestamp
            column's unit) are the given split's test part.
        signals: Extra signal columns kept per row, ``name[:kind]`` (kinds ``count``, ``duration``,
            ``rating``, ``binary``; default ``count``), e.g. ``("plays", "hours:duration")``; a
            config table ``{plays = "count"}`` works too. Stored as ``"name:kind"`` strings.
        utility: A formula over the signals that becomes every row's value
            (:func:`recforge.data.utility.parse_formula`; term tables are accepted and stored as
            the formula's text). No rating column is read then: name ratings as a signal
            (``rating:rating``) and use them in the formula.
    """

    name: str | None = None
    path: str | None = None
    train: str | None = None
    test: str | None = None
    user_col: str | None = None
    item_col: str | None = None
    rating_col: str | None = None
    timestamp_col: str | None = None
    sep: str | None = None
    encoding: str = "utf-8"
    columns: tuple[str, ...] | None = None
    feedback: str = "auto"
    weights: str | None = None
    positive_threshold: float | None = None
    min_user_interactions: int = 0
    min_item_interactions: int = 0
    duplicates: str = "error"
    split_column: str | None = None
    split_date: str | None = None
    signals: tuple[str, ...] | None = None
    utility: str | None = None

    def __post_init__(self) -> None:
        if self.signals is not None:
            kinds = parse_signals(self.signals, where="--signal")  # type: ignore[arg-type]
            object.__setattr__(self, "signals", tuple(f"{k}:{v}" for k, v in kinds.items()) or None)
        if self.utility is not None:
            formula = UtilityFormula.from_config(self.utility)  # type: ignore[arg-type]
            object.__setattr__(self, "utility", formula.expression())
        if isinstance(self.columns, str):
            object.__setattr__(self, "columns", tuple(c.strip() for c in self.columns.split(",") if c.strip()))
        elif self.columns is not None:
            object.__setattr__(self, "columns", tuple(str(c) for c in self.columns))
        if self.sep is not None:
            object.__setattr__(self, "sep", SEP_NAMES.get(str(self.sep).lower(), str(self.sep)))
        self._check()

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_table(cls, table: Mapping[str, Any] | str | Path, *, where: str = "[dataset]") -> DataSource:
        """A source from a config file's ``[dataset]`` table (or a bare name or path).

        Raises:
            ConfigError: An unknown key (naming the nearest valid one) or an invalid value.
        """
        if isinstance(table, (str, Path)):
            return cls(**classify(str(table)))
        from recforge.config import check_keys

        check_keys(where, table.keys(), DATASET_KEYS)
        return cls(**{k: v for k, v in table.items() if v is not None})

    def to_table(self) -> dict[str, Any]:
        """The non-default fields, as a ``[dataset]`` table."""
        out: dict[str, Any] = {}
        for f in fields(self):
            val = getattr(self, f.name)
            if val != f.default:
                out[f.name] = list(val) if isinstance(val, tuple) else val
        return out

    def replace(self, **changes: Any) -> DataSource:
        return replace(self, **changes)

    def _check(self) -> None:
        given = [k for k in ("name", "path") if getattr(self, k)]
        pair = bool(self.train or self.test)
        if pair and not (self.train and self.test):
            raise ConfigError("a given split needs both train and test files (--train FILE --test FILE)")
        if len(given) > 1 or (given and pair):
            raise ConfigError("give one of: a dataset name, a file (path), or train and test files")
        splits = sum(bool(x) for x in (pair, self.split_column, self.split_date))
        if splits > 1:
            raise ConfigError("give one given split: train/test files, split_column or split_date")
        if self.feedback not in FEEDBACK:
            raise ConfigError(f"feedback {self.feedback!r}: use {', '.join(FEEDBACK)}")
        if self.weights is not None and self.weights not in WEIGHTS:
            hint = nearest(str(self.weights), WEIGHTS)
            did = f"; did you mean {hint!r}?" if hint else ""
            raise ConfigError(f"weights {self.weights!r}{did} use {', '.join(WEIGHTS)}")
        if self.weights is not None and self.feedback == "explicit":
            raise ConfigError("weights apply to implicit feedback; drop --weights or --feedback explicit")
        if self.utility is not None:
            if self.rating_col is not None:
                raise ConfigError("with --utility the value is the formula: drop --rating-col (name the rating "
                                  "column as a signal, --signal rating:rating, and use it in the formula)")
            if self.weights is not None:
                raise ConfigError("with --utility the value is the formula: drop --weights")
            missing = [s for s in self.formula().signals if s not in self.signal_kinds()]
            if missing and not self.name and not (self.path and _is_store(self.path)):
                raise ConfigError(f"utility names {', '.join(map(repr, missing))}, not declared as a signal: "
                                  f"add --signal {missing[0]} (signals: {', '.join(self.signal_kinds()) or 'none'})")
        if self.duplicates not in DUPLICATES:
            raise ConfigError(f"duplicates {self.duplicates!r}: use {', '.join(DUPLICATES)}")
        for key in ("min_user_interactions", "min_item_interactions"):
            val = getattr(self, key)
            if isinstance(val, bool) or not isinstance(val, (int, np.integer)) or val < 0:
                raise ConfigError(f"{key} must be a non-negative integer, got {val!r}")
        if self.positive_threshold is not None:
            if isinstance(self.positive_threshold, bool) or not isinstance(self.positive_threshold, (int, float)):
                raise ConfigError(f"positive_threshold must be a number, got {self.positive_threshold!r}")
            if self.feedback == "explicit":
                raise ConfigError("positive_threshold turns ratings into implicit feedback; drop --feedback explicit")
        if self.name and any(getattr(self, k) is not None for k in _FILE_ONLY):
            used = [k for k in _FILE_ONLY if getattr(self, k) is not None]
            raise ConfigError(f"dataset {self.name!r} is registered: {', '.join(used)} apply to files only")

    # ------------------------------------------------------------------ signals
    def signal_kinds(self) -> dict[str, str]:
        """``{column: kind}`` of the declared signals."""
        return parse_signals(self.signals)

    def formula(self) -> UtilityFormula | None:
        """The parsed ``utility`` formula (None without one)."""
        return None if self.utility is None else UtilityFormula.from_config(self.utility)

    # ------------------------------------------------------------------ loading
    @property
    def label(self) -> str:
        """A short name for reports: the registered name or the file's stem."""
        if self.name:
            return self.name
        target = self.path or self.train
        if not target:
            return "data"
        return stem(Path(target)) if self.path else f"{stem(Path(self.train))}+{stem(Path(self.test))}"  # type: ignore[arg-type]

    def load(self) -> Dataset:
        """Read, clean and describe the data (see the module docstring).

        Raises:
            DataError: A missing or unreadable file, an unknown column (listing the file's columns
                and the nearest name), a bad value (naming file, line and column), or cleaning
                that leaves nothing.
            ConfigError: Contradictory options.
        """
        if not (self.name or self.path or self.train):
            raise ConfigError("no dataset given: pass --dataset NAME|FILE (or --train FILE --test FILE)")
        notes: list[str] = []
        given_mask: np.ndarray | None = None
        if self.name:
            ds = load(self.name)
            if ds.interactions is None:
                return ds
            inter = ds.interactions
            notes.append(f"{self.name}: {'explicit ratings' if inter.explicit else 'implicit feedback'}")
        else:
            inter, given_mask = self._read_files(notes)
            inter = self._apply_utility(inter, notes)
            task = "rating" if inter.explicit else "ranking"
            folder = Path(self.path or self.train).parent  # type: ignore[arg-type]
            ds = Dataset(self.label, task, inter, path=folder)
        inter, given_mask = self._clean(inter, given_mask, notes)
        weights = None if inter.explicit else (self.weights or ("utility" if self.utility else "binary"))
        if self.split_date is not None:
            given_mask = ~_date_mask(inter, self.split_date, notes)
        changed = inter is not ds.interactions
        ds.interactions = inter
        ds.task = "rating" if inter.explicit else "ranking"
        ds.weights = weights
        ds.utility = self.utility
        ds.notes = notes
        if changed and ds._splits and self.name:
            notes.append(f"{self.name}: cleaning changed the rows, so its predefined splits "
                         f"({', '.join(ds._splits)}) are not available")
            ds._splits = {}
        if given_mask is not None:
            ds._splits = {**ds._splits, "given": _given_split(inter, given_mask, self.label)}
        return ds

    def _read_files(self, notes: list[str]) -> tuple[Interactions, np.ndarray | None]:
        from recforge.data.mmap_store import is_store

        if self.path and is_store(Path(self.path)):  # a folder written by Interactions.save: memory-mapped
            inter = Interactions.open(self.path)
            notes.append(f"{self.path}: saved interactions (memory-mapped), "
                         f"{'explicit ratings' if inter.explicit else 'implicit feedback'}")
            return inter, None
        frames, cols = self.read_raw()
        user, item, value, ts, explicit = cols["user"], cols["item"], cols["value"], cols["timestamp"], cols["explicit"]
        parts: list[tuple[str, Interactions]] = []
        users = items = None
        if len(frames) == 2:
            both = pd.concat([f[[c for c in (user, item) if c]] for _, f, _ in frames], ignore_index=True)
            for col in (user, item):
                both[col] = _maybe_int(both[col])
            users = Vocabulary(_ids(both[user]), "user")
            items = Vocabulary(_ids(both[item]), "item")
        for part_path, frame, offset in frames:
            for col in (user, item):
                frame[col] = _maybe_int(frame[col])
            sub = Interactions.from_dataframe(
                frame, user, item, value, ts, duplicates=self.duplicates, explicit=explicit,  # type: ignore[arg-type]
                users=users, items=items, source=str(part_path), line_offset=offset, name=stem(Path(part_path)),
                signals=self.signal_kinds(),
            )
            dropped = len(frame) - len(sub)
            if dropped:
                notes.append(f"{part_path}: duplicates={self.duplicates} merged {dropped:,} repeated (user, item) rows")
            parts.append((str(part_path), sub))
        desc = [f"user={user}", f"item={item}"]
        if value:
            desc.append(f"{'rating' if explicit else 'count'}={value}")
        if ts:
            desc.append(f"timestamp={ts}")
        if self.signals:
            desc.append(f"signals={', '.join(self.signals)}")
        kind = "explicit ratings" if explicit else "implicit feedback"
        if self.utility:
            kind = "a utility target" if explicit else "implicit feedback weighted by a utility"
        notes.append(f"{self.label}: {kind} ({', '.join(desc)})")
        if len(parts) == 1:
            inter = parts[0][1]
            mask = None
            if self.split_column:
                mask = _split_column_mask(frames[0][1], self.split_column, frames[0][0], frames[0][2], inter)
            return inter, mask
        train, test = parts[0][1], parts[1][1]
        inter = _concat(train, test, self.label)
        mask = np.r_[np.ones(len(train), bool), np.zeros(len(test), bool)]
        return inter, mask

    def read_raw(self) -> tuple[list[tuple[str, pd.DataFrame, int]], dict[str, Any]]:
        """The rows of the source's file(s) as read, before any conversion or cleaning, and the
        columns :meth:`load` would use.

        Returns:
            ``[(path, frame, line offset), ...]`` (one file, or the train and the test file) and
            ``{"user", "item", "value", "timestamp", "explicit", "signals"}`` (column names, None
            where absent). ``recforge data check`` inspects these rows.

        Raises:
            DataError: As :meth:`load` for a missing file or an unknown column.
            ConfigError: For a registered dataset (it has no raw file to read).
        """
        if not (self.path or self.train):
            raise ConfigError("read_raw needs a file (path, or train and test)")
        cols: dict[str, Any] = {}

        def text_columns(path: str) -> Any:
            def ids(have: list[str]) -> list[str]:
                if cols:  # the test file of a pair: the train file's columns
                    _require_columns(have, path, cols)
                else:
                    cols.update(self._resolve_columns(have, path))
                return [c for c in (cols["user"], cols["item"], self.split_column) if c]

            return ids

        frames = []
        for part in (self.path,) if self.path else (self.train, self.test):
            frame, offset = read_table(part, sep=self.sep, encoding=self.encoding,  # type: ignore[arg-type]
                                       columns=self.columns, text_columns=text_columns(str(part)))
            frames.append((str(part), frame, offset))
        return frames, cols

    def _resolve_columns(self, have: list[str], path: str) -> dict[str, Any]:
        kinds = self.signal_kinds()
        for col in kinds:
            if col not in have:
                hint = nearest(col, have) or next((c for c in have if c.lower() == col.lower()), None)
                did = f"; did you mean {hint!r}?" if hint else ""
                raise DataError(f"{path}: no column {col!r} (--signal){did} the file's columns are {', '.join(have)}")
        by_norm: dict[str, str] = {}
        for c in have:
            if c not in kinds:  # a signal column is never guessed as the value or the time
                by_norm.setdefault(_norm(c), c)

        def named(role: str, given: str | None, flag: str) -> str | None:
            if given is not None:
                if given not in have:
                    hint = nearest(given, have) or next((c for c in have if c.lower() == given.lower()), None)
                    did = f"; did you mean {hint!r}?" if hint else ""
                    raise DataError(f"{path}: no column {given!r} ({flag}){did} the file's columns are "
                                    f"{', '.join(have)}")
                return given
            for cand in KNOWN_COLUMNS[role]:
                if cand in by_norm:
                    return by_norm[cand]
            return None

        user = named("user", self.user_col, "--user-col")
        item = named("item", self.item_col, "--item-col")
        missing = [role for role, col in (("user", user), ("item", item)) if col is None]
        if missing:
            taken = [c for role in missing for c in kinds if c in have and _norm(c) in KNOWN_COLUMNS[role]]
            if taken:
                raise DataError(f"{path}: column {taken[0]!r} is named as a signal (--signal), so it "
                                "cannot be the user or item column; drop it from the signals")
            flags = " and ".join(f"--{role}-col" for role in missing)
            raise DataError(f"{path}: missing column(s) {', '.join(repr(r + '_id') for r in missing)}: no "
                            f"{' or '.join(missing)} column found; name it with {flags} (the file's columns are "
                            f"{', '.join(have)})")
        if user == item:
            raise DataError(f"{path}: the user and item columns are both {user!r}")
        ts = named("timestamp", self.timestamp_col, "--timestamp-col")
        value = None if self.utility else named("rating", self.rating_col, "--rating-col")
        counts = False
        if value is None and not self.utility:
            value = named("weight", None, "--rating-col")
            counts = value is not None
        used = {user, item, ts}
        if value in used:
            value = None
        if self.utility:
            explicit = self.feedback != "implicit"
        elif self.feedback == "explicit":
            explicit = True
            if value is None:
                raise DataError(f"{path}: --feedback explicit needs a rating column; name it with --rating-col "
                                f"(the file's columns are {', '.join(have)})")
        elif self.feedback == "implicit" or self.weights is not None:
            explicit = False
        else:
            explicit = value is not None and not counts
        return {"user": user, "item": item, "value": value, "timestamp": ts, "explicit": explicit,
                "signals": list(kinds)}

    def _apply_utility(self, inter: Interactions, notes: list[str]) -> Interactions:
        """``inter`` with the utility formula's value on every row (unchanged without a formula)."""
        formula = self.formula()
        if formula is None:
            return inter
        values = formula.apply_signals(inter.signals)
        if not np.isfinite(values).all():
            row = int(np.flatnonzero(~np.isfinite(values))[0])
            raise DataError(f"{self.label}: utility is not finite on row {row + 1} ({formula.describe()})")
        explicit = self.feedback != "implicit"
        notes.append(f"{self.label}: {formula.describe()}; values {values.min():.4g} to {values.max():.4g}, "
                     f"mean {values.mean():.4g} (missing signals count 0)")
        return replace(inter, values=values.astype(np.float32), explicit=explicit, _cache={})

    def _clean(self, inter: Interactions, mask: np.ndarray | None, notes: list[str]
               ) -> tuple[Interactions, np.ndarray | None]:
        label = self.label
        keep = np.ones(len(inter), bool)
        if self.positive_threshold is not None:
            if not inter.explicit:
                raise DataError(f"{label}: --positive-threshold needs explicit ratings, but the data is implicit")
            keep, note = positive_threshold(inter.values, float(self.positive_threshold))
            notes.append(f"{label}: {note}")
        if self.min_user_interactions or self.min_item_interactions:
            keep, note = kcore(inter.user_idx, inter.item_idx, self.min_user_interactions,
                               self.min_item_interactions, keep=keep)
            notes.append(f"{label}: {note}")
        out = inter
        if not keep.all():
            out = compact(inter.subset(keep), name=inter.name)
            if mask is not None:
                mask = mask[keep]
        if len(out) == 0:
            raise DataError(f"{label}: cleaning left no interactions")
        if self.feedback == "explicit" and not out.explicit:
            raise DataError(f"{label}: --feedback explicit, but the data is implicit feedback")
        if out.explicit and (self.positive_threshold is not None or self.feedback == "implicit"
                             or self.weights is not None):
            out = replace(out, explicit=False, _cache={})
        if not out.explicit and not (self.utility and self.positive_threshold is None):
            values, note = apply_weights(out.values, self.weights or "binary", label)
            if values is not out.values:
                out = replace(out, values=values, _cache={})
            if note:
                notes.append(f"{label}: {note}")
        return out, mask


DATASET_KEYS = frozenset(f.name for f in fields(DataSource))
"""The keys of a config file's ``[dataset]`` table."""
_FILE_ONLY = ("user_col", "item_col", "rating_col", "timestamp_col", "sep", "columns", "split_column", "signals",
              "utility")


def _is_store(path: str) -> bool:
    from recforge.data.mmap_store import is_store

    return is_store(Path(path))


def classify(value: str) -> dict[str, str]:
    """``{"name": value}`` for a registered dataset, else ``{"path": value}`` for anything that
    looks like a file (it exists, or has a suffix or a folder); other strings are names, so an
    unknown name is reported with the list of registered ones."""
    if value in DATASETS:
        return {"name": value}
    p = Path(value)
    if p.exists() or p.suffix or len(p.parts) > 1:
        return {"path": value}
    return {"name": value}


def data_source(dataset: str | Path | Mapping[str, Any] | DataSource | None = None, **options: Any) -> DataSource:
    """The Python API's way to say the same as ``--dataset X --user-col ...``: ``data_source("log.csv",
    user_col="uid", weights="log1p").load()``."""
    if isinstance(dataset, DataSource):
        return dataset.replace(**options) if options else dataset
    base = {} if dataset is None else (classify(str(dataset)) if isinstance(dataset, (str, Path)) else dict(dataset))
    return DataSource.from_table({**base, **{k: v for k, v in options.items() if v is not None}})


def load_file(
    path: str | Path,
    user: str | None = None,
    item: str | None = None,
    rating: str | None = None,
    timestamp: str | None = None,
    **kw: Any,
) -> Dataset:
    """Load any interaction log (text or Parquet) as a :class:`~recforge.data.datasets.Dataset`: a shorthand for
    ``DataSource(path=..., user_col=..., ...).load()`` (``kw`` are its other fields: ``sep``, ``columns``, ``weights``, ``duplicates``, ...)."""
    return DataSource(path=str(path), user_col=user, item_col=item, rating_col=rating, timestamp_col=timestamp,
                      **kw).load()


def _require_columns(have: list[str], path: str, cols: Mapping[str, Any]) -> None:
    for key in ("user", "item", "value", "timestamp", "signals"):
        for col in (cols.get(key) or ()) if key == "signals" else (cols[key],):
            if col and col not in have:
                hint = nearest(col, have)
                did = f"; did you mean {hint!r}?" if hint else ""
                raise DataError(f"{path}: no column {col!r}{did} the file's columns are {', '.join(have)}")


def _ids(col: pd.Series) -> np.ndarray:
    bad = col.isna().to_numpy()
    if bad.any():
        return col[~bad].to_numpy()
    return col.to_numpy()


# ---------------------------------------------------------------------------------------- given splits
def _concat(train: Interactions, test: Interactions, name: str) -> Interactions:
    ts = None
    if train.timestamps is not None and test.timestamps is not None:
        ts = np.r_[train.timestamps, test.timestamps]
    return Interactions(np.r_[train.user_idx, test.user_idx], np.r_[train.item_idx, test.item_idx],
                        np.r_[train.values, test.values], train.users, train.items, ts, explicit=train.explicit,
                        name=name, signals={k: np.r_[v, test.signals[k]] for k, v in train.signals.items()},
                        signal_kinds=train.signal_kinds)


def _given_split(inter: Interactions, train_mask: np.ndarray, label: str) -> Any:
    def make() -> Split:
        if not train_mask.any() or train_mask.all():
            side = "train" if not train_mask.any() else "test"
            raise DataError(f"{label}: the given split's {side} part is empty")
        return Split(train=inter.subset(train_mask, f"{label}:train"), test=inter.subset(~train_mask, f"{label}:test"),
                     name=f"{label}/given")

    return make


def _split_column_mask(frame: pd.DataFrame, col: str, path: str, offset: int, inter: Interactions) -> np.ndarray:
    have = [str(c) for c in frame.columns]
    if col not in have:
        hint = nearest(col, have)
        did = f"; did you mean {hint!r}?" if hint else ""
        raise DataError(f"{path}: no column {col!r} (--split-column){did} the file's columns are {', '.join(have)}")
    if len(frame) != len(inter):
        raise DataError(f"{path}: --split-column needs one row per (user, item) pair; use --duplicates error")
    vals = frame[col].astype(str).str.strip().str.lower()
    known = vals.isin(["train", "test"]).to_numpy()
    if not known.all():
        row = int(np.flatnonzero(~known)[0])
        raise DataError(f"{path}: line {row + offset}: column {col!r} is {frame[col].iloc[row]!r}; "
                        "use train or test")
    return (vals == "train").to_numpy()


def _date_mask(inter: Interactions, date: Any, notes: list[str]) -> np.ndarray:
    """True for rows at or after ``date`` (the test part of a global temporal split)."""
    if inter.timestamps is None:
        raise DataError(f"{inter.name}: --split-date needs a timestamp column (name it with --timestamp-col)")
    ts = inter.timestamps
    if isinstance(date, (int, float)) or (isinstance(date, str) and re.fullmatch(r"-?\d+", date.strip())):
        cut = int(date)
        unit = "the timestamp column's unit"
    else:
        try:
            stamp = pd.Timestamp(str(date))
        except (ValueError, TypeError):
            raise ConfigError(f"--split-date {date!r} is not a date (use e.g. 2020-01-31)") from None
        if stamp.tz is None:
            stamp = stamp.tz_localize("UTC")
        secs = int(stamp.timestamp())
        # unix milliseconds are the other common unit of numeric logs
        unit, cut = ("milliseconds", secs * 1000) if ts.max() > 10**11 else ("seconds", secs)
    test = ts >= cut
    notes.append(f"{inter.name}: --split-date {date}: {int(test.sum()):,} rows at or after the cut "
                 f"({cut}, {unit}) are test, {int((~test).sum()):,} before it are train")
    return test


def compact(inter: Interactions, name: str | None = None) -> Interactions:
    """The same rows with vocabularies holding only the ids that occur (after filtering)."""
    users = Vocabulary(inter.users.ids[np.unique(inter.user_idx)], "user")
    items = Vocabulary(inter.items.ids[np.unique(inter.item_idx)], "item")
    u = users.index(inter.users.ids[inter.user_idx])
    i = items.index(inter.items.ids[inter.item_idx])
    out = Interactions(u, i, inter.values, users, items, inter.timestamps, explicit=inter.explicit,
                       name=name or inter.name, signals=inter.signals, signal_kinds=inter.signal_kinds)
    if inter.user_features is not None or inter.item_features is not None:
        out = out.with_features(inter.user_features, inter.item_features)
    return out


# ---------------------------------------------------------------------------------------- writing
def to_frame(inter: Interactions) -> pd.DataFrame:
    """Rows with raw ids, as :meth:`DataSource.load` reads them back: ``user_id, item_id``, then
    ``rating`` (explicit) or ``weight`` (implicit values other than all 1), then ``timestamp``, then
    one column per signal (read back with ``--signal``; the value column is named ``value`` when a
    signal takes its usual name)."""
    df = pd.DataFrame({"user_id": inter.users.ids[inter.user_idx], "item_id": inter.items.ids[inter.item_idx]})
    usual = "rating" if inter.explicit else "weight"
    column = next(c for c in (usual, "value", "target", "_value") if c not in inter.signals)
    if inter.explicit or (len(inter) and not np.all(inter.values == 1)):
        df[column] = inter.values
    if inter.timestamps is not None:
        df["timestamp"] = inter.timestamps
    for key, arr in inter.signals.items():
        df[key] = arr
    return df

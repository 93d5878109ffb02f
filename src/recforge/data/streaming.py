"""Reading interaction logs larger than memory comfortably allows: CSV and Parquet in batches.

:func:`read_interactions` reads a file twice, one batch of rows at a time (pyarrow): the first pass
collects the distinct user and item ids (one sorted array per side, merged batch by batch, no Python
object per row) and counts the rows; the second maps each batch's ids to indices with a binary
search (integer ids) or a hash lookup (string ids) and writes them straight into arrays allocated
once at their final size. Peak memory is therefore the final arrays, one batch (with pyarrow's
decoding buffers) and one group of rows' keys for the duplicate check (:func:`check_duplicates`), against the pandas reader's several
copies of the whole table (:meth:`Interactions.from_csv` holds the DataFrame, its id columns as
Python objects and the arrays at once).

Ids follow :meth:`Interactions.from_csv`'s rules: a CSV id column whose every value is an integer
written without a leading zero is read as int64, otherwise as strings; a Parquet column keeps its
type (integers as int64, anything else as strings). Rows keep the file's order.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numba import njit

from recforge.data.interactions import Duplicates, Interactions, SignalSpec, _timestamps, merge_rows, parse_signals, \
    signal_values
from recforge.data.vocabulary import Vocabulary
from recforge.errors import DataError

#: Rows per batch (about 2-8 MB of arrays per batch, whatever the file's size; pyarrow's decoding
#: buffers grow with it: 1M-row batches held ~180 MB at once, 256k-row ones ~80 MB).
BATCH_ROWS = 1 << 18
_INT_ID = r"^-?(0|[1-9][0-9]{0,17})$"  # what from_csv reads as an integer id ('007' stays a string)


def read_interactions(
    path: str | Path,
    user: str = "user_id",
    item: str = "item_id",
    rating: str | None = None,
    timestamp: str | None = None,
    *,
    sep: str | None = None,
    duplicates: Duplicates = "error",
    explicit: bool | None = None,
    batch_rows: int = BATCH_ROWS,
    name: str | None = None,
    signals: SignalSpec = None,
) -> Interactions:
    """Read a CSV/TSV or Parquet interaction log in batches (see the module docstring).

    Args:
        path: A ``.parquet``/``.pq`` file, or a delimited text file with a header row.
        user, item, rating, timestamp: Column names (``rating``/``timestamp`` optional).
        sep: Field separator of a text file (default ``\\t`` for ``.tsv``/``.tab``, else ``,``).
        duplicates: Repeated (user, item) pairs: ``"error"`` (default) or a policy of
            :meth:`Interactions.from_dataframe` (resolved in memory: the lean path is for logs
            without repeats).
        explicit: Whether values are ratings; defaults to ``rating is not None``.
        batch_rows: Rows per batch.
        name: Label for reports (default: the file's stem).
        signals: Named signal columns kept per row (``["plays", "hours:duration"]``; see
            :meth:`Interactions.from_dataframe`): float32 arrays filled batch by batch, empty cells NaN.

    Raises:
        DataError: A missing file or column, an empty id, a value that is not a number, a
            duplicate pair (naming the file and line).
    """
    from recforge._optional import require

    require("pyarrow", purpose="streaming CSV and Parquet")
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty")
    kinds = parse_signals(signals)
    reader = _Reader(path, user, item, rating, timestamp, sep, batch_rows, list(kinds))
    n, users, items = reader.vocabularies()
    _release_arrow_memory()
    if n == 0:
        raise DataError(f"{path}: no interactions (the table is empty)")
    u = np.empty(n, dtype=np.int32)
    i = np.empty(n, dtype=np.int32)
    values = np.ones(n, dtype=np.float32)
    ts = np.empty(n, dtype=np.int64) if timestamp is not None else None
    sig = {col: np.empty(n, dtype=np.float32) for col in kinds}
    pos = 0
    for batch in reader.batches():
        m = batch.num_rows
        sl = slice(pos, pos + m)
        u[sl] = reader.index(batch, user, users)
        i[sl] = reader.index(batch, item, items)
        if rating is not None:
            values[sl] = reader.numbers(batch, rating, pos)
        if ts is not None:
            ts[sl] = _timestamps(batch.column(timestamp).to_pandas(), str(path), timestamp, pos + reader.line0)
        for col, kind in kinds.items():
            sig[col][sl] = signal_values(batch.column(col).to_pandas(), col, kind, str(path), pos + reader.line0)
        pos += m
    _release_arrow_memory()
    if explicit is None:
        explicit = rating is not None
    first = check_duplicates(u, i, len(items))
    if first is not None:
        if duplicates == "error":
            raise DataError(
                f"{path}: line {first[1] + reader.line0}: duplicate (user, item) pair "
                f"({users.ids[u[first[1]]].item()!r}, {items.ids[i[first[1]]].item()!r}); "
                "pass duplicates='sum', 'mean', 'first' or 'last'"
            )
        u, i, values, ts, sig = merge_rows(u, i, values, ts, duplicates, u, i, str(path), reader.line0,
                                           signals=sig, kinds=kinds)
    return Interactions(u, i, values, users, items, ts, explicit=explicit, name=name or path.stem, signals=sig,
                        signal_kinds=kinds)


def check_duplicates(u: np.ndarray, i: np.ndarray, n_items: int, chunk_rows: int | None = None) -> tuple[int, int] | None:
    """The rows ``(first, second)`` of a repeated (user, item) pair, or None.

    Users are visited in ranges of at most ``chunk_rows`` rows (default: the larger of
    :data:`DUPLICATE_CHUNK_ROWS` and an eighth of the log), or one user: each
    range's rows are gathered by a counting sort by user (one int32 per gathered row), and an item
    stamped with the current user is a repeat. Extra memory is therefore 4 bytes a row of one range
    (a sorted int64 key would take 8 bytes a row of the whole log) plus the per-user counts, at the
    cost of one sequential scan of ``u`` per range. The pair reported is the smallest repeated key
    (the lowest user, then item index), the rule :meth:`Interactions.from_dataframe` follows;
    within it, the two earliest rows.
    """
    n = len(u)
    if n < 2:
        return None
    u = np.ascontiguousarray(u, np.int32)
    chunk = max(DUPLICATE_CHUNK_ROWS, -(-n // 8)) if chunk_rows is None else max(1, int(chunk_rows))
    found = _first_repeat(u, np.ascontiguousarray(i, np.int32), n_items, chunk)
    return None if found[0] < 0 else (int(found[0]), int(found[1]))


#: Rows gathered at a time by the duplicate check (at least an eighth of the log).
DUPLICATE_CHUNK_ROWS = 1 << 22


@njit(cache=True)
def _first_repeat(u, i, n_items, chunk):  # pragma: no cover - compiled
    n_users = 0
    for r in range(len(u)):
        n_users = max(n_users, u[r] + 1)
    counts = np.zeros(n_users + 1, dtype=np.int64)
    for r in range(len(u)):
        counts[u[r] + 1] += 1
    stamp = np.full(n_items, -1, dtype=np.int64)
    first = np.empty(n_items, dtype=np.int32)
    order = np.empty(0, dtype=np.int32)
    fill = np.empty(0, dtype=np.int64)
    lo = 0
    while lo < n_users:
        # the next range of users [lo, hi): at most ``chunk`` rows, or one user
        hi = lo + 1
        rows = counts[lo + 1]
        while hi < n_users and rows + counts[hi + 1] <= chunk:
            rows += counts[hi + 1]
            hi += 1
        if order.shape[0] < rows:
            order = np.empty(rows, dtype=np.int32)
        if fill.shape[0] < hi - lo + 1:
            fill = np.empty(hi - lo + 1, dtype=np.int64)
        fill[0] = 0
        for user in range(lo, hi):  # start of each user's rows within the range
            fill[user - lo + 1] = fill[user - lo] + counts[user + 1]
        start = fill[: hi - lo].copy()
        for r in range(len(u)):  # stable counting sort of the range's rows by user
            user = u[r]
            if lo <= user < hi:
                order[start[user - lo]] = r
                start[user - lo] += 1
        best_item, best_rows = n_items, (np.int64(-1), np.int64(-1))
        for user in range(lo, hi):
            for p in range(fill[user - lo], fill[user - lo + 1]):
                r = order[p]
                item = i[r]
                if stamp[item] == user:
                    if item < best_item:
                        best_item, best_rows = item, (np.int64(first[item]), np.int64(r))
                else:
                    stamp[item] = user
                    first[item] = r
            if best_item < n_items:
                return best_rows
        lo = hi
    return (np.int64(-1), np.int64(-1))


def _release_arrow_memory() -> None:
    """Hand the memory pyarrow's allocator keeps for reuse back to the system (between passes)."""
    import pyarrow as pa

    release = getattr(pa.default_memory_pool(), "release_unused", None)
    if release is not None:
        release()


class _Reader:
    """One file's batches, read as many times as asked, with ids typed by the first pass."""

    def __init__(self, path: Path, user: str, item: str, rating: str | None, timestamp: str | None,
                 sep: str | None, batch_rows: int, signals: list[str] | None = None) -> None:
        self.path = path
        self.cols = [c for c in (user, item, rating, timestamp) if c is not None]
        self.cols += [c for c in signals or () if c not in self.cols]
        self.ids = (user, item)
        self.batch_rows = int(batch_rows)
        self.parquet = path.suffix.lower() in (".parquet", ".pq")
        if sep is None:
            sep = "\t" if path.suffix.lower() in (".tsv", ".tab") else ","
        self.sep = sep
        self.line0 = 0 if self.parquet else 2  # header is line 1 of a text file
        self.int_ids: dict[str, bool] = {}
        self._check_columns()

    # ------------------------------------------------------------------ batches
    def _check_columns(self) -> None:
        import pyarrow.parquet as pq

        try:
            if self.parquet:
                names = pq.ParquetFile(self.path).schema_arrow.names
            else:
                with open(self.path, encoding="utf-8", errors="replace") as fh:
                    names = fh.readline().rstrip("\r\n").split(self.sep)
        except Exception as exc:  # pyarrow raises many types for a bad file
            raise DataError(f"{self.path}: not a readable {'Parquet' if self.parquet else 'text'} file ({exc})") from exc
        missing = [c for c in self.cols if c not in names]
        if missing:
            raise DataError(f"{self.path}: missing column(s) {', '.join(map(repr, missing))}; "
                            f"found {', '.join(map(repr, names))}")

    def _raw_batches(self, cols: list[str]) -> Iterator[Any]:
        import pyarrow as pa

        try:
            if self.parquet:
                import pyarrow.parquet as pq

                # no pre-buffering: pyarrow would otherwise hold whole column chunks ahead (~2x the memory)
                pf = pq.ParquetFile(self.path, pre_buffer=False, buffer_size=1 << 20)
                yield from pf.iter_batches(batch_size=self.batch_rows, columns=cols)
            else:
                from pyarrow import csv

                types = {c: pa.string() for c in self.ids}
                cols = [c for c in self.cols if c in cols]  # the file's order
                stream = csv.open_csv(
                    self.path,
                    read_options=csv.ReadOptions(block_size=max(1 << 16, self.batch_rows * 24)),
                    parse_options=csv.ParseOptions(delimiter=self.sep),
                    convert_options=csv.ConvertOptions(include_columns=cols, column_types=types,
                                                       strings_can_be_null=True),
                )
                yield from stream
        except (pa.ArrowInvalid, OSError) as exc:
            raise DataError(f"{self.path}: could not parse: {str(exc).strip().splitlines()[0]}") from exc

    def batches(self, ids_only: bool = False) -> Iterator[Any]:
        """Batches of every column (or the id columns only); an empty id is an error naming the line."""
        pos = 0
        for batch in self._raw_batches(list(self.ids) if ids_only else self.cols):
            for col in self.ids:
                arr = batch.column(col)
                if arr.null_count:
                    row = int(np.flatnonzero(arr.is_null().to_numpy(zero_copy_only=False))[0])
                    raise DataError(f"{self.path}: line {pos + row + self.line0}: column {col!r} is empty")
            yield batch
            pos += batch.num_rows

    # ------------------------------------------------------------------ ids
    def vocabularies(self) -> tuple[int, Vocabulary, Vocabulary]:
        """Pass 1: the row count and the two vocabularies (sorted distinct ids)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        seen: dict[str, list[Any]] = {c: [] for c in self.ids}
        text = {c: False for c in self.ids}  # a Parquet column that is not integer
        intlike = {c: True for c in self.ids}  # every CSV value so far an integer id
        n = 0
        for batch in self.batches(ids_only=True):
            n += batch.num_rows
            for col in self.ids:
                arr = batch.column(col)
                if pa.types.is_integer(arr.type):
                    seen[col].append(np.unique(arr.to_numpy(zero_copy_only=False).astype(np.int64)))
                    continue
                uniq = pc.unique(arr.cast(pa.string()) if not pa.types.is_string(arr.type) else arr)
                if self.parquet:
                    text[col] = True
                elif intlike[col]:
                    intlike[col] = bool(pc.all(pc.match_substring_regex(uniq, _INT_ID)).as_py())
                seen[col].append(uniq)
                if len(seen[col]) > 64:  # bound the pending per-batch uniques
                    seen[col] = [self._merge(seen[col])]
        vocs = []
        for col, side in zip(self.ids, ("user", "item"), strict=True):
            parts = seen[col]
            as_int = not text[col] and (self.parquet or intlike[col])
            self.int_ids[col] = as_int
            if not parts:
                ids = np.empty(0, dtype=np.int64)
            elif as_int:
                ids = np.unique(np.concatenate([self._to_int(p) for p in parts]))
            else:
                ids = self._merge(parts)
                ids = np.unique(np.asarray(ids.to_numpy(zero_copy_only=False), dtype=str)) if len(ids) else \
                    np.empty(0, dtype=str)
            vocs.append(Vocabulary._from_sorted(ids, side))
        self._lookup = {col: (pa.array(v.ids) if not self.int_ids[col] else None)
                        for col, v in zip(self.ids, vocs, strict=True)}
        return n, vocs[0], vocs[1]

    @staticmethod
    def _merge(parts: list[Any]) -> Any:
        import pyarrow as pa
        import pyarrow.compute as pc

        if all(isinstance(p, np.ndarray) for p in parts):
            return np.unique(np.concatenate(parts))
        return pc.unique(pa.chunked_array([p for p in parts if not isinstance(p, np.ndarray)]
                                          + [pa.array(p.astype(str)) for p in parts if isinstance(p, np.ndarray)]
                                          ).combine_chunks())

    @staticmethod
    def _to_int(part: Any) -> np.ndarray:
        import pyarrow as pa

        if isinstance(part, np.ndarray):
            return part
        return part.cast(pa.int64()).to_numpy(zero_copy_only=False)

    def index(self, batch: Any, col: str, voc: Vocabulary) -> np.ndarray:
        """Pass 2: the indices of one batch's ids (every id is in ``voc``, built from this file)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        arr = batch.column(col)
        if self.int_ids[col]:
            raw = arr.to_numpy(zero_copy_only=False) if pa.types.is_integer(arr.type) else \
                arr.cast(pa.int64()).to_numpy(zero_copy_only=False)
            return np.searchsorted(voc.ids, raw.astype(np.int64, copy=False)).astype(np.int32)
        if not pa.types.is_string(arr.type):
            arr = arr.cast(pa.string())
        return pc.index_in(arr, value_set=self._lookup[col]).to_numpy(zero_copy_only=False).astype(np.int32)

    def numbers(self, batch: Any, col: str, pos: int) -> np.ndarray:
        """A numeric column of one batch as float64 (one-line error on a non-number or a non-finite value)."""
        arr = batch.column(col)
        vals = pd.to_numeric(pd.Series(arr.to_numpy(zero_copy_only=False)), errors="coerce").to_numpy(np.float64)
        bad = ~np.isfinite(vals)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raw = arr[row].as_py()
            what = "is not finite" if isinstance(raw, (int, float)) and raw is not None else f"is not a number ({raw!r})"
            raise DataError(f"{self.path}: line {pos + row + self.line0}: column {col!r} {what}")
        return vals

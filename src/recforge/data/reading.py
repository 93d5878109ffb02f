"""Reading a delimited text or Parquet interaction file into a DataFrame: the separator sniffed,
compression and encoding handled, header-less files named (used by :mod:`recforge.data.source`)."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import zipfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from recforge.errors import ConfigError, DataError

TEXT_SUFFIXES = (".csv", ".tsv", ".tab", ".txt", ".dat")
PARQUET_SUFFIXES = (".parquet", ".pq")
COMPRESSION_SUFFIXES = {".gz": "gzip", ".bz2": "bz2", ".zip": "zip", ".xz": "xz"}
SEP_NAMES = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "pipe": "|", "space": " ",
             "whitespace": r"\s+"}
"""Names a separator may be given by (``--sep tab``)."""


def stem(path: Path) -> str:
    """The file name without its data and compression suffixes (`ratings.csv.gz` -> `ratings`)."""
    name = path.name
    for suf in (*COMPRESSION_SUFFIXES, *TEXT_SUFFIXES, *PARQUET_SUFFIXES):
        if name.lower().endswith(suf):
            name = name[: -len(suf)]
    return name or path.name


def inner_suffix(path: Path) -> tuple[str, str | None]:
    """(suffix of the data, compression) of ``ratings.csv.gz`` -> (``.csv``, ``gzip``)."""
    suffixes = [s.lower() for s in path.suffixes]
    comp = COMPRESSION_SUFFIXES.get(suffixes[-1]) if suffixes else None
    if comp:
        suffixes = suffixes[:-1]
    return (suffixes[-1] if suffixes else ""), comp


def _head_lines(path: Path, comp: str | None, encoding: str, n: int = 50) -> list[str]:
    raw: Any
    if comp == "gzip":
        raw = gzip.open(path, "rb")
    elif comp == "bz2":
        raw = bz2.open(path, "rb")
    elif comp == "xz":
        raw = lzma.open(path, "rb")
    elif comp == "zip":
        zf = zipfile.ZipFile(path)
        names = [m for m in zf.namelist() if not m.endswith("/")]
        if len(names) != 1:
            raise DataError(f"{path}: a zip archive must hold exactly one file, it holds {len(names)}")
        raw = zf.open(names[0])
    else:
        raw = open(path, "rb")  # noqa: SIM115
    lines: list[str] = []
    with raw:
        text = io.TextIOWrapper(raw, encoding=encoding, newline="")
        try:
            for line in text:
                if line.strip():
                    lines.append(line.rstrip("\r\n"))
                if len(lines) >= n:
                    break
        except UnicodeDecodeError as exc:
            raise DataError(f"{path}: not {encoding} text ({exc.reason} at byte {exc.start}); "
                            "pass --encoding (e.g. latin-1)") from None
    return lines


_SNIFF_ORDER = ("\t", ",", ";", "|", "::")


def sniff_separator(lines: Sequence[str], preferred: str | None = None) -> str | None:
    """The separator that splits every line of ``lines`` into the same number (>= 2) of fields:
    ``preferred`` first, then tab, comma, semicolon, pipe, ``::``, runs of whitespace; None if none does."""
    order = ([preferred] if preferred else []) + [s for s in _SNIFF_ORDER if s != preferred] + [r"\s+"]
    for sep in order:
        if sep == r"\s+":
            counts = {len(line.split()) for line in lines}
        else:
            counts = {len(line.split(sep)) for line in lines}
        if len(counts) == 1 and counts.pop() >= 2:
            return sep
    return None


def _is_number(text: str) -> bool:
    try:
        float(text.strip().strip('"'))
    except ValueError:
        return False
    return True


def read_table(path: str | Path, *, sep: str | None = None, encoding: str = "utf-8",
               columns: Sequence[str] | None = None,
               text_columns: Callable[[list[str]], Iterable[str]] | None = None) -> tuple[pd.DataFrame, int]:
    """Read an interaction file into a DataFrame (Parquet keeps its types).

    Args:
        path: The file.
        sep: Field separator; sniffed from the first lines when None.
        encoding: Text encoding.
        columns: Names of a header-less file's fields.
        text_columns: Given the column names (before the rows are read), the columns to keep as
            text (the ids: ``'007'`` stays ``'007'``); the others get pandas' types. None: every
            column is text. It may raise to refuse the file's columns before the rows are read.

    Returns:
        The frame and the line offset of its first row (``row + offset`` is the file line).

    Raises:
        DataError: No such file, an empty or unparseable file, a header-less file without
            ``columns``, or text not in ``encoding``.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file")
    if path.is_dir():
        raise DataError(f"{path}: is a folder, not a file")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty")
    suffix, comp = inner_suffix(path)
    if suffix in PARQUET_SUFFIXES and comp is None:
        from recforge._optional import require

        require("pyarrow", purpose="reading Parquet")
        try:
            frame = pd.read_parquet(path)
        except Exception as exc:  # pyarrow raises many types for a bad file
            detail = " ".join(str(exc).split())[:200]  # pyarrow's messages span lines
            raise DataError(f"{path}: not a readable Parquet file ({detail})") from None
        if columns:
            raise ConfigError(f"{path}: --columns is for header-less text files; Parquet names its columns")
        if text_columns is not None:
            text_columns([str(c) for c in frame.columns])
        return frame, 0
    lines = _head_lines(path, comp, encoding)
    if not lines:
        raise DataError(f"{path}: the file is empty")
    preferred = {".tsv": "\t", ".tab": "\t", ".csv": ","}.get(suffix)
    if sep is None:
        sep = sniff_separator(lines, preferred)
        if sep is None:
            raise DataError(f"{path}: could not tell the field separator from the first lines; pass --sep "
                            "(e.g. --sep , or --sep tab)")
    split = (lambda s: s.split()) if sep == r"\s+" else (lambda s: s.split(sep))
    first = split(lines[0])
    if columns:
        if len(first) != len(columns):
            raise DataError(f"{path}: --columns names {len(columns)} fields, but line 1 has {len(first)} "
                            f"(separated by {sep!r})")
        header: int | None = None
        names: list[str] | None = list(columns)
        offset = 1
    else:
        if any(_is_number(f) for f in first):
            raise DataError(f"{path}: line 1 looks like data, not a header ({lines[0][:60]!r}); name the "
                            f"{len(first)} fields with --columns (e.g. --columns "
                            f"{','.join(['user_id', 'item_id', 'rating', 'timestamp'][: len(first)])})")
        header, names, offset = 0, None, 2
    engine = "python" if len(sep) > 1 and sep != r"\s+" else "c"
    dtype: Any = str
    if text_columns is not None:
        have = list(names) if names else [f.strip().strip('"') for f in first]
        dtype = {c: str for c in text_columns(have) if c in have}
    try:
        frame = pd.read_csv(path, sep=sep, header=header, names=names, dtype=dtype, encoding=encoding,
                            compression=comp or "infer", engine=engine, skipinitialspace=True)
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not {encoding} text ({exc.reason}); pass --encoding (e.g. latin-1)") from None
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"{path}: the file is empty") from exc
    except (pd.errors.ParserError, ValueError) as exc:
        raise DataError(f"{path}: could not parse with separator {sep!r}: {str(exc).strip()}") from exc
    frame.columns = [str(c).strip() for c in frame.columns]
    if len(frame) == 0:
        raise DataError(f"{path}: no interactions (only a header)")
    return frame, offset

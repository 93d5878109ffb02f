"""How the CLI prints results: one renderer for every command, in four formats.

``--format table|json|csv|markdown`` (:data:`FormatOpt`) on every command that prints results;
:func:`emit` writes a :class:`Report` (one or more tables, notes, a footer) in the chosen format.

The ``table`` format is meant to be read at 80 columns and to survive a pipe:

- plain text, no box drawing, so ``less``, ``grep`` and e-mail keep it intact;
- numbers are never truncated: a table wider than the terminal is cut into column blocks printed
  one under the other (the row labels repeated), instead of squeezing cells into ``0.94…``;
- columns whose value is the same on every row (protocol, dataset, model of a one-model run) move
  into a ``key: value`` line above the table;
- long text cells (a model's config) are replaced by a marker ``[1]`` and printed in full in a
  footer below the table.

The width is the terminal's when stdout is one, else ``COLUMNS`` or 80. ``json`` and ``csv`` print
every value at full precision (they parse back to the same numbers); ``markdown`` is a GitHub table.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import shutil
import sys
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any

import numpy as np
import pandas as pd
import typer

from recforge.errors import ConfigError

FORMATS = ("table", "json", "csv", "markdown")
FormatOpt = Annotated[str, typer.Option("--format", help="table | json | csv | markdown")]

#: Text cells longer than this go to the footer (their column keeps a marker).
LONG_TEXT = 24
_GAP = "  "


def check_format(fmt: str) -> str:
    """``fmt`` if it is one of :data:`FORMATS`; a one-line :class:`ConfigError` otherwise."""
    if fmt not in FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    return fmt


def note(message: str) -> None:
    """One line on stderr (``note: ...``), so that stdout stays the result, whatever the format."""
    sys.stderr.write(f"note: {message}\n")
    sys.stderr.flush()


def note_k_clamped(k: int, n_items: int) -> int:
    """The list length for ``k`` over a catalogue of ``n_items``: ``min(k, n_items)``, with a note on
    stderr when ``k`` is larger (the lists cannot be longer than the catalogue)."""
    if n_items > 0 and k > n_items:
        note(f"k={k:,} is more than the {n_items:,} items; k={n_items:,} used")
        return n_items
    return k


def terminal_width() -> int:
    """Columns to render for: the terminal's, else ``COLUMNS``, else 80."""
    if sys.stdout.isatty():
        return shutil.get_terminal_size((80, 24)).columns
    try:
        return max(20, int(os.environ.get("COLUMNS", "80")))
    except ValueError:
        return 80


# ---------------------------------------------------------------------------------------- values
def plain_value(v: Any) -> Any:
    """A cell as a JSON-ready Python value: numpy scalars unwrapped, NaN/inf as None, whole floats
    of count columns left as floats (the caller decides); strings unchanged."""
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, (list, tuple)):
        return [plain_value(x) for x in v]
    if isinstance(v, dict):
        return {str(k): plain_value(x) for k, x in v.items()}
    return v


def format_number(v: Any, digits: int = 4) -> str:
    """A cell for the eye: whole numbers without decimals (``943``, not ``943.0000``) or separators
    (they may be ids), small values in scientific notation, others with ``digits`` decimals; never
    shortened further. Counts meant to read as ``1,027,370`` are formatted by the caller."""
    v = plain_value(v)
    if v is None:
        return ""
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int):
        return str(v)  # no thousands separators: an int cell may be an id
    if isinstance(v, float):
        if v.is_integer() and abs(v) < 1e15:
            return format_number(int(v), digits)
        if 0 < abs(v) < 10 ** -(digits - 1):
            return f"{v:.{max(1, digits - 2)}e}"
        return f"{v:.{digits}f}"
    return str(v)


# ---------------------------------------------------------------------------------------- report
@dataclass
class Section:
    """One table of a report: rows of named cells, an optional title."""

    frame: pd.DataFrame
    title: str | None = None
    #: Columns that label a row (repeated in every block of a wide table; never moved to the title).
    keys: Sequence[str] = ()
    #: Text columns kept in the table however long (titles), wrapped onto continuation lines.
    inline: Sequence[str] = ()


@dataclass
class Report:
    """What a command prints: tables, then notes and footer lines (``table`` and ``markdown``).

    ``data`` is the JSON document (default: the sections' rows and the notes); ``csv`` writes the
    sections' rows (several sections are separated by a blank line and a ``# title`` line).
    """

    sections: list[Section]
    notes: list[str] = field(default_factory=list)
    footer: list[str] = field(default_factory=list)
    data: Any = None

    @classmethod
    def of(cls, frame: pd.DataFrame | Sequence[Mapping[str, Any]], title: str | None = None, *,
           keys: Sequence[str] = (), notes: Iterable[str] = (), footer: Iterable[str] = (),
           data: Any = None) -> Report:
        df = frame if isinstance(frame, pd.DataFrame) else pd.DataFrame(list(frame))
        return cls([Section(df, title, keys)], list(notes), list(footer), data)


def emit(report: Report, fmt: str = "table", *, width: int | None = None, out: Any = None) -> None:
    """Write ``report`` to ``out`` (stdout) in ``fmt``."""
    out = out or sys.stdout
    out.write(render(report, fmt, width=width))
    out.flush()


def render(report: Report, fmt: str = "table", *, width: int | None = None) -> str:
    """``report`` as text in ``fmt`` (see the module docstring)."""
    check_format(fmt)
    if fmt == "json":
        data = report.data
        if data is None:
            data = {"rows": [r for s in report.sections for r in records(s.frame)], "notes": list(report.notes)}
        return json.dumps(plain_value(data), indent=2, default=_json_default, allow_nan=False) + "\n"
    if fmt == "csv":
        parts = []
        for s in report.sections:
            head = f"# {s.title}\n" if s.title and len(report.sections) > 1 else ""
            parts.append(head + to_csv(s.frame))
        return "\n".join(parts)
    if fmt == "markdown":
        parts = []
        for s in report.sections:
            parts.append((f"**{s.title}**\n\n" if s.title else "") + to_markdown(s.frame))
        tail = [f"- {n}" for n in report.notes] + list(report.footer)
        return "\n".join(parts) + ("\n" + "\n".join(tail) + "\n" if tail else "")
    width = width or terminal_width()
    parts = []
    footnotes: list[str] = []
    for s in report.sections:
        parts.append(to_text(s.frame, title=s.title, keys=s.keys, width=width, footnotes=footnotes,
                             inline=s.inline))
    tail = footnotes + [f"note: {n}" for n in report.notes] + list(report.footer)
    return "\n".join(parts) + ("\n".join(_wrap_line(t, width) for t in tail) + "\n" if tail else "")


def records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """The rows of ``df`` as plain dicts (numpy values unwrapped, NaN as None)."""
    return [{str(k): plain_value(v) for k, v in rec.items()} for rec in df.to_dict(orient="records")]


def to_csv(df: pd.DataFrame) -> str:
    """``df`` as CSV, floats at full precision (``repr``), so that it parses back to the same numbers."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([str(c) for c in df.columns])
    for rec in records(df):
        w.writerow(["" if v is None else repr(v) if isinstance(v, float) else
                    json.dumps(v) if isinstance(v, (dict, list)) else v for v in rec.values()])
    return buf.getvalue()


def to_markdown(df: pd.DataFrame, digits: int = 4) -> str:
    """``df`` as a GitHub markdown table (pipes in cells escaped)."""
    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---:" if _numeric(df[c]) else "---"
                                                              for c in df.columns) + "|"]
    for rec in df.to_dict(orient="records"):
        lines.append("| " + " | ".join(format_number(v, digits).replace("|", "\\|") for v in rec.values()) + " |")
    return "\n".join(lines) + "\n"


def to_text(df: pd.DataFrame, *, title: str | None = None, keys: Sequence[str] = (), width: int = 80,
            footnotes: list[str] | None = None, digits: int = 4, inline: Sequence[str] = ()) -> str:
    """``df`` as plain aligned text that fits ``width`` columns without cutting any value.

    Columns constant over several rows (or every column but the keys of a one-row table that has
    metrics) move to a header line; long text cells become ``[n]`` markers whose text is appended
    to ``footnotes``; a table still too wide is printed in blocks of columns, each repeating the
    ``keys`` columns. ``inline`` text columns are never moved to the footer; the last column, if
    inline, wraps onto continuation lines.
    """
    footnotes = footnotes if footnotes is not None else []
    df = df.reset_index(drop=True)
    head: list[str] = []
    cols = [str(c) for c in df.columns]
    cells: dict[str, list[str]] = {c: [format_number(v, digits) for v in df[col]] for c, col in zip(cols, df.columns,
                                                                                                       strict=True)}
    numeric = {c: _numeric(df[col]) for c, col in zip(cols, df.columns, strict=True)}
    if len(df) > 1 or any(numeric.values()):
        for c in list(cols):
            if (c not in keys and not numeric[c] and len(set(cells[c])) == 1 and len(cols) > 1
                    and len(cells[c][0]) <= LONG_TEXT):
                if cells[c][0]:  # a column empty on every row is left out
                    head.append(f"{c}: {cells[c][0]}")
                cols.remove(c)
    for c in cols:
        if numeric[c] or c in inline:
            continue
        for r, text in enumerate(cells[c]):
            if len(text) > LONG_TEXT:
                if text in footnotes_text(footnotes):
                    n = footnotes_text(footnotes).index(text) + 1
                else:
                    footnotes.append(f"[{len(footnotes) + 1}] {c}: {text}")
                    n = len(footnotes)
                cells[c][r] = f"[{n}]"
    lines = []
    if title:
        lines.append(_wrap_line(title, width))
    if head:
        lines.append(_wrap_line(" | ".join(head), width))
    if not cols or len(df) == 0:
        lines.append("(no rows)" if len(df) == 0 else "")
        return "\n".join(lines) + "\n"
    widths = {c: max(len(c), *(len(x) for x in cells[c])) for c in cols}
    wrap_col = cols[-1] if cols[-1] in inline else None
    if wrap_col is not None:
        others = sum(widths[c] + len(_GAP) for c in cols[:-1])
        widths[wrap_col] = max(len(wrap_col), min(widths[wrap_col], max(20, width - others)))
    key_cols = [c for c in cols if c in keys]
    rest = [c for c in cols if c not in keys]
    key_w = sum(widths[c] + len(_GAP) for c in key_cols)
    blocks: list[list[str]] = []
    current: list[str] = []
    used = key_w
    for c in rest:
        need = widths[c] + (len(_GAP) if current or key_cols else 0)
        if current and used + need > width:
            blocks.append(current)
            current, used = [], key_w
            need = widths[c] + (len(_GAP) if key_cols else 0)
        current.append(c)
        used += need
    if current or not blocks:
        blocks.append(current)
    if len(df) == 1 and len(blocks) > 1:  # one wide row reads best as a column of name/value pairs
        pairs = pd.DataFrame({"": cols, "value": [cells[c][0] for c in cols]})
        body = to_text(pairs, keys=("", "value"), width=width, footnotes=[], digits=digits)
        return "\n".join(lines) + ("\n" if lines else "") + body
    for b, block in enumerate(blocks):
        show = key_cols + block
        if b:
            lines.append("")
        lines.append(_GAP.join(_pad(c, widths[c], numeric[c]) for c in show).rstrip())
        lines.append(_GAP.join("-" * widths[c] for c in show))
        for r in range(len(df)):
            if wrap_col in show and len(cells[wrap_col][r]) > widths[wrap_col]:
                chunks = textwrap.wrap(cells[wrap_col][r], widths[wrap_col], break_on_hyphens=False) or [""]
                indent = " " * sum(widths[c] + len(_GAP) for c in show[:-1])
                lines.append(_GAP.join(_pad(chunks[0] if c == wrap_col else cells[c][r], widths[c], numeric[c])
                                       for c in show).rstrip())
                lines.extend((indent + ch).rstrip() for ch in chunks[1:])
                continue
            lines.append(_GAP.join(_pad(cells[c][r], widths[c], numeric[c]) for c in show).rstrip())
    return "\n".join(lines) + "\n"


def footnotes_text(footnotes: list[str]) -> list[str]:
    """The texts of ``[n] column: text`` footnotes (for reuse of one marker per text)."""
    return [f.split(": ", 1)[1] if ": " in f else f for f in footnotes]


def _pad(text: str, w: int, right: bool) -> str:
    return text.rjust(w) if right else text.ljust(w)


def _numeric(col: pd.Series) -> bool:
    if pd.api.types.is_bool_dtype(col):
        return False
    if pd.api.types.is_numeric_dtype(col):
        return True
    vals = [v for v in col if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return bool(vals) and all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
                              for v in vals)


def _wrap_line(text: str, width: int) -> str:
    """Wrap a long prose line at spaces (a word longer than the width stays whole)."""
    return "\n".join(textwrap.wrap(text, width=width, break_long_words=False, break_on_hyphens=False)) or text


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return plain_value(o)
    if isinstance(o, np.ndarray):
        return [plain_value(x) for x in o.tolist()]
    return str(o)


def result_report(result: Any, title: str | None = None, *, columns: Sequence[str] | None = None,
                  data: Any = None, footer: Iterable[str] = ()) -> Report:
    """The mean rows of an :class:`~recforge.evaluation.results.EvaluationResult` as a report.

    ``columns`` picks and orders the table's columns (default: all of the summary); the notes of the
    result become the report's notes; JSON gets ``data`` (default: every row, folds included).
    """
    df = result.summary
    if columns is not None:
        df = df[[c for c in columns if c in df.columns]]
    keys = [c for c in ("model", "scenario", "revealed") if c in df.columns]
    return Report([Section(df, title, keys)], list(result.notes), list(footer),
                  data if data is not None else {"rows": result.to_records(), "notes": list(result.notes)})


# ---------------------------------------------------------------------------------------- progress
ProgressOpt = Annotated[bool | None, typer.Option(
    "--progress/--no-progress",
    help="progress bars on stderr (default: only on a terminal with --format table)")]


def progress_reporter(flag: bool | None, fmt: str = "table") -> Any:
    """The :class:`~recforge.training.progress.RichProgress` a command installs (None: stay quiet).

    Bars appear after 2 s of work, on a terminal with the table format, or wherever ``--progress``
    asks for them; ``--no-progress`` and non-terminals stay quiet.
    """
    from recforge.training.progress import RichProgress, wanted

    return RichProgress(force=bool(flag)) if wanted(flag, fmt) else None

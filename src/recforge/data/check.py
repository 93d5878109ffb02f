"""``recforge data check``: what a practitioner should know about an interaction log before evaluating on it.

:func:`check_log` reads a raw log (CSV/TSV/Parquet, or a registered dataset) and reports

- counts: rows, users, items, distinct (user, item) pairs, density;
- duplicates: rows that repeat a (user, item) pair (the loaders refuse them unless told how to merge);
- missing values per column and the type of the ids (integer, string, float-looking);
- the timestamp column's unit, guessed from its magnitude (seconds, milliseconds, microseconds,
  nanoseconds since 1970, or small ordinals that are not a clock) or its text (dates, date-times);
- the rating scale (distinct values, step) and whether the values are really ratings, counts or a
  constant (implicit feedback);
- a power-law fit of item popularity and of user activity (:func:`fit_power_law`);
- for each split a protocol would make (passed in as ``splits``: this module sits below the split
  package), the cold users and items it creates and its temporal leakage: test rows older than
  a train row of the same user, and test rows older than the latest train row overall.

Findings that would make an evaluation misleading are listed as ``warnings``. :func:`plot_check`
draws the popularity fit, the activity distribution, the ratings and the rows over time.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recforge.data.interactions import Interactions
from recforge.data.split import Split
from recforge.errors import ConfigError, DataError

__all__ = ["CheckReport", "PowerLaw", "check_log", "fit_power_law", "guess_time_unit", "plot_check", "read_log"]

#: Column names tried, in order, when a column is not named (case-insensitive).
GUESSES = {
    "user": ("user_id", "userid", "user", "uid", "customer_id", "visitor_id", "session_id"),
    "item": ("item_id", "itemid", "item", "iid", "movieid", "movie_id", "artistid", "artist_id", "product_id",
             "productid", "song_id", "track_id", "business_id", "asin"),
    "rating": ("rating", "ratings", "score", "stars", "weight", "value", "count", "plays", "playcount"),
    "timestamp": ("timestamp", "time", "ts", "datetime", "date", "unix_time", "event_time", "created_at"),
}


# ---------------------------------------------------------------------------------------- reading
def read_log(path: str | Path, *, sep: str | None = None) -> pd.DataFrame:
    """The raw rows of a delimited text or Parquet file, every column as read (no id handling).

    ``sep`` is sniffed from the first lines when None (``,``, tab, ``;``, ``|``, space, or ``::`` as
    in MovieLens 1M); ``.tsv``/``.tab`` default to tab. A file without a header row (its first line
    looks like data: every field a number) gets columns ``0, 1, ...``.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file")
    if path.is_dir():
        raise DataError(f"{path}: is a folder, not a file")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty")
    if path.suffix.lower() in (".parquet", ".pq"):
        try:
            return pd.read_parquet(path)
        except Exception as exc:  # pyarrow raises many types for a bad file
            raise DataError(f"{path}: not a readable Parquet file ({exc})") from exc
    try:
        with open(path, encoding="utf-8") as fh:
            head = [fh.readline() for _ in range(20)]
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text (byte {exc.start} of the first lines)") from exc
    sample = "".join(head)
    # a shell passes --sep '\t' as backslash-t
    sep = {"\\t": "\t", "tab": "\t", "space": " "}.get(sep, sep) if sep is not None else _sniff(sample, path)
    first = head[0].rstrip("\r\n").split(sep) if head else []
    header: int | None = 0
    if first and all(_is_number(f) for f in first):
        header = None
    try:
        df = pd.read_csv(path, sep=sep, header=header, engine="python" if len(sep) > 1 else "c", dtype=str,
                         keep_default_na=False, na_values=[""])
    except pd.errors.ParserError as exc:
        raise DataError(f"{path}: could not parse with separator {sep!r}: {str(exc).strip()}") from exc
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text (byte {exc.start})") from exc
    df.columns = [str(c).strip() for c in df.columns]
    df.attrs["sep"] = sep
    return df


def _sniff(sample: str, path: Path) -> str:
    if path.suffix.lower() in (".tsv", ".tab"):
        return "\t"
    if "::" in sample:
        return "::"
    try:
        return csv.Sniffer().sniff(sample, delimiters=",\t;| ").delimiter
    except csv.Error:
        return ","


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _pick(df: pd.DataFrame, role: str, given: str | None) -> str | None:
    cols = list(df.columns)
    if given is not None:
        if given not in cols:
            raise DataError(f"column {given!r} ({role}) not in the file; its columns: {', '.join(map(str, cols))}")
        return given
    lower = {str(c).lower(): c for c in cols}
    for name in GUESSES[role]:
        if name in lower:
            return lower[name]
    if role in ("user", "item") and all(str(c).isdigit() for c in cols) and len(cols) >= 2:
        return cols[0 if role == "user" else 1]  # header-less: user, item, (rating, time)
    if role in ("rating", "timestamp") and all(str(c).isdigit() for c in cols):
        pos = 2 if role == "rating" else 3
        return cols[pos] if len(cols) > pos else None
    return None


# ---------------------------------------------------------------------------------------- facts
@dataclass(frozen=True)
class PowerLaw:
    """A discrete power law ``p(x) ~ x**-alpha`` for ``x >= x_min``, fitted by maximum likelihood.

    Attributes:
        alpha: The exponent (MLE).
        alpha_se: Its standard error, ``(alpha - 1) / sqrt(n_tail)``.
        x_min: The smallest count the law describes (chosen by the smallest KS distance).
        n_tail: How many entities have a count ``>= x_min``.
        ks: Kolmogorov-Smirnov distance between the tail and the fitted law.
        method: How it was fitted, in words.
    """

    alpha: float
    alpha_se: float
    x_min: int
    n_tail: int
    ks: float
    method: str = ("discrete MLE, alpha = 1 + n / sum(ln(x / (x_min - 0.5))) (Clauset, Shalizi & Newman 2009, "
                   "eq. 3.7), x_min minimising the KS distance")


def fit_power_law(counts: Any, *, max_candidates: int = 50) -> PowerLaw | None:
    """Fit a power law to positive integer counts (item popularity, user activity).

    The exponent for a given ``x_min`` is the approximate discrete MLE of Clauset, Shalizi & Newman,
    "Power-law distributions in empirical data", SIAM Review 51(4), 2009, eq. (3.7):
    ``alpha = 1 + n / sum(ln(x_i / (x_min - 1/2)))``. ``x_min`` is the candidate (distinct count
    values, at most ``max_candidates`` of them, spread over the quantiles) whose tail is closest to its fit in
    Kolmogorov-Smirnov distance, among tails of at least 10 entities. None when fewer than 10
    positive counts exist or all are equal.
    """
    x = np.asarray(counts, dtype=np.float64)
    x = np.sort(x[x > 0])
    if len(x) < 10 or x[0] == x[-1]:
        return None
    values = np.unique(x[: max(1, len(x) - 10 + 1)])  # keep >= 10 in every tail
    if len(values) > max_candidates:
        values = np.unique(np.quantile(values, np.linspace(0, 1, max_candidates), method="nearest"))
    best: PowerLaw | None = None
    for xm in values:
        tail = x[x >= xm]
        denom = np.log(tail / (xm - 0.5)).sum()
        if denom <= 0:
            continue
        alpha = 1.0 + len(tail) / denom
        ks = _ks_discrete(tail, xm, alpha)
        if best is None or ks < best.ks:
            best = PowerLaw(float(alpha), float((alpha - 1) / math.sqrt(len(tail))), int(xm), len(tail), float(ks))
    return best


def _ks_discrete(tail: np.ndarray, x_min: float, alpha: float) -> float:
    """KS distance between the empirical CDF of ``tail`` and the discrete power law on ``x >= x_min``."""
    from scipy.special import zeta

    top = int(tail[-1])
    support = np.arange(int(x_min), top + 1, dtype=np.float64)
    pmf = support ** -alpha / zeta(alpha, x_min)
    model = np.cumsum(pmf)
    emp = np.searchsorted(tail, support, side="right") / len(tail)
    return float(np.max(np.abs(emp - model)))


def guess_time_unit(col: pd.Series) -> dict[str, Any]:
    """The unit of a timestamp column: ``{"unit", "first", "last", "n_bad"}``.

    Numbers are read as a count since 1970-01-01 in the unit that puts the latest one between 1990
    and 2100: seconds (< 1e11), milliseconds (< 1e14), microseconds (< 1e17), else nanoseconds;
    numbers too small for any clock (latest < 1e8, i.e. before 1973 in seconds) are ``"ordinal"``
    (sequence numbers or days, not a clock). Text is ``"date"`` (no time of day) or ``"datetime"``.
    ``first``/``last`` are ISO dates (None for ordinals); ``n_bad`` counts unreadable values.
    """
    s = col.dropna()
    if pd.api.types.is_datetime64_any_dtype(s):
        parsed, n_bad, unit = pd.to_datetime(s), 0, "datetime"
        return _time_facts(unit, parsed, n_bad)
    num = pd.to_numeric(s, errors="coerce")
    if len(s) and num.notna().mean() > 0.99:
        v = num.dropna().to_numpy(np.float64)
        hi = float(np.max(np.abs(v))) if len(v) else 0.0
        n_bad = int(num.isna().sum())
        if hi < 1e8:
            return {"unit": "ordinal", "first": float(v.min()), "last": float(v.max()), "n_bad": n_bad}
        unit = "s" if hi < 1e11 else "ms" if hi < 1e14 else "us" if hi < 1e17 else "ns"
        parsed = pd.to_datetime(v, unit=unit, errors="coerce")
        return _time_facts({"s": "seconds", "ms": "milliseconds", "us": "microseconds", "ns": "nanoseconds"}[unit],
                           pd.Series(parsed), n_bad)
    parsed = pd.to_datetime(s, errors="coerce", utc=True, format="mixed")
    n_bad = int(parsed.isna().sum())
    ok = parsed.dropna()
    has_time = bool(len(ok)) and bool(((ok - ok.dt.normalize()) != pd.Timedelta(0)).any())
    return _time_facts("datetime" if has_time else "date", ok, n_bad)


def _time_facts(unit: str, parsed: pd.Series, n_bad: int) -> dict[str, Any]:
    ok = parsed.dropna()
    first = ok.min().isoformat() if len(ok) else None
    last = ok.max().isoformat() if len(ok) else None
    return {"unit": unit, "first": first, "last": last, "n_bad": n_bad}


def _id_kind(col: pd.Series) -> str:
    s = col.dropna().astype(str)
    if s.str.fullmatch(r"-?\d+").all():
        lead = s.str.fullmatch(r"-?0\d+").any()
        return "integer (leading zeros: kept as text)" if lead else "integer"
    if s.str.fullmatch(r"-?\d+\.\d*").all():
        return "float-looking (e.g. '7.0'): ids are compared as text"
    return "string"


def _rating_facts(col: pd.Series) -> dict[str, Any]:
    num = pd.to_numeric(col, errors="coerce")
    bad = int(num.isna().sum() - col.isna().sum())
    v = num.dropna().to_numpy(np.float64)
    if not len(v):
        return {"kind": "not numeric", "n_not_numeric": bad}
    distinct = np.unique(v)
    steps = np.diff(distinct)
    step = float(np.min(steps)) if len(steps) else 0.0
    integer = bool(np.all(v == np.round(v)))
    if len(distinct) == 1:
        kind = "constant (implicit feedback)"
    elif integer and v.min() >= 0 and (len(distinct) > 20 or v.max() > 100):
        kind = "counts (implicit, can be weights)"
    else:
        kind = "ratings"
    return {"kind": kind, "min": float(v.min()), "max": float(v.max()), "n_distinct": int(len(distinct)),
            "step": step, "integer": integer, "mean": float(v.mean()), "n_not_numeric": bad,
            "distribution": {f"{d:g}": int((v == d).sum()) for d in distinct[:20]} if len(distinct) <= 20 else {}}


def split_facts(split: Split) -> dict[str, Any]:
    """Cold users/items and temporal leakage of one train/test split (parts of one parent log)."""
    train, test = split.train, split.test
    tr_users = np.bincount(train.user_idx, minlength=train.n_users) > 0
    tr_items = np.bincount(train.item_idx, minlength=train.n_items) > 0
    te_users = np.unique(test.user_idx)
    te_items = np.unique(test.item_idx)
    cold_u = te_users[~tr_users[te_users]]
    cold_i = te_items[~tr_items[te_items]]
    cold_rows = ~tr_users[test.user_idx] | ~tr_items[test.item_idx]
    out: dict[str, Any] = {
        "train_rows": len(train), "test_rows": len(test), "test_users": len(te_users),
        "cold_users": len(cold_u), "cold_items": len(cold_i), "test_rows_cold": int(cold_rows.sum()),
    }
    if train.timestamps is not None and test.timestamps is not None and len(train) and len(test):
        latest = np.full(train.n_users, np.iinfo(np.int64).min, np.int64)
        np.maximum.at(latest, train.user_idx, train.timestamps.astype(np.int64))
        before_own = test.timestamps.astype(np.int64) < latest[test.user_idx]
        out["leak_rows_user"] = int(before_own.sum())
        out["leak_users"] = int(len(np.unique(test.user_idx[before_own])))
        out["leak_rows_global"] = int((test.timestamps < train.timestamps.max()).sum())
    return out


# ---------------------------------------------------------------------------------------- report
@dataclass
class CheckReport:
    """The facts of one log; see the module docstring. ``to_dict`` is the JSON document."""

    name: str
    columns: dict[str, str | None]
    n_rows: int
    n_users: int
    n_items: int
    n_pairs: int
    density: float
    duplicate_rows: int
    duplicate_pairs: int
    missing: dict[str, int]
    user_ids: str
    item_ids: str
    rating: dict[str, Any] | None
    timestamp: dict[str, Any] | None
    per_user: dict[str, float]
    per_item: dict[str, float]
    item_power_law: PowerLaw | None
    user_power_law: PowerLaw | None
    protocols: dict[str, dict[str, Any]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    signals: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per named signal column: kind, non-missing count, mean, min, max, share of zeros, and
    ``n_not_numeric`` (cells that are text, not numbers)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


SplitMaker = Callable[[Interactions], Split]


def check_log(
    source: str | Path | pd.DataFrame,
    *,
    user_col: str | None = None,
    item_col: str | None = None,
    rating_col: str | None = None,
    timestamp_col: str | None = None,
    sep: str | None = None,
    splits: Mapping[str, SplitMaker] | None = None,
    test: str | Path | pd.DataFrame | None = None,
    name: str | None = None,
    signals: Mapping[str, str] | None = None,
    guess: bool = True,
    data: Interactions | None = None,
    given: Split | None = None,
) -> CheckReport:
    """Check an interaction log (a file or a DataFrame of raw rows).

    Args:
        source: A CSV/TSV/Parquet file (read by :func:`read_log`) or a DataFrame.
        user_col, item_col, rating_col, timestamp_col: Column names; guessed from
            :data:`GUESSES` when None (the report states what was used).
        sep: Field separator (sniffed when None).
        splits: ``{protocol label: split maker}``: each maker splits the log's interactions as a
            protocol would (e.g. ``lambda d: leave_one_out(d)``); the report gives each one's cold
            users/items and leakage.
        test: A test file (or frame) whose rows are held out: ``source`` is then the train part of
            a given split, checked for cold users/items and leakage as ``"given split"``.
        name: Name in the report (default: the file's stem).
        signals: Named signal columns ``{column: kind}`` (:func:`recforge.data.interactions.parse_signals`),
            each described as ``data stats`` does, with the cells that are not numbers counted.
        guess: Guess the columns not named (False: an unnamed rating or timestamp column is
            absent, as when :class:`~recforge.data.source.DataSource` has resolved them).
        data: The log as loaded for evaluation (after the data options' cleaning); the protocols'
            splits are made from it instead of from the raw rows.
        given: The log's own train/test split (``--train/--test``, ``--split-column``,
            ``--split-date``), checked as ``"given split"``.

    Raises:
        DataError: Unreadable file, missing user or item column, unknown column name.
    """
    df = source if isinstance(source, pd.DataFrame) else read_log(source, sep=sep)
    label = name or (Path(source).stem if not isinstance(source, pd.DataFrame) else "DataFrame")

    def pick(role: str, given_col: str | None) -> str | None:
        return _pick(df, role, given_col) if guess or given_col is not None else None

    cols = {"user": pick("user", user_col), "item": pick("item", item_col),
            "rating": pick("rating", rating_col), "timestamp": pick("timestamp", timestamp_col)}
    if cols["user"] is None or cols["item"] is None:
        missing = "user" if cols["user"] is None else "item"
        raise DataError(f"{label}: no {missing} column found among {', '.join(map(str, df.columns))}; "
                        f"name it with --{missing}-col")
    if cols["rating"] in (cols["user"], cols["item"]):
        cols["rating"] = None
    warnings: list[str] = []
    u, i = df[cols["user"]], df[cols["item"]]
    missing = {str(c): int(df[c].isna().sum()) for c in df.columns if df[c].isna().any()}
    for role in ("user", "item"):
        if df[cols[role]].isna().any():
            warnings.append(f"{missing[str(cols[role])]:,} rows have no {role} id; loaders refuse them")
    pairs = pd.DataFrame({"u": u.astype(str), "i": i.astype(str)})
    dup_mask = pairs.duplicated(keep=False)
    dup_rows = int(pairs.duplicated().sum())
    dup_pairs = int(pairs[dup_mask].drop_duplicates().shape[0])
    if dup_rows:
        warnings.append(f"{dup_rows:,} rows repeat a (user, item) pair ({dup_pairs:,} pairs): choose how to merge "
                        "them (duplicates = sum, mean, first or last) before evaluating")
    n_users, n_items = int(u.nunique()), int(i.nunique())
    n_pairs = len(pairs) - dup_rows
    ucount = pairs.drop_duplicates().groupby("u").size().to_numpy()
    icount = pairs.drop_duplicates().groupby("i").size().to_numpy()
    rating = _rating_facts(df[cols["rating"]]) if cols["rating"] is not None else None
    if rating is not None:
        if rating.get("n_not_numeric"):
            warnings.append(f"{rating['n_not_numeric']:,} values of {cols['rating']!r} are not numbers")
        if rating["kind"].startswith("constant"):
            warnings.append(f"every {cols['rating']!r} value is equal: this is implicit feedback; rating "
                            "protocols (RMSE) would measure nothing")
    stamp = guess_time_unit(df[cols["timestamp"]]) if cols["timestamp"] is not None else None
    if stamp is not None and stamp["n_bad"]:
        warnings.append(f"{stamp['n_bad']:,} values of {cols['timestamp']!r} are not timestamps")
    if stamp is not None and stamp["unit"] == "ordinal":
        warnings.append(f"{cols['timestamp']!r} holds small numbers (max {stamp['last']:g}): an order, not a clock")
    sig = _signal_facts(df, signals or {}, warnings)
    if n_users and n_pairs / n_users < 2:
        warnings.append("fewer than 2 interactions per user on average: leave-one-out leaves most users "
                        "without training data")
    report = CheckReport(
        name=label, columns=cols, n_rows=len(df), n_users=n_users, n_items=n_items, n_pairs=n_pairs,
        density=float(n_pairs / max(1, n_users * n_items)), duplicate_rows=dup_rows, duplicate_pairs=dup_pairs,
        missing=missing, user_ids=_id_kind(u), item_ids=_id_kind(i), rating=rating, timestamp=stamp,
        per_user=_describe(ucount), per_item=_describe(icount),
        item_power_law=fit_power_law(icount), user_power_law=fit_power_law(ucount), warnings=warnings,
        signals=sig,
    )
    if splits or test is not None or given is not None:
        report.protocols = _protocol_facts(df, cols, splits or {}, test, sep, warnings, data=data, given=given)
    return report


def _signal_facts(df: pd.DataFrame, signals: Mapping[str, str], warnings: list[str]) -> dict[str, dict[str, Any]]:
    from recforge.data.stats import signal_stats

    out: dict[str, dict[str, Any]] = {}
    for col, kind in signals.items():
        if col not in df.columns:
            raise DataError(f"no signal column {col!r}; the columns are {', '.join(map(str, df.columns))}")
        raw = df[col]
        num = pd.to_numeric(raw, errors="coerce")
        text = int((num.isna() & raw.notna() & raw.astype(str).str.strip().ne("")).sum())
        facts = signal_stats({col: num.to_numpy(np.float64)}, {col: kind})[col]
        facts["n_not_numeric"] = text
        facts["missing"] -= text  # text is not missing: it is wrong
        if text:
            warnings.append(f"{text:,} values of signal {col!r} are not numbers; the loaders refuse them")
        low = facts["min"]
        if kind in ("count", "duration") and low is not None and low < 0:
            warnings.append(f"signal {col!r} ({kind}) has negative values (min {low:g}); the loaders refuse them")
        if kind == "binary" and facts["count"] and not num.dropna().isin([0, 1]).all():
            warnings.append(f"signal {col!r} (binary) has values other than 0 and 1; the loaders refuse them")
        if facts["count"] == 0:
            warnings.append(f"signal {col!r} is missing on every row")
        out[col] = facts
    return out


def _describe(counts: np.ndarray) -> dict[str, float]:
    if not len(counts):
        return {"min": 0, "median": 0.0, "mean": 0.0, "max": 0}
    return {"min": int(counts.min()), "median": float(np.median(counts)), "mean": float(counts.mean()),
            "max": int(counts.max())}


def _interactions(df: pd.DataFrame, cols: Mapping[str, str | None]) -> Interactions:
    """The log as :class:`Interactions` for splitting: rows without ids dropped, repeated pairs kept
    once (the last row), values only when they are numbers; rows stay in the frame's order."""
    keep = df.dropna(subset=[cols["user"], cols["item"]]).drop_duplicates([cols["user"], cols["item"]], keep="last")
    rating = cols["rating"]
    if rating is not None and pd.to_numeric(keep[rating], errors="coerce").isna().any():
        rating = None
    stamp = cols["timestamp"]
    frame = keep.copy()
    if stamp is not None:
        facts = guess_time_unit(frame[stamp])
        if facts["n_bad"]:
            stamp = None
        elif facts["unit"] in ("milliseconds", "microseconds", "nanoseconds", "seconds", "ordinal"):
            frame[stamp] = pd.to_numeric(frame[stamp])
    try:
        return Interactions.from_dataframe(frame, str(cols["user"]), str(cols["item"]), rating, stamp, name="log")
    except DataError:
        return Interactions.from_dataframe(frame, str(cols["user"]), str(cols["item"]), None, None, name="log")


def _protocol_facts(df: pd.DataFrame, cols: Mapping[str, str | None], splits: Mapping[str, SplitMaker],
                    test: Any, sep: str | None, warnings: list[str], *, data: Interactions | None = None,
                    given: Split | None = None) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    if given is not None:
        out["given split"] = split_facts(given)
    if test is not None:
        tdf = test if isinstance(test, pd.DataFrame) else read_log(test, sep=sep)
        missing = [c for c in cols.values() if c is not None and c not in tdf.columns]
        if missing:
            raise DataError(f"test file: column {missing[0]!r} not found; its columns: {', '.join(map(str, tdf.columns))}")
        both = pd.concat([df.assign(_part="train"), tdf[list(df.columns)].assign(_part="test")], ignore_index=True)
        inter = _interactions(both, cols)
        # the rows _interactions keeps, in its order: a pair in both parts counts as test
        kept = both.dropna(subset=[cols["user"], cols["item"]]).drop_duplicates([cols["user"], cols["item"]],
                                                                                  keep="last")
        is_test = kept["_part"].to_numpy() == "test"
        given = Split(inter.subset(~is_test), inter.subset(is_test), name="given")
        out["given split"] = split_facts(given)
    if splits:
        inter = data if data is not None else _interactions(df, cols)
        for label, make in splits.items():
            try:
                out[label] = split_facts(make(inter))
            except (ConfigError, DataError) as exc:
                out[label] = {"error": str(exc)}
    for label, facts in out.items():
        if facts.get("leak_rows_user"):
            share = facts["leak_rows_user"] / max(1, facts["test_rows"])
            warnings.append(f"{label}: {facts['leak_rows_user']:,} of {facts['test_rows']:,} test rows ({share:.0%}) are "
                            f"older than a train row of the same user ({facts['leak_users']:,} users): the model "
                            "is trained on their future")
        if facts.get("test_rows") and facts.get("test_rows_cold", 0) / facts["test_rows"] > 0.05:
            warnings.append(f"{label}: {facts['test_rows_cold']:,} of {facts['test_rows']:,} test rows involve a user "
                            "or item without training rows; only a cold-start model can score them")
    return out


# ---------------------------------------------------------------------------------------- plots
def plot_check(source: str | Path | pd.DataFrame, report: CheckReport, out_dir: str | Path) -> list[Path]:
    """Write ``popularity_powerlaw.png``, ``user_activity.png``, ``ratings.png`` (with a rating
    column) and ``rows_over_time.png`` (with a clock timestamp) into ``out_dir``; returns the paths."""
    from recforge._optional import require

    require("matplotlib", purpose="plots")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from recforge.io import atomic_path

    df = source if isinstance(source, pd.DataFrame) else read_log(source, sep=None)
    cols = report.columns
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pairs = df[[cols["user"], cols["item"]]].dropna().astype(str).drop_duplicates()
    paths: list[Path] = []

    def save(fig: Any, name: str) -> None:
        fig.tight_layout()
        with atomic_path(out / name) as tmp:
            fig.savefig(tmp, dpi=100, format="png")
        plt.close(fig)
        paths.append(out / name)

    for who, col, fit, fname in (("item", cols["item"], report.item_power_law, "popularity_powerlaw.png"),
                                 ("user", cols["user"], report.user_power_law, "user_activity.png")):
        counts = pairs.groupby(col).size().to_numpy()
        values, freq = np.unique(counts, return_counts=True)
        ccdf = 1.0 - np.concatenate([[0], np.cumsum(freq)[:-1]]) / freq.sum()
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.loglog(values, ccdf, "o", ms=3, color="#4c72b0", label=f"{who}s (P[X >= x])")
        if fit is not None:
            xs = np.logspace(np.log10(fit.x_min), np.log10(max(values.max(), fit.x_min + 1)), 50)
            share = fit.n_tail / len(counts)
            ax.loglog(xs, share * (xs / fit.x_min) ** (1 - fit.alpha), "-", color="#c44e52",
                      label=f"power law alpha={fit.alpha:.2f}, x_min={fit.x_min}")
        ax.set_xlabel(f"interactions per {who} (log)")
        ax.set_ylabel(f"share of {who}s with at least x (log)")
        ax.set_title(f"{report.name}: {who} {'popularity' if who == 'item' else 'activity'}")
        ax.legend(loc="lower left", fontsize=8)
        save(fig, fname)
    if report.rating is not None and report.rating.get("distribution"):
        dist = report.rating["distribution"]
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.bar(list(dist), list(dist.values()), color="#55a868")
        ax.set_xlabel(str(cols["rating"]))
        ax.set_ylabel("rows")
        ax.set_title(f"{report.name}: values of {cols['rating']!r} ({report.rating['kind']})")
        save(fig, "ratings.png")
    if report.timestamp is not None and report.timestamp["unit"] not in ("ordinal",) and report.timestamp["first"]:
        raw = df[cols["timestamp"]].dropna()
        unit = {"seconds": "s", "milliseconds": "ms", "microseconds": "us", "nanoseconds": "ns"}.get(
            report.timestamp["unit"])
        when = (pd.to_datetime(pd.to_numeric(raw, errors="coerce"), unit=unit, errors="coerce") if unit else
                pd.to_datetime(raw, errors="coerce", utc=True, format="mixed")).dropna()
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.hist(when, bins=50, color="#8172b2")
        ax.set_xlabel(f"time ({report.timestamp['unit']})")
        ax.set_ylabel("rows")
        ax.set_title(f"{report.name}: rows over time")
        fig.autofmt_xdate()
        save(fig, "rows_over_time.png")
    return paths

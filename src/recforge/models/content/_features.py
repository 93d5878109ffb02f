"""Side features (a DataFrame indexed by raw id) -> one sparse, row-normalised attribute matrix.

Column kinds:

- ``flag``: 0/1 (or bool) columns, grouped into one multi-hot block (ML-100K's 19 genre flags);
  a feature is named after its column (``"Comedy"``).
- ``categorical``: string values one-hot encoded, several values per cell when they are joined by
  the separator (``"Action|Comedy"``); features are named ``"column=value"``.
- ``numeric``: quantile bins, one-hot (``"year=[1990,1994]"``); datetimes count as their year.
- ``text``: TF-IDF over lower-cased words that occur in at least two rows (``"title:star"``).

Each column's block is L2-normalised per row and multiplied by the block weight, so one wordy
column cannot drown the others. Missing ids get an all-zero row.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recforge.errors import DataError

_WORD = re.compile(r"[^\W\d_]{2,}", re.UNICODE)


@dataclass(frozen=True)
class FeatureSpec:
    """How to encode a feature table (see the module docstring).

    Attributes:
        columns: Columns to use; empty = infer from the table (:func:`infer_kinds`).
        text: Columns to treat as free text (TF-IDF) whatever their type.
        categorical: Columns to one-hot encode whatever their type.
        separator: Joins several values in one categorical cell.
        n_bins: Quantile bins for numeric columns.
        idf: Weight one-hot features by inverse document frequency (rare attributes count more).
        text_weight: Weight of each text block relative to a categorical block.
        numeric_weight: Weight of each numeric block.
    """

    columns: tuple[str, ...] = ()
    text: tuple[str, ...] = ()
    categorical: tuple[str, ...] = ()
    separator: str = "|"
    n_bins: int = 8
    idf: bool = True
    text_weight: float = 0.5
    numeric_weight: float = 0.5


def infer_kinds(df: pd.DataFrame, spec: FeatureSpec) -> dict[str, str]:
    """Column -> kind (``flag``, ``categorical``, ``numeric``, ``text``) for the usable columns.

    Without explicit ``columns`` it skips URLs, id-like strings (one distinct single-word value per
    row) and a multi-valued column that only repeats flag column names (ML-100K's ``genres``
    string duplicates its genre flags). Datetime columns are used only when named explicitly.
    """
    explicit = bool(spec.columns)
    cols = list(spec.columns) if explicit else [str(c) for c in df.columns]
    missing = [c for c in cols + list(spec.text) + list(spec.categorical) if c not in df.columns]
    if missing:
        raise DataError(f"feature column(s) {', '.join(map(repr, missing))} not found; "
                        f"available: {', '.join(map(str, df.columns))}")
    kinds: dict[str, str] = {}
    for c in cols + [c for c in (*spec.text, *spec.categorical) if c not in cols]:
        s = df[c]
        if c in spec.text:
            kinds[c] = "text"
        elif c in spec.categorical:
            kinds[c] = "categorical"
        elif pd.api.types.is_bool_dtype(s) or (
            pd.api.types.is_numeric_dtype(s) and s.dropna().isin([0, 1]).all() and s.nunique(dropna=True) <= 2
        ):
            kinds[c] = "flag"
        elif pd.api.types.is_datetime64_any_dtype(s):
            if explicit:
                kinds[c] = "numeric"
        elif pd.api.types.is_numeric_dtype(s):
            kinds[c] = "numeric"
        else:
            kind = _string_kind(s.dropna().astype(str), spec.separator)
            if kind or explicit:
                kinds[c] = kind or "categorical"
    if not explicit:
        flags = {c for c, k in kinds.items() if k == "flag"}
        for c, k in list(kinds.items()):
            if k == "categorical" and flags and c not in spec.categorical:
                tokens = _tokens(df[c].dropna().astype(str), spec.separator)
                if tokens and set(tokens) <= flags:
                    del kinds[c]
    return kinds


def _string_kind(s: pd.Series, sep: str) -> str | None:
    if len(s) == 0:
        return None
    if s.str.match(r"^(https?|ftp)://").mean() > 0.5:
        return None
    n_unique = s.nunique()
    multi_word = s.str.split().str.len().mean() >= 1.5
    if sep and s.str.contains(sep, regex=False).mean() > 0.05:
        return "categorical"
    if n_unique > 0.5 * len(s):
        # nearly one value per row: words can be shared (titles), whole values cannot (ids)
        return "text" if multi_word else None
    if n_unique <= max(50, 0.2 * len(s)) or not multi_word:
        return "categorical"
    return "text"


def _tokens(s: pd.Series, sep: str) -> list[str]:
    if sep:
        parts = s.str.split(sep, regex=False).explode()
    else:
        parts = s
    parts = parts.astype(str).str.strip()
    return sorted(set(parts[parts != ""].tolist()))


def encode(
    df: pd.DataFrame | None, ids: np.ndarray, spec: FeatureSpec
) -> tuple[sp.csr_matrix, np.ndarray]:
    """Encode ``df`` (indexed by raw id) for the entities ``ids`` (a vocabulary's ids, in order).

    Returns:
        ``(X, names)``: a CSR matrix ``(len(ids), n_features)`` (float64) and the feature names.
    """
    n = len(ids)
    if df is None or len(df.columns) == 0:
        return sp.csr_matrix((n, 0)), np.array([], dtype=str)
    if df.index.has_duplicates:
        raise DataError("side features: the feature table has duplicate ids in its index")
    # vocabularies, bins and IDF come from the whole table (the catalogue), then rows are picked
    table = df
    kinds = infer_kinds(df, spec)
    blocks: list[sp.csr_matrix] = []
    names: list[str] = []
    flag_cols = [c for c, k in kinds.items() if k == "flag"]
    if flag_cols:
        vals = table[flag_cols].apply(pd.to_numeric, errors="coerce").fillna(0).to_numpy(dtype=np.float64)
        blocks.append(_finish(sp.csr_matrix((vals != 0).astype(np.float64)), spec.idf, 1.0))
        names += flag_cols
    for c, k in kinds.items():
        if k == "flag":
            continue
        if k == "categorical":
            m, nm = _categorical(table[c], c, spec.separator)
            blocks.append(_finish(m, spec.idf, 1.0))
        elif k == "numeric":
            m, nm = _numeric(table[c], c, spec.n_bins)
            blocks.append(_finish(m, False, spec.numeric_weight))
        else:
            m, nm = _text(table[c], c)
            blocks.append(_finish(m, True, spec.text_weight))
        names += nm
    X = sp.hstack(blocks, format="csr") if blocks else sp.csr_matrix((len(df), 0))
    pos = _positions(df.index, ids)
    out = sp.vstack([X, sp.csr_matrix((1, X.shape[1]))], format="csr")[np.where(pos >= 0, pos, len(df))]
    out.sort_indices()
    return out.astype(np.float64), np.array(names, dtype=str)


def _positions(index: pd.Index, ids: np.ndarray) -> np.ndarray:
    """Row of each id in ``index`` (-1 if absent); ids of another type ('7' vs 7) match as strings."""
    if len(ids) == 0:
        return np.empty(0, dtype=np.int64)
    pos = index.get_indexer(pd.Index(ids))
    if (pos < 0).all():
        pos = index.astype(str).get_indexer(pd.Index(ids).astype(str))
    return pos.astype(np.int64)


def _finish(m: sp.csr_matrix, idf: bool, weight: float) -> sp.csr_matrix:
    m = sp.csr_matrix(m, dtype=np.float64)
    if idf and m.shape[1]:
        df_ = np.asarray((m > 0).sum(axis=0)).ravel()
        n_rows = max(1, int((m.getnnz(axis=1) > 0).sum()))
        m = m @ sp.diags(np.log((1.0 + n_rows) / (1.0 + df_)) + 1.0)
    norms = np.sqrt(np.asarray(m.multiply(m).sum(axis=1)).ravel())
    scale = np.divide(weight, norms, out=np.zeros_like(norms), where=norms > 0)
    return sp.csr_matrix(sp.diags(scale) @ m)


def _categorical(col: pd.Series, name: str, sep: str) -> tuple[sp.csr_matrix, list[str]]:
    s = col.astype("string")
    parts = s.str.split(sep, regex=False) if sep else s.map(lambda v: [v], na_action="ignore")
    rows, toks = [], []
    for r, vals in enumerate(parts.tolist()):
        if vals is None or vals is pd.NA or (isinstance(vals, float) and np.isnan(vals)):
            continue
        for v in vals:
            v = str(v).strip()
            if v and v != "<NA>":
                rows.append(r)
                toks.append(v)
    vocab = sorted(set(toks))
    pos = {v: j for j, v in enumerate(vocab)}
    m = sp.csr_matrix((np.ones(len(rows)), (rows, [pos[t] for t in toks])), shape=(len(col), len(vocab)))
    m.data[:] = 1.0  # repeated values in one cell count once
    return m, [f"{name}={v}" for v in vocab]


def _numeric(col: pd.Series, name: str, n_bins: int) -> tuple[sp.csr_matrix, list[str]]:
    if pd.api.types.is_datetime64_any_dtype(col):
        col = col.dt.year
    x = pd.to_numeric(col, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    ok = np.isfinite(x)
    if not ok.any():
        return sp.csr_matrix((len(col), 0)), []
    edges = np.unique(np.quantile(x[ok], np.linspace(0, 1, n_bins + 1)))
    if len(edges) == 1:
        edges = np.array([edges[0], edges[0]])
    b = np.clip(np.searchsorted(edges, x[ok], side="right") - 1, 0, len(edges) - 2)
    rows = np.flatnonzero(ok)
    m = sp.csr_matrix((np.ones(len(rows)), (rows, b)), shape=(len(col), len(edges) - 1))
    names = [f"{name}=[{_num(edges[j])},{_num(edges[j + 1])}]" for j in range(len(edges) - 1)]
    return m, names


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:.6g}"


def _text(col: pd.Series, name: str) -> tuple[sp.csr_matrix, list[str]]:
    docs = [_WORD.findall(str(v).lower()) if isinstance(v, str) else [] for v in col.tolist()]
    df_count: dict[str, int] = {}
    for words in docs:
        for w in set(words):
            df_count[w] = df_count.get(w, 0) + 1
    vocab = sorted(w for w, c in df_count.items() if c >= 2)  # a word in one title matches nothing
    pos = {w: j for j, w in enumerate(vocab)}
    rows, cols, vals = [], [], []
    for r, words in enumerate(docs):
        counts: dict[int, int] = {}
        for w in words:
            j = pos.get(w)
            if j is not None:
                counts[j] = counts.get(j, 0) + 1
        for j, c in counts.items():
            rows.append(r)
            cols.append(j)
            vals.append(1.0 + np.log(c))
    m = sp.csr_matrix((vals, (rows, cols)), shape=(len(col), len(vocab)))
    return m, [f"{name}:{w}" for w in vocab]


def spec_from(config: object, prefix: str = "") -> FeatureSpec:
    """Build a :class:`FeatureSpec` from a model config's fields (``columns``, ``text``, ...)."""
    def get(field: str, default: object) -> object:
        return getattr(config, prefix + field, default)

    return FeatureSpec(
        columns=tuple(get("columns", ())),  # type: ignore[arg-type]
        text=tuple(get("text_columns", ())),  # type: ignore[arg-type]
        categorical=tuple(get("categorical_columns", ())),  # type: ignore[arg-type]
        separator=str(get("separator", "|")),
        n_bins=int(get("n_bins", 8)),  # type: ignore[arg-type]
        idf=bool(get("idf", True)),
        text_weight=float(get("text_weight", 0.5)),  # type: ignore[arg-type]
        numeric_weight=float(get("numeric_weight", 0.5)),  # type: ignore[arg-type]
    )

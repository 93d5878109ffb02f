"""Result tables: one row per (model, fold) with the protocol named on every row."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recforge.io import atomic_write

ID_COLUMNS = ("protocol", "dataset", "feedback", "utility", "normalize", "model", "fold")
"""Columns that say what a row is (``utility``: the formula that made the values, ``normalize``: the
model's normalisation, e.g. ``user-zscore``; both only on rows that have one)."""


@dataclass
class EvaluationResult:
    """Metrics of one or more models under one protocol.

    Attributes:
        table: One row per (model, fold), plus a ``fold == "mean"`` row per model; metric columns,
            ``fit_seconds``, ``predict_seconds`` and counts.
        per_user: ``{(model, metric): per-user values}`` concatenated over folds, in a fixed user
            order, for paired significance tests between models.
        notes: Free-text notes (e.g. "sampled metrics: 99 negatives").
    """

    table: pd.DataFrame
    per_user: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def summary(self) -> pd.DataFrame:
        """The mean rows only."""
        return self.table[self.table["fold"] == "mean"].reset_index(drop=True)

    def metric(self, name: str, model: str | None = None) -> float:
        """The mean value of ``name`` (for ``model``, or the only model)."""
        rows = self.summary
        if model is not None:
            rows = rows[rows["model"] == model]
        if len(rows) != 1:
            raise KeyError(f"expected one summary row, found {len(rows)}")
        return float(rows.iloc[0][name])

    def metric_columns(self) -> list[str]:
        skip = set(ID_COLUMNS) | {"scenario", "revealed", "fit_seconds", "predict_seconds", "n_eval", "n_fallback"}
        return [c for c in self.table.columns if c not in skip]

    def to_records(self) -> list[dict[str, Any]]:
        out = []
        for rec in self.table.to_dict(orient="records"):
            out.append({k: _plain(v) for k, v in rec.items()})
        return out

    def to_json(self) -> str:
        return json.dumps({"rows": self.to_records(), "notes": self.notes}, indent=2)

    def to_markdown(self, summary_only: bool = True, digits: int = 4) -> str:
        df = self.summary if summary_only else self.table
        cols = list(df.columns)
        lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        for rec in df.to_dict(orient="records"):
            lines.append("| " + " | ".join(_fmt(rec[c], digits) for c in cols) + " |")
        return "\n".join(lines) + "\n"

    def save(self, path: str | Path) -> list[Path]:
        """Write ``<path>.csv``, ``.json`` and ``.md`` (atomically); returns the paths."""
        base = Path(path)
        base = base.with_suffix("") if base.suffix in (".csv", ".json", ".md") else base
        out = []
        with atomic_write(base.with_suffix(".csv")) as fh:
            self.table.to_csv(fh, index=False)
        out.append(base.with_suffix(".csv"))
        with atomic_write(base.with_suffix(".json")) as fh:
            fh.write(self.to_json())
        out.append(base.with_suffix(".json"))
        with atomic_write(base.with_suffix(".md")) as fh:
            fh.write(self.to_markdown())
        out.append(base.with_suffix(".md"))
        return out

    @staticmethod
    def concat(results: list[EvaluationResult]) -> EvaluationResult:
        per_user: dict[tuple[str, str], np.ndarray] = {}
        notes: list[str] = []
        for r in results:
            per_user.update(r.per_user)
            notes.extend(n for n in r.notes if n not in notes)
        return EvaluationResult(pd.concat([r.table for r in results], ignore_index=True), per_user, notes)


def _plain(v: Any) -> Any:
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return None if np.isnan(v) else float(v)
    if isinstance(v, float) and np.isnan(v):
        return None
    return v


def _fmt(v: Any, digits: int) -> str:
    if isinstance(v, (float, np.floating)):
        return "" if np.isnan(v) else f"{v:.{digits}f}"
    return str(v)

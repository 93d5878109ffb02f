"""The leaderboard's data: the runs the experiment runner saved (``run.json`` and ``results.csv``
in each run folder, see :func:`recforge.experiments.runner.run`), and the paired test of two of them.

A run's confidence interval is the Student-t 95% interval of the mean over its protocol's folds
(``results.csv`` keeps one row per fold); a single-split protocol has no fold spread to show and
its interval is left empty rather than invented. The paired test reruns both experiments with
:func:`recforge.experiments.compare.compare` (per-user values are not saved with a run), so it is
exactly ``recforge compare``'s table.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recforge.errors import ConfigError, DataError

__all__ = ["RunRecord", "compare_runs", "scan_runs", "user_intervals"]

_MAX_DEPTH = 4


@dataclass
class RunRecord:
    """One saved run.

    Attributes:
        id: Its folder relative to the runs root (``/`` separated): the key in URLs.
        folder: The run folder.
        name / model / protocol / dataset: From ``run.json``.
        metrics: Mean of each metric.
        ci: Per metric, the (low, high) 95% interval over folds, when the protocol has several.
        n_folds: Folds in ``results.csv``.
        fit_seconds: Total fit time.
        plots: PNG files under the run folder (relative paths).
        spec: The experiment spec as saved (to rerun it).
        notes: The protocol's notes.
    """

    id: str
    folder: Path
    name: str
    model: str
    protocol: str
    dataset: str
    metrics: dict[str, float]
    ci: dict[str, tuple[float, float]] = field(default_factory=dict)
    n_folds: int = 1
    fit_seconds: float | None = None
    plots: list[str] = field(default_factory=list)
    spec: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _dataset_label(spec: dict[str, Any]) -> str:
    ds = spec.get("dataset") or {}
    if not ds:
        return "unknown"
    return str(ds.get("name") or Path(str(ds.get("path", "unknown"))).name)


def _fold_ci(folder: Path, metrics: list[str]) -> tuple[dict[str, tuple[float, float]], int]:
    path = folder / "results.csv"
    if not path.exists():
        return {}, 1
    from scipy import stats

    table = pd.read_csv(path)
    folds = table[table["fold"].astype(str) != "mean"] if "fold" in table.columns else table
    n = len(folds)
    out: dict[str, tuple[float, float]] = {}
    if n >= 2:
        t = float(stats.t.ppf(0.975, n - 1))
        for m in metrics:
            if m in folds.columns:
                vals = pd.to_numeric(folds[m], errors="coerce").to_numpy(dtype=float)
                vals = vals[np.isfinite(vals)]
                if len(vals) >= 2:
                    half = t * float(vals.std(ddof=1)) / math.sqrt(len(vals))
                    out[m] = (float(vals.mean()) - half, float(vals.mean()) + half)
    return out, max(n, 1)


def read_run(folder: Path, root: Path) -> RunRecord:
    """The record of one run folder.

    Raises:
        DataError: ``run.json`` is unreadable or lacks the runner's fields.
    """
    path = folder / "run.json"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable run record ({exc})") from None
    missing = [k for k in ("name", "protocol", "model", "metrics") if k not in raw]
    if missing:
        raise DataError(f"{path}: missing {', '.join(missing)} (not written by `recforge run`?)")
    metrics = {k: float(v) for k, v in raw["metrics"].items() if isinstance(v, (int, float))}
    ci, n = _fold_ci(folder, list(metrics))
    plots = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.png"))
    spec = raw.get("spec") or {}
    return RunRecord(
        id=folder.relative_to(root).as_posix(), folder=folder, name=str(raw["name"]), model=str(raw["model"]),
        protocol=str(raw["protocol"]), dataset=_dataset_label(spec), metrics=metrics, ci=ci, n_folds=n,
        fit_seconds=(raw.get("timings") or {}).get("fit_seconds"), plots=plots, spec=spec,
        notes=[str(x) for x in raw.get("notes") or []],
    )


def scan_runs(root: str | Path | None) -> tuple[list[RunRecord], list[str]]:
    """Every run under ``root`` (folders holding ``run.json``, up to 4 levels down), sorted by
    protocol then name, and one line per folder that could not be read."""
    if root is None:
        return [], []
    base = Path(root)
    if not base.is_dir():
        return [], [f"{base}: no such folder"]
    runs, problems = [], []
    for path in sorted(base.rglob("run.json")):
        folder = path.parent
        if len(folder.relative_to(base).parts) > _MAX_DEPTH or folder == base:
            continue
        try:
            runs.append(read_run(folder, base))
        except DataError as exc:
            problems.append(str(exc))
    runs.sort(key=lambda r: (r.protocol, r.dataset, r.name))
    return runs, problems


def compare_runs(a: RunRecord, b: RunRecord, workdir: str | Path) -> dict[str, Any]:
    """``recforge compare`` of two saved runs: both rerun on the same split, paired tests per metric.

    Outputs go under ``workdir`` (the runs' own folders are not touched).

    Returns:
        ``{"baseline", "tests": [records], "table": [records], "notes"}``.

    Raises:
        ConfigError: The runs differ in dataset, protocol, k or seed (the comparison would not be
            paired), or share a name.
    """
    from recforge.experiments.compare import compare
    from recforge.experiments.spec import ExperimentSpec

    if a.id == b.id:
        raise ConfigError("pick two different runs to compare")
    if not a.spec or not b.spec:
        raise ConfigError("a run without its saved spec cannot be rerun for the paired test")
    work = Path(workdir)
    specs = []
    for r in (a, b):
        spec = ExperimentSpec.from_dict(r.spec, require=())
        specs.append(spec.replace(output=str(work / "runs" / r.id.replace("/", "__")), logger="none"))
    res = compare(specs, output=work / "compare", outputs=False, logger="none")
    return {"baseline": res.baseline, "tests": _records(res.tests), "table": _records(res.table()),
            "intervals": user_intervals(res.result.per_user), "notes": list(res.result.notes)}


def user_intervals(per_user: dict[tuple[str, str], Any]) -> list[dict[str, Any]]:
    """Per (model, metric): the mean and its 95% Student-t interval over the per-user values
    (rating protocols: over test ratings), NaN values left out."""
    from scipy import stats

    out = []
    for (model, metric), vals in per_user.items():
        v = np.asarray(vals, dtype=float)
        v = v[np.isfinite(v)]
        if len(v) < 2:
            continue
        half = float(stats.t.ppf(0.975, len(v) - 1)) * float(v.std(ddof=1)) / math.sqrt(len(v))
        out.append({"model": model, "metric": metric, "mean": float(v.mean()), "low": float(v.mean()) - half,
                    "high": float(v.mean()) + half, "n": int(len(v))})
    return out


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    out = []
    for rec in df.to_dict(orient="records"):
        row = {}
        for k, v in rec.items():
            v = v.item() if hasattr(v, "item") else v
            row[str(k)] = None if isinstance(v, float) and math.isnan(v) else v
        out.append(row)
    return out

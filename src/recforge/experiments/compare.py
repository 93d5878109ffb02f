"""``compare(specs)``: several models on the same split, one table, paired tests per metric over users."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recforge.errors import ConfigError, DataError
from recforge.evaluation.results import EvaluationResult
from recforge.experiments.runner import ExperimentResult, run
from recforge.experiments.spec import ExperimentSpec
from recforge.io import atomic_write


def paired_tests(result: EvaluationResult, baseline: str | None = None,
                 metrics: Sequence[str] | None = None) -> pd.DataFrame:
    """Paired significance tests of every model against ``baseline`` on each metric's per-user values.

    For each metric in ``result.per_user`` and each model other than the baseline: the mean of
    both, the mean paired difference (model - baseline), a paired t-test
    (``scipy.stats.ttest_rel``) and a Wilcoxon signed-rank test (``scipy.stats.wilcoxon``, zero
    differences dropped; p = 1 when every difference is zero). Users where either value is NaN
    are left out; ``n`` counts the pairs used. Rating protocols store absolute errors per test
    rating (``abs_error``), so their tests pair ratings rather than users.

    Args:
        result: Results of several models on the same split (same user order).
        baseline: The reference model (default: the first model in the table).
        metrics: Metrics to test (default: all in ``per_user``).
    """
    from scipy import stats

    models = list(dict.fromkeys(result.table["model"]))
    if not models:
        raise DataError("the result holds no models")
    base = baseline or models[0]
    if base not in models:
        raise ConfigError(f"baseline {base!r} is not among the models: {', '.join(models)}")
    names = list(dict.fromkeys(m for (_, m) in result.per_user))
    if metrics is not None:
        missing = [m for m in metrics if m not in names]
        if missing:
            raise ConfigError(f"no per-user values for {missing}; available: {', '.join(names)}")
        names = list(metrics)
    rows = []
    for metric in names:
        if (base, metric) not in result.per_user:
            continue
        a_all = np.asarray(result.per_user[(base, metric)], dtype=float)
        for mdl in models:
            if (mdl, metric) not in result.per_user:
                continue
            b_all = np.asarray(result.per_user[(mdl, metric)], dtype=float)
            if len(a_all) != len(b_all):
                raise DataError(f"{metric}: {base!r} has {len(a_all)} per-user values and {mdl!r} {len(b_all)}; "
                                "were they evaluated on the same split?")
            ok = np.isfinite(a_all) & np.isfinite(b_all)
            a, b = a_all[ok], b_all[ok]
            row: dict[str, Any] = {"metric": metric, "model": mdl, "mean": float(b.mean()) if len(b) else np.nan,
                                   "baseline": base, "diff": float((b - a).mean()) if len(b) else np.nan,
                                   "n": int(ok.sum())}
            if mdl == base or len(a) < 2:
                row.update(t_stat=np.nan, p_ttest=np.nan, w_stat=np.nan, p_wilcoxon=np.nan)
            else:
                d = b - a
                if np.allclose(d, 0.0):
                    row.update(t_stat=0.0, p_ttest=1.0, w_stat=0.0, p_wilcoxon=1.0)
                else:
                    t = stats.ttest_rel(b, a)
                    w = stats.wilcoxon(b, a, zero_method="wilcox")
                    row.update(t_stat=float(t.statistic), p_ttest=float(t.pvalue), w_stat=float(w.statistic),
                               p_wilcoxon=float(w.pvalue))
            rows.append(row)
    return pd.DataFrame(rows, columns=["metric", "model", "mean", "baseline", "diff", "n", "t_stat", "p_ttest",
                                       "w_stat", "p_wilcoxon"])


@dataclass
class ComparisonResult:
    """Results of :func:`compare`.

    Attributes:
        result: All models' rows (one protocol, one split).
        tests: :func:`paired_tests` against the first spec's model.
        runs: Each spec's :class:`ExperimentResult`.
        output_dir: Where the comparison files were written (None when not written).
    """

    result: EvaluationResult
    tests: pd.DataFrame
    runs: list[ExperimentResult] = field(default_factory=list)
    output_dir: Path | None = None

    @property
    def baseline(self) -> str:
        return str(self.tests["baseline"].iloc[0]) if len(self.tests) else str(self.result.table["model"].iloc[0])

    def table(self) -> pd.DataFrame:
        """One row per model: every metric's mean, then per tested metric the two p-values vs the baseline."""
        summ = self.result.summary.set_index("model")
        cols = [c for c in self.result.metric_columns() if c in summ.columns]
        out = summ[cols].copy()
        out["fit_seconds"] = summ.get("fit_seconds")
        for metric in dict.fromkeys(self.tests["metric"]):
            sub = self.tests[self.tests["metric"] == metric].set_index("model")
            out[f"{metric} p(t)"] = sub["p_ttest"]
            out[f"{metric} p(W)"] = sub["p_wilcoxon"]
        return out.reset_index()

    def to_markdown(self, digits: int = 4) -> str:
        df = self.table()
        cols = list(df.columns)
        lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        for rec in df.to_dict(orient="records"):
            cells = []
            for c in cols:
                v = rec[c]
                if isinstance(v, (float, np.floating)):
                    cells.append("" if np.isnan(v) else (f"{v:.2e}" if " p(" in c and v < 1e-3 else f"{v:.{digits}f}"))
                else:
                    cells.append(str(v))
            lines.append("| " + " | ".join(cells) + " |")
        tested = ", ".join(dict.fromkeys(self.tests["metric"]))
        notes = [(f"p(t): paired t-test, p(W): Wilcoxon signed-rank test, each model vs {self.baseline}, paired "
                  f"over the per-user values of {tested or 'no metric'}.")]
        notes.extend(self.result.notes)
        return "\n".join(lines) + "\n\n" + "\n".join(f"- {n}" for n in notes) + "\n"

    def save(self, folder: str | Path) -> list[Path]:
        """Write ``comparison.{csv,md}``, ``tests.csv`` and ``results.{csv,json,md}`` into ``folder``."""
        folder = Path(folder)
        paths = self.result.save(folder / "results")
        with atomic_write(folder / "comparison.csv") as fh:
            self.table().to_csv(fh, index=False)
        with atomic_write(folder / "comparison.md") as fh:
            fh.write(self.to_markdown())
        with atomic_write(folder / "tests.csv") as fh:
            self.tests.to_csv(fh, index=False)
        with atomic_write(folder / "comparison.json") as fh:
            fh.write(json.dumps({"baseline": self.baseline, "table": _records(self.table()),
                                 "tests": _records(self.tests), "notes": self.result.notes}, indent=2) + "\n")
        return [*paths, folder / "comparison.csv", folder / "comparison.md", folder / "tests.csv",
                folder / "comparison.json"]


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    out = []
    for rec in df.to_dict(orient="records"):
        out.append({k: (None if isinstance(v, float) and np.isnan(v) else (v.item() if hasattr(v, "item") else v))
                    for k, v in rec.items()})
    return out


def _default_protocol(spec: ExperimentSpec) -> str:
    from recforge.evaluation.protocols import default_protocol
    from recforge.models.registry import get_model_class

    return default_protocol(get_model_class(spec.model).task)


def compare(specs: Sequence[ExperimentSpec | str | Path], *, baseline: str | None = None, logger: str | None = None,
            output: str | Path | None = None, outputs: bool = False, progress: bool = False,
            echo: Callable[[str], None] | None = None) -> ComparisonResult:
    """Run several experiments on the same dataset, protocol, k and seed; test their differences.

    Args:
        specs: Experiment specs or files; their ``name`` labels the rows and must be unique.
        baseline: Name of the reference experiment (default: the first).
        logger: Override every spec's logger kind.
        output: Folder for the comparison files (default ``runs/compare``); each run still writes
            its own ``runs/<name>``.
        outputs: Also write each run's model, exports and plots.
        progress: Progress bars.
        echo: Called with one line per step.
    """
    parsed = [s if isinstance(s, ExperimentSpec) else ExperimentSpec.from_file(s) for s in specs]
    if len(parsed) < 2:
        raise ConfigError("compare needs at least two experiments")
    names = [s.name for s in parsed]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ConfigError(f"experiment names must be unique to label the rows; repeated: {', '.join(dup)}")
    parsed = [s if s.protocol else s.replace(protocol=_default_protocol(s)) for s in parsed]
    keys = {s.dataset_key() for s in parsed}
    if len(keys) > 1:
        detail = "; ".join(f"{s.name}: dataset={s.dataset}, protocol={s.protocol}, k={s.k}, seed={s.seed}" for s in parsed)
        raise ConfigError(f"compare needs the same dataset, protocol, k and seed in every file ({detail})")
    say = echo or (lambda s: None)
    runs = []
    for spec in parsed:
        say(f"running {spec.name} ({spec.model})")
        runs.append(run(spec, logger=logger, progress=progress, echo=echo, outputs=outputs))
    protocols = {r.result.table["protocol"].iloc[0] for r in runs}
    if len(protocols) > 1:
        raise ConfigError(f"the experiments ran under different protocols ({', '.join(sorted(protocols))}); "
                          "set the same [protocol] name in every file")
    combined = EvaluationResult.concat([r.result for r in runs])
    tests = paired_tests(combined, baseline=baseline)
    res = ComparisonResult(combined, tests, runs)
    folder = Path(output) if output is not None else Path("runs") / "compare"
    res.save(folder)
    res.output_dir = folder
    return res

"""``run(spec)``: load, split, fit (logged), evaluate under the named protocol, save, export, plot."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from recforge.config import FitOptions
from recforge.evaluation.results import EvaluationResult
from recforge.experiments.spec import ExperimentSpec
from recforge.io import atomic_write

MULTI_FOLD = {"rating-kfold5": 5, "rating-u1u5": 5}


@dataclass
class ExperimentResult:
    """What :func:`run` produced.

    Attributes:
        spec: The experiment.
        result: Metrics under the protocol (``result.per_user`` feeds significance tests).
        model: The fitted model of the last fold (the one saved, exported and plotted).
        output_dir: The run's output folder.
        files: Written files by role (``results``, ``model``, ``onnx``, ``npz``, plots, ...).
        log_dir: The logger's run folder (None without a logger).
        timings: Seconds spent per stage.
    """

    spec: ExperimentSpec
    result: EvaluationResult
    model: Any
    output_dir: Path
    files: dict[str, list[Path]] = field(default_factory=dict)
    log_dir: Path | None = None
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def metrics(self) -> dict[str, float]:
        """Mean value of every metric (the summary row)."""
        row = self.result.summary.iloc[0]
        return {c: float(row[c]) for c in self.result.metric_columns()}


# ---------------------------------------------------------------------------------------- pieces
def load_dataset(spec: ExperimentSpec) -> Any:
    """The spec's dataset as a :class:`~recforge.data.datasets.Dataset`."""
    from recforge.data import load, load_file
    from recforge.data.datasets import Dataset

    ds = spec.dataset
    if ds.get("name"):
        return load(str(ds["name"]))
    path = ds["path"]
    inter = load_file(path, ds.get("user_col", "user_id"), ds.get("item_col", "item_id"), ds.get("rating_col"),
                      ds.get("timestamp_col"), duplicates=ds.get("duplicates", "error"))
    if isinstance(inter, Dataset):
        return inter
    return Dataset(inter.name, "rating" if inter.explicit else "ranking", inter)


def build_model(spec: ExperimentSpec) -> Any:
    from recforge.models.registry import make_model

    return make_model(spec.model, spec.params)


def default_protocol(model: Any) -> str:
    return "rating-u1" if model.task == "rating" else "loo-full"


def is_torch_model(model: Any) -> bool:
    return any(c.__name__ == "TorchRecommender" for c in type(model).__mro__)


def protocol_split(ds: Any, protocol: str, seed: int) -> Any | None:
    """The (last) train/test split a single-split protocol uses, or None (multi-fold, CTR, ...).

    Mirrors :mod:`recforge.evaluation.protocols` so plots made after a run (metric-vs-k) score
    exactly the test set the protocol scored.
    """
    from recforge import splits as S

    data = ds.interactions
    if data is None:
        return None
    if protocol in ("loo-full", "loo-sampled"):
        return S.leave_one_out(data)
    if protocol == "ratio-full":
        return S.random_split(data, test_fraction=0.2, seed=seed)
    if protocol == "rating-u1":
        return ds.split("u1")
    if protocol == "given-split":
        names = ds.split_names
        return ds.split("given" if "given" in names else names[0]) if names else None
    return None


def fit_options(spec: ExperimentSpec, **extra: Any) -> FitOptions:
    """The spec's run options as :class:`~recforge.training.TrainingOptions` (or plain FitOptions)."""
    tr = spec.training
    base = {"seed": spec.seed, "device": str(tr.get("device", "cpu")), "progress": bool(tr.get("progress", False)),
            "threads": tr.get("threads"), "verbose": bool(tr.get("verbose", False))}
    base.update(extra)
    loop_keys = ("patience", "min_delta", "restore_best", "precision", "checkpoint_dir", "callbacks")
    loop = {k: tr[k] for k in loop_keys if k in tr}
    loop.update({k: base.pop(k) for k in list(base) if k in loop_keys})
    try:
        from recforge.training.options import TrainingOptions

        return TrainingOptions(**base, **loop)
    except ImportError:  # pragma: no cover - training package always importable (no torch at import)
        return FitOptions(**base)


def carve_validation(data: Any, how: Any, seed: int) -> tuple[Any, Any]:
    """Split training data into (train, validation): a random fraction or each user's latest (``"loo"``)."""
    from recforge import splits as S

    sp = S.leave_one_out(data) if how == "loo" else S.random_split(data, test_fraction=float(how), seed=seed)
    return sp.train, sp.test


class _FoldHook:
    """Fits each fold of a protocol with the run's options and logger; keeps the fitted models."""

    def __init__(self, spec: ExperimentSpec, logger: Any, n_folds: int, torch_model: bool,
                 extra_options: dict[str, Any] | None = None,
                 after_fit: Callable[[Any, int], None] | None = None) -> None:
        self.spec = spec
        self.logger = logger
        self.n_folds = n_folds
        self.torch_model = torch_model
        self.extra = extra_options or {}
        self.after_fit = after_fit
        self.models: list[Any] = []
        self.fit_seconds: list[float] = []

    def fit(self, model: Any, cls: type, data: Any, options: Any) -> Any:
        fold = len(self.models) + 1
        prefix = f"fold{fold}/" if self.n_folds > 1 else ""
        extra = dict(self.extra)
        given = getattr(options, "validation", None)
        if given is not None and "validation" not in extra:
            extra["validation"] = given  # the protocol's own validation rows (ctr-holdout)
        if self.torch_model:
            if self.logger is not None:
                extra["logger"] = self.logger.lightning(prefix.rstrip("/"))
            if self.spec.training.get("validation") is not None:
                data, valid = carve_validation(data, self.spec.training["validation"], self.spec.seed)
                extra["validation"] = valid
        opts = fit_options(self.spec, **extra)
        t0 = time.perf_counter()
        model.__class__ = cls  # back to the real class: the fitted model is an ordinary model
        model.fit(data, opts)
        self.fit_seconds.append(time.perf_counter() - t0)
        if self.logger is not None and not self.torch_model:
            hist = getattr(model, "history_", None)
            if not isinstance(hist, dict) and getattr(model, "loss_history_", None) is not None:
                hist = {"train_loss": np.asarray(model.loss_history_).tolist()}
            if isinstance(hist, dict):
                self.logger.log_history(hist, prefix=prefix)
        self.models.append(model)
        if self.after_fit is not None:
            self.after_fit(model, fold)
        return model


def capturing(model: Any, hook: _FoldHook) -> Any:
    """A copy of ``model`` whose fits (and those of copies the protocol makes) go through ``hook``."""
    cls = type(model)

    def fit(self: Any, data: Any, options: Any = None) -> Any:
        return hook.fit(self, cls, data, options)

    sub = type(cls.__name__, (cls,), {"fit": fit, "__module__": cls.__module__, "__qualname__": cls.__qualname__})
    return sub(model.config)


def evaluate_spec(spec: ExperimentSpec, ds: Any, logger: Any = None, *, progress: bool = False,
                  extra_options: dict[str, Any] | None = None) -> tuple[EvaluationResult, _FoldHook, str]:
    """Evaluate the spec's model under its protocol, fitting every fold through the run's logger."""
    from recforge.evaluation.protocols import evaluate

    model = build_model(spec)
    protocol = spec.protocol or default_protocol(model)
    hook = _FoldHook(spec, logger, MULTI_FOLD.get(protocol, 1), is_torch_model(model), extra_options)
    result = evaluate(capturing(model, hook), ds, protocol, k=spec.k, options=fit_options(spec),
                      model_name=spec.name, progress=progress)
    return result, hook, protocol


# ---------------------------------------------------------------------------------------- run
def run(spec: ExperimentSpec | str | Path, *, logger: str | None = None, output: str | Path | None = None,
        progress: bool = False, echo: Callable[[str], None] | None = None, outputs: bool = True) -> ExperimentResult:
    """Run one experiment: fit and evaluate under the protocol, log, and write the outputs.

    Args:
        spec: An :class:`ExperimentSpec` or the path of an experiment file.
        logger: Override the file's logger kind (``csv``, ``tensorboard``, ``wandb``, ``mlflow``, ``none``).
        output: Override the output folder.
        progress: Show progress bars.
        echo: Called with one line per step (the CLI prints them).
        outputs: Write model, exports and plots as the spec asks (False: results only).

    Files (under the output folder): ``results.{csv,json,md}``, ``run.json`` (spec, metrics,
    timings, environment, file list), ``model.npz`` when ``save_model``, the exports
    (``onnx/`` or ``export/``) and plots (``plots/``).
    """
    from recforge.loggers import environment_info, make_logger

    if not isinstance(spec, ExperimentSpec):
        spec = ExperimentSpec.from_file(spec)
    spec = spec.replace(logger=logger, output=str(output) if output is not None else None)
    say = echo or (lambda s: None)
    out = spec.output_dir
    out.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()
    timings: dict[str, float] = {}

    t0 = time.perf_counter()
    ds = load_dataset(spec)
    timings["load_seconds"] = time.perf_counter() - t0
    env = environment_info(str(spec.training.get("device", "cpu")))
    lg_cfg = spec.logger
    lg = make_logger(lg_cfg.get("kind", "csv"), root=lg_cfg.get("root", out / "logs"), name=spec.name,
                     project=lg_cfg.get("project", "recforge"))
    try:
        if lg is not None:
            lg.log_config(spec.to_dict())
            lg.log_environment(env)
            say(f"logging to {lg.run_dir} ({lg.kind})")
        t0 = time.perf_counter()
        result, hook, protocol = evaluate_spec(spec, ds, lg, progress=progress)
        timings["evaluate_seconds"] = time.perf_counter() - t0
        timings["fit_seconds"] = float(sum(hook.fit_seconds))
        model = hook.models[-1]
        files: dict[str, list[Path]] = {"results": result.save(out / "results")}
        if outputs:
            t0 = time.perf_counter()
            files.update(write_outputs(spec, model, ds, protocol, out, say))
            timings["outputs_seconds"] = time.perf_counter() - t0
        timings["total_seconds"] = time.perf_counter() - t_all
        summary = result.summary.iloc[0]
        final = {c: float(summary[c]) for c in result.metric_columns() if _is_number(summary[c])}
        if "predict_seconds" in summary:
            timings["predict_seconds"] = float(summary["predict_seconds"])
        if lg is not None:
            lg.log_summary({**{f"test/{k}": v for k, v in final.items()}, **{f"time/{k}": v for k, v in timings.items()}})
            for role in ("results",):
                for p in files.get(role, []):
                    if p.suffix == ".json":
                        lg.log_artifact(p)
        record = {
            "name": spec.name, "protocol": protocol, "model": spec.model, "metrics": final, "timings": timings,
            "spec": spec.to_dict(), "environment": env, "notes": result.notes,
            "log_dir": str(lg.run_dir) if lg is not None else None,
            "files": {k: [str(p) for p in v] for k, v in files.items()},
        }
        with atomic_write(out / "run.json") as fh:
            fh.write(json.dumps(record, indent=2, default=str) + "\n")
        files["run"] = [out / "run.json"]
    except BaseException:
        if lg is not None:
            lg.close("failed")
        raise
    if lg is not None:
        lg.close("success")
    return ExperimentResult(spec, result, model, out, files, lg.run_dir if lg is not None else None, timings)


def _is_number(v: Any) -> bool:
    try:
        return bool(np.isfinite(float(v))) or np.isnan(float(v))
    except (TypeError, ValueError):
        return False


def write_outputs(spec: ExperimentSpec, model: Any, ds: Any, protocol: str, out: Path,
                  say: Callable[[str], None]) -> dict[str, list[Path]]:
    """Save, export and plot a fitted model as ``spec.outputs`` asks; returns the files by role."""
    o = spec.outputs
    files: dict[str, list[Path]] = {}
    if o.get("save_model", False):
        files["model"] = [model.save(out / "model.npz")]
        say(f"saved model to {files['model'][0]}")
    for fmt in o.get("export", []):
        if fmt == "none":
            continue
        from recforge.export import export_model

        exported = export_model(model, out / ("onnx" if _export_format(model, fmt) == "onnx" else "export"),
                                format=fmt)
        files.setdefault("export", []).extend(exported)
        say(f"exported {', '.join(p.name for p in exported)}")
    plots = o.get("plots", [])
    if plots:
        files.update(_plots(spec, model, ds, protocol, out / "plots", plots, say))
    return files


def _export_format(model: Any, fmt: str) -> str:
    if fmt == "auto":
        # CTR models are torch networks over feature rows: recforge.export writes ONNX for them too
        return "onnx" if is_torch_model(model) or getattr(model, "task", None) == "ctr" else "npz"
    return fmt


def _plots(spec: ExperimentSpec, model: Any, ds: Any, protocol: str, folder: Path, plots: list[str],
           say: Callable[[str], None]) -> dict[str, list[Path]]:
    from recforge import viz

    files: dict[str, list[Path]] = {}
    o = spec.outputs
    data = ds.interactions
    if "embeddings" in plots:
        try:
            viz.model_embeddings(model)
            has_emb = True
        except (NotImplementedError, AttributeError):
            has_emb = False
            say(f"{spec.model} has no embeddings: embedding plot skipped")
        if has_emb:
            paths = viz.plot_model_embeddings(
                model, folder, data=data, which="items", color_by=o.get("color_by", "popularity"),
                seed=spec.seed, title=f"{spec.name}: item embeddings", max_points=o.get("embedding_points"),
            )
            files["embeddings"] = paths
            say(f"wrote {', '.join(str(p) for p in paths)}")
    if "learning_curve" in plots:
        hist = getattr(model, "history_", None)
        if not isinstance(hist, dict) and getattr(model, "loss_history_", None) is not None:
            hist = {"train_loss": list(np.asarray(model.loss_history_))}
        if isinstance(hist, dict) and any(k != "epoch" and len(v) for k, v in hist.items()):
            files["learning_curve"] = [viz.plot_learning_curve(hist, folder / "learning_curve.png",
                                                               title=f"{spec.name}: learning curve")]
        else:
            say(f"{spec.model} keeps no per-epoch history: learning curve skipped")
    if "metric_vs_k" in plots and not protocol.startswith("rating"):
        split = protocol_split(ds, protocol, spec.seed)
        if split is not None:
            ks = tuple(o.get("ks", (1, 5, 10, 20, 50)))
            table = viz.metric_at_ks(model, split.test, ks, exclude=None)
            files["metric_vs_k"] = [
                viz.plot_metric_vs_k(table, folder / "metric_vs_k.png", title=f"{spec.name}: metrics vs k ({protocol})"),
            ]
            with atomic_write(folder / "metric_vs_k.csv") as fh:
                table.to_csv(fh, index=False)
            files["metric_vs_k"].append(folder / "metric_vs_k.csv")
    if "data" in plots and data is not None:
        from recforge.data.stats import plot_stats

        files["data"] = plot_stats(data, folder)
    return files


__all__ = [
    "MULTI_FOLD",
    "ExperimentResult",
    "carve_validation",
    "evaluate_spec",
    "fit_options",
    "protocol_split",
    "run",
    "write_outputs",
]

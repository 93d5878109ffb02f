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
from recforge.errors import ConfigError
from recforge.evaluation.protocols import Protocol, get_protocol
from recforge.evaluation.results import EvaluationResult
from recforge.experiments.spec import ExperimentSpec
from recforge.io import atomic_write


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
    """The spec's dataset (its ``[dataset]`` table, a :class:`~recforge.data.source.DataSource`), loaded."""
    from recforge.data.source import DataSource

    return DataSource.from_table(spec.dataset, where=f"{spec.source or 'config'} [dataset]").load()


def echo_notes(dataset: Any, echo: Callable[[str], None]) -> None:
    """Pass each of the loader's notes (:attr:`Dataset.notes`) to ``echo`` as a ``data: ...`` line,
    the lines ``evaluate`` and ``train`` print when they load data."""
    for note in getattr(dataset, "notes", None) or []:
        echo(f"data: {note}")


def build_model(spec: ExperimentSpec) -> Any:
    """The spec's model with its hyperparameters; with ``normalize`` it is wrapped in the
    ``normalized`` model (:class:`recforge.models.ensemble.normalized.Normalized`)."""
    from recforge.models.registry import make_model

    if not spec.normalize:
        return make_model(spec.model, spec.params)
    from recforge.data.utility import parse_normalize

    norm = parse_normalize(spec.normalize)
    assert norm is not None
    inner = make_model(spec.model, spec.params)
    if inner.task != "rating":
        raise ConfigError(f"--normalize {spec.normalize}: {spec.model} is a {inner.task} model; normalisation "
                          "wraps a rating model (it predicts values on the original scale)")
    if inner.uses_signals:
        raise ConfigError(f"--normalize {spec.normalize}: {spec.model} learns its rating signal, not the "
                          "normalised values; it cannot be normalised (drop --normalize)")
    return make_model("normalized", {"model": spec.model, "params": dict(spec.params) or None,
                                     "kind": norm.kind, "side": norm.side})


def spec_protocol(spec: ExperimentSpec, model: Any) -> Protocol:
    """The spec's protocol, or the default of the model's task (:meth:`Protocol.default_for`)."""
    if spec.protocol:
        return get_protocol(spec.protocol)
    if any(spec.dataset.get(key) for key in ("train", "split_column", "split_date")):
        return get_protocol("given-split")  # the data carries its own split
    return Protocol.default_for(model.task)


def _new_folders(path: Path) -> list[Path]:
    """The folders ``path.mkdir(parents=True)`` would create, outermost first."""
    made = []
    for p in [path, *path.parents]:
        if p.exists():
            break
        made.append(p)
    return made[::-1]


def _remove_partial(created: list[Path], log_dir: Path | None) -> None:
    """A failed run leaves nothing behind: its log folder, and the output folders it created."""
    import shutil

    if log_dir is not None and Path(log_dir).exists():
        shutil.rmtree(log_dir, ignore_errors=True)
    if created:
        shutil.rmtree(created[0], ignore_errors=True)


def epoch_history(model: Any) -> dict[str, list[float]] | None:
    """The per-epoch training history a fitted model kept (its ``history_`` dict), or None."""
    hist = getattr(model, "history_", None)
    return hist if isinstance(hist, dict) else None


def fit_options(spec: ExperimentSpec, **extra: Any) -> FitOptions:
    """The spec's ``[training]`` run options as :class:`~recforge.config.FitOptions` (``extra`` overrides)."""
    tr = spec.training
    opts: dict[str, Any] = {"seed": spec.seed, "device": str(tr.get("device", "cpu")),
                            "progress": bool(tr.get("progress", False)), "threads": tr.get("threads"),
                            "verbose": bool(tr.get("verbose", False)),
                            # "auto": the protocol's default (ctr-holdout's 3, else the loop's 5), so
                            # `run FILE` and `evaluate --config FILE` train the same way
                            "patience": tr.get("patience", "auto")}
    for key in ("min_delta", "restore_best", "precision", "checkpoint_dir", "callbacks", "backend", "workers",
                "address"):
        if key in tr:
            opts[key] = tr[key]
    opts.update(extra)
    return FitOptions(**opts)


def carve_validation(data: Any, how: Any, seed: int) -> tuple[Any, Any]:
    """Split training data into (train, validation): a random fraction or each user's latest (``"loo"``)."""
    from recforge import splits as S

    sp = S.leave_one_out(data) if how == "loo" else S.random_split(data, test_fraction=float(how), seed=seed)
    return sp.train, sp.test


@dataclass
class FoldFits:
    """The fits of one evaluated experiment: the fitted model and the fit time of every fold."""

    models: list[Any] = field(default_factory=list)
    fit_seconds: list[float] = field(default_factory=list)
    splits: list[Any] = field(default_factory=list)


def evaluate_spec(spec: ExperimentSpec, ds: Any, logger: Any = None, *, progress: bool = False,
                  extra_options: dict[str, Any] | None = None) -> tuple[EvaluationResult, FoldFits, str]:
    """Evaluate the spec's model under its protocol, logging every fold's fit to ``logger``.

    Torch models log live through the logger's Lightning adapter (one ``foldN`` prefix per fold
    when there are several) and, when ``[training] validation`` is set, validate on rows carved
    from each fold's training data; the other models' per-epoch history is logged after the fit.

    Returns:
        The result, the fits (fitted models, fit times, splits) and the protocol's name.
    """
    model = build_model(spec)
    proto = spec_protocol(spec, model)
    options = fit_options(spec, **(extra_options or {}))
    fits = FoldFits(splits=proto.splits(ds, 0 if options.seed is None else int(options.seed)))
    prefixed = len(fits.splits) > 1
    # torch recommenders log live and may validate on carved rows; CTR fits validate on the
    # protocol's own rows and, like the classical models, are logged from their history after the fit
    torch_model = model.backend == "torch" and model.task != "ctr"
    carve = spec.training.get("validation")
    started: list[float] = []

    def prepare(split: Any, fold: int, opts: FitOptions) -> tuple[Any, FitOptions]:
        train = split.train
        if torch_model:
            if logger is not None:
                opts = opts.replace(logger=logger.lightning(f"fold{fold}" if prefixed else ""))
            if carve is not None:
                train, valid = carve_validation(train, carve, spec.seed)
                opts = opts.replace(validation=valid)
        started.append(time.perf_counter())
        return train, opts

    def on_fit(fitted: Any, split: Any, fold: int) -> None:
        fits.fit_seconds.append(time.perf_counter() - started[-1])
        hist = epoch_history(fitted) if logger is not None and not torch_model else None
        if hist is not None:
            logger.log_history(hist, prefix=f"fold{fold}/" if prefixed else "")
        fits.models.append(fitted)

    result = proto.run_splits(model, fits.splits, ds, k=spec.k, options=options, label=spec.name,
                              progress=progress, on_fit=on_fit, prepare=prepare)
    return result, fits, proto.name


# ---------------------------------------------------------------------------------------- run
def run(spec: ExperimentSpec | str | Path, *, logger: str | None = None, output: str | Path | None = None,
        progress: bool = False, echo: Callable[[str], None] | None = None, outputs: bool = True,
        data_echo: Callable[[str], None] | None = None) -> ExperimentResult:
    """Run one experiment: fit and evaluate under the protocol, log, and write the outputs.

    Args:
        spec: An :class:`ExperimentSpec` or the path of an experiment file.
        logger: Override the file's logger kind (``csv``, ``tensorboard``, ``wandb``, ``mlflow``, ``none``).
        output: Override the output folder.
        progress: Show progress bars.
        echo: Called with one line per step (the CLI prints them).
        outputs: Write model, exports and plots as the spec asks (False: results only).
        data_echo: Called with each ``data: ...`` line of the loader's notes (what it read, the
            feedback kind, what cleaning dropped; :attr:`Dataset.notes`) as soon as the data is
            loaded; default ``echo``. They are also kept in ``run.json`` (``data_notes``).

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
    t_all = time.perf_counter()
    timings: dict[str, float] = {}

    t0 = time.perf_counter()
    ds = load_dataset(spec)  # a bad dataset fails before anything is written
    timings["load_seconds"] = time.perf_counter() - t0
    echo_notes(ds, data_echo or say)
    created = _new_folders(out)
    out.mkdir(parents=True, exist_ok=True)
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
        result, fits, protocol = evaluate_spec(spec, ds, lg, progress=progress)
        timings["evaluate_seconds"] = time.perf_counter() - t0
        timings["fit_seconds"] = float(sum(fits.fit_seconds))
        model = fits.models[-1]
        files: dict[str, list[Path]] = {"results": result.save(out / "results")}
        if outputs:
            t0 = time.perf_counter()
            # metric-vs-k plots score the test set the protocol scored (single-split ranking protocols)
            split = fits.splits[-1] if len(fits.splits) == 1 and get_protocol(protocol).task == "ranking" else None
            files.update(write_outputs(spec, model, ds, protocol, out, say, split=split))
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
            "utility": getattr(ds, "utility", None), "normalize": spec.normalize,
            "spec": spec.to_dict(), "environment": env, "notes": result.notes,
            "data_notes": list(getattr(ds, "notes", [])),
            "log_dir": str(lg.run_dir) if lg is not None else None,
            "files": {k: [str(p) for p in v] for k, v in files.items()},
        }
        with atomic_write(out / "run.json") as fh:
            fh.write(json.dumps(record, indent=2, default=str) + "\n")
        files["run"] = [out / "run.json"]
    except BaseException:
        if lg is not None:
            lg.close("failed")
        _remove_partial(created, lg.run_dir if lg is not None else None)
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
                  say: Callable[[str], None], *, split: Any = None) -> dict[str, list[Path]]:
    """Save, export and plot a fitted model as ``spec.outputs`` asks; returns the files by role.

    ``split`` is the train/test split the model was evaluated on (for the metric-vs-k plot, made
    only when it is given).
    """
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
        files.update(_plots(spec, model, ds, protocol, out / "plots", plots, say, split))
    return files


def _export_format(model: Any, fmt: str) -> str:
    if fmt == "auto":
        from recforge.export import auto_format

        return auto_format(model)
    return fmt


def _plots(spec: ExperimentSpec, model: Any, ds: Any, protocol: str, folder: Path, plots: list[str],
           say: Callable[[str], None], split: Any = None) -> dict[str, list[Path]]:
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
        hist = epoch_history(model)
        if hist is not None and any(k != "epoch" and len(v) for k, v in hist.items()):
            files["learning_curve"] = [viz.plot_learning_curve(hist, folder / "learning_curve.png",
                                                               title=f"{spec.name}: learning curve")]
        else:
            say(f"{spec.model} keeps no per-epoch history: learning curve skipped")
    if "metric_vs_k" in plots:
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
    "ExperimentResult",
    "FoldFits",
    "carve_validation",
    "epoch_history",
    "evaluate_spec",
    "fit_options",
    "run",
    "spec_protocol",
    "write_outputs",
]

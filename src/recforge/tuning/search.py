"""``tune(spec)``: an Optuna study over ``[tune.space]``, scored on validation data carved from training."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recforge._optional import require
from recforge.errors import ConfigError, RecforgeError
from recforge.experiments.runner import carve_validation, echo_notes, fit_options, load_dataset, spec_protocol
from recforge.experiments.spec import ExperimentSpec
from recforge.io import atomic_write
from recforge.tuning.space import parse_space, suggest

_MINIMIZE = ("RMSE", "MAE", "MSE", "loss", "logloss", "log_loss", "LogLoss")
_TUNE_KEYS = {"space", "n_trials", "metric", "direction", "pruner", "validation", "timeout", "report_every", "enqueue"}


@dataclass
class TuningResult:
    """What :func:`tune` produced.

    Attributes:
        study: The Optuna study.
        trials: One row per trial: number, state, value, seconds and the parameters.
        best_params: The best trial's hyperparameters merged into the spec's.
        best_value: Its validation score.
        best_spec: The experiment with the best hyperparameters (saved as ``best_file``).
        best_file: The new experiment file.
        files: Everything written.
    """

    study: Any
    trials: pd.DataFrame
    best_params: dict[str, Any]
    best_value: float
    best_spec: ExperimentSpec
    best_file: Path
    metric: str
    direction: str
    files: list[Path] = field(default_factory=list)

    def to_markdown(self, digits: int = 4) -> str:
        df = self.trials
        cols = list(df.columns)
        lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        for rec in df.to_dict(orient="records"):
            lines.append("| " + " | ".join(
                (f"{v:.{digits}g}" if isinstance(v, float) and np.isfinite(v) else ("" if isinstance(v, float) else str(v)))
                for v in rec.values()) + " |")
        return "\n".join(lines) + "\n"


def tuning_parts(ds: Any, protocol: Any, model: Any, how: Any, seed: int) -> tuple[Any, Any]:
    """(training, validation) data for tuning, from the protocol's first split: its test rows are never used.

    CTR splits validate on their own validation rows (or a seeded 10% of the training rows when
    they have none); the others carve ``how`` (a fraction, or ``"loo"``) from the training data.
    """
    from recforge.data.ctr import random_parts

    if model.task == "ctr" and protocol.task != "ctr":
        raise ConfigError(f"CTR models are tuned under protocol 'ctr-holdout', not {protocol.name!r}")
    protocol.check_model(model)
    split = protocol.splits(ds, seed)[0]
    if model.task != "ctr":
        return carve_validation(split.train, how, seed)
    if split.valid is not None:
        return split.train, split.valid
    inner, valid = random_parts(len(split.train), (0.9, 0.1), seed)
    return split.train.subset(inner), split.train.subset(valid)


def _score(model: Any, valid: Any, metric: str) -> float:
    from recforge import metrics as M

    if getattr(model, "task", None) == "ctr":
        p = model.predict_proba(valid)
        if metric == "AUC":
            return float(M.roc_auc(valid.labels, p))
        if metric == "LogLoss":
            return float(M.log_loss(valid.labels, p))
        raise ConfigError(f"tune metric {metric!r}: CTR models are tuned on AUC or LogLoss")
    if metric in ("RMSE", "MAE"):
        pred = model.predict(valid.users.ids[valid.user_idx], valid.items.ids[valid.item_idx], fallback="mean")
        truth = valid.values.astype(np.float64)
        return float(M.rmse(truth, pred) if metric == "RMSE" else M.mae(truth, pred))
    from recforge.evaluation.protocols import RANKING_METRICS, full_ranking

    base, _, k = metric.partition("@")
    if base not in RANKING_METRICS or not k.isdigit():
        raise ConfigError(f"tune metric {metric!r}: use RMSE, MAE or one of {', '.join(RANKING_METRICS)} with @k")
    per, _, _ = full_ranking(model, valid, int(k), (base,))
    return float(np.nanmean(per[metric]))


def _epoch_callback(trial: Any, valid: Any, metric: str, every: int) -> Any:
    """A :attr:`FitOptions.epoch_callback` for every iterative model (SVD, ALS, BPR, the torch models, ...).

    Every ``every`` epochs it scores the model being trained on the validation data, reports the
    value to the trial and raises ``optuna.TrialPruned`` when the pruner says so; a non-finite
    score (a diverged fit) prunes at once. It is the tuner's one pruning path: the classical
    models call it between their compiled epochs, the shared torch loop after every epoch.
    """
    import optuna

    def callback(epoch: int, model: Any) -> None:
        if epoch % every:
            return
        value = _score(model, valid, metric)
        if not np.isfinite(value):
            raise optuna.TrialPruned(f"validation {metric} is {value} after epoch {epoch}")
        trial.report(value, step=epoch)
        if trial.should_prune():
            raise optuna.TrialPruned(f"pruned after epoch {epoch}: validation {metric} {value:.6g}")

    return callback


def _pruner(name: str) -> Any:
    import optuna

    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner()
    if name in ("none", "off", None):
        return optuna.pruners.NopPruner()
    raise ConfigError(f"[tune] pruner must be median, hyperband or none, got {name!r}")


@dataclass
class TuningSetup:
    """Everything a trial needs, prepared once by :func:`prepare_tuning` (and shipped to the
    workers of a distributed search, :mod:`recforge.distributed.tune`).

    Attributes:
        spec: The experiment.
        dims: The parsed ``[tune.space]``.
        protocol: The protocol's name (written into the best experiment file).
        metric: The validation metric, e.g. ``NDCG@10``.
        direction: ``minimize`` or ``maximize``.
        n_trials: Trials to run.
        timeout: Seconds after which no new trial starts (None: no limit).
        pruner: The ``[tune] pruner`` name.
        enqueue: Hyperparameters to try first.
        inner: Training data of every trial.
        valid: Validation data of every trial.
        every: Epochs between validation reports (iterative models), or None.
        torch_model: Whether trials also get the validation data for early stopping.
        iterative: Whether the model reports per epoch (and can be pruned).
    """

    spec: ExperimentSpec
    dims: list[Any]
    protocol: str
    metric: str
    direction: str
    n_trials: int
    timeout: float | None
    pruner: str
    enqueue: list[dict[str, Any]]
    inner: Any
    valid: Any
    every: int | None
    torch_model: bool
    iterative: bool


def prepare_tuning(spec: ExperimentSpec | str | Path, *, n_trials: int | None = None, timeout: float | None = None,
                   echo: Callable[[str], None] | None = None,
                   data_echo: Callable[[str], None] | None = None) -> TuningSetup:
    """Check ``spec``'s ``[tune]`` table, load the data and carve the validation part.

    Raises:
        ConfigError: An invalid ``[tune]`` key or value (one line).
    """
    from recforge.models.registry import make_model

    if not isinstance(spec, ExperimentSpec):
        spec = ExperimentSpec.from_file(spec)
    say = echo or (lambda s: None)
    cfg = dict(spec.tune)
    dims = parse_space(cfg.get("space"))
    unknown = set(cfg) - _TUNE_KEYS
    if unknown:
        raise ConfigError(f"[tune]: unknown key(s) {', '.join(sorted(unknown))}; valid: {', '.join(sorted(_TUNE_KEYS))}")
    if spec.normalize:
        # the per-epoch validation would score the inner model on the normalised scale
        raise ConfigError(f"tune searches the model itself: drop normalize = {spec.normalize!r} (or tune "
                          "model = \"normalized\" with its params)")
    probe = make_model(spec.model, spec.params)
    proto = spec_protocol(spec, probe)
    k = spec.k or 10
    rating = probe.task == "rating" and proto.task == "rating"
    ctr = probe.task == "ctr"
    metric = str(cfg.get("metric") or ("AUC" if ctr else "RMSE" if rating else f"NDCG@{k}"))
    direction = str(cfg.get("direction") or ("minimize" if metric.split("@")[0] in _MINIMIZE else "maximize"))
    if direction not in ("minimize", "maximize"):
        raise ConfigError(f"[tune] direction must be minimize or maximize, got {direction!r}")
    n = int(n_trials or cfg.get("n_trials", 20))
    if n < 1:
        raise ConfigError(f"n_trials must be >= 1, got {n}")
    how = cfg.get("validation", 0.1 if rating else "loo")
    every = cfg.get("report_every")
    if every is not None and (isinstance(every, bool) or not isinstance(every, int) or every < 1):
        raise ConfigError(f"[tune] report_every must be a positive integer (epochs), got {every!r}")
    enqueue = cfg.get("enqueue") or []
    if not isinstance(enqueue, list) or not all(isinstance(e, dict) for e in enqueue):
        raise ConfigError("[tune] enqueue must be a list of tables of hyperparameters to try first")
    names = {d.name for d in dims}
    for params in enqueue:
        bad = sorted(set(params) - names)
        if bad:
            raise ConfigError(f"[tune] enqueue: {', '.join(bad)} not in [tune.space]")
    pruner = cfg.get("pruner", "median")
    _pruner(pruner)  # an unknown pruner is refused before the data is loaded

    ds = load_dataset(spec)
    echo_notes(ds, data_echo or say)
    inner, valid = tuning_parts(ds, proto, probe, how, spec.seed)
    # torch models (CTR models too) also validate in the loop: early stopping and best-epoch restore
    torch_model = probe.backend == "torch" or ctr
    epochs = spec.params.get("epochs", probe.config.to_dict().get("epochs"))
    # every iterative model reports through FitOptions.epoch_callback, about 10 times a fit
    iterative = isinstance(epochs, int)
    if every is None and isinstance(epochs, int):
        every = max(1, epochs // 10)
    say(f"tuning {spec.model} on {len(inner):,} rows, validating {metric} on {len(valid):,} rows ({n} trials)")
    return TuningSetup(spec, dims, proto.name, metric, direction, n, timeout or cfg.get("timeout"), pruner,
                       [dict(e) for e in enqueue], inner, valid, every, torch_model, iterative)


def make_objective(setup: TuningSetup) -> Callable[[Any], float]:
    """The Optuna objective: fit the model with the trial's hyperparameters on the training part
    (reporting and pruning per epoch for iterative models) and score it on the validation part."""
    import optuna

    from recforge.models.registry import make_model

    spec = setup.spec

    def objective(trial: Any) -> float:
        params = {**spec.params, **suggest(trial, setup.dims)}
        model = make_model(spec.model, params)
        extra: dict[str, Any] = {}
        if setup.torch_model:
            extra["validation"] = setup.valid
        if setup.iterative:
            extra["epoch_callback"] = _epoch_callback(trial, setup.valid, setup.metric, int(setup.every or 1))
        t0 = time.perf_counter()
        model.fit(setup.inner, fit_options(spec, **extra))
        trial.set_user_attr("fit_seconds", time.perf_counter() - t0)
        value = _score(model, setup.valid, setup.metric)
        if not np.isfinite(value):
            raise optuna.TrialPruned()
        return value

    return objective


def create_study(setup: TuningSetup, *, storage: Any = None, study_name: str | None = None,
                 sampler_seed: int | None = None, load: bool = False) -> Any:
    """The study of ``setup`` (TPE seeded by the spec's seed, or ``sampler_seed``; the ``[tune]``
    pruner), in memory or in Optuna ``storage`` (a database URL or storage object shared by the
    workers of a distributed search). ``load``: open the existing study ``study_name`` instead."""
    import optuna

    optuna.logging.set_verbosity(logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=setup.spec.seed if sampler_seed is None else sampler_seed)
    name = study_name or setup.spec.name
    if load:
        return optuna.load_study(study_name=name, storage=storage, sampler=sampler, pruner=_pruner(setup.pruner))
    study = optuna.create_study(direction=setup.direction, sampler=sampler, pruner=_pruner(setup.pruner),
                                study_name=name, storage=storage)
    for params in setup.enqueue:
        study.enqueue_trial(dict(params))
    return study


def tune(spec: ExperimentSpec | str | Path, *, n_trials: int | None = None, output: str | Path | None = None,
         timeout: float | None = None, echo: Callable[[str], None] | None = None,
         data_echo: Callable[[str], None] | None = None) -> TuningResult:
    """Search ``spec``'s ``[tune.space]`` with Optuna (TPE sampler seeded by the spec's seed).

    Writes ``trials.csv`` and ``trials.md`` (the results table) and ``<name>-best.toml`` (the
    experiment with the best hyperparameters; run it with ``recforge run``) into the output folder
    (default ``runs/<name>/tune``). :func:`recforge.distributed.tune.tune_ray` runs the same trials
    on Ray workers.
    """
    require("optuna", purpose="tuning")
    say = echo or (lambda s: None)
    setup = prepare_tuning(spec, n_trials=n_trials, timeout=timeout, echo=say, data_echo=data_echo)
    study = create_study(setup)
    study.optimize(make_objective(setup), n_trials=setup.n_trials, timeout=setup.timeout, catch=(RecforgeError,),
                   callbacks=[lambda st, tr: say(trial_line(tr, setup.metric))])
    return finish_tuning(setup, study, output)


def finish_tuning(setup: TuningSetup, study: Any, output: str | Path | None = None) -> TuningResult:
    """Write the trials table and the best experiment file of a finished ``study``; log the study.

    Raises:
        RecforgeError: No trial completed.
    """
    import optuna

    spec, metric, direction = setup.spec, setup.metric, setup.direction
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        raise RecforgeError(f"no trial of {spec.name} completed; check the search space and the model")
    best = study.best_trial
    best_params = {**spec.params, **best.params}
    out = Path(output) if output is not None else spec.output_dir / "tune"
    out.mkdir(parents=True, exist_ok=True)
    trials = _trials_table(study)
    with atomic_write(out / "trials.csv") as fh:
        trials.to_csv(fh, index=False)
    res_md = out / "trials.md"
    best_spec = spec.replace(
        name=f"{spec.name}-best", params=best.params, protocol=setup.protocol,
        description=(f"{spec.description + ' ' if spec.description else ''}tuned by recforge tune: best validation "
                     f"{metric} = {best.value:.6g} (trial {best.number} of {len(study.trials)}, seed {spec.seed})"),
        outputs={**spec.outputs, "dir": str(spec.output_dir.parent / f"{spec.name}-best")} if spec.outputs.get("dir")
        else spec.outputs,
    )
    suffix = spec.source.suffix if spec.source is not None and spec.source.suffix in (".yaml", ".yml") else ".toml"
    best_file = best_spec.save(out / f"{spec.name}-best{suffix}")
    result = TuningResult(study, trials, best_params, float(best.value), best_spec, best_file, metric, direction)
    with atomic_write(res_md) as fh:
        fh.write(f"# {spec.name}: {len(study.trials)} trials, {metric} ({direction}) on validation data\n\n")
        fh.write(result.to_markdown())
        fh.write(f"\nbest: trial {best.number}, {metric} = {best.value:.6g}, params {best.params}\n")
    result.files = [out / "trials.csv", res_md, best_file]
    _log_study(spec, study, metric, result)
    return result


def trial_line(trial: Any, metric: str) -> str:
    """One line about a finished trial: number, state, value and parameters."""
    val = "" if trial.value is None else f" {metric} {trial.value:.5g}"
    return f"trial {trial.number}: {trial.state.name.lower()}{val} {trial.params}"


def _trials_table(study: Any) -> pd.DataFrame:
    rows = []
    for t in study.trials:
        row: dict[str, Any] = {"trial": t.number, "state": t.state.name.lower(),
                               "value": np.nan if t.value is None else float(t.value),
                               "epochs_reported": len(t.intermediate_values),
                               "seconds": (t.duration.total_seconds() if t.duration is not None else np.nan)}
        row.update({f"param_{k}": v for k, v in t.params.items()})
        rows.append(row)
    return pd.DataFrame(rows)


def _log_study(spec: ExperimentSpec, study: Any, metric: str, result: TuningResult) -> None:
    from recforge.loggers import make_logger

    kind = spec.logger.get("kind", "csv")
    if kind == "none":
        return
    lg = make_logger(kind, root=spec.logger.get("root", spec.output_dir / "logs"), name=f"{spec.name}-tune",
                     project=spec.logger.get("project", "recforge"))
    if lg is None:
        return
    with lg:
        lg.log_config({**spec.to_dict(), "tune_metric": metric})
        lg.log_environment(device=str(spec.training.get("device", "cpu")))
        for t in study.trials:
            if t.value is not None:
                lg.log_metrics({f"tune/{metric}": t.value}, step=t.number)
        lg.log_summary({f"tune/best_{metric}": result.best_value, "tune/n_trials": len(study.trials),
                        "tune/n_pruned": int((result.trials["state"] == "pruned").sum())})

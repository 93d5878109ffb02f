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


def tune(spec: ExperimentSpec | str | Path, *, n_trials: int | None = None, output: str | Path | None = None,
         timeout: float | None = None, echo: Callable[[str], None] | None = None,
         data_echo: Callable[[str], None] | None = None) -> TuningResult:
    """Search ``spec``'s ``[tune.space]`` with Optuna (TPE sampler seeded by the spec's seed).

    ``echo`` is called with one line per step; ``data_echo`` (default ``echo``) with each
    ``data: ...`` line of the loader's notes once the data is loaded, as ``evaluate`` prints them.

    Writes ``trials.csv`` and ``trials.md`` (the results table) and ``<name>-best.toml`` (the
    experiment with the best hyperparameters; run it with ``recforge run``) into the output folder
    (default ``runs/<name>/tune``).
    """
    optuna = require("optuna", purpose="tuning")
    from recforge.models.registry import make_model

    if not isinstance(spec, ExperimentSpec):
        spec = ExperimentSpec.from_file(spec)
    say = echo or (lambda s: None)
    cfg = dict(spec.tune)
    dims = parse_space(cfg.get("space"))
    unknown = set(cfg) - _TUNE_KEYS
    if unknown:
        raise ConfigError(f"[tune]: unknown key(s) {', '.join(sorted(unknown))}; valid: {', '.join(sorted(_TUNE_KEYS))}")
    probe = make_model(spec.model, spec.params)
    proto = spec_protocol(spec, probe)
    protocol = proto.name
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

    def objective(trial: Any) -> float:
        params = {**spec.params, **suggest(trial, dims)}
        model = make_model(spec.model, params)
        extra: dict[str, Any] = {}
        if torch_model:
            extra["validation"] = valid
        if iterative:
            extra["epoch_callback"] = _epoch_callback(trial, valid, metric, int(every))
        t0 = time.perf_counter()
        model.fit(inner, fit_options(spec, **extra))
        trial.set_user_attr("fit_seconds", time.perf_counter() - t0)
        value = _score(model, valid, metric)
        if not np.isfinite(value):
            raise optuna.TrialPruned()
        return value

    optuna.logging.set_verbosity(logging.WARNING)
    study = optuna.create_study(direction=direction, sampler=optuna.samplers.TPESampler(seed=spec.seed),
                                pruner=_pruner(cfg.get("pruner", "median")), study_name=spec.name)
    names = {d.name for d in dims}
    for params in enqueue:
        bad = sorted(set(params) - names)
        if bad:
            raise ConfigError(f"[tune] enqueue: {', '.join(bad)} not in [tune.space]")
        study.enqueue_trial(dict(params))
    study.optimize(objective, n_trials=n, timeout=timeout or cfg.get("timeout"), catch=(RecforgeError,),
                   callbacks=[lambda st, tr: say(_trial_line(tr, metric))])
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
        name=f"{spec.name}-best", params=best.params, protocol=protocol,
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


def _trial_line(trial: Any, metric: str) -> str:
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

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
from recforge.experiments.runner import (
    carve_validation,
    default_protocol,
    fit_options,
    is_torch_model,
    load_dataset,
    protocol_split,
)
from recforge.experiments.spec import ExperimentSpec
from recforge.io import atomic_write
from recforge.tuning.space import parse_space, suggest

_MINIMIZE = ("RMSE", "MAE", "MSE", "loss", "logloss", "log_loss")


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


def _train_part(ds: Any, protocol: str, seed: int) -> Any:
    """The protocol's training data (the first fold's for cross-validation): tuning never sees a test set."""
    split = protocol_split(ds, protocol, seed)
    if split is not None:
        return split.train
    if protocol == "rating-kfold5":
        from recforge.splits import kfold

        return kfold(ds.interactions, 5, seed=seed)[0].train
    if protocol == "rating-u1u5":
        return ds.split("u1").train
    raise ConfigError(f"tuning does not support protocol {protocol!r}")


def _score(model: Any, valid: Any, metric: str) -> float:
    from recforge.evaluation import metrics as M

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


def _pruning_callback(trial: Any, direction: str) -> Any:
    """A Lightning callback reporting the validator's metric to Optuna each epoch and stopping pruned trials."""
    from lightning.pytorch.callbacks import Callback

    class OptunaPruning(Callback):
        def __init__(self) -> None:
            self.pruned = False
            self.reports = 0

        def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
            if trainer.sanity_checking:
                return
            val = getattr(pl_module, "validation", None)
            if val is None or val.monitor not in trainer.callback_metrics:
                return
            # report only when the monitored metric improves in the study's direction
            if (val.mode == "min") != (direction == "minimize"):
                return
            trial.report(float(trainer.callback_metrics[val.monitor]), step=int(trainer.current_epoch))
            self.reports += 1
            if trial.should_prune():
                self.pruned = True
                trainer.should_stop = True

    return OptunaPruning()


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
         timeout: float | None = None, echo: Callable[[str], None] | None = None) -> TuningResult:
    """Search ``spec``'s ``[tune.space]`` with Optuna (TPE sampler seeded by the spec's seed).

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
    unknown = set(cfg) - {"space", "n_trials", "metric", "direction", "pruner", "validation", "timeout"}
    if unknown:
        raise ConfigError(f"[tune]: unknown key(s) {', '.join(sorted(unknown))}")
    probe = make_model(spec.model, spec.params)
    protocol = spec.protocol or default_protocol(probe)
    k = spec.k or 10
    rating = probe.task == "rating" and protocol.startswith("rating")
    metric = str(cfg.get("metric") or ("RMSE" if rating else f"NDCG@{k}"))
    direction = str(cfg.get("direction") or ("minimize" if metric.split("@")[0] in _MINIMIZE else "maximize"))
    if direction not in ("minimize", "maximize"):
        raise ConfigError(f"[tune] direction must be minimize or maximize, got {direction!r}")
    n = int(n_trials or cfg.get("n_trials", 20))
    if n < 1:
        raise ConfigError(f"n_trials must be >= 1, got {n}")
    how = cfg.get("validation", 0.1 if rating else "loo")

    ds = load_dataset(spec)
    train = _train_part(ds, protocol, spec.seed)
    if probe.task != "rating":
        train = train.to_implicit()
    inner, valid = carve_validation(train, how, spec.seed)
    torch_model = is_torch_model(probe)
    say(f"tuning {spec.model} on {len(inner):,} rows, validating {metric} on {len(valid):,} rows ({n} trials)")

    def objective(trial: Any) -> float:
        params = {**spec.params, **suggest(trial, dims)}
        model = make_model(spec.model, params)
        extra: dict[str, Any] = {}
        cb = None
        if torch_model:
            cb = _pruning_callback(trial, direction)
            extra = {"validation": valid, "callbacks": (cb,)}
        t0 = time.perf_counter()
        model.fit(inner, fit_options(spec, **extra))
        trial.set_user_attr("fit_seconds", time.perf_counter() - t0)
        if cb is not None and cb.pruned:
            raise optuna.TrialPruned()
        value = _score(model, valid, metric)
        if not np.isfinite(value):
            raise optuna.TrialPruned()
        return value

    optuna.logging.set_verbosity(logging.WARNING)
    study = optuna.create_study(direction=direction, sampler=optuna.samplers.TPESampler(seed=spec.seed),
                                pruner=_pruner(cfg.get("pruner", "median")), study_name=spec.name)
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
    from recforge.logging import make_logger

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

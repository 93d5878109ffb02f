"""The one epoch loop of the classical iterative models (SVD, SVD++, NMF, ALS, iALS, BPR, LightFM-style).

A model's ``_fit`` prepares its arrays and compiled kernels, then hands :func:`fit_epochs` a ``step``
that trains one epoch. The loop owns what every such model used to repeat by hand (LensKit's
``ModelTrainer``, Lightning's ``fit`` loop for the torch models):

- ``model.history_``: ``{"epoch": [0, 1, ...], "<metric>": [...], ...}``, the same shape as the torch
  models' history, so loggers and learning-curve plots read every model alike;
- verbose printing (``FitOptions.verbose``), one line per epoch;
- the experiment logger (``FitOptions.logger`` when it has ``log_metrics``), one step per epoch;
- ``FitOptions.epoch_callback(epoch, model)`` with :class:`~recforge.config.StopTraining`;
- early stopping on ``FitOptions.validation`` for models that give an ``evaluate`` function, after
  ``patience`` checks without improvement (``options.patience``; None, ``"auto"`` or absent: never stop);
- progress: one step per epoch to the active :mod:`~recforge.training.progress` reporter (silent
  unless the CLI installed one).

Nothing here runs inside an epoch: the compiled kernels stay as they are. Without a callback, a
validation set or verbose output, a model may even train all its epochs in one call (``steps``),
which saves a parallel region per epoch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, Protocol

import numpy as np

from recforge.config import FitOptions, StopTraining
from recforge.training.progress import current

__all__ = ["EpochStep", "EpochSteps", "fit_epochs", "validation_rmse"]


class EpochStep(Protocol):
    """Trains epoch ``epoch`` (0-based) and returns its metrics (``{"train_loss": 0.91}``; may be empty)."""

    def __call__(self, epoch: int) -> Mapping[str, float] | None: ...


class EpochSteps(Protocol):
    """Trains epochs ``first .. first + count - 1`` in one call; returns one list per metric."""

    def __call__(self, first: int, count: int) -> Mapping[str, Sequence[float]] | None: ...


def fit_epochs(
    model: Any,
    n_epochs: int,
    step: EpochStep,
    options: FitOptions,
    *,
    name: str,
    publish: Callable[[], None] | None = None,
    evaluate: Callable[[Any], Mapping[str, float]] | None = None,
    monitor: str = "val_rmse",
    mode: Literal["min", "max"] = "min",
    steps: EpochSteps | None = None,
) -> dict[str, list[float]]:
    """Train ``n_epochs`` epochs with ``step`` and record ``model.history_``.

    Args:
        model: The model being fitted (passed to the callback and to ``evaluate``).
        n_epochs: Epochs to train at most.
        step: Trains one epoch in place and returns that epoch's metrics.
        options: The run context: ``verbose``, ``logger``, ``epoch_callback``, ``validation`` and
            (optionally) ``patience``, ``min_delta`` and ``restore_best``.
        name: The model's short name, for verbose lines.
        publish: Sets the model's learned attributes to the state being trained, so that it can
            be scored between epochs. Called only before a callback or a validation check, and
            once at the end; None when ``step`` keeps the attributes current itself.
        evaluate: ``evaluate(model) -> {"val_rmse": ...}`` on ``options.validation`` (a model that
            cannot validate passes None; then ``options.validation`` is ignored).
        monitor: The key of ``evaluate``'s result that early stopping watches.
        mode: Whether a smaller (``"min"``) or larger (``"max"``) ``monitor`` is better.
        steps: Optional fast path: trains a run of epochs in one call. Used only when nothing needs
            to look between epochs (no callback, validation or verbose output; a logger gets the
            same per-epoch rows afterwards).

    Returns:
        The history, also stored as ``model.history_``: ``"epoch"`` (0-based) plus one list per
        metric that ``step`` (and ``evaluate``) reported.

    Raises:
        Any exception of the callback other than :class:`~recforge.config.StopTraining`.
    """
    history: dict[str, list[float]] = {"epoch": []}
    model.history_ = history
    validate = evaluate is not None and options.validation is not None
    logger = options.logger if callable(getattr(options.logger, "log_metrics", None)) else None
    callback = options.epoch_callback
    publish = publish or _nothing
    reporter = current()
    if steps is not None and not (validate or callback is not None or options.verbose or reporter.active):
        cols = {key: list(vals) for key, vals in (steps(0, n_epochs) or {}).items()}
        history["epoch"].extend(float(e) for e in range(n_epochs))
        for key, vals in cols.items():
            history[key] = [float(v) for v in vals]
        if logger is not None:  # the logger reads the epochs afterwards, at the same steps
            for epoch in range(n_epochs):
                row = {key: history[key][epoch] for key in cols if epoch < len(history[key])}
                if row:
                    logger.log_metrics(row, step=epoch)
        publish()
        return history

    patience = getattr(options, "patience", None) if validate else None
    if not isinstance(patience, int) or isinstance(patience, bool):
        patience = None  # "auto" is the torch loop's default; classical models stop only when told a number
    min_delta = float(getattr(options, "min_delta", 0.0) or 0.0)
    restore = bool(getattr(options, "restore_best", False)) and validate
    best: float | None = None
    best_state: dict[str, Any] | None = None
    bad_checks = 0
    bar = reporter.task(f"{name}: epochs", n_epochs)
    try:
        for epoch in range(n_epochs):
            row = dict(step(epoch) or {})
            if validate:
                publish()
                row.update(evaluate(model))  # type: ignore[misc]
            history["epoch"].append(float(epoch))
            for key, val in row.items():
                history.setdefault(key, []).append(float(val))
            if options.verbose:
                text = "  ".join(f"{k} {float(v):.5g}" for k, v in row.items())
                print(f"[{name}] epoch {epoch + 1}/{n_epochs}  {text}".rstrip(), flush=True)
            if logger is not None and row:
                logger.log_metrics({k: float(v) for k, v in row.items()}, step=epoch)
            bar.advance(1, **{k: float(v) for k, v in row.items()})
            stop = False
            if validate and monitor in row:
                val = float(row[monitor])
                better = best is None or (val < best - min_delta if mode == "min" else val > best + min_delta)
                if better and np.isfinite(val):
                    best, bad_checks = val, 0
                    if restore:
                        best_state = _snapshot(model)
                else:
                    bad_checks += 1
                    stop = patience is not None and bad_checks >= patience
            if callback is not None:
                publish()
                try:
                    callback(epoch + 1, model)
                except StopTraining:
                    stop = True
            if stop:
                break
    finally:
        bar.close()
    publish()
    if best_state is not None:
        model.set_state(best_state)
    return history


def validation_rmse(validation: Any) -> Callable[[Any], dict[str, float]] | None:
    """An ``evaluate`` for :func:`fit_epochs` of rating models: ``{"val_rmse": ...}`` on ``validation``.

    Args:
        validation: Held-out ratings indexed like the training data (``FitOptions.validation``),
            or None (then None is returned and the fit does not validate).

    Returns:
        A function of the model giving the RMSE of its clipped predictions over the pairs it can
        score (pairs with an unknown user or item are left out, as the torch models' validation does).
    """
    if validation is None:
        return None
    users = validation.users.ids[validation.user_idx]
    items = validation.items.ids[validation.item_idx]
    truth = np.asarray(validation.values, dtype=np.float64)

    def evaluate(model: Any) -> dict[str, float]:
        pred = model.predict(users, items)
        ok = np.isfinite(pred)
        err = pred[ok] - truth[ok]
        return {"val_rmse": float(np.sqrt(np.mean(err * err))) if ok.any() else float("nan")}

    return evaluate


def _snapshot(model: Any) -> dict[str, Any]:
    # the kernels update the published arrays in place, so the best epoch's arrays are copied
    return {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in model.get_state().items()
            if k != "history_"}


def _nothing() -> None:
    return None

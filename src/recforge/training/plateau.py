"""Learning-rate decay on a validation plateau: :class:`DecayOnPlateau`."""

from __future__ import annotations

import lightning as L
from lightning.pytorch.callbacks import Callback

__all__ = ["DecayOnPlateau"]


class DecayOnPlateau(Callback):
    """Multiply every learning rate by ``factor`` after each validation check that does not improve.

    The schedule of FuxiCTR's training loop, which BARS' published CTR results use (``reduce_lr_on_plateau``):
    a check whose ``monitor`` value is not better than the best so far by more than ``min_delta``
    decays the rate (not below ``min_lr``); early stopping, with its own patience, runs beside it.
    Adam keeps its moment estimates, so the smaller steps refine the best basin found so far.
    """

    def __init__(self, monitor: str, mode: str = "max", factor: float = 0.1, min_lr: float = 1e-6,
                 min_delta: float = 0.0) -> None:
        if not 0.0 < factor < 1.0:
            raise ValueError(f"factor must be in (0, 1), got {factor}")
        self.monitor, self.mode, self.factor, self.min_lr, self.min_delta = monitor, mode, factor, min_lr, min_delta
        self.best: float | None = None
        self.decays = 0

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or self.monitor not in trainer.callback_metrics:
            return
        val = float(trainer.callback_metrics[self.monitor])
        sign = 1.0 if self.mode == "max" else -1.0
        if self.best is None or sign * (val - self.best) > self.min_delta:
            self.best = val
            return
        self.decays += 1
        for opt in trainer.optimizers:
            for group in opt.param_groups:
                group["lr"] = max(group["lr"] * self.factor, self.min_lr)

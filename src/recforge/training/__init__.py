"""The shared training loop of every recforge torch model (Lightning underneath).

A model's network (:class:`RecNetwork`) owns the maths, :class:`RecModule` wraps it for Lightning,
:class:`RecDataModule` owns the batches and :func:`fit_network` builds and runs the ``Trainer``.
The run options (early stopping, checkpoints, precision, logger, ...) are fields of the one run
context, :class:`recforge.config.FitOptions`. Importing this package does not import torch; the
torch-based names load on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "RecNetwork": "recforge.training.module",
    "RecModule": "recforge.training.module",
    "RecDataModule": "recforge.training.module",
    "RunContext": "recforge.training.loop",
    "TrainResult": "recforge.training.loop",
    "TrainerPlan": "recforge.training.loop",
    "trainer_plan": "recforge.training.loop",
    "fit_network": "recforge.training.loop",
    "resolve_device": "recforge.training.loop",
    "run_context": "recforge.training.loop",
    "DecayOnPlateau": "recforge.training.plateau",
    "RankingValidation": "recforge.training.validation",
    "RatingValidation": "recforge.training.validation",
    "Validation": "recforge.training.validation",
}

__all__ = [
    "DecayOnPlateau",
    "RankingValidation",
    "RatingValidation",
    "RecDataModule",
    "RecModule",
    "RecNetwork",
    "RunContext",
    "TrainResult",
    "TrainerPlan",
    "Validation",
    "fit_network",
    "resolve_device",
    "run_context",
    "trainer_plan",
]


def __getattr__(name: str) -> Any:
    if name == "TrainingOptions":
        # the loop's options merged into FitOptions; the old name stays importable for a while
        import warnings

        from recforge.config import FitOptions

        warnings.warn("recforge.training.TrainingOptions is deprecated: use recforge.config.FitOptions",
                      DeprecationWarning, stacklevel=2)
        return FitOptions
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'recforge.training' has no attribute {name!r}")

"""Run options of the shared training loop (no torch needed to build them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from recforge.config import FitOptions
from recforge.errors import ConfigError

Precision = Literal["32-true", "16-mixed", "bf16-mixed"]


@dataclass(frozen=True)
class TrainingOptions(FitOptions):
    """:class:`~recforge.config.FitOptions` plus the knobs of the shared Lightning loop.

    Any model that takes ``FitOptions`` accepts these; plain ``FitOptions`` get the defaults below.
    ``threads`` sets torch's intra-op threads for the fit; left at None, the loop trains on one
    thread (see :func:`recforge.training.loop.training_threads` for why).

    Attributes:
        patience: Stop after this many validation checks without improvement of the monitored
            metric (None: never stop early). Only used when ``validation`` is given.
        restore_best: After training with validation, go back to the weights of the best check.
        checkpoint_dir: Write Lightning checkpoints (best and last) here; None writes none.
        precision: ``"32-true"``, or mixed precision (``"16-mixed"``, ``"bf16-mixed"``) on a GPU;
            on a CPU training always runs in 32-bit.
        callbacks: Extra Lightning callbacks.
        min_delta: Smallest change of the monitored metric that counts as an improvement.
    """

    patience: int | None = 5
    restore_best: bool = True
    checkpoint_dir: str | None = None
    precision: Precision = "32-true"
    callbacks: tuple[Any, ...] = ()
    min_delta: float = 0.0

    def __post_init__(self) -> None:
        if self.patience is not None and self.patience < 1:
            raise ConfigError(f"TrainingOptions.patience = {self.patience!r}: must be >= 1 or None")
        if self.precision not in ("32-true", "16-mixed", "bf16-mixed"):
            raise ConfigError(
                f"TrainingOptions.precision = {self.precision!r}: use '32-true', '16-mixed' or 'bf16-mixed'"
            )
        if self.min_delta < 0:
            raise ConfigError(f"TrainingOptions.min_delta = {self.min_delta!r}: must be >= 0")


def training_options(options: FitOptions | None) -> TrainingOptions:
    """``options`` as :class:`TrainingOptions` (plain ``FitOptions`` get the loop's defaults)."""
    if options is None:
        return TrainingOptions()
    if isinstance(options, TrainingOptions):
        return options
    return TrainingOptions(
        seed=options.seed, device=options.device, progress=options.progress, logger=options.logger,
        validation=options.validation, threads=options.threads, verbose=options.verbose,
    )

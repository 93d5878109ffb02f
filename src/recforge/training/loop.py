"""The shared training loop: seeding, device, threads, and one Lightning ``Trainer`` per fit.

A model's ``_fit`` runs inside :func:`run_context` (threads, seeds, device) and hands its network
and batches to :func:`fit_network`, which builds the :class:`RecModule`, the
:class:`RecDataModule` and the ``Trainer`` (early stopping on the validator's metric, best-weight
restore, optional checkpoints, logger, progress bar, mixed precision on GPU), calls
``FitOptions.epoch_callback`` after every epoch as the classical iterative models do, and returns
the per-epoch history. Inside :func:`trainer_plan` the same fit runs as one process of a
data-parallel group (:class:`TrainerPlan`; Ray Train's DDP in :mod:`recforge.distributed.train`).
"""

from __future__ import annotations

import contextlib
import contextvars
import copy
import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint

from recforge.config import FitOptions, StopTraining
from recforge.errors import ConfigError
from recforge.loggers import as_lightning
from recforge.training.batches import torch_generator
from recforge.training.module import RecDataModule, RecModule, RecNetwork
from recforge.training.progress import ProgressTask, current
from recforge.training.validation import Validation

__all__ = [
    "RunContext",
    "TrainResult",
    "TrainerPlan",
    "fit_network",
    "resolve_device",
    "run_context",
    "trainer_plan",
    "training_threads",
]

_QUIET_WARNINGS = (
    r".*does not have many workers.*",
    r".*isinstance\(treespec, LeafSpec\).*",
    r".*smaller than the logging interval.*",
    r".*Sparse CSR tensor support is in beta.*",
    r".*Total length of .* across ranks is zero.*",
    r".*`training_step` returned `None`.*",
    r".*You defined a `validation_step` but have no `val_dataloader`.*",
)


def resolve_device(spec: str | torch.device | None) -> torch.device:
    """``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"`` (CUDA when available) as a torch device."""
    if isinstance(spec, torch.device):
        spec = str(spec)
    spec = (spec or "cpu").lower()
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if spec.startswith("cuda") or spec == "gpu":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {spec!r} was asked for but torch sees no CUDA device; use 'cpu' or 'auto'")
        dev = torch.device("cuda" if spec == "gpu" else spec)
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(f"device {spec!r}: only {torch.cuda.device_count()} CUDA device(s) present")
        return dev
    raise ConfigError(f"unknown device {spec!r}; use 'cpu', 'cuda', 'cuda:N' or 'auto'")


@dataclass
class RunContext:
    """What a fit needs from the run options: device, seeded generators and the options."""

    device: torch.device
    rng: np.random.Generator
    generator: torch.Generator
    options: FitOptions


def training_threads(threads: int | None, device: torch.device) -> int:
    """Torch intra-op threads for one fit: ``threads`` when given, else 1 on the CPU.

    The networks trained here run thousands of small steps (a batch of 1024 embeddings is a few
    hundred kilobytes), where splitting each operator across threads gains little and costs a
    fork/join barrier per operator. On a loaded machine that barrier waits for a descheduled
    thread while the others spin (libgomp's default wait policy): NeuMF on ML-100K took 71 s
    wall / 35 s CPU for one epoch with 2 threads against 9 s / 4 s with 1 thread, next to other
    jobs on 2 cores. So the default is one thread (also the same numbers on any machine); large
    networks on idle machines ask for more through ``FitOptions.threads``. On a GPU the host side
    needs only the one thread that launches kernels, so the default is the same.
    """
    if threads is None:
        return 1
    if threads < 1:
        raise ConfigError(f"threads must be >= 1, got {threads}")
    return int(threads)


_INTEROP_SET = False


def _single_interop_thread() -> None:
    # Lightning's loop never runs inter-op parallel work (no torch.jit.fork), so its pool of
    # one thread per core only adds idle threads; it can be sized once, before first use
    global _INTEROP_SET
    if _INTEROP_SET:
        return
    _INTEROP_SET = True
    with contextlib.suppress(RuntimeError):
        torch.set_num_interop_threads(1)


@contextlib.contextmanager
def run_context(options: FitOptions | None) -> Iterator[RunContext]:
    """Apply ``options`` for the duration of a fit: thread count, seeds and device.

    Torch's intra-op threads are set per :func:`training_threads` and restored afterwards; the
    inter-op pool is sized to one thread the first time (it can only be set before first use).

    Seeds python, numpy and torch (``lightning.seed_everything``) so that network initialisation is
    reproducible, and yields a numpy generator (negative sampling) and a CPU torch generator
    (shuffling) derived from the same seed.
    """
    opts = options if options is not None else FitOptions()
    device = resolve_device(opts.device)
    old_threads = torch.get_num_threads()
    torch.set_num_threads(training_threads(opts.threads, device))
    _single_interop_thread()
    try:
        if opts.seed is not None:
            with _quiet_lightning(opts.verbose):
                L.seed_everything(int(opts.seed) % 2**32, workers=False, verbose=False)
            seq = np.random.SeedSequence(int(opts.seed) % 2**63)
            rng_seed, torch_seed = seq.generate_state(2, dtype=np.uint64)
            rng = np.random.default_rng(int(rng_seed))
            gen = torch_generator(int(torch_seed) % 2**63)
        else:
            rng = np.random.default_rng()
            gen = torch_generator(None)
        yield RunContext(device, rng, gen, opts)
    finally:
        torch.set_num_threads(old_threads)


@dataclass
class TrainResult:
    """What a fit produced besides the weights.

    Attributes:
        history: Per-epoch metrics (``epoch``, ``train_loss`` and the validation metrics), as lists.
        best_epoch: Epoch (0-based) of the best validation check, or None without validation.
        best_score: The monitored metric at ``best_epoch``.
        epochs_run: Epochs actually trained (fewer than asked when early stopping fired).
    """

    history: dict[str, list[float]] = field(default_factory=dict)
    best_epoch: int | None = None
    best_score: float | None = None
    epochs_run: int = 0


class _History(Callback):
    def __init__(self, verbose: bool, name: str) -> None:
        self.history: dict[str, list[float]] = {}
        self.verbose = verbose
        self.name = name

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # callbacks run before the module's own on_train_epoch_end, so read the loss from the module
        row = {"epoch": float(trainer.current_epoch)}
        loss = pl_module.epoch_loss() if isinstance(pl_module, RecModule) else None
        if loss is not None:
            row["train_loss"] = loss
        for key, val in trainer.callback_metrics.items():
            if key.startswith("val_"):
                row[key] = float(val)
        for key, val in row.items():
            self.history.setdefault(key, []).append(val)
        if self.verbose and trainer.is_global_zero:
            text = "  ".join(f"{k} {v:.5g}" for k, v in row.items() if k != "epoch")
            print(f"[{self.name}] epoch {trainer.current_epoch + 1}/{trainer.max_epochs}  {text}", flush=True)


class _BestWeights(Callback):
    """Keeps an in-memory copy of the weights at the best validation check; restores it at the end."""

    def __init__(self, monitor: str, mode: str, restore: bool) -> None:
        self.monitor = monitor
        self.mode = mode
        self.restore = restore
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.state: dict[str, torch.Tensor] | None = None

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or self.monitor not in trainer.callback_metrics:
            return
        val = float(trainer.callback_metrics[self.monitor])
        better = self.best is None or (val < self.best if self.mode == "min" else val > self.best)
        if better and np.isfinite(val):
            self.best = val
            self.best_epoch = trainer.current_epoch
            if self.restore:
                self.state = copy.deepcopy(pl_module.state_dict())

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.restore and self.state is not None:
            pl_module.load_state_dict(self.state)


class _EpochProgress(Callback):
    """One step of the active progress reporter per finished epoch, with the epoch's history row."""

    def __init__(self, bar: ProgressTask, history: _History) -> None:
        self.bar, self.history = bar, history

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.bar.advance(1, **{k: v[-1] for k, v in self.history.history.items() if k != "epoch" and v})


class _EpochCallback(Callback):
    """Calls ``FitOptions.epoch_callback(epoch, model)`` after every training epoch (and its validation).

    The network is in ``eval()`` mode during the call, so ``model`` scores as it stands; a
    :class:`StopTraining` from the callback ends the fit after this epoch, any other exception
    aborts it.
    """

    def __init__(self, callback: Any, model: Any) -> None:
        self.callback = callback
        self.model = model

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        pl_module.eval()
        try:
            self.callback(int(trainer.current_epoch) + 1, self.model)
        except StopTraining:
            trainer.should_stop = True
        finally:
            pl_module.train()


class TrainerPlan(Protocol):
    """How :func:`fit_network` trains inside a data-parallel group (set by :func:`trainer_plan`).

    :mod:`recforge.distributed.train` gives one for Ray Train (Lightning DDP over gloo); every
    process of the group runs the same fit with the same seed, so each draws the same epoch
    (permutation and negatives) and :meth:`shard` keeps this process's part of every batch.
    """

    def trainer_options(self) -> dict[str, Any]:
        """Extra ``lightning.Trainer`` arguments (strategy, plugins, devices, ...)."""
        ...

    def prepare(self, trainer: L.Trainer) -> L.Trainer:
        """Called on the built ``Trainer`` before ``fit``."""
        ...

    def shard(self, train: Any) -> Any:
        """This process's share of the training batches (an iterable with ``len``)."""
        ...


_PLAN: contextvars.ContextVar[TrainerPlan | None] = contextvars.ContextVar("recforge_trainer_plan", default=None)


@contextlib.contextmanager
def trainer_plan(plan: TrainerPlan | None) -> Iterator[None]:
    """Make every :func:`fit_network` in the block train under ``plan`` (None: one process)."""
    token = _PLAN.set(plan)
    try:
        yield
    finally:
        _PLAN.reset(token)


def fit_network(
    net: RecNetwork,
    train: Any,
    ctx: RunContext,
    *,
    epochs: int,
    learning_rate: float,
    optimizer: str = "adam",
    weight_decay: float = 0.0,
    validation: Validation | None = None,
    name: str = "model",
    ema_decay: float = 0.0,
    model: Any = None,
) -> TrainResult:
    """Train ``net`` on the batches ``train`` for up to ``epochs`` epochs with one Lightning Trainer.

    With a validator, the monitored metric is checked after every epoch: training stops after
    ``patience`` checks without improvement and the best weights are restored (both per
    :class:`~recforge.config.FitOptions`). With ``ema_decay > 0`` the weights are an exponential
    moving average of the trajectory (see :class:`RecModule`). When the options carry an
    ``epoch_callback`` and ``model`` is given (the recforge model that owns ``net``, able to
    score with it), the callback is called as ``epoch_callback(epoch, model)`` after every epoch.
    The network is left in ``eval()`` mode on ``ctx.device``.
    """
    opts = ctx.options
    module = RecModule(net, learning_rate=learning_rate, optimizer=optimizer, weight_decay=weight_decay,
                       validation=validation, ema_decay=ema_decay)
    history = _History(opts.verbose, name)
    callbacks: list[Callback] = [history, *opts.callbacks]
    if opts.epoch_callback is not None and model is not None:
        callbacks.append(_EpochCallback(opts.epoch_callback, model))
    bar = current().task(f"{name}: epochs", epochs)
    if current().active:
        callbacks.append(_EpochProgress(bar, history))
    best: _BestWeights | None = None
    if validation is not None:
        best = _BestWeights(validation.monitor, validation.mode, opts.restore_best)
        callbacks.append(best)
        patience = opts.early_stopping_patience()
        if patience is not None:
            callbacks.append(EarlyStopping(monitor=validation.monitor, mode=validation.mode,
                                           patience=patience, min_delta=opts.min_delta,
                                           check_finite=True))
    if opts.checkpoint_dir is not None:
        callbacks.append(ModelCheckpoint(
            dirpath=opts.checkpoint_dir, filename=f"{name}-{{epoch}}", save_last=True, save_top_k=1,
            monitor=validation.monitor if validation is not None else None,
            mode=validation.mode if validation is not None else "min",
        ))
    on_gpu = ctx.device.type == "cuda"
    precision = opts.precision if on_gpu else "32-true"
    plan = _PLAN.get()
    if plan is not None:
        train = plan.shard(train)
    n_batches = max(1, len(train))
    placement: dict[str, Any] = {"accelerator": "gpu" if on_gpu else "cpu",
                                 "devices": [ctx.device.index or 0] if on_gpu else 1}
    if plan is not None:
        placement.update(plan.trainer_options())
    with _quiet_lightning(opts.verbose):
        trainer = L.Trainer(
            **placement,
            max_epochs=epochs,
            precision=precision,
            logger=as_lightning(opts.logger, name),
            callbacks=callbacks,
            enable_checkpointing=opts.checkpoint_dir is not None,
            enable_progress_bar=bool(opts.progress),
            enable_model_summary=False,
            num_sanity_val_steps=0,
            log_every_n_steps=min(50, n_batches),
            limit_val_batches=1.0 if validation is not None else 0,
            default_root_dir=opts.checkpoint_dir,
            deterministic=False,
        )
        if plan is not None:
            trainer = plan.prepare(trainer)
        try:
            trainer.fit(module, datamodule=RecDataModule(train, validation))
        finally:
            bar.close()
    net.to(ctx.device)
    net.eval()
    result = TrainResult(history=history.history, epochs_run=int(trainer.current_epoch))
    if best is not None and best.best is not None:
        result.best_epoch = best.best_epoch
        result.best_score = best.best
    return result


@contextlib.contextmanager
def _quiet_lightning(verbose: bool) -> Iterator[None]:
    names = ("lightning.pytorch", "lightning.fabric", "lightning")
    loggers = [logging.getLogger(n) for n in names]
    old = [lg.level for lg in loggers]
    # Lightning's start-up chatter (accelerator summary, tips) is noise even in verbose runs,
    # which print recforge's own per-epoch lines instead
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            for pat in _QUIET_WARNINGS:
                warnings.filterwarnings("ignore", message=pat)
            yield
    finally:
        for lg, lv in zip(loggers, old, strict=True):
            lg.setLevel(lv)

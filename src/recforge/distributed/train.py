"""Fitting on Ray: torch models data-parallel through Ray Train, ``ials`` by Ray actors.

``fit_on_ray(model, data, workers=N)`` (or ``model.fit(data, FitOptions(backend="ray", workers=N))``,
or ``recforge train ... --backend ray --workers N``) fits ``model`` on a Ray cluster and returns it
fitted in this process, where it predicts, recommends, serves and saves like a local fit.

Torch models (``mf-torch``, ``neumf``, ``lightgcn``, ``two-tower``, ``sasrec``, ``deepfm`` and every
other model of the shared Lightning loop) train with Ray Train's ``TorchTrainer``: ``N`` worker
processes form a ``torch.distributed`` group (gloo on CPU) and each runs the model's own fit with
Lightning's DDP strategy (``ray.train.lightning.RayDDPStrategy``). Every worker runs the same fit with
the same seed, so all draw the same epoch (shuffle and negatives); :class:`RankSlices` hands each
worker its contiguous ``1/N`` of every mini-batch and DDP averages the gradients, so one step of
``N`` workers is the step one process takes on the whole batch (Li et al., "PyTorch Distributed:
Experiences on Accelerating Data Parallel Training", VLDB 2020). Same batch size, same number of
steps, same learning rate: the fit follows the one-process trajectory up to float rounding, except
where a loss couples the rows of a batch (``two-tower``'s in-batch negatives see ``batch/N`` rows;
``sasrec``'s mean over padded positions is averaged per slice). Worker 0 saves the fitted model as
a Ray Train checkpoint and the driver loads it.

``ials`` solves its user and item shards on Ray actors (:mod:`recforge.distributed.ials`).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from recforge.config import FitOptions
from recforge.errors import ConfigError, RecforgeError

__all__ = ["RankSlices", "check_cpus", "connect_ray", "fit_on_ray"]

_RAY_HINT = "pip install 'recforge[ray]' (Ray Train and Lightning)"


def connect_ray(address: str | None = None, cpus: int = 1) -> Any:
    """The ``ray`` module, connected through :func:`recforge.distributed.cluster.connect`: to the
    cluster this process already joined, else ``address`` (``None``: ``$RAY_ADDRESS`` when set,
    else a local Ray on 127.0.0.1 with ``cpus`` CPUs; ``"auto"``: the cluster of this node)."""
    from recforge.distributed.cluster import connect

    try:
        import ray  # noqa: F401 - the one-line hint below instead of connect's generic one
    except ImportError:
        raise ConfigError(f"backend='ray' needs Ray: {_RAY_HINT}") from None
    connect(address or os.environ.get("RAY_ADDRESS") or None, cpus)
    import ray

    return ray


def check_cpus(ray: Any, workers: int, threads: int) -> None:
    """Refuse, in one line, a fit that asks for more CPUs than the cluster has (it would wait forever)."""
    total = float(ray.cluster_resources().get("CPU", 0.0))
    if workers * threads > total:
        raise ConfigError(f"{workers} Ray workers x {threads} CPU need {workers * threads} CPUs; the cluster "
                          f"has {total:g} (fewer --workers, or a larger cluster)")


def fit_on_ray(model: Any, data: Any, workers: int | None = None, *, address: str | None = None,
               options: FitOptions | None = None, storage_path: str | None = None) -> Any:
    """Fit ``model`` on ``data`` with ``workers`` Ray workers; returns ``model``, fitted here.

    Args:
        model: A torch model (trained by Ray Train) or ``ials`` (Ray actors).
        data: What ``model.fit`` takes (:class:`~recforge.data.Interactions`, or CTR rows).
        workers: Ray workers (default ``options.workers``).
        address: Ray cluster address (default ``options.address``; see :func:`connect_ray`).
        options: The run options; ``seed``, ``validation``, ``patience``, ``threads`` (torch threads
            or numba threads per worker), ``verbose`` and ``checkpoint_dir`` apply on the workers. A
            ``logger`` gets the per-epoch history after the fit. ``epoch_callback`` cannot cross
            to the workers and is refused.
        storage_path: Where Ray Train keeps its run and the checkpoint that carries the model back
            (default: a temporary folder on this machine, removed afterwards). On a cluster of
            several machines give storage every node reaches (NFS path, ``s3://...``).

    Raises:
        ConfigError: Ray is missing, or the model has no Ray backend, or an option cannot cross.
    """
    opts = options or FitOptions()
    opts = opts.replace(backend="ray", workers=int(workers) if workers is not None else opts.workers,
                        address=address if address is not None else opts.address)
    if getattr(model, "fits_on_ray", False):
        return model.fit(data, opts)
    if getattr(model, "backend", None) != "torch":
        raise ConfigError(f"{model.name} cannot train on Ray: backend='ray' trains the torch models "
                          "(Ray Train) and ials (Ray actors); fit it with backend='local'")
    return _fit_torch(model, data, opts, storage_path)


# ------------------------------------------------------------------------------------- torch models
class RankSlices:
    """This worker's rows of every training batch: contiguous ``1/world`` parts of each batch.

    Every worker iterates the same batches (same seed, same epoch); worker ``rank`` keeps rows
    ``[n * rank // world, n * (rank + 1) // world)`` of each row-aligned batch (a tuple of tensors
    with one first dimension). A batch of fewer than ``world`` rows, or one that is not row-aligned,
    is kept whole by every worker (correct, without a speed-up). Every worker takes the same
    number of steps, as DDP requires.
    """

    def __init__(self, batches: Any, rank: int, world: int) -> None:
        self.batches, self.rank, self.world = batches, int(rank), int(world)

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[Any]:
        for batch in self.batches:
            yield self.part(batch)

    def part(self, batch: Any) -> Any:
        """This rank's rows of ``batch``."""
        if not isinstance(batch, (tuple, list)) or not batch:
            return batch
        sizes = {int(t.shape[0]) if hasattr(t, "shape") and len(t.shape) else -1 for t in batch}
        n = sizes.pop() if len(sizes) == 1 else -1
        if n < self.world:
            return batch
        lo, hi = n * self.rank // self.world, n * (self.rank + 1) // self.world
        return type(batch)(t[lo:hi] for t in batch)


class _RayDDPPlan:
    """Lightning DDP inside a Ray Train worker group (a :class:`~recforge.training.loop.TrainerPlan`)."""

    def __init__(self, rank: int, world: int) -> None:
        self.rank, self.world = rank, world

    def trainer_options(self) -> dict[str, Any]:
        from ray.train.lightning import RayDDPStrategy, RayLightningEnvironment

        # every parameter of the recforge networks takes part in each step's loss (checked for the
        # six models above), so DDP's reducer needs no extra pass over the graph to find unused ones
        return {"devices": "auto", "strategy": RayDDPStrategy(find_unused_parameters=False),
                "plugins": [RayLightningEnvironment()], "use_distributed_sampler": False}

    def prepare(self, trainer: Any) -> Any:
        from ray.train.lightning import prepare_trainer

        return prepare_trainer(trainer)

    def shard(self, train: Any) -> Any:
        return RankSlices(train, self.rank, self.world)


def _worker_loop(config: dict[str, Any]) -> None:
    """One Ray Train worker: the model's own fit under DDP; worker 0 reports the fitted model."""
    import ray
    import ray.train

    from recforge.training.loop import trainer_plan

    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    model = config["model"]
    data = ray.get(config["data"])
    with trainer_plan(_RayDDPPlan(rank, world)):
        model.fit(data, config["options"])
    metrics = {"epochs": len((getattr(model, "history_", None) or {}).get("epoch", []))}
    if rank != 0:
        ray.train.report(metrics)
        return
    with tempfile.TemporaryDirectory(prefix="recforge-fit-") as folder:
        model.save(Path(folder) / "model.npz")
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(folder))


def _worker_options(opts: FitOptions) -> FitOptions:
    if opts.epoch_callback is not None:
        raise ConfigError("epoch_callback runs in the fitting process: with backend='ray' the epochs run "
                          "on Ray workers; use backend='local' (or read model.history_ after the fit)")
    if opts.device not in ("cpu", "auto"):
        raise ConfigError(f"backend='ray' trains torch models on CPU workers (gloo); device {opts.device!r} "
                          "is not supported there")
    seed = opts.seed if opts.seed is not None else int(np.random.SeedSequence().entropy % 2**31)
    # every worker must draw the same epochs: one seed for all; the logger stays here (below)
    return opts.replace(backend="local", seed=seed, device="cpu", progress=False, logger=None)


def _fit_torch(model: Any, data: Any, opts: FitOptions, storage_path: str | None) -> Any:
    worker_opts = _worker_options(opts)  # refuses what cannot cross before a cluster starts
    threads = int(opts.threads or 1)
    ray = connect_ray(opts.address, opts.workers * threads)
    try:
        from ray.train import RunConfig, ScalingConfig
        from ray.train.torch import TorchConfig, TorchTrainer
    except ImportError:
        raise ConfigError(f"backend='ray' for torch models needs Ray Train: {_RAY_HINT}") from None
    check_cpus(ray, opts.workers, threads)
    own = storage_path is None and not os.environ.get("RECFORGE_RAY_STORAGE")
    storage = storage_path or os.environ.get("RECFORGE_RAY_STORAGE") or tempfile.mkdtemp(prefix="recforge-raytrain-")
    trainer = TorchTrainer(
        _worker_loop,
        train_loop_config={"model": model.clone(), "data": ray.put(data), "options": worker_opts},
        scaling_config=ScalingConfig(num_workers=opts.workers, use_gpu=False, resources_per_worker={"CPU": threads}),
        torch_config=TorchConfig(backend="gloo"),
        run_config=RunConfig(storage_path=storage, name=f"fit-{model.name}"),
    )
    try:
        try:
            result = trainer.fit()
        except Exception as exc:  # noqa: BLE001 - a worker's input error comes back as one line
            raise _worker_error(exc) from None
        if result.checkpoint is None:
            raise RecforgeError(f"{model.name}: the Ray workers finished without the fitted model")
        with result.checkpoint.as_directory() as folder:
            fitted = type(model).load(Path(folder) / "model.npz")
    finally:
        if own:
            shutil.rmtree(storage, ignore_errors=True)
    model.__dict__.clear()
    model.__dict__.update(fitted.__dict__)
    _replay_history(opts.logger, getattr(model, "history_", None), model.name)
    return model


def _worker_error(exc: Exception) -> Exception:
    """The first recforge error among a failed run's causes (one line for the CLI), else ``exc``."""
    seen: list[BaseException] = []
    stack: list[BaseException] = [exc]
    while stack:
        e = stack.pop()
        if e in seen:
            continue
        seen.append(e)
        if isinstance(e, RecforgeError):
            return type(e)(str(e).splitlines()[0])
        failures = getattr(e, "worker_failures", None)
        if isinstance(failures, dict):
            stack.extend(v for v in failures.values() if isinstance(v, BaseException))
        for nxt in (getattr(e, "cause", None), e.__cause__, e.__context__):
            if isinstance(nxt, BaseException):
                stack.append(nxt)
    return exc


def _replay_history(logger: Any, history: dict[str, list[float]] | None, name: str) -> None:
    """Send the per-epoch rows of a Ray fit to ``logger`` (the workers trained without it)."""
    if logger is None or logger is False or not history:
        return
    from recforge.loggers import as_lightning

    target = as_lightning(logger, name)
    if not callable(getattr(target, "log_metrics", None)):
        return
    for e, epoch in enumerate(history.get("epoch", [])):
        row = {k: float(v[e]) for k, v in history.items() if k != "epoch" and e < len(v)}
        if row:
            target.log_metrics(row, step=int(epoch))
    if callable(getattr(target, "save", None)):
        target.save()

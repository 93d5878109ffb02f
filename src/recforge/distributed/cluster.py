"""Connecting to Ray: a local cluster on 127.0.0.1, or a running one (``--address``).

``recforge ... --backend ray --workers N`` without ``--address`` starts Ray inside the command on
127.0.0.1 with N CPUs (no dashboard) and stops it at the end. With ``--address HOST:PORT`` (or
``auto``, the cluster started by ``ray start --head`` on this node) it joins that cluster and
leaves it running; the cluster must offer N CPUs, one per worker. When Ray is already initialised
in the process (a notebook, a test fixture), that connection is used as it is and left open.

Every node must have recforge installed (the same version as the driver), since workers import
it to unpickle the model and run :func:`recforge.evaluation.blocks.score_block`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from recforge._optional import require
from recforge.errors import ConfigError, DataError

__all__ = ["Cluster", "check_workers", "cluster", "connect", "disconnect"]


@dataclass(frozen=True)
class Cluster:
    """A Ray connection.

    Attributes:
        address: The cluster's address (``local`` for one this process started).
        workers: Workers (one CPU each) the job asked for.
        cpus: CPUs the cluster offers.
        nodes: Live nodes.
        started: Whether this process started the cluster (and stops it in :func:`disconnect`).
    """

    address: str
    workers: int
    cpus: int
    nodes: int
    started: bool

    def describe(self) -> str:
        how = "started on 127.0.0.1" if self.started else f"joined at {self.address}"
        return f"Ray {how}: {self.nodes} node(s), {self.cpus} CPUs, {self.workers} worker(s)"


def check_workers(workers: int) -> int:
    """``workers`` as a positive int, or a one-line :class:`ConfigError`."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"--workers must be a positive integer, got {workers!r}")
    return workers


def connect(address: str | None, workers: int) -> Cluster:
    """Start a local Ray on 127.0.0.1 with ``workers`` CPUs (``address`` None), or join ``address``.

    Args:
        address: ``HOST:PORT`` of a running cluster's head (GCS), ``auto`` (the cluster of this
            node), ``ray://HOST:10001`` (Ray Client), or None for a local cluster.
        workers: Workers the job will start, one CPU each.

    Raises:
        ConfigError: ``workers`` is not positive, or the cluster has fewer CPUs than workers.
        DataError: The cluster at ``address`` cannot be reached (one line).
    """
    ray = require("ray", purpose="--backend ray")
    check_workers(workers)
    started = False
    if not ray.is_initialized():
        try:
            if address:
                ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
            else:
                ray.init(address="local", num_cpus=workers, include_dashboard=False, log_to_driver=False,
                         logging_level=logging.WARNING, _node_ip_address="127.0.0.1")
                started = True
        except (ConnectionError, RuntimeError, ValueError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            where = f"join the Ray cluster at {address!r}" if address else "start a local Ray cluster"
            raise DataError(f"could not {where}: {first}") from None
    cpus = int(ray.cluster_resources().get("CPU", 0))
    nodes = sum(1 for n in ray.nodes() if n.get("Alive"))
    info = Cluster(address or ("local" if started else str(ray.get_runtime_context().gcs_address)),
                   workers, cpus, nodes, started)
    if cpus < workers:
        if started:
            disconnect(info)
        raise ConfigError(f"--workers {workers}: the Ray cluster offers {cpus} CPU(s), one per worker is needed; "
                          "lower --workers or add nodes")
    return info


def disconnect(info: Cluster) -> None:
    """Stop the cluster when this process started it (a joined one keeps running)."""
    if info.started:
        import ray

        ray.shutdown()


@contextlib.contextmanager
def cluster(address: str | None, workers: int) -> Iterator[Cluster]:
    """:func:`connect` for the ``with`` block, then :func:`disconnect`."""
    info = connect(address, workers)
    try:
        yield info
    finally:
        disconnect(info)


def worker_threads(threads: int = 1) -> Any:
    """Limit this worker process's numeric libraries (BLAS, OpenMP, numba) to ``threads``
    threads: a worker holds one CPU of the cluster. Returns the threadpoolctl limiter (keep it)."""
    from threadpoolctl import threadpool_limits

    limiter = threadpool_limits(limits=threads)
    with contextlib.suppress(Exception):  # numba absent or its pool not yet started: nothing to limit
        import numba

        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    return limiter

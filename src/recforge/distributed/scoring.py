"""Blocks of users scored by a pool of Ray actors, each holding the fitted model once.

The model (or serving pipeline) is put into Ray's object store once (``ray.put``); every actor
reads it from there once (on one node the arrays are shared memory, not copies) and then scores
the blocks it is sent with :func:`recforge.evaluation.blocks.score_block`, the unit of work of the
local loops. :class:`RayExecutor` is a :class:`recforge.evaluation.blocks.BlockExecutor`: it
sends the caller's blocks to the actors in turn, keeps up to ``window`` blocks per actor in flight
(the workers score the next blocks while the caller writes this one), and yields the results in
the caller's block order. The blocks are the local run's blocks, unsplit: BLAS rounds a float32
score differently for a block of another height, so splitting them would change the last bits of
the scores. The recommendations are therefore the same rows, bit for bit, as the local run's; the
parallelism is across blocks, so a job needs at least as many blocks as workers to use them all
(``--batch-size``, ``--memory-budget``).

:func:`ray_scoring` connects (:mod:`recforge.distributed.cluster`), starts the actors and installs
the executor for a ``with`` block: full-ranking evaluation and the batch job inside it run on Ray.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from recforge.errors import DataError, RecforgeError

__all__ = ["RayExecutor", "ScoringWorker", "ray_scoring"]


class ScoringWorker:
    """The actor: holds one scorer (a fitted model or a pipeline) and scores blocks with it.

    Runs as a Ray actor with one CPU (``ray.remote(num_cpus=1)(ScoringWorker)``); its numeric
    libraries are limited to ``threads`` threads.
    """

    def __init__(self, threads: int = 1) -> None:
        from recforge.distributed.cluster import worker_threads

        self.threads = threads
        self._limits = worker_threads(threads)
        self.scorer: Any = None

    def load(self, scorer: Any) -> int:
        """Keep ``scorer`` (resolved from the object store by Ray); returns this process's id."""
        import os

        self.scorer = scorer
        return os.getpid()

    def score(self, users: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """:func:`recforge.evaluation.blocks.score_block` on the held scorer."""
        from recforge.distributed.cluster import worker_threads
        from recforge.evaluation.blocks import score_block

        worker_threads(self.threads)  # numba's thread count is per calling thread
        return score_block(self.scorer, users, k)


class RayExecutor:
    """A pool of ``workers`` :class:`ScoringWorker` actors (one CPU each) scoring blocks in order.

    Args:
        workers: Actors to start.
        window: Blocks per actor kept in flight ahead of the one the caller consumes.
        threads: Threads per actor (each actor reserves ``threads`` CPUs).
        start_timeout: Seconds to wait for the actors to start (they wait for free CPUs) before
            giving up with a one-line error.
    """

    def __init__(self, workers: int, *, window: int = 2, threads: int = 1, start_timeout: float = 600.0) -> None:
        import ray

        self.start_timeout = float(start_timeout)
        self.workers = int(workers)
        self.window = max(1, int(window))
        actor = ray.remote(num_cpus=threads, max_restarts=0)(ScoringWorker)
        self.actors = [actor.remote(threads) for _ in range(self.workers)]
        self._loaded: Any = None  # the scorer the actors hold (kept alive so its identity stays unique)
        self._next = 0
        self.pids: list[int] = []

    def load(self, scorer: Any) -> None:
        """Put ``scorer`` into the object store once and hand the reference to every actor."""
        if scorer is self._loaded:
            return
        import ray

        try:
            ref = ray.put(scorer)
        except Exception as exc:  # noqa: BLE001 - an unpicklable scorer: say which, in one line
            raise DataError(f"cannot send {type(scorer).__name__} to the Ray workers: {type(exc).__name__}: "
                            f"{str(exc).splitlines()[0][:200] if str(exc) else ''}") from None
        futures = [a.load.remote(ref) for a in self.actors]
        ready, _ = ray.wait(futures, num_returns=len(futures), timeout=self.start_timeout)
        if len(ready) < len(futures):
            free = ray.available_resources().get("CPU", 0)
            raise DataError(f"{len(futures) - len(ready)} of {self.workers} Ray scoring workers did not start within "
                            f"{self.start_timeout:g} s (the cluster has {free:g} free CPU(s); other jobs may hold them)")
        self.pids = self._get(futures)
        self._loaded = scorer

    def map(self, scorer: Any, blocks: Iterable[np.ndarray], k: int
            ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """``(users, item indices, scores)`` per block, in block order (see
        :class:`recforge.evaluation.blocks.BlockExecutor`)."""
        self.load(scorer)
        pending: deque[tuple[np.ndarray, Any]] = deque()
        for users in blocks:
            users = np.asarray(users, dtype=np.int64)
            pending.append((users, self.actors[self._next % self.workers].score.remote(users, k)))
            self._next += 1
            while len(pending) > self.window * self.workers:
                yield self._collect(*pending.popleft())
        while pending:
            yield self._collect(*pending.popleft())

    def _collect(self, users: np.ndarray, future: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        idx, sc = self._get([future])[0]
        return users, idx, sc

    @staticmethod
    def _get(futures: list[Any]) -> list[Any]:
        """``ray.get``; an input error raised in a worker is raised here as itself, a dead worker
        as a one-line :class:`DataError`."""
        import ray

        try:
            return ray.get(futures)
        except ray.exceptions.RayTaskError as exc:
            cause = getattr(exc, "cause", None)
            if isinstance(cause, RecforgeError):
                raise cause from None
            raise
        except ray.exceptions.RayActorError as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            raise DataError(f"a Ray scoring worker died ({first}); if it ran out of memory, "
                            "lower --memory-budget or --batch-size") from None

    def close(self) -> None:
        """Stop the actors (the object store frees the scorer once no one holds it)."""
        import ray

        for a in self.actors:
            with contextlib.suppress(Exception):
                ray.kill(a)
        self.actors = []
        self._loaded = None


@contextlib.contextmanager
def ray_scoring(workers: int, address: str | None = None, *, window: int = 2) -> Iterator[RayExecutor]:
    """Within the block, full-ranking evaluation and the batch job score their users on a pool of
    ``workers`` Ray actors (a local Ray on 127.0.0.1 when ``address`` is None).

    Inside an enclosing ``ray_scoring`` (or :func:`~recforge.evaluation.blocks.block_executor`
    with a :class:`RayExecutor`) of the same size, that pool is used and left running: a session
    that scores several models or tables starts its actors once.
    """
    from recforge.distributed.cluster import check_workers, cluster
    from recforge.evaluation.blocks import block_executor, current_executor

    outer = current_executor()
    if isinstance(outer, RayExecutor) and outer.actors and outer.workers == check_workers(workers):
        yield outer
        return
    with cluster(address, workers):
        executor = RayExecutor(workers, window=window)
        try:
            with block_executor(executor):
                yield executor
        finally:
            executor.close()

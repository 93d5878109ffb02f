"""Blocks of users scored by a pool of Ray actors, each holding the fitted model once.

The model (or serving pipeline) is put into Ray's object store once (``ray.put``); every actor
reads it from there once (on one node the arrays are shared memory, not copies) and then scores
the blocks it is sent with :func:`recforge.evaluation.blocks.score_block`, the unit of work of the
local loops. :class:`RayExecutor` is a :class:`recforge.evaluation.blocks.BlockExecutor`: it
splits each block the caller hands it into one piece per worker, keeps up to ``window`` blocks in
flight (the workers score the next block while the caller writes this one), and yields the
results in the caller's block order. The recommendations are therefore the same rows as the local
run, only computed elsewhere.

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
        window: Blocks kept in flight ahead of the one the caller consumes.
        threads: Threads per actor (each actor reserves ``threads`` CPUs).
    """

    def __init__(self, workers: int, *, window: int = 2, threads: int = 1) -> None:
        import ray

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
        self.pids = self._get([a.load.remote(ref) for a in self.actors])
        self._loaded = scorer

    def map(self, scorer: Any, blocks: Iterable[np.ndarray], k: int
            ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """``(users, item indices, scores)`` per block, in block order (see
        :class:`recforge.evaluation.blocks.BlockExecutor`)."""
        self.load(scorer)
        pending: deque[tuple[np.ndarray, list[Any]]] = deque()
        for users in blocks:
            users = np.asarray(users, dtype=np.int64)
            pieces = np.array_split(users, max(1, min(self.workers, len(users))))
            futures = []
            for piece in pieces:
                futures.append(self.actors[self._next % self.workers].score.remote(piece, k))
                self._next += 1
            pending.append((users, futures))
            while len(pending) > self.window:
                yield self._collect(*pending.popleft())
        while pending:
            yield self._collect(*pending.popleft())

    def _collect(self, users: np.ndarray, futures: list[Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        parts = self._get(futures)
        return users, np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

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
    ``workers`` Ray actors (a local Ray on 127.0.0.1 when ``address`` is None)."""
    from recforge.distributed.cluster import cluster
    from recforge.evaluation.blocks import block_executor

    with cluster(address, workers):
        executor = RayExecutor(workers, window=window)
        try:
            with block_executor(executor):
                yield executor
        finally:
            executor.close()

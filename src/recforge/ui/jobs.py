"""Slow work started from a page (a paired test that reruns two experiments, a UMAP projection,
fitting models for a drill-down) runs in one background thread at a time; pages poll its state.

One worker: the machine's cores serve the page too, and two fits at once only slow both.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from recforge.errors import RecforgeError

__all__ = ["Job", "Jobs"]


@dataclass
class Job:
    """A background task: ``state`` is ``queued``, ``running``, ``done`` or ``error``."""

    key: str
    title: str
    state: str = "queued"
    result: Any = None
    error: str | None = None
    started: float = field(default_factory=time.time)
    finished: float | None = None

    @property
    def seconds(self) -> float:
        return (self.finished or time.time()) - self.started


class Jobs:
    """Background jobs by key: starting a key that exists returns the existing job."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="recforge-ui")
        self._jobs: dict[str, Job] = {}
        self._futures: dict[str, Future[Any]] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> Job | None:
        return self._jobs.get(key)

    def start(self, key: str, title: str, fn: Callable[[], Any]) -> Job:
        """Queue ``fn`` under ``key`` unless a job with that key exists (a failed one is retried)."""
        with self._lock:
            job = self._jobs.get(key)
            if job is not None and job.state != "error":
                return job
            job = self._jobs[key] = Job(key, title)

        def work() -> None:
            job.state = "running"
            job.started = time.time()
            try:
                job.result = fn()
                job.state = "done"
            except RecforgeError as exc:  # bad input: the CLI's one-line message
                job.error = str(exc)
                job.state = "error"
            except Exception as exc:  # noqa: BLE001 - shown on the page; the app keeps running
                job.error = f"{type(exc).__name__}: {exc}"
                job.state = "error"
                traceback.print_exc()
            finally:
                job.finished = time.time()

        self._futures[key] = self._pool.submit(work)
        return job

    def wait(self, key: str, timeout: float | None = None) -> Job | None:
        """Block until the job under ``key`` finishes (tests)."""
        fut = self._futures.get(key)
        if fut is not None:
            fut.result(timeout)
        return self._jobs.get(key)

    def all(self) -> list[Job]:
        return list(self._jobs.values())

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

"""Slow work started from a page (a paired test that reruns two experiments, a UMAP projection,
fitting models for a drill-down) runs in one background thread at a time; pages poll its state.

One worker: the machine's cores serve the page too, and two fits at once only slow both. It is a
daemon thread, so stopping the UI never waits for a UMAP or a rerun to finish.
"""

from __future__ import annotations

import queue
import threading
import time
import traceback
from collections.abc import Callable
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
        self._jobs: dict[str, Job] = {}
        self._done: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        self._queue: queue.Queue[tuple[Job, Callable[[], Any], threading.Event] | None] = queue.Queue()
        self._worker = threading.Thread(target=self._work, name="recforge-ui-jobs", daemon=True)
        self._worker.start()

    def get(self, key: str) -> Job | None:
        return self._jobs.get(key)

    def start(self, key: str, title: str, fn: Callable[[], Any], *, retry: bool = False) -> Job:
        """Queue ``fn`` under ``key`` unless a job with that key exists; ``retry`` requeues a
        failed one (never automatically: a page that reloads until its job ends would loop)."""
        with self._lock:
            job = self._jobs.get(key)
            if job is not None and not (retry and job.state == "error"):
                return job
            job = self._jobs[key] = Job(key, title)
            done = self._done[key] = threading.Event()
        self._queue.put((job, fn, done))
        return job

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            job, fn, done = item
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
                done.set()

    def wait(self, key: str, timeout: float | None = None) -> Job | None:
        """Block until the job under ``key`` finishes (tests); None when there is no such job."""
        done = self._done.get(key)
        if done is not None:
            done.wait(timeout)
        return self._jobs.get(key)

    def all(self) -> list[Job]:
        return list(self._jobs.values())

    def shutdown(self) -> None:
        """Stop after the running job (queued ones are dropped)."""
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._queue.put(None)

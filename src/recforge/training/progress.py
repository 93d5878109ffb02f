"""Progress of long jobs (epochs, folds, users scored) as one small callback object.

Models never print progress. The loops that know how far they are (:func:`~recforge.training.epochs.fit_epochs`,
the Lightning loop, the evaluation folds, the scoring of test users) ask :func:`current` for the
active reporter and tell it ``task(description, total)`` / ``advance()`` / ``close()``. By default
the reporter is :data:`NULL` (costs nothing); the CLI installs a :class:`RichProgress` with
:func:`reporting` when it prints to a terminal, so the same fit is silent in a script, in a pipe
and with ``--format json``.

:class:`RichProgress` shows nothing for the first ``delay`` seconds (2 by default): a fit that
takes half a second does not flash a bar. Nested tasks (a fold's epochs under the folds) share one
live display on stderr.
"""

from __future__ import annotations

import contextvars
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["NULL", "ProgressReporter", "ProgressTask", "RichProgress", "current", "reporting", "wanted"]


class ProgressTask:
    """One unit of work with an optional total; :class:`ProgressReporter` makes them."""

    def advance(self, n: int = 1, **fields: Any) -> None:
        """``n`` more steps done; ``fields`` (e.g. ``loss=0.91``) are shown beside the bar."""

    def close(self) -> None:
        """The task is over (its bar is removed)."""

    def __enter__(self) -> ProgressTask:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class ProgressReporter:
    """Receives progress; this base class ignores it (see :data:`NULL`)."""

    #: Whether anything is shown: loops may skip work done only for progress (e.g. per-epoch calls).
    active = False

    def task(self, description: str, total: int | None = None) -> ProgressTask:
        """Start a task of ``total`` steps (None: unknown)."""
        return ProgressTask()


NULL = ProgressReporter()
_CURRENT: contextvars.ContextVar[ProgressReporter] = contextvars.ContextVar("recforge_progress", default=NULL)


def current() -> ProgressReporter:
    """The reporter of this context (:data:`NULL` unless :func:`reporting` set one)."""
    return _CURRENT.get()


@contextmanager
def reporting(reporter: ProgressReporter | None) -> Iterator[ProgressReporter]:
    """Make ``reporter`` the :func:`current` one inside the block (None: keep the current one)."""
    if reporter is None:
        yield current()
        return
    token = _CURRENT.set(reporter)
    try:
        yield reporter
    finally:
        if isinstance(reporter, RichProgress):
            reporter.stop()
        _CURRENT.reset(token)


def wanted(flag: bool | None, fmt: str = "table") -> bool:
    """Whether a command shows progress: ``--progress``/``--no-progress`` when given, else only
    for the table format with stdout and stderr on a terminal."""
    if flag is not None:
        return bool(flag)
    return fmt == "table" and sys.stdout.isatty() and sys.stderr.isatty()


class _RichTask(ProgressTask):
    def __init__(self, owner: RichProgress, description: str, total: int | None) -> None:
        self.owner, self.description, self.total = owner, description, total
        self.completed = 0
        self.fields: dict[str, Any] = {}
        self.id: Any = None
        self.closed = False

    def advance(self, n: int = 1, **fields: Any) -> None:
        self.completed += n
        self.fields.update(fields)
        self.owner._refresh(self)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.owner._close(self)


class RichProgress(ProgressReporter):
    """Rich progress bars on stderr, shown once the first task has run ``delay`` seconds.

    Args:
        delay: Seconds before anything is drawn.
        force: Draw even when stderr is not a terminal (``--progress`` in a pipe or a log file).
    """

    active = True

    def __init__(self, delay: float = 2.0, *, force: bool = False) -> None:
        self.delay = float(delay)
        self.force = force
        self._t0: float | None = None
        self._bar: Any = None
        self._tasks: list[_RichTask] = []

    def task(self, description: str, total: int | None = None) -> ProgressTask:
        if self._t0 is None:
            self._t0 = time.monotonic()
        t = _RichTask(self, description, total)
        self._tasks.append(t)
        if self._bar is not None:
            self._add(t)
        return t

    def stop(self) -> None:
        """End the live display (the block of :func:`reporting` calls it)."""
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
        self._tasks.clear()
        self._t0 = None

    # ------------------------------------------------------------------ internals
    def _refresh(self, t: _RichTask) -> None:
        if self._bar is None:
            if self._t0 is None or time.monotonic() - self._t0 < self.delay:
                return
            self._start()
        if t.id is None:
            self._add(t)
        extra = "  ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in t.fields.items())
        self._bar.update(t.id, completed=t.completed, extra=extra)

    def _start(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        console = Console(stderr=True, force_terminal=True if self.force else None)
        self._bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                             TimeElapsedColumn(), TextColumn("{task.fields[extra]}"), console=console,
                             transient=True)
        self._bar.start()
        for t in self._tasks:
            if not t.closed:
                self._add(t)

    def _add(self, t: _RichTask) -> None:
        t.id = self._bar.add_task(t.description, total=t.total, completed=t.completed, extra="")

    def _close(self, t: _RichTask) -> None:
        if t in self._tasks:
            self._tasks.remove(t)
        if self._bar is not None and t.id is not None:
            self._bar.remove_task(t.id)

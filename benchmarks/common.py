"""Shared benchmark helpers: timing medians, machine description, result fragments."""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def median_time(fn: Callable[[], Any], repeats: int = 3) -> tuple[float, Any]:
    """Median wall-clock seconds of ``repeats`` calls, and the last call's return value."""
    times = []
    out = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def machine() -> str:
    """One line describing where the numbers were measured."""
    try:
        import numpy as np

        np_ver = np.__version__
    except ImportError:  # pragma: no cover
        np_ver = "?"
    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, numpy {np_ver}, {time.strftime('%Y-%m-%d')}"
    )


def write_fragment(name: str, markdown: str) -> Path:
    """Write ``results/<name>.md`` (atomically) for run_all to assemble into RESULTS.md."""
    from recforge.io import atomic_write

    path = RESULTS_DIR / f"{name}.md"
    with atomic_write(path) as fh:
        fh.write(markdown.rstrip() + "\n")
    return path


def md_table(rows: list[dict[str, Any]], digits: int = 4) -> str:
    """A Markdown table from dict rows (keys of the first row are the columns)."""
    if not rows:
        return ""
    cols = list(rows[0])
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        cells = []
        for c in cols:
            v = r.get(c, "")
            cells.append(f"{v:.{digits}f}" if isinstance(v, float) else str(v))
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def status_mb(field: str) -> float:
    """A ``/proc/self/status`` memory field (``VmRSS``, ``VmHWM``, ...) in MB; NaN off Linux."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def reset_peak_rss() -> float:
    """Reset the kernel's peak-RSS mark to the current RSS (Linux); returns the current RSS in MB."""
    import resource

    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:  # not Linux, or not allowed: the peak then includes everything before
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return status_mb("VmRSS")

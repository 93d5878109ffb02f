"""``recforge batch --backend ray``: the batch job with its users scored by Ray actors.

Only the scoring moves: :func:`run_batch_ray` runs :func:`recforge.serving.batch.run_batch`, the
local job, inside :func:`recforge.distributed.scoring.ray_scoring`. The driver keeps the table's
lock (:func:`recforge.serving.locks.table_lock`: a PostgreSQL advisory lock, or a file lock beside
a SQLite file), writes the blocks into a staging table as they come back (one transaction per
block, in block order) and swaps it in atomically at the end, exactly as the local job does; so the
table holds the same rows as a local run, and a failed run leaves the previous table in place.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from recforge.distributed.scoring import ray_scoring
from recforge.serving.batch import run_batch

__all__ = ["run_batch_ray"]


def run_batch_ray(source: Any, url: str | Path | None = None, *, workers: int = 2, address: str | None = None,
                  **kwargs: Any) -> Any:
    """:func:`recforge.serving.batch.run_batch` (same arguments) with the blocks scored by
    ``workers`` Ray actors, on a local Ray (``address`` None) or the cluster at ``address``.

    The blocks of ``batch_size`` users (fewer under a memory budget, which then applies to each
    worker) go to the workers in turn, whole, so the rows are the local job's bit for bit; a job
    uses every worker when it has at least as many blocks. Returns the
    :class:`recforge.serving.db.SwapResult`.
    """
    with ray_scoring(workers, address):
        return run_batch(source, url, **kwargs)

"""The batch job: every known user's top k into a SQL table, swapped in atomically, one job per
table at a time (:mod:`recforge.serving.locks`)."""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from recforge._arrays import check_k
from recforge.errors import DataError
from recforge.models.base import Recommender
from recforge.serving.pipeline import Pipeline


def model_version(model: Recommender, path: str | Path | None = None) -> str:
    """``<model name>-<12 hex digits>``: a hash of the saved file when there is one, else of the
    config and the learned arrays' shapes and checksums (stable across runs)."""
    h = hashlib.sha256()
    if path is not None and Path(path).exists():
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    else:
        h.update(repr(sorted(model.config.to_dict().items())).encode())
        for key, val in sorted(model.get_state().items()):
            h.update(key.encode())
            if isinstance(val, np.ndarray) and val.dtype != object:
                h.update(np.ascontiguousarray(val).tobytes()[: 1 << 22])
    return f"{model.name}-{h.hexdigest()[:12]}"


def score_blocks(
    source: Recommender | Pipeline, k: int, batch_size: int, users: np.ndarray | None = None
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Yield ``(user indices, item indices (n, k), scores (n, k))`` per block of users.

    Blocks hold ``batch_size`` users, fewer when an enclosing
    :func:`recforge.evaluation.blocks.memory_budget` allows fewer. They are scored by the current
    executor (:func:`recforge.evaluation.blocks.block_executor`: in this process, or on Ray workers).
    """
    from recforge.evaluation.blocks import current_budget, map_blocks, plan_blocks

    model = source.model if isinstance(source, Pipeline) else source
    if users is None:
        users = np.flatnonzero(model.user_known_)
    if current_budget() is not None:
        batch_size = min(batch_size, plan_blocks(model, len(users), k).block_users)
    blocks = (users[s : s + batch_size] for s in range(0, len(users), batch_size))
    # in this process, or on a distributed backend's workers (recforge.evaluation.blocks.block_executor)
    yield from map_blocks(source, blocks, k)


def run_batch(
    source: Recommender | Pipeline,
    url: str | Path | None = None,
    *,
    k: int = 10,
    table: str = "recommendations",
    batch_size: int = 1000,
    version: str | None = None,
    progress: bool = False,
    users: np.ndarray | None = None,
    clean_leftovers: bool = True,
    lock_timeout: float = 60.0,
) -> Any:
    """Score every known user (or ``users``, as indices) and write the top ``k`` into ``table``.

    Args:
        source: A fitted model (its own ``recommend``) or a :class:`Pipeline`.
        url: SQLAlchemy URL or a SQLite file path (default ``recommendations.db``).
        k: Items per user.
        table: Live table name; rows are ``(user_id, rank, item_id, score, model_version,
            created_at)``, rank starting at 1.
        batch_size: Users scored (and rows committed) per block.
        version: Model version written with every row (default: :func:`model_version`).
        progress: Show a progress bar.
        users: User indices to score (default: every user known in training).
        clean_leftovers: First drop staging tables that killed runs of ``table`` left behind
            (safe: the job holds the table's lock, so no other job is filling one).
        lock_timeout: Seconds to wait while another job holds the table's lock
            (:func:`recforge.serving.locks.table_lock`).

    Returns:
        A :class:`recforge.serving.db.SwapResult`.

    Raises:
        DataError: Another job holds the lock past ``lock_timeout``, or the database refused the
            write (one line, never row data). A SQLite file this call created is removed again.
    """
    from recforge.serving.db import drop_leftover_staging, write_recommendations
    from recforge.serving.locks import table_lock

    k = check_k(k)
    batch_size = check_k(batch_size, "batch_size")
    model = source.model if isinstance(source, Pipeline) else source
    model.check_is_fitted()
    version = version or model_version(model)
    user_ids = model.users_.ids
    item_ids = model.items_.ids
    all_users = np.flatnonzero(model.user_known_) if users is None else np.asarray(users, np.int64)

    def rows() -> Iterator[list[tuple[Any, int, Any, float | None]]]:
        bar = None
        if progress:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

            bar = Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                           TimeRemainingColumn(), transient=False)
            bar.start()
            task = bar.add_task("scoring users", total=len(all_users))
        try:
            for u, idx, sc in score_blocks(source, k, batch_size, all_users):
                block = []
                uid = user_ids[u].tolist()
                for r in range(len(u)):
                    for c in range(idx.shape[1]):
                        if idx[r, c] < 0:
                            break
                        s = float(sc[r, c])
                        block.append((uid[r], c + 1, item_ids[idx[r, c]].item(), None if np.isnan(s) else s))
                if bar is not None:
                    bar.advance(task, len(u))
                yield block
        finally:
            if bar is not None:
                bar.stop()

    def write(engine: Any) -> Any:
        with table_lock(engine, table, lock_timeout):
            if clean_leftovers:
                drop_leftover_staging(engine, table)
            return write_recommendations(engine, rows(), table=table, model_version=version,
                                         user_kind=user_ids.dtype.kind, item_kind=item_ids.dtype.kind)

    return _with_database(url, table, write)


def cleanup_batch(url: str | Path | None = None, *, table: str = "recommendations",
                  lock_timeout: float = 60.0) -> list[str]:
    """Drop the staging tables killed runs of ``table`` left behind (``recforge batch --cleanup``),
    under the table's lock; returns their names."""
    from recforge.serving.db import drop_leftover_staging
    from recforge.serving.locks import table_lock

    def clean(engine: Any) -> list[str]:
        with table_lock(engine, table, lock_timeout):
            return drop_leftover_staging(engine, table)

    return _with_database(url, table, clean)


def _with_database(url: str | Path | None, table: str, job: Any) -> Any:
    """Run ``job(engine)``: database errors become one-line :class:`DataError` s without the
    statement's parameters (row data), and a SQLite file the failed job created is removed."""
    import sqlalchemy as sa

    from recforge.serving.db import check_table_name, make_engine

    check_table_name(table)
    engine = make_engine(url)
    new_file = None
    if engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:"):
        db = Path(engine.url.database)
        new_file = None if db.exists() else db
    ok = False
    try:
        out = job(engine)
        ok = True
        return out
    except sa.exc.SQLAlchemyError as exc:
        orig = getattr(exc, "orig", None) or exc
        first = (str(orig).strip().splitlines() or [type(orig).__name__])[0]
        first = first.split("[SQL:")[0].strip()[:200]
        raise DataError(f"database error while writing table {table!r}: {type(orig).__name__}: {first}") from None
    finally:
        engine.dispose()
        if not ok and new_file is not None:
            for suffix in ("", "-wal", "-shm", f".{table}.lock"):
                with contextlib.suppress(OSError):
                    os.unlink(f"{new_file}{suffix}")

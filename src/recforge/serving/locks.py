"""One writer per recommendations table: the lock every batch job holds while it writes.

PostgreSQL: a session-level advisory lock (``pg_try_advisory_lock``) on a connection held for the
job; the server releases it when that connection ends, also when the job is killed. SQLite: an
exclusive ``flock`` on a file beside the database (``<db>.<table>.lock``); the kernel releases it
when the process ends. (A transaction held open for the whole job, SQLite's ``BEGIN IMMEDIATE``,
would also stop the service's event writes to the same file for as long as the job runs; a lock
row in a table would outlive a killed job.)
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from recforge.errors import DataError
from recforge.serving.db import check_table_name

__all__ = ["table_lock"]

_POLL = 0.2


def _pg_key(table: str) -> int:
    """A signed 64-bit advisory-lock key for the table (stable across processes)."""
    digest = hashlib.sha256(f"recforge-batch:{table}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@contextlib.contextmanager
def table_lock(engine: Engine, table: str, timeout: float = 60.0) -> Iterator[None]:
    """Hold the batch lock of ``table`` for the ``with`` block.

    Args:
        engine: The database.
        table: The live table the job replaces.
        timeout: Seconds to wait for another job's lock before giving up.

    Raises:
        DataError: Another job still holds the lock after ``timeout`` seconds (one line).
    """
    check_table_name(table)
    if timeout < 0:
        raise DataError(f"lock timeout must be >= 0 seconds, got {timeout}")
    dialect = engine.dialect.name
    if dialect == "postgresql":
        with _pg_lock(engine, table, timeout):
            yield
    elif dialect == "sqlite":
        with _file_lock(engine, table, timeout):
            yield
    else:  # other databases: no lock (documented)
        yield


def _busy(table: str, timeout: float) -> DataError:
    return DataError(f"another batch job is writing table {table!r} (its lock is still held after "
                     f"{timeout:g} s); try again later or raise --lock-timeout")


@contextlib.contextmanager
def _pg_lock(engine: Engine, table: str, timeout: float) -> Iterator[None]:
    key = _pg_key(table)
    conn = engine.connect()
    try:
        deadline = time.monotonic() + timeout
        while True:
            got = conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar_one()
            conn.commit()
            if got:
                break
            if time.monotonic() >= deadline:
                raise _busy(table, timeout)
            time.sleep(_POLL)
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                conn.commit()
    finally:
        conn.close()


@contextlib.contextmanager
def _file_lock(engine: Engine, table: str, timeout: float) -> Iterator[None]:
    import fcntl

    db = engine.url.database
    if not db or db == ":memory:":
        yield
        return
    path = Path(f"{db}.{table}.lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise _busy(table, timeout) from None
                time.sleep(_POLL)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)

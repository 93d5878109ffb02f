"""SQL storage for serving: precomputed recommendations (swapped in atomically) and events.

One code path for every SQLAlchemy URL: a SQLite file by default, PostgreSQL through
``postgresql://...`` (driven by psycopg 3). Values only ever reach SQL as bound parameters; the
only identifiers spliced into DDL are table names, which must match ``[A-Za-z_][A-Za-z0-9_]*``.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from recforge._optional import require
from recforge.errors import ConfigError, DataError

require("sqlalchemy", purpose="batch recommendations and events in a database")

import sqlalchemy as sa  # noqa: E402
from sqlalchemy.engine import Engine  # noqa: E402

DEFAULT_URL = "sqlite:///recommendations.db"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,40}$")
RUNS_TABLE = "recforge_runs"
EVENT_TYPES = ("click", "view", "like", "rating")


def check_table_name(name: str) -> str:
    """``name`` when it is a plain SQL identifier (letters, digits, underscore; at most 41 chars)."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(f"table name {name!r} must match [A-Za-z_][A-Za-z0-9_]* (at most 41 characters)")
    return name


def normalize_url(url: str | Path | None) -> str:
    """A SQLAlchemy URL: a bare path becomes a SQLite file; ``postgresql://`` uses psycopg 3."""
    if url is None or str(url) == "":
        return DEFAULT_URL
    s = str(url)
    if "://" not in s:
        return f"sqlite:///{Path(s).expanduser()}"
    if s.startswith("postgresql://") or s.startswith("postgres://"):
        return "postgresql+psycopg://" + s.split("://", 1)[1]
    return s


def make_engine(url: str | Path | None = None, **kw: Any) -> Engine:
    """An engine for ``url`` with transactional DDL on SQLite (needed for the atomic swap).

    Python's sqlite3 driver commits before DDL on its own; here it is put in autocommit mode and
    SQLAlchemy emits ``BEGIN`` itself, the recipe in SQLAlchemy's SQLite dialect documentation.
    SQLite files use WAL so readers are not blocked by a running batch job.
    """
    s = normalize_url(url)
    if s.startswith("postgresql"):
        require("psycopg", purpose="PostgreSQL")
    if s.startswith("sqlite"):
        path = s.split(":///", 1)[1] if ":///" in s else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(s, connect_args={"check_same_thread": False, "timeout": 30}, **kw)

        @sa.event.listens_for(engine, "connect")
        def _connect(dbapi_conn: Any, _rec: Any) -> None:
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @sa.event.listens_for(engine, "begin")
        def _begin(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN")

        return engine
    kw.setdefault("pool_pre_ping", True)
    return sa.create_engine(s, **kw)


def id_type(kind: str) -> Any:
    """The SQL column type for raw ids of a NumPy dtype kind (``i`` -> BIGINT, else VARCHAR)."""
    return sa.BigInteger() if kind in "iu" else sa.String(255)


def recommendations_table(name: str, metadata: sa.MetaData, user_kind: str = "U", item_kind: str = "U") -> sa.Table:
    return sa.Table(
        name, metadata,
        sa.Column("user_id", id_type(user_kind), nullable=False),
        sa.Column("rank", sa.Integer, nullable=False),
        sa.Column("item_id", id_type(item_kind), nullable=False),
        sa.Column("score", sa.Float, nullable=True),
        sa.Column("model_version", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "rank", name=f"pk_{name}"),
    )


def runs_table(metadata: sa.MetaData) -> sa.Table:
    return sa.Table(
        RUNS_TABLE, metadata,
        sa.Column("run_id", sa.String(32), primary_key=True),
        sa.Column("table_name", sa.String(64), nullable=False),
        sa.Column("model_version", sa.String(128), nullable=False),
        sa.Column("n_users", sa.Integer, nullable=False),
        sa.Column("n_rows", sa.Integer, nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
    )


def events_table(metadata: sa.MetaData, name: str = "events") -> sa.Table:
    return sa.Table(
        check_table_name(name), metadata,
        sa.Column("id", sa.Integer, sa.Identity(), primary_key=True),
        sa.Column("user_id", sa.String(255), nullable=False, index=True),
        sa.Column("item_id", sa.String(255), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("value", sa.Float, nullable=True),
        sa.Column("event_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    )


@dataclass
class SwapResult:
    """What a batch write did."""

    table: str
    run_id: str
    n_users: int
    n_rows: int
    model_version: str
    created_at: datetime


def write_recommendations(
    engine: Engine,
    blocks: Iterable[Iterable[tuple[Any, int, Any, float | None]]],
    *,
    table: str = "recommendations",
    model_version: str,
    user_kind: str = "U",
    item_kind: str = "U",
) -> SwapResult:
    """Write ``(user_id, rank, item_id, score)`` rows into ``table``, replacing it atomically.

    Rows go to a fresh staging table (committed block by block, so memory stays bounded); then one
    transaction renames the live table away, renames the staging table into place, drops the old
    one and records the run in ``recforge_runs``. Readers see the previous set or the new one,
    never a mix; if anything fails before the swap the staging table is dropped and the previous
    set stays; running again with the same inputs gives the same rows.
    """
    check_table_name(table)
    run_id = uuid.uuid4().hex[:12]
    staging_name = f"{table}__s{run_id}"
    old_name = f"{table}__o{run_id}"
    created = datetime.now(UTC).replace(microsecond=0)
    started = datetime.now(UTC)
    meta = sa.MetaData()
    staging = recommendations_table(staging_name, meta, user_kind, item_kind)
    runs = runs_table(meta)
    n_rows = 0
    users: set[Any] = set()
    try:
        with engine.begin() as conn:
            staging.create(conn)
            runs.create(conn, checkfirst=True)
        for block in blocks:
            rows = [
                {"user_id": u, "rank": r, "item_id": i, "score": s, "model_version": model_version, "created_at": created}
                for u, r, i, s in block
            ]
            if not rows:
                continue
            with engine.begin() as conn:
                conn.execute(staging.insert(), rows)
            n_rows += len(rows)
            users.update(row["user_id"] for row in rows)
        with engine.begin() as conn:
            sa.Index(f"ix_{staging_name}_item", staging.c.item_id).create(conn)
        with engine.begin() as conn:
            q = conn.dialect.identifier_preparer.quote
            if sa.inspect(conn).has_table(table):
                conn.exec_driver_sql(f"ALTER TABLE {q(table)} RENAME TO {q(old_name)}")
                conn.exec_driver_sql(f"ALTER TABLE {q(staging_name)} RENAME TO {q(table)}")
                conn.exec_driver_sql(f"DROP TABLE {q(old_name)}")
            else:
                conn.exec_driver_sql(f"ALTER TABLE {q(staging_name)} RENAME TO {q(table)}")
            conn.execute(runs.insert(), [{
                "run_id": run_id, "table_name": table, "model_version": model_version, "n_users": len(users),
                "n_rows": n_rows, "started_at": started, "finished_at": datetime.now(UTC),
            }])
    except BaseException:
        _drop_quietly(engine, staging_name)
        raise
    return SwapResult(table, run_id, len(users), n_rows, model_version, created)


def _drop_quietly(engine: Engine, name: str) -> None:
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS {conn.dialect.identifier_preparer.quote(name)}")
    except Exception:  # noqa: BLE001 - the original error matters more than the clean-up's
        pass


def drop_leftover_staging(engine: Engine, table: str = "recommendations") -> list[str]:
    """Drop staging tables left by killed runs of ``table`` (not ones a live run is filling)."""
    check_table_name(table)
    names = [n for n in sa.inspect(engine).get_table_names() if re.fullmatch(rf"{table}__[so][0-9a-f]{{12}}", n)]
    for n in names:
        _drop_quietly(engine, n)
    return names


class RecommendationReader:
    """Reads one user's precomputed list from the live recommendations table."""

    def __init__(self, engine: Engine, table: str = "recommendations") -> None:
        self.engine = engine
        self.table = check_table_name(table)
        self._int_ids: bool | None = None  # the user_id column's type, looked up once

    def _query(self, conn: Any) -> sa.TextClause:
        q = conn.dialect.identifier_preparer.quote(self.table)
        return sa.text(
            f"SELECT item_id, score, model_version FROM {q} WHERE user_id = :user_id ORDER BY rank LIMIT :k"
        )

    def get(self, user_id: Any, k: int) -> tuple[list[Any], list[float | None], str | None]:
        """``(item_ids, scores, model_version)``; empty when the table or the user is missing."""
        with self.engine.connect() as conn:
            if self._int_ids is None:
                insp = sa.inspect(conn)
                if not insp.has_table(self.table):
                    return [], [], None
                col = next(c for c in insp.get_columns(self.table) if c["name"] == "user_id")
                self._int_ids = isinstance(col["type"], sa.Integer)
            key: Any = str(user_id)
            if self._int_ids:
                if not re.fullmatch(r"-?\d{1,18}", key):
                    return [], [], None
                key = int(key)
            try:
                rows = conn.execute(self._query(conn), {"user_id": key, "k": int(k)}).all()
            except sa.exc.DBAPIError:
                self._int_ids = None  # the table went away or changed; look again next time
                raise
        if not rows:
            return [], [], None
        return [r[0] for r in rows], [r[1] for r in rows], rows[0][2]

    def count(self) -> int:
        with self.engine.connect() as conn:
            if not sa.inspect(conn).has_table(self.table):
                return 0
            q = conn.dialect.identifier_preparer.quote(self.table)
            return int(conn.execute(sa.text(f"SELECT COUNT(*) FROM {q}")).scalar_one())


class EventStore:
    """Appends events to an ``events`` table (created when missing)."""

    def __init__(self, engine: Engine, table: str = "events") -> None:
        self.engine = engine
        self.meta = sa.MetaData()
        self.table = events_table(self.meta, table)
        self.meta.create_all(engine, checkfirst=True)

    def add(self, user_id: Any, item_id: Any, type_: str, value: float | None, event_time: datetime) -> int:
        """Store one event; returns its id."""
        if type_ not in EVENT_TYPES:
            raise DataError(f"event type must be one of {', '.join(EVENT_TYPES)}, not {type_!r}")
        with self.engine.begin() as conn:
            res = conn.execute(self.table.insert().returning(self.table.c.id), {
                "user_id": str(user_id), "item_id": str(item_id), "type": type_, "value": value,
                "event_time": event_time, "received_at": datetime.now(UTC),
            })
            return int(res.scalar_one())

    def recent(self, user_id: Any, n: int) -> list[tuple[str, float | None]]:
        """The user's latest ``n`` events as ``(item_id, value)``, most recent first."""
        t = self.table
        stmt = (sa.select(t.c.item_id, t.c.value).where(t.c.user_id == str(user_id))
                .order_by(t.c.event_time.desc(), t.c.id.desc()).limit(int(n)))
        with self.engine.connect() as conn:
            return [(r[0], r[1]) for r in conn.execute(stmt)]

    def latest_per_user(self, n: int, max_events: int) -> list[tuple[str, str, float | None]]:
        """Each user's latest ``n`` events among the latest ``max_events`` rows, as
        ``(user_id, item_id, value)``, oldest first (the order to replay them in)."""
        t = self.table
        recent = (sa.select(t.c.id, t.c.user_id, t.c.item_id, t.c.value, t.c.event_time)
                  .order_by(t.c.id.desc()).limit(int(max_events)).subquery())
        rank = sa.func.row_number().over(partition_by=recent.c.user_id,
                                         order_by=(recent.c.event_time.desc(), recent.c.id.desc())).label("r")
        ranked = sa.select(recent, rank).subquery()
        stmt = (sa.select(ranked.c.user_id, ranked.c.item_id, ranked.c.value).where(ranked.c.r <= int(n))
                .order_by(ranked.c.event_time, ranked.c.id))
        with self.engine.connect() as conn:
            return [(r[0], r[1], r[2]) for r in conn.execute(stmt)]

    def count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(self.table)).scalar_one())


def iter_blocks(rows: Iterator[tuple[Any, int, Any, float | None]], size: int) -> Iterator[list[Any]]:
    """Group a row iterator into lists of ``size``."""
    block: list[Any] = []
    for r in rows:
        block.append(r)
        if len(block) >= size:
            yield block
            block = []
    if block:
        yield block

"""Fixtures for the serving tests: small fitted models, and live PostgreSQL / Redis (skipped with a
reason when they do not answer)."""

from __future__ import annotations

import socket
import uuid

import numpy as np
import pandas as pd
import pytest

from recforge.config import FitOptions
from recforge.data.interactions import Interactions

PG_URL = "postgresql://{user}@127.0.0.1:5432/test"
REDIS_URL = "redis://127.0.0.1:6379/0"


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def clustered(n_users: int = 60, n_items: int = 40, n_clusters: int = 4, per_user: int = 6, seed: int = 0) -> Interactions:
    """Implicit data with ``n_clusters`` disjoint taste groups: user u likes items of cluster u % c.

    Item ids are 1000 + index, user ids 1 + index; item features carry the cluster as a genre
    (``"g0"``...) and a popularity-free title.
    """
    rng = np.random.default_rng(seed)
    size = n_items // n_clusters
    rows = []
    for u in range(n_users):
        c = u % n_clusters
        pool = np.arange(c * size, (c + 1) * size)
        for i in rng.choice(pool, per_user, replace=False):
            rows.append((u + 1, 1000 + int(i)))
    df = pd.DataFrame(rows, columns=["user_id", "item_id"])
    inter = Interactions.from_dataframe(df, name="clustered")
    feats = pd.DataFrame(
        {"genres": [f"g{j // size}|all" for j in range(n_items)], "title": [f"item {j}" for j in range(n_items)]},
        index=pd.Index(1000 + np.arange(n_items), name="item_id"),
    )
    return inter.with_features(item_features=feats)


@pytest.fixture(scope="session")
def clustered_data() -> Interactions:
    return clustered()


@pytest.fixture(scope="session")
def ials_model(clustered_data):
    from recforge.models.factorization.als import ImplicitALS

    return ImplicitALS(embedding_size=8, epochs=10, reg=0.1, alpha=5.0).fit(clustered_data, FitOptions(seed=0, threads=1))


@pytest.fixture(scope="session")
def pop_model(clustered_data):
    from recforge.models.baselines.simple import Popularity

    return Popularity().fit(clustered_data, FitOptions(seed=0))


@pytest.fixture(scope="session")
def pg_url() -> str:
    """A live PostgreSQL URL (database ``test``), or skip."""
    if not _port_open(5432):
        pytest.skip("PostgreSQL does not answer at 127.0.0.1:5432 (start it, e.g. with .ci/run)")
    import sqlalchemy as sa

    from recforge.serving.db import make_engine

    for user in ("postgres", "root"):
        url = PG_URL.format(user=user)
        try:
            eng = make_engine(url)
            with eng.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
            eng.dispose()
            return url
        except Exception:  # noqa: BLE001 - try the next role
            continue
    pytest.skip("PostgreSQL answers at 127.0.0.1:5432 but database 'test' refuses users postgres and root")


@pytest.fixture(scope="session")
def redis_url() -> str:
    """A live Redis URL, or skip."""
    if not _port_open(6379):
        pytest.skip("Redis does not answer at 127.0.0.1:6379")
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_timeout=1).ping()
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"Redis at 127.0.0.1:6379 does not answer PING ({exc})")
    return REDIS_URL


@pytest.fixture
def table_name() -> str:
    """A fresh table name, so tests sharing one database never collide."""
    return f"t_{uuid.uuid4().hex[:10]}"


@pytest.fixture
def drop_tables(pg_url):
    """Drops the named PostgreSQL tables after the test."""
    names: list[str] = []
    yield names
    import sqlalchemy as sa

    from recforge.serving.db import make_engine

    eng = make_engine(pg_url)
    with eng.begin() as conn:
        for n in names:
            for t in sa.inspect(conn).get_table_names():
                if t == n or t.startswith(f"{n}__"):
                    conn.exec_driver_sql(f'DROP TABLE IF EXISTS "{t}"')
    eng.dispose()

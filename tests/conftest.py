"""Shared fixtures: real datasets (skipped when absent), seeds and a torch device list."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

_DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data"
if "RECFORGE_DATA_DIR" not in os.environ and _DEFAULT.exists():
    os.environ["RECFORGE_DATA_DIR"] = str(_DEFAULT)
os.environ.setdefault("MPLBACKEND", "Agg")

try:  # pytest-xdist runs one process per core: intra-op threads only add synchronisation stalls
    import torch

    torch.set_num_threads(1)
except ImportError:  # the core suite runs without torch
    pass


def _data_dir() -> Path | None:
    env = os.environ.get("RECFORGE_DATA_DIR")
    return Path(env) if env else None


def has_dataset(name: str) -> bool:
    d = _data_dir()
    return d is not None and (d / name).is_dir()


@pytest.fixture(scope="session")
def ml100k():
    """The ML-100K Dataset; skips when ../shared/data (RECFORGE_DATA_DIR) is absent."""
    if not has_dataset("ml-100k"):
        pytest.skip("ML-100K not available: set RECFORGE_DATA_DIR to a folder holding ml-100k/")
    from recforge.data import load

    return load("ml-100k", download=False)


@pytest.fixture(scope="session")
def gowalla():
    if not has_dataset("gowalla"):
        pytest.skip("Gowalla not available: set RECFORGE_DATA_DIR to a folder holding gowalla/")
    from recforge.data import load

    return load("gowalla", download=False)


_DATA_FIXTURES = frozenset({"ml100k", "gowalla"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A test that takes a real-data fixture, or skips on ``has_dataset``, is a ``realdata`` test,
    whether or not its author wrote the marker (``-m "not realdata"`` then deselects it)."""
    heavy = os.environ.get("RECFORGE_HEAVY_TESTS") == "1"
    for item in items:
        if not heavy and item.get_closest_marker("heavy"):
            item.add_marker(pytest.mark.skip(reason="heavy: minutes per case on a full dataset; "
                                             "run with RECFORGE_HEAVY_TESTS=1 (make test-heavy)"))
        skip_reasons = " ".join(str(m.kwargs.get("reason", "")) for m in item.iter_markers("skipif"))
        if _DATA_FIXTURES & set(getattr(item, "fixturenames", ())) or "data not available" in skip_reasons:
            item.add_marker(pytest.mark.realdata)


@pytest.fixture(autouse=True)
def _seed():
    np.random.seed(0)


# ---------------------------------------------------------------------------------------- live services
PG_URL = "postgresql://{user}@127.0.0.1:5432/test"
REDIS_URL = "redis://127.0.0.1:6379/0"


def _port_open(port: int) -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def pg_url() -> str:
    """A live PostgreSQL URL (database ``test`` at 127.0.0.1:5432, trust auth), or skip saying why."""
    if not _port_open(5432):
        pytest.skip("PostgreSQL does not answer at 127.0.0.1:5432 (start it, e.g. with .ci/run)")
    pytest.importorskip("sqlalchemy", reason="PostgreSQL tests need SQLAlchemy (the serve extra)")
    import sqlalchemy as sa

    from recforge.serving.db import make_engine

    errors = []
    for user in ("postgres", "root"):
        url = PG_URL.format(user=user)
        eng = make_engine(url)
        try:
            with eng.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
            return url
        except sa.exc.SQLAlchemyError as exc:  # a role the server refuses: try the next one
            errors.append(f"{user}: {type(exc).__name__}")
        finally:
            eng.dispose()
    pytest.skip(f"PostgreSQL answers at 127.0.0.1:5432 but database 'test' refuses users postgres and root "
                f"({'; '.join(errors)})")


@pytest.fixture(scope="session")
def redis_url() -> str:
    """A live Redis URL (127.0.0.1:6379, db 0), or skip saying why."""
    if not _port_open(6379):
        pytest.skip("Redis does not answer at 127.0.0.1:6379")
    redis = pytest.importorskip("redis", reason="Redis tests need the redis client (the serve extra)")
    try:
        redis.Redis.from_url(REDIS_URL, socket_timeout=1).ping()
    except redis.RedisError as exc:
        pytest.skip(f"Redis at 127.0.0.1:6379 does not answer PING ({exc})")
    return REDIS_URL

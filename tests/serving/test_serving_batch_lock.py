"""One batch writer per table: a second job waits for the lock, then gives up with one line (exit 2);
leftovers of killed jobs are removed by the next job and by ``recforge batch --cleanup``; database
errors never print row data; a failed job leaves no new database file."""

from __future__ import annotations

import threading
import time

import pytest

pytest.importorskip("sqlalchemy")

import sqlalchemy as sa  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from recforge.cli.main import app as cli  # noqa: E402
from recforge.errors import DataError  # noqa: E402
from recforge.serving.batch import _with_database, cleanup_batch, run_batch  # noqa: E402
from recforge.serving.db import make_engine  # noqa: E402
from recforge.serving.locks import table_lock  # noqa: E402


def _held(url, table, seconds, release=None):
    """Hold the table's lock in another thread for ``seconds`` (or until ``release`` is set);
    returns once it is held."""
    ready = threading.Event()

    def hold():
        eng = make_engine(url)
        with table_lock(eng, table, 5):
            ready.set()
            if release is not None:
                release.wait(60)
            else:
                time.sleep(seconds)
        eng.dispose()

    t = threading.Thread(target=hold, daemon=True)
    t.start()
    assert ready.wait(10)
    return t


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request, tmp_path, table_name):
    if request.param == "sqlite":
        return str(tmp_path / "recs.db")
    url = request.getfixturevalue("pg_url")
    request.getfixturevalue("drop_tables").append(table_name)
    return url


def test_second_job_gives_up_after_the_lock_timeout(db, table_name, pop_model):
    t = _held(db, table_name, 2.0)
    t0 = time.monotonic()
    with pytest.raises(DataError, match="another batch job is writing table") as err:
        run_batch(pop_model, db, k=3, table=table_name, lock_timeout=0.5)
    assert 0.4 < time.monotonic() - t0 < 1.9 and "\n" not in str(err.value)
    t.join()


def test_second_job_waits_and_then_writes(db, table_name, pop_model):
    t = _held(db, table_name, 0.6)
    res = run_batch(pop_model, db, k=3, table=table_name, lock_timeout=10)
    assert res.n_rows == 3 * res.n_users > 0
    t.join()


def test_cli_second_job_exits_2_with_one_line(tmp_path, table_name, pop_model):
    model = tmp_path / "pop.npz"
    pop_model.save(model)
    db = str(tmp_path / "c.db")
    release = threading.Event()
    t = _held(db, table_name, 0, release)
    r = CliRunner().invoke(cli, ["batch", "--model-path", str(model), "--database", db, "--table", table_name,
                                 "--lock-timeout", "0.3", "--no-progress"])
    release.set()
    t.join()
    assert r.exit_code == 2 and "another batch job" in r.output and len(r.output.strip().splitlines()) <= 2, r.output


def test_leftovers_are_removed_by_cleanup_and_by_the_next_job(db, table_name, pop_model):
    eng = make_engine(db)
    leftover = f"{table_name}__s0123456789ab"
    with eng.begin() as conn:
        conn.exec_driver_sql(f'CREATE TABLE "{leftover}" (x INTEGER)')
    assert cleanup_batch(db, table=table_name) == [leftover]
    assert leftover not in sa.inspect(eng).get_table_names()
    with eng.begin() as conn:
        conn.exec_driver_sql(f'CREATE TABLE "{leftover}" (x INTEGER)')
    run_batch(pop_model, db, k=2, table=table_name)
    names = sa.inspect(eng).get_table_names()
    assert leftover not in names and table_name in names
    eng.dispose()


def test_cli_cleanup(tmp_path, table_name):
    db = str(tmp_path / "c.db")
    eng = make_engine(db)
    with eng.begin() as conn:
        conn.exec_driver_sql(f'CREATE TABLE "{table_name}__o0123456789ab" (x INTEGER)')
    eng.dispose()
    r = CliRunner().invoke(cli, ["batch", "--cleanup", "--database", db, "--table", table_name])
    assert r.exit_code == 0 and "dropped 1 leftover" in r.output, r.output


def test_database_errors_never_print_row_data(tmp_path):
    db = str(tmp_path / "e.db")

    def job(engine):
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE t (k TEXT PRIMARY KEY)")
            conn.execute(sa.text("INSERT INTO t VALUES (:k)"), [{"k": "secret-row-value"}, {"k": "secret-row-value"}])

    with pytest.raises(DataError) as err:
        _with_database(db, "t", job)
    msg = str(err.value)
    assert "IntegrityError" in msg and "secret-row-value" not in msg and "\n" not in msg
    assert not (tmp_path / "e.db").exists()  # the failed job's new database file is gone


def test_existing_database_file_is_kept_on_failure(tmp_path, pop_model, table_name):
    db = str(tmp_path / "keep.db")
    run_batch(pop_model, db, k=2, table=table_name)

    def job(engine):
        raise DataError("boom")

    with pytest.raises(DataError):
        _with_database(db, table_name, job)
    assert (tmp_path / "keep.db").exists()

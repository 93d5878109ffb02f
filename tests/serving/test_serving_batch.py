"""The batch job against real SQLite files and a real PostgreSQL server: rows, atomic swap,
failed runs, idempotence, concurrent readers, bound parameters."""

from __future__ import annotations

import pytest

pytest.importorskip("faiss")
pytest.importorskip("sqlalchemy")

import threading  # noqa: E402
from datetime import datetime  # noqa: E402

import numpy as np  # noqa: E402
import sqlalchemy as sa  # noqa: E402

from recforge.errors import ConfigError  # noqa: E402
from recforge.serving import Pipeline  # noqa: E402
from recforge.serving.batch import model_version, run_batch  # noqa: E402
from recforge.serving.db import (  # noqa: E402
    RecommendationReader,
    check_table_name,
    drop_leftover_staging,
    make_engine,
    normalize_url,
    write_recommendations,
)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.services)])
def db(request, tmp_path, table_name):
    """(url, table) on a SQLite file and on PostgreSQL (skipped when it does not answer)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'recs.db'}", table_name
        return
    url = request.getfixturevalue("pg_url")
    names = request.getfixturevalue("drop_tables")
    names.append(table_name)
    yield url, table_name


def read_all(url, table):
    eng = make_engine(url)
    with eng.connect() as conn:
        t = sa.Table(table, sa.MetaData(), autoload_with=conn)
        rows = conn.execute(sa.select(t.c.user_id, t.c.rank, t.c.item_id, t.c.score, t.c.model_version,
                                      t.c.created_at).order_by(t.c.user_id, t.c.rank)).all()
        names = sa.inspect(conn).get_table_names()
    eng.dispose()
    return rows, names


def test_rows_match_the_model(db, ials_model):
    url, table = db
    res = run_batch(ials_model, url, k=4, table=table, batch_size=7, version="v1")
    assert (res.n_users, res.n_rows) == (60, 240)
    rows, names = read_all(url, table)
    assert len(rows) == 240
    assert not [n for n in names if n.startswith(f"{table}__")]  # no staging table left
    ids, scores = ials_model.recommend(np.arange(1, 61), 4)
    for r in rows:
        u, rank, item, score, ver, created = r
        assert item == ids[u - 1, rank - 1]
        assert score == pytest.approx(scores[u - 1, rank - 1], rel=1e-6)
        assert ver == "v1"
        assert isinstance(created, datetime)
    reader = RecommendationReader(make_engine(url), table)
    items, sc, ver = reader.get("7", 3)
    assert items == ids[6, :3].tolist() and ver == "v1"
    assert reader.get("no such user", 3) == ([], [], None)
    assert reader.get("1 OR 1=1", 3) == ([], [], None)


def test_failed_run_keeps_previous_set_and_rerun_is_idempotent(db, ials_model):
    url, table = db
    run_batch(ials_model, url, k=3, table=table, version="good")
    before, _ = read_all(url, table)
    eng = make_engine(url)

    def exploding():
        yield [(1, 1, 1000, 0.5)]
        raise RuntimeError("scoring crashed")

    with pytest.raises(RuntimeError, match="scoring crashed"):
        write_recommendations(eng, exploding(), table=table, model_version="bad", user_kind="i", item_kind="i")
    # a duplicate key inside the staging table fails at insert time; the live table must survive
    with pytest.raises(sa.exc.IntegrityError):
        write_recommendations(eng, [[(1, 1, 1000, 0.5), (1, 1, 1001, 0.4)]], table=table, model_version="dup",
                              user_kind="i", item_kind="i")
    eng.dispose()
    after, names = read_all(url, table)
    assert after == before
    assert not [n for n in names if n.startswith(f"{table}__")]
    run_batch(ials_model, url, k=3, table=table, version="good")
    again, names = read_all(url, table)
    strip = lambda rows: [r[:5] for r in rows]  # noqa: E731 - created_at is the run's time
    assert strip(again) == strip(before)
    assert [n for n in names if n == table or n.startswith(f"{table}__")] == [table]


def test_readers_see_old_or_new_set_never_a_mix(db, ials_model):
    url, table = db
    run_batch(ials_model, url, k=2, table=table, version="a")
    eng = make_engine(url)
    seen: set[tuple[int, int]] = set()
    errors: list[Exception] = []
    stop = threading.Event()

    def reader():
        while not stop.is_set():
            try:
                with eng.connect() as conn:
                    n = conn.execute(sa.text(f'SELECT COUNT(*), COUNT(DISTINCT model_version) FROM "{table}"')).one()
                seen.add((int(n[0]), int(n[1])))
            except Exception as exc:  # noqa: BLE001
                errors.append(exc)

    t = threading.Thread(target=reader)
    t.start()
    try:
        for j in range(4):
            run_batch(ials_model, url, k=5 if j % 2 == 0 else 2, table=table, version=f"r{j}", batch_size=20)
    finally:
        stop.set()
        t.join()
        eng.dispose()
    assert not errors, errors[:1]
    assert seen <= {(120, 1), (300, 1)}
    assert (300, 1) in seen or (120, 1) in seen


def test_pipeline_source_and_string_ids(tmp_path, table_name, clustered_data):
    from recforge.config import FitOptions
    from recforge.models.factorization.als import ImplicitALS
    from recforge.testing.datasets import toy_ratings

    data = toy_ratings(n_users=12, n_items=10, string_ids=True).to_implicit()
    m = ImplicitALS(embedding_size=4, epochs=3).fit(data, FitOptions(seed=0, threads=1))
    url = str(tmp_path / "s.db")  # a bare path is a SQLite file
    res = run_batch(Pipeline(m, index={"kind": "exact"}), url, k=3, table=table_name)
    rows, _ = read_all(normalize_url(url), table_name)
    ids, _ = m.recommend(np.asarray(sorted(set(data.users.ids))), 3)
    assert res.n_rows == len(rows) == int((ids != "").sum())  # users with < 3 unseen items get shorter lists
    assert len(rows) > 24
    got = {(r[0], r[1]): r[2] for r in rows}
    assert got[("u0", 1)] == ids[0, 0]
    assert res.model_version == model_version(m)


def test_bad_inputs(tmp_path, ials_model):
    for name in ["recs; DROP TABLE x", "1abc", "a-b", "", "x" * 60]:
        with pytest.raises(ConfigError):
            check_table_name(name)
    with pytest.raises(ConfigError):
        run_batch(ials_model, tmp_path / "a.db", table="bad name")
    with pytest.raises(ConfigError):
        run_batch(ials_model, tmp_path / "a.db", k=0)
    assert normalize_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_url(None) == "sqlite:///recommendations.db"


def test_leftover_staging_tables_are_cleaned(tmp_path, ials_model):
    url = f"sqlite:///{tmp_path / 'c.db'}"
    eng = make_engine(url)
    with eng.begin() as conn:
        conn.exec_driver_sql('CREATE TABLE "recs__s0123456789ab" (x INTEGER)')
    assert drop_leftover_staging(eng, "recs") == ["recs__s0123456789ab"]
    assert sa.inspect(eng).get_table_names() == []
    eng.dispose()


def test_run_batch_drops_what_a_killed_run_left(tmp_path, ials_model):
    url = f"sqlite:///{tmp_path / 'k.db'}"
    eng = make_engine(url)
    with eng.begin() as conn:
        conn.exec_driver_sql('CREATE TABLE "recs__sdeadbeef0000" (x INTEGER)')
        conn.exec_driver_sql('CREATE TABLE "recs_other" (x INTEGER)')
    run_batch(ials_model, url, k=2, table="recs")
    assert sorted(sa.inspect(eng).get_table_names()) == ["recforge_runs", "recs", "recs_other"]
    eng.dispose()

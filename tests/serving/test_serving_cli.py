"""``batch`` and ``serve`` registered on a Typer app (as recforge.cli.main does)."""

from __future__ import annotations

import pytest

pytest.importorskip("faiss")
pytest.importorskip("sqlalchemy")

import sqlalchemy as sa  # noqa: E402
import typer  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from recforge.cli.serve_cmds import register  # noqa: E402
from recforge.serving.db import make_engine  # noqa: E402


def app() -> typer.Typer:
    a = typer.Typer()
    register(a)
    return a


def test_batch_command_writes_the_table(tmp_path, ials_model):
    path = tmp_path / "m.npz"
    ials_model.save(path)
    db = tmp_path / "out.db"
    res = CliRunner().invoke(app(), ["batch", "--model-path", str(path), "--database", str(db), "--k", "3",
                                     "--no-progress", "--version", "v9"])
    assert res.exit_code == 0, res.output
    assert "wrote 180 rows for 60 users into recommendations (model_version v9" in res.output
    eng = make_engine(db)
    with eng.connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(DISTINCT user_id), MAX(rank) FROM recommendations")).one() == (60, 3)
    eng.dispose()


def test_batch_command_errors_are_one_line(tmp_path, ials_model):
    path = tmp_path / "m.npz"
    ials_model.save(path)
    res = CliRunner().invoke(app(), ["batch", "--model-path", str(path), "--database", str(tmp_path / "x.db"),
                                     "--table", "bad-name", "--no-progress"])
    assert res.exit_code == 2 and "table name 'bad-name'" in res.output
    res = CliRunner().invoke(app(), ["serve", "--config", str(tmp_path / "missing.toml")])
    assert res.exit_code == 2 and "no such config file" in res.output


def test_batch_command_fits_first_and_uses_a_pipeline_file(tmp_path, clustered_data):
    csv = tmp_path / "log.csv"
    clustered_data.to_dataframe()[["user_id", "item_id"]].to_csv(csv, index=False)
    pipe = tmp_path / "p.yaml"
    pipe.write_text("retrieval: {kind: popularity}\npostprocess:\n  - {kind: drop-seen}\n  - {kind: block, items: [1000]}\n")
    db = tmp_path / "fit.db"
    res = CliRunner().invoke(app(), ["batch", "--model", "popularity", "--dataset", str(csv), "--database", str(db),
                                     "--k", "2", "--pipeline", str(pipe), "--no-progress"])
    assert res.exit_code == 0, res.output
    eng = make_engine(db)
    with eng.connect() as conn:
        items = conn.execute(sa.text("SELECT DISTINCT item_id FROM recommendations")).scalars().all()
        version = conn.execute(sa.text("SELECT DISTINCT model_version FROM recommendations")).scalars().all()
    eng.dispose()
    assert 1000 not in items and len(items) >= 2
    assert len(version) == 1 and version[0].startswith("popularity-")


def test_serve_workers_need_redis(tmp_path, ials_model):
    path = tmp_path / "m.npz"
    ials_model.save(path)
    res = CliRunner().invoke(app(), ["serve", "--model-path", str(path), "--database", str(tmp_path / "w.db"),
                                     "--workers", "2"])
    assert res.exit_code == 2 and "need a shared history: set redis" in res.output

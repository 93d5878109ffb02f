"""End to end: train a model with the CLI, build its index, run the batch job into a database,
start the real service (uvicorn on a free loopback port), ask for recommendations over HTTP,
post click events and see the next response follow them. SQLite always; PostgreSQL when one
answers at 127.0.0.1:5432 (the ``pg_url`` fixture of tests/conftest.py)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("faiss")
sa = pytest.importorskip("sqlalchemy")

pytestmark = pytest.mark.slow

N_CLUSTERS, SIZE = 4, 25  # items 1000..1099; cluster c holds items 1000 + 25c .. 1000 + 25c + 24
KEY = "e2e-key"


def write_dataset(path: Path) -> None:
    """Users in 4 disjoint taste groups (user u likes 8 of the 25 items of cluster u % 4)."""
    rng = np.random.default_rng(0)
    rows = []
    for u in range(120):
        c = u % N_CLUSTERS
        for i in rng.choice(SIZE, 8, replace=False):
            rows.append((u + 1, 1000 + c * SIZE + int(i)))
    pd.DataFrame(rows, columns=["user_id", "item_id"]).to_csv(path, index=False)


def cluster_of(item: int) -> int:
    return (item - 1000) // SIZE


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    res = subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 0, f"{args}: {res.stdout}\n{res.stderr}"
    return res


def http(method: str, url: str, body: dict | None = None, key: str | None = None) -> tuple[int, dict]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("content-type", "application/json")
    if key:
        req.add_header("X-API-Key", key)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.services)])
def database(request, tmp_path):
    suffix = uuid.uuid4().hex[:8]
    tables = (f"recs_{suffix}", f"events_{suffix}")
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'serving.db'}", tables
        return
    url = request.getfixturevalue("pg_url")  # skips, saying why, when PostgreSQL does not answer
    yield url, tables
    from recforge.serving.db import make_engine

    eng = make_engine(url)
    with eng.begin() as conn:
        for t in sa.inspect(conn).get_table_names():
            if t.startswith(tables[0]) or t == tables[1]:
                conn.exec_driver_sql(f'DROP TABLE IF EXISTS "{t}"')
    eng.dispose()


def test_train_batch_serve_click(tmp_path, database):
    url, (recs_table, events_table) = database
    env = {**os.environ, "RECFORGE_API_KEY": KEY, "PYTHONUNBUFFERED": "1"}
    data = tmp_path / "clicks.csv"
    write_dataset(data)
    model = tmp_path / "ials.npz"
    # 1. train, 2. batch job with an HNSW index from a pipeline file
    cli("recforge.cli.main", "train", "--model", "ials", "--dataset", str(data), "--output", str(model),
        "--set", "embedding_size=16", "--set", "epochs=10", "--set", "alpha=5.0", "--set", "reg=0.1", env=env)
    pipe = tmp_path / "pipeline.toml"
    pipe.write_text('[retrieval]\nkind = "ann"\nindex = "hnsw"\nn_candidates = 60\n'
                    '[[postprocess]]\nkind = "drop-seen"\n')
    out = cli("recforge.cli.main", "batch", "--model-path", str(model), "--database", url, "--table", recs_table,
              "--k", "5", "--pipeline", str(pipe), "--no-progress", env=env)
    assert "wrote 600 rows for 120 users" in out.stdout

    from recforge.models.base import Recommender
    from recforge.serving import Pipeline
    from recforge.serving.db import make_engine

    fitted = Recommender.load(model)
    index = Pipeline.from_config(pipe, fitted).index  # the index the service builds, built here too
    assert index.config.kind == "hnsw" and len(index) == 100
    eng = make_engine(url)
    with eng.connect() as conn:
        batch_rows = conn.execute(sa.text(f'SELECT item_id FROM "{recs_table}" WHERE user_id = :u ORDER BY rank'),
                                  {"u": 6}).scalars().all()
    assert len(batch_rows) == 5 and all(cluster_of(i) == 1 for i in batch_rows)  # user 6 is in cluster 1

    # 3. the real server on a free loopback port
    port = free_port()
    cfg = tmp_path / "serve.toml"
    cfg.write_text(f'[serve]\nmodel = "{model}"\ndatabase = "{url}"\nrecommendations_table = "{recs_table}"\n'
                   f'events_table = "{events_table}"\npipeline = "{pipe}"\n')
    proc = subprocess.Popen([sys.executable, "-m", "recforge.cli.main", "serve", "--config", str(cfg),
                             "--port", str(port), "--log-level", "warning"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            try:
                code, health = http("GET", f"{base}/healthz")
                if code == 200:
                    break
            except (urllib.error.URLError, ConnectionError):
                pass
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            assert time.time() < deadline, "the service did not come up within 60 s"
            time.sleep(0.25)
        assert health["model_loaded"] and health["pipeline"]["index"] == "hnsw"

        # a known user: the live answer equals the batch table's (same model, same pipeline)
        code, body = http("GET", f"{base}/v1/users/6/recommendations?k=5")
        assert code == 200 and body["source"] == "ann"  # the configured HNSW index answered
        assert [x["item_id"] for x in body["items"]] == batch_rows

        # a new user starts on popular items, then follows their clicks into cluster 2
        code, cold = http("GET", f"{base}/v1/users/visitor-{port}/recommendations?k=5")
        assert code == 200 and cold["source"] == "fallback-popularity"
        clicks = [1050, 1051, 1052]
        assert http("POST", f"{base}/v1/events", {"user_id": f"visitor-{port}", "item_id": 1050, "type": "click"})[0] == 401
        for item in clicks:
            code, ack = http("POST", f"{base}/v1/events", {"user_id": f"visitor-{port}", "item_id": item,
                                                           "type": "click"}, key=KEY)
            assert code == 201, ack
        code, warm = http("GET", f"{base}/v1/users/visitor-{port}/recommendations?k=5")
        got = [x["item_id"] for x in warm["items"]]
        assert warm["source"] == "ann" and got != [x["item_id"] for x in cold["items"]]
        assert all(cluster_of(i) == 2 for i in got) and not set(clicks) & set(got)

        # a known user from cluster 1 clicks through cluster 3: the next list moves there
        for item in range(1075, 1087):
            assert http("POST", f"{base}/v1/events", {"user_id": "6", "item_id": item, "type": "click"}, key=KEY)[0] == 201
        code, moved = http("GET", f"{base}/v1/users/6/recommendations?k=5")
        after = [x["item_id"] for x in moved["items"]]
        assert after != batch_rows and sum(cluster_of(i) == 3 for i in after) >= 3

        # an unknown item is rejected and stores nothing
        code, err = http("POST", f"{base}/v1/events", {"user_id": "6", "item_id": 5, "type": "click"}, key=KEY)
        assert code == 422 and "unknown item id" in json.dumps(err)
        code, similar = http("GET", f"{base}/v1/items/1000/similar?k=3")
        assert code == 200 and all(cluster_of(x["item_id"]) == 0 for x in similar["items"])
        with urllib.request.urlopen(f"{base}/metrics", timeout=10) as r:
            assert b"recforge_events_total" in r.read()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
    with eng.connect() as conn:
        n = conn.execute(sa.text(f'SELECT COUNT(*) FROM "{events_table}"')).scalar_one()
    eng.dispose()
    assert n == 3 + 12

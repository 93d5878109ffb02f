"""The service under bad input and failing dependencies: 422 with a truncated echo (never a 500),
liveness and readiness, refusing to start on a broken model, reloads confined to the models
folder and failing with one line, history rebuilt from the events table, one /metrics for
several worker processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
import warnings
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("sqlalchemy")
pytest.importorskip("prometheus_client")

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient  # noqa: E402

from typer.testing import CliRunner  # noqa: E402

from recforge.cli.main import app as cli  # noqa: E402
from recforge.errors import DataError  # noqa: E402
from recforge.serving.app import create_app  # noqa: E402

KEY = {"X-API-Key": "k"}


@pytest.fixture
def model_dir(tmp_path, ials_model) -> Path:
    d = tmp_path / "models"
    d.mkdir()
    ials_model.save(d / "ials.npz")
    return d


def client(tmp_path, model_dir, **kw) -> TestClient:
    cfg = {"model": str(model_dir / "ials.npz"), "database": str(tmp_path / "svc.db"), "api_key": "k", **kw}
    return TestClient(create_app(cfg))


def _post_raw(c: TestClient, body: str):
    return c.post("/v1/events", content=body.encode(), headers={**KEY, "Content-Type": "application/json"})


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_non_finite_event_values_are_422(tmp_path, model_dir, value):
    c = client(tmp_path, model_dir)
    r = _post_raw(c, f'{{"user_id": 1, "item_id": 1000, "type": "rating", "value": {value}}}')
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"] == ["body", "value"]


@pytest.mark.parametrize("ts", ["1900-01-01T00:00:00Z", "3000-01-01T00:00:00Z", "-99999999999"])
def test_out_of_range_timestamps_are_422(tmp_path, model_dir, ts):
    c = client(tmp_path, model_dir)
    r = c.post("/v1/events", json={"user_id": 1, "item_id": 1000, "type": "click", "timestamp": ts}, headers=KEY)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == "timestamp", r.text


def test_oversized_ids_are_422_with_a_truncated_echo(tmp_path, model_dir):
    c = client(tmp_path, model_dir, max_body_bytes=64 * 1024)
    long_id = "u" * 10_000
    r = c.post("/v1/events", json={"user_id": long_id, "item_id": 1000, "type": "click"}, headers=KEY)
    assert r.status_code == 422 and len(r.content) < 1000 and "10000 characters" in r.text
    r = c.get(f"/v1/users/{long_id}/recommendations")
    assert r.status_code == 422 and len(r.content) < 1000


def test_liveness_and_readiness(tmp_path, model_dir):
    c = client(tmp_path, model_dir)
    assert c.get("/healthz").json()["status"] == "alive"
    r = c.get("/readyz")
    assert r.status_code == 200 and r.json()["checks"] == {"model": "ok", "database": "ok", "history": "ok"}


def test_unreachable_redis_is_not_ready(tmp_path, model_dir):
    c = client(tmp_path, model_dir, redis="redis://127.0.0.1:1/0")  # nothing listens on port 1
    assert c.get("/healthz").status_code == 200  # alive...
    r = c.get("/readyz")  # ...but not ready
    assert r.status_code == 503 and r.json()["checks"]["history"] == "redis unreachable"


def test_reachable_redis_is_ready(tmp_path, model_dir, redis_url):
    c = client(tmp_path, model_dir, redis=redis_url, redis_prefix=f"t-{uuid.uuid4().hex}:")
    assert c.get("/readyz").status_code == 200


def test_unreachable_database_is_not_ready(tmp_path, model_dir):
    import sqlalchemy as sa

    c = client(tmp_path, model_dir)
    st = c.app.state.recforge
    st.engine.dispose()
    (tmp_path / "a-file").write_text("")
    st.engine = sa.create_engine("sqlite:///" + str(tmp_path / "a-file" / "x.db"))  # SQLite cannot open it
    r = c.get("/readyz")
    assert r.status_code == 503 and r.json()["checks"]["database"] == "unreachable"


def test_missing_or_corrupt_model_refuses_to_start(tmp_path, model_dir):
    with pytest.raises(DataError, match="no such model file"):
        create_app({"model": str(model_dir / "ialz.npz"), "database": str(tmp_path / "a.db")})
    (model_dir / "broken.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="not a recforge model file"):
        create_app({"model": str(model_dir / "broken.npz"), "database": str(tmp_path / "a.db")})
    r = CliRunner().invoke(cli, ["serve", "--model-path", str(model_dir / "ialz.npz"),
                                 "--database", str(tmp_path / "a.db")])
    assert r.exit_code == 2 and "no such model file" in r.output and "Traceback" not in r.output
    r = CliRunner().invoke(cli, ["serve", "--database", str(tmp_path / "a.db")])
    assert r.exit_code == 2 and "--allow-empty" in r.output


def test_reload_is_confined_and_fails_with_one_line(tmp_path, model_dir):
    c = client(tmp_path, model_dir)
    v1 = c.get("/healthz").json()["model_version"]
    outside = [c.post("/v1/admin/reload", json={"model_path": p}, headers=KEY)
               for p in ("/etc/passwd", "/no/such/file.npz", "../svc.db", str(tmp_path / "elsewhere.npz"))]
    assert {r.status_code for r in outside} == {403}
    assert len({r.text for r in outside}) == 1  # the same answer whether the path exists or not
    (model_dir / "corrupt.npz").write_bytes(b"PK\x03\x04 truncated")
    r = c.post("/v1/admin/reload", json={"model_path": "corrupt.npz"}, headers=KEY)
    assert r.status_code == 422 and "corrupt.npz" in r.json()["detail"] and "\n" not in r.json()["detail"]
    assert c.get("/healthz").json()["model_version"] == v1  # the old version keeps serving
    last = c.get("/readyz").json()["last_reload"]
    assert last["outcome"] == "error" and "corrupt.npz" in last["error"]
    assert c.post("/v1/admin/reload", json={"model_path": "ials.npz"}, headers=KEY).status_code == 200
    assert c.get("/readyz").json()["last_reload"]["outcome"] == "ok"


def test_history_is_rebuilt_from_the_events_table(tmp_path, model_dir):
    a = client(tmp_path, model_dir, history_size=3)
    for item in (1000, 1001, 1002, 1003, 1004):
        assert a.post("/v1/events", json={"user_id": "burst", "item_id": item, "type": "click"},
                      headers=KEY).status_code == 201
    want = a.app.state.recforge.recent("burst")
    b = client(tmp_path, model_dir, history_size=3)  # a restart: same database, fresh process state
    assert b.app.state.recforge.recent("burst") == want == [("1004", 1.0), ("1003", 1.0), ("1002", 1.0)]
    assert b.get("/v1/users/burst/recommendations?k=5").json() == a.get("/v1/users/burst/recommendations?k=5").json()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_metrics_sum_over_worker_processes(tmp_path, model_dir, redis_url):
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "recforge.cli.main", "serve", "--model-path", str(model_dir / "ials.npz"),
         "--database", str(tmp_path / "w.db"), "--redis", redis_url, "--port", str(port), "--workers", "2",
         "--log-level", "warning", "--set", f"serve.redis_prefix=t-{uuid.uuid4().hex}:"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while True:
            try:
                if urllib.request.urlopen(f"{base}/readyz", timeout=2).status == 200:
                    break
            except OSError:
                pass
            assert proc.poll() is None and time.time() < deadline, "the service did not start"
            time.sleep(0.3)
        n = 60
        for _ in range(n):  # new connections: the kernel spreads them over both workers
            assert urllib.request.urlopen(f"{base}/v1/users/1/recommendations?k=3", timeout=5).status == 200
        line = 'recforge_http_requests_total{method="GET",route="/v1/users/{user_id}/recommendations",status="200"}'
        for _ in range(4):  # every scrape, whichever worker answers it, sees all requests
            text = urllib.request.urlopen(f"{base}/metrics", timeout=5).read().decode()
            got = [float(x.split()[-1]) for x in text.splitlines() if x.startswith(line)]
            assert got == [float(n)], text[:2000]
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        out = proc.stdout.read().decode() if proc.stdout else ""
    assert "Traceback" not in out, out[-3000:]

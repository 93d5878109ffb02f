"""End to end over real HTTP: train a model, build the index, run the batch job into SQLite (and
PostgreSQL when one answers), start uvicorn on a free loopback port, request recommendations,
post click events and see the next answer follow them; a new user's events routed to the
cold-start content model."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from typing import Any

import pytest

pytest.importorskip("faiss")
pytest.importorskip("sqlalchemy")
pytest.importorskip("fastapi")
uvicorn = pytest.importorskip("uvicorn")

from recforge.config import FitOptions  # noqa: E402
from recforge.serving.app import create_app  # noqa: E402
from recforge.serving.batch import run_batch  # noqa: E402

KEY = "e2e-key"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def live_server(cfg: dict[str, Any]):
    """``create_app(cfg)`` under a real uvicorn server on 127.0.0.1 (in a thread); yields the base URL."""
    app = create_app({"api_key": KEY, **cfg})
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not server.started:
        if time.time() > deadline or not thread.is_alive():
            server.should_exit = True
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        app.state.recforge.close()


def get(url: str) -> tuple[int, Any, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            raw = r.read()
            return r.status, json.loads(raw), raw
    except urllib.error.HTTPError as e:
        raw = e.read()
        return e.code, json.loads(raw), raw


def post_event(base: str, user: Any, item: Any, kind: str = "click", value: float | None = None) -> int:
    body = {"user_id": user, "item_id": item, "type": kind}
    if value is not None:
        body["value"] = value
    req = urllib.request.Request(f"{base}/v1/events", json.dumps(body).encode(), method="POST",
                                 headers={"content-type": "application/json", "X-API-Key": KEY})
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status


def genre(data, item) -> str:
    return data.item_features.loc[item, "genres"].split("|")[0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, clustered_data):
    """A freshly trained implicit-ALS model file (index built when the service loads it)."""
    from recforge.models.factorization.als import ImplicitALS

    model = ImplicitALS(embedding_size=8, epochs=10, reg=0.1, alpha=5.0).fit(clustered_data, FitOptions(seed=0, threads=1))
    path = tmp_path_factory.mktemp("e2e") / "ials.npz"
    model.save(path)
    return model, path


def _scenario(base: str, data, model) -> None:
    # user 3 likes g2; clicks on four g0 items must pull g0 items into the next list
    status, body, _ = get(f"{base}/v1/users/3/recommendations?k=5")
    assert status == 200 and body["source"] == "model" and body["k"] == 5
    want, _ = model.recommend(3, 5)
    assert [x["item_id"] for x in body["items"]] == want.tolist()
    before = [x["item_id"] for x in body["items"]]
    assert all(genre(data, i) == "g2" for i in before[:4])  # user 3 has 4 unseen g2 items
    for item in (1000, 1001, 1002, 1003):
        assert post_event(base, 3, item) == 201
    status, body, _ = get(f"{base}/v1/users/3/recommendations?k=5")
    after = [x["item_id"] for x in body["items"]]
    assert status == 200 and after != before
    assert not {1000, 1001, 1002, 1003} & set(after)
    assert sum(genre(data, i) == "g0" for i in after) >= 2, after
    # the fast path and FastAPI's route (taken when another query parameter is present) agree
    _, fast, raw_fast = get(f"{base}/v1/users/3/recommendations?k=5")
    _, slow, raw_slow = get(f"{base}/v1/users/3/recommendations?k=5&trace=1")
    assert fast == slow and raw_fast == raw_slow
    assert get(f"{base}/v1/users/3/recommendations?k=0")[0] == 422
    status, metrics, _ = 200, urllib.request.urlopen(f"{base}/metrics").read().decode(), b""
    assert 'recforge_http_requests_total{method="GET",route="/v1/users/{user_id}/recommendations",status="200"}' in metrics


def test_train_batch_serve_click_sqlite(tmp_path, trained, clustered_data):
    model, path = trained
    db = tmp_path / "e2e.db"
    res = run_batch(model, str(db), k=5, version="v-e2e", progress=False)
    assert res.n_users == 60
    with live_server({"model": str(path), "database": str(db)}) as base:
        _scenario(base, clustered_data, model)
    # no model: the precomputed batch table answers
    with live_server({"model": None, "database": str(db)}) as base:
        status, body, _ = get(f"{base}/v1/users/3/recommendations?k=5")
        assert status == 200 and body["source"] == "batch" and body["model_version"] == "v-e2e"
        assert [x["item_id"] for x in body["items"]] == model.recommend(3, 5)[0].tolist()


def test_train_batch_serve_click_postgres(pg_url, table_name, drop_tables, trained, clustered_data):
    model, path = trained
    drop_tables += [table_name, f"{table_name}_events"]
    run_batch(model, pg_url, k=5, table=table_name, version="v-pg", progress=False)
    cfg = {"model": str(path), "database": pg_url, "recommendations_table": table_name,
           "events_table": f"{table_name}_events"}
    with live_server(cfg) as base:
        _scenario(base, clustered_data, model)
    with live_server({**cfg, "model": None}) as base:
        status, body, _ = get(f"{base}/v1/users/3/recommendations?k=5")
        assert status == 200 and body["source"] == "batch" and body["model_version"] == "v-pg"


def test_new_user_events_go_to_the_cold_start_model(tmp_path, trained, clustered_data):
    from recforge.models.content.content import ContentBased

    _, path = trained
    cold = ContentBased(columns=("genres",)).fit(clustered_data, FitOptions(seed=0))
    cold.save(tmp_path / "content.npz")
    cfg = {"model": str(path), "database": str(tmp_path / "cold.db"), "cold_model": str(tmp_path / "content.npz"),
           "pipeline": {"cold_start": {"threshold": 5}}}
    with live_server(cfg) as base:
        status, body, _ = get(f"{base}/v1/users/newcomer/recommendations?k=5")
        assert status == 200 and body["source"] == "fallback-popularity"
        for item, value in ((1011, 5.0), (1013, 4.0), (1017, 5.0), (1019, 4.0)):  # four g1 ratings
            assert post_event(base, "newcomer", item, "rating", value) == 201
        status, body, _ = get(f"{base}/v1/users/newcomer/recommendations?k=5")
        got = [x["item_id"] for x in body["items"]]
        assert status == 200 and body["source"] == "cold-start", body
        assert {genre(clustered_data, i) for i in got} == {"g1"}
        assert not {1011, 1013, 1017, 1019} & set(got)
        status, health, _ = get(f"{base}/healthz")
        assert health["pipeline"]["cold_start"] == {"model": "content", "threshold": 5}
        # a warm user still gets the factor model
        assert get(f"{base}/v1/users/5/recommendations?k=5")[1]["source"] == "model"

"""The FastAPI service in process (TestClient): endpoints, validation, auth, limits, events,
fallbacks, hot reload, metrics; Redis-backed history shared by two service instances."""

from __future__ import annotations

import pytest

pytest.importorskip("faiss")
pytest.importorskip("sqlalchemy")

import threading  # noqa: E402
import uuid  # noqa: E402

import numpy as np  # noqa: E402
import sqlalchemy as sa  # noqa: E402

pytest.importorskip("fastapi")
pytest.importorskip("prometheus_client")

import warnings  # noqa: E402

with warnings.catch_warnings():  # starlette's note about a future httpx rename
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient  # noqa: E402

from recforge.serving.app import create_app, render_recommendations  # noqa: E402
from recforge.serving.batch import run_batch  # noqa: E402
from recforge.serving.config import ServiceConfig, read_service_config  # noqa: E402
from recforge.serving.db import make_engine  # noqa: E402
from recforge.serving.history import History, MemoryHistory  # noqa: E402

KEY = {"X-API-Key": "s3cret"}


@pytest.fixture(scope="module")
def model_file(tmp_path_factory, ials_model):
    path = tmp_path_factory.mktemp("model") / "ials.npz"
    ials_model.save(path)
    return path


def make_client(tmp_path, model_file, **kw):
    cfg = {"model": str(model_file), "database": str(tmp_path / "svc.db"), "api_key": "s3cret", **kw}
    return TestClient(create_app(cfg))


def items_of(resp):
    assert resp.status_code == 200, resp.text
    return [x["item_id"] for x in resp.json()["items"]]


def test_recommendations_match_the_model(tmp_path, model_file, ials_model):
    c = make_client(tmp_path, model_file)
    r = c.get("/v1/users/3/recommendations", params={"k": 5})
    body = r.json()
    assert body["source"] == "model" and body["k"] == 5 and body["model_version"].startswith("ials-")
    want, _ = ials_model.recommend(3, 5)
    assert items_of(r) == want.tolist()
    assert len(items_of(c.get("/v1/users/3/recommendations"))) == 10  # default k


def test_route_and_shortcut_render_the_same_bytes(tmp_path, model_file):
    c = make_client(tmp_path, model_file)
    st = c.app.state.recforge
    for item in (1030, 1031):
        assert c.post("/v1/events", json={"user_id": "3", "item_id": item, "type": "click"}, headers=KEY).status_code == 201
    fast = c.get("/v1/users/3/recommendations?k=5")  # answered by the middleware's shortcut
    slow = c.get("/v1/users/3/recommendations?k=5&debug=1")  # an extra parameter: FastAPI's route
    assert fast.status_code == slow.status_code == 200
    assert fast.content == slow.content
    assert fast.headers["content-type"] == slow.headers["content-type"] == "application/json"
    want = render_recommendations(st.bundle, "3", 5, st.history.recent("3"))
    assert fast.content == want
    body = fast.json()
    assert body["k"] == 5 and body["source"] == "model" and not {1030, 1031} & set(items_of(fast))
    # both paths are counted under the route's name
    metrics = c.get("/metrics").text
    assert 'route="/v1/users/{user_id}/recommendations",status="200"} 2.0' in metrics


def test_rating_events_must_lie_on_the_training_scale(tmp_path):
    from recforge.config import FitOptions
    from recforge.models.baselines.bias import Bias
    from recforge.testing.datasets import toy_ratings

    path = tmp_path / "bias.npz"
    Bias().fit(toy_ratings(), FitOptions(seed=0)).save(path)  # ratings 1..5
    c = make_client(tmp_path, path)
    ok = {"user_id": "u", "item_id": 101, "type": "rating", "value": 4.5}
    assert c.post("/v1/events", json=ok, headers=KEY).status_code == 201
    r = c.post("/v1/events", json={**ok, "value": 7}, headers=KEY)
    assert r.status_code == 422 and "rating must be in [1, 5]" in r.text


def test_history_stores_follow_the_protocol():
    h = MemoryHistory(max_len=2)
    assert isinstance(h, History) and not h.blocking
    for item in ("a", "b", "c"):
        h.push("u", item, 2.0)
    assert h.recent("u") == [("c", 2.0), ("b", 2.0)]


def test_validation_errors_are_422_with_a_message(tmp_path, model_file):
    c = make_client(tmp_path, model_file)
    for q in ["k=0", "k=-1", "k=abc", "k=100000"]:
        r = c.get(f"/v1/users/3/recommendations?{q}")
        assert r.status_code == 422
        assert r.json()["detail"][0]["loc"] == ["query", "k"]
    assert c.get("/v1/users/" + "x" * 200 + "/recommendations").status_code == 422
    bad_events = [
        ({"user_id": "u", "item_id": 1000, "type": "purchase"}, "type"),
        ({"user_id": "u", "item_id": 1000}, "type"),
        ({"user_id": "", "item_id": 1000, "type": "click"}, "user_id"),
        ({"user_id": "u\n", "item_id": 1000, "type": "click"}, "user_id"),
        ({"user_id": True, "item_id": 1000, "type": "click"}, "user_id"),
        ({"user_id": "u", "item_id": 1000, "type": "rating"}, "value"),
        ({"user_id": "u", "item_id": 1000, "type": "click", "value": "NaN"}, "value"),
        ({"user_id": "u", "item_id": 1000, "type": "click", "timestamp": "yesterday"}, "timestamp"),
        ({"user_id": "u", "item_id": 1000, "type": "click", "extra": 1}, "extra"),
    ]
    for body, field in bad_events:
        r = c.post("/v1/events", json=body, headers=KEY)
        assert r.status_code == 422, body
        assert field in r.text
    r = c.post("/v1/events", content=b"{not json", headers={**KEY, "content-type": "application/json"})
    assert r.status_code == 422


def test_writes_need_the_key_and_body_size_is_limited(tmp_path, model_file):
    c = make_client(tmp_path, model_file, max_body_bytes=1024)
    ev = {"user_id": "u1", "item_id": 1000, "type": "click"}
    assert c.post("/v1/events", json=ev).status_code == 401
    assert c.post("/v1/events", json=ev, headers={"X-API-Key": "wrong"}).status_code == 401
    assert c.post("/v1/admin/reload", headers={"X-API-Key": "wrong"}).status_code == 401
    assert c.post("/v1/events", json=ev, headers=KEY).status_code == 201
    big = {**ev, "user_id": "u" * 100, "pad": "x" * 5000}
    assert c.post("/v1/events", json=big, headers=KEY).status_code == 413

    def chunks():  # no Content-Length: the streamed body is counted
        for _ in range(10):
            yield b"x" * 500

    assert c.post("/v1/events", content=chunks(), headers={**KEY, "content-type": "application/json"}).status_code == 413
    no_key = TestClient(create_app({"model": str(model_file), "database": str(tmp_path / "n.db")}))
    r = no_key.post("/v1/events", json=ev)
    assert r.status_code == 403 and "no API key" in r.json()["detail"]


def test_events_are_stored_and_unknown_items_rejected_without_harm(tmp_path, model_file):
    c = make_client(tmp_path, model_file)
    ok = c.post("/v1/events", json={"user_id": "alice", "item_id": "1005", "type": "click",
                                    "timestamp": "2024-01-02T03:04:05Z"}, headers=KEY)
    assert ok.status_code == 201 and ok.json()["event_id"] == 1
    assert c.post("/v1/events", json={"user_id": "alice", "item_id": 1006, "type": "rating", "value": 4.5},
                  headers=KEY).status_code == 201
    before = c.get("/v1/users/alice/recommendations?k=5").json()
    for item in ["99999", "1005'; DROP TABLE events; --", "-1"]:
        r = c.post("/v1/events", json={"user_id": "alice", "item_id": item, "type": "click"}, headers=KEY)
        assert r.status_code == 422 and "unknown item id" in r.text
    r = c.post("/v1/events", json={"user_id": "alice'; DROP TABLE events; --", "item_id": 1007, "type": "view"},
               headers=KEY)
    assert r.status_code == 201
    eng = make_engine(tmp_path / "svc.db")
    with eng.connect() as conn:
        rows = conn.execute(sa.text("SELECT user_id, item_id, type, value, event_time FROM events ORDER BY id")).all()
    eng.dispose()
    assert [(r[0], r[1], r[2], r[3]) for r in rows] == [
        ("alice", "1005", "click", None), ("alice", "1006", "rating", 4.5),
        ("alice'; DROP TABLE events; --", "1007", "view", None),
    ]
    assert str(rows[0][4]).startswith("2024-01-02 03:04:05")
    assert c.get("/v1/users/alice/recommendations?k=5").json() == before  # rejected events changed nothing


def test_clicks_change_the_next_response(tmp_path, model_file):
    c = make_client(tmp_path, model_file)
    cold = c.get("/v1/users/newcomer/recommendations?k=5").json()
    assert cold["source"] == "fallback-popularity"
    for item in (1030, 1031, 1032):
        assert c.post("/v1/events", json={"user_id": "newcomer", "item_id": item, "type": "click"},
                      headers=KEY).status_code == 201
    warm = c.get("/v1/users/newcomer/recommendations?k=5").json()
    assert warm["source"] == "model"
    got = [x["item_id"] for x in warm["items"]]
    assert all(1030 <= i < 1040 for i in got) and not {1030, 1031, 1032} & set(got)
    # a known user: clicked items leave the list, and the list moves towards the clicked cluster
    before = items_of(c.get("/v1/users/1/recommendations?k=5"))
    for item in range(1020, 1026):
        c.post("/v1/events", json={"user_id": "1", "item_id": item, "type": "like"}, headers=KEY)
    after = items_of(c.get("/v1/users/1/recommendations?k=5"))
    assert after != before
    assert sum(1020 <= i < 1030 for i in after) > sum(1020 <= i < 1030 for i in before)


def test_similar_items_endpoint(tmp_path, model_file, ials_model):
    c = make_client(tmp_path, model_file)
    want, _ = ials_model.similar_items(1000, 4)
    assert items_of(c.get("/v1/items/1000/similar?k=4")) == want.tolist()
    assert c.get("/v1/items/424242/similar").status_code == 404


def test_batch_table_answers_when_no_model_is_loaded(tmp_path, model_file, ials_model):
    db = tmp_path / "svc.db"
    run_batch(ials_model, db, k=6, version="batch-v")
    c = TestClient(create_app({"model": str(tmp_path / "missing.npz"), "database": str(db), "api_key": "s3cret",
                               "allow_empty": True, "models_dir": str(model_file.parent)}))
    h = c.get("/healthz").json()
    assert h["model_loaded"] is False and h["status"] == "alive" and "missing.npz" in h["load_error"]
    assert c.get("/readyz").status_code == 200  # allow_empty: the batch table is a legitimate answer
    r = c.get("/v1/users/4/recommendations?k=3").json()
    want, _ = ials_model.recommend(4, 3)
    assert r["source"] == "batch" and r["model_version"] == "batch-v"
    assert [x["item_id"] for x in r["items"]] == want.tolist()
    assert c.get("/v1/users/nobody/recommendations").status_code == 503
    assert c.post("/v1/events", json={"user_id": "4", "item_id": 1000, "type": "click"}, headers=KEY).status_code == 503
    # loading the model afterwards switches to live answers
    r = c.post("/v1/admin/reload", json={"model_path": str(model_file)}, headers=KEY)
    assert r.status_code == 200
    assert c.get("/v1/users/4/recommendations?k=3").json()["source"] == "model"


def test_hot_reload_drops_no_request(tmp_path, model_file, clustered_data):
    from recforge.config import FitOptions
    from recforge.models.factorization.als import ImplicitALS

    other = tmp_path / "v2.npz"
    ImplicitALS(embedding_size=6, epochs=4).fit(clustered_data, FitOptions(seed=1, threads=1)).save(other)
    import shutil

    model_file = shutil.copy(model_file, tmp_path / "ials.npz")  # reloads stay inside the models folder
    c = make_client(tmp_path, model_file)
    v1 = c.get("/healthz").json()["model_version"]
    codes: list[int] = []
    versions: set[str] = set()
    stop = threading.Event()

    def hammer():
        while not stop.is_set():
            r = c.get("/v1/users/2/recommendations?k=3")
            codes.append(r.status_code)
            versions.add(r.json().get("model_version"))

    t = threading.Thread(target=hammer)
    t.start()
    try:
        for path in (other, model_file, other):
            assert c.post("/v1/admin/reload", json={"model_path": str(path)}, headers=KEY).status_code == 200
    finally:
        stop.set()
        t.join()
    assert codes and set(codes) == {200}
    v2 = c.get("/healthz").json()["model_version"]
    assert v2 != v1 and v1 in versions
    bad = c.post("/v1/admin/reload", json={"model_path": str(tmp_path / "nope.npz")}, headers=KEY)
    assert bad.status_code == 422 and c.get("/healthz").json()["model_version"] == v2


def test_metrics_and_health(tmp_path, model_file):
    c = make_client(tmp_path, model_file)
    c.get("/v1/users/1/recommendations")
    c.get("/v1/users/zzz/recommendations")
    c.post("/v1/events", json={"user_id": "x", "item_id": 5, "type": "click"}, headers=KEY)
    h = c.get("/healthz").json()
    assert h["status"] == "alive" and h["pipeline"]["retrieval"] == "model" and h["history"] == "memory"
    text = c.get("/metrics").text
    assert 'recforge_http_requests_total{method="GET",route="/v1/users/{user_id}/recommendations",status="200"} 2.0' in text
    assert 'recforge_recommendations_total{source="fallback-popularity"} 1.0' in text
    assert 'recforge_events_rejected_total{reason="unknown-item"} 1.0' in text
    assert "recforge_http_request_seconds_bucket" in text and "recforge_model_loaded 1.0" in text


def test_service_config_file(tmp_path, model_file):
    cfg = tmp_path / "serve.toml"
    cfg.write_text(f'[serve]\nmodel = "{model_file}"\napi_key = "k"\ndefault_k = 3\n'
                   '[pipeline.retrieval]\nkind = "popularity"\n')
    sc = read_service_config(cfg, {"database": str(tmp_path / "x.db")})
    assert sc.default_k == 3 and sc.pipeline == {"retrieval": {"kind": "popularity"}}
    c = TestClient(create_app(sc))
    assert len(items_of(c.get("/v1/users/1/recommendations"))) == 3
    with pytest.raises(Exception, match="unknown serve option"):
        ServiceConfig.from_dict({"modle": "x"})


@pytest.mark.services
def test_redis_history_is_shared_between_services(tmp_path, model_file, redis_url):
    prefix = f"recforge:test:{uuid.uuid4().hex[:8]}:"
    db = str(tmp_path / "shared.db")
    a = make_client(tmp_path, model_file, redis=redis_url, redis_prefix=prefix, database=db)
    b = make_client(tmp_path, model_file, redis=redis_url, redis_prefix=prefix, database=db)
    try:
        assert a.get("/healthz").json()["history"] == "redis"
        history = a.app.state.recforge.history
        assert isinstance(history, History) and history.blocking
        cold = items_of(b.get("/v1/users/bob/recommendations?k=4"))
        for item in (1010, 1011, 1012):
            assert a.post("/v1/events", json={"user_id": "bob", "item_id": item, "type": "click"},
                          headers=KEY).status_code == 201
        warm = b.get("/v1/users/bob/recommendations?k=4").json()  # the other instance sees the clicks
        got = [x["item_id"] for x in warm["items"]]
        assert warm["source"] == "model" and got != cold
        assert all(1010 <= i < 1020 for i in got)
    finally:
        import redis

        cli = redis.Redis.from_url(redis_url)
        for key in cli.scan_iter(match=f"{prefix}*"):
            cli.delete(key)


@pytest.mark.services
def test_events_in_postgresql(tmp_path, model_file, pg_url, table_name, drop_tables):
    drop_tables.append(table_name)
    c = make_client(tmp_path, model_file, database=pg_url, events_table=table_name)
    assert c.post("/v1/events", json={"user_id": "p", "item_id": 1001, "type": "rating", "value": 3},
                  headers=KEY).status_code == 201
    assert c.post("/v1/events", json={"user_id": "p", "item_id": "x", "type": "click"}, headers=KEY).status_code == 422
    eng = make_engine(pg_url)
    with eng.connect() as conn:
        rows = conn.execute(sa.text(f'SELECT user_id, item_id, type, value FROM "{table_name}"')).all()
    eng.dispose()
    assert [tuple(r) for r in rows] == [("p", "1001", "rating", 3.0)]
    assert np.isfinite(c.get("/v1/users/p/recommendations").json()["items"][0]["score"])


def test_history_outage_degrades_instead_of_failing(tmp_path, model_file):
    c = make_client(tmp_path, model_file, redis="redis://127.0.0.1:1/0")  # nothing listens on port 1
    r = c.get("/v1/users/3/recommendations?k=3")
    assert r.status_code == 200 and r.json()["source"] == "model"
    r = c.post("/v1/events", json={"user_id": "3", "item_id": 1000, "type": "click"}, headers=KEY)
    assert r.status_code == 202 and "history store is unavailable" in r.json()["detail"]
    assert 'recforge_backend_errors_total{backend="history"} 2.0' in c.get("/metrics").text


def test_model_file_watch_reloads_a_new_version(tmp_path, ials_model, clustered_data):
    import time

    from recforge.config import FitOptions
    from recforge.models.factorization.als import ImplicitALS

    path = tmp_path / "live.npz"
    ials_model.save(path)
    app = create_app({"model": str(path), "database": str(tmp_path / "w.db"), "watch_model_seconds": 0.1})
    with TestClient(app) as c:  # the context runs the lifespan, which starts the watcher
        v1 = c.get("/healthz").json()["model_version"]
        ImplicitALS(embedding_size=5, epochs=2).fit(clustered_data, FitOptions(seed=3, threads=1)).save(path)
        deadline = time.time() + 10
        while c.get("/healthz").json()["model_version"] == v1:
            assert time.time() < deadline, "the changed model file was not picked up"
            time.sleep(0.1)
        assert c.get("/v1/users/1/recommendations?k=2").status_code == 200


def test_worker_processes_build_their_app_from_the_environment(tmp_path, model_file, monkeypatch):
    import dataclasses
    import json

    from recforge.serving.run import app_from_env

    cfg = ServiceConfig.from_dict({"model": str(model_file), "database": str(tmp_path / "env.db"), "default_k": 4})
    monkeypatch.setenv("RECFORGE_SERVE_CONFIG", json.dumps(dataclasses.asdict(cfg)))
    c = TestClient(app_from_env())
    assert len(items_of(c.get("/v1/users/2/recommendations"))) == 4
    monkeypatch.delenv("RECFORGE_SERVE_CONFIG")
    with pytest.raises(Exception, match="RECFORGE_SERVE_CONFIG is not set"):
        app_from_env()

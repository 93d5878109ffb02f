"""The context two-tower behind the live service: a click posted to /v1/events changes the user's
context, so the next answer is the model's answer for that context (not just the old list minus
the clicked item)."""

from __future__ import annotations

import pickle

import pytest

pytest.importorskip("torch")
pytest.importorskip("fastapi")
pytest.importorskip("sqlalchemy")
pytest.importorskip("prometheus_client")

import warnings  # noqa: E402
from datetime import UTC, datetime  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient  # noqa: E402

from recforge.config import FitOptions  # noqa: E402
from recforge.data.interactions import Interactions  # noqa: E402
from recforge.models.base import Recommender  # noqa: E402
from recforge.models.neural.context_tower import TwoTowerContext  # noqa: E402
from recforge.serving.app import create_app  # noqa: E402
from recforge.serving.history import Event, MemoryHistory  # noqa: E402

KEY = {"X-API-Key": "s3cret"}
K = 5
N_ITEMS = 24


def _sequential_log() -> tuple[Interactions, np.ndarray]:
    """After item ``x`` users pick ``f(x)`` (a fixed permutation); otherwise at random."""
    rng = np.random.default_rng(1)
    f = rng.permutation(N_ITEMS)
    rows = []
    t0 = 1_600_000_000
    for u in range(80):
        t = t0 + 86_400 * u
        for _ in range(3):
            x = int(rng.integers(N_ITEMS))
            rows += [(u, 1000 + x, t), (u, 1000 + int(f[x]), t + 60)]
            t += 3600
    df = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"]).drop_duplicates(["user_id", "item_id"])
    return Interactions.from_dataframe(df, timestamp="timestamp"), f


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    data, f = _sequential_log()
    model = TwoTowerContext(epochs=30, embedding_size=16, hidden=(32,), context_length=1, batch_size=64,
                            learning_rate=0.01).fit(data, FitOptions(seed=0, threads=1))
    path = tmp_path_factory.mktemp("ctx") / "ctx.npz"
    model.save(path)
    return Recommender.load(path), path, f


def _items(resp) -> list:
    assert resp.status_code == 200, resp.text
    return [x["item_id"] for x in resp.json()["items"]]


def test_a_click_changes_the_next_answer(tmp_path, fitted):
    model, path, f = fitted
    c = TestClient(create_app({"model": str(path), "database": str(tmp_path / "svc.db"), "api_key": "s3cret"}))
    user = 7
    before = _items(c.get(f"/v1/users/{user}/recommendations", params={"k": K}))
    assert before == model.recommend(user, K)[0].tolist()  # no events: the stored training context
    seen = set(model.items_.ids[model.seen_[model.users_.index_one(user)].indices].tolist())
    clicked = next(1000 + x for x in range(N_ITEMS) if 1000 + x not in seen and 1000 + int(f[x]) not in seen
                   and 1000 + x not in before)
    when = datetime(2024, 1, 1, tzinfo=UTC)
    r = c.post("/v1/events", json={"user_id": str(user), "item_id": clicked, "type": "click",
                                   "timestamp": when.isoformat()}, headers=KEY)
    assert r.status_code == 201, r.text
    after = _items(c.get(f"/v1/users/{user}/recommendations", params={"k": K}))
    # the model's own answer for the training context followed by this click
    events = {"items": [clicked], "kinds": ["click"], "values": [1.0], "times": [when.timestamp()]}
    want, _ = model.recommend_for_history(sorted(seen | {clicked}), K, user=user, events=events)
    assert after == want.tolist()
    # more than dropping the clicked item: the context moved the list
    assert after != [x for x in before if x != clicked][:K]
    # and a second, different click moves it again
    other = next(1000 + x for x in range(N_ITEMS) if 1000 + x not in seen | {clicked} | set(after))
    c.post("/v1/events", json={"user_id": str(user), "item_id": other, "type": "click",
                               "timestamp": when.replace(minute=5).isoformat()}, headers=KEY)
    third = _items(c.get(f"/v1/users/{user}/recommendations", params={"k": K}))
    events = {"items": [clicked, other], "kinds": ["click", "click"], "values": [1.0, 1.0],
              "times": [when.timestamp(), when.timestamp() + 300]}
    want, _ = model.recommend_for_history(sorted(seen | {clicked, other}), K, user=user, events=events)
    assert third == want.tolist() and third != [x for x in after if x != other][:K]


def test_an_unknown_user_is_answered_from_their_clicks(tmp_path, fitted):
    model, path, f = fitted
    c = TestClient(create_app({"model": str(path), "database": str(tmp_path / "svc.db"), "api_key": "s3cret"}))
    for x in (3, 11):
        assert c.post("/v1/events", json={"user_id": "newcomer", "item_id": 1000 + x, "type": "click"},
                      headers=KEY).status_code == 201
    body = c.get("/v1/users/newcomer/recommendations", params={"k": K}).json()
    assert body["source"] == "model"
    # the tower learned "after x comes f(x)": the latest click's successor leads
    assert body["items"][0]["item_id"] == 1000 + int(f[11])


def test_history_events_keep_kind_and_time_and_stay_pairs():
    h = MemoryHistory(max_len=3)
    h.push("u", "a", 1.0, "click", 10.0)
    h.push("u", "b", 4.0, "rating")
    got = h.recent("u")
    assert got == [("b", 4.0), ("a", 1.0)]  # compares (and unpacks) as the pair
    assert (got[1].kind, got[1].time, got[0].kind, got[0].time) == ("click", 10.0, "rating", None)
    item, value = got[1]
    assert (item, value) == ("a", 1.0)
    again = pickle.loads(pickle.dumps(got[1]))
    assert isinstance(again, Event) and again == ("a", 1.0) and (again.kind, again.time) == ("click", 10.0)


class _FakeRedis:
    """The few list commands RedisHistory uses."""

    def __init__(self) -> None:
        self.data: dict[str, list[str]] = {}

    def pipeline(self, transaction: bool = True) -> _FakeRedis:
        return self

    def lpush(self, key: str, value: str) -> None:
        self.data.setdefault(key, []).insert(0, value)

    def ltrim(self, key: str, lo: int, hi: int) -> None:
        self.data[key] = self.data[key][lo : hi + 1]

    def expire(self, key: str, ttl: int) -> None:
        pass

    def execute(self) -> None:
        pass

    def lrange(self, key: str, lo: int, hi: int) -> list[str]:
        return self.data.get(key, [])[lo : hi + 1]


def test_redis_history_keeps_kind_and_time_and_reads_old_entries():
    pytest.importorskip("redis")
    from recforge.serving.history import RedisHistory

    fake = _FakeRedis()
    h = RedisHistory("redis://unused", client=fake, prefix="p:")
    fake.data["p:u"] = ['["old", 2.0]']  # written by an earlier version
    h.push("u", "new", 1.0, "like", 5.0)
    got = h.recent("u")
    assert got == [("new", 1.0), ("old", 2.0)]
    assert (got[0].kind, got[0].time, got[1].kind, got[1].time) == ("like", 5.0, None, None)

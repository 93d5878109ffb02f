"""Serve == recommend: for every registered model, the service answers a user without fresh events
exactly what ``Recommender.recommend`` answers (same items, same order), and says so in ``source``.

The model goes through the whole serving path: saved to a file, loaded by the service, served
over HTTP (the middleware's fast path included).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import warnings

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("sqlalchemy")
pytest.importorskip("prometheus_client")

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient  # noqa: E402

from recforge.config import FitOptions  # noqa: E402
from recforge.data.interactions import Interactions  # noqa: E402
from recforge.models.base import Recommender  # noqa: E402
from recforge.models.registry import get_model_class, list_models  # noqa: E402
from recforge.serving.app import create_app  # noqa: E402

ENTRIES = [e for e in list_models() if e.task in ("rating", "ranking", "sequence")]
# fits that take more than a few seconds on a loaded 2-core machine even at these settings
SLOW = {"gmf", "hybrid-weighted", "sasrec", "caser", "neumf", "mlp", "gru4rec"}
K = 5


def _log(explicit: bool) -> Interactions:
    rng = np.random.default_rng(5)
    rows = []
    for u in range(30):
        for i in rng.choice(24, size=rng.integers(3, 9), replace=False):
            rows.append((u + 1, 100 + int(i), float(rng.integers(1, 6)), 1_600_000_000 + len(rows)))
    df = pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "ts"])
    if explicit:
        return Interactions.from_dataframe(df, "user_id", "item_id", "rating", "ts")
    return Interactions.from_dataframe(df, "user_id", "item_id", None, "ts")


def _small(cls: type) -> dict:
    fields = {f.name for f in dataclasses.fields(cls.config_class)}
    return {n: v for n, v in (("epochs", 2), ("embedding_size", 8), ("iterations", 2), ("batch_size", 64))
            if n in fields}


def _param(e):
    marks = [pytest.mark.slow] if e.name in SLOW else []
    return pytest.param(e, id=e.name, marks=marks)


@pytest.mark.parametrize("entry", [_param(e) for e in ENTRIES])
def test_service_answers_what_recommend_answers(entry, tmp_path):
    if entry.extra is not None and importlib.util.find_spec(entry.extra.split(":")[0]) is None:
        pytest.skip(f"{entry.name} needs the {entry.extra!r} extra")
    cls = get_model_class(entry.name)
    data = _log(explicit=entry.task == "rating")
    cls(_small(cls)).fit(data, FitOptions(seed=0, threads=1)).save(tmp_path / "m.npz")
    model = Recommender.load(tmp_path / "m.npz")  # what `recforge recommend --model-path` uses
    client = TestClient(create_app({"model": str(tmp_path / "m.npz"), "database": str(tmp_path / "svc.db")}))
    for user in data.users.ids.tolist():
        want, _ = model.recommend(user, K)
        body = client.get(f"/v1/users/{user}/recommendations?k={K}").json()
        got = [x["item_id"] for x in body["items"]]
        assert got == want.tolist(), (entry.name, user, body)
        assert body["source"] == "model", (entry.name, user, body["source"])
    # a user the model never saw: the popularity fallback, and the service says so
    body = client.get(f"/v1/users/nobody/recommendations?k={K}").json()
    assert body["source"] == "fallback-popularity"
    assert [x["item_id"] for x in body["items"]] == model.recommend("nobody", K)[0].tolist()

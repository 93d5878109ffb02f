"""Request context in the live service: a CTR ranker trained with a context field (Frappe-style
``daytime``) ranks the retrieval candidates in the context the request carries."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from recforge.config import FitOptions
from recforge.errors import ConfigError, DataError

pytest.importorskip("torch")
pytest.importorskip("fastapi")
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

USERS = [str(u) for u in range(1, 13)]
ITEMS = [str(i) for i in range(100, 120)]


def likes(item: str, daytime: str) -> bool:
    """Even apps are used in the morning, odd ones at night."""
    return (int(item) % 2 == 0) == (daytime == "morning")


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    from recforge.data import Interactions
    from recforge.data.ctr import FeatureEncoder
    from recforge.models.ctr.fm import FM
    from recforge.models.registry import make_model

    rows = [{"user": u, "item": i, "daytime": d, "label": float(likes(i, d))}
            for u in USERS for i in ITEMS for d in ("morning", "night")]
    df = pd.DataFrame(rows)
    enc = FeatureEncoder(["user", "item", "daytime"])
    ctr = FM(embedding_size=4, epochs=40, batch_size=64, learning_rate=0.05, init_std=0.1).fit(
        enc.fit_transform(df), FitOptions(seed=0, threads=1))
    # retrieval: popularity over a usage log in which every user used apps 100 and 101
    log = pd.DataFrame({"user_id": [int(u) for u in USERS for _ in range(2)] + [1] * (len(ITEMS) - 2),
                        "item_id": [100, 101] * len(USERS) + [int(i) for i in ITEMS[2:]]})
    pop = make_model("popularity", {}).fit(Interactions.from_dataframe(log, name="usage"))
    folder = tmp_path_factory.mktemp("ctx")
    ctr.save(folder / "fm.npz")
    pop.save(folder / "pop.npz")
    return ctr, pop, folder


def pipeline_config(folder) -> dict:
    return {"retrieval": {"kind": "popularity", "n_candidates": 20},
            "ranking": {"kind": "ctr", "model": str(folder / "fm.npz"), "context_fields": ["daytime"]}}


def model_order(ctr, user: str, items: list[str], daytime: str) -> list[str]:
    p = ctr.score_frame(pd.DataFrame({"user": user, "item": items, "daytime": daytime}))
    return [items[j] for j in np.argsort(-p, kind="stable")]


@pytest.mark.slow  # fits an FM (torch and Lightning start-up)
def test_two_contexts_rank_the_same_users_candidates_as_the_model_says(parts, tmp_path):
    from recforge.serving.app import create_app

    ctr, _, folder = parts
    client = TestClient(create_app({"model": str(folder / "pop.npz"), "database": str(tmp_path / "s.db"),
                                    "pipeline": pipeline_config(folder)}))
    got = {}
    for daytime in ("morning", "night"):
        r = client.get("/v1/users/3/recommendations", params={"k": 6, "daytime": daytime})
        assert r.status_code == 200, r.text
        got[daytime] = [str(x["item_id"]) for x in r.json()["items"]]
        assert all(likes(i, daytime) for i in got[daytime]), (daytime, got[daytime])
        scores = [x["score"] for x in r.json()["items"]]
        assert scores == sorted(scores, reverse=True)
    assert not set(got["morning"]) & set(got["night"])
    # the service's order is the model's order of the candidates in that context
    candidates = [i for i in ITEMS if i not in ("100", "101")]  # user 3 used 100 and 101: dropped as seen
    for daytime in ("morning", "night"):
        assert got[daytime] == model_order(ctr, "3", candidates, daytime)[:6]
    # no context: the field's missing value (out of vocabulary), as the model scores it
    r = client.get("/v1/users/3/recommendations", params={"k": 6})
    assert r.status_code == 200 and len(r.json()["items"]) == 6
    # an unseen value goes to the out-of-vocabulary feature; an unknown field is a 422 naming the fields
    r = client.get("/v1/users/3/recommendations", params={"k": 6, "daytime": "dusk"})
    assert r.status_code == 200
    assert [str(x["item_id"]) for x in r.json()["items"]] == model_order(ctr, "3", candidates, "dusk")[:6]
    r = client.get("/v1/users/3/recommendations", params={"k": 6, "weather": "sunny"})
    assert r.status_code == 422 and "weather" in r.text and "daytime" in r.text


@pytest.mark.slow
def test_pipeline_context_checks(parts):
    from recforge.serving import Pipeline

    ctr, pop, folder = parts
    pipe = Pipeline.from_config(pipeline_config(folder), pop)
    assert pipe.ranker.context_fields == ["daytime"]
    morning = pipe.recommend("5", 4, context={"daytime": "morning"}).item_ids
    night = pipe.recommend("5", 4, context={"daytime": "night"}).item_ids
    assert all(likes(str(i), "morning") for i in morning) and all(likes(str(i), "night") for i in night)
    with pytest.raises(DataError, match="unknown request context field.*weekday.*takes: daytime"):
        pipe.recommend("5", 4, context={"weekday": "sunday"})
    plain = Pipeline.from_config({"retrieval": {"kind": "popularity"}}, pop)
    with pytest.raises(DataError, match="takes no context"):
        plain.recommend("5", 4, context={"daytime": "night"})
    # without context_fields the daytime field belongs to no side: refused as before
    with pytest.raises(ConfigError, match="'daytime' is neither"):
        Pipeline.from_config({"ranking": {"kind": "ctr", "model": str(folder / "fm.npz")}}, pop)
    with pytest.raises(ConfigError, match="context field.*hour.*not fields of the feature encoder"):
        Pipeline.from_config({"ranking": {"kind": "ctr", "model": str(folder / "fm.npz"),
                                          "context_fields": ["hour"]}}, pop)


@pytest.mark.slow
def test_onnx_ranker_ranks_as_the_torch_model(parts, tmp_path):
    """`[ranking] onnx = FOLDER` scores the candidates with ONNX Runtime: same order and scores as torch."""
    pytest.importorskip("onnxruntime")
    from recforge.export import export_model
    from recforge.serving import Pipeline

    ctr, pop, folder = parts
    export_model(ctr, tmp_path / "fm-onnx", format="onnx")
    cfg = pipeline_config(folder)
    torch_pipe = Pipeline.from_config(cfg, pop)
    onnx_cfg = {**cfg, "ranking": {"kind": "ctr", "onnx": str(tmp_path / "fm-onnx"), "context_fields": ["daytime"]}}
    onnx_pipe = Pipeline.from_config(onnx_cfg, pop)
    assert onnx_pipe.ranker.describe() == "ctr:fm-onnx"
    for daytime in ("morning", "night", "dusk"):
        a = torch_pipe.recommend("5", 8, context={"daytime": daytime})
        b = onnx_pipe.recommend("5", 8, context={"daytime": daytime})
        assert list(a.item_ids) == list(b.item_ids)
        np.testing.assert_allclose(a.scores, b.scores, atol=1e-4)
    with pytest.raises(ConfigError, match="not both"):
        Pipeline.from_config({"ranking": {"kind": "ctr", "model": str(folder / "fm.npz"),
                                          "onnx": str(tmp_path / "fm-onnx")}}, pop)
    with pytest.raises(ConfigError, match="no model.json there"):
        Pipeline.from_config({"ranking": {"kind": "ctr", "onnx": str(tmp_path)}}, pop)


@pytest.mark.slow
def test_context_fields_encoded_one_by_one_equal_the_joint_encoding(parts):
    """The ranker caches each (context field, value) encoding; assembled, they are what encoding the
    whole context in one row gives, for seen, unseen and absent values."""
    from recforge.serving import Pipeline

    _, pop, folder = parts
    ranker = Pipeline.from_config(pipeline_config(folder), pop).ranker
    assert ranker._per_field
    for ctx in ({"daytime": "night"}, {"daytime": "dusk"}, {}, None):
        fast = ranker.context_row(ctx)
        ranker._per_field, ranker._contexts = False, type(ranker._contexts)()
        joint = ranker.context_row(ctx)
        ranker._per_field, ranker._contexts = True, type(ranker._contexts)()
        np.testing.assert_array_equal(fast[0], joint[0])
        np.testing.assert_array_equal(fast[1], joint[1])

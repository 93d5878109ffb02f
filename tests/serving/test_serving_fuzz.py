"""Property-based fuzzing of the HTTP API from its OpenAPI schema (schemathesis, valid and invalid
inputs for every operation) and of the event body with arbitrary JSON: no request gets a 500.

``make test`` runs a bounded number of examples; ``make fuzz`` sets ``RECFORGE_FUZZ_EXAMPLES``
higher.
"""

from __future__ import annotations

import json
import os
import warnings

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("sqlalchemy")
schemathesis = pytest.importorskip("schemathesis", reason="API fuzzing needs schemathesis (the test extra)")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient  # noqa: E402

from recforge.serving.app import create_app  # noqa: E402

EXAMPLES = int(os.environ.get("RECFORGE_FUZZ_EXAMPLES", "25"))
KEY = {"X-API-Key": "fuzz"}
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)


def _app():
    """The service over a small iALS model (built at collection: schemathesis parametrizes from the
    app's schema)."""
    import tempfile

    import numpy as np
    import pandas as pd

    from recforge.config import FitOptions
    from recforge.data.interactions import Interactions
    from recforge.models.factorization.als import ImplicitALS

    rng = np.random.default_rng(0)
    df = pd.DataFrame({"user_id": rng.integers(1, 40, 400), "item_id": 1000 + rng.integers(0, 30, 400)})
    data = Interactions.from_dataframe(df.drop_duplicates(), duplicates="first")
    d = tempfile.mkdtemp(prefix="recforge-fuzz-")
    ImplicitALS(embedding_size=4, epochs=2).fit(data, FitOptions(seed=0, threads=1)).save(f"{d}/ials.npz")
    return create_app({"model": f"{d}/ials.npz", "database": f"{d}/svc.db", "api_key": "fuzz"})


APP = _app()
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@pytest.fixture
def fuzz_app():
    return APP


@schema.parametrize()
@FUZZ
def test_no_operation_answers_500(case):
    r = case.call(headers=KEY)
    assert r.status_code < 500, (case.method, case.formatted_path, r.status_code, r.text[:300])


JSON = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=True, allow_infinity=True) | st.integers() | st.text(max_size=300),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=10,
)
FIELD = st.one_of(JSON, st.integers(min_value=-(10**30), max_value=10**30), st.text(max_size=2000),
                  st.sampled_from(["1970-01-01", "9999-12-31T23:59:59", "2020-02-30", "NaN", "1e999", "-1"]))
EVENT = st.fixed_dictionaries({}, optional={k: FIELD for k in ("user_id", "item_id", "type", "value", "timestamp")}) | JSON


@FUZZ
@given(body=EVENT)
def test_arbitrary_event_bodies_never_500(fuzz_app, body):
    c = TestClient(fuzz_app)
    raw = json.dumps(body, allow_nan=True).encode()  # NaN/Infinity literals included on purpose
    r = c.post("/v1/events", content=raw, headers={**KEY, "Content-Type": "application/json"})
    assert r.status_code in (201, 202, 401, 403, 413, 422), (body, r.status_code, r.text[:300])
    assert len(r.content) < 4096  # the echo of a bad input is truncated


@FUZZ
@given(raw=st.binary(max_size=2000))
def test_arbitrary_bytes_never_500(fuzz_app, raw):
    c = TestClient(fuzz_app)
    for path in ("/v1/events", "/v1/admin/reload"):
        r = c.post(path, content=raw, headers={**KEY, "Content-Type": "application/json"})
        assert r.status_code < 500, (path, raw[:100], r.status_code, r.text[:300])


@FUZZ
@given(user=st.text(min_size=1, max_size=300), k=st.text(max_size=20))
def test_arbitrary_paths_and_queries_never_500(fuzz_app, user, k):
    c = TestClient(fuzz_app)
    from urllib.parse import quote

    for url in (f"/v1/users/{quote(user, safe='')}/recommendations?k={quote(k, safe='')}",
                f"/v1/items/{quote(user, safe='')}/similar?k={quote(k, safe='')}"):
        r = c.get(url)
        assert r.status_code < 500, (url[:200], r.status_code, r.text[:300])

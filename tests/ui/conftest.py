"""Fixtures for the UI tests: a tiny rated catalogue with two taste groups, and a UI over it."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("jinja2")
pytest.importorskip("sqlalchemy")
pytest.importorskip("prometheus_client")

from recforge.data.interactions import Interactions  # noqa: E402

with warnings.catch_warnings():  # starlette's note about a future httpx rename
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient  # noqa: E402

ACTION = [10, 11, 12, 13, 14]  # item ids of the "Action" group
DRAMA = [20, 21, 22, 23, 24]


def tiny_data() -> Interactions:
    """12 users rating 10 movies: users 1-6 rate the Action movies 4-5, users 7-12 the Drama
    movies; user u also rates movie 10 + (u % 5) of the other group 1 (so every pair co-occurs
    somewhere). Timestamps increase with the row; item features carry titles, genres and years."""
    rows = []
    t = 0
    for u in range(1, 13):
        mine, other = (ACTION, DRAMA) if u <= 6 else (DRAMA, ACTION)
        for j, i in enumerate(mine):
            if (u + j) % 5 != 0:  # each user skips one of their group's movies
                t += 1
                rows.append((u, i, 5 if j % 2 == 0 else 4, t))
        t += 1
        rows.append((u, other[u % 5], 1, t))
    df = pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])
    inter = Interactions.from_dataframe(df, rating="rating", timestamp="timestamp", name="tiny")
    ids = ACTION + DRAMA
    feats = pd.DataFrame({
        "title": [f"Action Movie {i}" for i in ACTION] + [f"Drama Movie {i}" for i in DRAMA],
        "genres": ["Action|Thriller"] * 5 + ["Drama"] * 5,
        "year": [1990 + j for j in range(10)],
    }, index=pd.Index(ids, name="item_id"))
    return inter.with_features(item_features=feats)


@pytest.fixture(scope="module")
def data() -> Interactions:
    return tiny_data()


def _make_state(data, tmp_path: Path, runs: Path | None = None, models=("item-knn-implicit", "popularity")):
    from recforge.ui.served import fit_models, serve_models
    from recforge.ui.state import UIConfig, UIState

    cfg = UIConfig(runs=None if runs is None else str(runs), max_upload_bytes=64 * 1024, k=5)
    served = serve_models(fit_models(list(models), data), item_features=data.item_features,
                          database=tmp_path / "events.db")
    return UIState(cfg, data=data, dataset_name="tiny", served=served, workdir=tmp_path)


@pytest.fixture
def ui(data, tmp_path):
    """``(state, client)`` over the tiny data with item-knn-implicit and popularity served."""
    from recforge.ui.app import create_ui_app

    state = _make_state(data, tmp_path)
    with TestClient(create_ui_app(state)) as client:
        yield state, client


def _write_run(folder: Path, name: str, model: str, protocol: str, metrics: dict[str, list[float]],
              spec: dict | None = None, fit_seconds: float = 1.5) -> Path:
    """A run folder as ``recforge run`` writes it: ``run.json`` and ``results.csv`` (one row per
    fold value given, plus the mean row)."""
    folder.mkdir(parents=True, exist_ok=True)
    n = len(next(iter(metrics.values())))
    rows = [{"protocol": protocol, "dataset": "tiny", "model": name, "fold": str(f + 1),
             **{m: v[f] for m, v in metrics.items()}} for f in range(n)]
    rows.append({"protocol": protocol, "dataset": "tiny", "model": name, "fold": "mean",
                 **{m: float(np.mean(v)) for m, v in metrics.items()}})
    pd.DataFrame(rows).to_csv(folder / "results.csv", index=False)
    record = {"name": name, "protocol": protocol, "model": model,
              "metrics": {m: float(np.mean(v)) for m, v in metrics.items()},
              "timings": {"fit_seconds": fit_seconds}, "spec": spec or {}, "notes": []}
    (folder / "run.json").write_text(json.dumps(record))
    return folder


@pytest.fixture
def make_state():
    """``make_state(data, tmp_path, runs=None, models=...)``: a UIState over ``data``."""
    return _make_state


@pytest.fixture
def write_run():
    """``write_run(folder, name, model, protocol, metrics, spec=None, fit_seconds=1.5)``."""
    return _write_run

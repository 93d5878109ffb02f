"""Fixtures for the serving tests: small fitted models (two test-only models that declare the
history capabilities), fresh table names. ``pg_url`` and ``redis_url`` live in tests/conftest.py."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import pytest

from recforge.config import FitOptions
from recforge.data.interactions import Interactions
from recforge.models.base import Recommender


class HistoryToy(Recommender):
    """Test-only model that declares ``scores_history``: an item's score is the value-weighted sum
    of its co-occurrence counts with the history's items. Records every history it is asked about."""

    name = "history-toy"
    scores_history = True

    def _fit(self, data: Interactions, options: FitOptions) -> None:
        x = self.seen_.astype(np.float64)
        self.cooc_ = np.asarray((x.T @ x).todense())
        np.fill_diagonal(self.cooc_, 0.0)

    def _score_users(self, u: np.ndarray) -> np.ndarray:
        return np.asarray(self.seen_[u] @ self.cooc_)

    def _score_history(self, item_idx: np.ndarray, values: np.ndarray | None,
                       context: Mapping[str, Any]) -> np.ndarray:
        self.__dict__.setdefault("calls", []).append((item_idx.copy(), None if values is None else values.copy(),
                                                      context["user"]))
        w = np.ones(len(item_idx)) if values is None else values
        return w @ self.cooc_[item_idx]


class PlainToy(HistoryToy):
    """Test-only model that declares no history capability (scores come from training only)."""

    name = "plain-toy"
    scores_history = False


class FoldToy(Recommender):
    """Test-only model that declares ``has_embeddings`` and ``folds_in``: random vectors, and a
    folded-in user is the value-weighted sum of the history's item vectors. Records its fold-ins."""

    name = "fold-toy"
    has_embeddings = True
    folds_in = True

    def _fit(self, data: Interactions, options: FitOptions) -> None:
        rng = np.random.default_rng(options.seed)
        self.item_vecs_ = rng.normal(size=(len(self.items_), 4))
        self.user_vecs_ = np.asarray(self.seen_ @ self.item_vecs_)

    def _score_users(self, u: np.ndarray) -> np.ndarray:
        return self.user_vecs_[u] @ self.item_vecs_.T

    def embeddings(self) -> tuple[np.ndarray, np.ndarray]:
        return self.user_vecs_, self.item_vecs_

    def fold_in(self, item_ids: Any, values: Any = None) -> np.ndarray:
        idx = self.items_.index(item_ids)
        w = np.ones(len(idx)) if values is None else np.asarray(values, np.float64)
        self.__dict__.setdefault("calls", []).append((idx.copy(), None if values is None else w.copy()))
        return w @ self.item_vecs_[idx]


def clustered(n_users: int = 60, n_items: int = 40, n_clusters: int = 4, per_user: int = 6, seed: int = 0) -> Interactions:
    """Implicit data with ``n_clusters`` disjoint taste groups: user u likes items of cluster u % c.

    Item ids are 1000 + index, user ids 1 + index; item features carry the cluster as a genre
    (``"g0"``...) and a popularity-free title.
    """
    rng = np.random.default_rng(seed)
    size = n_items // n_clusters
    rows = []
    for u in range(n_users):
        c = u % n_clusters
        pool = np.arange(c * size, (c + 1) * size)
        for i in rng.choice(pool, per_user, replace=False):
            rows.append((u + 1, 1000 + int(i)))
    df = pd.DataFrame(rows, columns=["user_id", "item_id"])
    inter = Interactions.from_dataframe(df, name="clustered")
    feats = pd.DataFrame(
        {"genres": [f"g{j // size}|all" for j in range(n_items)], "title": [f"item {j}" for j in range(n_items)]},
        index=pd.Index(1000 + np.arange(n_items), name="item_id"),
    )
    return inter.with_features(item_features=feats)


@pytest.fixture(scope="session")
def clustered_data() -> Interactions:
    return clustered()


@pytest.fixture(scope="session")
def ials_model(clustered_data):
    from recforge.models.factorization.als import ImplicitALS

    return ImplicitALS(embedding_size=8, epochs=10, reg=0.1, alpha=5.0).fit(clustered_data, FitOptions(seed=0, threads=1))


@pytest.fixture(scope="session")
def pop_model(clustered_data):
    from recforge.models.baselines.simple import Popularity

    return Popularity().fit(clustered_data, FitOptions(seed=0))


@pytest.fixture
def history_toy(clustered_data) -> HistoryToy:
    return HistoryToy().fit(clustered_data, FitOptions(seed=0))


@pytest.fixture
def plain_toy(clustered_data) -> PlainToy:
    return PlainToy().fit(clustered_data, FitOptions(seed=0))


@pytest.fixture
def fold_toy(clustered_data) -> FoldToy:
    return FoldToy().fit(clustered_data, FitOptions(seed=0))


@pytest.fixture
def table_name() -> str:
    """A fresh table name, so tests sharing one database never collide."""
    return f"t_{uuid.uuid4().hex[:10]}"


@pytest.fixture
def drop_tables(pg_url):
    """Drops the named PostgreSQL tables after the test."""
    names: list[str] = []
    yield names
    import sqlalchemy as sa

    from recforge.serving.db import make_engine

    eng = make_engine(pg_url)
    with eng.begin() as conn:
        for n in names:
            for t in sa.inspect(conn).get_table_names():
                if t == n or t.startswith(f"{n}__"):
                    conn.exec_driver_sql(f'DROP TABLE IF EXISTS "{t}"')
    eng.dispose()

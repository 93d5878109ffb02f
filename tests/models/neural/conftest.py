"""Helpers for the neural model tests: structured synthetic data and a popularity yardstick."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recforge.data.interactions import Interactions

torch = pytest.importorskip("torch")
pytest.importorskip("lightning")



@pytest.fixture(autouse=True)
def _one_torch_thread():
    # tiny models gain nothing from intra-op threads, and on a loaded machine OpenMP barriers make
    # each optimiser step wait for a descheduled thread (100x slower steps)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def clustered(n_users: int = 80, n_items: int = 60, n_groups: int = 4, p_in: float = 0.5, p_out: float = 0.01,
              seed: int = 0) -> tuple[Interactions, Interactions]:
    """Implicit data with block structure: users of group g mostly like items of group g.

    Groups have equal sizes, so item popularity is flat and popularity ranking is near chance, while
    a collaborative model can find the groups. One in-group item per user is held out (the test).
    """
    rng = np.random.default_rng(seed)
    ug = np.arange(n_users) % n_groups
    ig = np.arange(n_items) % n_groups
    prob = np.where(ug[:, None] == ig[None, :], p_in, p_out)
    like = rng.random((n_users, n_items)) < prob
    test = np.zeros_like(like)
    for u in range(n_users):
        mine = np.flatnonzero(ig == ug[u])
        like[u, rng.choice(mine, size=2, replace=False)] = True  # at least one to train on, one to test
        test[u, rng.choice(np.flatnonzero(like[u] & (ig == ug[u])))] = True
    u, i = np.nonzero(like)
    df = pd.DataFrame({"user_id": u, "item_id": i, "timestamp": rng.permutation(len(u))})
    full = Interactions.from_dataframe(df, timestamp="timestamp", name="clustered")
    is_test = test[u, i]
    return full.subset(~is_test), full.subset(is_test)


def hit_rate(model, test: Interactions, k: int = 5) -> float:
    """Share of test users whose held-out item is in the model's top-k (training items excluded)."""
    users = np.unique(test.user_idx)
    recs, _ = model.recommend_indices(users, k)
    truth = test.csr()
    return float(np.mean([truth[u, recs[j]].sum() > 0 for j, u in enumerate(users)]))


def popularity_hit_rate(train: Interactions, test: Interactions, k: int = 5) -> float:
    from recforge.models.baselines.simple import Popularity

    return hit_rate(Popularity().fit(train), test, k)


def rating_split(seed: int = 0) -> tuple[Interactions, Interactions]:
    """Rank-2 ratings (``toy_ratings``) split 80/20 at random."""
    from recforge.testing.datasets import toy_ratings

    data = toy_ratings(n_users=60, n_items=40, density=0.6, seed=seed)
    mask = np.random.default_rng(seed).random(len(data)) < 0.2
    return data.subset(~mask), data.subset(mask)


def rmse(model, test: Interactions) -> float:
    p = model.predict(test.users.ids[test.user_idx], test.items.ids[test.item_idx], fallback="mean")
    return float(np.sqrt(np.mean((p - test.values) ** 2)))


def assert_cpu_gpu_parity(make, data: Interactions, atol: float = 1e-3) -> None:
    """Same seed on CPU and GPU gives (nearly) the same model."""
    from recforge.config import FitOptions

    cpu = make().fit(data, FitOptions(seed=0, device="cpu"))
    gpu = make().fit(data, FitOptions(seed=0, device="cuda"))
    users = data.users.ids[data.user_idx[:200]]
    items = data.items.ids[data.item_idx[:200]]
    np.testing.assert_allclose(gpu.score(users, items), cpu.score(users, items), atol=atol, rtol=1e-3)
    a, _ = cpu.recommend(data.users.ids[:5], k=3)
    b, _ = gpu.recommend(data.users.ids[:5], k=3)
    assert (a == b).mean() >= 0.8


@pytest.fixture
def nh():
    """The helpers above, as a fixture (test modules import nothing from this file)."""
    from types import SimpleNamespace

    return SimpleNamespace(clustered=clustered, hit_rate=hit_rate, popularity_hit_rate=popularity_hit_rate,
                           rating_split=rating_split, rmse=rmse, assert_cpu_gpu_parity=assert_cpu_gpu_parity)

"""Sequence models: the standard conformance suite, window construction, and learning next items."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")

from recforge.config import FitOptions
from recforge.data.interactions import Interactions
from recforge.models.registry import get_model_class
from recforge.models.sequential._base import latest, position_windows, user_sequences
from recforge.models.sequential.caser import Caser, caser_windows
from recforge.models.sequential.gru4rec import GRU4Rec
from recforge.models.sequential.sasrec import SASRec
from recforge.testing.conformance import RecommenderConformance


@pytest.fixture(autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


class TestGRU4Rec(RecommenderConformance):
    checkerboard_config = {"epochs": 30}
    model_class = GRU4Rec
    config = {"epochs": 3, "embedding_size": 8, "max_len": 6, "batch_size": 32, "learning_rate": 0.01}
    changes = {"embedding_size": 6, "max_len": 4, "n_layers": 2, "dropout": 0.0, "loss": "bce", "reg": 0.1,
               "learning_rate": 0.003,
               "batch_size": 7, "ema_decay": 0.9, "epochs": 2, "optimizer": "sgd"}
    unchanged = {"negatives": "used only with loss='bce' (the default is 'ce')"}
    invalid = [{"embedding_size": 0}, {"max_len": 0}, {"dropout": 1.0}, {"loss": "mse"}, {"negatives": 0},
               {"n_layers": 0}, {"reg": -1.0}]


class TestSASRec(RecommenderConformance):
    checkerboard_config = {"epochs": 30}
    model_class = SASRec
    config = {"epochs": 3, "embedding_size": 8, "max_len": 6, "batch_size": 32, "learning_rate": 0.01}
    changes = {"embedding_size": 4, "max_len": 4, "n_layers": 1, "n_heads": 1, "dropout": 0.0, "loss": "bce",
               "learning_rate": 0.003,
               "batch_size": 7, "ema_decay": 0.9, "epochs": 2, "optimizer": "sgd", "reg": 0.5}
    unchanged = {"negatives": "used only with loss='bce' (the default is 'ce')"}
    invalid = [{"n_heads": 3}, {"n_layers": 0}, {"max_len": 0}, {"dropout": -0.1}]


class TestCaser(RecommenderConformance):
    checkerboard_config = {"epochs": 30}
    model_class = Caser
    config = {"epochs": 3, "embedding_size": 8, "max_len": 3, "targets": 2, "batch_size": 64,
              "learning_rate": 0.01}
    changes = {"max_len": 2, "targets": 1, "n_horizontal": 2, "n_vertical": 0, "embedding_size": 6,
               "dropout": 0.0, "loss": "bce",
               "batch_size": 7, "ema_decay": 0.9, "epochs": 2, "optimizer": "sgd", "reg": 0.5, "learning_rate": 0.03}
    unchanged = {"negatives": "used only with loss='bce' (the default is 'ce')"}
    invalid = [{"targets": 0}, {"n_horizontal": 0, "n_vertical": 0}, {"n_vertical": -1}, {"max_len": 0}]


def _log(rows: list[tuple[str, str, int]]) -> Interactions:
    return Interactions.from_dataframe(pd.DataFrame(rows, columns=["u", "i", "t"]), "u", "i", timestamp="t")


def test_sequences_follow_time_then_item():
    data = _log([("a", "x", 3), ("a", "y", 1), ("a", "z", 3), ("b", "y", 5), ("b", "x", 2)])
    indptr, items = user_sequences(data)
    ids = data.items.ids
    assert ids[items[indptr[0] : indptr[1]]].tolist() == ["y", "x", "z"]  # t=1, then t=3 ties by item
    assert ids[items[indptr[1] : indptr[2]]].tolist() == ["x", "y"]
    hist = latest(indptr, items, 2, pad=9)
    assert ids[hist[0]].tolist() == ["x", "z"]
    assert latest(indptr, items, 4, pad=9)[1].tolist() == [9, 9, items[3], items[4]]


def test_position_windows_exact():
    indptr = np.array([0, 5, 6])
    items = np.array([10, 11, 12, 13, 14, 20])
    x, y = position_windows(indptr, items, 3, pad=99)
    # inputs 10..13 -> targets 11..14, cut from the end into windows of 3; the 1-item user gives none
    assert x.tolist() == [[99, 99, 10], [11, 12, 13]]
    assert y.tolist() == [[-1, -1, 11], [12, 13, 14]]


def test_caser_windows_exact():
    indptr = np.array([0, 4])
    items = np.array([1, 2, 3, 4])
    u, x, y = caser_windows(indptr, items, 2, 2, pad=0)
    assert u.tolist() == [0, 0, 0]
    assert x.tolist() == [[0, 1], [1, 2], [2, 3]]
    assert y.tolist() == [[2, 3], [3, 4], [4, -1]]


def _cycle_data(n_users: int = 40, n_items: int = 20, length: int = 12, seed: int = 0) -> Interactions:
    """Every user walks the item cycle 0 -> 1 -> ... -> n_items-1 -> 0 from a random start.

    The next item is a deterministic function of the last one, which popularity cannot know.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        start = rng.integers(0, n_items)
        for t in range(length):
            rows.append((u, int((start + t) % n_items), t))
    return Interactions.from_dataframe(pd.DataFrame(rows, columns=["u", "i", "t"]), "u", "i", timestamp="t")


@pytest.mark.parametrize("name,cfg", [
    ("gru4rec", {"epochs": 40, "embedding_size": 16, "max_len": 5, "dropout": 0.0, "learning_rate": 0.01}),
    ("sasrec", {"epochs": 40, "embedding_size": 16, "max_len": 5, "dropout": 0.0, "learning_rate": 0.01}),
    ("caser", {"epochs": 40, "embedding_size": 16, "max_len": 3, "targets": 1, "dropout": 0.0,
               "learning_rate": 0.01}),
])
def test_learns_the_next_item(name, cfg):
    data = _cycle_data()
    model = get_model_class(name)(cfg).fit(data, FitOptions(seed=0, threads=1))
    loss = model.history_["train_loss"]
    assert loss[-1] < 0.5 * loss[0]
    # the serving path: after clicks 3, 4, 5 the next item is 6, whatever the user's training history
    ids, scores = model.recommend_for_history([3, 4, 5], k=3)
    assert ids[0] == 6
    assert np.all(np.diff(scores) <= 0)
    # and the fitted histories: each user's next item is the one after their last training item
    df = data.to_dataframe().sort_values(["user_id", "timestamp"])
    nxt = (df.groupby("user_id")["item_id"].last() + 1) % 20
    recs, _ = model.recommend(nxt.index[:10].to_numpy(), k=1)
    hits = np.mean(recs[:, 0] == nxt.to_numpy()[:10])
    assert hits >= 0.9


def test_recommend_for_history_serving_details():
    data = _cycle_data(n_users=20, length=8)
    model = SASRec(epochs=2, embedding_size=8, max_len=4).fit(data, FitOptions(seed=0, threads=1))
    ids, scores = model.recommend_for_history([1, 2, "unknown"], k=4)
    assert 1 not in ids.tolist() and 2 not in ids.tolist()
    assert np.isfinite(scores).all()
    ids_all, _ = model.recommend_for_history([1, 2], k=20, exclude_seen=False)
    assert {1, 2} <= set(ids_all.tolist())
    cand, _ = model.recommend_for_history([1, 2], k=5, candidates=[7, 8, 9])
    assert set(cand[:3].tolist()) == {7, 8, 9} and cand[3] == -1
    # no known item: popularity, flagged by NaN scores
    pop, pop_sc = model.recommend_for_history(["nope"], k=3)
    assert len(pop) == 3 and np.isnan(pop_sc).all()
    # the history beyond max_len does not matter
    a, sa = model.recommend_for_history([0, 5, 6, 1, 2, 3, 4], k=3, exclude_seen=False)
    b, sb = model.recommend_for_history([1, 2, 3, 4], k=3, exclude_seen=False)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(sa, sb, rtol=1e-6)
    # a user's own recommendations are the history's
    hist = data.items.ids[model.recent_[0]]
    r1, s1 = model.recommend(data.users.ids[0], k=3, exclude_seen=False)
    r2, s2 = model.recommend_for_history(hist, k=3, exclude_seen=False)
    np.testing.assert_array_equal(r1, r2)
    np.testing.assert_allclose(s1, s2, rtol=1e-5)


def test_caser_uses_the_user_when_given():
    data = _cycle_data(n_users=20, length=8)
    model = Caser(epochs=2, embedding_size=8, max_len=3).fit(data, FitOptions(seed=0, threads=1))
    hist = data.items.ids[model.recent_[3]]
    r1, s1 = model.recommend(data.users.ids[3], k=3, exclude_seen=False)
    r2, s2 = model.recommend_for_history(hist, k=3, user=data.users.ids[3], exclude_seen=False)
    np.testing.assert_array_equal(r1, r2)
    np.testing.assert_allclose(s1, s2, rtol=1e-5)
    _, s3 = model.recommend_for_history(hist, k=3, exclude_seen=False)  # the average user
    assert not np.allclose(s1, s3)


def test_registry_and_task():
    for name in ("caser", "gru4rec", "sasrec"):
        cls = get_model_class(name)
        assert cls.task == "sequence" and cls.name == name


@pytest.mark.slow
def test_ml100k_loo_full_band(ml100k):
    from recforge.evaluation.protocols import evaluate

    res = evaluate(SASRec(epochs=4, max_len=20, embedding_size=32, batch_size=128, learning_rate=2e-3), ml100k,
                   "loo-full", options=FitOptions(seed=0, threads=1))
    hr = res.metric("HR@10")
    assert hr > 0.0498  # popularity's HR@10 on the same protocol (PERF-ANCHORS)


#: recommend_for_history of the hand-written body before the model contract (commit d92088a):
#: (model, history, keywords) -> (item ids, scores rounded to 4 decimals); 30 users cycling 20 items,
#: 2 epochs, seed 0, one thread
NAN = float("nan")
OLD_FOR_HISTORY = {
    ('gru4rec', (3, 4, 5), ''): ([13, 10, 8, 11, 18], [0.0226, 0.0219, 0.0161, 0.0083, 0.0078]),
    ('gru4rec', (1, 2, 3, 4, 5, 6), 'exclude_seen'): ([13, 10, 8, 11, 18], [0.0222, 0.0218, 0.016, 0.0082, 0.0078]),
    ('gru4rec', (7, 8), 'user'): ([13, 10, 11, 18, 4], [0.0226, 0.0218, 0.0083, 0.0078, 0.0065]),
    ('gru4rec', (1, 2), 'candidates'): ([8, 9, 7, -1, -1], [0.0162, 0.0055, -0.0028, NAN, NAN]),
    ('sasrec', (3, 4, 5), ''): ([2, 6, 10, 16, 18], [0.07, 0.0601, 0.042, 0.0277, 0.0256]),
    ('sasrec', (1, 2, 3, 4, 5, 6), 'exclude_seen'): ([2, 4, 10, 6, 16], [0.0846, 0.0651, 0.0623, 0.043, 0.0411]),
    ('sasrec', (7, 8), 'user'): ([10, 18, 19, 17, 11], [0.1189, 0.0997, 0.0843, 0.0723, 0.0596]),
    ('sasrec', (1, 2), 'candidates'): ([9, 7, 8, -1, -1], [0.0012, -0.0126, -0.0541, NAN, NAN]),
    ('caser', (3, 4, 5), ''): ([12, 15, 9, 2, 11], [0.0241, 0.0175, 0.0108, 0.0097, 0.0058]),
    ('caser', (1, 2, 3, 4, 5, 6), 'exclude_seen'): ([12, 9, 14, 2, 3], [0.0243, 0.0133, 0.0083, 0.0061, 0.0057]),
    ('caser', (7, 8), 'user'): ([6, 9, 17, 2, 11], [0.0221, 0.0172, 0.0037, 0.0025, 0.0002]),
    ('caser', (1, 2), 'candidates'): ([9, 8, 7, -1, -1], [0.0036, 0.0014, -0.0035, NAN, NAN]),
}


@pytest.mark.parametrize("name", ["gru4rec", "sasrec", "caser"])
def test_recommend_for_history_is_unchanged(name):
    rows = [(u, (u + t) % 20, t) for u in range(30) for t in range(10)]
    data = Interactions.from_dataframe(pd.DataFrame(rows, columns=["u", "i", "t"]), "u", "i", timestamp="t")
    cfg = {"epochs": 2, "embedding_size": 8, "max_len": 3 if name == "caser" else 4}
    model = get_model_class(name)(cfg).fit(data, FitOptions(seed=0, threads=1))
    assert model.scores_history
    calls = {"": {}, "exclude_seen": {"exclude_seen": False}, "user": {"user": 3},
             "candidates": {"candidates": [7, 8, 9]}}
    for (n, hist, kw), (want_ids, want_scores) in OLD_FOR_HISTORY.items():
        if n != name:
            continue
        ids, scores = model.recommend_for_history(list(hist), 5, **calls[kw])
        assert ids.tolist() == want_ids, (hist, kw)
        np.testing.assert_allclose(scores, np.array(want_scores), atol=1e-4, err_msg=str((hist, kw)))

"""The context two-tower: context windows by hand, the context changing the user vector exactly,
both heads, initialisation from a fitted MF model, and the conformance suite."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")

from recforge.config import FitOptions
from recforge.data.interactions import Interactions
from recforge.errors import ConfigError
from recforge.models.factorization.ials import ImplicitALS as IALS
from recforge.models.neural import losses
from recforge.models.neural.context_tower import ACTION_KINDS, TwoTowerContext, context_rows
from recforge.testing.conformance import RecommenderConformance
from recforge.testing.datasets import toy_ratings


class TestTwoTowerContext(RecommenderConformance):
    checkerboard_config = {"epochs": 40, "batch_size": 32, "learning_rate": 0.01, "embedding_size": 8,
                           "context_length": 2}
    model_class = TwoTowerContext
    config = {"epochs": 2, "embedding_size": 8, "hidden": (16,), "batch_size": 64, "context_length": 3,
              "learning_rate": 0.01}
    changes = {"context_length": 0, "hidden": (), "head": "linear", "negatives": 1, "dropout": 0.5, "reg": 0.5,
               "batch_size": 7, "ema_decay": 0.9, "embedding_size": 10, "epochs": 1, "learning_rate": 0.003,
               "optimizer": "sgd", "init_from": "ials", "freeze_static": True, "context_features": ("kind",),
               "static_dropout": 0.0}
    unchanged = {"max_categories": "encodes side features: the toy data has none",
                 "use_features": "reads side features: the toy data has none"}
    invalid = [{"context_length": -1}, {"hidden": (0,)}, {"head": "softmax"}, {"negatives": -1},
               {"context_features": ("colour",)}, {"negatives": 0, "head": "sigmoid"},
               {"static_dropout": 1.5}]
    atol = 1e-5


def _log() -> Interactions:
    # user 1: a (t=0), b (t=3600), c (t=7200), d (t=10800); user 2: c (t=0), e (t=30), a (t=60)
    df = pd.DataFrame({"user_id": [1, 1, 1, 1, 2, 2, 2], "item_id": ["c", "a", "d", "b", "a", "c", "e"],
                       "rating": [5.0, 1.0, 4.0, 3.0, 2.0, 5.0, 4.0],
                       "timestamp": [7200, 0, 10800, 3600, 60, 0, 30]})
    return Interactions.from_dataframe(df, "user_id", "item_id", "rating", "timestamp")


def test_context_rows_by_hand():
    data = _log()
    per_row, per_user = context_rows(data, 2)
    # rows: 0 c@7200, 1 a@0, 2 d@10800, 3 b@3600 (user 1); 4 a@60, 5 c@0, 6 e@30 (user 2)
    np.testing.assert_array_equal(per_row, [[1, 3], [-1, -1], [3, 0], [-1, 1], [5, 6], [-1, -1], [-1, 5]])
    np.testing.assert_array_equal(per_user, [[0, 2], [6, 4]])


def test_training_context_state_by_hand():
    data = _log()
    m = TwoTowerContext(epochs=1, embedding_size=4, hidden=(), context_length=3, batch_size=4).fit(
        data, FitOptions(seed=0))
    items = data.items.index(np.array(["a", "b", "c", "d", "e"], dtype=object))
    np.testing.assert_array_equal(m.context_items_[0], items[[1, 2, 3]])  # user 1's last three: b, c, d
    np.testing.assert_array_equal(m.context_items_[1], items[[2, 4, 0]])  # user 2's: c, e, a
    np.testing.assert_array_equal(m.context_kinds_[0], [ACTION_KINDS.index("rating")] * 3)
    mu, sd = data.values.mean(), data.values.std()
    np.testing.assert_allclose(m.context_values_[0], (np.array([3.0, 5.0, 4.0]) - mu) / sd, rtol=1e-6)
    np.testing.assert_array_equal(m.user_last_time_, [10800, 60])


def _trained(**kw) -> TwoTowerContext:
    data = toy_ratings(n_users=30, n_items=25, seed=3)
    cfg = {"epochs": 3, "embedding_size": 8, "hidden": (16,), "batch_size": 64, "context_length": 4,
           "learning_rate": 0.05, **kw}
    return TwoTowerContext(**cfg).fit(data, FitOptions(seed=0, threads=1))


def test_the_context_changes_the_user_vector():
    m = _trained()
    user, items = m.users_.ids[0], m.items_.ids
    a = m.user_vector(user, {"items": [items[1], items[2]], "kinds": ["rating", "rating"], "values": [5, 5],
                             "times": [100.0, 200.0]})
    b = m.user_vector(user, {"items": [items[3], items[4]], "kinds": ["rating", "rating"], "values": [5, 5],
                             "times": [100.0, 200.0]})
    assert not np.allclose(a, b, atol=1e-4)  # same user, other recent items
    again = m.user_vector(user, {"items": [items[1], items[2]], "kinds": ["rating", "rating"], "values": [5, 5],
                                 "times": [100.0, 200.0]})
    np.testing.assert_array_equal(a, again)
    # the time since each action and its value count too
    later = m.user_vector(user, {"items": [items[1], items[2]], "kinds": ["rating", "rating"], "values": [5, 5],
                                 "times": [100.0, 900_000.0]})
    low = m.user_vector(user, {"items": [items[1], items[2]], "kinds": ["rating", "rating"], "values": [1, 1],
                               "times": [100.0, 200.0]})
    assert not np.allclose(a, later, atol=1e-5) and not np.allclose(a, low, atol=1e-5)
    # the scores the model serves are those of this vector
    s = m.scores_for_history([items[1], items[2]], user=user, events={"items": [items[1], items[2]],
                             "kinds": ["rating", "rating"], "values": [5, 5], "times": [100.0, 200.0]})
    net = m.network()
    with torch.no_grad():
        want = net.score_vectors(torch.from_numpy(a)[None]).double().numpy()[0]
    np.testing.assert_allclose(s, want, rtol=1e-5, atol=1e-6)
    # no events: the stored training context, i.e. the user's row of embeddings() (less the bias column)
    np.testing.assert_allclose(m.user_vector(user), m.embeddings()[0][0, :-1], rtol=1e-5, atol=1e-6)


def test_no_context_is_the_static_vector():
    m = _trained()
    net = m.network()
    u = torch.arange(3)
    L = 4
    empty = (torch.full((3, L), m.items_.ids.shape[0]), torch.zeros(3, L, dtype=torch.long), torch.zeros(3, L),
             torch.zeros(3, L))
    with torch.no_grad():
        torch.testing.assert_close(net.users(u, empty), net.user.weight[:3], rtol=0, atol=0)
        assert not torch.allclose(net.users(u), net.user.weight[:3], atol=1e-4)  # their stored context moves them
    flat = _trained(context_length=0)
    with torch.no_grad():
        torch.testing.assert_close(torch.from_numpy(flat.embeddings()[0][:, :-1]), flat.network().user.weight)


def test_user_tower_by_hand():
    """Zero attention weights pool the context items (plus their kind vectors) by their mean."""
    m = _trained(context_features=("kind", "value", "time"))
    net = m.network()
    with torch.no_grad():
        net.kind_attn.weight.zero_()
        net.attn.weight.zero_()
        net.attn.bias.zero_()
        net.kind.weight.copy_(torch.randn_like(net.kind.weight, generator=torch.Generator().manual_seed(0)))
        items = torch.tensor([[m.items_.ids.shape[0], 2, 5, 7]])
        kinds = torch.tensor([[0, 1, 4, 3]])
        values = torch.tensor([[0.0, 1.0, -1.0, 0.5]])
        gaps = torch.tensor([[0.0, 0.3, 0.2, 0.0]])
        got = net.users(torch.tensor([0]), (items, kinds, values, gaps))
        e = net.user.weight[:1]
        pooled = ((net.item.weight[[2, 5, 7]] + net.kind.weight[[1, 4, 3]]).mean(0, keepdim=True))
        stats = torch.tensor([[0.5 / 3, 0.5 / 3]])
        want = e + net.tower(torch.cat([e, pooled, stats], -1))
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
        # a kind changes the vector through its embedding and its attention weight
        other = net.users(torch.tensor([0]), (items, torch.tensor([[0, 2, 4, 3]]), values, gaps))
        assert not torch.allclose(got, other)


def test_heads_use_their_losses():
    for head in ("sigmoid", "linear"):
        m = _trained(head=head, epochs=1)
        net = m.network()
        net.static_dropout = 0.0  # no random dropping of the static vectors in this check
        n = len(m.items_)
        rows = (torch.full((4, 4), n), torch.zeros(4, 4, dtype=torch.long), torch.zeros(4, 4), torch.zeros(4, 4))
        net.set_rows(rows)
        u, i = torch.tensor([0, 1, 2, 3]), torch.tensor([0, 1, 2, 3])
        y = torch.tensor([1.0, 0.0, 4.0, 0.0]) if head == "linear" else torch.tensor([1.0, 0.0, 1.0, 0.0])
        with torch.no_grad():
            got = net.loss((u, i, y, torch.arange(4))).item()
            x = (net.users(u, rows) * net.items(i)).sum(-1) + net.item_bias(i).squeeze(-1)
        want = losses.mse(x, y) if head == "linear" else losses.bce(x, y)
        assert got == pytest.approx(want.item(), rel=1e-6)


def test_linear_head_learns_the_utility_scale():
    data = toy_ratings(n_users=40, n_items=30, seed=1)
    m = TwoTowerContext(head="linear", negatives=0, epochs=60, embedding_size=8, hidden=(16,), batch_size=64,
                        learning_rate=0.02, context_length=3).fit(data, FitOptions(seed=0, threads=1))
    pred = m.score(data.users.ids[data.user_idx], data.items.ids[data.item_idx])
    rmse = float(np.sqrt(np.mean((pred - data.values) ** 2)))
    assert rmse < 0.7 * float(data.values.std())  # fits the ratings better than their mean


def test_init_from_a_fitted_mf_model():
    data = toy_ratings(n_users=30, n_items=25, seed=3)
    ials = IALS(embedding_size=6, epochs=3).fit(data, FitOptions(seed=0))
    m = TwoTowerContext(freeze_static=True, epochs=1, hidden=(8,), context_length=2, batch_size=64).init_with(ials)
    m.fit(data, FitOptions(seed=0, threads=1))
    uv, iv = ials.embeddings()
    assert m.static_size_ == 6
    net = m.network()
    np.testing.assert_allclose(net.user.weight.detach().numpy(), uv * (0.05 / uv.std()), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(net.item.weight.detach().numpy()[:-1], iv * (0.05 / iv.std()), rtol=1e-5, atol=1e-7)
    by_name = TwoTowerContext(init_from="ials", epochs=1, context_length=2, batch_size=64).fit(data, FitOptions(seed=0))
    assert by_name.static_size_ == IALS().config.embedding_size
    with pytest.raises(ConfigError):
        TwoTowerContext().init_with(object())  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        TwoTowerContext(init_from="popularity", epochs=1).fit(data)


@pytest.mark.slow
def test_context_beats_no_context_on_a_sequential_log():
    """Users pick items at random, and after item ``x`` they pick ``f(x)`` (a fixed permutation):
    the set of a user's items says nothing about the next one, their last item says everything."""
    rng = np.random.default_rng(0)
    n_items = 30
    f = rng.permutation(n_items)
    rows, test_rows = [], []
    for u in range(120):
        seq: list[int] = []
        while len(seq) < 7:  # x, f(x), y, f(y), z, f(z), w -> test f(w)
            x = int(rng.integers(n_items))
            nxt = [x] if len(seq) == 6 else [x, int(f[x])]
            if len(set(seq) | set(nxt)) < len(seq) + len(nxt) or (len(seq) == 6 and int(f[x]) in seq + [x]):
                continue
            seq += nxt
        rows += [(u, it, t) for t, it in enumerate(seq)]
        test_rows.append((u, int(f[seq[-1]]), len(seq)))
    cols = ["user_id", "item_id", "timestamp"]
    data = Interactions.from_dataframe(pd.DataFrame(rows + test_rows, columns=cols), timestamp="timestamp")
    is_test = np.zeros(len(data), bool)
    is_test[len(rows):] = True
    train, test = data.subset(~is_test), data.subset(is_test)

    def hr(model) -> float:
        users = np.unique(test.user_idx)
        recs, _ = model.recommend_indices(users, 3)
        truth = test.csr()
        return float(np.mean([truth[u, recs[j]].sum() > 0 for j, u in enumerate(users)]))

    cfg = {"epochs": 15, "embedding_size": 16, "hidden": (32,), "batch_size": 64, "learning_rate": 0.01}
    ctx = TwoTowerContext(context_length=1, **cfg).fit(train, FitOptions(seed=0, threads=1))
    flat = TwoTowerContext(context_length=0, **cfg).fit(train, FitOptions(seed=0, threads=1))
    # (co-occurrence still lets the static model guess the partner of the one unpaired item: 0.44)
    assert hr(ctx) > 0.65 and hr(ctx) > hr(flat) + 0.2, (hr(ctx), hr(flat))


def test_events_map_to_known_items_and_stay_aligned():
    from recforge.errors import DataError

    m = _trained(epochs=1)
    ids = m.items_.ids
    ev = m._events_indices({"items": [ids[2], "no-such-item", ids[5]], "kinds": ["click", "like", None],
                            "values": [1.0, 2.0, 3.0], "times": [10.0, 20.0, 30.0]})
    np.testing.assert_array_equal(ev["items"], [2, 5])
    assert list(ev["kinds"]) == ["click", None]
    np.testing.assert_array_equal(ev["values"], [1.0, 3.0])
    np.testing.assert_array_equal(ev["times"], [10.0, 30.0])
    with pytest.raises(DataError, match="kinds has 1 entries for 2 items"):
        m.scores_for_history([ids[1]], events={"items": [ids[1], ids[2]], "kinds": ["click"]})
    # an event of an unknown kind counts as a generic interaction, a click on a rating model as average
    ctx = m._context_of(-1, np.empty(0, np.int64), None, {"items": np.array([1, 2]), "kinds": ["zap", "click"],
                                                           "values": np.array([5.0, 5.0])})
    np.testing.assert_array_equal(ctx[1], [ACTION_KINDS.index("interaction"), ACTION_KINDS.index("click")])
    np.testing.assert_array_equal(ctx[2], [0.0, 0.0])
    rated = m._context_of(-1, np.empty(0, np.int64), None, {"items": np.array([1]), "kinds": ["rating"],
                                                             "values": np.array([5.0])})
    assert rated[2][0] == pytest.approx((5.0 - m.value_mean_) / m.value_std_)

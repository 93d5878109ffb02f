"""Property-based tests of every split: partition, no leakage, determinism, time order."""

from __future__ import annotations

from collections import Counter

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recforge.data.interactions import Interactions
from recforge.data.vocabulary import Vocabulary
from recforge.errors import DataError
from recforge.splits import (
    Split,
    cold_start_split,
    global_time_split,
    kfold,
    leave_one_out,
    random_split,
    ratio_user_split,
    temporal_user_split,
)

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def interactions(draw: st.DrawFn, timestamps: bool | None = None, min_rows: int = 2) -> Interactions:
    """Small interaction sets with unique (user, item) pairs, rows in random order, many time ties."""
    n_users = draw(st.integers(1, 7))
    n_items = draw(st.integers(1, 9))
    cells = draw(
        st.lists(
            st.tuples(st.integers(0, n_users - 1), st.integers(0, n_items - 1)),
            min_size=min_rows,
            max_size=40,
            unique=True,
        )
    )
    n = len(cells)
    u = np.array([c[0] for c in cells])
    i = np.array([c[1] for c in cells])
    values = np.array(draw(st.lists(st.integers(1, 5), min_size=n, max_size=n)), dtype=np.float32)
    with_ts = draw(st.booleans()) if timestamps is None else timestamps
    ts = np.array(draw(st.lists(st.integers(0, 6), min_size=n, max_size=n))) if with_ts else None
    # raw ids are spaced out so that index != raw id, and vocabularies may hold users with no rows
    users = Vocabulary(np.arange(n_users) * 3 + 100, "user")
    items = Vocabulary(np.arange(n_items) * 7 + 5, "item")
    return Interactions(u, i, values, users, items, ts, name="toy")


def rows(d: Interactions) -> Counter:
    ts = d.timestamps if d.timestamps is not None else np.full(len(d), -1)
    return Counter(zip(d.user_idx.tolist(), d.item_idx.tolist(), d.values.tolist(), ts.tolist()))


def parts(split: Split) -> list[Interactions]:
    return [p for p in (split.train, split.test, split.valid) if p is not None]


def check_partition(data: Interactions, split: Split) -> None:
    """Parts rebuild the input exactly, share vocabularies, and no (user, item) pair leaks."""
    total = Counter()
    for p in parts(split):
        total += rows(p)
        assert p.users is data.users and p.items is data.items
        assert p.explicit == data.explicit
    assert total == rows(data)
    pairs = [set(p.pair_keys().tolist()) for p in parts(split)]
    for a in range(len(pairs)):
        for b in range(a + 1, len(pairs)):
            assert not pairs[a] & pairs[b]


def same(a: Split, b: Split) -> bool:
    return all(
        np.array_equal(pa.user_idx, pb.user_idx) and np.array_equal(pa.item_idx, pb.item_idx)
        for pa, pb in zip(parts(a), parts(b))
    ) and len(parts(a)) == len(parts(b))


def per_user_time_order(split: Split) -> None:
    """For each user, every test row is at or after every train row in (timestamp, item) order."""
    tr, te = split.train, split.test
    for u in np.unique(te.user_idx):
        train_keys = [(t, i) for t, i in zip(tr.timestamps[tr.user_idx == u], tr.item_idx[tr.user_idx == u])]
        test_keys = [(t, i) for t, i in zip(te.timestamps[te.user_idx == u], te.item_idx[te.user_idx == u])]
        assert train_keys, "a test user must keep a train row"
        assert min(test_keys) > max(train_keys)


@SETTINGS
@given(interactions(min_rows=5), st.sampled_from([0.2, 0.5]), st.sampled_from([0.0, 0.2]), st.integers(0, 3))
def test_random_split(data: Interactions, test_fraction: float, valid_fraction: float, seed: int) -> None:
    split = random_split(data, test_fraction, seed=seed, valid_fraction=valid_fraction)
    check_partition(data, split)
    assert len(split.test) == int(np.floor(test_fraction * len(data) + 0.5))
    assert (split.valid is not None) == (valid_fraction > 0)
    assert same(split, random_split(data, test_fraction, seed=seed, valid_fraction=valid_fraction))


@SETTINGS
@given(interactions(min_rows=3), st.integers(2, 3), st.integers(0, 3), st.booleans())
def test_kfold(data: Interactions, n_folds: int, seed: int, shuffle: bool) -> None:
    folds = kfold(data, n_folds, seed=seed, shuffle=shuffle)
    assert [f.fold for f in folds] == list(range(n_folds))
    for f in folds:
        check_partition(data, f)
    # the test sets partition the rows, with sizes differing by at most one
    all_test = sum((rows(f.test) for f in folds), Counter())
    assert all_test == rows(data)
    sizes = [len(f.test) for f in folds]
    assert max(sizes) - min(sizes) <= 1 and sizes == sorted(sizes, reverse=True)
    again = kfold(data, n_folds, seed=seed, shuffle=shuffle)
    assert all(same(a, b) for a, b in zip(folds, again))


@SETTINGS
@given(interactions(), st.sampled_from([0.2, 0.3, 0.5]), st.integers(0, 3))
def test_ratio_user_split(data: Interactions, fraction: float, seed: int) -> None:
    split = ratio_user_split(data, fraction, seed=seed)
    check_partition(data, split)
    counts = data.user_counts()
    n_test = np.bincount(split.test.user_idx, minlength=data.n_users)
    want = np.minimum(counts - 1, np.maximum(1, np.floor(fraction * counts + 0.5)))
    expected = np.where(counts >= 2, want, 0)
    assert np.array_equal(n_test, expected)
    assert same(split, ratio_user_split(data, fraction, seed=seed))


@SETTINGS
@given(interactions(timestamps=True), st.integers(1, 3))
def test_temporal_user_split_n(data: Interactions, n: int) -> None:
    split = temporal_user_split(data, n=n)
    check_partition(data, split)
    per_user_time_order(split)
    counts = data.user_counts()
    n_test = np.bincount(split.test.user_idx, minlength=data.n_users)
    assert np.array_equal(n_test, np.clip(counts - 1, 0, n))
    assert same(split, temporal_user_split(data, n=n))


@SETTINGS
@given(interactions(timestamps=True), st.sampled_from([0.1, 0.25, 0.5, 0.8]))
def test_temporal_user_split_fraction(data: Interactions, fraction: float) -> None:
    split = temporal_user_split(data, fraction=fraction)
    check_partition(data, split)
    per_user_time_order(split)
    counts = data.user_counts()
    n_test = np.bincount(split.test.user_idx, minlength=data.n_users)
    want = np.minimum(counts - 1, np.maximum(1, np.floor(fraction * counts + 0.5)))
    assert np.array_equal(n_test, np.where(counts >= 2, want, 0))


@SETTINGS
@given(interactions(timestamps=True), st.sampled_from([0.3, 0.5, 0.8]))
def test_global_time_split(data: Interactions, quantile: float) -> None:
    try:
        split = global_time_split(data, quantile=quantile)
    except DataError:
        # only when ties at the cut leave one side empty
        assert data.timestamps.min() == np.sort(data.timestamps)[int(quantile * len(data))]
        return
    check_partition(data, split)
    cut = split.info["cut"]
    assert (split.test.timestamps >= cut).all() and (split.train.timestamps < cut).all()
    assert split.train.timestamps.max() < split.test.timestamps.min()
    again = global_time_split(data, cut=cut)
    assert same(split, again)


@SETTINGS
@given(interactions(), st.integers(0, 3), st.booleans())
def test_leave_one_out(data: Interactions, seed: int, valid: bool) -> None:
    counts = data.user_counts()
    if counts.max() < 2:
        return
    split = leave_one_out(data, seed=seed, valid=valid)
    check_partition(data, split)
    assert np.array_equal(np.bincount(split.test.user_idx, minlength=data.n_users), (counts >= 2).astype(int))
    if valid:
        n_valid = np.bincount(split.valid.user_idx, minlength=data.n_users)
        assert np.array_equal(n_valid, (counts >= 3).astype(int))
    if data.timestamps is not None:
        per_user_time_order(split)
        if valid:
            # the validation row is later than every train row of its user and earlier than the test row
            merged = Split(split.train, split.valid)
            per_user_time_order(merged)
    assert same(split, leave_one_out(data, seed=seed, valid=valid))


@SETTINGS
@given(interactions(min_rows=2), st.sampled_from(["users", "items"]), st.integers(0, 2), st.integers(0, 3))
def test_cold_start_split(data: Interactions, kind: str, reveal: int, seed: int) -> None:
    group = data.user_idx if kind == "users" else data.item_idx
    vocab = data.users if kind == "users" else data.items
    if len(np.unique(group)) < 2:
        return
    split = cold_start_split(data, 0.3, kind=kind, seed=seed, reveal=reveal)
    check_partition(data, split)
    held = split.info["held_out_idx"]
    assert np.array_equal(vocab.ids[held], split.info["held_out"])
    assert 1 <= len(held) < len(np.unique(group))
    tr_group = split.train.user_idx if kind == "users" else split.train.item_idx
    te_group = split.test.user_idx if kind == "users" else split.test.item_idx
    # test holds only held-out entities; train holds at most `reveal` rows of each
    assert np.isin(te_group, held).all()
    n_train_held = np.bincount(tr_group, minlength=len(vocab))[held]
    n_all = np.bincount(group, minlength=len(vocab))[held]
    assert np.array_equal(n_train_held, np.minimum(n_all, reveal))
    if reveal and data.timestamps is not None:
        other_tr = split.train.item_idx if kind == "users" else split.train.user_idx
        other_te = split.test.item_idx if kind == "users" else split.test.user_idx
        for h in held:
            shown = list(zip(split.train.timestamps[tr_group == h], other_tr[tr_group == h]))
            hidden = list(zip(split.test.timestamps[te_group == h], other_te[te_group == h]))
            if shown and hidden:
                assert max(shown) < min(hidden)
    assert same(split, cold_start_split(data, 0.3, kind=kind, seed=seed, reveal=reveal))


# ------------------------------------------------------------------ different seeds differ
def _medium(timestamps: bool = True) -> Interactions:
    rng = np.random.default_rng(123)
    n_users, n_items = 30, 40
    keys = rng.choice(n_users * n_items, size=300, replace=False)
    u, i = keys // n_items, keys % n_items
    ts = rng.integers(0, 1000, size=300) if timestamps else None
    users, items = Vocabulary(np.arange(n_users)), Vocabulary(np.arange(n_items))
    return Interactions(u, i, rng.integers(1, 6, 300), users, items, ts)


def test_random_splits_depend_on_seed() -> None:
    data = _medium()
    no_ts = _medium(timestamps=False)
    makers = {
        "random": lambda s: random_split(data, 0.2, seed=s, valid_fraction=0.1),
        "kfold": lambda s: kfold(data, 5, seed=s)[0],
        "ratio": lambda s: ratio_user_split(data, 0.2, seed=s),
        "loo-no-ts": lambda s: leave_one_out(no_ts, seed=s),
        "cold-users": lambda s: cold_start_split(data, 0.2, seed=s),
        "cold-items": lambda s: cold_start_split(data, 0.2, kind="items", seed=s),
    }
    for name, make in makers.items():
        splits = [make(s) for s in range(4)]
        assert same(splits[0], make(0)), name
        for a in range(4):
            for b in range(a + 1, 4):
                assert not same(splits[a], splits[b]), (name, a, b)
    # the onboarding order without timestamps is drawn with the seed too
    a = cold_start_split(no_ts, 0.5, seed=0, reveal=2)
    b = cold_start_split(no_ts, 0.5, seed=1, reveal=2)
    assert not same(a, b)


def test_leave_one_out_ignores_seed_with_timestamps() -> None:
    data = _medium()
    assert same(leave_one_out(data, seed=0), leave_one_out(data, seed=5))

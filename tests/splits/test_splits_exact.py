"""Small split cases with known answers, and argument checking."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recforge.data.interactions import Interactions
from recforge.errors import ConfigError, DataError
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


def frame(rows: list[tuple], timestamps: bool = True) -> Interactions:
    cols = ["user", "item", "rating", "ts"]
    df = pd.DataFrame(rows, columns=cols[: len(rows[0])])
    return Interactions.from_dataframe(df, "user", "item", "rating", "ts" if timestamps else None)


def raw_pairs(d: Interactions) -> set[tuple]:
    df = d.to_dataframe()
    return set(zip(df.user_id.tolist(), df.item_id.tolist()))


def test_leave_one_out_breaks_time_ties_by_largest_raw_item_id() -> None:
    data = frame(
        [
            ("a", 5, 4.0, 10),
            ("a", 30, 3.0, 20),  # ties with items 7 and 12 at t=20: 30 is the largest id
            ("a", 7, 2.0, 20),
            ("a", 12, 5.0, 20),
            ("b", 9, 1.0, 50),
            ("b", 2, 3.0, 40),
            ("c", 4, 5.0, 1),  # single interaction: stays in train
        ]
    )
    split = leave_one_out(data)
    assert raw_pairs(split.test) == {("a", 30), ("b", 9)}
    assert raw_pairs(split.train) == {("a", 5), ("a", 7), ("a", 12), ("b", 2), ("c", 4)}
    assert split.name == "leave-one-out" and split.info["timestamps"] is True
    with_valid = leave_one_out(data, valid=True)
    # second-latest of a is 12 (ties at t=20 ordered 7 < 12 < 30); b has only two rows
    assert raw_pairs(with_valid.valid) == {("a", 12)}
    assert raw_pairs(with_valid.test) == {("a", 30), ("b", 9)}


def test_leave_one_out_tie_break_uses_numeric_not_string_order() -> None:
    # raw ids 9 and 10: as ints 10 > 9 (as strings "9" > "10"), and the int vocabulary sorts them numerically
    data = frame([(1, 9, 1.0, 5), (1, 10, 1.0, 5), (1, 3, 1.0, 1)])
    assert raw_pairs(leave_one_out(data).test) == {(1, 10)}


def test_leave_one_out_without_timestamps_is_seeded() -> None:
    data = frame([(u, i, 1.0) for u in range(5) for i in range(6)], timestamps=False)
    a, b = leave_one_out(data, seed=3), leave_one_out(data, seed=3)
    assert raw_pairs(a.test) == raw_pairs(b.test)
    assert len(a.test) == 5 and a.info["timestamps"] is False
    others = [raw_pairs(leave_one_out(data, seed=s).test) for s in range(4)]
    assert len({frozenset(o) for o in others}) > 1


def test_temporal_user_split_counts_and_rounding() -> None:
    rows = [("u5", i, 1.0, t) for i, t in zip(range(5), [5, 1, 4, 2, 3])]  # 5 rows, latest: items 0, 2
    rows += [("u2", 10, 1.0, 1), ("u2", 11, 1.0, 1)]  # tie: item 11 counts as later
    rows += [("u1", 20, 1.0, 9)]
    data = frame(rows)
    split = temporal_user_split(data, fraction=0.3)  # round(1.5) = 2, round(0.6) = 1
    assert raw_pairs(split.test) == {("u5", 0), ("u5", 2), ("u2", 11)}
    assert ("u1", 20) in raw_pairs(split.train)
    split = temporal_user_split(data, n=10)  # capped so each user keeps one train row
    assert raw_pairs(split.train) == {("u5", 1), ("u2", 10), ("u1", 20)}
    assert split.info == {"n": 10}


def test_global_time_split_quantile_and_cut() -> None:
    data = frame([(t % 3, t, 1.0, t) for t in range(10, 0, -1)])
    # timestamps 1..10: q=0.8 cuts at the 9th value
    split = global_time_split(data, quantile=0.8)
    assert split.info["cut"] == 9
    assert sorted(split.test.timestamps.tolist()) == [9, 10]
    split = global_time_split(data, cut=4)
    assert sorted(split.train.timestamps.tolist()) == [1, 2, 3]
    with pytest.raises(DataError, match="leaves test empty"):
        global_time_split(data, cut=11)
    with pytest.raises(DataError, match="leaves train empty"):
        global_time_split(data, cut=1)


def test_random_split_sizes() -> None:
    data = frame([(u, i, 1.0, 0) for u in range(2) for i in range(5)])
    split = random_split(data, 0.2, seed=1, valid_fraction=0.1)
    assert (len(split.train), len(split.test), len(split.valid)) == (7, 2, 1)
    assert split.info["seed"] == 1
    assert random_split(data, 0.25).valid is None and len(random_split(data, 0.25).test) == 3  # 2.5 -> 3


def test_kfold_block_sizes_without_shuffle() -> None:
    data = frame([(u, i, 1.0, 0) for u in range(1) for i in range(11)])
    folds = kfold(data, 3, shuffle=False)
    assert [sorted(f.test.item_idx.tolist()) for f in folds] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10]]
    assert all(isinstance(f, Split) and f.name == "kfold" for f in folds)


def test_ratio_user_split_keeps_a_train_row() -> None:
    rows = [("a", 1, 1.0, 0), ("a", 2, 1.0, 0), ("b", 1, 1.0, 0)] + [("c", i, 1.0, 0) for i in range(10)]
    data = frame(rows)
    split = ratio_user_split(data, 0.2, seed=0)
    test_users = split.test.to_dataframe().user_id.value_counts().to_dict()
    assert test_users == {"a": 1, "c": 2}


def test_cold_start_users_with_onboarding_rows() -> None:
    rows = [(u, i, 1.0, 100 * u + (7 - i)) for u in range(4) for i in range(4)]  # earliest = largest item
    data = frame(rows)
    split = cold_start_split(data, 0.5, seed=2, reveal=1)
    held = split.info["held_out"].tolist()
    assert len(held) == 2 and split.info["kind"] == "users"
    for u in held:
        train_items = {i for uu, i in raw_pairs(split.train) if uu == u}
        assert train_items == {3}  # the earliest row is revealed
        assert {i for uu, i in raw_pairs(split.test) if uu == u} == {0, 1, 2}
    assert {u for u, _ in raw_pairs(split.test)} == set(held)


def test_cold_start_items_holds_out_whole_items() -> None:
    data = frame([(u, i, 1.0, u) for u in range(5) for i in range(10)])
    split = cold_start_split(data, 0.2, kind="items", seed=0)
    held = set(split.info["held_out"].tolist())
    assert len(held) == 2
    assert {i for _, i in raw_pairs(split.test)} == held
    assert not held & {i for _, i in raw_pairs(split.train)}
    assert split.name == "cold-start-items"


def test_parts_keep_parent_vocabularies_and_order() -> None:
    data = frame([(u, i, float(u + i), 10 * u + i) for u in range(3) for i in range(4)])
    split = random_split(data, 0.5, seed=0)
    assert split.train.users is data.users and split.test.items is data.items
    assert np.all(np.diff(split.train.timestamps) > 0)  # parent row order kept
    assert split.train.n_users == 3 and split.train.name == f"{data.name}:train"


@pytest.mark.parametrize(
    "call",
    [
        lambda d: random_split(d, 0.0),
        lambda d: random_split(d, 1.0),
        lambda d: random_split(d, 0.6, valid_fraction=0.4),
        lambda d: random_split(d, 0.2, seed=-1),
        lambda d: kfold(d, 1),
        lambda d: temporal_user_split(d),
        lambda d: temporal_user_split(d, n=1, fraction=0.5),
        lambda d: temporal_user_split(d, n=0),
        lambda d: global_time_split(d),
        lambda d: global_time_split(d, quantile=1.5),
        lambda d: cold_start_split(d, kind="pairs"),
        lambda d: cold_start_split(d, reveal=-1),
        lambda d: ratio_user_split(d, 1.2),
    ],
)
def test_bad_arguments_raise_config_error(call) -> None:
    data = frame([(u, i, 1.0, u + i) for u in range(3) for i in range(3)])
    with pytest.raises(ConfigError):
        call(data)


def test_time_splits_need_timestamps() -> None:
    data = frame([(u, i, 1.0) for u in range(3) for i in range(3)], timestamps=False)
    with pytest.raises(DataError, match="temporal_user_split needs timestamps"):
        temporal_user_split(data, n=1)
    with pytest.raises(DataError, match="global_time_split needs timestamps"):
        global_time_split(data, quantile=0.5)


def test_too_small_data_raises_data_error() -> None:
    data = frame([(0, 0, 1.0, 0), (0, 1, 1.0, 1)])
    with pytest.raises(DataError):
        kfold(data, 3)
    with pytest.raises(DataError):
        cold_start_split(data)  # a single user cannot be split into cold and warm
    with pytest.raises(DataError):
        leave_one_out(frame([(0, 0, 1.0, 0), (1, 1, 1.0, 1)]))

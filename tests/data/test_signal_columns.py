"""Named signal columns through every reader: exact values, the duplicates rule, kinds checked,
one-line errors."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recforge.data.interactions import Interactions, parse_signals
from recforge.data.source import DataSource, data_source, to_frame
from recforge.data.stats import compute_stats, signal_stats
from recforge.data.streaming import read_interactions
from recforge.errors import ConfigError, DataError

# (1, a) is repeated: plays 3 then 2, hours 0.5 then 1.5, rating 4 then 2, liked 0 then 1 (by time)
LOG = ("user_id,item_id,plays,hours,rating,liked,timestamp\n"
       "1,a,3,0.5,4,0,10\n"
       "1,b,1,,,1,20\n"
       "2,a,0,2.0,5,0,30\n"
       "1,a,2,1.5,2,1,40\n")
KINDS = {"plays": "count", "hours": "duration", "rating": "rating", "liked": "binary"}
SIGNALS = ["plays", "hours:duration", "rating:rating", "liked:binary"]


def _write(tmp_path: Path, text: str = LOG, name: str = "log.csv") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def _rows(inter: Interactions) -> dict[tuple, dict[str, float]]:
    df = inter.to_dataframe()
    return {(r.user_id, r.item_id): {k: getattr(r, k) for k in inter.signals} for r in df.itertuples()}


def test_parse_signals_forms() -> None:
    assert parse_signals(["plays", "hours:duration"]) == {"plays": "count", "hours": "duration"}
    assert parse_signals("plays,rating:rating") == {"plays": "count", "rating": "rating"}
    assert parse_signals({"liked": "binary"}) == {"liked": "binary"}
    assert parse_signals(None) == {}
    with pytest.raises(ConfigError, match="signal 'hours': kind 'minutes' is not one of count, duration"):
        parse_signals(["hours:minutes"])
    with pytest.raises(ConfigError, match="signal 'plays' is named twice"):
        parse_signals(["plays", "plays:count"])


# what each --duplicates rule makes of the (1, a) pair; (1, b) keeps its missing hours and rating
@pytest.mark.parametrize("how, want", [
    ("first", {"plays": 3, "hours": 0.5, "rating": 4, "liked": 0}),
    ("last", {"plays": 2, "hours": 1.5, "rating": 2, "liked": 1}),
    ("sum", {"plays": 5, "hours": 2.0, "rating": 3, "liked": 1}),  # rating: mean; binary: max
    ("mean", {"plays": 2.5, "hours": 1.0, "rating": 3, "liked": 0.5}),
])
def test_duplicates_merge_signals_by_the_value_rule(tmp_path: Path, how: str, want: dict[str, float]) -> None:
    inter = Interactions.from_csv(_write(tmp_path), timestamp="timestamp", duplicates=how, signals=SIGNALS)
    assert inter.signal_kinds == KINDS
    rows = _rows(inter)
    assert rows[(1, "a")] == pytest.approx(want)
    assert rows[(2, "a")] == pytest.approx({"plays": 0, "hours": 2.0, "rating": 5, "liked": 0})
    b = rows[(1, "b")]
    assert b["plays"] == 1 and b["liked"] == 1 and np.isnan(b["hours"]) and np.isnan(b["rating"])


def test_sum_skips_missing_cells_and_all_missing_stays_missing() -> None:
    df = pd.DataFrame({"user_id": [1, 1, 1, 1], "item_id": [5, 5, 6, 6],
                       "hours": [np.nan, 2.0, np.nan, np.nan]})
    inter = Interactions.from_dataframe(df, duplicates="sum", signals=["hours:duration"])
    got = dict(zip(inter.to_dataframe()["item_id"], inter.signals["hours"], strict=True))
    assert got[5] == 2.0 and np.isnan(got[6])
    np.testing.assert_array_equal(inter.values, [2, 2])  # the value is summed as before


def test_every_reader_gives_the_same_signals(tmp_path: Path) -> None:
    csv = _write(tmp_path)
    pq = tmp_path / "log.parquet"
    pd.read_csv(csv, dtype={"item_id": str}).to_parquet(pq)
    kw = {"duplicates": "last", "signals": SIGNALS}
    logs = [
        Interactions.from_csv(csv, timestamp="timestamp", **kw),
        Interactions.from_parquet(pq, timestamp="timestamp", **kw),
        read_interactions(csv, timestamp="timestamp", **kw),
        read_interactions(pq, timestamp="timestamp", **kw),
        data_source(csv, **kw).load().interactions,
        data_source(pq, **kw).load().interactions,
    ]
    want = _rows(logs[0])
    for inter in logs[1:]:
        assert inter.signal_kinds == KINDS
        got = _rows(inter)
        assert got.keys() == want.keys()
        for key in want:
            np.testing.assert_array_equal(list(got[key].values()), list(want[key].values()))


@pytest.mark.parametrize("cell, kind, message", [
    ("x", "count", "line 3: signal 'plays' is not a number ('x')"),
    ("-1", "count", "line 3: signal 'plays' is negative"),
    ("-1", "duration", "line 3: signal 'plays' is negative"),
    ("2", "binary", "line 2: signal 'plays' is not 0 or 1 (a binary signal) (3)"),  # line 2 has 3 plays
])
def test_bad_signal_cells_are_one_line_errors(tmp_path: Path, cell: str, kind: str, message: str) -> None:
    p = _write(tmp_path, LOG.replace("1,b,1,", f"1,b,{cell},"))
    message = re.escape(message)
    with pytest.raises(DataError, match=message):
        Interactions.from_csv(p, duplicates="last", signals=[f"plays:{kind}"])
    with pytest.raises(DataError, match=message):
        data_source(p, duplicates="last", signals=[f"plays:{kind}", "rating:rating"]).load()
    with pytest.raises(DataError, match=message):
        read_interactions(p, duplicates="last", signals=[f"plays:{kind}"])
    # a rating signal may be any number
    if kind != "count" or cell != "x":
        Interactions.from_csv(p, duplicates="last", signals=["plays:rating"])


def test_unknown_signal_column_lists_columns_and_nearest(tmp_path: Path) -> None:
    p = _write(tmp_path)
    with pytest.raises(DataError,
                       match=r"no column 'play' \(--signal\); did you mean 'plays'\? the file's columns"):
        data_source(p, duplicates="last", signals=["play"]).load()
    with pytest.raises(DataError, match="missing column"):
        Interactions.from_csv(p, signals=["play"])


def test_signal_columns_are_not_guessed_as_the_value(tmp_path: Path) -> None:
    p = _write(tmp_path, "user_id,item_id,plays,rating\n1,a,3,\n1,b,1,4\n2,a,0,\n")
    # without --signal, 'rating' is the value column and its empty cells are an error
    with pytest.raises(DataError, match="line 2: column 'rating' is empty"):
        data_source(p).load()
    ds = data_source(p, signals=["plays", "rating:rating"]).load()
    assert not ds.interactions.explicit and ds.feedback == "implicit/binary"
    np.testing.assert_array_equal(ds.interactions.values, [1, 1, 1])
    assert "signals=plays:count, rating:rating" in " ".join(ds.notes)


def test_utility_is_the_value_and_is_stated(tmp_path: Path) -> None:
    p = _write(tmp_path)
    ds = data_source(p, duplicates="last", signals=SIGNALS,
                     utility="log1p(plays) + 0.5*clip(hours, 0, 1) + rating - 2*liked").load()
    inter = ds.interactions
    got = dict(zip(zip(inter.to_dataframe()["user_id"], inter.to_dataframe()["item_id"]), inter.values))
    assert got[(1, "a")] == pytest.approx(np.log1p(2) + 0.5 * 1 + 2 - 2)
    assert got[(1, "b")] == pytest.approx(np.log1p(1) + 0 + 0 - 2)  # missing hours and rating count 0
    assert got[(2, "a")] == pytest.approx(0 + 0.5 + 5)
    assert inter.explicit and ds.task == "rating" and ds.feedback == "explicit"
    assert ds.utility == "log1p(plays) + 0.5*clip(hours, 0, 1) + rating - 2*liked"
    assert any("utility = log1p(plays)" in n for n in ds.notes)
    implicit = data_source(p, duplicates="last", signals=SIGNALS, utility="plays", feedback="implicit").load()
    assert implicit.feedback == "implicit/utility"
    np.testing.assert_array_equal(np.sort(implicit.interactions.values), [0, 1, 2])


def test_utility_options_that_contradict_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError,
                       match="utility names 'hours', not declared as a signal: add --signal hours"):
        DataSource(path="log.csv", signals=("plays",), utility="plays + hours")
    with pytest.raises(ConfigError, match="drop --rating-col"):
        DataSource(path="log.csv", rating_col="rating", signals=("plays",), utility="plays")
    with pytest.raises(ConfigError, match="drop --weights"):
        DataSource(path="log.csv", weights="log1p", signals=("plays",), utility="plays")
    with pytest.raises(ConfigError, match="signals, utility apply to files only"):
        DataSource(name="ml-100k", signals=("plays",), utility="plays")
    # the config-table forms: {name = kind} and term tables, stored as text
    src = DataSource.from_table({"path": "log.csv", "signals": {"plays": "count", "hours": "duration"},
                                 "utility": {"terms": [{"signal": "plays", "transform": "log1p"},
                                                       {"signal": "hours", "weight": 0.5}]}})
    assert src.signals == ("plays:count", "hours:duration") and src.utility == "log1p(plays) + 0.5*hours"
    assert DataSource.from_table(src.to_table()) == src


def test_kcore_given_split_and_split_files_keep_signals_aligned(tmp_path: Path) -> None:
    rows = [f"{u},{i},{u * 10 + i},{i % 2}" for u in range(1, 5) for i in range(1, 4)] + ["9,1,99,1"]
    p = _write(tmp_path, "user_id,item_id,plays,liked\n" + "\n".join(rows) + "\n")
    ds = data_source(p, signals=["plays", "liked:binary"], min_user_interactions=2).load()
    df = ds.interactions.to_dataframe()
    assert 9 not in set(df["user_id"])  # user 9 has one row
    np.testing.assert_array_equal(df["plays"], df["user_id"] * 10 + df["item_id"])
    np.testing.assert_array_equal(df["liked"], df["item_id"] % 2)
    # a given split of two files, and what `recforge split` writes reads back with the same signals
    train = tmp_path / "train.csv"
    test = tmp_path / "test.csv"
    frame = to_frame(ds.interactions)
    assert list(frame.columns) == ["user_id", "item_id", "plays", "liked"]
    frame.iloc[:8].to_csv(train, index=False)
    frame.iloc[8:].to_csv(test, index=False)
    given = data_source(None, train=str(train), test=str(test), signals=["plays", "liked:binary"]).load()
    split = given.split("given")
    for part in (split.train, split.test):
        d = part.to_dataframe()
        np.testing.assert_array_equal(d["plays"], d["user_id"] * 10 + d["item_id"])


def test_to_frame_names_the_value_column_apart_from_a_rating_signal(tmp_path: Path) -> None:
    p = _write(tmp_path)
    ds = data_source(p, duplicates="last", signals=SIGNALS, utility="plays + rating").load()
    frame = to_frame(ds.interactions)
    assert list(frame.columns) == ["user_id", "item_id", "value", "timestamp",
                                   "plays", "hours", "rating", "liked"]
    np.testing.assert_allclose(frame["value"], frame["plays"] + frame["rating"].fillna(0))


def test_signal_stats_by_hand() -> None:
    st = signal_stats({"plays": np.array([0, 2, 4, np.nan]), "none": np.array([np.nan, np.nan])},
                      {"plays": "count", "none": "rating"})
    assert st["plays"] == {"kind": "count", "count": 3, "missing": 1, "mean": 2.0, "min": 0.0, "max": 4.0,
                           "zero_share": pytest.approx(1 / 3)}
    assert st["none"] == {"kind": "rating", "count": 0, "missing": 2, "mean": None, "min": None, "max": None,
                          "zero_share": None}
    inter = Interactions.from_dataframe(pd.DataFrame({"user_id": [1, 2], "item_id": [1, 1], "h": [0.0, 3.0]}),
                                        signals=["h:duration"])
    assert compute_stats(inter).signals["h"]["mean"] == 1.5


def test_the_user_or_item_column_named_as_a_signal_says_so(tmp_path: Path) -> None:
    """--signal user_id used to say 'no user column found', which hid the cause."""
    p = _write(tmp_path)
    for col in ("user_id", "item_id"):
        with pytest.raises(DataError, match=f"column '{col}' is named as a signal .*drop it from the"):
            data_source(p, duplicates="last", signals=[col]).load()

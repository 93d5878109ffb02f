"""Streaming reader and memory-mapped store: same Interactions as the pandas readers, in bounded memory."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("pyarrow")

from recforge.data.interactions import Interactions  # noqa: E402
from recforge.data.streaming import check_duplicates, read_interactions  # noqa: E402
from recforge.errors import DataError  # noqa: E402


def _same(a: Interactions, b: Interactions) -> None:
    assert a.users == b.users and a.items == b.items
    for name in ("user_idx", "item_idx", "values"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    if a.timestamps is None:
        assert b.timestamps is None
    else:
        np.testing.assert_array_equal(a.timestamps, b.timestamps)
    assert a.explicit == b.explicit


def _frame(n: int = 5_000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    keys = rng.choice(300 * 80, size=n, replace=False)
    return pd.DataFrame({"user_id": keys // 80 + 10, "item_id": keys % 80 * 3, "rating": rng.integers(1, 6, n),
                         "timestamp": rng.integers(0, 10**9, n)})


@pytest.mark.parametrize("batch_rows", [64, 100_000])
def test_csv_and_parquet_match_the_pandas_readers(tmp_path, batch_rows):
    df = _frame()
    df.to_csv(tmp_path / "log.csv", index=False)
    df.to_parquet(tmp_path / "log.parquet")
    for path, reader in ((tmp_path / "log.csv", Interactions.from_csv), (tmp_path / "log.parquet", Interactions.from_parquet)):
        got = read_interactions(path, rating="rating", timestamp="timestamp", batch_rows=batch_rows)
        _same(got, reader(path, rating="rating", timestamp="timestamp"))
        assert got.users.ids.dtype == np.int64


def test_string_ids_and_leading_zeros_stay_strings(tmp_path):
    (tmp_path / "a.tsv").write_text("user_id\titem_id\n007\tx\n7\ty\nb\tx\n", encoding="utf-8")
    got = read_interactions(tmp_path / "a.tsv", batch_rows=2)
    _same(got, Interactions.from_csv(tmp_path / "a.tsv", sep="\t"))
    assert got.users.ids.tolist() == ["007", "7", "b"] and not got.explicit
    (tmp_path / "b.csv").write_text("user_id,item_id\n10,1\n-3,2\n", encoding="utf-8")
    assert read_interactions(tmp_path / "b.csv").users.ids.tolist() == [-3, 10]


def test_one_line_errors(tmp_path):
    (tmp_path / "miss.csv").write_text("user,item_id\n1,2\n", encoding="utf-8")
    with pytest.raises(DataError, match="missing column.*'user_id'"):
        read_interactions(tmp_path / "miss.csv")
    (tmp_path / "empty_id.csv").write_text("user_id,item_id\n1,2\n,3\n", encoding="utf-8")
    with pytest.raises(DataError, match="line 3: column 'user_id' is empty"):
        read_interactions(tmp_path / "empty_id.csv")
    (tmp_path / "dup.csv").write_text("user_id,item_id,r\n1,2,1\n1,3,2\n1,2,4\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"line 4: duplicate \(user, item\) pair \(1, 2\)"):
        read_interactions(tmp_path / "dup.csv", rating="r")
    summed = read_interactions(tmp_path / "dup.csv", rating="r", duplicates="sum")
    _same(summed, Interactions.from_csv(tmp_path / "dup.csv", rating="r", duplicates="sum"))
    (tmp_path / "nan.csv").write_text("user_id,item_id,r\n1,2,1\n1,3,inf\n", encoding="utf-8")
    with pytest.raises(DataError, match="line 3: column 'r' is not finite"):
        read_interactions(tmp_path / "nan.csv", rating="r")
    with pytest.raises(DataError, match="no such file"):
        read_interactions(tmp_path / "none.csv")


@pytest.mark.parametrize("chunk", [None, 1, 7, 300])
def test_check_duplicates_names_both_rows(chunk):
    # chunk: rows gathered per range of users (1: one user at a time); the answer never depends on it
    u = np.array([0, 1, 0, 2, 1], np.int32)
    i = np.array([5, 5, 4, 5, 5], np.int32)
    assert check_duplicates(u, i, 6, chunk_rows=chunk) == (1, 4)
    assert check_duplicates(u[:4], i[:4], 6, chunk_rows=chunk) is None
    rng = np.random.default_rng(0)
    keys = rng.choice(1000 * 50, 5000, replace=False)
    uu, ii = (keys // 50).astype(np.int32), (keys % 50).astype(np.int32)
    assert check_duplicates(uu, ii, 50, chunk_rows=chunk) is None
    uu[4000], ii[4000] = uu[17], ii[17]
    assert check_duplicates(uu, ii, 50, chunk_rows=chunk) == (17, 4000)
    # two repeats: the smaller key is reported (the pandas reader's rule), its two earliest rows
    u2 = np.array([3, 1, 3, 1, 1], np.int32)
    i2 = np.array([0, 4, 0, 4, 4], np.int32)
    assert check_duplicates(u2, i2, 5, chunk_rows=chunk) == (1, 3)
    # a repeat only in a later range of users is still found, and an earlier range's stamps never
    # make a later user's first row look repeated
    u3 = np.array([0, 0, 1, 2, 2, 1, 3], np.int32)
    i3 = np.array([1, 2, 1, 1, 2, 2, 2], np.int32)
    assert check_duplicates(u3, i3, 3, chunk_rows=chunk) is None
    u3[6], i3[6] = 2, 1
    assert check_duplicates(u3, i3, 3, chunk_rows=chunk) == (3, 6)


def test_peak_memory_within_one_and_a_half_times_the_arrays(tmp_path):
    df = _frame(20_000, seed=1)
    df.to_parquet(tmp_path / "log.parquet")
    tracemalloc.start()
    try:
        got = read_interactions(tmp_path / "log.parquet", rating="rating", timestamp="timestamp", batch_rows=2_000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    final = sum(a.nbytes for a in (got.user_idx, got.item_idx, got.values, got.timestamps))
    assert peak <= 1.5 * final + 200_000  # numpy's allocations; a batch is 2,000 rows


def test_save_open_round_trip_is_memory_mapped(tmp_path):
    df = _frame(3_000)
    data = Interactions.from_dataframe(df, rating="rating", timestamp="timestamp", name="log")
    data = data.with_features(item_features=pd.DataFrame({"genre": ["a"] * data.n_items}, index=data.items.ids))
    data.save(tmp_path / "store")
    back = Interactions.open(tmp_path / "store")
    _same(back, data)
    assert back.name == "log" and isinstance(back.user_idx.base, np.memmap)
    assert (back.csr() != data.csr()).nnz == 0 and back.csr().has_sorted_indices
    pd.testing.assert_frame_equal(back.item_features, data.item_features)
    with pytest.raises(ValueError):  # read-only: nothing writes through to the file
        back.values[0] = 9.0
    # a second save replaces the folder atomically; a folder that is not a store is never replaced
    data.subset(np.arange(10)).save(tmp_path / "store")
    assert len(Interactions.open(tmp_path / "store")) == 10
    (tmp_path / "other").mkdir()
    with pytest.raises(DataError, match="not an interactions folder"):
        data.save(tmp_path / "other")
    with pytest.raises(DataError, match="no manifest.json"):
        Interactions.open(tmp_path / "other")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left


def test_models_fit_on_an_opened_store(tmp_path):
    from recforge.models.registry import make_model

    df = _frame(4_000)
    data = Interactions.from_dataframe(df, rating="rating")
    data.save(tmp_path / "store")
    opened = Interactions.open(tmp_path / "store")
    for name in ("ials", "item-knn-implicit"):
        a = make_model(name).fit(data)
        b = make_model(name).fit(opened)
        np.testing.assert_array_equal(a.recommend_indices(np.arange(5), 5)[0], b.recommend_indices(np.arange(5), 5)[0])


def test_load_file_and_cli_accept_a_store(tmp_path):
    from recforge.data import load_file

    data = Interactions.from_dataframe(_frame(500), rating="rating")
    data.save(tmp_path / "store")
    ds = load_file(tmp_path / "store")
    _same(ds.interactions, data)


def test_cli_synth_ingest_then_use_the_folder_as_dataset(tmp_path):
    from typer.testing import CliRunner

    from recforge.cli.main import app

    runner = CliRunner()
    log = tmp_path / "log.parquet"
    res = runner.invoke(app, ["data", "synth", "--users", "50", "--items", "40", "--interactions", "1500",
                              "--seed", "2", "--output", str(log), "--row-group-size", "500"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["data", "ingest", str(log), "--output", str(tmp_path / "store"),
                              "--rating-col", "rating", "--timestamp-col", "timestamp"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["data", "stats", str(tmp_path / "store"), "--format", "json"])
    assert res.exit_code == 0, res.output
    assert '"n_interactions": 1500' in res.output and '"n_users": 50' in res.output
    res = runner.invoke(app, ["data", "synth", "--users", "5", "--output", str(log)])
    assert res.exit_code == 2 and "give --items, --interactions" in res.output
    res = runner.invoke(app, ["data", "ingest", str(tmp_path / "nope.csv"), "--output", str(tmp_path / "s2")])
    assert res.exit_code == 2 and "no such file" in res.output

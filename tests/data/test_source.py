"""DataSource: every way of writing one log reads back the same interactions; columns, feedback,
weights and cleaning are stated; bad input is a one-line error naming file, line and column."""

from __future__ import annotations

import bz2
import gzip
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recforge.data import DataSource, data_source, load_file
from recforge.data.cleaning import kcore
from recforge.errors import ConfigError, DataError

ROWS = [  # userId, movieId, rating, timestamp (MovieLens ratings.csv layout)
    (1, 10, 4.0, 964982703), (1, 20, 3.5, 964982800), (2, 10, 5.0, 964983000),
    (2, 30, 2.0, 964983100), (3, 20, 1.5, 964983200), (3, 30, 4.5, 964983300),
]


def _text(sep: str, header: bool = True) -> str:
    lines = [sep.join(["userId", "movieId", "rating", "timestamp"])] if header else []
    lines += [sep.join(str(v) for v in r) for r in ROWS]
    return "\n".join(lines) + "\n"


def _fingerprint(ds) -> tuple:
    x = ds.interactions
    return (x.users.ids.tolist(), x.items.ids.tolist(), x.user_idx.tolist(), x.item_idx.tolist(),
            x.values.tolist(), None if x.timestamps is None else x.timestamps.tolist(), x.explicit)


def _variants(tmp: Path) -> dict[str, dict]:
    """file name -> DataSource options; each file holds ROWS."""
    (tmp / "r.csv").write_text(_text(","))
    (tmp / "r.tsv").write_text(_text("\t"))
    (tmp / "r.tab").write_text(_text("\t"))
    (tmp / "r.txt").write_text(_text(";"))
    (tmp / "r_pipe.dat").write_text(_text("|"))
    (tmp / "r_ml1m.dat").write_text(_text("::", header=False))
    (tmp / "r_space.txt").write_text(_text("   ", header=False))
    (tmp / "r_crlf.csv").write_bytes(_text(",").replace("\n", "\r\n").encode())
    (tmp / "r_other.csv").write_text(_text(",").replace("userId,movieId,rating,timestamp", "u,i,stars,when"))
    (tmp / "r_utf16.csv").write_text(_text(","), encoding="utf-16")
    with gzip.open(tmp / "r.csv.gz", "wt") as fh:
        fh.write(_text(","))
    with bz2.open(tmp / "r.tsv.bz2", "wt") as fh:
        fh.write(_text("\t"))
    with zipfile.ZipFile(tmp / "r.csv.zip", "w") as zf:
        zf.writestr("ratings.csv", _text(","))
    pd.DataFrame(ROWS, columns=["userId", "movieId", "rating", "timestamp"]).to_parquet(tmp / "r.parquet")
    cols = {"columns": "userId,movieId,rating,timestamp"}
    return {
        "r.csv": {}, "r.tsv": {}, "r.tab": {}, "r.txt": {}, "r_pipe.dat": {}, "r_ml1m.dat": cols,
        "r_space.txt": cols, "r_crlf.csv": {}, "r_utf16.csv": {"encoding": "utf-16"},
        "r_other.csv": {"user_col": "u", "item_col": "i", "rating_col": "stars", "timestamp_col": "when"},
        "r.csv.gz": {}, "r.tsv.bz2": {}, "r.csv.zip": {}, "r.parquet": {},
        "r.txt#sep": {"sep": ";"}, "r.tsv#tab": {"sep": "tab"},
    }


def test_every_variant_loads_identically(tmp_path: Path) -> None:
    want = None
    for name, opts in _variants(tmp_path).items():
        ds = DataSource(path=str(tmp_path / name.split("#")[0]), **opts).load()
        got = _fingerprint(ds)
        assert ds.feedback == "explicit", name
        if want is None:
            want = got
        assert got == want, name
    assert want[4] == [r[2] for r in ROWS]


def test_latin1_ids_and_encoding(tmp_path: Path) -> None:
    text = "user,item,rating\nzoë,café,4\nzoë,thé,2\nann,café,5\n"
    (tmp_path / "l1.csv").write_bytes(text.encode("latin-1"))
    (tmp_path / "u8.csv").write_text(text, encoding="utf-8")
    a = DataSource(path=str(tmp_path / "l1.csv"), encoding="latin-1").load()
    b = DataSource(path=str(tmp_path / "u8.csv")).load()
    assert _fingerprint(a) == _fingerprint(b)
    assert "café" in a.interactions.items.ids.tolist()
    with pytest.raises(DataError, match=r"l1\.csv: not utf-8 text.*--encoding"):
        DataSource(path=str(tmp_path / "l1.csv")).load()


def test_python_api_and_config_table_are_the_same_source(tmp_path: Path) -> None:
    (tmp_path / "r.csv").write_text(_text(","))
    path = str(tmp_path / "r.csv")
    a = data_source(path, weights="log1p").load()
    b = DataSource.from_table({"path": path, "weights": "log1p"}).load()
    c = load_file(path, weights="log1p")
    assert _fingerprint(a) == _fingerprint(b) == _fingerprint(c)
    assert a.feedback == "implicit/log1p"
    np.testing.assert_allclose(a.interactions.values, np.log1p([r[2] for r in ROWS]), rtol=1e-6)
    with pytest.raises(ConfigError, match="did you mean 'user_col'"):
        DataSource.from_table({"path": path, "usr_col": "u"})


def test_unknown_column_lists_columns_and_nearest(tmp_path: Path) -> None:
    (tmp_path / "r.csv").write_text(_text(","))
    with pytest.raises(DataError) as err:
        DataSource(path=str(tmp_path / "r.csv"), rating_col="ratng").load()
    msg = str(err.value)
    assert "no column 'ratng' (--rating-col)" in msg and "did you mean 'rating'" in msg
    assert "userId, movieId, rating, timestamp" in msg and "\n" not in msg
    (tmp_path / "x.csv").write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match="missing column\\(s\\) 'user_id', 'item_id': no user or item column found"):
        DataSource(path=str(tmp_path / "x.csv")).load()


def test_headerless_file_needs_columns(tmp_path: Path) -> None:
    (tmp_path / "u.data").write_text(_text("\t", header=False))
    with pytest.raises(DataError, match=r"line 1 looks like data.*--columns"):
        DataSource(path=str(tmp_path / "u.data")).load()
    with pytest.raises(DataError, match="--columns names 3 fields, but line 1 has 4"):
        DataSource(path=str(tmp_path / "u.data"), columns="a,b,c").load()


def test_non_numeric_rating_names_file_line_and_column(tmp_path: Path) -> None:
    (tmp_path / "bad.csv").write_text("userId,movieId,rating\n1,10,4\n1,20,five\n")
    with pytest.raises(DataError, match=r"bad\.csv: line 3: column 'rating' is not a number \('five'\)"):
        DataSource(path=str(tmp_path / "bad.csv")).load()
    (tmp_path / "empty.csv").write_text("userId,movieId,rating\n1,10,4\n1,20,\n")
    with pytest.raises(DataError, match=r"empty\.csv: line 3: column 'rating' is empty"):
        DataSource(path=str(tmp_path / "empty.csv")).load()


def test_feedback_kind_is_stated(tmp_path: Path) -> None:
    (tmp_path / "plays.dat").write_text("userID\tartistID\tweight\n2\t51\t13883\n2\t52\t11690\n3\t51\t5\n")
    plays = DataSource(path=str(tmp_path / "plays.dat")).load()
    assert plays.feedback == "implicit/binary" and plays.task == "ranking"
    assert plays.interactions.values.tolist() == [1.0, 1.0, 1.0]
    assert any("count=weight" in n for n in plays.notes) and any("weights=binary" in n for n in plays.notes)
    counts = DataSource(path=str(tmp_path / "plays.dat"), weights="count").load()
    assert sorted(counts.interactions.values.tolist()) == [5.0, 11690.0, 13883.0]
    explicit = DataSource(path=str(tmp_path / "plays.dat"), feedback="explicit").load()
    assert explicit.feedback == "explicit"
    (tmp_path / "clicks.csv").write_text("user_id,item_id\n1,2\n1,3\n")
    assert DataSource(path=str(tmp_path / "clicks.csv")).load().feedback == "implicit/binary"
    with pytest.raises(ConfigError, match="weights apply to implicit"):
        DataSource(path="x.csv", feedback="explicit", weights="count")
    with pytest.raises(ConfigError, match="did you mean 'log1p'"):
        DataSource(path="x.csv", weights="log1")


def test_duplicates_policies_report_what_they_merged(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text("user,item,rating,timestamp\n1,1,2,10\n1,1,4,20\n2,1,3,5\n")
    with pytest.raises(DataError, match=r"line \d: duplicate \(user, item\) pair"):
        DataSource(path=str(tmp_path / "d.csv")).load()
    want = {"first": 2.0, "last": 4.0, "sum": 6.0, "mean": 3.0}
    for how, value in want.items():
        ds = DataSource(path=str(tmp_path / "d.csv"), duplicates=how).load()
        assert ds.interactions.values[0] == value and len(ds.interactions) == 2
        assert any(f"duplicates={how} merged 1 repeated" in n for n in ds.notes)


def test_positive_threshold_and_kcore_are_stated(tmp_path: Path) -> None:
    (tmp_path / "r.csv").write_text(_text(","))
    ds = DataSource(path=str(tmp_path / "r.csv"), positive_threshold=4).load()
    assert ds.feedback == "implicit/binary" and len(ds.interactions) == 3
    assert any("kept 3 ratings >= 4" in n and "dropped 3" in n for n in ds.notes)
    # users 1 and 2 each keep one positive, user 3 one: a 2-core of users empties the log
    with pytest.raises(DataError, match="cleaning left no interactions"):
        DataSource(path=str(tmp_path / "r.csv"), positive_threshold=4, min_user_interactions=2).load()
    core = DataSource(path=str(tmp_path / "r.csv"), min_item_interactions=2, min_user_interactions=2).load()
    assert len(core.interactions) == 6 and any("k-core" in n and "dropped 0 rows" in n for n in core.notes)
    with pytest.raises(DataError, match="needs explicit ratings"):
        DataSource(path=str(tmp_path / "r.csv"), feedback="implicit", positive_threshold=4).load()


def _kcore_reference(pairs: list[tuple[int, int]], ku: int, ki: int) -> set[int]:
    """Plain-Python k-core: drop rows of short users or items until nothing changes."""
    alive = set(range(len(pairs)))
    changed = True
    while changed:
        uc: dict[int, int] = {}
        ic: dict[int, int] = {}
        for r in alive:
            uc[pairs[r][0]] = uc.get(pairs[r][0], 0) + 1
            ic[pairs[r][1]] = ic.get(pairs[r][1], 0) + 1
        drop = {r for r in alive if uc[pairs[r][0]] < ku or ic[pairs[r][1]] < ki}
        changed = bool(drop)
        alive -= drop
    return alive


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 8), st.integers(0, 8)), min_size=1, max_size=60, unique=True),
       st.integers(0, 4), st.integers(0, 4))
def test_kcore_matches_reference(pairs: list[tuple[int, int]], ku: int, ki: int) -> None:
    u = np.array([p[0] for p in pairs])
    i = np.array([p[1] for p in pairs])
    keep, note = kcore(u, i, ku, ki)
    assert set(np.flatnonzero(keep).tolist()) == _kcore_reference(pairs, ku, ki)
    if keep.any():  # a fixed point: every kept user and item meets its bound
        assert np.bincount(u[keep]).max() >= 1
        assert (np.bincount(u[keep])[np.unique(u[keep])] >= ku).all()
        assert (np.bincount(i[keep])[np.unique(i[keep])] >= ki).all()
    assert f"{int((~keep).sum()):,} rows" in note


def test_kcore_through_the_loader_compacts_ids(tmp_path: Path) -> None:
    rows = ["user,item"] + [f"{u},{i}" for u in range(1, 4) for i in range(1, 4)] + ["9,1", "1,9"]
    (tmp_path / "k.csv").write_text("\n".join(rows) + "\n")
    ds = DataSource(path=str(tmp_path / "k.csv"), min_user_interactions=2, min_item_interactions=2).load()
    assert ds.interactions.users.ids.tolist() == [1, 2, 3] and ds.interactions.items.ids.tolist() == [1, 2, 3]
    assert any("dropped 2 rows, 1 users, 1 items" in n for n in ds.notes)


def test_given_split_from_files_column_and_date(tmp_path: Path) -> None:
    (tmp_path / "train.csv").write_text(_text(",").rsplit("\n", 3)[0] + "\n")
    (tmp_path / "test.csv").write_text("userId,movieId,rating,timestamp\n3,20,1.5,964983200\n3,30,4.5,964983300\n")
    ds = DataSource(train=str(tmp_path / "train.csv"), test=str(tmp_path / "test.csv")).load()
    sp = ds.split("given")
    assert len(sp.train) == 4 and len(sp.test) == 2 and sp.train.users is sp.test.users
    (tmp_path / "col.csv").write_text(
        "user,item,rating,part\n1,10,4,train\n1,20,3,test\n2,10,5,TRAIN\n2,20,1,train\n")
    sp = DataSource(path=str(tmp_path / "col.csv"), split_column="part").load().split("given")
    assert len(sp.train) == 3 and sp.test.values.tolist() == [3.0]
    (tmp_path / "bad.csv").write_text("user,item,rating,part\n1,10,4,train\n1,20,3,tst\n")
    with pytest.raises(DataError, match=r"bad\.csv: line 3: column 'part' is 'tst'; use train or test"):
        DataSource(path=str(tmp_path / "bad.csv"), split_column="part").load()
    (tmp_path / "r.csv").write_text(_text(","))
    dated = DataSource(path=str(tmp_path / "r.csv"), split_date="2000-07-30T18:50:00").load()  # 964983000
    sp = dated.split("given")
    assert sp.test.timestamps.tolist() == [964983000, 964983100, 964983200, 964983300] and len(sp.train) == 2
    assert any("4 rows at or after the cut (964983000, seconds)" in n for n in dated.notes)
    with pytest.raises(ConfigError, match="both train and test"):
        DataSource(train="a.csv")


def test_registered_name_rejects_column_options() -> None:
    with pytest.raises(ConfigError, match="registered: user_col apply to files only"):
        DataSource(name="ml-100k", user_col="u")


def test_ids_stay_text_and_values_numbers(tmp_path: Path) -> None:
    (tmp_path / "z.csv").write_text("user,item,rating\n007,1,4\n7,2,3\n007,2,5\n")
    x = DataSource(path=str(tmp_path / "z.csv")).load().interactions
    assert x.users.ids.tolist() == ["007", "7"] and x.items.ids.tolist() == [1, 2]
    assert x.values.tolist() == [4.0, 3.0, 5.0]

import numpy as np
import pandas as pd
import pytest

from recforge.data.interactions import Interactions
from recforge.errors import DataError


def frame(**cols):
    return pd.DataFrame(cols)


def test_from_dataframe_basic():
    df = frame(user_id=["a", "b", "a"], item_id=[10, 10, 11], rating=[4, 5, 1], ts=[3, 1, 2])
    d = Interactions.from_dataframe(df, rating="rating", timestamp="ts")
    assert (d.n_users, d.n_items, len(d)) == (2, 2, 3)
    assert d.explicit
    m = d.csr().toarray()
    np.testing.assert_array_equal(m, [[4, 1], [5, 0]])
    assert d.sparsity == pytest.approx(1 - 3 / 4)
    back = d.to_dataframe()
    assert back["user_id"].tolist() == ["a", "b", "a"] and back["timestamp"].tolist() == [3, 1, 2]


def test_implicit_without_rating_and_to_implicit():
    d = Interactions.from_dataframe(frame(user_id=[1, 2], item_id=[1, 1]))
    assert not d.explicit and d.values.tolist() == [1.0, 1.0]
    r = Interactions.from_dataframe(frame(user_id=[1, 1, 2], item_id=[1, 2, 1], rating=[5, 2, 4]), rating="rating")
    imp = r.to_implicit(threshold=4)
    assert len(imp) == 2 and not imp.explicit and imp.values.tolist() == [1.0, 1.0]
    assert imp.n_items == r.n_items  # vocabularies are shared


def test_missing_column_names_it():
    with pytest.raises(DataError, match="missing column.*'rating'"):
        Interactions.from_dataframe(frame(user_id=[1], item_id=[2]), rating="rating")


def test_non_numeric_rating_names_line(tmp_path):
    p = tmp_path / "r.csv"
    p.write_text("user_id,item_id,rating\n1,2,4\n1,3,five\n")
    with pytest.raises(DataError, match=r"r.csv: line 3: column 'rating' is not a number \('five'\)"):
        Interactions.from_csv(p, rating="rating")


def test_empty_file(tmp_path):
    p = tmp_path / "e.csv"
    p.write_text("")
    with pytest.raises(DataError, match="empty"):
        Interactions.from_csv(p)
    p.write_text("user_id,item_id\n")
    with pytest.raises(DataError, match="no interactions"):
        Interactions.from_csv(p)


def test_duplicates_error_and_policies(tmp_path):
    p = tmp_path / "d.csv"
    p.write_text("user_id,item_id,rating,ts\nu1,i1,1,10\nu1,i2,3,11\nu1,i1,5,12\n")
    with pytest.raises(DataError, match=r"line 4: duplicate \(user, item\) pair \('u1', 'i1'\)"):
        Interactions.from_csv(p, rating="rating", timestamp="ts")
    for how, want in (("sum", 6.0), ("mean", 3.0), ("first", 1.0), ("last", 5.0)):
        d = Interactions.from_csv(p, rating="rating", timestamp="ts", duplicates=how)
        assert len(d) == 2
        row = d.to_dataframe().set_index("item_id").loc["i1"]
        assert row["value"] == want


def test_missing_id_names_line(tmp_path):
    p = tmp_path / "m.csv"
    p.write_text("user_id,item_id\n1,2\n,3\n")
    with pytest.raises(DataError, match="line 3: column 'user_id' is empty"):
        Interactions.from_csv(p)


def test_no_such_file(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        Interactions.from_csv(tmp_path / "nope.csv")


def test_parquet_round_trip(tmp_path):
    pytest.importorskip("pyarrow")
    df = frame(uid=[1, 2, 3], iid=["x", "y", "x"], plays=[3, 1, 7])
    df.to_parquet(tmp_path / "p.parquet")
    d = Interactions.from_parquet(tmp_path / "p.parquet", user="uid", item="iid", rating="plays", explicit=False)
    assert not d.explicit and d.values.tolist() == [3.0, 1.0, 7.0]
    assert d.items.ids.tolist() == ["x", "y"]


def test_datetime_timestamps_and_leading_zero_ids(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("user_id,item_id,when\n007,1,2024-01-01\n7,1,2024-01-02\n")
    d = Interactions.from_csv(p, timestamp="when")
    assert d.n_users == 2  # '007' and '7' stay distinct
    assert d.timestamps[1] - d.timestamps[0] == 86400


def test_subset_shares_vocab_and_counts():
    d = Interactions.from_dataframe(frame(user_id=[1, 2, 3], item_id=[1, 2, 3]))
    s = d.subset(np.array([True, False, True]))
    assert s.users is d.users and len(s) == 2
    assert s.user_counts().tolist() == [1, 0, 1]

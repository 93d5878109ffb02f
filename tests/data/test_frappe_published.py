"""Frappe's published split rebuilt from the raw log: exact small cases, and the real archive."""

from __future__ import annotations

import zipfile

import numpy as np
import pandas as pd
import pytest

from recforge.data.ctr import sample_negatives
from recforge.data.ctr.frappe import FRAPPE_FIELDS, libfm_index, read_frappe_archive, rebuild_frappe
from recforge.errors import DataError
from tests.conftest import has_dataset

CTX = {"daytime": "morning", "weekday": "sunday", "isweekend": "weekend", "homework": "unknown", "cost": "free",
       "weather": "sunny", "country": "Spain", "city": "0"}


def _log() -> pd.DataFrame:
    rows = [("0", "10", "morning"), ("1", "11", "evening"), ("0", "12", "evening"), ("2", "10", "night"),
            ("1", "10", "morning"), ("0", "10", "morning")]  # the last row repeats the first
    return pd.DataFrame([{**CTX, "user": u, "item": i, "daytime": d} for u, i, d in rows])[list(FRAPPE_FIELDS)]


def test_libfm_index_is_first_appearance_field_by_field():
    idx = libfm_index(_log())
    assert idx.values[0] == ("0", "1", "2") and idx.values[1] == ("10", "11", "12")
    assert idx.values[2] == ("morning", "evening", "night")
    assert idx.offsets[:4] == (0, 3, 6, 9) and idx.n_features == 3 + 3 + 3 + 7
    x = idx.encode(_log())
    assert x[:, 0].tolist() == [0, 1, 0, 2, 1, 0] and x[:, 1].tolist() == [3, 4, 5, 3, 3, 3]
    pd.testing.assert_frame_equal(idx.decode(x), _log().astype(object), check_dtype=False)
    with pytest.raises(DataError, match="line 1: feature 99 is not a user index"):
        idx.decode(np.array([[99] + x[0, 1:].tolist()]))


def test_rebuild_removes_one_log_row_per_published_positive(monkeypatch):
    import recforge.data.ctr.frappe as fr

    monkeypatch.setattr(fr, "N_FEATURES", 16)
    log = _log()
    x = libfm_index(log).encode(log)
    # validation: the duplicated row once (positive) and a negative; test: row 3 (positive)
    valid = (np.array([1.0, 0.0]), np.stack([x[0], x[1]]))
    test = (np.array([1.0]), x[3:4])
    reb = rebuild_frappe(log, valid, test, seed=0, negatives=2)
    assert reb.match_rate == 1.0 and reb.n_positives == 2
    # one of the two identical rows 0 and 5 stays in training, and rows 1, 2, 4
    assert sorted(reb.train_log_rows.tolist()) in ([1, 2, 4, 5], [0, 1, 2, 4])
    assert reb.n_train_positives == 4 and len(reb.train) == 4 + 8
    assert reb.valid["label"].tolist() == [1.0, 0.0] and reb.test["user"].tolist() == ["2"]
    neg = reb.train[reb.train["label"] == 0]
    used = set(zip(log["user"], log["item"], strict=True))
    # user 2 used app 10 only: its negatives are drawn from 11 and 12; nobody gets an app they used anywhere
    assert not any((u, i) in used for u, i in zip(neg["user"], neg["item"], strict=True))
    again = rebuild_frappe(log, valid, test, seed=0, negatives=2)
    pd.testing.assert_frame_equal(reb.train, again.train)


def test_a_positive_that_maps_to_no_log_row_is_an_error(monkeypatch):
    import recforge.data.ctr.frappe as fr

    monkeypatch.setattr(fr, "N_FEATURES", 16)
    log = _log()
    x = libfm_index(log).encode(log)
    odd = x[1].copy()
    odd[2] = 6  # user 1 + app 11 in the morning: never logged
    valid = (np.array([0.0, 1.0]), np.stack([x[0], odd]))
    with pytest.raises(DataError, match=r"frappe.validation.libfm: line 2: positive row does not map back .*1 of 2"):
        rebuild_frappe(log, valid, (np.array([1.0]), x[3:4]))
    # the same row twice in the published files but once in the log: the second has no row left
    twice = (np.array([1.0, 1.0]), np.stack([x[3], x[3]]))
    with pytest.raises(DataError, match="line 2: positive row does not map back"):
        rebuild_frappe(log, twice, (np.array([0.0]), x[1:2]))


def test_an_archive_with_another_checksum_stops_the_rebuild(tmp_path):
    path = tmp_path / "Mobile_Frappe.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("Mobile_Frappe/frappe/frappe.csv", "user\titem\n0\t0\n")
    with pytest.raises(DataError, match="checksum mismatch.*not the publisher's Frappe archive"):
        read_frappe_archive(path)
    with pytest.raises(DataError, match="not the Frappe archive"):
        read_frappe_archive(path, check=False)


def test_sample_negatives_with_a_catalogue_and_exclusions():
    frame = pd.DataFrame({"user": ["a", "a", "b"], "item": ["1", "2", "1"], "ctx": ["x", "y", "z"],
                          "label": [1.0, 1.0, 1.0]})
    everything = pd.DataFrame({"user": ["a", "a", "b", "b"], "item": ["1", "2", "1", "3"]})
    out = sample_negatives(frame, 50, seed=0, items=["1", "2", "3", "4"], exclude=everything)
    assert len(out) == 150 and (out["label"] == 0).all()
    assert set(out.loc[out["user"] == "a", "item"]) == {"3", "4"}  # never a's apps 1, 2
    assert set(out.loc[out["user"] == "b", "item"]) == {"2", "4"}  # b's app 3 is excluded though not in frame
    assert out["ctx"].tolist() == ["x"] * 50 + ["y"] * 50 + ["z"] * 50
    with pytest.raises(DataError, match="not in the items catalogue"):
        sample_negatives(frame, 1, items=["2"])
    # without the options: the frame's own items and positives, the draws as before
    plain = sample_negatives(frame, 5, seed=1)
    assert set(plain.loc[plain["user"] == "b", "item"]) == {"2"} and (plain["user"] != "a").sum() == 5


# ---------------------------------------------------------------------------------------- the real archive
needs_frappe = pytest.mark.skipif(not has_dataset("frappe"), reason="frappe data not available")


@pytest.fixture(scope="module")
def frappe():
    from recforge.data import load

    return load("frappe")


@pytest.mark.slow
@pytest.mark.realdata
@needs_frappe
def test_published_split_rebuilt_from_the_raw_log(frappe):
    t = frappe.tables
    reb = rebuild_frappe(t["log"], t["validation"], t["test"], seed=0)
    assert reb.n_matched == reb.n_positives == 19_063 + 9_536 and reb.match_rate == 1.0
    # the published files, unchanged: same rows, and re-encoding the decoded rows gives them back
    assert len(reb.valid) == 57_722 and len(reb.test) == 28_860
    for part, frame in (("validation", reb.valid), ("test", reb.test)):
        y, x = t[part]
        np.testing.assert_array_equal(reb.index.encode(frame), x)
        np.testing.assert_array_equal(frame["label"].to_numpy(), y)
    # the training positives are the log rows left over: 96,203 - 28,599 (BARS' Frappe_x1 log: pos/67604)
    assert reb.n_train_positives == 67_604 and len(reb.train_log_rows) == 67_604
    assert len(reb.train) == 67_604 * 3
    neg = reb.train[reb.train["label"] == 0]
    used = pd.MultiIndex.from_frame(t["log"][["user", "item"]].astype(str))
    assert not pd.MultiIndex.from_frame(neg[["user", "item"]]).isin(used).any()
    assert neg["item"].nunique() > 4_000  # drawn over all 4,082 apps
    # deterministic: the same seed gives the same rows; another seed only other negatives
    again = rebuild_frappe(t["log"], t["validation"], t["test"], seed=0)
    pd.testing.assert_frame_equal(reb.train, again.train)
    other = rebuild_frappe(t["log"], t["validation"], t["test"], seed=1)
    pos = reb.train["label"] == 1
    pd.testing.assert_frame_equal(reb.train[pos], other.train[pos])
    assert not reb.train[~pos]["item"].equals(other.train[~pos]["item"])


@pytest.mark.slow
@pytest.mark.realdata
@needs_frappe
def test_frappe_ctr_reader_on_the_published_split(frappe):
    from recforge.data.ctr import ctr_splits

    s = ctr_splits(frappe, seed=0)
    assert [len(s.train), len(s.valid), len(s.test)] == [202_812, 57_722, 28_860]
    assert s.train.field_names == FRAPPE_FIELDS and "match rate 1.0000" in s.description
    assert int(s.valid.labels.sum()) == 19_063 and int(s.test.labels.sum()) == 9_536
    f = ctr_splits(frappe, seed=0, item_features=["category", "language"])
    assert f.train.field_names == (*FRAPPE_FIELDS, "category", "language")
    np.testing.assert_array_equal(f.test.labels, s.test.labels)

"""CTR feature encoding (exact small cases), the CTR readers, and malformed-file errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recforge.data.ctr import (
    CTRData,
    FeatureEncoder,
    FieldSpec,
    ctr_splits,
    libfm_frame,
    random_parts,
)
from recforge.data.libfm import read_libfm
from recforge.errors import ConfigError, DataError
from tests.conftest import has_dataset


def _frame() -> pd.DataFrame:
    return pd.DataFrame({
        "city": ["b", "a", "b", "c", "b", np.nan],
        "price": [0.0, 1.0, np.e - 1, np.nan, 10.0, 3.0],
        "tags": ["x|y", "y", "", "z|x|y", np.nan, "x"],
        "label": [1, 0, 1, 0, 0, 1],
    })


def test_categorical_vocabulary_oov_and_min_count():
    df = _frame()
    enc = FeatureEncoder([FieldSpec("city", min_count=2)]).fit(df)
    # index 0 padding; the city block is [OOV, "b"] ("a", "c" and missing are seen once)
    assert enc.n_features_ == 3
    assert enc.vocab_["city"] == ["b"]
    rows = enc.transform(pd.DataFrame({"city": ["b", "a", "zzz", None]}))
    assert rows.index[:, 0].tolist() == [2, 1, 1, 1]
    assert rows.value.tolist() == [[1.0]] * 4
    assert rows.labels is None
    full = FeatureEncoder(["city"]).fit(df)
    assert full.vocab_["city"] == sorted(["a", "b", "c", "\x00missing"])


def test_numbers_as_categories_are_canonical():
    enc = FeatureEncoder(["code"]).fit(pd.DataFrame({"code": [3, 4, 3]}))
    rows = enc.transform(pd.DataFrame({"code": [3.0, "4", 5]}))
    assert rows.index[:, 0].tolist() == [2, 3, 1]


def test_hashing_is_stable_and_bounded():
    enc = FeatureEncoder([FieldSpec("city", hash_buckets=4)]).fit(_frame())
    assert enc.n_features_ == 5 and "city" not in enc.vocab_
    a = enc.transform(pd.DataFrame({"city": ["b", "a", "never-seen"] * 2})).index[:, 0]
    assert ((a >= 1) & (a <= 4)).all()
    assert a[:3].tolist() == a[3:].tolist()
    again = FeatureEncoder.from_dict(enc.to_dict())
    np.testing.assert_array_equal(again.transform(pd.DataFrame({"city": ["b", "a", "never-seen"]})).index[:, 0], a[:3])


def test_numeric_log_and_bins():
    df = _frame()
    enc = FeatureEncoder([FieldSpec("price", "numeric", transform="log")]).fit(df)
    rows = enc.transform(df)
    assert rows.index[:, 0].tolist() == [1] * 6
    np.testing.assert_allclose(rows.value[:, 0], np.log1p([0.0, 1.0, np.e - 1, 0.0, 10.0, 3.0]), rtol=1e-6)
    enc = FeatureEncoder([FieldSpec("price", "numeric", transform="bins", n_bins=2)]).fit(df)
    # one edge at the training median of the finite values (0, 1, e-1, 10, 3 -> 1.718); NaN -> bin 2
    assert enc.edges_["price"] == pytest.approx([np.e - 1])
    rows = enc.transform(pd.DataFrame({"price": [0.5, 2.0, 100.0, None]}))
    assert (rows.index[:, 0] - enc.offsets_["price"]).tolist() == [0, 1, 1, 2]
    with pytest.raises(DataError, match="price"):
        enc.transform(pd.DataFrame({"price": ["cheap"]}))


def test_multi_valued_field_mean_pooled_slots():
    df = _frame()
    enc = FeatureEncoder([FieldSpec("tags", "multi")]).fit(df)
    assert enc.slots_["tags"] == 3 and enc.vocab_["tags"] == ["x", "y", "z"]
    off = enc.offsets_["tags"]
    rows = enc.transform(pd.DataFrame({"tags": ["y|x", "", "q|z", "x|y|z|x"]}))
    assert rows.index.tolist() == [[off + 2, off + 1, 0], [0, 0, 0], [off, off + 3, 0], [off + 1, off + 2, off + 3]]
    np.testing.assert_allclose(rows.value, [[0.5, 0.5, 0], [0, 0, 0], [0.5, 0.5, 0], [1 / 3] * 3])
    assert rows.slot_fields.tolist() == [0, 0, 0]


def test_mixed_fields_layout_and_labels():
    df = _frame()
    enc = FeatureEncoder(["city", FieldSpec("price", "numeric"), FieldSpec("tags", "multi")]).fit(df)
    rows = enc.transform(df, "toy")
    assert rows.slot_fields.tolist() == [0, 1, 2, 2, 2]
    assert rows.field_names == ("city", "price", "tags")
    assert rows.labels.tolist() == [1, 0, 1, 0, 0, 1]
    assert rows.n_features == 1 + 5 + 1 + 4
    with pytest.raises(DataError, match="label"):
        enc.transform(df.assign(label=[1, 0, 2, 0, 0, 1]))
    with pytest.raises(DataError, match="missing field"):
        enc.transform(df.drop(columns=["price"]))


def test_encoder_fitted_on_training_rows_only():
    train = pd.DataFrame({"city": ["a", "a", "b"]})
    test = pd.DataFrame({"city": ["c", "a"]})
    enc = FeatureEncoder(["city"]).fit(train)
    assert enc.transform(test).index[:, 0].tolist() == [1, 2]  # unseen "c" -> OOV
    assert enc.oov_rate(enc.transform(test)) == {"city": 0.5}


def test_encoder_round_trip(tmp_path):
    df = _frame()
    enc = FeatureEncoder(["city", FieldSpec("price", "numeric", transform="bins", n_bins=3),
                          FieldSpec("tags", "multi")]).fit(df)
    again = FeatureEncoder.load(enc.save(tmp_path / "enc.json"))
    a, b = enc.transform(df), again.transform(df)
    np.testing.assert_array_equal(a.index, b.index)
    np.testing.assert_array_equal(a.value, b.value)
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(DataError, match="bad.json"):
        FeatureEncoder.load(tmp_path / "bad.json")


def test_invalid_specs_rejected():
    with pytest.raises(ConfigError):
        FieldSpec("x", "ordinal")  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        FieldSpec("x", min_count=0)
    with pytest.raises(ConfigError):
        FeatureEncoder(["x", "x"])
    with pytest.raises(DataError, match="not fitted"):
        FeatureEncoder(["x"]).transform(pd.DataFrame({"x": [1]}))


def test_ctrdata_checks():
    with pytest.raises(DataError):
        CTRData(np.array([[0, 5]]), 1.0, None, [0, 1], ("a", "b"), 5)
    with pytest.raises(DataError):
        CTRData(np.array([[0, 1]]), 1.0, np.array([2.0]), [0, 1], ("a", "b"), 5)
    rows = CTRData.from_indices(np.array([1, 0]), np.array([[0, 3], [1, 2]]))
    assert rows.n_features == 4 and rows.n_fields == 2 and len(rows.subset(np.array([True, False]))) == 1


def test_random_parts_partition():
    parts = random_parts(10, (0.7, 0.2, 0.1), seed=3)
    assert [len(p) for p in parts] == [7, 2, 1]
    assert sorted(np.concatenate(parts).tolist()) == list(range(10))
    assert [p.tolist() for p in random_parts(10, (0.7, 0.2, 0.1), seed=3)] == [p.tolist() for p in parts]
    with pytest.raises(ConfigError):
        random_parts(10, (0.5, 0.2), seed=0)


def test_libfm_frame_is_categorical():
    df = libfm_frame(np.array([1, 0]), np.array([[3, 10], [4, 10]]), ("u", "i"))
    assert df.columns.tolist() == ["u", "i", "label"] and df["u"].tolist() == ["3", "4"]


@pytest.mark.parametrize("text,match", [
    ("1 3:1 7:1\n0 3:1 x7:1\n", "line 2: bad feature token"),
    ("1 3:1 7:1\n0 3:1\n", "line 2: 1 features, expected 2"),
    ("1 3:1 7:1\n\n2 3:1 7:1\n", "line 3: label '2'"),
    ("1 3:1 7:a\n", "line 1: bad feature value"),
    ("1 3:1 7:1\n1 3:1 7:1\n0 3:1 7:\n", "line 3: bad feature value"),
    ("1 3:1 7:1\n0 -3:1 7:1\n", "line 2: bad feature token '-3:1'"),
    ("1 3:1 7:1\n0 3 7:1\n", "line 2: bad feature token '3'"),
    ("1 3:1 7:1\n0 3:1 7:1 9:1\n", "line 2: 3 features, expected 2"),
    ("yes 3:1 7:1\n", "line 1: label 'yes' is not a number"),
    ("1 3:1 7:1\n-1 3:1 7:1\n", "line 2: label '-1'"),
])
def test_malformed_feature_files_name_file_and_line(tmp_path, text, match):
    path = tmp_path / "bad.libfm"
    path.write_text(text)
    with pytest.raises(DataError, match=match) as info:
        read_libfm(path, labels=(0.0, 1.0))
    assert "bad.libfm" in str(info.value)


@pytest.mark.slow
@pytest.mark.skipif(not has_dataset("frappe"), reason="frappe data not available")
def test_frappe_split_is_seeded_and_encoded_on_train():
    a, b = ctr_splits("frappe-pooled", seed=0), ctr_splits("frappe-pooled", seed=0)
    assert [len(a.train), len(a.valid), len(a.test)] == [69266, 8658, 8658]  # 86,582 rows, 8:1:1
    np.testing.assert_array_equal(a.test.index, b.test.index)
    assert a.train.n_fields == 10 and a.train.n_slots == 10
    c = ctr_splits("frappe-pooled", seed=1)
    assert not np.array_equal(a.test.labels[:200], c.test.labels[:200]) or not np.array_equal(a.test.index, c.test.index)
    assert abs(a.train.labels.mean() - 1 / 3) < 0.01  # 2 sampled negatives per positive


@pytest.mark.slow
@pytest.mark.skipif(not has_dataset("ipinyou-fnn-sample"), reason="ipinyou data not available")
def test_ipinyou_given_split():
    s = ctr_splits("ipinyou-fnn-sample", seed=0)
    assert len(s.train) + len(s.valid) == 26773 and len(s.test) == 21150
    assert s.train.n_fields == 16
    assert int(s.test.labels.sum()) == 50


@pytest.mark.skipif(not has_dataset("criteo-sample"), reason="criteo sample not available")
def test_criteo_sample_schema():
    s = ctr_splits("criteo-sample", seed=0)
    assert (len(s.train), len(s.valid), len(s.test)) == (160, 20, 20)
    assert s.train.n_fields == 39
    assert s.train.field_names[:2] == ("I1", "I2")
    assert np.isfinite(s.train.value).all()


@pytest.mark.slow
@pytest.mark.skipif(not has_dataset("ml-100k"), reason="ML-100K not available")
def test_movielens_as_ctr():
    s = ctr_splits("ml-100k", seed=0)
    assert (len(s.train), len(s.valid), len(s.test)) == (80000, 10000, 10000)
    assert s.train.field_names == ("user", "item", "age", "gender", "occupation", "genres", "year")
    genre_slots = np.flatnonzero(s.train.slot_fields == 5)
    assert len(genre_slots) == 6  # a movie has at most 6 genres
    np.testing.assert_allclose(s.train.value[:, genre_slots].sum(1), 1.0, rtol=1e-5)
    assert 0.5 < s.train.labels.mean() < 0.6  # share of ratings >= 4


def test_bad_csv_values_name_file_and_line(tmp_path):
    from recforge.data.ctr import criteo_ctr
    from recforge.data.datasets import Dataset

    cols = ["label", *[f"I{j}" for j in range(1, 14)], *[f"C{j}" for j in range(1, 27)]]
    rows = [[j % 2, *[float(j)] * 13, *[f"{j:08x}"] * 26] for j in range(20)]
    rows[7][3] = "seven"  # I3 of data row 7 = file line 9
    path = tmp_path / "criteo_sample.txt"
    pd.DataFrame(rows, columns=cols).to_csv(path, index=False)
    ds = Dataset("criteo-sample", "ctr", None, {"frame": pd.read_csv(path)}, tmp_path)
    with pytest.raises(DataError, match=r"criteo_sample.txt: line 9: numeric field 'I3'"):
        criteo_ctr(ds)
    rows[7][3] = 1.0
    rows[4][0] = 3  # label of data row 4 = file line 6
    pd.DataFrame(rows, columns=cols).to_csv(path, index=False)
    ds = Dataset("criteo-sample", "ctr", None, {"frame": pd.read_csv(path)}, tmp_path)
    with pytest.raises(DataError, match=r"criteo_sample.txt: line 6: label"):
        criteo_ctr(ds)
    # a missing field (column): the error names the file and its header line
    rows[4][0] = 1
    pd.DataFrame(rows, columns=cols).drop(columns=["C7"]).to_csv(path, index=False)
    ds = Dataset("criteo-sample", "ctr", None, {"frame": pd.read_csv(path)}, tmp_path)
    with pytest.raises(DataError, match=r"criteo_sample.txt: line 1 \(header\): missing field\(s\) 'C7'"):
        criteo_ctr(ds)


def test_vectorised_category_strings_match_the_per_value_rule():
    from recforge._arrays import category_key
    from recforge.data.ctr._encoding import _MISSING, _as_str

    cols = [pd.Series([3, 4, 5]), pd.Series([3.0, np.nan, 0.5, -2.0]), pd.Series(["a", None, "b"]),
            pd.Series([True, False]), pd.Series([3, "3", 4.0, None], dtype=object),
            pd.Series([1, None], dtype="Int64"), pd.Series([], dtype=float)]
    for col in cols:
        slow = col.astype(object).where(col.notna(), _MISSING).map(category_key).to_numpy(dtype=object)
        assert _as_str(col).tolist() == slow.tolist()


def test_encoded_rows_carry_their_encoder():
    enc = FeatureEncoder(["city"]).fit(_frame())
    rows = enc.transform(_frame())
    assert rows.encoder is enc and rows.subset(np.arange(2)).encoder is enc
    refit = FeatureEncoder(["city"]).fit(pd.DataFrame({"city": ["q"]}))
    assert refit.transform(pd.DataFrame({"city": ["q", "b"]})).index[:, 0].tolist() == [2, 1]
    enc.fit(pd.DataFrame({"city": ["z"]}))  # refit drops the cached vocabulary lookups
    assert enc.transform(pd.DataFrame({"city": ["z", "b"]})).index[:, 0].tolist() == [2, 1]


def test_dataset_registry_names_every_ctr_reader():
    from recforge.data.ctr import readers
    from recforge.data.datasets import DATASETS, list_datasets

    assert [n for n, _ in list_datasets()] == list(DATASETS)
    with_reader = {n for n, spec in DATASETS.items() if spec.ctr_reader}
    assert with_reader == {"frappe", "frappe-pooled", "ipinyou-fnn-sample", "criteo-sample", "ml-100k"}
    for name in with_reader:
        assert callable(getattr(readers, DATASETS[name].ctr_reader))
    assert {spec.task for spec in DATASETS.values()} == {"rating", "ranking", "ctr"}
    with pytest.raises(DataError, match="no CTR reader for dataset 'gowalla'"):
        readers.ctr_splits("gowalla")

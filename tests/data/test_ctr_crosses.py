"""Cross fields and sampled negatives for CTR data: exact small cases, and the Frappe reader options."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recforge.data.ctr import FeatureEncoder, FieldSpec, cross, ctr_splits, sample_negatives
from recforge.errors import ConfigError, DataError
from tests.conftest import has_dataset


def _rows() -> pd.DataFrame:
    return pd.DataFrame({
        "user": ["a", "a", "b", "b", "a", "c"],
        "item": [1, 2, 1, 1, 1, 3],
        "ctx": ["x", "y", "x", "y", "z", "x"],
        "label": [1, 0, 1, 1, 0, 1],
    })


def test_cross_field_vocabulary_min_count_and_oov():
    df = _rows()
    enc = FeatureEncoder(["user", "item", cross("user", "item", min_count=2)]).fit(df)
    # pairs: (a,1) x2, (a,2), (b,1) x2, (c,3): min count 2 keeps (a,1) and (b,1)
    assert enc.fields[-1].name == "user_x_item"
    assert enc.offsets_ == {"user": 1, "item": 5, "user_x_item": 9}
    assert enc.sizes_["user_x_item"] == 3 and enc.n_features_ == 12
    rows = enc.transform(pd.DataFrame({"user": ["a", "b", "a", "b", "zz"], "item": [1, 1, 2, 3, 1]}))
    # block [OOV, "a|1", "b|1"] at 9, 10, 11; unseen or rare pairs (and unknown users) go to OOV
    assert rows.index[:, 2].tolist() == [10, 11, 9, 9, 9]
    assert rows.field_names == ("user", "item", "user_x_item")
    assert enc.oov_rate(enc.transform(df))["user_x_item"] == pytest.approx(2 / 6)


def test_cross_values_are_canonical_and_order_matters():
    df = pd.DataFrame({"u": [1.0, 2.0], "i": ["1", "2"], "label": [1, 0]})
    ab = FeatureEncoder([cross("u", "i")]).fit(df)
    assert ab.vocab_["u_x_i"] == ["1\x1f1", "2\x1f2"]  # 1.0 and "1" are the same category
    # the pair (u=2, i=1) is a different pair from (u=1, i=2) and from the seen ones
    rows = ab.transform(pd.DataFrame({"u": [2, 1, 2], "i": [1, 1, 2]}))
    assert rows.index[:, 0].tolist() == [1, 2, 3]
    ba = FeatureEncoder([cross("i", "u", name="iu")]).fit(df)
    assert ba.fields[0].name == "iu" and ba.fields[0].columns == ("i", "u")


def test_cross_hashing_and_round_trip(tmp_path):
    df = _rows()
    enc = FeatureEncoder(["ctx", cross("user", "item", hash_buckets=7)]).fit(df)
    assert enc.sizes_["user_x_item"] == 7
    a = enc.transform(df)
    again = FeatureEncoder.load(enc.save(tmp_path / "enc.json"))
    assert again.fields[1].columns == ("user", "item")
    np.testing.assert_array_equal(again.transform(df).index, a.index)
    # the same pair always hashes to the same bucket
    assert a.index[0, 1] == a.index[4, 1]


def test_cross_needs_its_columns_not_its_name():
    enc = FeatureEncoder([cross("user", "item")]).fit(_rows())
    with pytest.raises(DataError, match="'item'"):
        enc.transform(pd.DataFrame({"user": ["a"]}))


def test_invalid_cross_specs():
    with pytest.raises(ConfigError, match="two distinct"):
        cross("user")
    with pytest.raises(ConfigError, match="two distinct"):
        cross("user", "user")
    with pytest.raises(ConfigError, match="only for cross"):
        FieldSpec("x", columns=("a", "b"))


def test_sample_negatives_exact():
    df = _rows()
    neg = sample_negatives(df, 3, seed=0)
    # 4 positives x 3 negatives, in the positives' order, context and user kept, label 0
    assert len(neg) == 12
    assert neg["user"].tolist() == ["a"] * 3 + ["b"] * 6 + ["c"] * 3
    assert neg["ctx"].tolist() == ["x"] * 3 + ["x"] * 3 + ["y"] * 3 + ["x"] * 3
    assert (neg["label"] == 0).all()
    assert neg["item"].dtype == df["item"].dtype
    # items come from the training items {1, 2, 3}, never a positive item of the row's user:
    # a has 1 as positive -> {2, 3}; b has 1 -> {2, 3}; c has 3 -> {1, 2}
    for u, allowed in (("a", {2, 3}), ("b", {2, 3}), ("c", {1, 2})):
        assert set(neg.loc[neg["user"] == u, "item"]) <= allowed
    # seeded
    pd.testing.assert_frame_equal(neg, sample_negatives(df, 3, seed=0))
    assert len(sample_negatives(df, 0)) == 0


def test_sample_negatives_only_free_item_and_full_users():
    df = pd.DataFrame({"user": ["a", "a", "b"], "item": ["p", "q", "p"], "label": [1, 1, 1]})
    neg = sample_negatives(df, 4, seed=1)
    # a has every item as a positive: no negatives; b's only free item is q
    assert neg["user"].tolist() == ["b"] * 4 and neg["item"].tolist() == ["q"] * 4
    free = sample_negatives(df, 2, user=None, seed=1)
    assert len(free) == 6 and set(free["item"]) <= {"p", "q"}


def test_sample_negatives_uniform_over_items():
    # 400 one-row users; item 0 is the item of half the rows (popular), items 1..19 share the rest
    item = np.r_[np.zeros(200, int), np.arange(200) % 19 + 1]
    df = pd.DataFrame({"user": np.arange(400), "item": item, "label": 1})
    counts = sample_negatives(df, 50, seed=0)["item"].value_counts().reindex(range(20), fill_value=0)
    # uniform over the 19 items other than the row's own: item 0 gets 200 * 50 / 19 = 526 draws in
    # expectation, items 1..19 (200 + 189.5) * 50 / 19 = 1025; popularity-weighted draws would
    # give item 0 about half of all 20,000
    assert 430 < counts[0] < 620
    assert counts[1:].min() > 900 and counts[1:].max() < 1150


def test_sample_negatives_errors():
    with pytest.raises(DataError, match="'item'"):
        sample_negatives(pd.DataFrame({"user": [1], "label": [1]}))
    with pytest.raises(ConfigError):
        sample_negatives(_rows(), -1)


@pytest.mark.slow
@pytest.mark.skipif(not has_dataset("frappe"), reason="frappe data not available")
def test_frappe_reader_crosses_and_negatives():
    plain = ctr_splits("frappe-pooled", seed=0)
    s = ctr_splits("frappe-pooled", seed=0, crosses=[("user", "item")], cross_min_count=2, negatives=2)
    assert s.train.field_names[-1] == "user_x_item" and s.train.n_slots == 11
    n_pos = int(plain.train.labels.sum())
    # 2 sampled negatives per training positive; validation and test rows untouched
    assert len(s.train) == len(plain.train) + 2 * n_pos and s.train.labels.sum() == n_pos
    assert len(s.valid) == len(plain.valid) and len(s.test) == len(plain.test)
    np.testing.assert_array_equal(s.test.labels, plain.test.labels)
    np.testing.assert_array_equal(s.test.index[:, :10], plain.test.index)
    # the encoder was fitted on the logged training rows only (the sampled rows add no vocabulary)
    assert s.encoder.vocab_["item"] == plain.encoder.vocab_["item"]
    with pytest.raises(ConfigError, match="no option"):
        ctr_splits("frappe-pooled", seed=0, bogus=1)
    with pytest.raises(ConfigError, match="cross"):
        ctr_splits("frappe-pooled", seed=0, crosses=[("user", "nope")])

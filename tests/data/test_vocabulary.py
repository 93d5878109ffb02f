import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from recforge.data.vocabulary import Vocabulary, normalize_ids


def test_sorted_and_stable():
    a = Vocabulary([30, 10, 20, 10])
    b = Vocabulary([20, 30, 10])
    assert a == b
    assert a.ids.tolist() == [10, 20, 30]
    assert a.index([20, 99, 10]).tolist() == [1, -1, 0]


def test_string_ids_and_cross_type_lookup():
    v = Vocabulary(["b", "a", "c"])
    assert v.index(["c", "zz"]).tolist() == [2, -1]
    ints = Vocabulary([5, 7])
    assert ints.index(["7", "x", 5]).tolist() == [1, -1, 0]
    assert "7" in ints and "x" not in ints


def test_digit_strings_normalise_to_int():
    assert normalize_ids(np.array(["1", "2"], dtype=object)).dtype.kind == "U"
    assert normalize_ids(np.array([1.0, 2.0])).dtype == np.int64
    assert normalize_ids(np.array([1.5])).dtype.kind == "U"


@given(st.lists(st.integers(-10**9, 10**9), min_size=1, max_size=50))
def test_round_trip_ints(ids):
    v = Vocabulary(ids)
    idx = v.index(ids)
    assert (idx >= 0).all()
    assert v.id(idx).tolist() == ids
    assert Vocabulary.from_list(v.to_list()) == v


# numpy's fixed-width str arrays (how vocabularies store string ids) drop trailing NUL characters,
# so ids containing NUL are out of scope; lone surrogates are not text any file can hold
_ID_CHARS = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")


@given(st.lists(st.text(alphabet=_ID_CHARS, min_size=1, max_size=8),
                min_size=1, max_size=50))
def test_round_trip_strings(ids):
    v = Vocabulary(np.asarray(ids, dtype=object))
    assert v.id(v.index(np.asarray(ids, dtype=object))).tolist() == [str(x) for x in ids]
    assert len(v) == len(set(ids))

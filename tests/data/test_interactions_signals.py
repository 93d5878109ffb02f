"""Named signals travel with their rows: subsets, data frames and the on-disk store keep them aligned."""

import numpy as np
import pytest

from recforge.data.interactions import Interactions
from recforge.data.vocabulary import Vocabulary
from recforge.errors import DataError


def _log(**kw):
    return Interactions(
        user_idx=np.array([0, 0, 1, 2]), item_idx=np.array([0, 1, 1, 2]), values=np.ones(4),
        users=Vocabulary(np.array(["a", "b", "c"]), "user"),
        items=Vocabulary(np.array(["x", "y", "z"]), "item"),
        explicit=False, **kw,
    )


def test_signals_are_sliced_with_their_rows_and_kinds_default_to_count():
    data = _log(signals={"plays": [3, 1, 4, 1], "hours": [0.5, 0.1, 2.0, 0.2]},
                signal_kinds={"hours": "duration"})
    assert data.signal_kinds == {"plays": "count", "hours": "duration"}
    sub = data.subset(np.array([2, 0]))
    np.testing.assert_array_equal(sub.signals["plays"], [4, 3])
    np.testing.assert_allclose(sub.signals["hours"], [2.0, 0.5])
    assert sub.signal_kinds == data.signal_kinds
    df = data.to_dataframe()
    assert list(df.columns[-2:]) == ["plays", "hours"]
    np.testing.assert_array_equal(df["plays"].to_numpy(), [3, 1, 4, 1])


def test_bad_signals_are_refused_in_one_line():
    with pytest.raises(DataError, match="signal 'plays' has 2 entries for 4"):
        _log(signals={"plays": [1, 2]})
    with pytest.raises(DataError, match="kind 'minutes' is not one of count, duration, rating, binary"):
        _log(signals={"plays": [1, 2, 3, 4]}, signal_kinds={"plays": "minutes"})
    with pytest.raises(DataError, match="names 'hours', which is not a signal"):
        _log(signals={"plays": [1, 2, 3, 4]}, signal_kinds={"hours": "duration"})


def test_signals_round_trip_through_the_store(tmp_path):
    data = _log(signals={"plays": [3, 1, 4, 1], "rating": [5, 0, 3, 0]}, signal_kinds={"rating": "rating"})
    back = Interactions.open(data.save(tmp_path / "log"))
    assert back.signal_kinds == {"plays": "count", "rating": "rating"}
    np.testing.assert_array_equal(back.signals["rating"], [5, 0, 3, 0])
    plain = Interactions.open(_log().save(tmp_path / "plain"))
    assert plain.signals == {} and plain.signal_kinds == {}

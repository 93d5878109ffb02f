"""myanimelist2020-sample: the reader maps watching status, episodes and the score to signals."""

from __future__ import annotations

import numpy as np
import pytest

from recforge.data.myanimelist import STATUSES, read_myanimelist
from recforge.errors import DataError
from tests.conftest import has_dataset

needs_sample = pytest.mark.skipif(not has_dataset("myanimelist2020-sample"),
                                  reason="myanimelist sample not available")


@needs_sample
def test_the_sample_reads_with_the_published_counts():
    from recforge.data import load

    ds = load("myanimelist2020-sample", download=False)
    d = ds.interactions
    # PROVENANCE.md: 499 rows, 3 users, 447 anime; status counts 6:235 2:202 1:47 3:9 4:6; 220 rows scored
    assert (len(d), d.n_users, d.n_items) == (499, 3, 447)
    counts = {name: int(d.signals[name].sum()) for name in STATUSES.values()}
    assert counts == {"plan_to_watch": 235, "completed": 202, "watching": 47, "on_hold": 9, "dropped": 6}
    r = d.signals["rating"]
    assert int(np.isfinite(r).sum()) == 220 and np.nanmin(r) >= 1 and np.nanmax(r) <= 10
    assert int((np.isfinite(r) & (d.signals["completed"] == 1)).sum()) == 189
    assert d.signal_kinds["episodes"] == "count" and d.signal_kinds["rating"] == "rating" and not d.explicit
    # the first data line: user 0, anime 67, score 9, watching, 1 episode
    row = np.flatnonzero((d.users.ids[d.user_idx] == 0) & (d.items.ids[d.item_idx] == 67))[0]
    assert (d.signals["rating"][row], d.signals["watching"][row], d.signals["episodes"][row]) == (9, 1, 1)
    assert ds.task == "rating" and "format fixture" in ds.notes[0]


def _write(tmp_path, body, name="animelist.csv"):
    path = tmp_path / name
    path.write_text("user_id,anime_id,rating,watching_status,watched_episodes\n" + body)
    return path


def test_score_zero_is_missing_and_status_is_one_hot(tmp_path):
    d = read_myanimelist(_write(tmp_path, "7,1,0,6,0\n7,2,8,2,24\n9,1,3,4,2\n"))
    np.testing.assert_array_equal(d.signals["rating"][:2], [np.nan, 8])
    np.testing.assert_array_equal(d.signals["plan_to_watch"], [1, 0, 0])
    np.testing.assert_array_equal(d.signals["dropped"], [0, 0, 1])
    np.testing.assert_array_equal(d.signals["episodes"], [0, 24, 2])
    np.testing.assert_array_equal(d.values, [1, 1, 1])


@pytest.mark.parametrize(("body", "message"), [
    ("7,1,5,5,3\n", "line 2: column 'watching_status' is 5, not one of"),
    ("7,1,5,2,-1\n", "line 2: column 'watched_episodes' is negative"),
    ("7,1,11,2,3\n7,2,3,2,3\n", "line 2: column 'rating' is 11, outside 0-10"),
    ("7,1,5,2,3\n7,2,x,2,3\n", "line 3: column 'rating' is not a finite number \\('x'\\)"),
    ("7,1,5,2,3\n7,2,,2,3\n", "line 3: column 'rating' is empty$"),
    # was read as inf:
    ("7,1,5,2,inf\n", "line 2: column 'watched_episodes' is not a finite number \\('inf'\\)"),
    ("7,1,5,2,3\n7,1,6,2,4\n", "duplicate"),
])
def test_bad_rows_are_one_line_errors(tmp_path, body, message):
    with pytest.raises(DataError, match=message):
        read_myanimelist(_write(tmp_path, body))


def test_missing_columns_are_named(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("user_id,anime_id,score\n1,2,3\n")
    with pytest.raises(DataError, match="missing column.*'watching_status'"):
        read_myanimelist(path)


@needs_sample
def test_end_to_end_fit_and_predict_on_the_rating_scale():
    """Both models fit the real format and predict every unscored row on the 1-10 scale."""
    pytest.importorskip("torch")
    from recforge.config import FitOptions
    from recforge.data import load
    from recforge.models import make_model

    d = load("myanimelist2020-sample", download=False).interactions
    unscored = ~np.isfinite(d.signals["rating"])
    for name in ("implicit-to-explicit-linear", "implicit-to-explicit"):
        params = {"epochs": 5} if name == "implicit-to-explicit" else {}
        model = make_model(name, params).fit(d, FitOptions(seed=0))
        pred = model.predict(d.users.ids[d.user_idx[unscored]], d.items.ids[d.item_idx[unscored]])
        assert np.isfinite(pred).all() and pred.min() >= 1 and pred.max() <= 10
        filled = model.fill_ratings(d)
        assert filled.explicit and np.isfinite(filled.values).all()
        assert int(filled.signals["predicted"].sum()) == 279

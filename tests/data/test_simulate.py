"""recforge.data.simulate: a seeded play log whose generative process the tests can check."""

from __future__ import annotations

import numpy as np
import pytest

from recforge.data.simulate import SIGNALS, SimulationSpec, simulate_log
from recforge.errors import ConfigError


def test_same_spec_same_log_and_every_row_labelled_simulated():
    a = simulate_log(n_users=80, n_items=50, seed=4)
    b = simulate_log(SimulationSpec(n_users=80, n_items=50, seed=4))
    assert a.interactions.name.startswith("simulated") and "seed=4" in a.interactions.name
    np.testing.assert_array_equal(a.interactions.user_idx, b.interactions.user_idx)
    np.testing.assert_array_equal(a.interactions.signals["dwell"], b.interactions.signals["dwell"])
    np.testing.assert_array_equal(a.true_rating, b.true_rating)
    c = simulate_log(n_users=80, n_items=50, seed=5)
    assert len(c.interactions) != len(a.interactions) or not np.array_equal(c.true_rating, a.true_rating)


def test_the_documented_process_holds():
    sim = simulate_log(n_users=400, n_items=200, seed=0)
    d = sim.interactions
    assert set(d.signals) == {*SIGNALS, "rating"} and d.signal_kinds["rating"] == "rating"
    assert d.signal_kinds["dwell"] == "duration" and not d.explicit
    assert len(np.unique(d.pair_keys())) == len(d)  # no repeated (user, item) pair
    assert d.user_counts().min() >= 5
    r = d.signals["rating"]
    # missing ratings are NaN; observed ones are the true rating; the scale is 1-5 in whole stars
    np.testing.assert_array_equal(np.isfinite(r), sim.rated)
    np.testing.assert_array_equal(r[sim.rated], sim.true_rating[sim.rated])
    assert set(np.unique(sim.true_rating)) <= {1.0, 2.0, 3.0, 4.0, 5.0}
    # cold users rate nothing, and are the cold_user_fraction of the users
    assert len(sim.cold_users) == 80 and not sim.rated[np.isin(d.user_idx, sim.cold_users)].any()
    # plays = 1 + replays + sessions, completion is a fraction, dwell is non-negative
    assert (d.signals["plays"] >= 1 + d.signals["replays"]).all()
    c = d.signals["completion"]
    assert ((c > 0) & (c < 1)).all() and (d.signals["dwell"] >= 0).all()
    # behaviour follows the true preference (completion most directly)
    assert np.corrcoef(c, sim.preference)[0, 1] > 0.7
    assert np.corrcoef(np.log1p(d.signals["replays"]), sim.preference)[0, 1] > 0.3
    # strong feelings are rated more often (missing not at random)
    warm = ~np.isin(d.user_idx, sim.cold_users)
    strong = np.abs(sim.preference) > 1.0
    assert sim.rated[warm & strong].mean() > sim.rated[warm & ~strong].mean()


def test_bad_spec_is_refused():
    with pytest.raises(ConfigError, match="rated_fraction"):
        SimulationSpec(rated_fraction=0.0)
    with pytest.raises(ConfigError, match="min_items"):
        simulate_log(n_items=3, min_items=5)

"""The catalogue-scaled neighbour pruning default of the rating kNN models (prune="auto")."""

from __future__ import annotations

import numpy as np

from recforge.models.neighbors.knn import AUTO_PRUNE_ENTRIES, auto_prune
from recforge.models.registry import make_model
from recforge.testing import toy_ratings


def test_rule_keeps_everything_on_small_catalogues_and_bounds_memory_on_large():
    assert AUTO_PRUNE_ENTRIES == 2**25
    assert auto_prune("auto", 1682) is None and auto_prune("auto", 5792) is None
    assert auto_prune("auto", 5793) == 5792  # 2**25 // 5793
    assert auto_prune("auto", 9742) == 3444
    assert auto_prune("auto", 40981) == 1000  # the floor
    assert auto_prune("auto", 10**6, n_neighbors=2000) == 2000
    assert auto_prune(300, 10**6) == 300 and auto_prune(None, 10**6) is None
    for n in (6000, 9742, 40981, 10**5):
        assert n * auto_prune("auto", n) <= max(AUTO_PRUNE_ENTRIES, 1000 * n)


def test_auto_is_the_default_and_equals_no_pruning_on_a_small_catalogue():
    data = toy_ratings()
    default = make_model("knn-baseline").fit(data)
    assert default.config.prune == "auto"
    full = make_model("knn-baseline", {"prune": None}).fit(data)
    users, items = data.users.ids[data.user_idx[:50]], data.items.ids[data.item_idx[:50]]
    np.testing.assert_array_equal(default.predict(users, items), full.predict(users, items))

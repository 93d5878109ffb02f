"""Renamed hyperparameters of the torch models: the old names still work, with a DeprecationWarning."""

from __future__ import annotations

import pytest

from recforge.models.neural.graph import NGCF, LightGCN
from recforge.models.neural.mf import TorchMF
from recforge.models.neural.ncf import GMF, MLP, NeuMF

RENAMES = [
    (MLP, "layers", "hidden", (8, 4)),
    (NeuMF, "layers", "hidden", (8, 4)),
    (NGCF, "layers", "layer_sizes", (8, 8)),
    (GMF, "sampling", "negative_sampling", "popularity"),
    (MLP, "sampling", "negative_sampling", "popularity"),
    (NeuMF, "sampling", "negative_sampling", "popularity"),
    (TorchMF, "sampling", "negative_sampling", "popularity"),
    (LightGCN, "sampling", "negative_sampling", "popularity"),
    (NGCF, "sampling", "negative_sampling", "popularity"),
    (TorchMF, "biases", "use_bias", False),
]


@pytest.mark.parametrize("cls,old,new,value", RENAMES, ids=lambda x: getattr(x, "__name__", str(x)))
def test_old_name_warns_and_sets_the_new_field(cls, old, new, value):
    with pytest.warns(DeprecationWarning, match=f"'{old}' is renamed '{new}'"):
        cfg = cls.config_class.from_dict({old: value})
    assert getattr(cfg, new) == value
    with pytest.warns(DeprecationWarning):
        model = cls(**{old: value})  # keywords go through the same aliases
    assert getattr(model.config, new) == value
    assert old not in model.config.to_dict() and new in model.config.to_dict()


def test_old_and_new_name_together_are_an_error():
    from recforge.errors import ConfigError

    with pytest.raises(ConfigError, match="both 'layers' and its new name 'hidden'"):
        MLP.config_class.from_dict({"layers": (8, 4), "hidden": (8, 4)})


def test_renamed_field_trains_like_the_new_name():
    import numpy as np

    from recforge.config import FitOptions
    from recforge.testing.datasets import toy_ratings

    data = toy_ratings(n_users=20, n_items=15).to_implicit()
    opts = FitOptions(seed=0, threads=1)
    new = MLP(epochs=1, hidden=(8, 4), negative_sampling="popularity").fit(data, opts)
    with pytest.warns(DeprecationWarning):
        old = MLP(epochs=1, layers=(8, 4), sampling="popularity").fit(data, opts)
    users, items = data.users.ids[:5], data.items.ids[:5]
    np.testing.assert_array_equal(old.score(users, items), new.score(users, items))

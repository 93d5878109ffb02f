"""recforge.splits.SPLITS: every named method partitions the rows; unknown names suggest the nearest."""

from __future__ import annotations

import numpy as np
import pytest

from recforge import splits as S
from recforge.errors import ConfigError
from recforge.testing.datasets import toy_ratings


@pytest.mark.parametrize("method", [m for m in S.SPLITS if m != "predefined"])
def test_every_named_method_partitions_the_rows(method):
    data = toy_ratings()
    parts = S.split_by_name(method, data, seed=3)
    assert parts and all(isinstance(p, S.Split) for p in parts)
    for p in parts:
        assert len(p.train) + len(p.test) == len(data) and len(p.test) > 0
    again = S.split_by_name(method, data, seed=3)
    assert all(np.array_equal(a.test.to_dataframe().to_numpy(), b.test.to_dataframe().to_numpy())
               for a, b in zip(parts, again, strict=True))


def test_named_methods_match_the_functions():
    data = toy_ratings()
    by_name = S.split_by_name("random", data, seed=1, test_fraction=0.3)[0]
    direct = S.random_split(data, test_fraction=0.3, seed=1)
    assert by_name.test.to_dataframe().equals(direct.test.to_dataframe())
    assert len(S.split_by_name("kfold", data, n_folds=4)) == 4
    assert len(S.split_by_name("temporal", data, n=2)[0].test) == len(S.temporal_user_split(data, n=2).test)


def test_unknown_method_names_the_nearest():
    with pytest.raises(ConfigError, match="did you mean 'temporal'"):
        S.split_by_name("temporl", toy_ratings())


def test_predefined_needs_a_dataset():
    with pytest.raises(ConfigError, match="registered dataset"):
        S.split_by_name("predefined", toy_ratings())

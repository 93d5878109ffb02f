"""Our k-fold reproduces scikit-surprise's KFold folds on ML-100K (rows in file order)."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from recforge.data.interactions import Interactions
from recforge.splits import kfold

_DATA_DIR = os.environ.get("RECFORGE_DATA_DIR")  # tests/conftest.py points it at ../shared/data when unset
DATA = Path(_DATA_DIR) / "ml-100k" / "u.data" if _DATA_DIR else None


@pytest.mark.realdata
@pytest.mark.skipif(DATA is None or not DATA.exists(),
                    reason="ML-100K u.data not found (set RECFORGE_DATA_DIR)")
@pytest.mark.parametrize("seed", [0, 42])
def test_kfold_matches_surprise_on_ml100k(seed: int) -> None:
    surprise = pytest.importorskip("surprise")
    from surprise.model_selection import KFold

    sdata = surprise.Dataset.load_from_file(str(DATA), reader=surprise.Reader("ml-100k"))
    df = pd.read_csv(DATA, sep="\t", names=["user", "item", "rating", "ts"])
    data = Interactions.from_dataframe(df, "user", "item", "rating", "ts")
    # surprise keeps the file order in raw_ratings; so does Interactions without duplicates
    assert len(sdata.raw_ratings) == len(data) == 100_000

    ours = kfold(data, n_folds=5, seed=seed)
    theirs = list(KFold(n_splits=5, random_state=seed, shuffle=True).split(sdata))
    assert len(ours) == len(theirs) == 5

    seen: set[tuple[int, int]] = set()
    for split, (trainset, testset) in zip(ours, theirs):
        test_df = split.test.to_dataframe()
        ours_test = sorted(zip(test_df.user_id.tolist(), test_df.item_id.tolist(), test_df.value.tolist()))
        their_test = sorted((int(u), int(i), float(r)) for u, i, r in testset)
        assert ours_test == their_test
        assert len(split.train) == trainset.n_ratings
        seen.update((u, i) for u, i, _ in ours_test)
    assert len(seen) == 100_000

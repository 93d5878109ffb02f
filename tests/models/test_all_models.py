"""Every registered model: has a conformance test, and works on data it has never seen.

"Data it has never seen" is a log with string ids, ratings on a 0-100 scale and implicit counts,
not a registered dataset.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recforge.config import FitOptions
from recforge.data.interactions import Interactions
from recforge.models.registry import get_model_class, list_models
from recforge.testing.conformance import RecommenderConformance

TESTS = Path(__file__).resolve().parent
ENTRIES = [e for e in list_models() if e.task in ("rating", "ranking", "sequence")]


def _installed(entry) -> bool:
    """Whether the extra the registry says a model needs (e.g. ``"torch"``) is installed."""
    return entry.extra is None or importlib.util.find_spec(entry.extra.split(":")[0]) is not None


def _conformance_classes() -> set[type]:
    covered = set()
    for n, path in enumerate(sorted(TESTS.rglob("test_*.py"))):
        if path.name == Path(__file__).name:
            continue
        spec = importlib.util.spec_from_file_location(f"_conformance_scan_{n}", path)
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
        except pytest.skip.Exception:  # a module-level importorskip of an extra that is not installed
            continue
        for obj in vars(module).values():
            if isinstance(obj, type) and issubclass(obj, RecommenderConformance) and hasattr(obj, "model_class"):
                covered.add(obj.model_class)
    return covered


def test_every_model_has_a_conformance_test():
    covered = _conformance_classes()
    missing = []
    for e in filter(_installed, ENTRIES):
        cls = get_model_class(e.name)  # an import error is a failure, not a pass
        if cls not in covered:
            missing.append(e.name)
    assert not missing, f"models without a RecommenderConformance test: {missing}"


def _unseen_log(explicit: bool) -> Interactions:
    rng = np.random.default_rng(11)
    n_users, n_items = 35, 28
    rows = []
    for u in range(n_users):
        items = rng.choice(n_items, size=rng.integers(4, 12), replace=False)
        for i in items:
            rows.append((f"user-{u:03d}", f"sku/{i}", float(rng.integers(0, 101)), int(rng.integers(1, 50)),
                         1_600_000_000 + len(rows)))
    df = pd.DataFrame(rows, columns=["who", "what", "score", "plays", "ts"])
    if explicit:
        return Interactions.from_dataframe(df, "who", "what", "score", "ts")
    return Interactions.from_dataframe(df, "who", "what", "plays", "ts", explicit=False)


def _small(cls: type) -> dict:
    fields = {f.name for f in dataclasses.fields(cls.config_class)}
    cfg = {}
    for name, val in (("epochs", 3), ("embedding_size", 8), ("iterations", 3), ("batch_size", 64)):
        if name in fields:
            cfg[name] = val
    return cfg


@pytest.mark.parametrize("entry", ENTRIES, ids=[e.name for e in ENTRIES])
def test_model_on_unseen_log(entry):
    if not _installed(entry):
        pytest.skip(f"{entry.name} needs the {entry.extra!r} extra")
    cls = get_model_class(entry.name)  # an import error is a failure
    data = _unseen_log(explicit=entry.task == "rating")
    model = cls(_small(cls)).fit(data, FitOptions(seed=0))
    ids, scores = model.recommend(["user-001", "user-999"], k=5)
    assert ids.shape == (2, 5)
    assert all(str(x).startswith("sku/") for x in ids[0])
    seen = set(data.items.ids[data.item_idx[data.user_idx == data.users.index_one("user-001")]])
    assert not seen & set(ids[0].tolist())
    pred = model.predict(["user-001", "user-001"], ["sku/1", "nope"])
    assert np.isnan(pred[1])
    if entry.task == "rating":
        assert 0.0 <= pred[0] <= 100.0

"""configs/gowalla/*.toml parse, name registered models and the Gowalla given-split protocol."""

from __future__ import annotations

from pathlib import Path

import pytest

from recforge.experiments.spec import load_spec
from recforge.models.registry import get_model_class

FILES = sorted((Path(__file__).resolve().parents[2] / "configs" / "gowalla").glob("*.toml"))


def test_there_are_gowalla_configs():
    assert {"bpr.toml", "rp3beta.toml"} <= {f.name for f in FILES}


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_gowalla_config_is_valid(path):
    spec = load_spec(path)
    assert spec.dataset.get("name") == "gowalla"
    assert spec.protocol == "given-split" and spec.k == 20
    cls = get_model_class(spec.model)
    cls(spec.params)  # the hyperparameters validate

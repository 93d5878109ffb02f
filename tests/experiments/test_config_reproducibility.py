"""Same file, same numbers: shipped configs whose models race across threads pin one thread."""

from __future__ import annotations

from pathlib import Path

import pytest

from recforge.experiments import ExperimentSpec, run
from recforge.models.registry import get_model_class

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*/*.toml")), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_hogwild_configs_pin_one_thread(path):
    spec = ExperimentSpec.from_file(path)
    cfg = get_model_class(spec.model)(spec.params).config
    if getattr(cfg, "parallel", None) == "hogwild":
        assert spec.training.get("threads") == 1, f"{path.name}: hogwild is reproducible only on one thread"


@pytest.mark.slow
@pytest.mark.realdata
def test_bpr_config_gives_the_same_numbers_twice(ml100k, tmp_path):
    spec = ExperimentSpec.from_file(CONFIGS / "ml100k" / "bpr.toml").replace(params={"epochs": 8})
    a = run(spec, logger="none", output=tmp_path / "a", outputs=False)
    b = run(spec, logger="none", output=tmp_path / "b", outputs=False)
    assert a.metrics == b.metrics

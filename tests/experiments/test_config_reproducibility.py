"""Same file, same numbers: shipped configs whose models race across threads pin one thread."""

from __future__ import annotations

from pathlib import Path

import pytest

from recforge.experiments import ExperimentSpec, run
from recforge.models.registry import get_model_class, list_models

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
FILES = sorted(CONFIGS.glob("*/*.toml"))


def _hogwild(path: Path) -> bool:
    """Whether the file's model trains Hogwild-style (unsynchronised threads), default included."""
    spec = ExperimentSpec.from_file(path)
    if "parallel" in spec.params:
        return spec.params["parallel"] == "hogwild"
    # torch models have no `parallel` option; importing them here would load torch at collection
    extra = {e.name: e.extra for e in list_models()}
    if extra.get(spec.model):
        return False
    return getattr(get_model_class(spec.model)(spec.params).config, "parallel", None) == "hogwild"


HOGWILD = [p for p in FILES if _hogwild(p)]


def test_the_hogwild_check_has_cases():
    assert CONFIGS / "ml100k" / "bpr.toml" in HOGWILD


@pytest.mark.parametrize("path", HOGWILD, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_hogwild_configs_pin_one_thread(path):
    spec = ExperimentSpec.from_file(path)
    assert spec.training.get("threads") == 1, f"{path.name}: hogwild is reproducible only on one thread"


@pytest.mark.slow
@pytest.mark.realdata
def test_bpr_config_gives_the_same_numbers_twice(ml100k, tmp_path):
    spec = ExperimentSpec.from_file(CONFIGS / "ml100k" / "bpr.toml").replace(params={"epochs": 8})
    a = run(spec, logger="none", output=tmp_path / "a", outputs=False)
    b = run(spec, logger="none", output=tmp_path / "b", outputs=False)
    assert a.metrics == b.metrics

"""docs/conventions.md's table of renamed hyperparameters is exactly the models' ``ALIASES``."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

from recforge.models import registry

DOC = Path(__file__).resolve().parents[1] / "docs" / "conventions.md"


def documented() -> set[tuple[str, str, str]]:
    text = DOC.read_text()
    table = text[text.index("## Renamed hyperparameters"):text.index("## What is public")]
    out = set()
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not cells[0].startswith("`"):
            continue
        models = re.findall(r"`([^`]+)`", cells[0])
        olds = re.findall(r"`([^`]+)`", cells[1])
        news = re.findall(r"`([^`]+)`", cells[2])
        if len(news) == 1:
            news = news * len(olds)
        for model in models:
            for old, new in zip(olds, news):
                out.add((model, old, new))
    return out


def in_code() -> set[tuple[str, str, str]]:
    out = set()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for entry in registry.list_models():
            cfg = getattr(registry.get_model_class(entry.name), "config_class", None)
            for old, new in (getattr(cfg, "ALIASES", None) or {}).items():
                out.add((entry.name, old, new))
    return out


def test_alias_table_matches_the_config_classes() -> None:
    doc, code = documented(), in_code()
    assert doc - code == set(), f"documented but not accepted: {sorted(doc - code)}"
    assert code - doc == set(), f"accepted but not documented: {sorted(code - doc)}"

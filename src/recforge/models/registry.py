"""Short model names (as used by the CLI and config files) -> model classes.

Each family package (``recforge.models.<family>``) has a ``CATALOG`` dict mapping a short name to
``(module, class name, task, extra)``; a family that is missing is skipped, so a family can ship
on its own.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from recforge.errors import ConfigError

FAMILIES = (
    "baselines",
    "neighbors",
    "filters",
    "factorization",
    "neural",
    "sequential",
    "ctr",
    "content",
    "ensemble",
    "signals",
)


@dataclass(frozen=True)
class ModelEntry:
    name: str
    module: str
    cls: str
    task: str
    extra: str | None = None


def _entries() -> dict[str, ModelEntry]:
    out: dict[str, ModelEntry] = {}
    for fam in FAMILIES:
        try:
            mod = importlib.import_module(f"recforge.models.{fam}")
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith(f"recforge.models.{fam}"):
                continue
            raise
        for name, spec in getattr(mod, "CATALOG", {}).items():
            module, cls, task, *rest = spec
            out[name] = ModelEntry(name, module, cls, task, rest[0] if rest else None)
    return out


def list_models() -> list[ModelEntry]:
    """Every registered model, sorted by task then name."""
    return sorted(_entries().values(), key=lambda e: (e.task, e.name))


def get_model_class(name: str) -> Any:
    """The class registered under ``name``; a clear error lists the valid names."""
    entries = _entries()
    if name not in entries:
        raise ConfigError(f"unknown model {name!r}; available: {', '.join(sorted(entries))}")
    e = entries[name]
    if e.extra:
        from recforge._optional import require

        require(e.extra.split(":")[0], purpose=f"model {name!r}")
    return getattr(importlib.import_module(e.module), e.cls)


def make_model(name: str, config: dict[str, Any] | None = None) -> Any:
    """Construct the model ``name`` with a config dict (validated)."""
    return get_model_class(name)(config or {})

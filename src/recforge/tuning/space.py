"""Search spaces as plain data (TOML/YAML tables) and their Optuna suggestions."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from recforge.errors import ConfigError


@dataclass(frozen=True)
class Dimension:
    """One hyperparameter's range: ``int``, ``float`` (``log``, ``step``) or ``categorical`` (``choices``)."""

    name: str
    type: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] = ()


def parse_space(space: Mapping[str, Any] | None) -> list[Dimension]:
    """Validate ``[tune.space]``: ``{name: {type, low, high, log, step} | {type: categorical, choices} | [choices]}``."""
    dims = []
    for name, spec in (space or {}).items():
        if isinstance(spec, (list, tuple)):
            spec = {"type": "categorical", "choices": list(spec)}
        if not isinstance(spec, Mapping):
            raise ConfigError(f"[tune.space] {name}: expected a table or a list of choices, got {spec!r}")
        kind = spec.get("type", "categorical" if "choices" in spec else None)
        if kind == "categorical":
            choices = tuple(spec.get("choices") or ())
            if not choices:
                raise ConfigError(f"[tune.space] {name}: categorical needs a non-empty choices list")
            dims.append(Dimension(name, "categorical", choices=choices))
            continue
        if kind not in ("int", "float"):
            raise ConfigError(f"[tune.space] {name}: type must be int, float or categorical, got {kind!r}")
        if "low" not in spec or "high" not in spec:
            raise ConfigError(f"[tune.space] {name}: {kind} needs low and high")
        low, high = spec["low"], spec["high"]
        if not (isinstance(low, (int, float)) and isinstance(high, (int, float))) or low > high:
            raise ConfigError(f"[tune.space] {name}: need numbers low <= high, got {low!r}, {high!r}")
        log = bool(spec.get("log", False))
        if log and low <= 0:
            raise ConfigError(f"[tune.space] {name}: a log scale needs low > 0")
        step = spec.get("step")
        if log and step is not None:
            raise ConfigError(f"[tune.space] {name}: step and log cannot be combined")
        unknown = set(spec) - {"type", "low", "high", "log", "step"}
        if unknown:
            raise ConfigError(f"[tune.space] {name}: unknown key(s) {', '.join(sorted(unknown))}")
        dims.append(Dimension(name, kind, float(low) if kind == "float" else int(low),
                              float(high) if kind == "float" else int(high), log, step))
    if not dims:
        raise ConfigError("[tune.space] is empty: name at least one hyperparameter to search")
    return dims


def suggest(trial: Any, dims: list[Dimension]) -> dict[str, Any]:
    """Draw one value per dimension from an Optuna trial."""
    out: dict[str, Any] = {}
    for d in dims:
        if d.type == "categorical":
            out[d.name] = trial.suggest_categorical(d.name, list(d.choices))
        elif d.type == "int":
            out[d.name] = trial.suggest_int(d.name, int(d.low), int(d.high), log=d.log, step=int(d.step or 1))
        else:
            out[d.name] = trial.suggest_float(d.name, float(d.low), float(d.high), log=d.log, step=d.step)
    return out

"""Typed, frozen model configurations and the run context passed to ``fit``."""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Self

from recforge.errors import ConfigError


@dataclass(frozen=True)
class ModelConfig:
    """Base of every model's hyperparameter class.

    Subclasses are frozen dataclasses with one documented field per hyperparameter and override
    :meth:`validate` to reject bad values; validation runs at construction, so an invalid
    configuration fails before any data is read or any training starts.
    """

    def __post_init__(self) -> None:
        self._coerce_types()
        self.validate()

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the first invalid field."""

    def _coerce_types(self) -> None:
        # values from TOML, YAML or ``--set k=v`` arrive as str/int; coerce to the declared type
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            val = getattr(self, f.name)
            hint = hints.get(f.name)
            try:
                new = _coerce(val, hint)
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"{type(self).__name__}.{f.name}: cannot use {val!r} ({exc})") from exc
            if new is not val:
                object.__setattr__(self, f.name, new)

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-compatible dict."""
        return {f.name: _jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Self:
        """Build from a dict; unknown keys are an error that lists the valid ones."""
        data = dict(data or {})
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(
                f"{cls.__name__}: unknown hyperparameter(s) {', '.join(unknown)}; "
                f"valid: {', '.join(sorted(names)) or '(none)'}"
            )
        return cls(**data)

    def replace(self, **changes: Any) -> Self:
        """A copy with some fields changed (validated again)."""
        return self.from_dict({**self.to_dict(), **changes})

    def check(self, ok: bool, field: str, message: str) -> None:
        """Raise a :class:`ConfigError` for ``field`` unless ``ok``."""
        if not ok:
            raise ConfigError(f"{type(self).__name__}.{field} = {getattr(self, field)!r}: {message}")


@dataclass(frozen=True)
class FitOptions:
    """Run context for ``fit``: everything that is not a hyperparameter.

    Attributes:
        seed: Seed for every random choice of the fit; the same seed gives the same model.
        device: ``"cpu"``, ``"cuda"`` or ``"auto"`` (torch models only).
        progress: Show a progress bar.
        logger: An experiment logger (see :mod:`recforge.training`), or None.
        validation: Optional held-out interactions for early stopping.
        threads: Thread count for compiled kernels (None: all cores).
        verbose: Print per-epoch metrics.
        epoch_callback: Called as ``epoch_callback(epoch, model)`` after every epoch (iteration)
            of the iterative classical models (SVD, SVD++, NMF, ALS, iALS, BPR), between two
            compiled epochs, with ``epoch`` the number of epochs done (1, 2, ...) and ``model``
            scorable (``predict``, ``recommend``) as it stands. It may raise
            :class:`StopTraining` to end the fit there (the model keeps that state) or any other
            exception to abort the fit (the tuner raises ``optuna.TrialPruned``). None costs nothing.
    """

    seed: int | None = 0
    device: str = "cpu"
    progress: bool = False
    logger: Any = None
    validation: Any = None
    threads: int | None = None
    verbose: bool = False
    epoch_callback: Callable[[int, Any], None] | None = None

    FIELDS: ClassVar[tuple[str, ...]] = ("seed", "device", "progress", "threads", "verbose")


class StopTraining(Exception):  # noqa: N818 - a signal, not an error
    """Raised by a :attr:`FitOptions.epoch_callback` to end a fit after the current epoch."""


def _coerce(val: Any, hint: Any) -> Any:
    if hint is None or val is None:
        return val
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        if val is None or type(None) in args and val in ("none", "None", "null"):
            return None
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(val, a)
            except (TypeError, ValueError):
                continue
        return val
    if origin is typing.Literal:
        if val not in args:
            raise ValueError(f"must be one of {', '.join(map(repr, args))}")
        return val
    if origin in (tuple, list):
        if isinstance(val, str):
            val = [v for v in val.replace("[", "").replace("]", "").split(",") if v.strip()]
        inner = args[0] if args else None
        seq = [_coerce(v.strip() if isinstance(v, str) else v, inner) for v in val]
        return tuple(seq) if origin is tuple else seq
    if hint is bool:
        if isinstance(val, str):
            low = val.lower()
            if low in ("true", "1", "yes", "on"):
                return True
            if low in ("false", "0", "no", "off"):
                return False
            raise ValueError("not a boolean")
        if isinstance(val, bool):
            return val
        raise ValueError("not a boolean")
    if hint is int:
        if isinstance(val, bool):
            raise ValueError("not an integer")
        if isinstance(val, int):
            return val
        if isinstance(val, float) and val.is_integer():
            return int(val)
        if isinstance(val, str):
            return int(val)
        raise ValueError("not an integer")
    if hint is float:
        if isinstance(val, bool):
            raise ValueError("not a number")
        if isinstance(val, float):
            return val
        return float(val)
    if hint is str:
        if not isinstance(val, str):
            raise ValueError("not a string")
        return val
    return val


def _jsonable(val: Any) -> Any:
    if isinstance(val, tuple):
        return [_jsonable(v) for v in val]
    return val

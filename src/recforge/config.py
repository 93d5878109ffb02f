"""Typed, frozen model configurations, the run context passed to ``fit``, and config files.

This is the one place that reads configuration: :class:`ModelConfig` (hyperparameters, with
renamed-field aliases), :class:`FitOptions` (the run context), :func:`read_config` (TOML/YAML
files), :func:`parse_sets` (``--set key=value``) and :func:`check_keys` (unknown keys are an error
that suggests the nearest valid key).
"""

from __future__ import annotations

import dataclasses
import difflib
import tomllib
import typing
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, Self

import yaml

from recforge.errors import ConfigError


def nearest(name: str, valid: Iterable[str]) -> str | None:
    """The valid name closest to ``name`` (for "did you mean" messages), or None."""
    match = difflib.get_close_matches(str(name), sorted(map(str, valid)), n=1, cutoff=0.6)
    return match[0] if match else None


def check_keys(where: str, keys: Iterable[str], valid: Iterable[str], what: str = "key") -> None:
    """Raise :class:`ConfigError` for the first key of ``keys`` not in ``valid``, suggesting the nearest.

    Args:
        where: What holds the keys, for the message (``"configs/x.toml [model]"``, ``"SVDConfig"``).
        keys: The keys given.
        valid: The keys allowed.
        what: The kind of key, for the message (``"hyperparameter"``, ``"key"``, ``"section"``).
    """
    valid = sorted(set(valid))
    unknown = sorted(set(keys) - set(valid))
    if not unknown:
        return
    bad = unknown[0]
    hint = nearest(bad, valid)
    more = f" (and {', '.join(unknown[1:])})" if len(unknown) > 1 else ""
    did = f"; did you mean {hint!r}?" if hint else ""
    raise ConfigError(f"{where}: unknown {what} {bad!r}{more}{did} valid: {', '.join(valid) or '(none)'}")


@dataclass(frozen=True)
class ModelConfig:
    """Base of every model's hyperparameter class.

    Subclasses are frozen dataclasses with one documented field per hyperparameter and override
    :meth:`validate` to reject bad values; validation runs at construction, so an invalid
    configuration fails before any data is read or any training starts.
    """

    ALIASES: ClassVar[dict[str, str]] = {}
    """Old field name -> current name. Old names are accepted by :meth:`from_dict` (and so by config
    files, ``--set`` and keyword construction) with a :class:`DeprecationWarning`."""

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
        """Build from a dict; renamed fields are accepted under their old name (with a deprecation
        warning); unknown keys are an error that suggests the nearest valid one."""
        data = dict(data or {})
        names = {f.name for f in dataclasses.fields(cls)}
        for old in [k for k in data if k in cls.ALIASES and k not in names]:
            new = cls.ALIASES[old]
            if new in data:
                raise ConfigError(f"{cls.__name__}: both {old!r} and its new name {new!r} are given; keep {new!r}")
            warnings.warn(f"{cls.__name__}: {old!r} is renamed {new!r}; the old name will be removed",
                          DeprecationWarning, stacklevel=3)
            data[new] = data.pop(old)
        check_keys(cls.__name__, data, names, "hyperparameter")
        return cls(**data)

    def replace(self, **changes: Any) -> Self:
        """A copy with some fields changed (validated again)."""
        return self.from_dict({**self.to_dict(), **changes})

    def check(self, ok: bool, field: str, message: str) -> None:
        """Raise a :class:`ConfigError` for ``field`` unless ``ok``."""
        if not ok:
            raise ConfigError(f"{type(self).__name__}.{field} = {getattr(self, field)!r}: {message}")


#: Precision of the shared torch loop (mixed precision only on a GPU).
Precision = Literal["32-true", "16-mixed", "bf16-mixed"]


@dataclass(frozen=True)
class FitOptions:
    """Run context for ``fit``: everything that is not a hyperparameter (the one run context).

    Every model takes it; each reads the fields that concern it (the torch models read all of
    them, the classical models ``seed``, ``threads``, ``verbose``, ``logger``, ``validation`` and
    ``epoch_callback``).

    Attributes:
        seed: Seed for every random choice of the fit; the same seed gives the same model.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"`` (torch models only).
        progress: Show a progress bar.
        logger: Where per-epoch metrics go: a :class:`recforge.loggers.ExperimentLogger` (torch
            models log through its :meth:`~recforge.loggers.ExperimentLogger.lightning` adapter),
            a Lightning logger, a folder (a CSV log under it), or None.
        validation: Optional held-out data (indexed like the training data) for early stopping.
        threads: Thread count for compiled kernels and torch (None: the model's default).
        verbose: Print per-epoch metrics.
        epoch_callback: Called as ``epoch_callback(epoch, model)`` after every epoch (iteration)
            of the iterative models (SVD, SVD++, NMF, ALS, iALS, BPR and every torch model), with
            ``epoch`` the number of epochs done (1, 2, ...) and ``model`` scorable (``predict``,
            ``recommend``, ``predict_proba``) as it stands. It may raise :class:`StopTraining` to
            end the fit there (the model keeps that state) or any other exception to abort the
            fit (the tuner raises ``optuna.TrialPruned``). None costs nothing.
        patience: Early stopping of the torch loop: stop after this many validation checks
            without improvement of the monitored metric (None: never stop early). Only used
            when ``validation`` is given. ``"auto"``: the trainer's default, 5 checks
            (:attr:`DEFAULT_PATIENCE`; the ``ctr-holdout`` protocol uses 3).
        restore_best: After training with validation, go back to the weights of the best check.
        checkpoint_dir: Write Lightning checkpoints (best and last) here; None writes none.
        precision: ``"32-true"``, or mixed precision (``"16-mixed"``, ``"bf16-mixed"``) on a GPU;
            on a CPU training always runs in 32-bit.
        callbacks: Extra Lightning callbacks.
        min_delta: Smallest change of the monitored metric that counts as an improvement.
        backend: ``"local"`` (this process) or ``"ray"``: the torch models train data-parallel
            through Ray Train (Lightning DDP) and ``ials`` solves its user and item shards on Ray
            actors (:mod:`recforge.distributed.train`); other models refuse it.
        workers: Ray workers of a ``backend="ray"`` fit (one CPU each, unless ``threads``).
        address: The Ray cluster to join (``"auto"``, ``"ray://host:10001"``, ``"host:6379"``);
            None joins the cluster this process is connected to, else starts a local one.
    """

    seed: int | None = 0
    device: str = "cpu"
    progress: bool = False
    logger: Any = None
    validation: Any = None
    threads: int | None = None
    verbose: bool = False
    epoch_callback: Callable[[int, Any], None] | None = None
    patience: int | Literal["auto"] | None = "auto"
    restore_best: bool = True
    checkpoint_dir: str | None = None
    precision: Precision = "32-true"
    callbacks: tuple[Any, ...] = ()
    min_delta: float = 0.0
    backend: Literal["local", "ray"] = "local"
    workers: int = 2
    address: str | None = None

    FIELDS: ClassVar[tuple[str, ...]] = ("seed", "device", "progress", "threads", "verbose")
    #: Validation checks without improvement before the torch loop stops (``patience="auto"``).
    DEFAULT_PATIENCE: ClassVar[int] = 5

    def __post_init__(self) -> None:
        if self.patience != "auto" and self.patience is not None and (
                isinstance(self.patience, bool) or not isinstance(self.patience, int) or self.patience < 1):
            raise ConfigError(f"FitOptions.patience = {self.patience!r}: must be an integer >= 1, 'auto' or None")
        if self.precision not in typing.get_args(Precision):
            raise ConfigError(
                f"FitOptions.precision = {self.precision!r}: use '32-true', '16-mixed' or 'bf16-mixed'"
            )
        if self.min_delta < 0:
            raise ConfigError(f"FitOptions.min_delta = {self.min_delta!r}: must be >= 0")
        if self.backend not in ("local", "ray"):
            raise ConfigError(f"FitOptions.backend = {self.backend!r}: use 'local' or 'ray'")
        if isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 1:
            raise ConfigError(f"FitOptions.workers = {self.workers!r}: must be an integer >= 1")

    def early_stopping_patience(self, default: int | None = None) -> int | None:
        """:attr:`patience` with ``"auto"`` resolved to ``default`` (:attr:`DEFAULT_PATIENCE` when None)."""
        if self.patience == "auto":
            return self.DEFAULT_PATIENCE if default is None else default
        return self.patience

    def replace(self, **changes: Any) -> FitOptions:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)


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


def read_config(path: str | Path) -> dict[str, Any]:
    """Read a TOML (``.toml``) or YAML (``.yaml``/``.yml``) file into a dict."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: no such config file")
    if path.is_dir():
        raise ConfigError(f"{path}: is a directory, not a config file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte offset {exc.start})") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        if path.suffix.lower() == ".toml":
            data = tomllib.loads(text)
        elif path.suffix.lower() in (".yaml", ".yml"):
            data = yaml.safe_load(text) or {}
        else:
            raise ConfigError(f"{path}: config files must end in .toml, .yaml or .yml")
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {str(exc).splitlines()[0]}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a table/mapping")
    return data


def parse_sets(pairs: list[str] | None) -> dict[str, Any]:
    """``["k=v", ...]`` into a dict; values are parsed as TOML scalars when possible (``3``, ``0.1``, ``true``)."""
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects key=value, got {pair!r}")
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw
        out[key.strip()] = value
    return out

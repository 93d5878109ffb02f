"""What every command module of the CLI shares: options, output, one-line errors, and the
builders that turn a config file plus flags into a dataset, a model and fit options.

A config file is an experiment file (:mod:`recforge.experiments.spec`, the one schema); flags
given on the command line override its values, and ``--set key=value`` sets model
hyperparameters (``table.key=value`` any other key of the file).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
import typer
from rich.console import Console
from rich.markup import escape

from recforge.cli._output import FormatOpt  # noqa: F401 - one --format for every command
from recforge.errors import ConfigError, RecforgeError

if TYPE_CHECKING:
    from recforge.config import FitOptions
    from recforge.data.datasets import Dataset
    from recforge.experiments.spec import ExperimentSpec
    from recforge.models.base import Recommender
    from recforge.splits import Split

console = Console()
err_console = Console(stderr=True)

ConfigOpt = Annotated[Path | None, typer.Option("--config", help="experiment file (TOML or YAML); flags override it")]
SetOpt = Annotated[list[str] | None, typer.Option(
    "--set", help="key=value: a model hyperparameter; table.key=value: any other key of the config file")]


#: The options of :class:`recforge.data.source.DataSource` that every command taking ``--dataset``
#: accepts: (parameter name, flag, type, help). They become ``dataset.KEY`` flags of :func:`read_spec`.
DATA_OPTIONS: tuple[tuple[str, str, Any, str], ...] = (
    ("user_col", "--user-col", str, "column of user ids (default: found by name, e.g. user_id, userId)"),
    ("item_col", "--item-col", str, "column of item ids (default: found by name, e.g. item_id, movieId)"),
    ("rating_col", "--rating-col", str, "column of ratings (or of counts, with --weights); default: found by name"),
    ("timestamp_col", "--timestamp-col", str, "column of timestamps (numbers or dates); default: found by name"),
    ("sep", "--sep", str, "field separator: , tab ; | :: whitespace (default: sniffed)"),
    ("encoding", "--encoding", str, "text encoding of the file (default utf-8)"),
    ("columns", "--columns", str, "names of a header-less file's fields, comma-separated"),
    ("feedback", "--feedback", str, "auto|explicit|implicit (auto: explicit when there is a rating column)"),
    ("weights", "--weights", str, "implicit values: binary|count|log1p (default binary)"),
    ("positive_threshold", "--positive-threshold", float, "ratings >= this become implicit positives"),
    ("min_user_interactions", "--min-user-interactions", int, "k-core: drop users with fewer interactions"),
    ("min_item_interactions", "--min-item-interactions", int, "k-core: drop items with fewer interactions"),
    ("duplicates", "--duplicates", str, "repeated (user, item) rows: error|first|last|sum|mean (default error)"),
    ("train", "--train", str, "training file of your own split (with --test; protocol given-split)"),
    ("test", "--test", str, "test file of your own split (with --train)"),
    ("split_column", "--split-column", str, "column marking each row train or test (protocol given-split)"),
    ("split_date", "--split-date", str, "rows at or after this date are test (protocol given-split)"),
    ("signals", "--signal", list[str], "an extra signal column kept per row, NAME[:KIND] (count|duration|rating|"
                                       "binary; repeatable), e.g. --signal hours:duration"),
    ("utility", "--utility", str, "the value of every row as a formula over the signals, e.g. "
                                  "\"log1p(plays) + 0.5*clip(hours, 0, 10) + rating\" (docs/signals.md)"),
)
NormalizeOpt = Annotated[str | None, typer.Option(
    "--normalize", help="user-zscore|user-center|user-mean|item-...: the rating model learns normalised values "
                        "and predicts on the original scale (docs/signals.md)")]


def data_options(fn: Any) -> Any:
    """Add the :data:`DATA_OPTIONS` flags to a command; it receives them as ``data_flags``, a dict
    of ``dataset.KEY`` -> value (None: not given) for :func:`read_spec`."""
    sig = inspect.signature(fn, eval_str=True)
    own = [p for p in sig.parameters.values() if p.name != "data_flags"]
    extra = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None,
                               annotation=Annotated[kind | None, typer.Option(flag, help=text, rich_help_panel="Data")])
             for name, flag, kind, text in DATA_OPTIONS]

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        flags = {f"dataset.{name}": kwargs.pop(name, None) for name, *_ in DATA_OPTIONS}
        return fn(*args, data_flags=flags, **kwargs)

    wrapper.__signature__ = sig.replace(parameters=own + extra)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in own + extra}
    del wrapper.__wrapped__  # typer reads the signature above, not the wrapped function's
    return wrapper


#: The options of :func:`backend_options`: (parameter name, flag, type, help).
BACKEND_OPTIONS: tuple[tuple[str, str, Any, str], ...] = (
    ("backend", "--backend", str, "local (this process) | ray (Ray workers; pip install 'recforge[ray]')"),
    ("workers", "--workers", int, "Ray workers, one CPU each (default 2; --backend ray)"),
    ("address", "--address", str, "a running Ray cluster: HOST:PORT of its head, or auto (default: start "
                                  "a local one on 127.0.0.1; --backend ray)"),
)


@dataclass(frozen=True)
class Backend:
    """Where a command runs its parallel stages: ``local`` (this process) or ``ray``.

    Attributes:
        name: ``local`` or ``ray``.
        workers: Ray workers (one CPU each).
        address: A running Ray cluster's address, or None (a local one on 127.0.0.1).
    """

    name: str = "local"
    workers: int = 2
    address: str | None = None

    @property
    def is_ray(self) -> bool:
        return self.name == "ray"

    def describe(self) -> str:
        if not self.is_ray:
            return "local"
        return f"ray ({self.workers} workers, {self.address or 'local cluster on 127.0.0.1'})"

    def scoring(self) -> Any:
        """A context in which full-ranking evaluation and the batch job score their blocks on
        this backend (:func:`recforge.distributed.scoring.ray_scoring` for ``ray``)."""
        if not self.is_ray:
            return contextlib.nullcontext()
        from recforge.distributed.scoring import ray_scoring

        return ray_scoring(self.workers, self.address)


def make_backend(backend: str | None = None, workers: int | None = None, address: str | None = None) -> Backend:
    """A checked :class:`Backend` from the flags (None: not given).

    Raises:
        ConfigError: An unknown backend, a non-positive worker count, or Ray options without
            ``--backend ray`` (one line).
    """
    name = (backend or "local").strip().lower()
    if name not in ("local", "ray"):
        raise ConfigError(f"--backend must be local or ray, got {backend!r}")
    if name == "local":
        given = [flag for flag, val in (("--workers", workers), ("--address", address)) if val is not None]
        if given:
            raise ConfigError(f"{' and '.join(given)} {'needs' if len(given) == 1 else 'need'} --backend ray")
        return Backend()
    if workers is not None and (isinstance(workers, bool) or workers < 1):
        raise ConfigError(f"--workers must be a positive integer, got {workers}")
    return Backend("ray", 2 if workers is None else int(workers), address or None)


def backend_options(fn: Any) -> Any:
    """Add ``--backend local|ray``, ``--workers N`` and ``--address ADDR`` to a command; it
    receives them as ``backend``, a checked :class:`Backend` (see :func:`make_backend`)."""
    sig = inspect.signature(fn, eval_str=True)
    own = [p for p in sig.parameters.values() if p.name != "backend"]
    extra = [inspect.Parameter(f"backend_{name}", inspect.Parameter.KEYWORD_ONLY, default=None,
                               annotation=Annotated[kind | None, typer.Option(flag, help=text,
                                                                               rich_help_panel="Backend")])
             for name, flag, kind, text in BACKEND_OPTIONS]

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        flags = {name: kwargs.pop(f"backend_{name}", None) for name, *_ in BACKEND_OPTIONS}
        return fn(*args, backend=make_backend(**flags), **kwargs)

    wrapper.__signature__ = sig.replace(parameters=own + extra)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in own + extra}
    del wrapper.__wrapped__  # typer reads the signature above, not the wrapped function's
    return wrapper


def handle_errors(fn: Any) -> Any:
    """Print a :class:`RecforgeError` as one line on stderr and exit with status 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except RecforgeError as exc:
            # escaped: messages name tables in brackets ("[training]"), which are not markup
            err_console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None

    return wrapper


# ---------------------------------------------------------------------------------------- config
def read_spec(config: Path | None, flags: dict[str, Any] | None = None, sets: list[str] | None = None, *,
              command: str, builds_model: bool = True) -> ExperimentSpec:
    """The config file (if any) with the given flags and ``--set`` pairs applied.

    Args:
        config: An experiment file, or None (flags only).
        flags: Values of the command's flags, by :meth:`ExperimentSpec.replace` name or as
            ``table.key`` (``split.method``); None = not given. ``dataset`` (a name or a file)
            replaces the file's whole ``[dataset]`` table.
        sets: ``--set`` pairs.
        command: The command's name, for messages.
        builds_model: Whether the command builds a model from the spec; a command that does not
            refuses plain ``--set key=value`` (a model hyperparameter it would ignore).

    Raises:
        ConfigError: An unknown key in the file or in ``--set`` (naming the nearest valid key),
            or an invalid value.
    """
    from recforge._arrays import check_k
    from recforge.config import parse_sets, read_config
    from recforge.experiments.spec import ExperimentSpec

    flags = flags or {}
    if flags.get("k") is not None:
        check_k(flags["k"])
    raw = read_config(config) if config is not None else {}
    spec = ExperimentSpec.from_dict(raw, source=config, require=())
    spec = spec.replace(**{k: v for k, v in flags.items() if "." not in k})
    dotted = {k: v for k, v in flags.items() if "." in k and v is not None}  # e.g. split.method
    if dotted:
        spec = spec.with_sets(dotted)
    pairs = parse_sets(sets)
    if not builds_model:
        plain = [key for key in pairs if "." not in key or key.startswith(("model.", "params."))]
        if plain:
            raise ConfigError(f"--set {plain[0]}: `recforge {command}` builds no model; here --set takes "
                              "table.key=value (e.g. dataset.rating_col=rating)")
    return spec.with_sets(pairs) if pairs else spec


def build_dataset(spec: ExperimentSpec, *, quiet: bool = False) -> Dataset:
    """The spec's dataset, loaded (a registered name, a file, or train and test files); what the
    loader read and dropped is printed on stderr (unless ``quiet``)."""
    from recforge.experiments.runner import load_dataset

    if not spec.dataset:
        raise ConfigError("no dataset given: pass --dataset NAME|FILE (or --train FILE --test FILE) "
                          "or set [dataset] in the config")
    ds = load_dataset(spec)
    if not quiet:
        for note in ds.notes:
            err_console.print(f"data: {escape(note)}", highlight=False, soft_wrap=True)
    return ds


def build_model(spec: ExperimentSpec) -> Recommender:
    """The spec's model with its hyperparameters (not fitted)."""
    from recforge.experiments.runner import build_model as make

    if not spec.model:
        raise ConfigError("no model given: pass --model NAME (see `recforge models`) or set [model] name in the config")
    return make(spec)


def fit_options(spec: ExperimentSpec, **extra: Any) -> FitOptions:
    """The spec's run options (seed and ``[training]``) for ``fit``."""
    from recforge.experiments.runner import fit_options as make

    return make(spec, **extra)


def make_splits(spec: ExperimentSpec, dataset: Dataset) -> list[Split]:
    """The splits the spec's ``[split]`` table asks for (:func:`recforge.splits.split_by_name`).

    The method defaults to ``predefined`` when the table names a split (``name = "u1"``), else
    ``random``; the seed is the spec's.
    """
    from recforge.splits import split_by_name

    opts = dict(spec.split)
    opts.pop("output", None)
    method = opts.pop("method", None) or split_method(spec)
    if method == "predefined" and "name" not in opts and own_split(spec):
        opts["name"] = "given"
    return split_by_name(str(method), dataset, seed=spec.seed, **opts)


def own_split(spec: ExperimentSpec) -> bool:
    """Whether the spec's data carries the user's own split (``--train/--test``, ``--split-column``,
    ``--split-date``): the dataset's ``given`` split."""
    return any(spec.dataset.get(key) for key in ("train", "split_column", "split_date"))


def split_method(spec: ExperimentSpec) -> str:
    """The ``[split]`` method when none is named: ``predefined`` for a named split or the user's own
    split, else ``random``."""
    return "predefined" if "name" in spec.split or own_split(spec) else "random"


def check_fit_data(model: Recommender, data: Any) -> None:
    """Refuse to fit a rating model on implicit feedback or on constant values (a one-line error)."""
    from recforge.data.interactions import Interactions
    from recforge.data.source import require_ratings

    if getattr(model, "feedback", None) == "explicit" and isinstance(data, Interactions):
        require_ratings(data, f"{model.name} (a rating model)")


def training_data(spec: ExperimentSpec, dataset: Dataset, model: Recommender) -> Any:
    """What ``train`` fits on: the train part of the spec's ``[split]`` when it has one; for CTR
    data, the train part of the dataset's CTR split (as ``ctr-holdout`` trains); else every interaction."""
    if spec.split or own_split(spec):
        return make_splits(spec, dataset)[0].train
    if dataset.interactions is None:
        if model.task != "ctr":
            raise ConfigError(f"dataset {dataset.name!r} is CTR data without user-item interactions; "
                              f"{model.name} needs interactions")
        from recforge.data.ctr import ctr_splits

        return ctr_splits(dataset, seed=spec.seed).train
    return dataset.interactions


def list_length(spec: ExperimentSpec, default: int = 10) -> int:
    """The list length of ``recommend``/``batch``: the spec's k (``--k`` or ``[protocol] k``), else ``default``."""
    from recforge._arrays import check_k

    return check_k(default if spec.k is None else spec.k)


# ---------------------------------------------------------------------------------------- output
def print_json(obj: Any) -> None:
    """Write ``obj`` as indented JSON on stdout (numpy values as plain numbers, NaN as null)."""
    sys.stdout.write(json.dumps(obj, indent=2, default=_json_default) + "\n")


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        v = o.item()
        return None if isinstance(v, float) and np.isnan(v) else v
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)

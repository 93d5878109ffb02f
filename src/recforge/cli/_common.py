"""What every command module of the CLI shares: options, output, one-line errors, and the
builders that turn a config file plus flags into a dataset, a model and fit options.

A config file is an experiment file (:mod:`recforge.experiments.spec`, the one schema); flags
given on the command line override its values, and ``--set key=value`` sets model
hyperparameters (``table.key=value`` any other key of the file).
"""

from __future__ import annotations

import functools
import json
import sys
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


def build_dataset(spec: ExperimentSpec) -> Dataset:
    """The spec's dataset, loaded (a registered name or a file)."""
    from recforge.experiments.runner import load_dataset

    if not spec.dataset:
        raise ConfigError("no dataset given: pass --dataset NAME|FILE or set [dataset] in the config")
    return load_dataset(spec)


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
    method = opts.pop("method", None) or ("predefined" if "name" in opts else "random")
    return split_by_name(str(method), dataset, seed=spec.seed, **opts)


def training_data(spec: ExperimentSpec, dataset: Dataset, model: Recommender) -> Any:
    """What ``train`` fits on: the train part of the spec's ``[split]`` when it has one; for CTR
    data, the train part of the dataset's CTR split (as ``ctr-holdout`` trains); else every interaction."""
    if spec.split:
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

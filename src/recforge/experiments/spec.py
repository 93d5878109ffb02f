"""Experiment files: one TOML or YAML file names everything a run needs.

A complete file (every table but ``[model]`` and ``[dataset]`` is optional)::

    name = "neumf-ml100k"          # run name; outputs go to runs/<name> unless [outputs] dir says
    seed = 0                       # drives the split (where random), the model and every sampler

    [dataset]
    name = "ml-100k"               # a registered dataset, or: path = "ratings.csv", user_col = ... (keys:
                                   # recforge.data.source.DataSource, docs/data.md)

    [protocol]
    name = "loo-full"              # a named protocol (`recforge protocols`); k = list length
    k = 10

    [model]
    name = "neumf"                 # a registered model (`recforge models`)
    [model.params]                 # its hyperparameters (validated by the model's config class)
    embedding_size = 32

    [training]                     # run options: device, threads, progress, verbose,
    device = "cpu"                 # validation (fraction or "loo" carved from training data, for
    validation = 0.1               # early stopping of torch models), patience, backend
    patience = 3                   # ("ray": torch models and ials fit on Ray), workers, address

    [logger]
    kind = "csv"                   # csv | tensorboard | wandb | mlflow | none
    project = "recforge"

    [outputs]
    save_model = true              # model.npz (no pickle)
    export = ["auto"]              # onnx for torch models, npz+json for the others
    plots = ["embeddings", "learning_curve", "metric_vs_k"]
    color_by = "genre"             # or "popularity"

    [tune]                         # `recforge tune`: Optuna search over [tune.space]
    n_trials = 20
    metric = "NDCG@10"
    [tune.space]
    embedding_size = { type = "int", low = 8, high = 128, log = true }
    learning_rate = { type = "float", low = 1e-4, high = 1e-1, log = true }

    [split]                        # `recforge split`: method (see recforge.splits.SPLITS),
    method = "temporal"            # test_fraction, n (latest n per user), name (predefined
    test_fraction = 0.2            # split), n_folds, output (folder)

    [batch]                        # `recforge batch`: database, table, batch_size, model_path,
    database = "recs.db"           # item_features, version (list length: [protocol] k)

    [serve]                        # `recforge serve`: the service options (recforge.serving)
    database = "recs.db"
    [pipeline]                     # serving pipeline (batch and serve), or pipeline = "file.toml"
    retrieval = { kind = "ann" }

Signals, utility and normalisation (``docs/signals.md``)::

    normalize = "user-zscore"      # the model learns per-user z-scores, predicts on the original scale
    [dataset]
    path = "plays.csv"
    signals = ["plays", "hours:duration", "rating:rating"]
    utility = "log1p(plays) + 0.5*clip(hours, 0, 10) + rating"

Shorthands: ``dataset = "ml-100k"`` (or a file: ``dataset = "log.csv"``), ``model = "svd"`` with a
top-level ``[params]`` table, ``protocol = "rating-u1"`` (or ``split = "rating-u1"``) with a top-level
``k``, ``logger = "wandb"``.

This is the one config-file schema: ``recforge run`` and ``tune`` read whole files, and every other
command that takes ``--config`` (``train``, ``evaluate``, ``recommend``, ``batch``, ``serve``,
``data stats``, ``split``) reads the same file and uses the tables it needs. Unknown keys are an
error that names the nearest valid key. Command-line values are applied with
:meth:`ExperimentSpec.replace` (flags) and :meth:`ExperimentSpec.with_sets` (``--set key=value``).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recforge._arrays import check_k, check_seed
from recforge.config import check_keys
from recforge.data.source import DATASET_KEYS as SOURCE_KEYS
from recforge.data.source import classify
from recforge.errors import ConfigError

REQUIRED = ("model", "dataset")
"""What a complete experiment names (``run``, ``tune``, ``compare``); partial files are read with ``require=()``."""
TOP_LEVEL = frozenset({"name", "seed", "dataset", "protocol", "split", "k", "model", "params", "training", "logger",
                       "outputs", "tune", "description", "batch", "serve", "pipeline", "normalize"})
DATASET_KEYS = SOURCE_KEYS  # the fields of recforge.data.source.DataSource
PROTOCOL_KEYS = frozenset({"name", "k"})
TRAINING_KEYS = frozenset({"device", "threads", "progress", "verbose", "validation", "patience", "min_delta",
                           "restore_best", "precision", "checkpoint_dir", "backend", "workers", "address"})
LOGGER_KEYS = frozenset({"kind", "project", "root"})
OUTPUT_KEYS = frozenset({"dir", "save_model", "export", "plots", "color_by", "embedding_points", "ks", "results"})
TUNE_KEYS = frozenset({"space", "n_trials", "metric", "direction", "pruner", "validation", "timeout", "report_every",
                       "enqueue"})
SPLIT_KEYS = frozenset({"method", "test_fraction", "n", "name", "n_folds", "output"})
BATCH_KEYS = frozenset({"model_path", "database", "table", "batch_size", "item_features", "version"})
TABLES: dict[str, frozenset[str] | None] = {
    "dataset": DATASET_KEYS, "protocol": PROTOCOL_KEYS, "training": TRAINING_KEYS, "logger": LOGGER_KEYS,
    "outputs": OUTPUT_KEYS, "tune": TUNE_KEYS, "split": SPLIT_KEYS, "batch": BATCH_KEYS,
    "serve": None, "pipeline": None,  # validated by recforge.serving (ServiceConfig, Pipeline.from_config)
}
"""Table name -> its valid keys (None: the consumer validates them)."""
PLOTS = ("embeddings", "learning_curve", "metric_vs_k", "data")
EXPORTS = ("auto", "onnx", "npz", "none")


@dataclass
class ExperimentSpec:
    """A parsed, validated experiment file (see the module docstring for the format).

    Attributes:
        name: Run name (labels results, logs and the output folder).
        model: Registered model name ("" when a partial file names none).
        params: The model's hyperparameters.
        dataset: ``{"name": ...}`` or ``{"path": ..., "user_col": ..., ...}`` (empty when a partial
            file names none).
        protocol: Named evaluation protocol, or None for the task's default
            (:func:`recforge.evaluation.protocols.default_protocol`).
        k: List length for ranking metrics and recommendations (None: the protocol's default).
        seed: The one seed of the run.
        training: Run options (device, threads, validation, patience, ...).
        logger: ``{"kind": ..., "project": ..., "root": ...}``.
        outputs: What to write (see the module docstring).
        tune: Optuna settings and the search space.
        description: Free text.
        split: Options of ``recforge split`` (method, test_fraction, n, name, n_folds, output).
        batch: Options of ``recforge batch`` (database, table, batch_size, ...).
        serve: Options of ``recforge serve`` (validated by the service's config).
        pipeline: Serving pipeline config (a table, or the path of a file), for batch and serve.
        normalize: ``user-zscore``, ``user-center``, ``user-mean``, ``item-...`` (None: none): the
            model is wrapped in ``normalized`` (it learns normalised values and predicts on the
            original scale; :func:`recforge.data.utility.parse_normalize`).
        source: The file the spec was read from.
    """

    name: str
    model: str
    params: dict[str, Any] = field(default_factory=dict)
    dataset: dict[str, Any] = field(default_factory=dict)
    protocol: str | None = None
    k: int | None = None
    seed: int = 0
    training: dict[str, Any] = field(default_factory=dict)
    logger: dict[str, Any] = field(default_factory=lambda: {"kind": "csv"})
    outputs: dict[str, Any] = field(default_factory=dict)
    tune: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    split: dict[str, Any] = field(default_factory=dict)
    batch: dict[str, Any] = field(default_factory=dict)
    serve: dict[str, Any] = field(default_factory=dict)
    pipeline: dict[str, Any] | str | None = None
    normalize: str | None = None
    source: Path | None = None

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], source: str | Path | None = None, *,
                  require: Iterable[str] = REQUIRED) -> ExperimentSpec:
        """Parse and validate a spec dict (as read from TOML or YAML).

        Args:
            raw: The file's content.
            source: The file it came from (named in error messages; default run name).
            require: Parts that must be present (``"model"``, ``"dataset"``); ``()`` reads a partial
                file, as the single-purpose commands do (``split`` needs no model, ``serve`` neither).

        Raises:
            ConfigError: A missing required part, an unknown key (naming the nearest valid one) or
                an invalid value.
        """
        where = str(source) if source else "experiment"
        data = copy.deepcopy(dict(raw))
        check_keys(where, data, TOP_LEVEL, "top-level key")
        model = data.get("model")
        params = dict(data.get("params") or {})
        if isinstance(model, dict):
            model = dict(model)
            name = model.pop("name", None)
            params = {**dict(model.pop("params", None) or {}), **model, **params}
            model = name
        need = set(require)
        if (model is not None and not isinstance(model, str)) or (not model and "model" in need):
            raise ConfigError(f"{where}: no model: set model = \"NAME\" or a [model] table with name = \"NAME\"")
        dataset = data.get("dataset") or {}
        if isinstance(dataset, str):
            dataset = classify(dataset)
        named = isinstance(dataset, dict) and bool(dataset.get("name") or dataset.get("path") or dataset.get("train"))
        if not isinstance(dataset, dict) or (not named and (dataset or "dataset" in need)):
            raise ConfigError(f"{where}: no dataset: set dataset = \"ml-100k\" or a [dataset] table with name, "
                              "path, or train and test")
        protocol = data.get("protocol")
        split = data.get("split")
        if isinstance(split, str):  # `split = "rating-u1"`: the protocol's older name
            protocol = split if protocol is None else protocol
            split = None
        k = data.get("k")
        if isinstance(protocol, dict):
            check_keys(f"{where} [protocol]", protocol, PROTOCOL_KEYS)
            k = protocol.get("k", k)
            protocol = protocol.get("name")
        if protocol is not None and not isinstance(protocol, str):
            raise ConfigError(f"{where}: protocol must be a protocol name, got {protocol!r}")
        try:
            k = None if k is None else check_k(k)
            seed = check_seed(data.get("seed", 0))
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        tables = {key: _table(where, key, data.get(key)) for key in ("training", "outputs", "tune", "batch", "serve")}
        tables["dataset"] = _table(where, "dataset", dataset)
        training = tables["training"]
        val = training.get("validation")
        if val is not None and val != "loo" and not (isinstance(val, (int, float)) and 0 < float(val) < 1):
            raise ConfigError(f"{where} [training] validation must be a fraction in (0, 1) or \"loo\", got {val!r}")
        if training.get("backend", "local") not in ("local", "ray"):
            raise ConfigError(f"{where} [training] backend must be \"local\" or \"ray\", got {training['backend']!r}")
        workers = training.get("workers", 1)
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ConfigError(f"{where} [training] workers must be an integer >= 1, got {workers!r}")
        logger = data.get("logger", {"kind": "csv"})
        if isinstance(logger, str) or logger is None or logger is False:
            logger = {"kind": logger or "none"}
        logger = _table(where, "logger", logger)
        logger.setdefault("kind", "csv")
        from recforge.loggers import logger_kind as _canonical

        logger["kind"] = _canonical(logger["kind"])
        outputs = tables["outputs"]
        export = outputs.get("export", [])
        outputs["export"] = [export] if isinstance(export, str) else list(export)
        for e in outputs["export"]:
            if e not in EXPORTS:
                raise ConfigError(f"{where} [outputs] export: unknown format {e!r}; use {', '.join(EXPORTS)}")
        plots = outputs.get("plots", [])
        outputs["plots"] = [plots] if isinstance(plots, str) else list(plots)
        for p in outputs["plots"]:
            if p not in PLOTS:
                raise ConfigError(f"{where} [outputs] plots: unknown plot {p!r}; use {', '.join(PLOTS)}")
        pipeline = data.get("pipeline")
        if pipeline is not None and not isinstance(pipeline, (dict, str)):
            raise ConfigError(f"{where}: pipeline must be a table or the path of a pipeline file, got {pipeline!r}")
        normalize = data.get("normalize")
        if normalize is not None:
            from recforge.data.utility import parse_normalize

            try:
                norm = parse_normalize(normalize)
            except ConfigError as exc:
                raise ConfigError(f"{where}: {exc}") from None
            normalize = None if norm is None else norm.label
        name = data.get("name") or (Path(source).stem if source else model) or ""
        return cls(
            name=str(name), model=model or "", params=params, dataset=tables["dataset"], protocol=protocol, k=k,
            seed=seed, training=training, logger=logger, outputs=outputs, tune=tables["tune"],
            description=str(data.get("description", "")), split=_table(where, "split", split),
            batch=tables["batch"], serve=tables["serve"], pipeline=copy.deepcopy(pipeline),
            normalize=normalize, source=Path(source) if source else None,
        )

    @classmethod
    def from_file(cls, path: str | Path, *, require: Iterable[str] = REQUIRED) -> ExperimentSpec:
        """Read a ``.toml``, ``.yaml`` or ``.yml`` experiment file (``require`` as in :meth:`from_dict`)."""
        from recforge.config import read_config

        return cls.from_dict(read_config(path), source=path, require=require)

    # ------------------------------------------------------------------ views
    def to_dict(self) -> dict[str, Any]:
        """The canonical nested dict (what :meth:`save` writes and what loggers record)."""
        out: dict[str, Any] = {"name": self.name, "seed": self.seed}
        if self.description:
            out["description"] = self.description
        if self.dataset:
            out["dataset"] = dict(self.dataset)
        proto: dict[str, Any] = {}
        if self.protocol:
            proto["name"] = self.protocol
        if self.k is not None:
            proto["k"] = self.k
        if proto:
            out["protocol"] = proto
        if self.model or self.params:
            out["model"] = {"name": self.model, "params": dict(self.params)}
        for key in ("training", "logger", "outputs", "tune", "split", "batch", "serve"):
            val = {k: v for k, v in getattr(self, key).items() if v != [] and v is not None}
            if val:
                out[key] = copy.deepcopy(val)
        if self.pipeline is not None:
            out["pipeline"] = copy.deepcopy(self.pipeline)
        if self.normalize is not None:
            out["normalize"] = self.normalize
        return out

    def save(self, path: str | Path) -> Path:
        """Write the spec as TOML (``.toml``) or YAML (``.yaml``/``.yml``), atomically."""
        from recforge.io import atomic_write

        path = Path(path)
        data = _drop_none(self.to_dict())
        if path.suffix.lower() == ".toml":
            import tomli_w

            text = tomli_w.dumps(data)
        elif path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            text = yaml.safe_dump(data, sort_keys=False)
        else:
            raise ConfigError(f"{path}: experiment files end in .toml, .yaml or .yml")
        with atomic_write(path) as fh:
            fh.write(text)
        return path

    def replace(self, **changes: Any) -> ExperimentSpec:
        """A copy with fields changed; None values are ignored (a flag that was not given).

        ``params`` are merged, not replaced; a different ``model`` drops the old model's params;
        ``dataset`` may be a name or a file path (it replaces the whole ``[dataset]`` table);
        ``protocol``/``k`` go to ``[protocol]``, ``output`` to ``[outputs] dir``, ``logger`` (a kind)
        to ``[logger]``, and ``device``, ``threads``, ``validation``, ``patience``, ``progress``,
        ``verbose``, ``backend``, ``workers``, ``address`` to ``[training]``.
        """
        data = self.to_dict()
        model = changes.pop("model", None)
        if model is not None and model != self.model:
            data["model"] = {"name": model, "params": {}}
        for key, val in changes.items():
            if val is None:
                continue
            if key == "params":
                table = data.setdefault("model", {"name": self.model, "params": {}})
                table["params"] = {**table["params"], **val}
            elif key == "dataset":
                data["dataset"] = val
            elif key == "protocol":
                data.setdefault("protocol", {})["name"] = val
            elif key == "k":
                data.setdefault("protocol", {})["k"] = val
            elif key == "logger":
                data["logger"] = {**data.get("logger", {}), "kind": val} if isinstance(val, str) else val
            elif key == "output":
                data.setdefault("outputs", {})["dir"] = str(val)
            elif key in ("device", "threads", "validation", "patience", "progress", "verbose", "backend", "workers",
                         "address"):
                data.setdefault("training", {})[key] = val
            else:
                data[key] = val
        return ExperimentSpec.from_dict(data, self.source, require=())

    def with_sets(self, sets: Mapping[str, Any]) -> ExperimentSpec:
        """A copy with ``--set key=value`` pairs applied (values as parsed by :func:`recforge.config.parse_sets`).

        A plain ``key`` is a model hyperparameter (checked by the model's config class when the
        model is built); ``table.key`` sets a key of a table (``training.threads=2``,
        ``protocol.k=20``, ``dataset.name=gowalla``, ``serve.default_k=5``; ``model.name=svd``,
        ``model.key`` and ``params.key`` are hyperparameters). Unknown tables and keys raise
        :class:`ConfigError` naming the nearest valid one.
        """
        data = self.to_dict()
        params: dict[str, Any] = {}
        for dotted, val in sets.items():
            table, _, key = str(dotted).partition(".")
            if not key:
                params[table] = val
            elif table == "params" or table == "model" and key != "name":
                params[key.removeprefix("params.")] = val
            elif table == "model":
                data["model"] = {"name": val, "params": {}}
            else:
                check_keys(f"--set {dotted}", [table], TABLES, "table")
                head, _, rest = key.partition(".")
                valid = TABLES[table]
                if valid is not None:
                    check_keys(f"--set {dotted}", [head], valid, f"key of [{table}]")
                node = data.get(table, {})
                if not isinstance(node, dict):
                    raise ConfigError(f"--set {dotted}: {table} is {node!r}, not a table")
                node = data[table] = dict(node)
                while rest:  # deeper keys, e.g. tune.space.reg.low
                    node = node.setdefault(head, {})
                    head, _, rest = rest.partition(".")
                node[head] = val
        spec = ExperimentSpec.from_dict(data, self.source, require=())
        return spec.replace(params=params) if params else spec

    @property
    def output_dir(self) -> Path:
        """Where the run's files go (``outputs.dir``, default ``runs/<name>``)."""
        return Path(self.outputs.get("dir") or Path("runs") / self.name)

    def dataset_key(self) -> tuple[Any, ...]:
        """What must match for two specs to be compared on the same split."""
        ds = tuple(sorted((k, str(v)) for k, v in self.dataset.items()))
        return ds, self.protocol, self.k, self.seed


def _table(where: str, name: str, value: Any) -> dict[str, Any]:
    """A table of the file as a dict, its keys checked against :data:`TABLES`."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: {name} must be a table, got {value!r}")
    valid = TABLES[name]
    if valid is not None:
        check_keys(f"{where} [{name}]", value, valid)
    return dict(value)


def _drop_none(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _drop_none(v) for k, v in obj.items() if v is not None}
    if isinstance(obj, (list, tuple)):
        return [_drop_none(v) for v in obj]
    return obj


def load_spec(path: str | Path) -> ExperimentSpec:
    """Read an experiment file (same as :meth:`ExperimentSpec.from_file`)."""
    return ExperimentSpec.from_file(path)

"""Experiment files: one TOML or YAML file names everything a run needs.

A complete file (every table but ``[model]`` and ``[dataset]`` is optional)::

    name = "neumf-ml100k"          # run name; outputs go to runs/<name> unless [outputs] dir says
    seed = 0                       # drives the split (where random), the model and every sampler

    [dataset]
    name = "ml-100k"               # a registered dataset, or: path = "ratings.csv", user_col = ...

    [protocol]
    name = "loo-full"              # a named protocol (`recforge protocols`); k = list length
    k = 10

    [model]
    name = "neumf"                 # a registered model (`recforge models`)
    [model.params]                 # its hyperparameters (validated by the model's config class)
    embedding_size = 32

    [training]                     # run options: device, threads, progress, verbose,
    device = "cpu"                 # validation (fraction or "loo" carved from training data, for
    validation = 0.1               # early stopping of torch models), patience
    patience = 3

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

Shorthands: ``dataset = "ml-100k"``, ``model = "svd"`` with a top-level ``[params]`` table,
``protocol = "rating-u1"`` with a top-level ``k``, ``logger = "wandb"``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recforge.errors import ConfigError

_KNOWN = {"name", "seed", "dataset", "protocol", "split", "k", "model", "params", "training", "logger", "outputs",
          "tune", "description"}
_TRAINING_KEYS = {"device", "threads", "progress", "verbose", "validation", "patience", "min_delta", "restore_best",
                  "precision", "checkpoint_dir"}
_OUTPUT_KEYS = {"dir", "save_model", "export", "plots", "color_by", "embedding_points", "ks", "results"}
PLOTS = ("embeddings", "learning_curve", "metric_vs_k", "data")
EXPORTS = ("auto", "onnx", "npz", "none")


@dataclass
class ExperimentSpec:
    """A parsed, validated experiment file (see the module docstring for the format).

    Attributes:
        name: Run name (labels results, logs and the output folder).
        model: Registered model name.
        params: The model's hyperparameters.
        dataset: ``{"name": ...}`` or ``{"path": ..., "user_col": ..., ...}``.
        protocol: Named evaluation protocol, or None for the task's default
            (``rating-u1`` for rating models, ``loo-full`` otherwise).
        k: List length for ranking metrics (None: the protocol's default).
        seed: The one seed of the run.
        training: Run options (device, threads, validation, patience, ...).
        logger: ``{"kind": ..., "project": ..., "root": ...}``.
        outputs: What to write (see the module docstring).
        tune: Optuna settings and the search space.
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
    source: Path | None = None

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_dict(cls, raw: dict[str, Any], source: str | Path | None = None) -> ExperimentSpec:
        """Parse and validate a spec dict (as read from TOML or YAML)."""
        where = f"{source}: " if source else ""
        data = copy.deepcopy(dict(raw))
        unknown = sorted(set(data) - _KNOWN)
        if unknown:
            raise ConfigError(f"{where}unknown top-level key(s) {', '.join(unknown)}; valid: {', '.join(sorted(_KNOWN))}")
        model = data.get("model")
        params = dict(data.get("params") or {})
        if isinstance(model, dict):
            model = dict(model)
            name = model.pop("name", None)
            params = {**dict(model.pop("params", None) or {}), **model, **params}
            model = name
        if not model or not isinstance(model, str):
            raise ConfigError(f"{where}no model: set model = \"NAME\" or a [model] table with name = \"NAME\"")
        dataset = data.get("dataset")
        if isinstance(dataset, str):
            dataset = {"name": dataset}
        if not isinstance(dataset, dict) or not (dataset.get("name") or dataset.get("path")):
            raise ConfigError(f"{where}no dataset: set dataset = \"ml-100k\" or a [dataset] table with name or path")
        protocol = data.get("protocol", data.get("split"))
        k = data.get("k")
        if isinstance(protocol, dict):
            k = protocol.get("k", k)
            protocol = protocol.get("name")
        if protocol is not None and not isinstance(protocol, str):
            raise ConfigError(f"{where}protocol must be a protocol name, got {protocol!r}")
        if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k <= 0):
            raise ConfigError(f"{where}k must be a positive integer, got {k!r}")
        seed = data.get("seed", 0)
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ConfigError(f"{where}seed must be a non-negative integer, got {seed!r}")
        training = dict(data.get("training") or {})
        bad = sorted(set(training) - _TRAINING_KEYS)
        if bad:
            raise ConfigError(f"{where}[training]: unknown key(s) {', '.join(bad)}; valid: {', '.join(sorted(_TRAINING_KEYS))}")
        val = training.get("validation")
        if val is not None and val != "loo" and not (isinstance(val, (int, float)) and 0 < float(val) < 1):
            raise ConfigError(f"{where}[training] validation must be a fraction in (0, 1) or \"loo\", got {val!r}")
        logger = data.get("logger", {"kind": "csv"})
        if isinstance(logger, str) or logger is None or logger is False:
            logger = {"kind": logger or "none"}
        logger = dict(logger)
        logger.setdefault("kind", "csv")
        from recforge.loggers import logger_kind as _canonical

        logger["kind"] = _canonical(logger["kind"])
        outputs = dict(data.get("outputs") or {})
        bad = sorted(set(outputs) - _OUTPUT_KEYS)
        if bad:
            raise ConfigError(f"{where}[outputs]: unknown key(s) {', '.join(bad)}; valid: {', '.join(sorted(_OUTPUT_KEYS))}")
        export = outputs.get("export", [])
        outputs["export"] = [export] if isinstance(export, str) else list(export)
        for e in outputs["export"]:
            if e not in EXPORTS:
                raise ConfigError(f"{where}[outputs] export: unknown format {e!r}; use {', '.join(EXPORTS)}")
        plots = outputs.get("plots", [])
        outputs["plots"] = [plots] if isinstance(plots, str) else list(plots)
        for p in outputs["plots"]:
            if p not in PLOTS:
                raise ConfigError(f"{where}[outputs] plots: unknown plot {p!r}; use {', '.join(PLOTS)}")
        name = data.get("name") or (Path(source).stem if source else model)
        spec = cls(
            name=str(name), model=model, params=params, dataset=dict(dataset), protocol=protocol, k=k, seed=seed,
            training=training, logger=logger, outputs=outputs, tune=dict(data.get("tune") or {}),
            description=str(data.get("description", "")), source=Path(source) if source else None,
        )
        return spec

    @classmethod
    def from_file(cls, path: str | Path) -> ExperimentSpec:
        """Read a ``.toml``, ``.yaml`` or ``.yml`` experiment file."""
        from recforge.config import read_config

        return cls.from_dict(read_config(path), source=path)

    # ------------------------------------------------------------------ views
    def to_dict(self) -> dict[str, Any]:
        """The canonical nested dict (what :meth:`save` writes and what loggers record)."""
        out: dict[str, Any] = {"name": self.name, "seed": self.seed}
        if self.description:
            out["description"] = self.description
        out["dataset"] = dict(self.dataset)
        proto: dict[str, Any] = {}
        if self.protocol:
            proto["name"] = self.protocol
        if self.k is not None:
            proto["k"] = self.k
        if proto:
            out["protocol"] = proto
        out["model"] = {"name": self.model, "params": dict(self.params)}
        for key in ("training", "logger", "outputs", "tune"):
            val = {k: v for k, v in getattr(self, key).items() if v != [] and v is not None}
            if val:
                out[key] = copy.deepcopy(val)
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
        """A copy with fields changed (``params`` are merged, not replaced)."""
        data = self.to_dict()
        for key, val in changes.items():
            if val is None:
                continue
            if key == "params":
                data["model"]["params"] = {**data["model"]["params"], **val}
            elif key == "protocol":
                data.setdefault("protocol", {})["name"] = val
            elif key == "k":
                data.setdefault("protocol", {})["k"] = val
            elif key == "logger":
                data["logger"] = {**data.get("logger", {}), "kind": val} if isinstance(val, str) else val
            elif key == "output":
                data.setdefault("outputs", {})["dir"] = str(val)
            elif key in ("device", "threads", "validation", "patience", "progress", "verbose"):
                data.setdefault("training", {})[key] = val
            else:
                data[key] = val
        return ExperimentSpec.from_dict(data, self.source)

    @property
    def output_dir(self) -> Path:
        """Where the run's files go (``outputs.dir``, default ``runs/<name>``)."""
        return Path(self.outputs.get("dir") or Path("runs") / self.name)

    def dataset_key(self) -> tuple[Any, ...]:
        """What must match for two specs to be compared on the same split."""
        ds = tuple(sorted((k, str(v)) for k, v in self.dataset.items()))
        return ds, self.protocol, self.k, self.seed


def _drop_none(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _drop_none(v) for k, v in obj.items() if v is not None}
    if isinstance(obj, (list, tuple)):
        return [_drop_none(v) for v in obj]
    return obj


def load_spec(path: str | Path) -> ExperimentSpec:
    """Read an experiment file (same as :meth:`ExperimentSpec.from_file`)."""
    return ExperimentSpec.from_file(path)

"""Experiment loggers: one interface for every model, four backends, and the matching Lightning loggers.

======================  ==================================================================  =========
kind                    writes                                                              needs
======================  ==================================================================  =========
``csv`` (default)       ``ROOT/<name>/version_N/{metrics.csv,config.json,...}``              nothing
``tensorboard``         ``ROOT/<name>/version_N/events.out.tfevents.*``                      tensorboard
``wandb``               ``ROOT/wandb/offline-run-*/run-*.wandb`` (offline: no account/net)  wandb
``mlflow``              ``ROOT/mlruns/<experiment>/<run>/`` (local file store)               mlflow
======================  ==================================================================  =========

Non-torch models are logged by the experiment runner through :class:`ExperimentLogger` (config,
environment, per-epoch history where the model keeps one, final metrics, timings). Torch models
additionally log live, per epoch, through :meth:`ExperimentLogger.lightning` (or
:func:`lightning_logger`), passed as ``FitOptions.logger`` to the shared Lightning loop.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from recforge.errors import ConfigError
from recforge.loggers._base import ExperimentLogger, environment_info, flatten
from recforge.loggers._csv import CSVLogger

LOGGER_KINDS = ("csv", "tensorboard", "wandb", "mlflow", "none")
_ALIASES = {"tb": "tensorboard", "w&b": "wandb", "wb": "wandb", "file": "csv", "off": "none", "false": "none"}


def _canonical(kind: str) -> str:
    k = str(kind).strip().lower()
    k = _ALIASES.get(k, k)
    if k not in LOGGER_KINDS:
        raise ConfigError(f"unknown logger {kind!r}; use one of {', '.join(LOGGER_KINDS)}")
    return k


def make_logger(kind: str = "csv", root: str | Path = "runs", name: str = "run", project: str = "recforge",
                **kwargs: Any) -> ExperimentLogger | None:
    """An experiment logger of ``kind`` (``csv``, ``tensorboard``, ``wandb``, ``mlflow``; ``none``: None)."""
    k = _canonical(kind)
    if k == "none":
        return None
    if k == "csv":
        return CSVLogger(root, name, project)
    if k == "tensorboard":
        from recforge.loggers._tensorboard import TensorBoardLogger

        return TensorBoardLogger(root, name, project)
    if k == "wandb":
        from recforge.loggers._wandb import WandbLogger

        return WandbLogger(root, name, project, **kwargs)
    from recforge.loggers._mlflow import MLflowLogger

    return MLflowLogger(root, name, project, **kwargs)


def lightning_logger(logger: ExperimentLogger | str, root: str | Path = "runs", name: str = "run",
                     project: str = "recforge", prefix: str = "") -> Any:
    """The Lightning logger matching ``logger``, for ``FitOptions.logger`` of a torch model.

    Given an :class:`ExperimentLogger`, the Lightning logger writes into that same run. Given a
    kind, a standalone Lightning logger of that kind is built (W&B offline, MLflow file store).
    """
    if isinstance(logger, ExperimentLogger):
        return logger.lightning(prefix)
    k = _canonical(logger)
    if k == "none":
        return False
    from lightning.pytorch import loggers as pl

    root = Path(root)
    if k == "csv":
        return pl.CSVLogger(save_dir=str(root), name=name, prefix=prefix)
    if k == "tensorboard":
        return pl.TensorBoardLogger(save_dir=str(root), name=name, prefix=prefix, default_hp_metric=False)
    if k == "wandb":
        import os

        root.mkdir(parents=True, exist_ok=True)
        return pl.WandbLogger(name=name, project=project, save_dir=str(root), prefix=prefix,
                              offline=os.environ.get("WANDB_MODE", "offline") == "offline")
    import os

    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    return pl.MLFlowLogger(experiment_name=project, run_name=name, tracking_uri=(root.resolve() / "mlruns").as_uri(),
                           prefix=prefix)


def __getattr__(name: str) -> Any:
    lazy = {
        "TensorBoardLogger": "recforge.loggers._tensorboard",
        "WandbLogger": "recforge.loggers._wandb",
        "MLflowLogger": "recforge.loggers._mlflow",
        "read_csv_run": "recforge.loggers.readers",
        "read_tensorboard": "recforge.loggers.readers",
        "read_wandb_run": "recforge.loggers.readers",
        "read_mlflow_run": "recforge.loggers.readers",
    }
    if name in lazy:
        import importlib

        return getattr(importlib.import_module(lazy[name]), name)
    raise AttributeError(f"module 'recforge.loggers' has no attribute {name!r}")


__all__ = [
    "LOGGER_KINDS", "CSVLogger", "ExperimentLogger", "MLflowLogger", "TensorBoardLogger", "WandbLogger",
    "environment_info", "flatten", "lightning_logger", "make_logger", "read_csv_run", "read_mlflow_run",
    "read_tensorboard", "read_wandb_run",
]

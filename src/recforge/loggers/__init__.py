"""Experiment loggers: one interface for every model, four backends, and the matching Lightning loggers.

======================  ==================================================================  =========
kind                    writes                                                              needs
======================  ==================================================================  =========
``csv`` (default)       ``ROOT/<name>/version_N/{metrics.csv,config.json,...}``              nothing
``tensorboard``         ``ROOT/<name>/version_N/events.out.tfevents.*``                      tensorboard
``wandb``               ``ROOT/wandb/offline-run-*/run-*.wandb`` (offline: no account/net)  wandb
``mlflow``              ``ROOT/mlruns/<experiment>/<run>/`` (local file store)               mlflow
======================  ==================================================================  =========

:func:`make_logger` is the one factory. Non-torch models are logged by the experiment runner
through :class:`ExperimentLogger` (config, environment, per-epoch history where the model keeps
one, final metrics, timings). Torch models additionally log live, per epoch: give the
:class:`ExperimentLogger` (or its :meth:`ExperimentLogger.lightning` adapter) as
``FitOptions.logger`` and the shared Lightning loop turns it into a Lightning logger with
:func:`as_lightning`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from recforge.errors import ConfigError
from recforge.loggers._base import ExperimentLogger, environment_info, flatten
from recforge.loggers._csv import CSVLogger

LOGGER_KINDS = ("csv", "tensorboard", "wandb", "mlflow", "none")
_ALIASES = {"tb": "tensorboard", "w&b": "wandb", "wb": "wandb", "file": "csv", "off": "none", "false": "none"}


def logger_kind(kind: str) -> str:
    """The canonical logger kind of ``kind`` (``"tb"`` -> ``"tensorboard"``, ...).

    Raises:
        ConfigError: ``kind`` names no logger.
    """
    k = str(kind).strip().lower()
    k = _ALIASES.get(k, k)
    if k not in LOGGER_KINDS:
        raise ConfigError(f"unknown logger {kind!r}; use one of {', '.join(LOGGER_KINDS)}")
    return k


_canonical = logger_kind  # the old private name, still imported by experiments.spec on some branches


def make_logger(kind: str = "csv", root: str | Path = "runs", name: str = "run", project: str = "recforge",
                **kwargs: Any) -> ExperimentLogger | None:
    """An experiment logger of ``kind`` (``csv``, ``tensorboard``, ``wandb``, ``mlflow``; ``none``: None).

    Args:
        kind: The backend (aliases such as ``tb`` accepted, see :func:`logger_kind`).
        root: Folder the backend writes under.
        name: Run name.
        project: Project (W&B) or experiment (MLflow) grouping runs.
        **kwargs: Backend options (W&B and MLflow only).

    Returns:
        The logger, whose :meth:`~ExperimentLogger.lightning` adapter gives torch models the
        Lightning logger of the same run; None for ``none``.
    """
    k = logger_kind(kind)
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
    k = logger_kind(logger)
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


def as_lightning(logger: Any, name: str = "run") -> Any:
    """The Lightning logger(s) for ``FitOptions.logger``, as the shared torch loop needs them.

    None or False: no logger (False). An :class:`ExperimentLogger`: its :meth:`~ExperimentLogger.lightning`
    adapter (the metrics land in the same run). A folder (str or ``os.PathLike``): a CSV log under
    it, named ``name``. True: a CSV log under ``./recforge_logs``. Anything else (a Lightning
    logger or a list of them) is passed through unchanged.
    """
    import os

    if logger is None or logger is False:
        return False
    if isinstance(logger, ExperimentLogger):
        return logger.lightning()
    if logger is True:
        logger = "recforge_logs"
    if isinstance(logger, (str, os.PathLike)):
        return lightning_logger("csv", root=Path(logger), name=name)
    return logger


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
    "as_lightning", "environment_info", "flatten", "lightning_logger", "logger_kind", "make_logger",
    "read_csv_run", "read_mlflow_run", "read_tensorboard", "read_wandb_run",
]

"""The experiment-logger interface shared by every backend, and the run environment."""

from __future__ import annotations

import json
import math
import os
import platform
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any, Self

from recforge.io import atomic_write

#: Packages whose versions every run records (those not installed are left out).
ENV_PACKAGES = (
    "recforge", "numpy", "scipy", "pandas", "numba", "torch", "lightning", "scikit-learn", "onnx",
    "onnxruntime", "optuna", "umap-learn", "plotly", "tensorboard", "wandb", "mlflow-skinny", "mlflow",
)


def environment_info(device: str | None = None) -> dict[str, Any]:
    """Python, platform, CPU count, device and the versions of the packages that matter.

    Args:
        device: The device the run asked for (``"cpu"``, ``"cuda"``, ``"auto"``); with torch
            installed the CUDA device name is added when one is used.
    """
    versions: dict[str, str] = {}
    for pkg in ENV_PACKAGES:
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            continue
    env: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "device": device or "cpu",
        "packages": versions,
    }
    if device and device != "cpu":
        try:
            import torch

            if torch.cuda.is_available():
                env["cuda_device"] = torch.cuda.get_device_name(0)
                env["cuda_version"] = torch.version.cuda
        except ImportError:
            pass
    return env


def flatten(d: Mapping[str, Any], prefix: str = "", sep: str = ".") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (lists and tuples become JSON strings)."""
    out: dict[str, Any] = {}
    for key, val in d.items():
        name = f"{prefix}{sep}{key}" if prefix else str(key)
        if isinstance(val, Mapping):
            out.update(flatten(val, name, sep))
        elif isinstance(val, (list, tuple)):
            out[name] = json.dumps(list(val))
        else:
            out[name] = val
    return out


def finite_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """Numeric entries as floats (NaN kept, strings and None dropped)."""
    out: dict[str, float] = {}
    for key, val in metrics.items():
        if val is None or isinstance(val, (str, bytes, bool)):
            continue
        try:
            out[str(key)] = float(val)
        except (TypeError, ValueError):
            continue
    return out


def safe_name(name: str) -> str:
    """A run or folder name with only ``[A-Za-z0-9._-]``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "run"


def next_version(folder: Path) -> Path:
    """``folder/version_N`` for the smallest N not taken yet."""
    n = 0
    while (folder / f"version_{n}").exists():
        n += 1
    return folder / f"version_{n}"


def write_json(path: Path, obj: Any) -> None:
    with atomic_write(path) as fh:
        fh.write(json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def _json_default(o: Any) -> Any:
    if hasattr(o, "item"):
        return o.item()
    if isinstance(o, float) and math.isnan(o):
        return None
    return str(o)


class ExperimentLogger(ABC):
    """One run of an experiment, written by one backend.

    Every backend records the same things: the configuration (:meth:`log_config`), the
    environment (:meth:`log_environment`), per-epoch training and validation metrics
    (:meth:`log_metrics` with ``step`` = epoch), final metrics and timings (:meth:`log_summary`),
    and files (:meth:`log_artifact`). Torch models log through the Lightning logger of the same
    run (:meth:`lightning`), so their per-epoch metrics land next to everything else.

    Args:
        root: Folder the backend writes under.
        name: Run name (also the experiment's name in the run folder).
        project: Project (W&B) or experiment (MLflow) name grouping runs.
    """

    kind: str = "base"

    def __init__(self, root: str | Path = "runs", name: str = "run", project: str = "recforge") -> None:
        self.root = Path(root)
        self.name = safe_name(name)
        self.project = project
        self.closed = False
        self.started = time.time()
        self.summary: dict[str, float] = {}

    # -- the interface --------------------------------------------------------------------------
    @property
    @abstractmethod
    def run_dir(self) -> Path:
        """The folder holding this run's files."""

    @abstractmethod
    def log_config(self, config: Mapping[str, Any]) -> None:
        """Record the run's configuration (nested dicts are fine)."""

    @abstractmethod
    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Record metric values at ``step`` (an epoch for per-epoch values)."""

    def log_summary(self, metrics: Mapping[str, Any]) -> None:
        """Record final values (test metrics, timings): the run's summary."""
        vals = finite_metrics(metrics)
        self.summary.update(vals)
        self._log_summary(vals)

    @abstractmethod
    def _log_summary(self, metrics: dict[str, float]) -> None: ...

    def log_environment(self, env: Mapping[str, Any] | None = None, *, device: str | None = None) -> None:
        """Record package versions, Python, platform and device (collected when ``env`` is None)."""
        self._log_environment(dict(env) if env is not None else environment_info(device))

    @abstractmethod
    def _log_environment(self, env: dict[str, Any]) -> None: ...

    def log_artifact(self, path: str | Path) -> None:
        """Attach a file to the run (backends without artifact storage ignore this)."""

    def log_history(self, history: Mapping[str, Any], prefix: str = "") -> int:
        """Log a per-epoch history ``{"train_loss": [...], ...}`` one step per epoch; returns rows."""
        cols = {k: list(v) for k, v in history.items() if k != "epoch" and hasattr(v, "__len__")}
        n = max((len(v) for v in cols.values()), default=0)
        epochs = list(history.get("epoch", range(n)))
        for row in range(n):
            vals = {f"{prefix}{k}": v[row] for k, v in cols.items() if row < len(v)}
            self.log_metrics(vals, step=int(epochs[row]) if row < len(epochs) else row)
        return n

    @abstractmethod
    def lightning(self, prefix: str = "") -> Any:
        """The Lightning logger writing into this same run (for ``FitOptions.logger``)."""

    def close(self, status: str = "success") -> None:
        """Finish the run (idempotent)."""
        if not self.closed:
            self.closed = True
            self._close(status)

    def _close(self, status: str) -> None:
        return None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *args: object) -> None:
        self.close("failed" if exc_type else "success")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(run_dir={str(self.run_dir)!r})"

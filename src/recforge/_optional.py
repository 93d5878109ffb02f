"""Optional dependencies: one place that says which extra provides what."""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from recforge.errors import RecforgeError

_EXTRA_OF = {
    "torch": "torch",
    "lightning": "torch",
    "pyarrow": "parquet",
    "matplotlib": "viz",
    "plotly": "viz",
    "umap": "viz",
    "fastapi": "serve",
    "uvicorn": "serve",
    "sqlalchemy": "serve",
    "redis": "serve",
    "faiss": "serve",
    "onnx": "onnx",
    "onnxruntime": "onnx",
    "optuna": "tune",
    "tensorboard": "log",
    "wandb": "log",
    "mlflow": "log",
    "surprise": "bench",
    "implicit": "bench",
    "sklearn": "ensemble",
    "ray": "ray",
}


def available(module: str) -> bool:
    """True when ``module`` can be imported (without importing it)."""
    return importlib.util.find_spec(module) is not None


def require(module: str, *, purpose: str = "") -> ModuleType:
    """Import ``module`` or raise an error that names the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        extra = _EXTRA_OF.get(module.split(".")[0], "all")
        what = f" for {purpose}" if purpose else ""
        raise RecforgeError(
            f"{module} is needed{what}; install it with: pip install 'recforge[{extra}]'"
        ) from exc


def has_cuda() -> bool:
    """True when torch is installed and sees a CUDA device."""
    if not available("torch"):
        return False
    import torch

    return bool(torch.cuda.is_available())

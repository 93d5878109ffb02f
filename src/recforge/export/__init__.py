"""Export fitted models: ONNX scoring graphs for torch models, the portable npz for any model.

``npz`` is the one model file format (:meth:`recforge.models.base.Estimator.save`, readable by
``Estimator.load`` and, being an npz with a JSON header, by any npz reader) plus the embeddings of
models that have them; ``onnx`` writes scoring graphs other programs run without recforge.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from recforge.errors import ConfigError, DataError
from recforge.export.portable import export_portable, read_portable
from recforge.models.base import Recommender

FORMATS = ("auto", "onnx", "npz")


def auto_format(model: Any) -> str:
    """What ``format="auto"`` writes for ``model``: ``onnx`` for torch networks (CTR models included),
    ``npz`` for the others and for models that score a pair from the signals of its row
    (``uses_signals``: their network's input is a feature row built outside it, which a
    (user, item) graph cannot hold)."""
    if isinstance(model, Recommender) and model.uses_signals:
        return "npz"
    return "onnx" if getattr(model, "backend", "numpy") == "torch" else "npz"


def export_model(model: Any, folder: str | Path, format: str = "auto", **kwargs: Any) -> list[Path]:
    """Export ``model`` into ``folder``; ``auto`` is ONNX for torch models and npz for the others
    (and for models that score pairs from their rows' signals, ``uses_signals``)."""
    if format not in FORMATS:
        raise ConfigError(f"unknown export format {format!r}; use {', '.join(FORMATS)}")
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise DataError(f"{folder}: the export folder is a file")
    if format == "onnx" and isinstance(model, Recommender) and model.uses_signals:
        raise ConfigError(f"{model.name} scores pairs from the signals of their rows, which an ONNX (user, item) "
                          "graph cannot hold; export it as npz")
    created = not folder.exists()
    try:
        # CTR models (lr, fm, deepfm) are torch networks over feature rows: ONNX too
        if format == "onnx" or (format == "auto" and auto_format(model) == "onnx"):
            from recforge.export.onnx import export_onnx

            return export_onnx(model, folder, **kwargs)
        if kwargs.get("quantize"):
            raise ConfigError("quantize applies to the ONNX export of a CTR model (format onnx)")
        return export_portable(model, folder)
    except BaseException:
        if created:  # a failed export leaves no half-filled folder behind
            shutil.rmtree(folder, ignore_errors=True)
        raise


def __getattr__(name: str) -> Any:
    if name in ("export_onnx", "onnx_parity", "OnnxScorer", "onnx_session", "tower_functions", "export_ctr_onnx",
                "ctr_onnx_parity", "OnnxCTRScorer"):
        import importlib

        return getattr(importlib.import_module("recforge.export.onnx"), name)
    raise AttributeError(f"module 'recforge.export' has no attribute {name!r}")


__all__ = ["FORMATS", "OnnxCTRScorer", "OnnxScorer", "auto_format", "ctr_onnx_parity", "export_ctr_onnx",
           "export_model", "export_onnx", "export_portable", "onnx_parity", "read_portable"]

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

FORMATS = ("auto", "onnx", "npz")


def export_model(model: Any, folder: str | Path, format: str = "auto", **kwargs: Any) -> list[Path]:
    """Export ``model`` into ``folder``; ``auto`` is ONNX for torch models and npz for the others."""
    if format not in FORMATS:
        raise ConfigError(f"unknown export format {format!r}; use {', '.join(FORMATS)}")
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise DataError(f"{folder}: the export folder is a file")
    created = not folder.exists()
    try:
        # CTR models (lr, fm, deepfm) are torch networks over feature rows: ONNX too
        if format == "onnx" or (format == "auto" and getattr(model, "backend", "numpy") == "torch"):
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


__all__ = ["FORMATS", "OnnxCTRScorer", "OnnxScorer", "ctr_onnx_parity", "export_ctr_onnx", "export_model",
           "export_onnx", "export_portable", "onnx_parity", "read_portable"]

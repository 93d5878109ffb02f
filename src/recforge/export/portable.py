"""Portable export of any fitted model: its learned arrays in ``arrays.npz`` plus ``model.json``.

Readable from any language with an npz/npy reader, with no recforge and no pickle: dense arrays are
stored as they are; sparse matrices (similarities, the seen-items matrix) as CSR triples
``<name>.data``, ``<name>.indices``, ``<name>.indptr`` with the shape in ``model.json``;
vocabularies as their raw-id arrays (position = index). Models with embeddings also get
``user_factors`` and ``item_factors``. ``model.json`` lists every array (kind, shape, dtype) and
holds the scalar state, the model name, task and config.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from recforge.data.vocabulary import Vocabulary
from recforge.errors import DataError
from recforge.io import atomic_path, atomic_write


def _add(key: str, val: Any, arrays: dict[str, np.ndarray], meta: dict[str, Any], scalars: dict[str, Any]) -> None:
    if isinstance(val, Vocabulary):
        ids = val.ids.astype(str) if val.ids.dtype == object else val.ids
        arrays[key] = ids
        meta[key] = {"kind": "ids", "shape": list(ids.shape), "dtype": str(ids.dtype)}
    elif isinstance(val, np.ndarray):
        if val.dtype == object:
            val = val.astype(str)
        arrays[key] = val
        meta[key] = {"kind": "dense", "shape": list(val.shape), "dtype": str(val.dtype)}
    elif sp.issparse(val):
        m = sp.csr_matrix(val)
        for part in ("data", "indices", "indptr"):
            arrays[f"{key}.{part}"] = getattr(m, part)
        meta[key] = {"kind": "csr", "shape": list(m.shape), "dtype": str(m.dtype), "nnz": int(m.nnz)}
    elif isinstance(val, (np.generic,)):
        scalars[key] = val.item()
    elif val is None or isinstance(val, (bool, int, float, str, list, dict)):
        scalars[key] = val
    elif isinstance(val, tuple):
        for j, v in enumerate(val):
            _add(f"{key}.{j}", v, arrays, meta, scalars)
    else:
        raise DataError(f"cannot export attribute {key} of type {type(val).__name__}")


def export_portable(model: Any, folder: str | Path) -> list[Path]:
    """Write ``arrays.npz`` and ``model.json`` for a fitted model; returns the paths."""
    model._check_fitted()
    folder = Path(folder)
    arrays: dict[str, np.ndarray] = {}
    meta: dict[str, Any] = {}
    scalars: dict[str, Any] = {}
    for key, val in model.get_state().items():
        _add(key, val, arrays, meta, scalars)
    try:
        from recforge.viz.embeddings import model_embeddings

        uv, iv = model_embeddings(model)
        for key, val in (("user_factors", uv), ("item_factors", iv)):
            arr = np.asarray(val)
            arrays[key] = arr
            meta[key] = {"kind": "dense", "shape": list(arr.shape), "dtype": str(arr.dtype)}
    except (NotImplementedError, AttributeError):
        pass
    with atomic_path(folder / "arrays.npz") as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
    manifest = {
        "format": "recforge-portable", "version": 1, "model": model.name, "task": model.task,
        "class": f"{type(model).__module__}.{type(model).__qualname__}", "config": model.config.to_dict(),
        "arrays": meta, "scalars": scalars,
    }
    if hasattr(model, "users_"):
        manifest.update(n_users=len(model.users_), n_items=len(model.items_), ids={"users": "users_", "items": "items_"})
    else:  # CTR models score feature rows: their network arrays are "torch_state.*", the encoder a scalar
        manifest.update(n_features=int(getattr(model, "n_features_", 0)), ids=None)
    with atomic_write(folder / "model.json") as fh:
        fh.write(json.dumps(manifest, indent=2, default=_default) + "\n")
    return [folder / "arrays.npz", folder / "model.json"]


def _default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    return str(o)


def read_portable(folder: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(manifest, arrays)`` with CSR entries rebuilt as scipy matrices (no recforge model needed)."""
    folder = Path(folder)
    manifest = json.loads((folder / "model.json").read_text())
    npz = np.load(folder / "arrays.npz", allow_pickle=False)
    arrays: dict[str, Any] = {}
    for key, spec in manifest["arrays"].items():
        if spec["kind"] == "csr":
            arrays[key] = sp.csr_matrix((npz[f"{key}.data"], npz[f"{key}.indices"], npz[f"{key}.indptr"]),
                                        shape=tuple(spec["shape"]))
        else:
            arrays[key] = npz[key]
    return manifest, arrays

"""The one model file format: an ``.npz`` archive of arrays plus a JSON header, written atomically, without pickle.

:func:`write_model` and :func:`read_model` are used by :meth:`Estimator.save`/:meth:`Estimator.load`
and by ``recforge export --format npz``; nothing else writes model files.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from recforge.data.vocabulary import Vocabulary
from recforge.errors import DataError
from recforge.io import atomic_path

FORMAT_VERSION = 1


def write_model(path: str | Path, header: dict[str, Any], state: dict[str, Any]) -> Path:
    """Write ``state`` (arrays, sparse matrices, vocabularies, JSON values, tuples of these) and
    ``header`` (JSON) to one ``.npz`` file, atomically."""
    path = Path(path)
    arrays: dict[str, np.ndarray] = {}
    meta: dict[str, Any] = {}
    for key, val in state.items():
        _pack(key, val, arrays, meta)
    full = {"format": FORMAT_VERSION, **header, "meta": meta}
    arrays["__header__"] = np.frombuffer(json.dumps(full).encode(), dtype=np.uint8)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
    return path


def read_header(path: str | Path) -> tuple[dict[str, Any], Any]:
    """The JSON header of a model file and the open archive; a clear :class:`DataError` otherwise."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such model file")
    try:
        npz = np.load(path, allow_pickle=False)
        header = json.loads(bytes(npz["__header__"]).decode())
    except Exception as exc:
        raise DataError(f"{path}: not a recforge model file ({exc})") from exc
    if header.get("format") != FORMAT_VERSION:
        raise DataError(f"{path}: unsupported model format {header.get('format')}")
    return header, npz


def read_state(header: dict[str, Any], npz: Any) -> dict[str, Any]:
    """The state written by :func:`write_model`."""
    return {key: _unpack(key, spec, npz) for key, spec in header["meta"].items()}


def _pack(key: str, val: Any, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
    if isinstance(val, Vocabulary):
        arrays[key] = val.ids
        meta[key] = {"kind": "vocab", "name": val.name}
    elif isinstance(val, np.ndarray):
        if val.dtype == object:
            raise DataError(f"cannot save object array {key}")
        arrays[key] = val
        meta[key] = {"kind": "array"}
    elif sp.issparse(val):
        m = sp.csr_matrix(val)
        arrays[f"{key}.data"] = m.data
        arrays[f"{key}.indices"] = m.indices
        arrays[f"{key}.indptr"] = m.indptr
        meta[key] = {"kind": "csr", "shape": list(m.shape)}
    elif isinstance(val, (np.integer, np.floating, np.bool_)):
        meta[key] = {"kind": "json", "value": val.item()}
    elif val is None or isinstance(val, (bool, int, float, str, list, dict)):
        meta[key] = {"kind": "json", "value": val}
    elif isinstance(val, tuple):
        meta[key] = {"kind": "tuple", "n": len(val)}
        for j, v in enumerate(val):
            _pack(f"{key}.{j}", v, arrays, meta[key].setdefault("items", {}))
    else:
        raise DataError(f"cannot save attribute {key} of type {type(val).__name__}")


def _unpack(key: str, spec: dict[str, Any], npz: Any) -> Any:
    kind = spec["kind"]
    if kind == "vocab":
        return Vocabulary._from_sorted(npz[key], spec["name"])
    if kind == "array":
        return npz[key]
    if kind == "csr":
        return sp.csr_matrix(
            (npz[f"{key}.data"], npz[f"{key}.indices"], npz[f"{key}.indptr"]), shape=tuple(spec["shape"])
        )
    if kind == "tuple":
        return tuple(_unpack(k, s, npz) for k, s in spec["items"].items())
    return spec["value"]

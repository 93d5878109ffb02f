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
    if path.is_dir():
        raise DataError(f"{path}: is a directory, not a model file")
    try:
        npz = np.load(path, allow_pickle=False)
        header = json.loads(bytes(npz["__header__"]).decode())
    except Exception as exc:
        raise DataError(f"{path}: not a recforge model file ({_short(exc)})") from None
    if not isinstance(header, dict):
        raise DataError(f"{path}: not a recforge model file (the header is not a JSON object)")
    if header.get("format") != FORMAT_VERSION:
        raise DataError(f"{path}: unsupported model format {_short(header.get('format'))}")
    for key, kind in (("model", str), ("config", dict), ("meta", dict)):
        if not isinstance(header.get(key), kind):
            raise DataError(f"{path}: corrupt model file: header field {key!r} is missing or not a {kind.__name__}")
    return header, npz


def read_state(header: dict[str, Any], npz: Any, path: str | Path = "model file") -> dict[str, Any]:
    """The state written by :func:`write_model`, every entry checked: arrays present, plain
    (no Python objects), learned parameters (factors, biases, embeddings, weights, torch
    tensors) finite, sparse matrices consistent.

    Raises:
        DataError: One line naming the file and the bad entry.
    """
    state = {}
    for key, spec in header["meta"].items():
        state[key] = _unpack_checked(key, spec, npz, path)
    return state


def restore(model: Any, state: dict[str, Any], path: str | Path) -> Any:
    """``model.set_state(state)``, then the model's own consistency check (``check_state``);
    anything that does not fit together becomes one :class:`DataError` naming the file."""
    try:
        model.set_state(state)
        check = getattr(model, "check_state", None)
        if check is not None:
            check()
    except DataError as exc:
        raise DataError(f"{path}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - a crafted or damaged file: never a traceback
        raise DataError(f"{path}: corrupt model state ({type(exc).__name__}: {_short(exc)})") from None
    return model


def _short(obj: Any, limit: int = 200) -> str:
    """One line of at most ``limit`` characters (messages never echo a whole file)."""
    text = " ".join(str(obj).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _unpack_checked(key: str, spec: Any, npz: Any, path: str | Path) -> Any:
    if not isinstance(spec, dict) or spec.get("kind") not in _KINDS:
        raise DataError(f"{path}: corrupt model file: entry {_short(key, 80)!r} has no valid kind")
    try:
        val = _unpack(key, spec, npz)
    except KeyError:
        raise DataError(f"{path}: corrupt model file: array {_short(key, 80)!r} is missing") from None
    except DataError as exc:
        raise DataError(f"{path}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - object arrays, bad CSR parts, bad tuple specs
        raise DataError(f"{path}: corrupt model file: entry {_short(key, 80)!r}: {_short(exc)}") from None
    return val


_KINDS = ("vocab", "array", "csr", "json", "tuple")


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


# learned parameters that are finite in every fitted model (a model may keep NaN elsewhere on
# purpose, e.g. "no value" in a demographic group table): a file with NaN or infinity here is corrupt
_FINITE_SUFFIXES = ("factors_", "bias_", "biases_", "embeddings_", "vectors_", "weights_", "global_mean_",
                    "intercept_")


def _array(npz: Any, key: str) -> np.ndarray:
    arr = npz[key]
    if arr.dtype.kind not in "biufcUS":
        raise DataError(f"array {key!r} has unsupported dtype {arr.dtype}")
    finite = key.startswith("torch_state.") or key.split(".")[-1].endswith(_FINITE_SUFFIXES) or (
        key.startswith("part") and key.endswith(_FINITE_SUFFIXES))
    if finite and arr.dtype.kind in "fc" and not np.isfinite(arr).all():
        raise DataError(f"array {key!r} holds NaN or infinite values")
    return arr


def _unpack(key: str, spec: dict[str, Any], npz: Any) -> Any:
    kind = spec["kind"]
    if kind == "vocab":
        ids = _array(npz, key)
        if ids.ndim != 1:
            raise DataError(f"vocabulary {key!r} is not 1-D")
        if len(ids) > 1 and not bool(np.all(ids[1:] > ids[:-1])):
            raise DataError(f"vocabulary {key!r} is not sorted and unique")
        return Vocabulary._from_sorted(ids, str(spec.get("name", key)))
    if kind == "array":
        return _array(npz, key)
    if kind == "csr":
        shape = spec.get("shape")
        if not (isinstance(shape, list) and len(shape) == 2 and all(isinstance(x, int) and x >= 0 for x in shape)):
            raise DataError(f"sparse matrix {key!r} has no valid shape")
        data, indices, indptr = _array(npz, f"{key}.data"), _array(npz, f"{key}.indices"), _array(npz, f"{key}.indptr")
        if indptr.ndim != 1 or len(indptr) != shape[0] + 1:
            raise DataError(f"sparse matrix {key!r}: {len(indptr)} row pointers for {shape[0]} rows")
        m = sp.csr_matrix((data, indices, indptr), shape=tuple(shape))
        m.check_format(full_check=True)
        return m
    if kind == "tuple":
        items = spec.get("items")
        if not isinstance(items, dict):
            raise DataError(f"tuple {key!r} has no items")
        return tuple(_unpack(k, s, npz) for k, s in items.items())
    return spec.get("value")

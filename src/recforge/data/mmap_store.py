"""An :class:`~recforge.data.interactions.Interactions` as a folder of memory-mappable arrays.

Layout (``FORMAT`` version 1)::

    manifest.json          format, version, name, explicit, counts, which files exist
    user_idx.npy item_idx.npy values.npy [timestamps.npy]      one entry per row
    [signal_0.npy signal_1.npy ...]                             named signals, in the manifest's order
    users.npy items.npy                                         the vocabularies' sorted raw ids
    [csr_indptr.npy csr_indices.npy csr_data.npy]               the users x items CSR matrix
    [user_features.parquet item_features.parquet]

Opening maps the row and CSR arrays read-only (``np.load(mmap_mode="r")``): nothing is read until a
page is touched, so a 100M-row log opens in the time it takes to read its vocabularies and the page
cache serves the second run. Writing is atomic (a temporary folder renamed into place).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from recforge.data.vocabulary import Vocabulary
from recforge.errors import DataError

FORMAT = "recforge-interactions"
VERSION = 1
MANIFEST = "manifest.json"


def is_store(path: str | Path) -> bool:
    """True when ``path`` is a folder written by :func:`save_interactions`."""
    return (Path(path) / MANIFEST).is_file()


def save_interactions(data: Any, directory: str | Path, *, csr: bool = True) -> Path:
    """Write ``data`` to ``directory`` (see the module docstring); returns the folder."""
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", suffix=".tmp", dir=directory.parent))
    try:
        files = {"user_idx": data.user_idx, "item_idx": data.item_idx, "values": data.values,
                 "users": data.users.ids, "items": data.items.ids}
        if data.timestamps is not None:
            files["timestamps"] = data.timestamps
        signals = getattr(data, "signals", {}) or {}
        for i, arr in enumerate(signals.values()):
            files[f"signal_{i}"] = arr
        for key, arr in files.items():
            np.save(tmp / f"{key}.npy", np.asarray(arr), allow_pickle=False)
        if csr:
            m = data.csr()
            for key, arr in (("csr_indptr", m.indptr), ("csr_indices", m.indices), ("csr_data", m.data)):
                np.save(tmp / f"{key}.npy", arr, allow_pickle=False)
        feats = []
        for side in ("user", "item"):
            df = getattr(data, f"{side}_features")
            if df is not None:
                df.to_parquet(tmp / f"{side}_features.parquet")
                feats.append(side)
        manifest = {
            "format": FORMAT, "version": VERSION, "name": data.name, "explicit": bool(data.explicit),
            "n_rows": len(data), "n_users": data.n_users, "n_items": data.n_items,
            "timestamps": data.timestamps is not None, "csr": bool(csr), "features": feats,
            "signals": [[k, data.signal_kinds.get(k, "count")] for k in signals],
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1))
        for f in tmp.iterdir():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        os.chmod(tmp, 0o755)
        _swap_in(tmp, directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return directory


def _swap_in(tmp: Path, directory: Path) -> None:
    """Rename ``tmp`` to ``directory``, replacing an earlier store there (never another kind of folder)."""
    if directory.exists():
        if not is_store(directory):
            raise DataError(f"{directory}: exists and is not an interactions folder; not overwriting it")
        old = directory.with_name(f".{directory.name}.old-{os.getpid()}")
        os.replace(directory, old)
        try:
            os.replace(tmp, directory)
        except BaseException:
            os.replace(old, directory)
            raise
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, directory)


def read_store(directory: str | Path) -> tuple[dict[str, Any], sp.csr_matrix | None]:
    """The constructor arguments of the ``Interactions`` saved in ``directory`` (its arrays
    memory-mapped read-only) and its CSR matrix (None when not saved)."""
    directory = Path(directory)
    try:
        manifest = json.loads((directory / MANIFEST).read_text())
    except FileNotFoundError:
        raise DataError(f"{directory}: no {MANIFEST} (not a folder written by Interactions.save)") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{directory / MANIFEST}: not valid JSON ({exc})") from None
    if manifest.get("format") != FORMAT:
        raise DataError(f"{directory / MANIFEST}: not a recforge interactions manifest")
    if manifest.get("version") != VERSION:
        raise DataError(f"{directory}: interactions format version {manifest.get('version')!r}; "
                        f"this recforge reads version {VERSION}")
    n = int(manifest["n_rows"])

    def load(key: str, mmap: bool = True, length: int | None = None) -> np.ndarray:
        path = directory / f"{key}.npy"
        try:
            arr = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
        except FileNotFoundError:
            raise DataError(f"{path}: missing (the folder is incomplete)") from None
        except ValueError as exc:
            raise DataError(f"{path}: not a readable array ({exc})") from None
        if length is not None and len(arr) != length:
            raise DataError(f"{path}: {len(arr)} entries, the manifest says {length}")
        return arr

    users = Vocabulary._from_sorted(np.asarray(load("users", mmap=False, length=manifest["n_users"])), "user")
    items = Vocabulary._from_sorted(np.asarray(load("items", mmap=False, length=manifest["n_items"])), "item")
    ts = load("timestamps", length=n) if manifest.get("timestamps") else None
    feats: dict[str, Any] = {}
    for side in manifest.get("features", []):
        import pandas as pd

        feats[f"{side}_features"] = pd.read_parquet(directory / f"{side}_features.parquet")
    named = manifest.get("signals", [])
    signals = {str(k): load(f"signal_{i}", length=n) for i, (k, _) in enumerate(named)}
    fields = {"user_idx": load("user_idx", length=n), "item_idx": load("item_idx", length=n),
              "values": load("values", length=n), "users": users, "items": items, "timestamps": ts,
              "explicit": bool(manifest["explicit"]), "name": str(manifest["name"]), **feats,
              "signals": signals, "signal_kinds": {str(k): str(v) for k, v in named}}
    m = None
    if manifest.get("csr"):
        indptr = load("csr_indptr", length=len(users) + 1)
        m = sp.csr_matrix((load("csr_data"), load("csr_indices"), indptr), shape=(len(users), len(items)),
                          copy=False)
        with contextlib.suppress(AttributeError):  # saved canonical: sorted, no duplicates
            m.has_sorted_indices = True
            m.has_canonical_format = True
    return fields, m

"""Portable export of any fitted model: the one model file (``model.npz``) plus its embeddings.

``model.npz`` is exactly what :meth:`~recforge.models.base.Estimator.save` writes
(:mod:`recforge.models.persist`): every learned array under its attribute name, sparse matrices
as CSR triples ``<name>.data``, ``<name>.indices``, ``<name>.indptr``, vocabularies as their
raw-id arrays (position = index), and a JSON header in the ``__header__`` entry (uint8 bytes) that
holds the model name, class and config and describes every entry (kind, shape) and the scalar
state. Any npz reader can use it without recforge and without pickle; ``Estimator.load`` reads it
back. Models with embeddings (``has_embeddings``) also get ``embeddings.npz`` with
``user_factors`` and ``item_factors`` (rows in index order).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from recforge.data.vocabulary import Vocabulary
from recforge.io import atomic_path
from recforge.models.persist import read_header, read_state
from recforge.models.base import check_is_fitted

__all__ = ["export_portable", "read_portable"]

MODEL_FILE = "model.npz"
EMBEDDINGS_FILE = "embeddings.npz"


def export_portable(model: Any, folder: str | Path) -> list[Path]:
    """Write ``model.npz`` (the one model format) and, for models with embeddings, ``embeddings.npz``.

    Args:
        model: A fitted model.
        folder: Output folder (created).

    Returns:
        The written paths.

    Raises:
        NotFittedError: The model is not fitted.
    """
    check_is_fitted(model)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [model.save(folder / MODEL_FILE)]
    if getattr(model, "has_embeddings", False):
        uv, iv = model.embeddings()
        with atomic_path(folder / EMBEDDINGS_FILE) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, user_factors=np.asarray(uv), item_factors=np.asarray(iv))
        paths.append(folder / EMBEDDINGS_FILE)
    return paths


def read_portable(folder: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(header, arrays)`` of an export: the JSON header and every entry as a plain value.

    Vocabularies come back as their raw-id arrays, CSR entries as scipy matrices, scalar state as
    JSON values; ``user_factors``/``item_factors`` are added when the export has embeddings. No
    recforge model class is needed (use :meth:`Estimator.load` for a working model).
    """
    folder = Path(folder)
    header, npz = read_header(folder / MODEL_FILE)
    with npz:
        arrays = {k: v.ids if isinstance(v, Vocabulary) else v for k, v in read_state(header, npz).items()}
    if (folder / EMBEDDINGS_FILE).exists():
        with np.load(folder / EMBEDDINGS_FILE, allow_pickle=False) as emb:
            arrays.update({k: emb[k] for k in emb.files})
    return header, arrays

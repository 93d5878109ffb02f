"""Top-k selection over score rows, shared by ``recommend`` and full-ranking evaluation."""

from __future__ import annotations

import numpy as np


def topk_rows(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and values of the ``k`` largest entries of each row, best first.

    ``-inf`` entries (excluded items) sort last; ties break towards the lower column index so the
    result is deterministic. Returns arrays of shape ``(n_rows, min(k, n_cols))``.
    """
    n_rows, n_cols = scores.shape
    k = min(k, n_cols)
    if k <= 0 or n_rows == 0:
        return np.empty((n_rows, 0), np.int64), np.empty((n_rows, 0), scores.dtype)
    if k < n_cols:
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    else:
        part = np.broadcast_to(np.arange(n_cols), (n_rows, n_cols)).copy()
    vals = np.take_along_axis(scores, part, axis=1)
    # lexsort: primary key -score, secondary key column index (stable tie-break)
    order = np.lexsort((part, -vals), axis=1)
    idx = np.take_along_axis(part, order, axis=1)
    return idx.astype(np.int64), np.take_along_axis(vals, order, axis=1)

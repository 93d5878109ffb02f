"""Top-k selection over score rows, shared by ``recommend`` and full-ranking evaluation."""

from __future__ import annotations

import numpy as np
from numba import njit, prange


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


def topk_excluding(
    scores: np.ndarray, excl_indptr: np.ndarray, excl_indices: np.ndarray, banned: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per-row top-``k`` that skips excluded cells, in one compiled pass (no masked copy).

    Args:
        scores: ``(n_rows, n_items)`` float32 or float64 scores.
        excl_indptr, excl_indices: CSR structure (sorted indices) of the cells to skip per row.
        banned: ``(n_items,)`` bool, items skipped for every row.
        k: List length.

    Returns:
        ``(idx, vals)`` of shape ``(n_rows, k)``; slots past the available items hold ``-1`` and
        NaN. NaN and ``-inf`` scores are never selected. Ties go to the lower item index.
    """
    n_rows = scores.shape[0]
    idx = np.full((n_rows, k), -1, dtype=np.int64)
    vals = np.full((n_rows, k), np.nan, dtype=np.float64)
    if n_rows and k:
        _topk_kernel(scores, excl_indptr.astype(np.int64), excl_indices.astype(np.int64), banned, k, idx, vals)
    return idx, vals


@njit(cache=True, inline="always")
def _worse(va: float, ia: int, vb: float, ib: int) -> bool:
    return va < vb or (va == vb and ia > ib)


@njit(cache=True)
def _sift_down(hv: np.ndarray, hi: np.ndarray, size: int, pos: int) -> None:
    while True:
        left = 2 * pos + 1
        if left >= size:
            return
        child = left
        right = left + 1
        if right < size and _worse(hv[right], hi[right], hv[left], hi[left]):
            child = right
        if _worse(hv[child], hi[child], hv[pos], hi[pos]):
            hv[pos], hv[child] = hv[child], hv[pos]
            hi[pos], hi[child] = hi[child], hi[pos]
            pos = child
        else:
            return


@njit(cache=True, parallel=True)
def _topk_kernel(scores, indptr, indices, banned, k, out_idx, out_val):  # pragma: no cover - compiled
    n_rows, n_items = scores.shape
    for r in prange(n_rows):
        hv = np.empty(k, dtype=np.float64)
        hi = np.empty(k, dtype=np.int64)
        size = 0
        p = indptr[r]
        end = indptr[r + 1]
        for j in range(n_items):
            while p < end and indices[p] < j:
                p += 1
            if p < end and indices[p] == j:
                continue
            if banned[j]:
                continue
            v = scores[r, j]
            if not (v > -np.inf):  # NaN or -inf
                continue
            if size < k:
                # sift up: the root holds the worst kept entry
                pos = size
                hv[pos] = v
                hi[pos] = j
                size += 1
                while pos > 0:
                    parent = (pos - 1) // 2
                    if _worse(hv[pos], hi[pos], hv[parent], hi[parent]):
                        hv[pos], hv[parent] = hv[parent], hv[pos]
                        hi[pos], hi[parent] = hi[parent], hi[pos]
                        pos = parent
                    else:
                        break
            elif _worse(hv[0], hi[0], v, j):
                hv[0] = v
                hi[0] = j
                _sift_down(hv, hi, size, 0)
        # pop the worst repeatedly, filling from the back: best ends first
        n = size
        while n > 0:
            out_val[r, n - 1] = hv[0]
            out_idx[r, n - 1] = hi[0]
            n -= 1
            hv[0] = hv[n]
            hi[0] = hi[n]
            _sift_down(hv, hi, n, 0)

"""Top-k selection over score rows, shared by ``recommend`` and full-ranking evaluation."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numba import njit, prange

if TYPE_CHECKING:
    import scipy.sparse as sp


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


@njit(cache=True, inline="always")
def _heap_offer(hv: np.ndarray, hi: np.ndarray, size: int, k: int, v: float, j: int) -> int:
    """Offer ``(v, j)`` to a min-heap of at most ``k`` entries (the root is the worst kept); new size."""
    if size < k:
        pos = size
        hv[pos] = v
        hi[pos] = j
        size += 1
        while pos > 0:  # sift up
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
    return size


@njit(cache=True, inline="always")
def _heap_drain(hv: np.ndarray, hi: np.ndarray, size: int, out_idx: np.ndarray, out_val: np.ndarray) -> None:
    """Pop the worst repeatedly, filling from the back, so the best ends first."""
    n = size
    while n > 0:
        out_val[n - 1] = hv[0]
        out_idx[n - 1] = hi[0]
        n -= 1
        hv[0] = hv[n]
        hi[0] = hi[n]
        _sift_down(hv, hi, n, 0)


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
            size = _heap_offer(hv, hi, size, k, v, j)
        _heap_drain(hv, hi, size, out_idx[r], out_val[r])


def topk_sparse_product(
    a: sp.csr_matrix, rows: np.ndarray, m: sp.csr_matrix, excl_indptr: np.ndarray, excl_indices: np.ndarray,
    banned: np.ndarray, k: int,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`topk_excluding` of the scores ``a[rows] @ m`` without forming them densely.

    For sparse, non-negative ``a`` and ``m`` (a user's history times an item-item neighbour
    matrix, or user-user similarities times histories) only the items a row touches can score
    above zero; the rest score exactly 0. Each row accumulates its touched items in a scratch
    vector, keeps the best positive ones in a heap and, when fewer than ``k`` are positive, fills
    the list with the lowest-index allowed items at score 0, exactly as the dense path ranks them
    (same sums in the same order, ties to the lower index). About ``n_items / touched`` times less
    work than scoring every item, which matters on large catalogues (Gowalla: 41k items).
    """
    n_rows = len(rows)
    n_items = m.shape[1]
    idx = np.full((n_rows, k), -1, dtype=np.int64)
    vals = np.full((n_rows, k), np.nan, dtype=np.float64)
    if n_rows and k:
        n_chunks = max(1, min(n_rows, 64))
        _sparse_topk_kernel(np.ascontiguousarray(rows, np.int64), a.indptr, a.indices, a.data, m.indptr, m.indices,
                            m.data, excl_indptr.astype(np.int64), excl_indices.astype(np.int64), banned, k, n_items,
                            n_chunks, idx, vals)
    return idx, vals


@njit(cache=True, parallel=True)
def _sparse_topk_kernel(rows, a_indptr, a_indices, a_data, m_indptr, m_indices, m_data, excl_indptr, excl_indices,
                        banned, k, n_items, n_chunks, out_idx, out_val):  # pragma: no cover - compiled
    n_rows = len(rows)
    step = (n_rows + n_chunks - 1) // n_chunks
    for c in prange(n_chunks):
        lo = c * step
        hi_row = min(n_rows, lo + step)
        if lo >= hi_row:
            continue
        acc = np.zeros(n_items, dtype=np.float64)
        seen_tag = np.zeros(n_items, dtype=np.int64)  # row tag: touched in this row
        skip_tag = np.zeros(n_items, dtype=np.int64)  # row tag: excluded or already listed
        touched = np.empty(n_items, dtype=np.int64)
        hv = np.empty(k, dtype=np.float64)
        hi = np.empty(k, dtype=np.int64)
        for r in range(lo, hi_row):
            tag = r + 1
            for p in range(excl_indptr[r], excl_indptr[r + 1]):
                skip_tag[excl_indices[p]] = tag
            row = rows[r]
            nt = 0
            for p in range(a_indptr[row], a_indptr[row + 1]):
                j = a_indices[p]
                w = a_data[p]
                for q in range(m_indptr[j], m_indptr[j + 1]):
                    i = m_indices[q]
                    if seen_tag[i] != tag:
                        seen_tag[i] = tag
                        touched[nt] = i
                        nt += 1
                    acc[i] += w * m_data[q]
            size = 0
            for t in range(nt):
                j = touched[t]
                v = acc[j]
                acc[j] = 0.0
                if not (v > 0.0) or banned[j] or skip_tag[j] == tag:
                    continue
                size = _heap_offer(hv, hi, size, k, v, j)
            _heap_drain(hv, hi, size, out_idx[r], out_val[r])
            for t in range(size):
                skip_tag[out_idx[r, t]] = tag
            filled = size
            j = 0
            while filled < k and j < n_items:
                if not banned[j] and skip_tag[j] != tag:
                    out_idx[r, filled] = j
                    out_val[r, filled] = 0.0
                    filled += 1
                j += 1

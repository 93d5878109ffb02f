"""Top-k selection: the one implementation behind ``recommend``, evaluation, similar items and serving.

One contract for every variant: per row, the ``k`` best candidates, best first; ties go to the lower
column index; NaN and ``-inf`` scores are never selected; slots past the available candidates hold
the index ``-1`` and a NaN score. A ``k`` beyond the number of items is clamped to it: the result
has ``min(k, n_items)`` columns, so its memory is bounded by rows x items, never by ``k`` alone
(``k = 10**9`` on a 4-item catalogue allocates 4 columns). :func:`topk_rows` is the entry point. It takes

- a dense score matrix (every column a candidate),
- a sparse one (only the stored entries are candidates: a neighbour list lists only neighbours),
- ``exclude``, a CSR matrix of cells to skip per row (seen items), and ``allowed``, an item mask
  (candidate sets, known items).

The compiled variants below it are part of the same API for callers that already hold CSR arrays
or a factored score matrix:

- :func:`topk_excluding`: dense scores, exclusions as CSR arrays and a ``banned`` item mask;
- :func:`topk_sparse_product`: the scores ``a[rows] @ m`` of two sparse non-negative matrices,
  without forming them densely;
- :func:`topk_sparse_rows`: the stored entries of chosen CSR rows.

:func:`select_top` and :func:`accumulate_row_product` are the ``@njit`` building blocks that other
compiled kernels (the neighbourhood similarity and SLIM kernels) call inside their loops, so that
top-k selection and sparse row products exist once. Numba's on-disk cache does not notice edits to
a function in another file: after editing one of them, clear the callers' ``__pycache__``.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from numba import njit, prange

from recforge.errors import ConfigError

__all__ = [
    "accumulate_row_product",
    "clamp_k",
    "order_by_score",
    "select_top",
    "topk_excluding",
    "topk_rows",
    "topk_sparse_product",
    "topk_sparse_rows",
]


def topk_rows(
    scores: np.ndarray | sp.spmatrix,
    k: int,
    *,
    exclude: sp.spmatrix | None = None,
    allowed: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Indices and scores of the ``k`` best candidates of each row, best first.

    Args:
        scores: ``(n_rows, n_items)`` scores: a dense array (every item a candidate) or a scipy
            sparse matrix (only stored entries are candidates, whatever their value; entries must
            not repeat within a row).
        k: List length (>= 0); one beyond the number of items is clamped to it.
        exclude: Optional ``(n_rows, n_items)`` sparse matrix; its stored cells are skipped
            (the value does not matter).
        allowed: Optional ``(n_items,)`` bool mask of the items that may be listed.

    Returns:
        ``(idx, vals)`` of shape ``(n_rows, min(k, n_items))``: int64 item indices and float64
        scores. Ties go to the lower index, NaN and ``-inf`` are never selected, and short rows are
        padded with ``-1`` and NaN.

    Raises:
        ConfigError: ``k`` is negative or not an integer, or a mask or exclusion has the wrong shape.
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
        raise ConfigError(f"k must be a non-negative integer, got {k!r}")
    k = int(k)
    n_rows, n_items = scores.shape
    banned = _banned(allowed, n_items)
    excl_indptr, excl_indices = _exclusions(exclude, n_rows, n_items)
    if sp.issparse(scores):
        mat = sp.csr_matrix(scores)
        return topk_sparse_rows(mat, np.arange(n_rows), k, excl_indptr, excl_indices, banned)
    dense = np.asarray(scores)
    if dense.dtype not in (np.float32, np.float64):
        dense = dense.astype(np.float64)
    return topk_excluding(np.ascontiguousarray(dense), excl_indptr, excl_indices, banned, k)


def clamp_k(k: int, n_items: int) -> int:
    """The list length actually allocated for ``k`` over ``n_items`` candidates: ``min(k, n_items)``.

    Every top-k buffer is sized by this, so a huge ``k`` costs no more than the whole catalogue.
    """
    return int(min(int(k), max(int(n_items), 0)))


def order_by_score(
    scores: np.ndarray, ids: np.ndarray | None = None, k: int | None = None, *, keep_missing: bool = False
) -> np.ndarray:
    """Positions of a short candidate list in the order of :func:`topk_rows`: best score first,
    ties to the lower id (``ids``, or the position when ``ids`` is None).

    For lists that are already gathered (a request's candidates, a catalogue's popularity): NaN
    scores are dropped, or with ``keep_missing`` placed last (a re-ranker with no opinion on an
    item keeps it after the scored ones). ``k`` cuts the order (None: all).
    """
    scores = np.asarray(scores, dtype=np.float64)
    ids = np.arange(len(scores)) if ids is None else np.asarray(ids)
    key = np.where(np.isnan(scores), -np.inf, scores)
    order = np.lexsort((ids, -key))
    if not keep_missing:
        order = order[~np.isnan(scores[order])]
    return order if k is None else order[:k]


def _banned(allowed: np.ndarray | None, n_items: int) -> np.ndarray:
    if allowed is None:
        return np.zeros(n_items, np.bool_)
    allowed = np.asarray(allowed, dtype=np.bool_)
    if allowed.shape != (n_items,):
        raise ConfigError(f"allowed must be a bool mask of {n_items} items, got shape {allowed.shape}")
    return ~allowed


def _exclusions(exclude: sp.spmatrix | None, n_rows: int, n_items: int) -> tuple[np.ndarray, np.ndarray]:
    if exclude is None:
        return np.zeros(n_rows + 1, np.int64), np.empty(0, np.int64)
    if exclude.shape != (n_rows, n_items):
        raise ConfigError(f"exclude has shape {exclude.shape}, the scores {(n_rows, n_items)}")
    excl = sp.csr_matrix(exclude)
    if not excl.has_sorted_indices:
        excl = excl.copy()
        excl.sort_indices()
    return excl.indptr.astype(np.int64), excl.indices.astype(np.int64)


def topk_excluding(
    scores: np.ndarray, excl_indptr: np.ndarray, excl_indices: np.ndarray, banned: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per-row top-``k`` of dense scores that skips excluded cells, in one compiled pass (no masked copy).

    Args:
        scores: ``(n_rows, n_items)`` float32 or float64 scores, C-contiguous.
        excl_indptr, excl_indices: CSR structure (sorted indices) of the cells to skip per row.
        banned: ``(n_items,)`` bool, items skipped for every row.
        k: List length.

    Returns:
        ``(idx, vals)`` of shape ``(n_rows, min(k, n_items))``, as :func:`topk_rows`.
    """
    n_rows = scores.shape[0]
    k = clamp_k(k, scores.shape[1])
    idx = np.full((n_rows, k), -1, dtype=np.int64)
    vals = np.full((n_rows, k), np.nan, dtype=np.float64)
    if n_rows and k:
        kernel = _topk_kernel_serial if n_rows == 1 else _topk_kernel
        kernel(scores, excl_indptr.astype(np.int64), excl_indices.astype(np.int64), banned, k, idx, vals)
    return idx, vals


def topk_sparse_rows(
    mat: sp.csr_matrix, rows: np.ndarray, k: int, excl_indptr: np.ndarray, excl_indices: np.ndarray,
    banned: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` among the stored entries of ``mat[rows]`` (neighbour lists), without slicing ``mat``.

    Args:
        mat: CSR matrix; the entries of a row need not be sorted by column (the neighbourhood
            matrices keep them by decreasing value) but must not repeat.
        rows: Row indices of ``mat`` to rank; output row ``r`` is ``mat[rows[r]]``.
        k: List length.
        excl_indptr, excl_indices: CSR structure, one row per entry of ``rows``, of cells to skip.
        banned: ``(n_items,)`` bool, items skipped for every row.

    Returns:
        ``(idx, vals)`` of shape ``(len(rows), min(k, n_items))``, as :func:`topk_rows`.
    """
    n_rows = len(rows)
    k = clamp_k(k, mat.shape[1])
    idx = np.full((n_rows, k), -1, dtype=np.int64)
    vals = np.full((n_rows, k), np.nan, dtype=np.float64)
    if n_rows and k:
        n_chunks = max(1, min(n_rows, 64))
        _sparse_rows_topk_kernel(np.ascontiguousarray(rows, np.int64), mat.indptr, mat.indices, mat.data,
                                 excl_indptr.astype(np.int64), excl_indices.astype(np.int64), banned, k,
                                 mat.shape[1], n_chunks, idx, vals)
    return idx, vals


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
    k = clamp_k(k, n_items)
    idx = np.full((n_rows, k), -1, dtype=np.int64)
    vals = np.full((n_rows, k), np.nan, dtype=np.float64)
    if n_rows and k:
        n_chunks = max(1, min(n_rows, 64))
        _sparse_topk_kernel(np.ascontiguousarray(rows, np.int64), a.indptr, a.indices, a.data, m.indptr, m.indices,
                            m.data, excl_indptr.astype(np.int64), excl_indices.astype(np.int64), banned, k, n_items,
                            n_chunks, idx, vals)
    return idx, vals


# ------------------------------------------------------------------------------------ kernels
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


@njit(cache=True)
def select_top(cand: np.ndarray, vals: np.ndarray, m: int, width: int, out_idx: np.ndarray,
               out_val: np.ndarray, ids_sorted: bool = False) -> int:
    """Write the ``width`` largest of ``vals[:m]`` (ids ``cand[:m]``) best first; return the count.

    The kernels' variant of the contract, for candidates gathered in a scratch buffer: ties are
    broken towards the smaller id, so the result does not depend on the order in which candidates
    were discovered; ``ids_sorted`` says ``cand[:m]`` is already increasing, which saves the sorts
    by id. Values are assumed finite (the callers keep only positive ones).
    """
    if m == 0:
        return 0
    if m > width:
        thr = -np.partition(-vals[:m], width - 1)[width - 1]
        pick = np.empty(width, np.int64)
        sel = 0
        n_ties = 0
        for t in range(m):
            if vals[t] > thr:
                pick[sel] = t
                sel += 1
            elif vals[t] == thr:
                n_ties += 1
        ties = np.empty(n_ties, np.int64)
        n_ties = 0
        for t in range(m):
            if vals[t] == thr:
                ties[n_ties] = t
                n_ties += 1
        if ids_sorted:
            for t in range(width - sel):
                pick[sel + t] = ties[t]
        else:
            tie_order = np.argsort(cand[ties], kind="mergesort")
            for t in range(width - sel):
                pick[sel + t] = ties[tie_order[t]]
        m_idx = pick
        m = width
    else:
        m_idx = np.arange(m)
    # order by value descending, then id ascending: sort by id, then a stable sort by value
    if ids_sorted:
        m_idx = np.sort(m_idx)
    else:
        m_idx = m_idx[np.argsort(cand[m_idx], kind="mergesort")]
    order = np.argsort(-vals[m_idx], kind="mergesort")
    for t in range(m):
        out_idx[t] = cand[m_idx[order[t]]]
        out_val[t] = vals[m_idx[order[t]]]
    return m


@njit(cache=True, inline="always")
def accumulate_row_product(row, a_indptr, a_indices, a_data, m_indptr, m_indices, m_data, skip, acc, tag_of,
                           tag, touched):  # pragma: no cover - compiled
    """Add row ``row`` of ``a @ m`` into the dense scratch ``acc``; return how many columns it touched.

    The sparse row product of the top-k, similarity and SLIM kernels: for each entry ``(j, w)`` of
    ``a[row]`` and each ``(i, v)`` of ``m[j]`` (``i != skip``), ``acc[i] += w * v``, in that order.
    Columns first touched in this call are appended to ``touched`` and stamped ``tag_of[i] = tag``
    (a number unique to the row, so the stamps need no reset); the caller reads and clears ``acc``
    at ``touched[:count]``.
    """
    nt = 0
    for p in range(a_indptr[row], a_indptr[row + 1]):
        j = a_indices[p]
        w = a_data[p]
        for q in range(m_indptr[j], m_indptr[j + 1]):
            i = m_indices[q]
            if i == skip:
                continue
            if tag_of[i] != tag:
                tag_of[i] = tag
                touched[nt] = i
                nt += 1
            acc[i] += w * m_data[q]
    return nt


@njit(cache=True, inline="always")
def _topk_row(row, p, end, indices, banned, k, out_idx, out_val):  # pragma: no cover - compiled
    """Top-``k`` of one dense score row, skipping ``indices[p:end]`` (sorted) and banned items."""
    hv = np.empty(k, dtype=np.float64)
    hi = np.empty(k, dtype=np.int64)
    size = 0
    for j in range(row.shape[0]):
        v = row[j]
        # columns come in increasing order, so once the heap is full an item must beat the worst
        # kept score strictly (a tie loses to the lower index already kept): most are rejected here
        if size == k:
            if not (v > hv[0]):
                continue
        elif not (v > -np.inf):  # NaN or -inf
            continue
        while p < end and indices[p] < j:
            p += 1
        if p < end and indices[p] == j:
            continue
        if banned[j]:
            continue
        size = _heap_offer(hv, hi, size, k, v, j)
    _heap_drain(hv, hi, size, out_idx, out_val)


@njit(cache=True, parallel=True)
def _topk_kernel(scores, indptr, indices, banned, k, out_idx, out_val):  # pragma: no cover - compiled
    for r in prange(scores.shape[0]):
        _topk_row(scores[r], indptr[r], indptr[r + 1], indices, banned, k, out_idx[r], out_val[r])


@njit(cache=True)
def _topk_kernel_serial(scores, indptr, indices, banned, k, out_idx, out_val):  # pragma: no cover - compiled
    # one row (a served request): a parallel region would cost more than the row, and its threads
    # contend with BLAS right after a fold-in solve
    for r in range(scores.shape[0]):
        _topk_row(scores[r], indptr[r], indptr[r + 1], indices, banned, k, out_idx[r], out_val[r])


@njit(cache=True, parallel=True)
def _sparse_rows_topk_kernel(rows, indptr, indices, data, excl_indptr, excl_indices, banned, k, n_items,
                             n_chunks, out_idx, out_val):  # pragma: no cover - compiled
    n_rows = len(rows)
    step = (n_rows + n_chunks - 1) // n_chunks
    for c in prange(n_chunks):
        lo = c * step
        hi_row = min(n_rows, lo + step)
        if lo >= hi_row:
            continue
        skip_tag = np.zeros(n_items, dtype=np.int64)  # row tag: excluded in this row
        hv = np.empty(k, dtype=np.float64)
        hi = np.empty(k, dtype=np.int64)
        for r in range(lo, hi_row):
            tag = r + 1
            for p in range(excl_indptr[r], excl_indptr[r + 1]):
                skip_tag[excl_indices[p]] = tag
            row = rows[r]
            size = 0
            for p in range(indptr[row], indptr[row + 1]):
                j = indices[p]
                v = np.float64(data[p])
                if not (v > -np.inf) or banned[j] or skip_tag[j] == tag:
                    continue
                size = _heap_offer(hv, hi, size, k, v, j)
            _heap_drain(hv, hi, size, out_idx[r], out_val[r])


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
            nt = accumulate_row_product(rows[r], a_indptr, a_indices, a_data, m_indptr, m_indices, m_data, -1,
                                        acc, seen_tag, tag, touched)
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

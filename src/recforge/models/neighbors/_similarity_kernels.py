"""Compiled similarity and prediction kernels of the neighbourhood models.

Everything here works on CSR triplets (``indptr``, ``indices``, ``data``). "Entities" (``x``) are the
rows whose pairwise similarities are wanted (items for item-based models, users for user-based
ones) and "features" (``y``) are the other side. Similarities are computed one entity at a time by
walking entity -> its features -> the other entities of each feature, accumulating co-rating
statistics in a dense scratch row, so memory stays O(n_x) per thread plus the pruned output.
"""

from __future__ import annotations

import numba
import numpy as np
import scipy.sparse as sp
from numba import njit, prange

from recforge.topk import select_top

# similarity kinds understood by ``_similarity_block``
DOT = 0  # plain dot product of the (pre-weighted, pre-normalised) vectors
COSINE = 1  # cosine over the co-rated support (scikit-surprise's ``cosine``)
PEARSON = 2  # Pearson over the co-rated support with co-rated means (scikit-surprise's ``pearson``)
MSD = 3  # 1 / (1 + mean squared difference) over the co-rated support

_OUT_BUDGET = 1 << 24  # entries of the (rows x width) buffer filled per block


@njit(cache=True, inline="always")
def chunk_bounds(c: int, start: int, stop: int, n_chunks: int) -> tuple[int, int]:
    """Rows ``lo..hi-1`` of chunk ``c`` when ``start..stop-1`` is cut into ``n_chunks`` equal chunks
    (the parallel loops give each chunk its own scratch buffers; ``lo >= hi``: an empty chunk)."""
    step = (stop - start + n_chunks - 1) // n_chunks
    lo = start + c * step
    return lo, min(stop, lo + step)


@njit(parallel=True, cache=True)
def _similarity_block(
    start: int, stop: int,
    x_indptr: np.ndarray, x_indices: np.ndarray, x_data: np.ndarray,
    y_indptr: np.ndarray, y_indices: np.ndarray, y_data: np.ndarray,
    n_x: int, kind: int, min_support: int, shrinkage: float, width: int, n_chunks: int,
    col_scale: np.ndarray, out_idx: np.ndarray, out_val: np.ndarray, out_cnt: np.ndarray,
) -> None:
    """Positive similarities of entities ``start..stop-1`` to all others, top ``width`` per row.

    ``x_*`` is the entities x features CSR matrix and ``y_*`` its transpose (same values); each
    similarity ``s_ab`` is multiplied by ``col_scale[b]`` (empty: no scaling) before the top-k.
    """
    scaled = col_scale.shape[0] > 0
    for c in prange(n_chunks):
        lo, hi = chunk_bounds(c, start, stop, n_chunks)
        if lo >= hi:
            continue
        freq = np.zeros(n_x, np.int32)
        prods = np.zeros(n_x, np.float64)
        sqi = np.zeros(n_x, np.float64)
        sqj = np.zeros(n_x, np.float64)
        si = np.zeros(n_x, np.float64)
        sj = np.zeros(n_x, np.float64)
        touched = np.empty(n_x, np.int32)
        cand = np.empty(n_x, np.int32)
        vals = np.empty(n_x, np.float64)
        for x in range(lo, hi):
            nt = 0
            for p in range(x_indptr[x], x_indptr[x + 1]):
                y = x_indices[p]
                ri = x_data[p]
                for q in range(y_indptr[y], y_indptr[y + 1]):
                    x2 = y_indices[q]
                    rj = y_data[q]
                    if freq[x2] == 0:
                        touched[nt] = x2
                        nt += 1
                    freq[x2] += 1
                    prods[x2] += ri * rj
                    if kind != DOT:
                        sqi[x2] += ri * ri
                        sqj[x2] += rj * rj
                        if kind == PEARSON:
                            si[x2] += ri
                            sj[x2] += rj
            # with few neighbours kept out of many candidates, the selection sorts only the kept
            # ones by id; otherwise visit candidates in id order (a scan beats a sort when many
            # were touched) so the selection need not sort by id to break ties
            ids_sorted = width * 8 >= nt
            if ids_sorted:
                if nt > n_x // 16:
                    nt = 0
                    for x2 in range(n_x):
                        if freq[x2] > 0:
                            touched[nt] = x2
                            nt += 1
                else:
                    touched[:nt].sort()
            m = 0
            for t in range(nt):
                x2 = touched[t]
                n = freq[x2]
                sim = 0.0
                if x2 != x and n >= min_support:
                    if kind == DOT:
                        sim = prods[x2]
                    elif kind == COSINE:
                        den = np.sqrt(sqi[x2] * sqj[x2])
                        sim = prods[x2] / den if den > 0 else 0.0
                    elif kind == PEARSON:
                        num = n * prods[x2] - si[x2] * sj[x2]
                        den2 = (n * sqi[x2] - si[x2] ** 2) * (n * sqj[x2] - sj[x2] ** 2)
                        sim = num / np.sqrt(den2) if den2 > 0 else 0.0
                    else:  # MSD
                        msd = (sqi[x2] + sqj[x2] - 2.0 * prods[x2]) / n
                        sim = 1.0 / (max(msd, 0.0) + 1.0)
                    if shrinkage > 0:
                        sim *= (n - 1.0) / (n - 1.0 + shrinkage)
                    if scaled:
                        sim *= col_scale[x2]
                if sim > 0:
                    cand[m] = x2
                    vals[m] = sim
                    m += 1
                freq[x2] = 0
                prods[x2] = 0.0
                sqi[x2] = 0.0
                sqj[x2] = 0.0
                si[x2] = 0.0
                sj[x2] = 0.0
            r = x - start
            out_cnt[r] = select_top(cand, vals, m, width, out_idx[r], out_val[r], ids_sorted)


@njit(parallel=True, cache=True)
def _dot_similarity_block(
    start: int, stop: int,
    x_indptr: np.ndarray, x_indices: np.ndarray, x_data: np.ndarray,
    y_indptr: np.ndarray, y_indices: np.ndarray, y_data: np.ndarray,
    n_x: int, width: int, n_chunks: int, y_factor: np.ndarray,
    col_scale: np.ndarray, out_idx: np.ndarray, out_val: np.ndarray, out_cnt: np.ndarray,
) -> None:
    """:func:`_similarity_block` for ``kind=DOT`` without a minimum support or shrinkage: the
    same sums in the same order, so the same output, with a leaner inner loop.

    With ``y_data`` empty, every entity's values are one number, ``y_factor[x2]`` (a binary log
    weighted per entity, as cosine weighting makes it): ``s = y_factor[x2] * sum r_i`` is then
    accumulated without reading a value per visit, which with narrow (uint16) ``y_indices``
    cuts the bytes streamed per visit from 12 to 2: the loop is bound by that stream.

    The inner loop is a bare scatter-add ``acc[x2] += r_i * r_j`` (no co-rating count). Which
    entities were touched is tracked only for rows whose work (the sum of their features' lengths)
    is under ``n_x / 4``; a heavier row is read back by a scan of the dense accumulator, which then
    costs less than the bookkeeping (with a 27k-item catalogue, nearly every item of a 10M-row log).
    Rows are dealt to the chunks in turn (row ``start + c + t * n_chunks`` to chunk ``c``) so that
    the heavy rows of popular entities, often neighbours in id order, spread over the threads.
    """
    scaled = col_scale.shape[0] > 0
    factored = y_data.shape[0] == 0
    for c in prange(n_chunks):
        acc = np.zeros(n_x, np.float64)
        stamp = np.full(n_x, -1, np.int64)
        touched = np.empty(n_x, np.int32)
        cand = np.empty(n_x, np.int32)
        vals = np.empty(n_x, np.float64)
        for x in range(start + c, stop, n_chunks):
            work = 0
            for p in range(x_indptr[x], x_indptr[x + 1]):
                y = x_indices[p]
                work += y_indptr[y + 1] - y_indptr[y]
            m = 0
            if work * 4 >= n_x:
                for p in range(x_indptr[x], x_indptr[x + 1]):
                    y = x_indices[p]
                    ri = x_data[p]
                    if factored:
                        for q in range(y_indptr[y], y_indptr[y + 1]):
                            acc[y_indices[q]] += ri
                    else:
                        for q in range(y_indptr[y], y_indptr[y + 1]):
                            acc[y_indices[q]] += ri * y_data[q]
                for x2 in range(n_x):  # id order
                    sim = acc[x2]
                    if sim != 0.0:
                        acc[x2] = 0.0
                        if factored:
                            sim *= y_factor[x2]
                        if scaled:
                            sim *= col_scale[x2]
                        if sim > 0 and x2 != x:
                            cand[m] = x2
                            vals[m] = sim
                            m += 1
            else:
                nt = 0
                for p in range(x_indptr[x], x_indptr[x + 1]):
                    y = x_indices[p]
                    ri = x_data[p]
                    for q in range(y_indptr[y], y_indptr[y + 1]):
                        x2 = y_indices[q]
                        if stamp[x2] != x:
                            stamp[x2] = x
                            touched[nt] = x2
                            nt += 1
                        acc[x2] += ri if factored else ri * y_data[q]
                touched[:nt].sort()
                for t in range(nt):
                    x2 = touched[t]
                    sim = acc[x2]
                    acc[x2] = 0.0
                    if factored:
                        sim *= y_factor[x2]
                    if scaled:
                        sim *= col_scale[x2]
                    if sim > 0 and x2 != x:
                        cand[m] = x2
                        vals[m] = sim
                        m += 1
            r = x - start
            out_cnt[r] = select_top(cand, vals, m, width, out_idx[r], out_val[r], True)


def _lean_features(x: sp.csr_matrix, y: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(y_indices, y_data, y_factor)`` for :func:`_dot_similarity_block`: the entity ids as
    uint16 when there are fewer than 65,536 entities, and, when every entity's values are one
    number (``x``'s rows constant), no values but that number per entity."""
    n_x = x.shape[0]
    indices = y.indices.astype(np.uint16) if n_x <= 1 << 16 else y.indices
    lengths = np.diff(x.indptr)
    first = np.zeros(n_x, np.float64)
    has = lengths > 0
    first[has] = x.data[x.indptr[:-1][has]]
    if np.array_equal(x.data, np.repeat(first, lengths)):
        return indices, np.empty(0, np.float64), first
    return indices, y.data, np.empty(0, np.float64)


def similarity_matrix(
    by_entity: sp.csr_matrix,
    kind: int,
    *,
    width: int | None,
    min_support: int = 1,
    shrinkage: float = 0.0,
    col_scale: np.ndarray | None = None,
) -> sp.csr_matrix:
    """Pruned entity x entity similarity matrix; each row holds its top ``width`` positive entries.

    Args:
        by_entity: Entities x features CSR matrix of the values to compare (already centred,
            weighted or normalised as the similarity requires).
        kind: ``DOT``, ``COSINE``, ``PEARSON`` or ``MSD``.
        width: Neighbours kept per row (None: all positive ones).
        min_support: Fewest co-rated features for a non-zero similarity.
        shrinkage: ``lambda`` of the factor ``(n - 1) / (n - 1 + lambda)`` (0: none).
        col_scale: Optional per-entity factor applied to the similarity *to* that entity before
            the top ``width`` are chosen (so the result is no longer symmetric), e.g. RP3beta's
            popularity penalty ``deg(b)^-beta``.

    Returns:
        A float32 CSR matrix whose rows are ordered by decreasing similarity (not by column), with
        no diagonal and no non-positive entries.
    """
    x = sp.csr_matrix(by_entity, dtype=np.float64)
    x.sort_indices()
    y = x.T.tocsr()
    y.sort_indices()
    n_x = x.shape[0]
    w = max(1, n_x - 1 if width is None else min(width, max(1, n_x - 1)))
    block = max(1, min(n_x, _OUT_BUDGET // w))
    threads = numba.get_num_threads()
    scale = np.empty(0, np.float64) if col_scale is None else np.ascontiguousarray(col_scale, np.float64)
    if len(scale) not in (0, n_x):
        raise ValueError(f"col_scale has {len(scale)} entries for {n_x} entities")
    lean = _lean_features(x, y) if kind == DOT and min_support <= 1 and shrinkage == 0 else None
    y_indptr = y.indptr
    if lean is not None:
        del y  # the lean kernel reads only y's indptr beside its own (narrow) ids: free the rest now
    indptr = np.zeros(n_x + 1, np.int64)
    idx_parts, val_parts = [], []
    for start in range(0, n_x, block):
        stop = min(n_x, start + block)
        rows = stop - start
        out_idx = np.empty((rows, w), np.int32)
        out_val = np.empty((rows, w), np.float64)
        out_cnt = np.zeros(rows, np.int64)
        n_chunks = max(1, min(rows, threads * 8))
        if lean is not None:
            _dot_similarity_block(start, stop, x.indptr, x.indices, x.data, y_indptr, lean[0], lean[1],
                                  n_x, w, n_chunks, lean[2], scale, out_idx, out_val, out_cnt)
        else:
            _similarity_block(start, stop, x.indptr, x.indices, x.data, y.indptr, y.indices, y.data,
                              n_x, kind, int(min_support), float(shrinkage), w, n_chunks, scale,
                              out_idx, out_val, out_cnt)
        keep = np.arange(w)[None, :] < out_cnt[:, None]
        idx_parts.append(out_idx[keep])
        val_parts.append(out_val[keep].astype(np.float32))
        indptr[start + 1 : stop + 1] = out_cnt
    np.cumsum(indptr, out=indptr)
    indices = np.concatenate(idx_parts) if idx_parts else np.empty(0, np.int32)
    data = np.concatenate(val_parts) if val_parts else np.empty(0, np.float32)
    mat = sp.csr_matrix((data, indices, indptr), shape=(n_x, n_x))
    mat.has_sorted_indices = False  # rows are ordered by value, which the predictors rely on
    return mat


@njit(parallel=True, cache=True)
def _predict_groups(
    group_ptr: np.ndarray, order: np.ndarray, px: np.ndarray, py: np.ndarray,
    s_indptr: np.ndarray, s_indices: np.ndarray, s_data: np.ndarray,
    y_indptr: np.ndarray, y_indices: np.ndarray, y_data: np.ndarray,
    k: int, min_k: int, base_x: np.ndarray, off_y: np.ndarray, scale_x: np.ndarray,
    fallback: float, use_fallback_const: bool, n_x: int, n_chunks: int, out: np.ndarray,
) -> None:
    """Neighbourhood predictions for pairs grouped by feature ``y``.

    ``est = base_x[x] + off_y[y] + scale_x[x] * sum_j s_xj (r_jy - off_y[y] - base_x[j]) / scale_x[j]
    / sum_j s_xj`` over the ``k`` most similar neighbours ``j`` of ``x`` that rated ``y`` (rows of
    the similarity matrix are ordered by decreasing similarity, so the first ``k`` hits are the
    ``k`` best). With fewer than ``min_k`` such neighbours the estimate is ``fallback`` when
    ``use_fallback_const`` else ``base_x[x] + off_y[y]``.
    """
    n_groups = len(group_ptr) - 1
    for c in prange(n_chunks):
        g_lo, g_hi = chunk_bounds(c, 0, n_groups, n_chunks)
        if g_lo >= g_hi:
            continue
        mark = np.zeros(n_x, np.bool_)
        rating = np.zeros(n_x, np.float64)
        for g in range(g_lo, g_hi):
            first = order[group_ptr[g]]
            y = py[first]
            for q in range(y_indptr[y], y_indptr[y + 1]):
                mark[y_indices[q]] = True
                rating[y_indices[q]] = y_data[q]
            oy = off_y[y]
            for t in range(group_ptr[g], group_ptr[g + 1]):
                p = order[t]
                x = px[p]
                sum_sim = 0.0
                sum_dev = 0.0
                found = 0
                for s in range(s_indptr[x], s_indptr[x + 1]):
                    j = s_indices[s]
                    if mark[j]:
                        sim = s_data[s]
                        sum_sim += sim
                        sum_dev += sim * (rating[j] - oy - base_x[j]) / scale_x[j]
                        found += 1
                        if found >= k:
                            break
                if found < min_k or sum_sim <= 0:
                    out[p] = fallback if use_fallback_const else base_x[x] + oy
                else:
                    out[p] = base_x[x] + oy + scale_x[x] * sum_dev / sum_sim
            for q in range(y_indptr[y], y_indptr[y + 1]):
                mark[y_indices[q]] = False


def predict_pairs(
    px: np.ndarray, py: np.ndarray, sim: sp.csr_matrix, by_feature: sp.csr_matrix, *, k: int, min_k: int,
    base_x: np.ndarray, off_y: np.ndarray, scale_x: np.ndarray, fallback: float | None,
) -> np.ndarray:
    """Run :func:`_predict_groups` on (entity, feature) index pairs; see its docstring."""
    out = np.empty(len(px), np.float64)
    if len(px) == 0:
        return out
    px = np.ascontiguousarray(px, np.int64)
    py = np.ascontiguousarray(py, np.int64)
    order = np.argsort(py, kind="stable")
    sy = py[order]
    group_ptr = np.flatnonzero(np.r_[True, sy[1:] != sy[:-1], True]).astype(np.int64)
    n_groups = len(group_ptr) - 1
    n_chunks = max(1, min(n_groups, numba.get_num_threads() * 8))
    _predict_groups(group_ptr, order, px, py, sim.indptr, sim.indices, sim.data,
                    by_feature.indptr, by_feature.indices, by_feature.data.astype(np.float64, copy=False),
                    int(k), int(min_k), base_x, off_y, scale_x,
                    0.0 if fallback is None else float(fallback), fallback is not None,
                    sim.shape[0], n_chunks, out)
    return out


@njit(parallel=True, cache=True)
def _sparse_rows_dot(
    rows: np.ndarray, a_indptr: np.ndarray, a_indices: np.ndarray, a_data: np.ndarray,
    m_indptr: np.ndarray, m_indices: np.ndarray, m_data: np.ndarray, out: np.ndarray,
) -> None:
    for r in prange(len(rows)):
        row = rows[r]
        for p in range(a_indptr[row], a_indptr[row + 1]):
            j = a_indices[p]
            w = a_data[p]
            for q in range(m_indptr[j], m_indptr[j + 1]):
                out[r, m_indices[q]] += w * m_data[q]


def sparse_rows_dot(a: sp.csr_matrix, rows: np.ndarray, m: sp.csr_matrix) -> np.ndarray:
    """Dense ``a[rows] @ m`` in float64, in one pass (no sparse intermediate, no dtype copy)."""
    out = np.zeros((len(rows), m.shape[1]), np.float64)
    if len(rows):
        _sparse_rows_dot(np.ascontiguousarray(rows, np.int64), a.indptr, a.indices, a.data,
                         m.indptr, m.indices, m.data, out)
    return out

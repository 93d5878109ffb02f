"""Compiled kernels shared by the neighbourhood models.

Everything here works on CSR triplets (``indptr``, ``indices``, ``data``). "Entities" (``x``) are the
rows whose pairwise similarities are wanted (items for item-based models, users for user-based
ones) and "features" (``y``) are the other side. Similarities are computed one entity at a time by
walking entity -> its features -> the other entities of each feature, accumulating co-rating
statistics in a dense scratch row, so memory stays O(n_x) per thread plus the pruned output.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numba
import numpy as np
import scipy.sparse as sp
from numba import njit, prange

# similarity kinds understood by ``_similarity_block``
DOT = 0  # plain dot product of the (pre-weighted, pre-normalised) vectors
COSINE = 1  # cosine over the co-rated support (scikit-surprise's ``cosine``)
PEARSON = 2  # Pearson over the co-rated support with co-rated means (scikit-surprise's ``pearson``)
MSD = 3  # 1 / (1 + mean squared difference) over the co-rated support

_OUT_BUDGET = 1 << 24  # entries of the (rows x width) buffer filled per block


@contextlib.contextmanager
def numba_threads(threads: int | None) -> Iterator[None]:
    """Limit numba's thread pool to ``threads`` (None: leave it) for the duration of a block."""
    if threads is None:
        yield
        return
    old = numba.get_num_threads()
    numba.set_num_threads(max(1, min(int(threads), numba.config.NUMBA_NUM_THREADS)))
    try:
        yield
    finally:
        numba.set_num_threads(old)


@njit(cache=True)
def _select_top(cand: np.ndarray, vals: np.ndarray, m: int, width: int, out_idx: np.ndarray,
                out_val: np.ndarray, ids_sorted: bool = False) -> int:
    """Write the ``width`` largest of ``vals[:m]`` (ids ``cand[:m]``) best first; return the count.

    Ties are broken towards the smaller id, so the result does not depend on the order in which
    candidates were discovered; ``ids_sorted`` says ``cand[:m]`` is already increasing, which
    saves the sorts by id.
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
    n_rows = stop - start
    step = (n_rows + n_chunks - 1) // n_chunks
    for c in prange(n_chunks):
        lo = start + c * step
        hi = min(stop, lo + step)
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
            out_cnt[r] = _select_top(cand, vals, m, width, out_idx[r], out_val[r], ids_sorted)


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
    indptr = np.zeros(n_x + 1, np.int64)
    idx_parts, val_parts = [], []
    for start in range(0, n_x, block):
        stop = min(n_x, start + block)
        rows = stop - start
        out_idx = np.empty((rows, w), np.int32)
        out_val = np.empty((rows, w), np.float64)
        out_cnt = np.zeros(rows, np.int64)
        n_chunks = max(1, min(rows, threads * 8))
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
    step = (n_groups + n_chunks - 1) // n_chunks
    for c in prange(n_chunks):
        g_lo = c * step
        g_hi = min(n_groups, g_lo + step)
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


# ---------------------------------------------------------------------------------------- SLIM
# (kept in this module: numba's on-disk cache only notices edits to a kernel's own file, so
# kernels calling _select_top live next to it)
@njit(cache=True)
def _coordinate_descent(gram: np.ndarray, resid: np.ndarray, w: np.ndarray, n: int, l1: float, l2: float,
                        max_iter: int, tol: float) -> None:
    """Non-negative elastic net by cyclic coordinate descent; ``resid[a] = X_a^T (x_j - X w)`` on entry.

    Keeping the residual correlations up to date costs ``O(n)`` per weight that moves, and most
    weights stay at zero, so a sweep is cheap once the active set settles.
    """
    for _ in range(max_iter):
        max_delta = 0.0
        for a in range(n):
            old = w[a]
            z = resid[a] + gram[a, a] * old - l1
            new = z / (gram[a, a] + l2) if z > 0 else 0.0
            delta = new - old
            if delta != 0.0:
                w[a] = new
                for b in range(n):
                    resid[b] -= gram[b, a] * delta
                max_delta = max(max_delta, abs(delta))
        if max_delta < tol:
            break


@njit(cache=True)
def _solve_column(gram: np.ndarray, resid: np.ndarray, w: np.ndarray, n_sel: int, sel_idx: np.ndarray, l1: float,
                  l2: float, max_iter: int, tol: float, out_idx: np.ndarray, out_val: np.ndarray) -> int:
    """Solve one SLIM column over its ``n_sel`` candidates and write its positive weights; their count."""
    _coordinate_descent(gram, resid, w, n_sel, l1, l2, max_iter, tol)
    cnt = 0
    for a in range(n_sel):
        if w[a] > 0:
            out_idx[cnt] = sel_idx[a]
            out_val[cnt] = w[a]
            cnt += 1
    return cnt


@njit(parallel=True, cache=True)
def slim_columns_dense(
    full: np.ndarray, norms: np.ndarray, n_cand: int, l1: float, l2: float, max_iter: int, tol: float,
    n_chunks: int, out_idx: np.ndarray, out_val: np.ndarray, out_cnt: np.ndarray,
) -> None:
    """As :func:`slim_columns`, reading candidates' Gram entries from the full dense ``X^T X``."""
    n_items = full.shape[0]
    step = (n_items + n_chunks - 1) // n_chunks
    for chunk in prange(n_chunks):
        lo = chunk * step
        hi = min(n_items, lo + step)
        if lo >= hi:
            continue
        cand = np.empty(n_items, np.int32)
        vals = np.empty(n_items, np.float64)
        sel_idx = np.empty(n_cand, np.int32)
        sel_val = np.empty(n_cand, np.float64)
        gram = np.zeros((n_cand, n_cand), np.float64)
        resid = np.zeros(n_cand, np.float64)
        w = np.zeros(n_cand, np.float64)
        for j in range(lo, hi):
            mc = 0
            for m in range(n_items):
                if m != j and full[j, m] > 0 and norms[m] > 0:
                    cand[mc] = m
                    vals[mc] = full[j, m] / norms[m]
                    mc += 1
            n_sel = _select_top(cand, vals, mc, n_cand, sel_idx, sel_val)
            for a in range(n_sel):
                ca = sel_idx[a]
                resid[a] = full[ca, j]
                w[a] = 0.0
                for b in range(n_sel):
                    gram[a, b] = full[ca, sel_idx[b]]
            out_cnt[j] = _solve_column(gram, resid, w, n_sel, sel_idx, l1, l2, max_iter, tol, out_idx[j], out_val[j])


@njit(parallel=True, cache=True)
def slim_columns(
    x_indptr: np.ndarray, x_indices: np.ndarray, x_data: np.ndarray,
    c_indptr: np.ndarray, c_indices: np.ndarray, c_data: np.ndarray,
    norms: np.ndarray, n_cand: int, l1: float, l2: float, max_iter: int, tol: float,
    max_deg: int, n_chunks: int, out_idx: np.ndarray, out_val: np.ndarray, out_cnt: np.ndarray,
) -> None:
    """Fit every item's weight column; ``x_*`` is users x items CSR, ``c_*`` its transpose."""
    n_items = len(c_indptr) - 1
    n_users = len(x_indptr) - 1
    step = (n_items + n_chunks - 1) // n_chunks
    for chunk in prange(n_chunks):
        lo = chunk * step
        hi = min(n_items, lo + step)
        if lo >= hi:
            continue
        acc = np.zeros(n_items, np.float64)
        seen = np.zeros(n_items, np.bool_)
        touched = np.empty(n_items, np.int32)
        cand = np.empty(n_items, np.int32)
        vals = np.empty(n_items, np.float64)
        sel_idx = np.empty(n_cand, np.int32)
        sel_val = np.empty(n_cand, np.float64)
        head = np.full(n_users, -1, np.int64)
        users = np.empty(n_users, np.int32)
        link_next = np.empty(n_cand * max_deg, np.int64)
        link_item = np.empty(n_cand * max_deg, np.int32)
        link_val = np.empty(n_cand * max_deg, np.float64)
        gram = np.zeros((n_cand, n_cand), np.float64)
        resid = np.zeros(n_cand, np.float64)
        w = np.zeros(n_cand, np.float64)
        for j in range(lo, hi):
            # co-occurrence of j with every other item, via the users of j
            nt = 0
            for p in range(c_indptr[j], c_indptr[j + 1]):
                u = c_indices[p]
                xj = c_data[p]
                for q in range(x_indptr[u], x_indptr[u + 1]):
                    m = x_indices[q]
                    if m == j:
                        continue
                    if not seen[m]:
                        seen[m] = True
                        touched[nt] = m
                        nt += 1
                    acc[m] += xj * x_data[q]
            mc = 0
            for t in range(nt):
                m = touched[t]
                if acc[m] > 0 and norms[m] > 0:
                    cand[mc] = m
                    vals[mc] = acc[m] / norms[m]  # cosine up to the constant 1 / norm_j
                    mc += 1
            n_sel = _select_top(cand, vals, mc, n_cand, sel_idx, sel_val)
            for a in range(n_sel):
                resid[a] = acc[sel_idx[a]]  # X_a^T x_j: the residual correlation at w = 0
                w[a] = 0.0
            for t in range(nt):
                acc[touched[t]] = 0.0
                seen[touched[t]] = False
            if n_sel == 0:
                out_cnt[j] = 0
                continue
            # Gram matrix of the candidates, built user by user from linked lists of their entries
            for a in range(n_sel):
                for b in range(n_sel):
                    gram[a, b] = 0.0
            n_links = 0
            n_users_hit = 0
            for a in range(n_sel):
                c = sel_idx[a]
                for p in range(c_indptr[c], c_indptr[c + 1]):
                    u = c_indices[p]
                    if head[u] == -1:
                        users[n_users_hit] = u
                        n_users_hit += 1
                    link_item[n_links] = a
                    link_val[n_links] = c_data[p]
                    link_next[n_links] = head[u]
                    head[u] = n_links
                    n_links += 1
            for t in range(n_users_hit):
                u = users[t]
                e = head[u]
                while e != -1:
                    a = link_item[e]
                    va = link_val[e]
                    e2 = head[u]
                    while e2 != -1:
                        gram[a, link_item[e2]] += va * link_val[e2]
                        e2 = link_next[e2]
                    e = link_next[e]
                head[u] = -1
            out_cnt[j] = _solve_column(gram, resid, w, n_sel, sel_idx, l1, l2, max_iter, tol, out_idx[j], out_val[j])

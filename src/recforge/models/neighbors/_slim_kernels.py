"""Compiled kernels of SLIM: candidate selection, candidate Gram matrices and coordinate descent.

Each item's weight column is fitted in a ``prange`` chunk with its own scratch buffers; the
candidates of a column are its most cosine-similar items (:func:`recforge.topk.select_top`), and
its co-occurrences are one row of ``X^T X`` (:func:`recforge.topk.accumulate_row_product`).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from recforge.models.neighbors._similarity_kernels import chunk_bounds
from recforge.topk import accumulate_row_product, select_top


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
    for chunk in prange(n_chunks):
        lo, hi = chunk_bounds(chunk, 0, n_items, n_chunks)
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
            n_sel = select_top(cand, vals, mc, n_cand, sel_idx, sel_val)
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
    for chunk in prange(n_chunks):
        lo, hi = chunk_bounds(chunk, 0, n_items, n_chunks)
        if lo >= hi:
            continue
        acc = np.zeros(n_items, np.float64)
        touched_by = np.zeros(n_items, np.int64)  # item tag j + 1: touched while fitting column j
        touched = np.empty(n_items, np.int64)
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
            # co-occurrence of j with every other item (row j of X^T X), via the users of j
            nt = accumulate_row_product(j, c_indptr, c_indices, c_data, x_indptr, x_indices, x_data, j, acc,
                                        touched_by, j + 1, touched)
            mc = 0
            for t in range(nt):
                m = touched[t]
                if acc[m] > 0 and norms[m] > 0:
                    cand[mc] = m
                    vals[mc] = acc[m] / norms[m]  # cosine up to the constant 1 / norm_j
                    mc += 1
            n_sel = select_top(cand, vals, mc, n_cand, sel_idx, sel_val)
            for a in range(n_sel):
                resid[a] = acc[sel_idx[a]]  # X_a^T x_j: the residual correlation at w = 0
                w[a] = 0.0
            for t in range(nt):
                acc[touched[t]] = 0.0
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

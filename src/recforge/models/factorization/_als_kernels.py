"""Compiled kernels of the ALS models: one row-solve skeleton for ALS-WR and exact iALS, CG, objectives.

Both ALS models solve, for every row ``a`` of one side with the other side ``B`` fixed, a small
symmetric positive definite system ``M x = rhs`` where ``M = G + sum_m w_m f_m f_m^T (+ lam I)``.
:func:`solve_rows` owns what the two share (the cost-balanced chunks, per-chunk scratch, the Gram
accumulation and the Cholesky solve); only how a row's observations become ``f_m``, ``w_m`` and
``rhs`` differs (:func:`_explicit_row`, :func:`_implicit_row`).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

__all__ = ["als_half", "als_objective", "ials_cg_half", "ials_exact_half", "ials_objective", "solve_rows"]


@njit(cache=True, inline="always")
def _cholesky_solve(M, b):  # type: ignore[no-untyped-def]
    """Solve ``M x = b`` in place for symmetric positive definite ``M`` (lower triangle used)."""
    d = M.shape[0]
    for j in range(d):
        s = M[j, j]
        for m in range(j):
            s -= M[j, m] * M[j, m]
        s = np.sqrt(s) if s > 0 else 1e-30
        M[j, j] = s
        for i in range(j + 1, d):
            t = M[i, j]
            for m in range(j):
                t -= M[i, m] * M[j, m]
            M[i, j] = t / s
    for i in range(d):
        t = b[i]
        for m in range(i):
            t -= M[i, m] * b[m]
        b[i] = t / M[i, i]
    for i in range(d - 1, -1, -1):
        t = b[i]
        for m in range(i + 1, d):
            t -= M[m, i] * b[m]
        b[i] = t / M[i, i]


@njit(cache=True, inline="always")
def _gram_add(M, F, w, n):  # type: ignore[no-untyped-def]
    """``M += sum_m w[m] F[m]^T F[m]`` over the first ``n`` rows, four rows per pass over ``M``."""
    d = M.shape[0]
    m = 0
    while m + 4 <= n:
        f0, f1, f2, f3 = F[m], F[m + 1], F[m + 2], F[m + 3]
        w0, w1, w2, w3 = w[m], w[m + 1], w[m + 2], w[m + 3]
        for f in range(d):
            a0 = w0 * f0[f]
            a1 = w1 * f1[f]
            a2 = w2 * f2[f]
            a3 = w3 * f3[f]
            row = M[f]
            for g in range(d):
                row[g] += a0 * f0[g] + a1 * f1[g] + a2 * f2[g] + a3 * f3[g]
        m += 4
    while m < n:
        f0 = F[m]
        w0 = w[m]
        for f in range(d):
            a0 = w0 * f0[f]
            row = M[f]
            for g in range(d):
                row[g] += a0 * f0[g]
        m += 1


@njit(cache=True, inline="always")
def _explicit_row(F, w, rhs, B, indices, vals, lo, n, k, bias, mu):  # type: ignore[no-untyped-def]
    """ALS-WR: ``f_m = [q_b, 1]``, ``w_m = 1``, ``rhs = sum_m f_m (r_m - mu - b_b)``."""
    d = rhs.shape[0]
    for m in range(n):
        b = indices[lo + m]
        t = vals[lo + m] - mu
        for f in range(k):
            F[m, f] = B[b, f]
        if bias:
            F[m, k] = 1.0
            t -= B[b, k]
        for f in range(d):
            rhs[f] += F[m, f] * t


@njit(cache=True, inline="always")
def _implicit_row(F, w, rhs, B, indices, cm1, lo, n, k):  # type: ignore[no-untyped-def]
    """iALS: ``f_m = y_b``, ``w_m = c_m - 1``, ``rhs = sum_m c_m y_b``."""
    for m in range(n):
        y = B[indices[lo + m]]
        w[m] = cm1[lo + m]
        for f in range(k):
            F[m, f] = y[f]
            rhs[f] += (w[m] + 1.0) * y[f]


@njit(cache=True, parallel=True, fastmath=True)
def solve_rows(bounds, indptr, indices, vals, A, B, G, k, implicit, bias, mu, reg):  # type: ignore[no-untyped-def]
    """Solve every row of ``A`` exactly with ``B`` fixed; rows without observations become 0.

    Args:
        bounds: Row chunks (:func:`~recforge.models.factorization._base.chunk_bounds`).
        indptr, indices, vals: The rows' observations (CSR/CSC of ratings, or of ``alpha * r``).
        A, B: The side being solved and the fixed side.
        G: The matrix every system starts from (``B^T B + reg I`` for iALS; zeros for ALS-WR).
        k: Latent factors (``A.shape[1]`` is ``k + 1`` for ALS-WR with biases).
        implicit: iALS rows (confidence weights) instead of ALS-WR rows.
        bias, mu, reg: ALS-WR's bias switch, global mean and weighted-lambda penalty ``reg * n``.
    """
    d = A.shape[1]
    for c in prange(bounds.shape[0] - 1):
        longest = 1
        for a in range(bounds[c], bounds[c + 1]):
            longest = max(longest, indptr[a + 1] - indptr[a])
        F = np.empty((longest, d))
        w = np.ones(longest)
        M = np.empty((d, d))
        rhs = np.empty(d)
        for a in range(bounds[c], bounds[c + 1]):
            lo = indptr[a]
            hi = indptr[a + 1]
            n = hi - lo
            if n == 0:
                A[a, :] = 0.0
                continue
            for f in range(d):
                rhs[f] = 0.0
                for g in range(d):
                    M[f, g] = G[f, g]
            if implicit:
                _implicit_row(F, w, rhs, B, indices, vals, lo, n, k)
            else:
                _explicit_row(F, w, rhs, B, indices, vals, lo, n, k, bias, mu)
            _gram_add(M, F, w, n)
            if not implicit:
                lam = reg * n
                for f in range(d):
                    M[f, f] += lam
            _cholesky_solve(M, rhs)
            for f in range(d):
                A[a, f] = rhs[f]


def als_half(bounds, indptr, indices, vals, A, B, k, bias, mu, reg):  # type: ignore[no-untyped-def]
    """ALS-WR half-step: solve every row of ``A`` exactly with ``B`` fixed (weighted-lambda normal equations)."""
    d = A.shape[1]
    solve_rows(bounds, indptr, indices, vals, A, B, np.zeros((d, d)), k, False, bias, mu, reg)


def ials_exact_half(bounds, indptr, indices, cm1, A, B, G):  # type: ignore[no-untyped-def]
    """Exact iALS half-step: every row of ``A`` with ``B`` fixed, ``G = B^T B + reg I`` (Cholesky)."""
    solve_rows(bounds, indptr, indices, cm1, A, B, G, A.shape[1], True, False, 0.0, 0.0)


@njit(cache=True, parallel=True, fastmath=True)
def ials_cg_half(bounds, indptr, indices, cm1, A, B, G, steps):  # type: ignore[no-untyped-def]
    """``steps`` CG iterations on every row of ``A`` (warm start), ``B`` fixed, ``G = B^T B + reg I``."""
    k = A.shape[1]
    for c in prange(bounds.shape[0] - 1):
        r = np.empty(k, np.float32)
        p = np.empty(k, np.float32)
        Ap = np.empty(k, np.float32)
        for a in range(bounds[c], bounds[c + 1]):
            lo = indptr[a]
            hi = indptr[a + 1]
            x = A[a]
            if hi == lo:
                x[:] = 0.0
                continue
            # r = b - M x with b = sum_i c_i y_i and M = G + sum_i (c_i - 1) y_i y_i^T
            for f in range(k):
                s = np.float32(0.0)
                for g in range(k):
                    s += G[f, g] * x[g]
                r[f] = -s
            for m in range(lo, hi):
                y = B[indices[m]]
                w = cm1[m]
                dot = np.float32(0.0)
                for f in range(k):
                    dot += y[f] * x[f]
                coef = (w + np.float32(1.0)) - w * dot
                for f in range(k):
                    r[f] += coef * y[f]
            rs_old = np.float32(0.0)
            for f in range(k):
                p[f] = r[f]
                rs_old += r[f] * r[f]
            if rs_old < 1e-20:
                continue
            for _ in range(steps):
                for f in range(k):
                    s = np.float32(0.0)
                    for g in range(k):
                        s += G[f, g] * p[g]
                    Ap[f] = s
                for m in range(lo, hi):
                    y = B[indices[m]]
                    dot = np.float32(0.0)
                    for f in range(k):
                        dot += y[f] * p[f]
                    coef = cm1[m] * dot
                    for f in range(k):
                        Ap[f] += coef * y[f]
                pAp = np.float32(0.0)
                for f in range(k):
                    pAp += p[f] * Ap[f]
                if pAp <= 0:
                    break
                step = rs_old / pAp
                rs_new = np.float32(0.0)
                for f in range(k):
                    x[f] += step * p[f]
                    r[f] -= step * Ap[f]
                    rs_new += r[f] * r[f]
                if rs_new < 1e-20:
                    break
                beta = rs_new / rs_old
                for f in range(k):
                    p[f] = r[f] + beta * p[f]
                rs_old = rs_new


@njit(cache=True)
def als_objective(indptr, indices, vals, X, Y, k, bias, mu, reg):  # type: ignore[no-untyped-def]
    d = X.shape[1] if bias else k
    sse = 0.0
    pen = 0.0
    n_items = Y.shape[0]
    item_n = np.zeros(n_items)
    for u in range(X.shape[0]):
        lo = indptr[u]
        hi = indptr[u + 1]
        for m in range(lo, hi):
            i = indices[m]
            item_n[i] += 1.0
            est = mu
            for f in range(k):
                est += X[u, f] * Y[i, f]
            if bias:
                est += X[u, k] + Y[i, k]
            e = vals[m] - est
            sse += e * e
        sq = 0.0
        for f in range(d):
            sq += X[u, f] * X[u, f]
        pen += (hi - lo) * sq
    for i in range(n_items):
        sq = 0.0
        for f in range(d):
            sq += Y[i, f] * Y[i, f]
        pen += item_n[i] * sq
    return sse + reg * pen


@njit(cache=True)
def ials_objective(indptr, indices, cm1, X, Y, reg):  # type: ignore[no-untyped-def]
    # sum over all cells of c (p - s)^2 = sum_u x_u^T (Y^T Y) x_u + sum over observed cells of
    # ((c - 1) s^2 - 2 c s + c), with s = x_u . y_i
    k = X.shape[1]
    G = np.zeros((k, k))
    for i in range(Y.shape[0]):
        for f in range(k):
            for g in range(k):
                G[f, g] += Y[i, f] * Y[i, g]
    loss = 0.0
    for u in range(X.shape[0]):
        for f in range(k):
            s = 0.0
            for g in range(k):
                s += G[f, g] * X[u, g]
            loss += s * X[u, f]
        for m in range(indptr[u], indptr[u + 1]):
            i = indices[m]
            s = 0.0
            for f in range(k):
                s += X[u, f] * Y[i, f]
            w = cm1[m]
            loss += w * s * s - 2.0 * (w + 1.0) * s + (w + 1.0)
    pen = 0.0
    for u in range(X.shape[0]):
        for f in range(k):
            pen += X[u, f] * X[u, f]
    for i in range(Y.shape[0]):
        for f in range(k):
            pen += Y[i, f] * Y[i, f]
    return loss + reg * pen

"""Turbo-CF: a polynomial low-pass filter of the item-item graph, no decomposition (Park, Shin and Shin,
SIGIR 2024)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import scipy.sparse as sp

from recforge.config import FitOptions, ModelConfig
from recforge.data.interactions import Interactions
from recforge.models.base import Recommender
from recforge.models.filters._graph import FilterScores, normalized


@dataclass(frozen=True)
class TurboCFConfig(ModelConfig):
    """Hyperparameters of :class:`TurboCF` (defaults: the authors' Gowalla settings)."""

    alpha: float = 0.6
    """Normalisation exponent: ``R~ = D_U^-alpha R D_I^-(1-alpha)`` (0.5: symmetric; larger values
    damp heavy users and lift popular items; Gowalla: 0.6)."""
    power: float = 0.7
    """``s``: element-wise power of the item-item weights, ``P_bar = (R~^T R~)^{o s}`` (below 1
    flattens strong edges against weak ones; Gowalla: 0.7)."""
    coefficients: tuple[float, ...] = (1.0,)
    """Polynomial filter ``f(P_bar) = sum_j c_j P_bar^j``, ``c_1`` first: ``(1.0,)`` is the paper's
    linear filter (Gowalla), ``(2.0, -1.0)`` its second-order filter ``2 P_bar - P_bar^2``."""

    def validate(self) -> None:
        self.check(0.0 <= self.alpha <= 1.0, "alpha", "must be in [0, 1]")
        self.check(self.power > 0, "power", "must be > 0")
        self.check(len(self.coefficients) >= 1, "coefficients", "needs at least one coefficient (c_1)")
        self.check(all(np.isfinite(c) for c in self.coefficients), "coefficients", "must be finite numbers")
        self.check(len(self.coefficients) <= 8, "coefficients", "at most 8 (a degree-8 polynomial)")


def spectral_radius(m: sp.csr_matrix, iterations: int = 200, tol: float = 1e-7) -> float:
    """Largest eigenvalue of a symmetric non-negative matrix by power iteration from the all-ones
    vector (deterministic; the Perron vector of a non-negative matrix has no negative entries, so the
    start is never orthogonal to it)."""
    if m.nnz == 0:
        return 0.0
    v = np.ones(m.shape[0], dtype=np.float64) / np.sqrt(m.shape[0])
    lam = 0.0
    for _ in range(iterations):
        w = m @ v
        new = float(np.linalg.norm(w))
        if new == 0.0:
            return 0.0
        v = w / new
        if abs(new - lam) <= tol * new:
            return new
        lam = new
    return lam


class TurboCF(FilterScores, Recommender):
    """Turbo-CF (Park, Shin and Shin, "Turbo-CF: Matrix Decomposition-Free Graph Filtering for Fast
    Recommendation", SIGIR 2024): a training-free, decomposition-free graph filter.

    With ``R`` the binary users x items matrix and ``D_U``, ``D_I`` its degrees,

    .. math::
        \\tilde R = D_U^{-\\alpha} R D_I^{-(1-\\alpha)}, \\qquad
        \\bar P = \\frac{(\\tilde R^T \\tilde R)^{\\circ s}}{\\lambda_{\\max}}, \\qquad
        s_u = r_u f(\\bar P), \\quad f(\\bar P) = \\sum_{j \\ge 1} c_j \\bar P^j

    where ``o s`` is the element-wise power that regulates the edge weights and ``f`` a polynomial
    low-pass filter (the paper's ``P_bar`` and ``2 P_bar - P_bar^2``): no SVD or eigendecomposition,
    only sparse products. ``P_bar`` is divided by its largest eigenvalue (power iteration) so that
    its spectrum lies in ``[0, 1]``, where the polynomial filters are designed to pass low and cut
    high frequencies (this scaling is our reading: it does not change the ranking of the linear
    filter).

    Memory: ``P_bar`` is kept sparse (Gowalla: 42M non-zeros, ~0.35 GB in float32 with int32
    indices). The linear filter is scored as a sparse product (the fast top-k path of the sparse item
    models); higher orders multiply dense score blocks by ``P_bar`` once per degree, ``nnz(P_bar)``
    multiply-adds per user and degree, so a full Gowalla evaluation of a degree-2 filter takes
    minutes on 2 cores.
    """

    name = "turbo-cf"
    task = "ranking"
    config_class = TurboCFConfig

    def _fit(self, data: Interactions, options: FitOptions) -> None:
        cfg = self.config
        norm = normalized(data.csr(), cfg.alpha, 1.0 - cfg.alpha)
        graph = (norm.T @ norm).tocsr()
        graph.sum_duplicates()
        graph.eliminate_zeros()
        if cfg.power != 1.0:
            graph.data = np.power(graph.data, cfg.power, dtype=np.float32)
        lam = spectral_radius(graph)
        if lam > 0:
            graph.data /= np.float32(lam)
        graph.sort_indices()
        self.graph_ = sp.csr_matrix(graph, dtype=np.float32)
        self.spectral_radius_ = lam

    def _filter_block(self, xt: np.ndarray) -> np.ndarray:
        coef = self.config.coefficients
        y = np.asarray(self.graph_ @ xt)  # P_bar is symmetric: (x P_bar)^T = P_bar x^T
        out = np.float32(coef[0]) * y
        for c in coef[1:]:
            y = np.asarray(self.graph_ @ y)
            out += np.float32(c) * y
        return out

    def _sparse_product(self) -> tuple[sp.csr_matrix, sp.csr_matrix] | None:
        if len(self.config.coefficients) != 1:
            return None
        c = self.config.coefficients[0]
        if c == 1.0:
            return self.seen_, self.graph_
        cached = self.__dict__.get("_scaled")
        if cached is None or cached[0] is not self.graph_:
            cached = (self.graph_, (self.graph_ * np.float32(c)).tocsr())
            self._scaled = cached
        return self.seen_, cached[1]

    def _neighbor_matrix(self, side: Literal["user", "item"]) -> sp.csr_matrix | None:
        return self.graph_ if side == "item" else None

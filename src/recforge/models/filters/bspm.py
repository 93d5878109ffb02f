"""BSPM: blurring-sharpening process models (Choi, Hong, Park and Cho, SIGIR 2023)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import scipy.sparse as sp

from recforge.config import FitOptions, ModelConfig
from recforge.data.interactions import Interactions
from recforge.models.filters._graph import SpectralGraphModel

Solver = Literal["euler", "rk4"]
_SOLVERS = ("euler", "rk4")


@dataclass(frozen=True)
class BSPMConfig(ModelConfig):
    """Hyperparameters of :class:`BSPM` (defaults: the paper's Gowalla settings, BSPM-EM)."""

    n_components: int = 448
    """Singular vectors of the normalised matrix kept by the ideal low-pass filter (Gowalla: 448)."""
    ideal_weight: float = 0.2
    """``beta``: weight of the ideal low-pass filter in the blurred signal (Gowalla: 0.2)."""
    blur_time: float = 1.0
    """``T_b``: terminal time of the blurring ODE (Gowalla: 1)."""
    blur_steps: int = 1
    """``K_b``: solver steps over ``[0, T_b]`` (step size ``T_b / K_b``; Gowalla: 1)."""
    blur_solver: Solver = "euler"
    """ODE solver of the blurring process: ``"euler"`` or ``"rk4"`` (Gowalla: Euler)."""
    sharpen_time: float = 2.5
    """``T_s``: duration of the sharpening ODE (Gowalla: 2.5); 0 turns sharpening off."""
    sharpen_steps: int = 1
    """``K_s``: solver steps of the sharpening process (Gowalla: 1)."""
    sharpen_solver: Solver = "rk4"
    """ODE solver of the sharpening process (Gowalla: RK4)."""
    merge: Literal["early", "late"] = "early"
    """Where the ideal filter's output joins: ``"early"`` (BSPM-EM: added to the blurred signal
    before sharpening, the paper's Gowalla model) or ``"late"`` (BSPM-LM: added after sharpening)."""
    average_states: bool = False
    """Score with the mean of every solver state after the start (the paper's combination of time
    points, used on Yelp2018) instead of the final state."""

    def validate(self) -> None:
        self.check(self.n_components >= 0, "n_components", "must be >= 0")
        self.check(self.ideal_weight >= 0, "ideal_weight", "must be >= 0")
        self.check(self.blur_time >= 0, "blur_time", "must be >= 0")
        self.check(self.sharpen_time >= 0, "sharpen_time", "must be >= 0")
        self.check(self.blur_steps >= 1, "blur_steps", "must be >= 1")
        self.check(self.sharpen_steps >= 1, "sharpen_steps", "must be >= 1")
        self.check(self.blur_solver in _SOLVERS, "blur_solver", f"must be one of {_SOLVERS}")
        self.check(self.sharpen_solver in _SOLVERS, "sharpen_solver", f"must be one of {_SOLVERS}")
        self.check(self.merge in ("early", "late"), "merge", "must be 'early' or 'late'")


def solve_linear_ode(f: Callable[[np.ndarray], np.ndarray], y0: np.ndarray, t_end: float, steps: int,
                     solver: Solver) -> list[np.ndarray]:
    """States of ``dy/dt = f(y)`` at ``t_end * j / steps``, ``j = 1..steps``, by explicit Euler or
    the classical fourth-order Runge-Kutta method (``f`` is autonomous, as both BSPM processes are)."""
    h = np.float32(t_end / steps)
    y = y0
    states = []
    for _ in range(steps):
        k1 = f(y)
        if solver == "euler":
            y = y + h * k1
        else:
            k2 = f(y + (h / 2) * k1)
            k3 = f(y + (h / 2) * k2)
            k4 = f(y + h * k3)
            y = y + (h / 6) * (k1 + 2 * k2 + 2 * k3 + k4)
        states.append(y)
    return states


class BSPM(SpectralGraphModel):
    """Blurring-Sharpening Process Model (Choi, Hong, Park and Cho, "Blurring-Sharpening Process
    Models for Collaborative Filtering", SIGIR 2023). No training: a user's binary row is blurred
    over the normalised item-item graph, then sharpened, both as ODEs solved numerically.

    With ``R~ = D_U^-1/2 R D_I^-1/2``, ``P~ = R~^T R~`` (the linear filter) and the ideal low-pass
    filter ``P_I = D_I^-1/2 V V^T D_I^1/2`` of GF-CF (``V``: top-``k`` right singular vectors of
    ``R~``), starting from ``r(0) = r_u``:

    .. math::
        \\text{blurring:}\\quad \\frac{dr(t)}{dt} = -r(t)\\,\\tilde L = r(t)(\\tilde P - I),
        \\qquad t \\in [0, T_b]

        \\text{EM:}\\quad r(T_b) \\leftarrow r(T_b) + \\beta\\, r(0) P_I

        \\text{sharpening:}\\quad \\frac{dr(t)}{dt} = -r(t)\\,\\tilde P,
        \\qquad t \\in [T_b, T_b + T_s]

    and ``s_u = r(T_b + T_s)`` (BSPM-EM, early merge); BSPM-LM (late merge) adds ``beta r(0) P_I``
    after sharpening instead. Blurring is the heat equation on the item graph (``L~ = I - P~`` its
    Laplacian); sharpening runs the same diffusion backwards. The ideal filter's own ODE in the
    paper, ``dr/dt = r (P_I - I)`` over ``[0, 1]`` with one Euler step, is exactly ``r(0) P_I`` and is
    applied in that closed form. Each process is solved with ``K`` explicit Euler or RK4 steps
    (``blur_steps``, ``sharpen_steps``). With the paper's Gowalla settings (one Euler blurring step
    over ``T_b = 1``, ``beta = 0.2``, ``k = 448``, one RK4 sharpening step over ``T_s = 2.5``) the
    scores are ``(r P~ + 0.2 r P_I) p(-2.5 P~)`` with ``p`` the RK4 polynomial
    ``1 + z + z^2/2 + z^3/6 + z^4/24``.

    Implementation: as in :class:`~recforge.models.filters.gf_cf.GFCF`, ``P~`` is never formed
    (each ``y P~`` is two sparse products through ``R~``), and users are scored in blocks; each
    solver stage costs one such product per row.
    """

    name = "bspm"
    task = "ranking"
    config_class = BSPMConfig

    def _fit(self, data: Interactions, options: FitOptions) -> None:
        cfg = self.config
        keep = cfg.n_components if cfg.ideal_weight > 0 else 0
        self._fit_graph(data, keep, seed=options.seed or 0)

    def _filter_block(self, xt: np.ndarray, rows: sp.csr_matrix) -> np.ndarray:
        cfg = self.config

        def blur(y: np.ndarray) -> np.ndarray:
            return self._gram(y) - y

        def sharpen(y: np.ndarray) -> np.ndarray:
            return -self._gram(y)

        ideal = self._ideal(rows, cfg.ideal_weight)
        states = solve_linear_ode(blur, xt, cfg.blur_time, cfg.blur_steps, cfg.blur_solver)
        y = states[-1]
        if cfg.merge == "early":
            y = y + ideal
        if cfg.sharpen_time > 0:
            sharp = solve_linear_ode(sharpen, y, cfg.sharpen_time, cfg.sharpen_steps, cfg.sharpen_solver)
            states += sharp
            y = sharp[-1]
        if cfg.average_states:
            y = np.mean(states, axis=0, dtype=np.float32)
        if cfg.merge == "late":
            y = y + ideal
        return y

"""A simulated play log with implicit signals and a few star ratings, for known-answer checks.

There is no public log small enough to ship that has several behaviour signals *and* a star rating
on the same row (``myanimelist2020-sample`` has the format but 3 users), so the implicit-to-explicit
models are checked on a log whose generative process is known. Everything that comes out of it is
**simulated**: the log's name starts with ``simulated``, so every result row made on it says so.

The generative process (``spec`` fields in brackets), for user ``u`` and item ``i``:

1. **True preference.** ``z_ui = b_u + b_i + p_u . q_i`` with ``b_u ~ N(0, user_bias_std)``,
   ``b_i ~ N(0, item_bias_std)`` and ``p_u, q_i ~ N(0, I / sqrt(n_factors))`` [``n_factors``].
2. **Exposure.** Each user picks ``n_u = min_items + Poisson(mean_items - min_items)`` distinct items,
   with probability proportional to ``pop_i * exp(selection * z_ui)`` (popular and liked items are
   found more; Gumbel top-k), where ``pop_i`` follows a power law [``mean_items``, ``selection``].
3. **Behaviour.** A per-user engagement ``a_u ~ LogNormal(0, engagement_std)`` (heavy and light
   users: raw counts are not comparable across users) and an item length ``L_i ~ LogNormal(0, 0.5)``
   hours; then, with ``e ~ N(0, 1)`` noise of scale ``signal_noise``:

   - ``completion = sigmoid(1.5 z_ui + signal_noise * e1)``: the fraction of the item consumed;
   - ``replays ~ Poisson(0.5 a_u exp(z_ui + signal_noise * e2))``: returns after finishing;
   - ``plays = 1 + replays + Poisson(a_u * completion)``: sessions;
   - ``dwell = L_i (completion + replays) LogNormal(0, signal_noise / 2)``: hours watched.

4. **Rating.** ``r_ui = clip(round(rating_mean + rating_scale * (z_ui + c_u) + rating_noise * e3), 1, 5)``,
   with a user rating style ``c_u ~ N(0, style_std)`` that no behaviour shows (some users rate
   harshly): only the user's other ratings reveal it.
5. **Missing ratings.** A ``cold_user_fraction`` of users never rate; the others rate a row with
   probability ``rated_fraction * (0.6 + 0.8 * |z_ui| / (1 + |z_ui|))`` (strong feelings are rated more:
   missing not at random). A missing rating is NaN in the ``rating`` signal.

:func:`simulate_log` returns a :class:`SimulatedLog`: the :class:`Interactions` (``values`` = plays,
implicit; signals ``plays``, ``replays`` (count), ``dwell`` (duration, hours), ``completion`` (a
fraction in [0, 1]; kind ``count``, as the kinds have no fraction) and ``rating`` (kind ``rating``,
NaN where missing)) plus the hidden truth: every row's true rating and preference, and the cold users.
The same spec (seed included) gives the same log.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from recforge.data.interactions import Interactions
from recforge.data.vocabulary import Vocabulary
from recforge.errors import ConfigError

__all__ = ["SIGNALS", "SimulatedLog", "SimulationSpec", "simulate_log"]

#: The implicit signals of a simulated log and their kinds (the rating signal is ``rating``).
SIGNALS = {"plays": "count", "replays": "count", "dwell": "duration", "completion": "count"}


@dataclass(frozen=True)
class SimulationSpec:
    """What :func:`simulate_log` generates (see the module docstring for the process)."""

    n_users: int = 600
    n_items: int = 400
    mean_items: float = 40.0
    """Mean items per user."""
    min_items: int = 5
    """Fewest items per user."""
    n_factors: int = 4
    user_bias_std: float = 0.5
    item_bias_std: float = 0.5
    selection: float = 0.5
    """How much preference drives exposure (0: items are found by popularity alone)."""
    engagement_std: float = 0.6
    signal_noise: float = 0.5
    rating_mean: float = 3.4
    rating_scale: float = 0.9
    rating_noise: float = 0.35
    style_std: float = 0.5
    rated_fraction: float = 0.3
    """Base probability that a row of a rating user has its rating."""
    cold_user_fraction: float = 0.2
    """Users who rate nothing."""
    seed: int = 0

    def __post_init__(self) -> None:
        checks = [
            (self.n_users >= 2, "n_users", "must be >= 2"),
            (self.n_items >= 2, "n_items", "must be >= 2"),
            (1 <= self.min_items <= self.n_items, "min_items", "must be in [1, n_items]"),
            (self.mean_items >= self.min_items, "mean_items", "must be >= min_items"),
            (self.n_factors >= 1, "n_factors", "must be >= 1"),
            (0 < self.rated_fraction <= 1, "rated_fraction", "must be in (0, 1]"),
            (0 <= self.cold_user_fraction < 1, "cold_user_fraction", "must be in [0, 1)"),
        ]
        for name in ("user_bias_std", "item_bias_std", "selection", "engagement_std", "signal_noise",
                     "rating_scale", "rating_noise", "style_std"):
            checks.append((getattr(self, name) >= 0, name, "must be >= 0"))
        for ok, name, why in checks:
            if not ok:
                raise ConfigError(f"SimulationSpec.{name} = {getattr(self, name)!r}: {why}")

    def label(self) -> str:
        """The log's name: ``simulated-i2e(seed=0, users=600, items=400)``."""
        return f"simulated-i2e(seed={self.seed}, users={self.n_users}, items={self.n_items})"


@dataclass
class SimulatedLog:
    """A simulated log and its hidden truth.

    Attributes:
        interactions: The log as a recommender sees it (signals, ``rating`` NaN where missing).
        true_rating: Every row's rating on the 1-5 scale, observed or not.
        preference: Every row's true preference ``z_ui``.
        rated: Whether the row's rating is observed.
        cold_users: Indices of the users who rate nothing.
        spec: The spec that made it.
    """

    interactions: Interactions
    true_rating: np.ndarray
    preference: np.ndarray
    rated: np.ndarray
    cold_users: np.ndarray
    spec: SimulationSpec = field(default_factory=SimulationSpec)

    def describe(self) -> dict[str, Any]:
        """Counts for reports: rows, users, items, rated rows, cold users, and the spec."""
        return {"name": self.interactions.name, "rows": len(self.interactions),
                "users": self.interactions.n_users, "items": self.interactions.n_items,
                "rated_rows": int(self.rated.sum()), "cold_users": len(self.cold_users), **asdict(self.spec)}


def simulate_log(spec: SimulationSpec | None = None, **overrides: Any) -> SimulatedLog:
    """Generate a seeded play log with implicit signals and missing ratings (see the module docstring).

    Args:
        spec: The generative parameters (default :class:`SimulationSpec`).
        **overrides: Fields of the spec to change (``simulate_log(n_users=200, seed=3)``).
    """
    spec = spec or SimulationSpec()
    if overrides:
        spec = SimulationSpec(**{**asdict(spec), **overrides})
    rng = np.random.default_rng(spec.seed)
    nu, ni, k = spec.n_users, spec.n_items, spec.n_factors
    p = rng.normal(0, 1 / np.sqrt(k), (nu, k))
    q = rng.normal(0, 1 / np.sqrt(k), (ni, k))
    bu = rng.normal(0, spec.user_bias_std, nu)
    bi = rng.normal(0, spec.item_bias_std, ni)
    engagement = rng.lognormal(0.0, spec.engagement_std, nu)
    style = rng.normal(0, spec.style_std, nu)
    length = rng.lognormal(0.0, 0.5, ni)
    log_pop = -0.8 * np.log1p(rng.permutation(ni).astype(np.float64))

    n_per = np.minimum(ni, spec.min_items + rng.poisson(spec.mean_items - spec.min_items, nu))
    users, items = [], []
    for u in range(nu):
        z_row = bu[u] + bi + q @ p[u]
        keys = log_pop + spec.selection * z_row + rng.gumbel(size=ni)
        chosen = np.argpartition(-keys, n_per[u] - 1)[: n_per[u]]
        users.append(np.full(len(chosen), u))
        items.append(np.sort(chosen))
    u_idx = np.concatenate(users)
    i_idx = np.concatenate(items)
    n = len(u_idx)
    z = bu[u_idx] + bi[i_idx] + np.einsum("nk,nk->n", p[u_idx], q[i_idx])

    noise = rng.normal(size=(4, n))
    completion = 1.0 / (1.0 + np.exp(-(1.5 * z + spec.signal_noise * noise[0])))
    replays = rng.poisson(0.5 * engagement[u_idx] * np.exp(z + spec.signal_noise * noise[1]))
    plays = 1 + replays + rng.poisson(engagement[u_idx] * completion)
    dwell = length[i_idx] * (completion + replays) * np.exp(0.5 * spec.signal_noise * noise[2])
    true_rating = np.clip(np.round(spec.rating_mean + spec.rating_scale * (z + style[u_idx])
                                   + spec.rating_noise * noise[3]), 1, 5)

    n_cold = round(spec.cold_user_fraction * nu)
    cold = np.sort(rng.choice(nu, n_cold, replace=False)) if n_cold else np.empty(0, np.int64)
    strength = np.abs(z) / (1.0 + np.abs(z))
    rated = rng.random(n) < np.clip(spec.rated_fraction * (0.6 + 0.8 * strength), 0, 1)
    rated &= ~np.isin(u_idx, cold)
    rating = np.where(rated, true_rating, np.nan)

    data = Interactions(
        u_idx, i_idx, plays.astype(np.float32),
        Vocabulary(np.arange(1, nu + 1), "user"), Vocabulary(np.arange(1, ni + 1), "item"),
        explicit=False, name=spec.label(),
        signals={"plays": plays, "replays": replays, "dwell": dwell, "completion": completion,
                 "rating": rating},
        signal_kinds={**SIGNALS, "rating": "rating"},
    )
    return SimulatedLog(data, true_rating.astype(np.float32), z.astype(np.float32), rated,
                        cold.astype(np.int64),
                        spec)

"""What the hybrids share: building and persisting components, per-row standardisation, weight search.

Components are driven only through the public model API (:meth:`Recommender.score_all`,
:meth:`Recommender.scores_for_history`, the ``scores_history`` capability and
``get_state``/``set_state``), so any registered model can be one; a component that fails, or
that is asked to score a history it declares it cannot, raises.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import scipy.sparse as sp

from recforge.config import FitOptions
from recforge.data.interactions import Interactions
from recforge.models._members import fit_member, make_member, members_from_state, own_state
from recforge.models._members import members_state as parts_state
from recforge.models.base import Recommender

__all__ = ["DEFAULT_CF_MODEL", "component_history_row", "fit_component", "make_component", "own_state",
           "parts_from_state", "parts_state", "resolve", "search", "simplex", "standardise"]

#: the collaborative-filtering model that the name ``"auto"`` stands for (kept for old configs)
DEFAULT_CF_MODEL = "ease"


def resolve(name: str) -> str:
    """A component name as registered: ``"auto"`` is :data:`DEFAULT_CF_MODEL`."""
    return DEFAULT_CF_MODEL if name == "auto" else name


def make_component(name: str, configs: dict[str, Any] | None) -> Recommender:
    """An unfitted component ``name`` with its hyperparameters from ``configs[name]``."""
    return make_member(name, (configs or {}).get(name))


def fit_component(name: str, configs: dict[str, Any] | None, data: Interactions,
                  options: FitOptions) -> Recommender:
    """Build and fit one component (its own ``fit`` applies its feedback rule)."""
    return fit_member(name, (configs or {}).get(name), data, options)


def component_history_row(model: Recommender, item_ids: np.ndarray, values: np.ndarray | None,
                          attributes: dict[str, Any] | None, who: str) -> np.ndarray:
    """One component's scores for an ad-hoc history; NaN for the items it cannot score.

    Raises:
        NotImplementedError: When the component does not score histories (``scores_history``).
    """
    if not model.scores_history:
        raise NotImplementedError(f"{who}: component {model.name!r} cannot score an ad-hoc history "
                                  f"(scores_history is False); choose components that do")
    s = model.scores_for_history(item_ids, values, attributes=attributes)
    return np.where(model.item_known_, s, np.nan)


def parts_from_state(names: list[str], configs: dict[str, Any] | None, state: dict[str, Any]) -> list[Recommender]:
    """Rebuild the components that :func:`parts_state` wrote."""
    return members_from_state([(n, (configs or {}).get(n)) for n in names], state)


def standardise(scores: np.ndarray, method: str = "rank") -> np.ndarray:
    """Put each row of scores on a common scale; non-finite entries get the row's lowest value.

    ``rank``: the fraction of the row's finite scores that are lower (ties: the mean rank), in
    [0, 1), so a component with a few huge scores (EASE, kNN on a short history) cannot drown the
    others; ``minmax``: scaled to [0, 1]; ``z``: z-scores.
    """
    s = np.array(scores, dtype=np.float64)
    fin = np.isfinite(s)
    if method == "rank":
        from scipy.stats import rankdata

        r = rankdata(np.where(fin, s, -np.inf), axis=1, method="average") - 1.0
        low = (~fin).sum(axis=1)  # the non-finite entries take the lowest ranks
        n_fin = fin.sum(axis=1)
        out = np.where(fin, (r - low[:, None]) / np.maximum(n_fin, 1)[:, None], 0.0)
        return out
    if method == "minmax":
        lo = np.where(fin, s, np.inf).min(axis=1)
        hi = np.where(fin, s, -np.inf).max(axis=1)
        span = np.where(np.isfinite(hi - lo) & (hi > lo), hi - lo, 1.0)
        lo = np.where(np.isfinite(lo), lo, 0.0)
        return np.where(fin, (s - lo[:, None]) / span[:, None], 0.0)
    cnt = fin.sum(axis=1)
    z = np.where(fin, s, 0.0)
    mean = z.sum(axis=1) / np.maximum(cnt, 1)
    var = np.where(fin, (z - mean[:, None]) ** 2, 0.0).sum(axis=1) / np.maximum(cnt, 1)
    sd = np.sqrt(var)
    z = np.where(sd[:, None] > 0, (z - mean[:, None]) / np.where(sd > 0, sd, 1.0)[:, None], 0.0)
    low = np.where(fin, z, np.inf).min(axis=1)
    low = np.where(np.isfinite(low), low, 0.0)
    return np.where(fin, z, low[:, None])


def simplex(n: int, steps: int) -> np.ndarray:
    """Every weight vector of ``n`` non-negative multiples of ``1 / steps`` summing to 1, in a fixed order."""
    if n == 1:
        return np.ones((1, 1))
    pts = [c for c in itertools.product(range(steps + 1), repeat=n - 1) if sum(c) <= steps]
    return np.array([[*c, steps - sum(c)] for c in pts], dtype=np.float64) / steps


def search(Z: np.ndarray, truth: sp.csr_matrix, grid: np.ndarray, k: int) -> np.ndarray:
    """The grid row with the best mean NDCG@k of the blend ``sum_c w_c Z[c]`` (ties: the first;
    the grid order is fixed so the result is deterministic)."""
    from recforge.metrics import ndcg_at_k
    from recforge.topk import topk_rows

    best, best_w = -1.0, grid[0]
    Zf = np.where(np.isfinite(Z), Z, -1e9)
    for w in grid:
        s = np.tensordot(w, Zf, axes=1)
        idx, _ = topk_rows(s, k)
        val = float(np.mean(ndcg_at_k(idx, truth, k)))
        if val > best + 1e-12:
            best, best_w = val, w
    return best_w

"""The ``cold-start`` protocol: new users with 0/1/5/10 onboarding ratings, and new items.

(a) **New users.** 20% of the users (seed = the fit seed, 0 by default) are held out of training
entirely; each reveals its ``r`` earliest ratings (``r`` in 0, 1, 5, 10) as onboarding, which
join the training data, and the rest of its ratings are the test set
(:func:`recforge.splits.cold_start_split`). The held-out users are the same at every ``r``. Each
test user ranks every item it has not revealed.

(b) **New items.** 20% of the items are held out of training entirely; every user with a test
rating on them ranks the held-out items only (a model must score them from their features alone).

Reported per scenario: HR@k, NDCG@k (k = 10 by default) and Recall@20 (full ranking, no sampling),
RMSE for rating models (unknown pairs get the model's fallback, as in the rating protocols), and
how many test users or items the model could not score (``n_fallback``). Ranking models learn
from implicit feedback (every rating = 1), rating models from the ratings, as in the other
protocols. Every row carries ``protocol = "cold-start"``, a ``scenario`` and the number of
``revealed`` ratings.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd

from recforge.config import FitOptions
from recforge.data.interactions import Interactions
from recforge import metrics as M
from recforge.evaluation.protocols import Protocol, _fit, _interactions, register_protocol
from recforge.evaluation.results import EvaluationResult
from recforge.models.base import Recommender

NAME = "cold-start"
REVEALS = (0, 1, 5, 10)
FRACTION = 0.2


def _rank_metrics(recs: np.ndarray, truth: Any, k: int) -> dict[str, np.ndarray]:
    return {
        f"HR@{k}": M.hit_rate_at_k(recs, truth, k),
        f"NDCG@{k}": M.ndcg_at_k(recs, truth, k),
        "Recall@20": M.recall_at_k(recs, truth, 20),
    }


def _rmse(fitted: Recommender, test: Interactions) -> float:
    pred = fitted.predict(test.users.ids[test.user_idx], test.items.ids[test.item_idx], fallback="mean")
    return M.rmse(test.values.astype(np.float64), pred)


def evaluate_scenario(
    model: Recommender,
    train: Interactions,
    test: Interactions,
    *,
    k: int,
    options: FitOptions,
    candidates: np.ndarray | None = None,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Fit ``model`` on ``train`` and rank for every user with ``test`` rows.

    Args:
        candidates: Optional boolean mask over item indices to rank from (new items).

    Returns:
        The metric row (means, timings, counts) and the per-user metric arrays.
    """
    fitted, fit_s = _fit(model, train, options)
    t0 = time.perf_counter()
    truth_all = test.csr()
    users = np.flatnonzero(np.diff(truth_all.indptr) > 0)
    depth = max(k, 20)
    recs = np.empty((len(users), depth), dtype=np.int64)
    for s in range(0, len(users), 1024):
        recs[s : s + 1024], _ = fitted.recommend_indices(users[s : s + 1024], depth, exclude_seen=True,
                                                         candidate_mask=candidates)
    per = _rank_metrics(recs, truth_all[users], k)
    row: dict[str, Any] = {m: float(np.mean(v)) if len(v) else float("nan") for m, v in per.items()}
    if model.task == "rating":
        row["RMSE"] = _rmse(fitted, test)
    pred_s = time.perf_counter() - t0
    if candidates is None:
        n_fb = int((~fitted.user_known_[users]).sum())
    else:
        n_fb = int((candidates & ~fitted.item_known_).sum())
    row.update({"fit_seconds": fit_s, "predict_seconds": pred_s, "n_eval": len(users), "n_fallback": n_fb})
    return row, per


def run_cold_start(
    *,
    model: Recommender,
    dataset: Any,
    k: int,
    options: FitOptions,
    label: str,
    progress: bool = False,
    reveals: tuple[int, ...] = REVEALS,
    fraction: float = FRACTION,
    scenarios: tuple[str, ...] = ("new-users", "new-items"),
) -> EvaluationResult:
    """Run the protocol (see the module docstring) for one model; one row per scenario."""
    from recforge.splits import cold_start_split

    data = _interactions(dataset)
    seed = 0 if options.seed is None else int(options.seed)
    rows: list[dict[str, Any]] = []
    per_user: dict[tuple[str, str], np.ndarray] = {}
    base = {"protocol": NAME, "dataset": dataset.name, "model": label, "fold": "mean"}
    jobs: list[tuple[str, int]] = []
    if "new-users" in scenarios:
        jobs += [("new-users", r) for r in reveals]
    if "new-items" in scenarios:
        jobs.append(("new-items", 0))
    if progress:
        from rich.progress import track

        jobs = list(track(jobs, description=f"{label} {NAME}", transient=True))
    for scenario, r in jobs:
        if scenario == "new-users":
            split = cold_start_split(data, fraction, "users", seed=seed, reveal=r)
            cand = None
        else:
            split = cold_start_split(data, fraction, "items", seed=seed)
            cand = np.zeros(data.n_items, dtype=bool)
            cand[split.info["held_out_idx"]] = True
        row, per = evaluate_scenario(model, split.train, split.test, k=k, options=options, candidates=cand)
        rows.append({**base, "scenario": scenario, "revealed": r, **row})
        for m, v in per.items():
            per_user[(label, f"{scenario}/{r}:{m}")] = v
    table = pd.DataFrame(rows)
    notes = [
        f"{NAME}: {int(fraction * 100)}% of users (new-users; revealing their earliest "
        f"{'/'.join(map(str, reveals))} ratings, the rest is test) or of items (new-items; ranked among the "
        f"held-out items only) held out, seed {seed}; full ranking, no sampling"
    ]
    return EvaluationResult(table, per_user, notes)


register_protocol(Protocol(
    NAME, "ranking",
    "20% users held out revealing 0/1/5/10 ratings, and 20% items held out; HR/NDCG@10, Recall@20",
    run_cold_start, 10,
))

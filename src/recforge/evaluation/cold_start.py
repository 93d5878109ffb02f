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
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from recforge import metrics as M
from recforge.config import FitOptions
from recforge.data.interactions import Interactions
from recforge.evaluation.protocols import Protocol, Scored, interactions_of, register_protocol
from recforge.topk import clamp_k

NAME = "cold-start"
REVEALS = (0, 1, 5, 10)
FRACTION = 0.2


def _rank_metrics(recs: np.ndarray, truth: Any, k: int) -> dict[str, np.ndarray]:
    return {
        f"HR@{k}": M.hit_rate_at_k(recs, truth, k),
        f"NDCG@{k}": M.ndcg_at_k(recs, truth, k),
        "Recall@20": M.recall_at_k(recs, truth, 20),
    }


def score_scenario(fitted: Any, test: Interactions, *, k: int,
                   candidates: np.ndarray | None = None) -> Scored:
    """Rank for every user with ``test`` rows (from ``candidates``, a boolean item mask, when given).

    Returns the metric means (and RMSE for a rating model), the per-user metric arrays, the
    scoring time and the counts (``n_eval`` test users, ``n_fallback`` users or candidate items
    the model could not score).
    """
    t0 = time.perf_counter()
    truth_all = test.csr()
    users = np.flatnonzero(np.diff(truth_all.indptr) > 0)
    depth = clamp_k(max(k, 20), len(fitted.items_))
    recs = np.empty((len(users), depth), dtype=np.int64)
    for s in range(0, len(users), 1024):
        recs[s : s + 1024], _ = fitted.recommend_indices(users[s : s + 1024], depth, exclude_seen=True,
                                                         candidate_mask=candidates)
    per = _rank_metrics(recs, truth_all[users], k)
    means: dict[str, float] = {m: float(np.mean(v)) if len(v) else float("nan") for m, v in per.items()}
    if fitted.task == "rating":
        pred = fitted.predict(test.users.ids[test.user_idx], test.items.ids[test.item_idx], fallback="mean")
        means["RMSE"] = M.rmse(test.values.astype(np.float64), pred)
    seconds = time.perf_counter() - t0
    if candidates is None:
        n_fb = int((~fitted.user_known_[users]).sum())
    else:
        n_fb = int((candidates & ~fitted.item_known_).sum())
    return Scored(means, per, seconds, {"n_eval": len(users), "n_fallback": n_fb})


def evaluate_scenario(
    model: Any,
    train: Interactions,
    test: Interactions,
    *,
    k: int,
    options: FitOptions,
    candidates: np.ndarray | None = None,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Fit a fresh clone of ``model`` on ``train`` and rank for every user with ``test`` rows.

    Args:
        candidates: Optional boolean mask over item indices to rank from (new items).

    Returns:
        The metric row (means, timings, counts) and the per-user metric arrays.
    """
    t0 = time.perf_counter()
    fitted = model.clone().fit(train, options)
    fit_s = time.perf_counter() - t0
    scored = score_scenario(fitted, test, k=k, candidates=candidates)
    row = {**scored.metrics, "fit_seconds": fit_s, "predict_seconds": scored.seconds, **scored.counts}
    return row, scored.per_user


@dataclass(frozen=True)
class ColdStart(Protocol):
    """New users revealing ``reveals`` ratings, and new items (see the module docstring).

    Attributes:
        reveals: Onboarding ratings each held-out user reveals, one scenario per value.
        fraction: Share of users (items) held out.
        scenarios: ``"new-users"`` and/or ``"new-items"``.
    """

    reveals: tuple[int, ...] = REVEALS
    fraction: float = FRACTION
    scenarios: tuple[str, ...] = ("new-users", "new-items")

    def splits(self, dataset: Any, seed: int = 0) -> list[Any]:
        from recforge.splits import cold_start_split

        data = interactions_of(dataset)
        out = []
        if "new-users" in self.scenarios:
            for r in self.reveals:
                split = cold_start_split(data, self.fraction, "users", seed=seed, reveal=r)
                split.info.update(scenario="new-users", revealed=r)
                out.append(split)
        if "new-items" in self.scenarios:
            split = cold_start_split(data, self.fraction, "items", seed=seed)
            split.info.update(scenario="new-items", revealed=0)
            out.append(split)
        return out

    def id_columns(self, split: Any, fold: int) -> dict[str, Any]:
        return {"fold": "mean", "scenario": split.info["scenario"], "revealed": split.info["revealed"]}

    def score(self, fitted: Any, split: Any, *, k: int, dataset: Any, seed: int) -> Scored:
        cand = None
        if split.info["scenario"] == "new-items":
            cand = np.zeros(split.train.n_items, dtype=bool)
            cand[split.info["held_out_idx"]] = True
        scored = score_scenario(fitted, split.test, k=k, candidates=cand)
        prefix = f"{split.info['scenario']}/{split.info['revealed']}:"
        return Scored(scored.metrics, {prefix + m: v for m, v in scored.per_user.items()}, scored.seconds,
                      scored.counts)

    def table(self, rows: list[dict[str, Any]]) -> pd.DataFrame:
        return pd.DataFrame(rows)

    def notes(self, seed: int, splits: list[Any]) -> list[str]:
        return [
            f"{NAME}: {int(self.fraction * 100)}% of users (new-users; revealing their earliest "
            f"{'/'.join(map(str, self.reveals))} ratings, the rest is test) or of items (new-items; ranked among "
            f"the held-out items only) held out, seed {seed}; full ranking, no sampling"
        ]


PROTOCOL = register_protocol(ColdStart(
    NAME, "ranking",
    "20% users held out revealing 0/1/5/10 ratings, and 20% items held out; HR/NDCG@10, Recall@20",
    10,
))

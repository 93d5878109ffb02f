"""Named evaluation protocols: every number recforge reports says which one made it.

==================  =================================================================  ==================
name                what                                                               metrics
==================  =================================================================  ==================
``rating-kfold5``   5-fold CV over all ratings, shuffled, seed 0 (scikit-surprise's)   RMSE, MAE
``rating-u1``       ML-100K's predefined u1 split (``rating-u1u5``: all five folds)    RMSE, MAE
``loo-full``        each user's latest interaction held out; rank all unseen items    HR, NDCG, MRR @k
``loo-sampled``     the held-out item against 99 sampled unseen items (NCF protocol)   HR@10, NDCG@10
``ratio-full``      random 80/20 over interactions, seed 0; rank all unseen items      P/R/NDCG/MAP @k, ...
``given-split``     the dataset's published train/test split (Gowalla)                 Recall@20, NDCG@20
``cold-start``      20% of users held out, revealing 0/1/5/10 ratings as onboarding    HR, NDCG @10, R@20
==================  =================================================================  ==================

Ranking protocols treat every interaction as implicit feedback for ranking models (rating models
keep their ratings), exclude each user's training items, and rank in blocks of users so memory
stays bounded (no dense users x items matrix is ever built).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recforge.config import FitOptions
from recforge.data.datasets import Dataset
from recforge.data.sampling import sample_unseen
from recforge.data.interactions import Interactions
from recforge.errors import ConfigError, DataError
from recforge import metrics as M
from recforge.evaluation.results import EvaluationResult
from recforge.models.base import Recommender


@dataclass(frozen=True)
class Protocol:
    """A named, reproducible evaluation procedure."""

    name: str
    task: str
    description: str
    run: Callable[..., EvaluationResult]
    default_k: int = 10


PROTOCOLS: dict[str, Protocol] = {}

#: The protocol a task gets when none is named: the one answer for the CLI, experiments and templates.
#: Each works on any interaction log (rating-u1 needs MovieLens' predefined split, so it is never a default).
DEFAULT_PROTOCOL: dict[str, str] = {"rating": "rating-kfold5", "ranking": "loo-full", "sequence": "loo-full",
                                    "ctr": "ctr-holdout"}


def default_protocol(task: str) -> str:
    """The default protocol name of a model task (``rating``, ``ranking``, ``sequence``, ``ctr``)."""
    if task not in DEFAULT_PROTOCOL:
        raise ConfigError(f"unknown task {task!r}; tasks: {', '.join(DEFAULT_PROTOCOL)}")
    return DEFAULT_PROTOCOL[task]


def register_protocol(protocol: Protocol) -> Protocol:
    """Add a protocol (later modules register theirs, e.g. ``ctr-holdout``)."""
    PROTOCOLS[protocol.name] = protocol
    return protocol


def get_protocol(name: str) -> Protocol:
    _load_plugins()
    if name not in PROTOCOLS:
        raise ConfigError(f"unknown protocol {name!r}; available: {', '.join(sorted(PROTOCOLS))}")
    return PROTOCOLS[name]


def list_protocols() -> list[Protocol]:
    _load_plugins()
    return sorted(PROTOCOLS.values(), key=lambda p: p.name)


def _load_plugins() -> None:
    import importlib

    for mod in ("recforge.evaluation.ctr_protocol", "recforge.evaluation.cold_start"):
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            if exc.name != mod:
                raise


def evaluate(
    model: Recommender,
    data: Dataset | Interactions,
    protocol: str,
    *,
    k: int | None = None,
    options: FitOptions | None = None,
    model_name: str | None = None,
    progress: bool = False,
) -> EvaluationResult:
    """Fit and evaluate ``model`` under a named protocol.

    Args:
        model: A model instance; it is copied (same config) and fitted afresh for every fold.
        data: A registered :class:`Dataset` or any :class:`Interactions`.
        protocol: A protocol name (see :data:`PROTOCOLS`).
        k: List length for ranking metrics (protocol default when None).
        options: Fit options (seed, device, ...); the seed also drives the split where it is random.
        model_name: Label for the result rows (the model's short name by default).
        progress: Show a progress bar over folds.
    """
    proto = get_protocol(protocol)
    if k is not None and (not isinstance(k, (int, np.integer)) or k <= 0):
        raise ConfigError(f"k must be a positive integer, got {k!r}")
    ds = data if isinstance(data, Dataset) else Dataset(data.name, "rating" if data.explicit else "ranking", data)
    return proto.run(
        model=model, dataset=ds, k=k or proto.default_k, options=options or FitOptions(),
        label=model_name or model.name, progress=progress,
    )


# ---------------------------------------------------------------------------------------- helpers
def _fresh(model: Recommender) -> Recommender:
    return type(model)(model.config)


def _interactions(ds: Dataset) -> Interactions:
    if ds.interactions is None:
        raise DataError(f"dataset {ds.name!r} has no user-item interactions (it is a CTR dataset)")
    return ds.interactions


def _fit(model: Recommender, train: Interactions, options: FitOptions) -> tuple[Recommender, float]:
    if model.task != "rating":
        train = train.to_implicit()
    t0 = time.perf_counter()
    fitted = _fresh(model).fit(train, options)
    return fitted, time.perf_counter() - t0


def _rows_with_mean(rows: list[dict[str, Any]]) -> pd.DataFrame:
    df = pd.DataFrame(rows)
    if len(df) > 1 or (len(df) and df["fold"].iloc[0] != "mean"):
        mean = df.drop(columns=["protocol", "dataset", "model", "fold"]).mean(numeric_only=True)
        mean_row = {**{c: df[c].iloc[0] for c in ("protocol", "dataset", "model")}, "fold": "mean", **mean}
        df = pd.concat([df, pd.DataFrame([mean_row])], ignore_index=True)
    df["fold"] = df["fold"].astype(str)
    return df


def _progress(items: list[Any], enabled: bool, description: str) -> Any:
    if not enabled:
        return items
    from rich.progress import track

    return track(items, description=description, transient=True)


# ---------------------------------------------------------------------------------------- rating
def _rating_folds(model: Recommender, ds: Dataset, splits: list[Any], proto: str, options: FitOptions,
                  label: str, progress: bool) -> EvaluationResult:
    if model.task != "rating":
        raise ConfigError(f"protocol {proto!r} needs a rating model; {model.name!r} is a {model.task} model")
    rows = []
    errs: list[np.ndarray] = []
    for fold, split in enumerate(_progress(splits, progress, f"{label} {proto}")):
        fitted, fit_s = _fit(model, split.train, options)
        t0 = time.perf_counter()
        test = split.test
        pred = fitted.predict(test.users.ids[test.user_idx], test.items.ids[test.item_idx], fallback="mean")
        pred_s = time.perf_counter() - t0
        truth = test.values.astype(np.float64)
        errs.append(np.abs(pred - truth))
        rows.append({
            "protocol": proto, "dataset": ds.name, "model": label, "fold": fold + 1,
            "RMSE": M.rmse(truth, pred), "MAE": M.mae(truth, pred), "fit_seconds": fit_s,
            "predict_seconds": pred_s, "n_eval": len(truth), "n_fallback": fitted.n_impossible_last_,
        })
    per = {(label, "abs_error"): np.concatenate(errs)}
    return EvaluationResult(_rows_with_mean(rows), per)


def _run_kfold(*, model, dataset, k, options, label, progress) -> EvaluationResult:
    from recforge.splits import kfold

    seed = 0 if options.seed is None else options.seed
    return _rating_folds(model, dataset, kfold(_interactions(dataset), 5, seed=seed), "rating-kfold5",
                         options, label, progress)


def _run_u1(*, model, dataset, k, options, label, progress) -> EvaluationResult:
    return _rating_folds(model, dataset, [dataset.split("u1")], "rating-u1", options, label, progress)


def _run_u1u5(*, model, dataset, k, options, label, progress) -> EvaluationResult:
    splits = [dataset.split(f"u{j}") for j in range(1, 6)]
    return _rating_folds(model, dataset, splits, "rating-u1u5", options, label, progress)


# ---------------------------------------------------------------------------------------- ranking
RANKING_METRICS = {
    "HR": M.hit_rate_at_k,
    "Precision": M.precision_at_k,
    "Recall": M.recall_at_k,
    "NDCG": M.ndcg_at_k,
    "MAP": M.average_precision_at_k,
    "MRR": M.reciprocal_rank_at_k,
}


def full_ranking(
    fitted: Recommender, test: Interactions, k: int, metrics: tuple[str, ...], *, block: int = 2048
) -> tuple[dict[str, np.ndarray], np.ndarray, int]:
    """Top-k of every test user over all unseen items, scored against the user's test items.

    Returns per-user metric arrays, the (n_test_users, k) recommendation matrix (item indices)
    and the number of test users the model could not score (popularity fallback).
    """
    truth_all = test.csr()
    users = np.flatnonzero(np.diff(truth_all.indptr) > 0)
    recs = np.empty((len(users), k), dtype=np.int64)
    for s in range(0, len(users), block):
        u = users[s : s + block]
        recs[s : s + block], _ = fitted.recommend_indices(u, k, exclude_seen=True)
    truth = truth_all[users]
    out = {f"{m}@{k}": RANKING_METRICS[m](recs, truth, k) for m in metrics}
    n_fb = int((~fitted.user_known_[users]).sum())
    return out, recs, n_fb


def _ranking_split(model, ds, split, proto, k, options, label, metrics, extra=True, fold=1):
    fitted, fit_s = _fit(model, split.train, options)
    t0 = time.perf_counter()
    per, recs, n_fb = full_ranking(fitted, split.test, k, metrics)
    pred_s = time.perf_counter() - t0
    row: dict[str, Any] = {"protocol": proto, "dataset": ds.name, "model": label, "fold": fold}
    row.update({m: float(np.nanmean(v)) for m, v in per.items()})
    if extra:
        pop = split.train.item_counts().astype(np.float64)
        row[f"Coverage@{k}"] = M.catalog_coverage(recs, split.train.n_items)
        row[f"Novelty@{k}"] = float(np.nanmean(M.novelty(recs, pop, split.train.n_users)))
        row[f"AvgPop@{k}"] = float(np.nanmean(M.average_popularity(recs, pop)))
    row.update({"fit_seconds": fit_s, "predict_seconds": pred_s, "n_eval": len(recs), "n_fallback": n_fb})
    return row, {(label, m): v for m, v in per.items()}


def _run_loo_full(*, model, dataset, k, options, label, progress) -> EvaluationResult:
    from recforge.splits import leave_one_out

    split = leave_one_out(_interactions(dataset))
    row, per = _ranking_split(model, dataset, split, "loo-full", k, options, label, ("HR", "NDCG", "MRR"),
                              extra=False)
    return EvaluationResult(_rows_with_mean([row]), per)


def _run_ratio_full(*, model, dataset, k, options, label, progress) -> EvaluationResult:
    from recforge.splits import random_split

    seed = 0 if options.seed is None else options.seed
    split = random_split(_interactions(dataset), test_fraction=0.2, seed=seed)
    row, per = _ranking_split(model, dataset, split, "ratio-full", k, options, label,
                              ("HR", "Precision", "Recall", "NDCG", "MAP"))
    return EvaluationResult(_rows_with_mean([row]), per, [f"ratio-full: random 80/20 over interactions, seed {seed}"])


def _run_given(*, model, dataset, k, options, label, progress) -> EvaluationResult:
    names = dataset.split_names
    if not names:
        raise DataError(f"dataset {dataset.name!r} has no published split; use loo-full or ratio-full")
    split = dataset.split("given" if "given" in names else names[0])
    row, per = _ranking_split(model, dataset, split, "given-split", k, options, label,
                              ("Recall", "NDCG", "Precision", "HR"))
    return EvaluationResult(_rows_with_mean([row]), per)


def sampled_ranks(fitted: Recommender, data: Interactions, test: Interactions, n_negatives: int = 99,
                  seed: int = 0) -> np.ndarray:
    """``loo-sampled``: each test item's rank among ``n_negatives`` items the user never
    interacted with in ``data`` (sampled with ``seed``). Ties count against the test item, so a
    constant scorer is not rewarded; unscorable pairs rank last."""
    cand = sample_negatives(data.csr(), test.user_idx, n_negatives, seed)
    items = np.concatenate([test.item_idx[:, None], cand], axis=1)
    users = np.repeat(test.user_idx, items.shape[1])
    scores = np.full(users.shape, np.nan)
    known = fitted.user_known_[users] & fitted.item_known_[items.ravel()]
    scores[known] = fitted._score_pairs(users[known].astype(np.int64), items.ravel()[known].astype(np.int64))
    scores = scores.reshape(items.shape)
    scores = np.where(np.isnan(scores), -np.inf, scores)
    return (scores[:, 1:] >= scores[:, :1]).sum(axis=1)


def _run_loo_sampled(*, model, dataset, k, options, label, progress, n_negatives: int = 99) -> EvaluationResult:
    from recforge.splits import leave_one_out

    data = _interactions(dataset)
    split = leave_one_out(data)
    fitted, fit_s = _fit(model, split.train, options)
    t0 = time.perf_counter()
    test = split.test
    seed = 0 if options.seed is None else options.seed
    rank = sampled_ranks(fitted, data, test, n_negatives, seed)
    hit = rank < k
    ndcg = np.where(hit, 1.0 / np.log2(rank + 2.0), 0.0)
    pred_s = time.perf_counter() - t0
    row = {"protocol": "loo-sampled", "dataset": dataset.name, "model": label, "fold": 1,
           f"HR@{k} (sampled)": float(hit.mean()), f"NDCG@{k} (sampled)": float(ndcg.mean()),
           "fit_seconds": fit_s, "predict_seconds": pred_s, "n_eval": len(hit),
           "n_fallback": int((~fitted.user_known_[test.user_idx]).sum())}
    per = {(label, f"HR@{k} (sampled)"): hit.astype(float), (label, f"NDCG@{k} (sampled)"): ndcg}
    return EvaluationResult(_rows_with_mean([row]), per,
                            [f"loo-sampled: sampled metrics, {n_negatives} negatives per user, seed {seed}"])


def sample_negatives(seen: sp.csr_matrix, users: np.ndarray, n: int, seed: int) -> np.ndarray:
    """``n`` distinct items per user, uniformly among items the user never interacted with."""
    return sample_unseen(seen, users, n, np.random.default_rng(seed), replace=False)


for _p in (
    Protocol("rating-kfold5", "rating", "5-fold CV over all ratings, shuffled, seed 0", _run_kfold),
    Protocol("rating-u1", "rating", "ML-100K predefined u1.base/u1.test", _run_u1),
    Protocol("rating-u1u5", "rating", "ML-100K predefined u1..u5 folds, averaged", _run_u1u5),
    Protocol("loo-full", "ranking", "latest interaction per user held out; full ranking of unseen items",
             _run_loo_full, 10),
    Protocol("loo-sampled", "ranking", "latest interaction vs 99 sampled unseen items (sampled metrics)",
             _run_loo_sampled, 10),
    Protocol("ratio-full", "ranking", "random 80/20 over interactions; full ranking of unseen items",
             _run_ratio_full, 20),
    Protocol("given-split", "ranking", "the dataset's published train/test split; full ranking",
             _run_given, 20),
):
    register_protocol(_p)

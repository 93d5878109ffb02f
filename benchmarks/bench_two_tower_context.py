"""The context two-tower against the context-free two-tower, ML-100K ``loo-full``.

Each user's latest rating is held out; the model ranks all unseen items (k = 10). The context of a
training row is the user's previous ``n`` ratings in time (items, the rating, hours since each);
at test time it is the user's last ``n`` training ratings. The linear head is trained on a utility
target (the rating itself, unrated items utility 0) and also scored as a regression: RMSE/MAE of
its prediction for the held-out rating. ``python -m benchmarks.bench_two_tower_context [--seeds 0 1]``;
the fragment is ``results/two_tower_context.md``.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
import warnings
from typing import Any

import numpy as np

from benchmarks.common import machine, md_table, write_fragment
from recforge.config import FitOptions
from recforge.data import load
from recforge.evaluation.protocols import full_ranking
from recforge.models.registry import make_model
from recforge.splits import leave_one_out

#: (label, model, params, trained on ratings (True) or their implicit copy)
CASES: list[tuple[str, str, dict[str, Any], bool]] = [
    ("two-tower, no history (context-free)", "two-tower", {"history_length": 0}, False),
    ("two-tower, mean of the last 20 items (defaults)", "two-tower", {}, False),
    ("two-tower-context, sigmoid, no context (static only)", "two-tower-context", {"context_length": 0}, True),
    ("two-tower-context, sigmoid, last 10 (defaults)", "two-tower-context", {}, True),
    ("two-tower-context, linear (utility = rating), no context", "two-tower-context",
     {"head": "linear", "context_length": 0}, True),
    ("two-tower-context, linear (utility = rating), last 10", "two-tower-context", {"head": "linear"}, True),
    ("two-tower-context, linear (utility = rating), last 10, no sampled items", "two-tower-context",
     {"head": "linear", "negatives": 0}, True),
]


def run_case(name: str, params: dict[str, Any], ratings: bool, split: Any, seeds: list[int]) -> dict[str, Any]:
    train = split.train if ratings else split.train.to_implicit()
    test = split.test
    hr, ndcg, fit, rmse, mae = [], [], [], [], []
    for seed in seeds:
        model = make_model(name, params)
        t0 = time.perf_counter()
        model.fit(train, FitOptions(seed=seed, threads=1))
        fit.append(time.perf_counter() - t0)
        per, _, _ = full_ranking(model, test, 10, ("HR", "NDCG"))
        hr.append(float(np.nanmean(per["HR@10"])))
        ndcg.append(float(np.nanmean(per["NDCG@10"])))
        if params.get("head") == "linear":
            pred = model.score(test.users.ids[test.user_idx], test.items.ids[test.item_idx])
            err = pred - test.values
            rmse.append(float(np.sqrt(np.nanmean(err**2))))
            mae.append(float(np.nanmean(np.abs(err))))
        print(f"  {name} {params} seed {seed}: HR@10 {hr[-1]:.4f} NDCG@10 {ndcg[-1]:.4f} "
              f"({fit[-1]:.1f} s){' RMSE %.4f MAE %.4f' % (rmse[-1], mae[-1]) if rmse else ''}", flush=True)
    return {"HR@10": float(np.mean(hr)), "NDCG@10": float(np.mean(ndcg)), "HR@10 min-max": f"{min(hr):.4f}-{max(hr):.4f}",
            "held-out rating RMSE": float(np.mean(rmse)) if rmse else "",
            "MAE": float(np.mean(mae)) if mae else "", "fit s (median)": statistics.median(fit)}


def case_from_log(path: str, name: str, params: dict[str, Any]) -> tuple[list[int], dict[str, Any]] | None:
    """One case's per-seed lines from a run's output (``--from-log``), folded as :func:`run_case` does."""
    head = f"  {name} {params} seed "
    pat = re.compile(r"(\d+): HR@10 ([\d.]+) NDCG@10 ([\d.]+) \(([\d.]+) s\)(?: RMSE ([\d.]+))?(?: MAE ([\d.]+))?")
    seeds, hr, ndcg, fit, rmse, mae = [], [], [], [], [], []
    for line in open(path, encoding="utf-8"):
        if line.startswith(head) and (m := pat.match(line[len(head):])):
            seeds.append(int(m[1]))
            hr.append(float(m[2]))
            ndcg.append(float(m[3]))
            fit.append(float(m[4]))
            if m[5]:
                rmse.append(float(m[5]))
            if m[6]:
                mae.append(float(m[6]))
    if not hr:
        return None
    return seeds, {"HR@10": float(np.mean(hr)), "NDCG@10": float(np.mean(ndcg)),
                   "HR@10 min-max": f"{min(hr):.4f}-{max(hr):.4f}",
                   "held-out rating RMSE": float(np.mean(rmse)) if rmse else "", "MAE": float(np.mean(mae)) if mae else "",
                   "fit s (median)": statistics.median(fit)}


def main(argv: list[str] | None = None) -> str:
    ap = argparse.ArgumentParser(prog="bench_two_tower_context")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--epochs", type=int, nargs="+", default=[5], help="epochs of the two-tower-context rows "
                    "(several: each row for each)")
    ap.add_argument("--quick", action="store_true", help="one seed")
    ap.add_argument("--from-log", help="write the fragment from the output of an interrupted run")
    ap.add_argument("--cases", type=int, nargs="+", help="run only these CASES (indices from 0)")
    args, _ = ap.parse_known_args(argv)
    seeds = args.seeds[:1] if args.quick else args.seeds
    warnings.simplefilter("ignore")
    data = load("ml-100k").interactions
    split = leave_one_out(data)
    rows = []
    missing = []
    runs = []
    for index, (label, name, params, ratings) in enumerate(CASES):
        if args.cases is not None and index not in args.cases and not args.from_log:
            continue
        if name != "two-tower-context":
            runs.append((label, name, params, ratings))
            continue
        runs += [(f"{label}, {e} epochs", name, {"epochs": e, **params}, ratings) for e in args.epochs]
    for label, name, params, ratings in runs:
        if args.from_log:
            got = case_from_log(args.from_log, name, params)
            if got is None:
                missing.append(label)
                continue
            seeds, result = got
        else:
            result = run_case(name, params, ratings, split, seeds)
        rows.append({"protocol": "loo-full (ML-100K, k=10)", "model": label, **result})
    # the regression yardstick: the training mean for every held-out rating
    err = float(split.train.values.mean()) - split.test.values.astype(float)
    rows.append({"protocol": "loo-full (ML-100K, k=10)", "model": "reference: training mean rating (no ranking)",
                 "HR@10": "", "NDCG@10": "", "HR@10 min-max": "", "held-out rating RMSE": float(np.sqrt(np.mean(err**2))),
                 "MAE": float(np.mean(np.abs(err))), "fit s (median)": ""})
    text = (
        "## Context two-tower (ML-100K `loo-full`)\n\n"
        "Each user's latest rating held out, all unseen items ranked (k = 10), the same split for every row; "
        f"seed(s) {', '.join(map(str, seeds))} (mean and min-max of HR@10 over them), one torch thread, defaults "
        f"otherwise (two-tower-context: 64-d static embeddings, tower 128, 4 sampled items per rating, static "
        f"dropout 0.5, 20 epochs by default; rows at 5 epochs were what the shared machine, ~20x slower than idle, "
        f"allowed first). The two-tower rows learn from the implicit copy (every rating a click, in-batch "
        "softmax); two-tower-context reads the ratings: the context of a training row is its user's previous 10 "
        "ratings in time (item, standardised rating, hours since each), at test time the user's last 10 training "
        "ratings. The sigmoid head is click/no-click (BCE against sampled items); the linear head regresses a "
        "utility, here the rating (sampled unrated items 0), and its RMSE/MAE are those of its prediction for the "
        "held-out rating. `python -m benchmarks.bench_two_tower_context --epochs 5 20`"
        + (" (this table: runs of `--cases` subsets at different machine loads, assembled with `--from-log "
           "benchmarks/results/two_tower_context.log`, their combined output; fit times of different runs do "
           "not compare)" if args.from_log else "") + ". Fit times are wall seconds on a shared, "
        "loaded machine (other jobs ran at the same time): compare rows of one run only."
        + (f" Not run (time on the loaded machine): {'; '.join(missing)}." if missing else "") + "\n\n"
        + md_table(rows) + f"\n\n_Measured on {machine()}._\n"
    )
    write_fragment("two_tower_context", text)
    print(text)
    return text


if __name__ == "__main__":
    main(sys.argv[1:])

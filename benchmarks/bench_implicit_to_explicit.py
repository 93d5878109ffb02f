"""Implicit-to-explicit ratings on the simulated play log: accuracy against the baselines, and the
cold-start route.

``python -m benchmarks.bench_implicit_to_explicit`` (``--quick``: one simulator seed); the fragment is
``results/implicit_to_explicit.md``. Every number is on **simulated** data
(:mod:`recforge.data.simulate`, whose generative process is documented there): no public log with
behaviour signals and star ratings on the same rows is small enough to ship
(``myanimelist2020-sample`` has the format but 3 users, so it is used in tests only).

1. ``rating-masked`` (20% of the observed ratings hidden, rows and signals kept) and
   ``rating-masked-users`` (every rating of 20% of the raters hidden): RMSE/MAE of the two models
   against the global mean, the user-item bias baseline and SVD, which learn from the observed
   ratings only.
2. The cold-start route: the simulator's users who never rated (20%) lose a quarter of their rows
   entirely (rows and signals: pairs the downstream model must generalise to); a rating model
   (``svd``, ``bias``) is trained on the observed ratings only, or on the log completed by an
   implicit-to-explicit model (``fill_ratings``: observed ratings kept, the others predicted), and
   scored on the held-out pairs' true ratings. "true ratings" (the simulator's hidden ratings of
   the cold users' rows) is the ceiling.
"""

from __future__ import annotations

import statistics
import sys
import time
import warnings
from typing import Any

import numpy as np

from benchmarks.common import machine, md_table, write_fragment
from recforge.config import FitOptions
from recforge.data.interactions import Interactions
from recforge.data.simulate import SimulatedLog, simulate_log
from recforge.evaluation.masked_ratings import observed_ratings
from recforge.evaluation.protocols import evaluate
from recforge.models.registry import make_model

MODELS = ("global-mean", "bias", "svd", "implicit-to-explicit-linear", "implicit-to-explicit")
PROTOCOLS = ("rating-masked", "rating-masked-users")
FILLERS = ("implicit-to-explicit-linear", "implicit-to-explicit")
DOWNSTREAM = ("svd", "bias")


def _sd(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def accuracy_rows(seeds: list[int]) -> list[dict[str, Any]]:
    """Section 1: every model under both protocols, one simulated log per seed."""
    got: dict[tuple[str, str], dict[str, list[float]]] = {}
    for seed in seeds:
        data = simulate_log(seed=seed).interactions
        for proto in PROTOCOLS:
            for name in MODELS:
                row = evaluate(make_model(name), data, proto, options=FitOptions(seed=0)).table.iloc[0]
                acc = got.setdefault((proto, name), {"RMSE": [], "MAE": [], "fit": [], "fallback": []})
                acc["RMSE"].append(float(row["RMSE"]))
                acc["MAE"].append(float(row["MAE"]))
                acc["fit"].append(float(row["fit_seconds"]))
                acc["fallback"].append(float(row["n_fallback"]) / float(row["n_eval"]))
    rows = []
    for (proto, name), acc in got.items():
        rows.append({"data": "simulated", "protocol": proto, "model": name,
                     "RMSE": statistics.mean(acc["RMSE"]), "RMSE sd": _sd(acc["RMSE"]),
                     "MAE": statistics.mean(acc["MAE"]), "fallback share": statistics.mean(acc["fallback"]),
                     "fit s (median)": statistics.median(acc["fit"])})
    return rows


def cold_route_split(sim: SimulatedLog, holdout: float = 0.25, seed: int = 0
                     ) -> tuple[Interactions, Interactions]:
    """``(train log, held-out pairs)``: ``holdout`` of each never-rating user's rows removed from the
    log (rows and signals), their true ratings as the held-out values."""
    data = sim.interactions
    rng = np.random.default_rng(seed)
    cold_rows = np.flatnonzero(np.isin(data.user_idx, sim.cold_users))
    out = np.zeros(len(data), bool)
    for u in sim.cold_users:
        rows = cold_rows[data.user_idx[cold_rows] == u]
        n = max(1, round(holdout * len(rows)))
        out[rng.choice(rows, n, replace=False)] = True
    test = data.subset(out)
    test.values = sim.true_rating[out]
    test.explicit = True
    return data.subset(~out), test


def _score(model: Any, test: Interactions) -> tuple[float, float]:
    pred = model.predict(test.users.ids[test.user_idx], test.items.ids[test.item_idx], fallback="mean")
    err = pred - test.values
    return float(np.sqrt(np.mean(err**2))), float(np.mean(np.abs(err)))


def cold_route_rows(seeds: list[int]) -> list[dict[str, Any]]:
    """Section 2: a rating model trained without, with predicted, and with true ratings for the users
    who never rated."""
    got: dict[tuple[str, str], dict[str, list[float]]] = {}
    for seed in seeds:
        sim = simulate_log(seed=seed)
        train, test = cold_route_split(sim, seed=seed)
        opts = FitOptions(seed=0)
        sources: dict[str, Interactions] = {"observed ratings only": observed_ratings(train)}
        for filler in FILLERS:
            t0 = time.perf_counter()
            sources[f"+ {filler} ratings"] = make_model(filler).fit(train, opts).fill_ratings(train)
            got.setdefault(("fill", filler), {"s": []})["s"].append(time.perf_counter() - t0)
        # the ceiling: the cold users' rows carry their (hidden) true ratings
        keep = ~np.isin(sim.interactions.pair_keys(), test.pair_keys())
        truth = sim.interactions.subset(keep)
        r = np.where(np.isin(truth.user_idx, sim.cold_users), sim.true_rating[keep], truth.signals["rating"])
        ceiling = truth.subset(np.isfinite(r))
        ceiling.values = r[np.isfinite(r)].astype(np.float32)
        ceiling.explicit = True
        sources["true ratings of the cold users' rows (ceiling)"] = ceiling
        for down in DOWNSTREAM:
            for label, log in sources.items():
                rmse, mae = _score(make_model(down).fit(log, opts), test)
                acc = got.setdefault((down, label), {"RMSE": [], "MAE": []})
                acc["RMSE"].append(rmse)
                acc["MAE"].append(mae)
        for filler in FILLERS:  # the filler itself on the held-out pairs (no row: signals 0)
            rmse, mae = _score(make_model(filler).fit(train, opts), test)
            acc = got.setdefault((filler, "(itself, no downstream model)"), {"RMSE": [], "MAE": []})
            acc["RMSE"].append(rmse)
            acc["MAE"].append(mae)
    rows = []
    for (down, label), acc in got.items():
        if down == "fill":
            continue
        rows.append({"data": "simulated", "rating model": down, "trained on": label,
                     "RMSE": statistics.mean(acc["RMSE"]), "RMSE sd": _sd(acc["RMSE"]),
                     "MAE": statistics.mean(acc["MAE"])})
    return rows


def main(argv: list[str] | None = None) -> str:
    warnings.simplefilter("ignore")
    quick = "--quick" in (argv or [])
    seeds = [0] if quick else [0, 1, 2]
    t0 = time.perf_counter()
    acc = accuracy_rows(seeds)
    route = cold_route_rows(seeds)
    spec = simulate_log(seed=0).describe()
    text = (
        "## Implicit-to-explicit ratings (simulated play log)\n\n"
        "**Simulated data** (`recforge.data.simulate`, generative process in its docstring: "
        "true preference -> "
        "plays, replays, dwell, completion with noise; ratings 1-5 with a per-user rating style; "
        "ratings missing "
        "not at random; 20% of users never rate). "
        f"Per seed: {spec['users']} users, {spec['items']} items, ~{spec['rows']:,} rows, "
        f"~{spec['rated_rows']:,} "
        f"observed ratings (seed 0). Mean over simulator seeds {', '.join(map(str, seeds))} "
        "(sd: across seeds); "
        "models with defaults, fit seed 0. `python -m benchmarks.bench_implicit_to_explicit`.\n\n"
        "### Hidden ratings: `rating-masked` and `rating-masked-users`\n\n"
        "`rating-masked` hides 20% of the observed ratings, `rating-masked-users` every rating of 20% "
        "of the raters; "
        "the rows and their signals stay in training. `global-mean`, `bias` and `svd` learn from the "
        "observed ratings "
        "(a hidden user is unknown to them: the fallback share); the implicit-to-explicit models from "
        "the whole log.\n\n"
        + md_table(acc) + "\n\n"
        "### The cold-start route: predicted ratings feeding a rating model\n\n"
        "The simulator's users who never rated lose 25% of their rows (rows and signals gone); "
        "the rating model is "
        "trained on the observed ratings only, on the log completed by an implicit-to-explicit model "
        "(`fill_ratings`: observed ratings kept, the missing ones predicted), or on the cold users' "
        "true ratings "
        "(ceiling), and scored on the held-out pairs' true ratings (cold users only).\n\n"
        + md_table(route) + "\n\n"
        f"_Measured on {machine()}; the machine is shared with other jobs (fit times are indicative only; "
        f"compare within the table). Whole benchmark: {time.perf_counter() - t0:.0f} s._\n"
    )
    write_fragment("implicit_to_explicit", text)
    print(text)
    return text


if __name__ == "__main__":
    main(sys.argv[1:])

"""The main job, end to end on ML-100K (``make demo``).

Stats and plots; every available model evaluated on ``rating-kfold5`` (rating models) or
``loo-full`` (ranking models); one result table printed and saved; top-10 recommendations with
movie titles for a few users.
"""

from __future__ import annotations

import os

# numba and torch each bring an OpenMP runtime; busy-waiting threads of one starve the other
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from recforge.config import FitOptions
from recforge.data import load
from recforge.data.stats import compute_stats, plot_stats
from recforge.evaluation.protocols import evaluate
from recforge.evaluation.results import EvaluationResult
from recforge.models.registry import get_model_class, list_models

# (short name, hyperparameters, protocol): the demo line-up; missing families are skipped
LINEUP: list[tuple[str, dict, str]] = [
    ("global-mean", {}, "rating-kfold5"),
    ("bias", {}, "rating-kfold5"),
    ("svd", {}, "rating-kfold5"),
    ("svdpp", {}, "rating-kfold5"),
    ("knn-baseline", {}, "rating-kfold5"),
    ("random", {}, "loo-full"),
    ("popularity", {}, "loo-full"),
    ("item-knn-implicit", {}, "loo-full"),
    ("ease", {}, "loo-full"),
    ("slim", {}, "loo-full"),
    ("ials", {}, "loo-full"),
    ("bpr", {}, "loo-full"),
    ("bias", {}, "rating-u1"),
    ("mf-torch", {}, "rating-u1"),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output", default="demo-output", type=Path)
    parser.add_argument("--users", default="1,2,3", help="comma-separated raw user ids to recommend for")
    args = parser.parse_args(argv)
    console = Console()
    t_start = time.perf_counter()
    out: Path = args.output
    out.mkdir(parents=True, exist_ok=True)

    ds = load("ml-100k")
    data = ds.interactions
    st = compute_stats(data)
    console.rule("[bold]ML-100K")
    console.print(
        f"{st.n_users} users, {st.n_items} items, {st.n_interactions:,} ratings, sparsity {st.sparsity:.4f}; "
        f"ratings {st.rating_distribution}"
    )
    for p in plot_stats(data, out / "plots"):
        console.print(f"plot: {p}")

    available = {e.name for e in list_models()}
    results = []
    console.rule("[bold]Evaluation")
    for name, params, protocol in LINEUP:
        if name not in available:
            continue
        model = get_model_class(name)(params)
        t0 = time.perf_counter()
        res = evaluate(model, ds, protocol, options=FitOptions(seed=0))
        console.print(f"{name:>18} on {protocol:<14} {time.perf_counter() - t0:6.1f} s")
        results.append(res)
    table = EvaluationResult.concat(results)
    table.save(out / "results")
    for protocol in dict.fromkeys(r.summary["protocol"].iloc[0] for r in results):
        summary = table.summary[table.summary["protocol"] == protocol].dropna(axis=1, how="all")
        summary = summary.drop(columns=["protocol", "dataset", "fold", "n_eval", "n_fallback"], errors="ignore")
        summary = summary.rename(columns={"fit_seconds": "fit s", "predict_seconds": "predict s"})
        tbl = Table(*summary.columns, title=f"ML-100K, protocol {protocol}")
        for rec in summary.to_dict(orient="records"):
            tbl.add_row(*[f"{v:.4f}" if isinstance(v, float) else str(v) for v in rec.values()])
        console.print(tbl)
    console.print(f"results saved: {out / 'results'}.csv/.json/.md")

    console.rule("[bold]Top-10 recommendations")
    best = _best_ranking_model(table, available)
    model = get_model_class(best)({}).fit(data, FitOptions(seed=0))
    titles = data.item_features["title"]
    users = [int(u) for u in args.users.split(",")]
    ids, scores = model.recommend(users, k=10)
    for row, u in enumerate(users):
        tbl = Table("rank", "movie", "score", title=f"user {u} ({best})")
        for rank, (item, sc) in enumerate(zip(ids[row], scores[row], strict=True), start=1):
            tbl.add_row(str(rank), str(titles.loc[item]), f"{sc:.3f}")
        console.print(tbl)
    _cold_start_scene(console, ds)
    _serving_hint(console)
    console.print(f"demo finished in {time.perf_counter() - t_start:.1f} s")
    console.print("explore it in the browser: recforge ui --dataset ml-100k", highlight=False, markup=False)
    return 0


def _cold_start_scene(console: Console, ds) -> None:
    """A new user states constraints, then rates five movies: the list changes without refitting."""
    available = {e.name for e in list_models()}
    if not {"knowledge", "hybrid-switching"} <= available:
        return
    console.rule("[bold]Cold start: a new user")
    data = ds.interactions
    titles = data.item_features["title"]
    knowledge = get_model_class("knowledge")({}).fit(data, FitOptions(seed=0))
    wanted = {"genres": ["Sci-Fi"], "year_min": 1990, "min_ratings": 20}
    first = knowledge.recommend_for_constraints(wanted, k=5)
    relaxed = f" (relaxed: {', '.join(first.relaxed)})" if first.relaxed else ""
    console.print(f"states {wanted}: {first.n_matching} movies qualify{relaxed}")
    for rank, item in enumerate(first.item_ids, start=1):
        console.print(f"  {rank}. {titles.loc[item]}")
    # a history this short goes to the switching hybrid's cold model (onboarding kNN: what users
    # who started with the same movies went on to watch); no refit
    hybrid = get_model_class("hybrid-switching")({}).fit(data, FitOptions(seed=0))
    rated = {50: 5, 181: 5, 172: 5, 271: 2, 258: 4}
    console.print("then rates " + ", ".join(f"{titles.loc[i]}={v}" for i, v in rated.items())
                  + f" (answered by {hybrid.component_names_[1]})")
    allowed = data.items.ids[knowledge.satisfying(wanted)]
    ids, _ = hybrid.recommend_for_history(list(rated), 5, values=list(rated.values()), candidates=allowed)
    for rank, item in enumerate(ids, start=1):
        console.print(f"  {rank}. {titles.loc[item]}")


def _serving_hint(console: Console) -> None:
    console.rule("[bold]Serve it")
    console.print(
        "recforge train --dataset ml-100k --model ials --output models/ials.npz\n"
        "recforge batch --model-path models/ials.npz            # top-k for every user into recommendations.db (SQLite)\n"
        "RECFORGE_API_KEY=secret recforge serve --model-path models/ials.npz --port 8000\n"
        "curl 'http://127.0.0.1:8000/v1/users/1/recommendations?k=10'\n"
        "curl -X POST -H 'X-API-Key: secret' -H 'Content-Type: application/json' "
        "-d '{\"user_id\": 1, \"item_id\": 50, \"type\": \"click\"}' http://127.0.0.1:8000/v1/events",
        highlight=False, markup=False,
    )


def _best_ranking_model(table: EvaluationResult, available: set[str]) -> str:
    s = table.summary
    s = s[s["protocol"] == "loo-full"]
    if "NDCG@10" in s and len(s):
        return str(s.sort_values("NDCG@10", ascending=False)["model"].iloc[0])
    return "popularity"


if __name__ == "__main__":
    raise SystemExit(main())

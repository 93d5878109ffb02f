"""A/B of the core consolidation (issue 13): the same models, data and seeds on two source trees.

Each tree runs in its own subprocess (``PYTHONPATH`` = that tree's ``src``), so both are measured on
the same machine in the same run, alternating A, B, A, B, ... to share the noise. For every model
the worker fits on a fixed split of ML-100K and reports:

- the protocol metric (``rating-u1`` RMSE for rating models, ``loo-full`` NDCG@10/HR@10 for ranking
  and sequence models, computed with :func:`recforge.evaluation.protocols.evaluate`), which must be
  identical on both trees for deterministic models;
- the fit time and the scoring time (``predict`` on the test pairs for rating models,
  ``recommend(k=10)`` for every user otherwise), medians over the repeats.

Usage::

    git worktree add /tmp/before <commit-before>
    python -m benchmarks.ab_consolidation --before /tmp/before --after . [--repeats 3] [--models svd,ials]

Writes ``benchmarks/results/consolidation.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from benchmarks.common import RESULTS_DIR, machine

#: (registry name, hyperparameters): defaults except where a default is too slow for an A/B loop.
MODELS: list[tuple[str, dict[str, Any]]] = [
    ("bias", {}), ("svd", {}), ("svdpp", {}), ("nmf", {}), ("als", {}), ("knn-baseline", {}), ("user-knn", {}),
    ("item-knn", {}),
    ("popularity", {}), ("item-knn-implicit", {}), ("user-knn-implicit", {}), ("ease", {}), ("slim", {}),
    ("rp3beta", {}), ("ials", {}), ("bpr", {}), ("onboarding-knn", {}), ("content", {}),
    ("lightfm-style", {}), ("mf-torch", {"epochs": 3}), ("lightgcn", {"epochs": 2}), ("sasrec", {"epochs": 2}),
]

WORKER = r"""
import json, sys, time, warnings
import numpy as np
warnings.simplefilter("ignore")
from recforge.data import load
from recforge.config import FitOptions
from recforge.models.registry import make_model
from recforge.evaluation.protocols import evaluate
from recforge.splits import leave_one_out

names = json.loads(sys.argv[1])
ds = load("ml-100k")
data = ds.interactions
u1 = ds.split("u1") if hasattr(ds, "split") else None
loo = leave_one_out(data)
out = {}
for name, params in names:
    model = make_model(name, params)
    rating = model.task == "rating"
    if rating:
        train, test = u1.train, u1.test
    else:
        train, test = loo.train.to_implicit(), loo.test
    fits, scores = [], []
    for rep in range(4):  # the first round warms up (numba caches, torch); the median of the other 3 counts
        t0 = time.perf_counter()
        model.fit(train, FitOptions(seed=0))
        fits.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        if rating:
            model.predict(test.users.ids[test.user_idx], test.items.ids[test.item_idx], fallback="mean")
        else:
            model.recommend(train.users.ids, k=10)
        scores.append(time.perf_counter() - t0)
    fit_s, score_s = float(np.median(fits[1:])), float(np.median(scores[1:]))
    res = evaluate(make_model(name, params), ds, "rating-u1" if rating else "loo-full", k=10, options=FitOptions(seed=0))
    metrics = {c: float(res.metric(c)) for c in res.metric_columns()}
    out[name] = {"fit_s": fit_s, "score_s": score_s, "metrics": metrics}
print("RESULT " + json.dumps(out))
"""


def run_tree(src: Path, models: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(src), "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run([sys.executable, "-c", WORKER, json.dumps(models)], env=env, capture_output=True,
                          text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"worker on {src} failed:\n{proc.stderr[-3000:]}")
    line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", required=True, type=Path, help="checkout of the commit before the change")
    ap.add_argument("--after", default=Path("."), type=Path, help="checkout after the change (default: here)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--models", default="", help="comma-separated subset of registry names")
    args = ap.parse_args(argv)
    chosen = [m for m in MODELS if not args.models or m[0] in args.models.split(",")]
    runs: dict[str, list[dict[str, Any]]] = {"before": [], "after": []}
    for r in range(args.repeats):
        for side in (("before", "after") if r % 2 == 0 else ("after", "before")):
            tree = args.before if side == "before" else args.after
            runs[side].append(run_tree(tree.resolve() / "src", chosen))
            print(f"repeat {r + 1} {side} done", flush=True)
    rows = []
    for name, _ in chosen:
        b = [x[name] for x in runs["before"]]
        a = [x[name] for x in runs["after"]]
        fb, fa = statistics.median(x["fit_s"] for x in b), statistics.median(x["fit_s"] for x in a)
        sb, sa = statistics.median(x["score_s"] for x in b), statistics.median(x["score_s"] for x in a)
        mb, ma = b[0]["metrics"], a[0]["metrics"]
        metric = ", ".join(f"{k} {mb[k]:.4f}" + ("" if abs(mb[k] - ma.get(k, float("nan"))) < 1e-9
                                                  else f" -> {ma.get(k, float('nan')):.4f}") for k in mb)
        rows.append({"model": name, "metric (before -> after when different)": metric, "identical": mb == ma,
                     "fit s before": fb, "fit s after": fa, "fit after/before": fa / fb,
                     "score s before": sb, "score s after": sa, "score after/before": sa / sb})
    head = list(rows[0])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = [f"{v:.4f}" if isinstance(v, float) else str(v) for v in row.values()]
        lines.append("| " + " | ".join(cells) + " |")
    md = (
        "## Consolidation A/B (issue 13)\n\n"
        f"Same models, data and seeds on the tree before and after the core consolidation, alternating runs "
        f"in one session (medians of {args.repeats}). Metrics: `rating-u1` for rating models, `loo-full` k=10 "
        "otherwise; fit on that protocol's training part, score = predict on the u1 test pairs or recommend(k=10) "
        "for every user.\n\n" + "\n".join(lines) + f"\n\n_Measured on {machine()}._\n"
    )
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / "consolidation.md").write_text(md)
    (RESULTS_DIR / "consolidation.json").write_text(json.dumps({"runs": runs, "rows": rows}, indent=1))
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

"""Graph filters against EASE and iALS on CiteULike-a and Amazon Beauty, and filter + EASE/iALS ensembles.

* CiteULike-a (``$RECFORGE_DATA_DIR/citeulike-a/users.dat``: 5,551 users' libraries of 16,980
  articles, implicit): ``ratio-full`` (a random 20% of the interactions held out, seed 0), full
  ranking of unseen items, k = 20.
* Amazon Beauty (``$RECFORGE_DATA_DIR/amazon-beauty-s3rec/Beauty.txt``: 22,363 users' item
  sequences over 12,101 items, S3-Rec's 5-core preprocessing): ``loo-full`` (each user's last item
  held out, the sequence position as the timestamp), full ranking of unseen items, k = 10.

Every model runs in its own child process (``--one``) so that its peak RSS (``ru_maxrss``,
data loading included) is its own. The graph filters run with their defaults (the papers' Gowalla
settings); EASE and iALS with theirs. The ensembles are ``hybrid-weighted`` (rank-normalised
scores, one weight per component learned on a validation hold-out of training users, each keeping
a random 80% of its history: one round, one history-length bucket), i.e. chosen on the training
data only. Writes ``benchmarks/results/filters_more.md``.

    python -m benchmarks.bench_filters_more [--datasets beauty citeulike] [--models gf-cf bspm ...]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from benchmarks.common import RESULTS_DIR, machine, md_table, write_fragment

DATASETS = {"citeulike": ("CiteULike-a", "ratio-full", 20), "beauty": ("Amazon Beauty", "loo-full", 10)}
ENSEMBLE = {"validation_fraction": 0.2, "valid_rounds": 1, "buckets": [1], "valid_reveals": [-1], "k": 20}
MODELS: dict[str, tuple[str, dict[str, Any]]] = {
    "gf-cf": ("gf-cf", {}),
    "bspm": ("bspm", {}),
    "turbo-cf": ("turbo-cf", {}),
    "ease": ("ease", {}),
    "ials": ("ials", {}),
    "bspm+ease": ("hybrid-weighted", {"models": ["bspm", "ease"], "model_configs": {}, **ENSEMBLE}),
    "bspm+ials": ("hybrid-weighted", {"models": ["bspm", "ials"], "model_configs": {}, **ENSEMBLE}),
}


def _root() -> Path:
    return Path(os.environ.get("RECFORGE_DATA_DIR", Path(__file__).resolve().parents[2] / "shared" / "data"))


def load_data(key: str) -> Any:
    """The dataset's interactions (implicit; Beauty with the sequence position as timestamp)."""
    from recforge.data.interactions import Interactions

    rows = []
    if key == "citeulike":
        for u, line in enumerate((_root() / "citeulike-a" / "users.dat").read_text().splitlines()):
            items = line.split()[1:]  # the first number is the library's size
            rows += [(u, int(i), 0) for i in items]
    else:
        for line in (_root() / "amazon-beauty-s3rec" / "Beauty.txt").read_text().splitlines():
            user, *items = line.split()
            rows += [(int(user), int(i), t) for t, i in enumerate(items)]
    df = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])
    df["value"] = 1.0
    return Interactions.from_dataframe(df, rating="value", timestamp="timestamp", explicit=False,
                                       name=key, duplicates="first")


def run_one(key: str, label: str) -> dict[str, Any]:
    from recforge.config import FitOptions
    from recforge.evaluation.protocols import evaluate
    from recforge.models import make_model

    _, protocol, k = DATASETS[key]
    name, params = MODELS[label]
    res = evaluate(make_model(name, params), load_data(key), protocol, k=k, options=FitOptions(seed=0))
    headline = "Recall" if protocol == "ratio-full" else "HR"
    return {"dataset": key, "model": label, headline: res.metric(f"{headline}@{k}"), "NDCG": res.metric(f"NDCG@{k}"),
            "fit_s": res.metric("fit_seconds"), "eval_s": res.metric("predict_seconds"),
            "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2}


def render(rows: list[dict[str, Any]]) -> str:
    parts = ["## Graph filters on CiteULike-a and Amazon Beauty, against EASE and iALS\n",
             "`python -m benchmarks.bench_filters_more` on " + machine() + ". Each model in its own process "
             "(peak RSS includes loading the data); single runs, seed 0. The machine was shared by parallel jobs "
             "(load average 20-40 on 2 cores during these runs): times are noisy and several times an idle "
             "machine's; compare rows of one table. Graph filters with their defaults (the papers' Gowalla "
             "settings, not tuned here); `A+B` rows are `hybrid-weighted` ensembles whose weights were learned "
             "on a validation hold-out of the training users (never the test rows).\n"]
    for key, (title, protocol, k) in DATASETS.items():
        mine = [r for r in rows if r["dataset"] == key]
        if not mine:
            continue
        headline = "Recall" if protocol == "ratio-full" else "HR"
        table = [{"model": r["model"], f"{headline}@{k}": f"{r[headline]:.4f}" if "error" not in r else "failed",
                  f"NDCG@{k}": f"{r['NDCG']:.4f}" if "error" not in r else r["error"][:80],
                  "fit s": f"{r.get('fit_s', 0):.0f}", "eval s": f"{r.get('eval_s', 0):.0f}",
                  "peak RSS GB": f"{r.get('peak_rss_gb', 0):.2f}"} for r in mine]
        parts.append(f"### {title} ({protocol}, k = {k})\n\n" + md_table(table) + "\n")
        missing = [m for m in MODELS if m not in {r["model"] for r in mine}]
        if missing:
            parts.append(f"Not measured on {title}: {', '.join(missing)} (runs stopped or not started for lack of "
                         "CPU time on the shared machine; `--datasets " + key + " --models ...` runs them).\n")
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", nargs="+", default=["beauty", "citeulike"], choices=list(DATASETS))
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--one", nargs=2, help=argparse.SUPPRESS)
    args, _ = ap.parse_known_args(argv)
    if args.one:
        print("ROW " + json.dumps(run_one(*args.one)), flush=True)
        return 0
    store = RESULTS_DIR / "filters_more.json"
    rows: list[dict[str, Any]] = []
    for key in args.datasets:
        for label in args.models:
            proc = subprocess.run([sys.executable, "-m", "benchmarks.bench_filters_more", "--one", key, label],
                                  capture_output=True, text=True, check=False)
            found = [ln for ln in proc.stdout.splitlines() if ln.startswith("ROW ")]
            row = json.loads(found[-1][4:]) if proc.returncode == 0 and found else {
                "dataset": key, "model": label, "error": ((proc.stderr or proc.stdout).strip().splitlines() or ["?"])[-1]}
            print(json.dumps(row), flush=True)
            rows = json.loads(store.read_text()) if store.exists() else []  # another dataset's run may have written
            rows = [r for r in rows if (r["dataset"], r["model"]) != (key, label)] + [row]
            order = {m: n for n, m in enumerate(MODELS)}
            rows.sort(key=lambda r: (list(DATASETS).index(r["dataset"]), order.get(r["model"], 99)))
            from recforge.io import atomic_write

            with atomic_write(store) as fh:
                fh.write(json.dumps(rows, indent=1) + "\n")
            write_fragment("filters_more", render(rows))
    print(render(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Graph filters on ML-100K ``ratio-full`` and ``loo-full``, hyperparameters chosen on validation.

For each protocol the protocol's own split (seed 0) is taken, and its training part is split again
the same way (``ratio-full``: a random 20% of the training interactions; ``loo-full``: each user's
latest training interaction): every grid point is fitted on the rest and scored on that carve, never
on the test rows. The best point (Recall@20 for ``ratio-full``, NDCG@10 for ``loo-full``) is then
fitted on the whole training part and evaluated on the test rows, next to the defaults (the papers'
Gowalla settings) and EASE/RP3beta with their defaults. Writes ``benchmarks/results/graph_filters_ml100k.md``.

    python -m benchmarks.tune_graph_filters [--protocols ratio-full loo-full] [--models gf-cf bspm turbo-cf]
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from typing import Any

from benchmarks.common import machine, md_table, write_fragment

GRIDS: dict[str, dict[str, list[Any]]] = {
    "gf-cf": {"alpha": [0.0, 0.1, 0.3, 1.0], "n_components": [32, 128, 256]},
    "bspm": {"n_components": [32, 128], "ideal_weight": [0.2, 0.5], "sharpen_time": [0.5, 1.0, 2.5]},
    "turbo-cf": {"alpha": [0.5, 0.6, 0.7], "power": [0.7, 1.0, 1.5], "coefficients": [(1.0,), (2.0, -1.0)]},
}
TARGET = {"ratio-full": ("Recall@20", 20), "loo-full": ("NDCG@10", 10)}
PEERS = ["ease", "rp3beta"]


def _points(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    keys = list(grid)
    return [dict(zip(keys, vals)) for vals in itertools.product(*(grid[k] for k in keys))]


def main(argv: list[str] | None = None) -> int:
    from recforge.config import FitOptions
    from recforge.data import load
    from recforge.evaluation.protocols import evaluate, get_protocol
    from recforge.models import make_model

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--protocols", nargs="+", default=["ratio-full", "loo-full"])
    ap.add_argument("--models", nargs="+", default=list(GRIDS))
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    ds = load("ml-100k", download=False)
    opts = FitOptions(seed=0)
    rows: list[dict[str, Any]] = []
    for proto in args.protocols:
        metric, k = TARGET[proto]
        train = get_protocol(proto).splits(ds, 0)[0].train
        for name in args.models:
            best, best_val = {}, -1.0
            for point in _points(GRIDS[name]):
                val = evaluate(make_model(name, point), train, proto, k=k, options=opts).metric(metric)
                print(json.dumps({"protocol": proto, "model": name, "params": point, f"val {metric}": val}), flush=True)
                if val > best_val:
                    best, best_val = point, val
            for label, params in (("defaults", {}), ("tuned", best)):
                t0 = time.perf_counter()
                res = evaluate(make_model(name, params), ds, proto, k=k, options=opts)
                row = {"protocol": proto, "model": name, "setting": label,
                       "params": ", ".join(f"{a}={b}" for a, b in params.items()) or "(defaults)",
                       "val": f"{best_val:.4f}" if label == "tuned" else "",
                       metric: f"{res.metric(metric):.4f}",
                       "other": " ".join(f"{m}={res.metric(m):.4f}" for m in (f"NDCG@{k}", f"Recall@{k}", f"HR@{k}")
                                         if m != metric and m in res.table.columns),
                       "s": f"{time.perf_counter() - t0:.0f}"}
                print(json.dumps(row), flush=True)
                rows.append(row)
        for name in PEERS:
            t0 = time.perf_counter()
            res = evaluate(make_model(name, {}), ds, proto, k=k, options=opts)
            rows.append({"protocol": proto, "model": name, "setting": "defaults", "params": "(defaults)", "val": "",
                         metric: f"{res.metric(metric):.4f}",
                         "other": " ".join(f"{m}={res.metric(m):.4f}" for m in (f"NDCG@{k}", f"Recall@{k}", f"HR@{k}")
                                           if m != metric and m in res.table.columns),
                         "s": f"{time.perf_counter() - t0:.0f}"})
            print(json.dumps(rows[-1]), flush=True)
    parts = ["## Graph filters (ML-100K ratio-full and loo-full, chosen on validation)\n",
             "Grid search on a validation carve of each protocol's training part (ratio-full: random 20% "
             "of the training interactions, seed 0; loo-full: each user's latest training interaction), "
             "selection by the protocol's headline metric, then one evaluation on the test rows. "
             f"`python -m benchmarks.tune_graph_filters` on {machine()}; machine shared by parallel jobs "
             "(times noisy). Grids: " + "; ".join(f"{m}: {g}" for m, g in GRIDS.items() if m in args.models) + "\n"]
    for proto in args.protocols:
        metric, _ = TARGET[proto]
        sub = [{k2: v for k2, v in r.items() if k2 != "protocol"} for r in rows if r["protocol"] == proto]
        parts.append(f"### {proto} (headline {metric})\n\n" + md_table(sub))
    text = "\n\n".join(part.rstrip() for part in parts)
    print(text)
    if not args.no_write:
        write_fragment("graph_filters_ml100k", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

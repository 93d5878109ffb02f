"""Graph-filter rankers (and EASE) on Gowalla's given split, against their published figures.

Each model runs in its own child process (``--one NAME``) so that its peak RSS is its own: the
child loads the dataset, fits and evaluates through :func:`recforge.evaluation.protocols.evaluate`
(full ranking of unseen items, k = 20: Recall@20 and NDCG@20 as LightGCN's code defines them) and
prints one JSON row; the parent collects the rows into ``benchmarks/results/graph_filters.md``.
Peak RSS is the child's ``ru_maxrss`` (dataset loading included). Single run: fit and evaluation
times come from one run on a machine shared with parallel jobs, so they are noisy.

    python -m benchmarks.bench_graph_filters                       # gf-cf, bspm, turbo-cf, ease
    python -m benchmarks.bench_graph_filters --models bspm --set bspm:sharpen_time=2.0
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from typing import Any

from benchmarks.common import RESULTS_DIR, machine, md_table, write_fragment

#: Published Gowalla given-split figures (Recall@20, NDCG@20); None where the paper gives none.
PUBLISHED: dict[str, tuple[float | None, float | None, str]] = {
    "gf-cf": (0.1849, 0.1518, "Shen et al., CIKM 2021"),
    "bspm": (0.1920, 0.1597, "Choi et al., SIGIR 2023 (BSPM-EM)"),
    "turbo-cf": (0.1835, None, "Park et al., SIGIR 2024"),
    "ease": (0.1765, 0.1467, "as reported by the GF-CF/BSPM papers"),
}


def run_one(name: str, params: dict[str, Any], dataset: str, protocol: str, k: int) -> dict[str, Any]:
    from recforge.config import FitOptions
    from recforge.data import load
    from recforge.evaluation.protocols import evaluate
    from recforge.models import make_model

    ds = load(dataset, download=False)
    model = make_model(name, params)
    res = evaluate(model, ds, protocol, k=k, options=FitOptions(seed=0))
    return {
        "model": name,
        "params": params,
        "recall": res.metric(f"Recall@{k}"),
        "ndcg": res.metric(f"NDCG@{k}"),
        "fit_s": res.metric("fit_seconds"),
        "eval_s": res.metric("predict_seconds"),
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2,
    }


def _key(row: dict[str, Any]) -> str:
    return row["model"] + " " + json.dumps(row.get("params", {}), sort_keys=True)


def _merge(rows: list[dict[str, Any]], write: bool) -> list[dict[str, Any]]:
    """This run's rows over the stored ones (``results/graph_filters.json``), one per model and
    hyperparameters, so that models run one at a time build one table."""
    path = RESULTS_DIR / "graph_filters.json"
    stored = json.loads(path.read_text()) if path.exists() else []
    merged = {_key(r): r for r in stored}
    merged.update({_key(r): r for r in rows if "error" not in r})
    out = list(merged.values()) + [r for r in rows if "error" in r]
    if write:
        from recforge.io import atomic_write

        with atomic_write(path) as fh:
            fh.write(json.dumps([r for r in out if "error" not in r], indent=1) + "\n")
    return out


def render(rows: list[dict[str, Any]], dataset: str, protocol: str, k: int) -> str:
    """The RESULTS.md section: one row per model run, with the published figure and the gap."""
    table = []
    for r in rows:
        pub_r, pub_n, src = PUBLISHED.get(r["model"], (None, None, ""))
        if "error" in r:
            table.append({"model": r["model"], "Recall@20": "failed", "NDCG@20": r["error"], "published": "",
                          "gap": "", "fit s": "", "eval s": "", "peak RSS GB": ""})
            continue
        gap_r = f"{r['recall'] - pub_r:+.4f}" if pub_r is not None else "n/a"
        gap_n = f"{r['ndcg'] - pub_n:+.4f}" if pub_n is not None else "n/a"
        pub = (f"{pub_r:.4f} / " if pub_r is not None else "n/a / ") + (f"{pub_n:.4f}" if pub_n is not None else "n/a")
        params = " ".join(f"{k2}={v}" for k2, v in r.get("params", {}).items())
        table.append({"model": r["model"] + (f" ({params})" if params else " (defaults)"),
                      "Recall@20": f"{r['recall']:.4f}", "NDCG@20": f"{r['ndcg']:.4f}",
                      "published": f"{pub} ({src})", "gap R / N": f"{gap_r} / {gap_n}",
                      "fit s": f"{r['fit_s']:.0f}", "eval s": f"{r['eval_s']:.0f}",
                      "peak RSS GB": f"{r['peak_rss_gb']:.2f}"})
    title = "Gowalla given-split" if (dataset, protocol) == ("gowalla", "given-split") else f"{dataset} {protocol}"
    return (f"## Graph filters ({title})\n\n"
            f"Full ranking of unseen items, k = {k}. `python -m benchmarks.bench_graph_filters` (each model in its "
            f"own process; peak RSS includes loading the data) on {machine()}. The machine was shared by "
            "parallel jobs (load average 10-25 on 2 cores during these runs, each model getting 5-10% of a core): single runs, times are noisy "
            "and several times what an idle machine gives.\n\n" + md_table(table))


def _parse_sets(sets: list[str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for item in sets:
        name, _, kv = item.partition(":")
        key, _, raw = kv.partition("=")
        try:
            val: Any = json.loads(raw)
        except json.JSONDecodeError:
            val = raw
        out.setdefault(name, {})[key] = tuple(val) if isinstance(val, list) else val
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["gf-cf", "bspm", "turbo-cf", "ease"])
    ap.add_argument("--set", action="append", default=[], metavar="MODEL:KEY=VALUE",
                    help="a hyperparameter for one model (JSON value), e.g. bspm:sharpen_time=2.0")
    ap.add_argument("--dataset", default="gowalla")
    ap.add_argument("--protocol", default="given-split")
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--one", help=argparse.SUPPRESS)
    ap.add_argument("--params", default="{}", help=argparse.SUPPRESS)
    ap.add_argument("--no-write", action="store_true", help="print the table, do not write the fragment")
    args = ap.parse_args(argv)
    if args.one:
        row = run_one(args.one, json.loads(args.params), args.dataset, args.protocol, args.k)
        print("ROW " + json.dumps(row), flush=True)
        return 0
    sets = _parse_sets(args.set)
    rows = []
    for name in args.models:
        params = sets.get(name, {})
        cmd = [sys.executable, "-m", "benchmarks.bench_graph_filters", "--one", name, "--params",
               json.dumps(params), "--dataset", args.dataset, "--protocol", args.protocol, "--k", str(args.k)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        found = [ln for ln in proc.stdout.splitlines() if ln.startswith("ROW ")]
        if proc.returncode != 0 or not found:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            print(f"{name}: failed: {tail[0]}", file=sys.stderr)
            rows.append({"model": name, "params": params, "error": tail[0]})
            continue
        row = json.loads(found[-1][4:])
        print(json.dumps(row), flush=True)
        rows.append(row)
    rows = _merge(rows, write=not args.no_write)
    text = render(rows, args.dataset, args.protocol, args.k)
    print(text)
    if not args.no_write:
        write_fragment("graph_filters", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

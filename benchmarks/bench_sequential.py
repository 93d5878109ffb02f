"""Sequence models (Caser, GRU4Rec, SASRec) vs the best non-sequential models on ML-100K ``loo-full``.

Protocol ``loo-full``: each user's latest interaction (by timestamp; ties: largest item id) is held
out, every unseen item is ranked; HR@10, NDCG@10, MRR@10 over the 943 users. Non-sequential models
use their ``configs/ml100k/<name>.toml`` parameters; sequence models the settings below. Published
full-ranking anchor (RecBole, ML-1M, a different dataset): SASRec NDCG@10 0.129, GRU4Rec 0.155.

Run ``python -m benchmarks.bench_sequential [model ...]``; rows of models not rerun are kept from
``results/sequential.json``.
"""

from __future__ import annotations

import sys
import time
import tomllib
from pathlib import Path
from typing import Any

from benchmarks.common import RESULTS_DIR, machine, md_table, write_fragment

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "ml100k"
PEERS = ["popularity", "item-knn-implicit", "ease", "ials", "bpr"]
SEQUENTIAL: dict[str, dict[str, Any]] = {  # model defaults, 20 epochs (CPU budget)
    "caser": {"epochs": 20},
    "gru4rec": {"epochs": 20},
    "sasrec": {"epochs": 20},
}


def params(name: str) -> dict[str, Any]:
    if name in SEQUENTIAL:
        return SEQUENTIAL[name]
    path = CONFIGS / f"{name}.toml"
    if not path.exists():
        return {}
    return tomllib.loads(path.read_text()).get("model", {}).get("params", {})


def run(names: list[str]) -> list[dict[str, Any]]:
    import torch

    from recforge.config import FitOptions
    from recforge.data import load
    from recforge.evaluation.protocols import evaluate
    from recforge.models.registry import make_model

    torch.set_num_threads(1)
    ds = load("ml-100k")
    rows = []
    for name in names:
        cfg = params(name)
        t0 = time.perf_counter()
        res = evaluate(make_model(name, cfg), ds, "loo-full", options=FitOptions(seed=0, threads=1))
        s = res.summary.iloc[0]
        rows.append({"protocol": "loo-full", "model": name, "HR@10": s["HR@10"], "NDCG@10": s["NDCG@10"],
                     "MRR@10": s["MRR@10"], "fit s": s["fit_seconds"], "total s": time.perf_counter() - t0,
                     "params": ", ".join(f"{k}={v}" for k, v in cfg.items())})
        print(rows[-1], flush=True)
    return rows


def merged(new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows of earlier runs (``results/sequential.json``) updated with ``new``, so a subset can be rerun."""
    import json

    from recforge.io import atomic_write

    path = RESULTS_DIR / "sequential.json"
    old = json.loads(path.read_text()) if path.exists() else []
    by_model = {r["model"]: r for r in old}
    by_model.update({r["model"]: {k: (float(v) if hasattr(v, "item") else v) for k, v in r.items()} for r in new})
    rows = list(by_model.values())
    with atomic_write(path) as fh:
        fh.write(json.dumps(rows, indent=1))
    return rows


def main(argv: list[str] | None = None) -> str:
    """Run the sequence benchmark for the named models (all by default; ``--quick`` is accepted)."""
    names = [a for a in (argv or []) if a != "--quick"] or [*PEERS, *SEQUENTIAL]
    rows = sorted(merged(run(names)), key=lambda r: -r["NDCG@10"])
    best = rows[0]
    seq = [r for r in rows if r["model"] in SEQUENTIAL]
    other = [r for r in rows if r["model"] not in SEQUENTIAL]
    verdict = ""
    if seq and other:
        s, o = seq[0], other[0]
        verdict = (f"Best sequence model: {s['model']} (NDCG@10 {s['NDCG@10']:.4f}); best non-sequential: {o['model']} "
                   f"({o['NDCG@10']:.4f}); overall winner: **{best['model']}**.\n\n")
    text = ("## Sequence-aware models, ML-100K `loo-full` (k=10, full ranking, training items excluded)\n\n"
            + md_table(rows) + "\n\n" + verdict
            + "Single run, seed 0, 1 torch thread; fit time includes the Lightning loop. _Measured on "
            + machine() + "; machine shared with other jobs, so times are indicative._\n")
    write_fragment("sequential", text)
    return text


if __name__ == "__main__":
    print(main(sys.argv[1:]))

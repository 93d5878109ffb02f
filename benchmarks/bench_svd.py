"""Gradient descent vs SVD for matrix factorisation: the same data, factored by SGD, by ALS and by a
truncated SVD, on ML-100K (``rating-kfold5``, ``loo-full``, ``ratio-full``) and Gowalla
(``given-split``; skipped with ``--quick``).

- rating: ``svd`` (biased MF by SGD from normal draws), ``svd`` with ``init="svd"`` (SGD started from
  the truncated SVD of the zero-filled residuals), ``als`` (alternating least squares);
- ranking: ``pure-svd`` (Cremonesi et al. 2010: no training loop), ``bpr`` (pairwise SGD), ``ials``
  (confidence-weighted ALS), each with its defaults.

``python -m benchmarks.bench_svd [--quick]``; the fragment is ``results/svd.md``
(``--gowalla-only`` adds the Gowalla rows to a fragment made with ``--quick``).
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from typing import Any

from benchmarks.common import machine, md_table, reset_peak_rss, status_mb, write_fragment
from recforge.config import FitOptions
from recforge.data import load
from recforge.evaluation.protocols import evaluate
from recforge.models.registry import make_model

RATING = [("svd", {}, "SGD"), ("svd", {"init": "svd"}, "SVD start + SGD"), ("als", {}, "ALS")]
RANKING = [("pure-svd", {}, "truncated SVD"), ("bpr", {}, "SGD (pairwise)"), ("ials", {}, "ALS")]


def run(dataset: Any, protocol: str, name: str, params: dict[str, Any], how: str, k: int) -> dict[str, Any]:
    before = reset_peak_rss()
    t0 = time.perf_counter()
    res = evaluate(make_model(name, params), dataset, protocol, k=k, options=FitOptions(seed=0))
    wall = time.perf_counter() - t0
    row: dict[str, Any] = {"protocol": protocol, "dataset": dataset.name, "model": name,
                           "params": ", ".join(f"{a}={b}" for a, b in params.items()) or "defaults",
                           "method": how}
    wanted = ("RMSE", "MAE") if protocol.startswith("rating") else (f"Recall@{k}", f"NDCG@{k}", f"HR@{k}")
    for col in wanted:
        if col in res.metric_columns():
            row[col] = float(res.metric(col))
    row["fit s"] = float(res.metric("fit_seconds"))
    row["total s"] = wall
    row["peak RSS MB (growth)"] = f"{status_mb('VmHWM') - before:.0f}"
    return row


def main(argv: list[str] | None = None) -> str:
    argv = list(sys.argv[1:] if argv is None else argv)
    quick = "--quick" in argv
    warnings.simplefilter("ignore")
    if "--gowalla-only" in argv:  # add the Gowalla rows to a fragment that holds the ML-100K ones
        return _gowalla_only()
    ml = load("ml-100k")
    sections = []
    rows = [run(ml, "rating-kfold5", n, p, h, 10) for n, p, h in RATING]
    sections.append("### ML-100K `rating-kfold5` (RMSE; fit s: mean per fold)\n\n" + md_table(rows))
    for protocol, k in (("loo-full", 10), ("ratio-full", 20)):
        rows = [run(ml, protocol, n, p, h, k) for n, p, h in RANKING]
        sections.append(f"### ML-100K `{protocol}` (k={k}, full ranking)\n\n" + md_table(rows))
    if not quick:
        gowalla = load("gowalla")
        rows = [run(gowalla, "given-split", n, p, h, 20) for n, p, h in RANKING]
        sections.append("### Gowalla `given-split` (k=20, full ranking)\n\n" + md_table(rows))
    text = (
        "## Gradient descent vs SVD (matrix factorisation)\n\n"
        "Each model with its defaults, seed 0, `python -m benchmarks.bench_svd"
        + (" --quick" if quick else "") + "`. `pure-svd` has no training loop (one truncated SVD, ARPACK); "
        "its scores rank items and are not ratings, so the rating rows compare the SGD start instead. "
        "Peak RSS is the growth of the process's high-water mark during the row; fit times include numba "
        f"compilation on a model's first use (load average {os.getloadavg()[0]:.0f} at the end of the run: "
        "compare accuracy, and times only within a row group).\n\n"
        + "\n\n".join(sections) + f"\n\n_Measured on {machine()}._\n"
    )
    write_fragment("svd", text)
    print(text)
    return text


def _gowalla_only() -> str:
    from benchmarks.common import RESULTS_DIR

    path = RESULTS_DIR / "svd.md"
    old = path.read_text()
    gowalla = load("gowalla")
    rows = [run(gowalla, "given-split", n, p, h, 20) for n, p, h in RANKING]
    section = (f"### Gowalla `given-split` (k=20, full ranking; `python -m benchmarks.bench_svd --gowalla-only`, "
               f"load average {os.getloadavg()[0]:.0f} at the end)\n\n" + md_table(rows))
    head, sep, tail = old.rpartition("\n\n_Measured on ")
    text = (head + "\n\n" + section + sep + tail) if sep else old.rstrip() + "\n\n" + section + "\n"
    write_fragment("svd", text)
    print(section)
    return text


if __name__ == "__main__":
    main(sys.argv[1:])

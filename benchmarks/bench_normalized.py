"""Per-user normalisation: rating models trained on raw vs normalised ratings, ML-100K ``rating-u1``.

``python -m benchmarks.bench_normalized``; the fragment is ``results/normalized.md``.
"""

from __future__ import annotations

import sys
import warnings
from typing import Any

from benchmarks.common import machine, md_table, write_fragment
from recforge.config import FitOptions
from recforge.data import load
from recforge.evaluation.protocols import evaluate
from recforge.models.registry import make_model

CASES: list[tuple[str, dict[str, Any]]] = [
    ("svd", {}),
    ("normalized", {"model": "svd", "kind": "center"}),
    ("normalized", {"model": "svd", "kind": "zscore"}),
    ("item-knn", {}),
    ("normalized", {"model": "item-knn", "kind": "zscore"}),
]


def main(argv: list[str] | None = None) -> str:
    warnings.simplefilter("ignore")
    ds = load("ml-100k")
    rows = []
    for name, params in CASES:
        r = evaluate(make_model(name, params), ds, "rating-u1", options=FitOptions(seed=0))
        rows.append({"protocol": "rating-u1", "model": name,
                     "params": ", ".join(f"{k}={v}" for k, v in params.items()) or "defaults",
                     "RMSE": float(r.metric("RMSE")), "MAE": float(r.metric("MAE")),
                     "fit s": float(r.metric("fit_seconds"))})
    text = ("## Per-user normalisation (ML-100K `rating-u1`)\n\n"
            "`normalized` trains the inner model on per-user normalised ratings and maps its predictions "
            "back; defaults otherwise, seed 0. `python -m benchmarks.bench_normalized`.\n\n"
            + md_table(rows) + f"\n\n_Measured on {machine()}._\n")
    write_fragment("normalized", text)
    print(text)
    return text


if __name__ == "__main__":
    main(sys.argv[1:])

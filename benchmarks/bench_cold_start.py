"""Cold start on ML-100K: popularity, content, knowledge, CF with popularity fallback and the hybrids.

Every model runs the ``cold-start`` protocol (see :mod:`recforge.evaluation.cold_start`) with the
same seed, so all rows share the same held-out users and items. ``python -m benchmarks.bench_cold_start``
(about 15 minutes on 2 busy cores; ``--quick`` drops the two slow hybrids).
"""

from __future__ import annotations

import sys
import time

import numpy as np
import pandas as pd

from benchmarks.common import machine, md_table, write_fragment
from recforge.config import FitOptions
from recforge.data import load
from recforge.evaluation.protocols import evaluate
from recforge.models.registry import make_model

METRICS = ("HR@10", "NDCG@10", "Recall@20")


def models(quick: bool = False) -> list[tuple[str, str, dict]]:
    """(label, registered name, config) of every model compared."""
    cf = "ease"  # the hybrids' default CF component
    out = [
        ("popularity", "popularity", {}),
        ("content", "content", {}),
        ("knowledge", "knowledge", {}),
        ("demographic", "demographic", {}),
        (f"CF ({cf}) + popularity fallback", cf, {}),
        ("onboarding-knn", "onboarding-knn", {}),
        ("lightfm-style", "lightfm-style", {}),
        ("hybrid-switching", "hybrid-switching", {}),
    ]
    if not quick:
        out.append(("hybrid-weighted", "hybrid-weighted", {}))
    return out


def run(quick: bool = False) -> tuple[pd.DataFrame, dict[tuple[str, str], np.ndarray]]:
    ds = load("ml-100k")
    tables = []
    per_user: dict[tuple[str, str], np.ndarray] = {}
    for label, name, cfg in models(quick):
        t0 = time.perf_counter()
        opts = FitOptions(seed=0, threads=1)
        res = evaluate(make_model(name, cfg), ds, "cold-start", options=opts, model_name=label)
        print(f"{label}: {time.perf_counter() - t0:.1f} s", flush=True)
        tables.append(res.table)
        per_user.update(res.per_user)
    return pd.concat(tables, ignore_index=True), per_user


def verdict(table: pd.DataFrame, per_user: dict[tuple[str, str], np.ndarray]) -> list[str]:
    """The issue's targets, checked against the measured table (with a paired Wilcoxon test)."""
    from scipy.stats import wilcoxon

    def ndcg(model: str, scenario: str, r: int) -> float:
        row = table[(table["model"] == model) & (table["scenario"] == scenario) & (table["revealed"] == r)]
        return float(row["NDCG@10"].iloc[0])

    hybrids = [m for m in table["model"].unique() if m.startswith("hybrid") or m == "lightfm-style"]
    cf = next(m for m in table["model"].unique() if m.startswith("CF"))
    lines = []
    cases = [("new-users", r) for r in (0, 1, 5, 10)] + [("new-items", 0)]
    for scenario, r in cases:
        best = max(hybrids, key=lambda m: ndcg(m, scenario, r))
        b, p, c = ndcg(best, scenario, r), ndcg("popularity", scenario, r), ndcg(cf, scenario, r)
        gain = f"{(b / p - 1) * 100:+.1f}% vs popularity" if p > 0 else "popularity cannot rank new items"
        ok = "beats" if b > p and b > c else "does NOT beat"
        key = f"{scenario}/{r}:NDCG@10"
        a, q = per_user[(best, key)], per_user[("popularity", key)]
        pval = wilcoxon(a, q).pvalue if np.any(a != q) else 1.0
        target = ""
        if scenario == "new-users" and r == 5:
            met = "met" if b >= 1.2 * p else f"NOT met (needs {1.2 * p:.4f}, short by {1.2 * p - b:.4f})"
            target = f"; issue target +20% vs popularity: {met}"
        lines.append(f"- {scenario}, {r} revealed: best hybrid `{best}` NDCG@10 {b:.4f} {ok} popularity "
                     f"({p:.4f}) and {cf} ({c:.4f}); {gain} (paired Wilcoxon vs popularity over "
                     f"{len(a)} users: p = {pval:.2g}){target}")
    return lines


def main(argv: list[str] | None = None) -> str:
    """Run the cold-start benchmark; ``--quick`` runs a reduced set."""
    quick = "--quick" in (argv or [])
    table, per_user = run(quick)
    rows = []
    for rec in table.to_dict(orient="records"):
        row = {"protocol": rec["protocol"], "scenario": rec["scenario"], "revealed": int(rec["revealed"]),
               "model": rec["model"]}
        row.update({m: float(rec[m]) for m in METRICS})
        row["fit s"] = float(rec["fit_seconds"])
        row["n_fallback"] = int(rec["n_fallback"])
        rows.append(row)
    rows.sort(key=lambda r: (r["scenario"] != "new-users", r["revealed"], r["model"]))
    text = (
        "## Cold start (ML-100K)\n\n"
        "Protocol `cold-start` (seed 0). New users: 20% of the users (189) are held out of training; each "
        "reveals its earliest 0/1/5/10 ratings (by timestamp; ties within the same second broken by item "
        "id), which join the training data as onboarding, and all its other ratings are the test set. "
        "Each test user ranks every item it has not revealed (full ranking, no sampling; revealed items "
        "are excluded from the list and are never test items). New items: 20% of the items (336) are "
        "held out of training; each user ranks the held-out items only. Relevance is binary (every "
        "held-out rating counts, whatever its value); NDCG@10 is normalised by the ideal DCG of "
        "min(10, |test items|) hits and averaged over users. Ranking models, popularity included, learn "
        "from implicit feedback (every training rating = 1): popularity = number of training users "
        "(onboarding rows of the held-out users included) who rated the item. `n_fallback`: test "
        "users the model could not score (popularity fallback) or held-out items it could not score. "
        "The hybrids learn their blend weights on validation users drawn from the training users only; "
        "`onboarding-knn`'s defaults (overlap power 3, cohort weight 1) were chosen on three validation "
        "carves of the training users revealing 1/5/10 ratings, never on these test users. "
        "`hybrid-switching` routes users with 1-19 interactions to `onboarding-knn`, users with none to "
        "`demographic`, and items without training rows to `content`.\n\n"
        + md_table(rows) + "\n\nTargets (NDCG@10):\n\n" + "\n".join(verdict(table, per_user))
        + "\n\n_Measured on " + machine() + "._\n"
    )
    write_fragment("cold_start", text)
    return text


if __name__ == "__main__":
    print(main(sys.argv[1:]))

"""Baselines vs scikit-surprise BaselineOnly (rating-kfold5) and the popularity anchor (loo-full)."""

from __future__ import annotations

import sys

import numpy as np

from benchmarks.common import machine, md_table, median_time, write_fragment
from recforge.data import load
from recforge.evaluation.protocols import evaluate
from recforge.models.baselines.bias import Bias
from recforge.models.baselines.simple import Popularity


def surprise_baseline_rmse() -> tuple[float, float]:
    from surprise import BaselineOnly, Dataset, Reader
    from surprise.model_selection import KFold, cross_validate

    df = load("ml-100k").interactions.to_dataframe()
    data = Dataset.load_from_df(df[["user_id", "item_id", "value"]], Reader(rating_scale=(1, 5)))
    res = cross_validate(BaselineOnly(verbose=False), data, ["rmse"], cv=KFold(5, random_state=0, shuffle=True))
    return float(np.mean(res["test_rmse"])), float(np.mean(res["fit_time"]))


def main(argv: list[str] | None = None) -> str:
    """Run the baselines benchmark (it takes no options; ``--quick`` is accepted and changes nothing)."""
    ds = load("ml-100k")
    t_ours, res = median_time(lambda: evaluate(Bias(), ds, "rating-kfold5"))
    t_peer, (peer_rmse, peer_fit) = median_time(surprise_baseline_rmse)
    pop = evaluate(Popularity(), ds, "loo-full")
    rows = [
        {"protocol": "rating-kfold5", "model": "recforge bias", "RMSE": res.metric("RMSE"),
         "fit s/fold": res.metric("fit_seconds"), "total s (median of 3)": t_ours},
        {"protocol": "rating-kfold5", "model": "surprise BaselineOnly", "RMSE": peer_rmse,
         "fit s/fold": peer_fit, "total s (median of 3)": t_peer},
    ]
    text = (
        "## Baselines\n\n" + md_table(rows) + "\n\n"
        f"Fit-time ratio surprise/recforge: {peer_fit / max(res.metric('fit_seconds'), 1e-9):.1f}x. "
        f"Popularity on `loo-full` k=10: HR@10 {pop.metric('HR@10'):.4f}, NDCG@10 {pop.metric('NDCG@10'):.4f} "
        "(anchor 0.0498 / 0.0252).\n\n_Measured on " + machine() + "._\n"
    )
    write_fragment("baselines", text)
    return text


if __name__ == "__main__":
    print(main(sys.argv[1:]))

"""Learning curves and metric-versus-k curves."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recforge._optional import require
from recforge.errors import ConfigError
from recforge.io import atomic_path
from recforge.topk import clamp_k


def _plt() -> Any:
    require("matplotlib", purpose="plots")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_learning_curve(history: Mapping[str, Sequence[float]], path: str | Path, *, title: str = "learning curve") -> Path:
    """Per-epoch training loss (left) and validation metrics (right, when present) against the epoch.

    ``history`` is a model's ``history_`` (``{"epoch": [...], "train_loss": [...], "val_...": [...]}``)
    or any dict of equal-length lists.
    """
    plt = _plt()
    series = {k: np.asarray(v, dtype=float) for k, v in history.items() if k != "epoch" and len(v)}
    if not series:
        raise ConfigError("the history holds no per-epoch values")
    val = {k: v for k, v in series.items() if k.startswith("val")}
    train = {k: v for k, v in series.items() if k not in val}
    panels = [p for p in (train, val) if p]
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4), squeeze=False)
    for ax, group in zip(axes[0], panels, strict=True):
        for key, ys in group.items():
            epochs = np.asarray(history.get("epoch", range(len(ys))), dtype=float)[: len(ys)] + 1
            ax.plot(epochs, ys, marker="o", ms=3, label=key)
        ax.set_xlabel("epoch")
        ax.legend()
        ax.grid(alpha=0.3)
    axes[0][0].set_title(title)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return path


def metric_at_ks(model: Any, test: Any, ks: Sequence[int] = (1, 5, 10, 20, 50),
                 metrics: Sequence[str] = ("HR", "Precision", "Recall", "NDCG", "MAP"), exclude: Any = None) -> pd.DataFrame:
    """Full-ranking metrics of a fitted model on ``test`` at every ``k``: a tidy ``k, metric, value`` table.

    Ranks once at ``max(ks)`` (training items excluded, as in the ranking protocols) and cuts the
    lists, so every k sees the same ranking.
    """
    from recforge.evaluation.protocols import RANKING_METRICS

    ks = sorted({int(k) for k in ks})
    if not ks or ks[0] <= 0:
        raise ConfigError(f"ks must be positive integers, got {ks!r}")
    unknown = [m for m in metrics if m not in RANKING_METRICS]
    if unknown:
        raise ConfigError(f"unknown metric(s) {unknown}; use {', '.join(RANKING_METRICS)}")
    truth_all = test.csr()
    users = np.flatnonzero(np.diff(truth_all.indptr) > 0)
    kmax = ks[-1]
    recs = np.empty((len(users), clamp_k(kmax, len(model.items_))), dtype=np.int64)
    for s in range(0, len(users), 2048):
        recs[s : s + 2048], _ = model.recommend_indices(users[s : s + 2048], kmax, exclude_seen=True, exclude=exclude)
    truth = truth_all[users]
    rows = []
    for k in ks:
        for m in metrics:
            rows.append({"k": k, "metric": m, "value": float(np.nanmean(RANKING_METRICS[m](recs[:, :k], truth, k)))})
    return pd.DataFrame(rows)


def plot_metric_vs_k(table: pd.DataFrame, path: str | Path, *, title: str = "metrics vs k") -> Path:
    """Plot a :func:`metric_at_ks` table (one line per metric; a ``model`` column gives one panel each)."""
    plt = _plt()
    models = list(table["model"].unique()) if "model" in table.columns else [None]
    fig, axes = plt.subplots(1, len(models), figsize=(6 * len(models), 4), squeeze=False)
    for ax, mdl in zip(axes[0], models, strict=True):
        sub = table if mdl is None else table[table["model"] == mdl]
        for metric, grp in sub.groupby("metric", sort=False):
            ax.plot(grp["k"], grp["value"], marker="o", ms=3, label=str(metric))
        ax.set_xlabel("k")
        ax.set_ylabel("value")
        ax.set_xscale("log")
        ax.set_title(title if mdl is None else f"{mdl}")
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return path

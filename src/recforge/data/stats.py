"""Descriptive statistics of an interaction log: size, sparsity, rating distribution, long tail."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from recforge.data.interactions import Interactions


@dataclass(frozen=True)
class Stats:
    """Summary statistics (all counts over rows; sparsity over the vocabularies)."""

    name: str
    n_users: int
    n_items: int
    n_interactions: int
    sparsity: float
    explicit: bool
    rating_distribution: dict[str, int]
    mean_value: float
    per_user: dict[str, float]
    per_item: dict[str, float]
    top10pct_item_share: float
    has_timestamps: bool
    signals: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per named signal (:func:`signal_stats`): kind, count of non-missing values, mean, min, max, share of zeros."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _describe(counts: np.ndarray) -> dict[str, float]:
    return {
        "min": int(counts.min()), "median": float(np.median(counts)), "mean": float(counts.mean()),
        "max": int(counts.max()),
    }


def signal_stats(signals: Mapping[str, np.ndarray], kinds: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """Per signal: ``kind``, ``count`` (non-missing values), ``missing``, ``mean``, ``min``, ``max``
    and ``zero_share`` (share of the non-missing values that are 0); the numbers are None when
    every value is missing."""
    out: dict[str, dict[str, Any]] = {}
    for name, arr in signals.items():
        v = np.asarray(arr, dtype=np.float64)
        ok = v[~np.isnan(v)]
        have = len(ok) > 0
        out[name] = {
            "kind": kinds.get(name, "count"), "count": int(len(ok)), "missing": int(len(v) - len(ok)),
            "mean": float(ok.mean()) if have else None, "min": float(ok.min()) if have else None,
            "max": float(ok.max()) if have else None, "zero_share": float((ok == 0).mean()) if have else None,
        }
    return out


def compute_stats(data: Interactions) -> Stats:
    """Users, items, interactions, sparsity ``1 - nnz / (n_users * n_items)``, distributions.

    ``top10pct_item_share`` is the share of interactions on the 10% most popular items (long tail).
    """
    ucount = data.user_counts()
    icount = data.item_counts()
    dist: dict[str, int] = {}
    if data.explicit:
        vals, cnt = np.unique(data.values, return_counts=True)
        if len(vals) <= 20:
            dist = {_label(v): int(c) for v, c in zip(vals, cnt, strict=True)}
        else:
            hist, edges = np.histogram(data.values, bins=10)
            dist = {f"[{edges[j]:.3g}, {edges[j + 1]:.3g})": int(hist[j]) for j in range(10)}
    top = np.sort(icount)[::-1]
    n_top = max(1, int(np.ceil(0.1 * len(top))))
    return Stats(
        name=data.name, n_users=data.n_users, n_items=data.n_items, n_interactions=len(data),
        sparsity=float(data.sparsity), explicit=data.explicit, rating_distribution=dist,
        mean_value=float(data.values.mean()), per_user=_describe(ucount), per_item=_describe(icount),
        top10pct_item_share=float(top[:n_top].sum() / max(1, top.sum())),
        has_timestamps=data.timestamps is not None, signals=signal_stats(data.signals, data.signal_kinds),
    )


def _label(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:g}"


def plot_stats(data: Interactions, out_dir: str | Path) -> list[Path]:
    """Write ``rating_distribution.png`` (explicit data) and ``long_tail.png``; returns the paths."""
    from recforge._optional import require

    require("matplotlib", purpose="plots")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from recforge.io import atomic_path

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    st = compute_stats(data)
    if st.rating_distribution:
        fig, ax = plt.subplots(figsize=(6, 4))
        labels = list(st.rating_distribution)
        ax.bar(labels, list(st.rating_distribution.values()), color="#4c72b0")
        ax.set_xlabel("rating")
        ax.set_ylabel("count")
        ax.set_title(f"{data.name}: rating distribution")
        fig.tight_layout()
        with atomic_path(out / "rating_distribution.png") as tmp:
            fig.savefig(tmp, dpi=100, format="png")
        plt.close(fig)
        paths.append(out / "rating_distribution.png")
    counts = np.sort(data.item_counts())[::-1]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(np.arange(1, len(counts) + 1), counts, color="#dd8452")
    ax.set_yscale("log")
    ax.set_xlabel("item rank by popularity")
    ax.set_ylabel("interactions (log scale)")
    ax.set_title(f"{data.name}: long tail ({st.top10pct_item_share:.0%} of interactions on top 10% items)")
    fig.tight_layout()
    with atomic_path(out / "long_tail.png") as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    paths.append(out / "long_tail.png")
    return paths

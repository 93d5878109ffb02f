"""The Data page's PNG plots, rendered in memory.

The rating distribution and the long tail are :func:`recforge.data.stats.plot_stats`'s (the
``data stats --plot`` files); user activity and the sparsity picture are drawn here.
"""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import numpy as np

from recforge.data.interactions import Interactions

__all__ = ["PLOTS", "render_plot"]

PLOTS = {
    "rating_distribution": "Rating distribution",
    "long_tail": "Long tail of item popularity",
    "activity": "User activity",
    "sparsity": "Sparsity: where the interactions are",
}


def _pyplot():  # type: ignore[no-untyped-def]
    from recforge._optional import require

    require("matplotlib", purpose="plots")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:  # type: ignore[no-untyped-def]
    buf = io.BytesIO()
    fig.savefig(buf, dpi=90, format="png")
    _pyplot().close(fig)
    return buf.getvalue()


def render_plot(data: Interactions, kind: str) -> bytes | None:
    """The PNG bytes of one plot, or None where it does not apply (no ratings to plot)."""
    if kind in ("rating_distribution", "long_tail"):
        from recforge.data.stats import plot_stats

        with tempfile.TemporaryDirectory(prefix="recforge-ui-") as tmp:
            for p in plot_stats(data, tmp):
                if p.stem == kind:
                    return Path(p).read_bytes()
        return None
    plt = _pyplot()
    if kind == "activity":
        counts = data.user_counts()
        fig, ax = plt.subplots(figsize=(6, 4))
        hi = max(2, int(counts.max()))
        bins = np.unique(np.geomspace(1, hi + 1, num=min(40, hi + 1)).astype(int))
        ax.hist(counts, bins=bins, color="#4c72b0")
        ax.set_xscale("log")
        ax.set_xlabel("interactions per user (log scale)")
        ax.set_ylabel("users")
        ax.set_title(f"{data.name}: user activity (median {np.median(counts):g})")
        fig.tight_layout()
        return _png(fig)
    if kind == "sparsity":
        # users and items sorted by activity, binned onto a grid: the density of each cell
        urank = np.argsort(np.argsort(-data.user_counts(), kind="stable"), kind="stable")
        irank = np.argsort(np.argsort(-data.item_counts(), kind="stable"), kind="stable")
        gu, gi = min(200, data.n_users), min(200, data.n_items)
        h, _, _ = np.histogram2d(urank[data.user_idx], irank[data.item_idx], bins=(gu, gi),
                                 range=((0, data.n_users), (0, data.n_items)))
        cell = (data.n_users / gu) * (data.n_items / gi)
        fig, ax = plt.subplots(figsize=(6, 4))
        im = ax.imshow(h / cell, aspect="auto", cmap="viridis", interpolation="nearest", origin="upper")
        fig.colorbar(im, ax=ax, label="density")
        ax.set_xlabel("items, most popular first")
        ax.set_ylabel("users, most active first")
        ax.set_title(f"{data.name}: sparsity {data.sparsity:.4f}")
        ax.set_xticks([])
        ax.set_yticks([])
        fig.tight_layout()
        return _png(fig)
    return None

"""Plots: UMAP of embeddings (PNG + interactive HTML), learning curves, metric-vs-k, data statistics.

The rating distribution and the long tail are :func:`recforge.data.stats.plot_stats`
(re-exported here as :func:`plot_data`).
"""

from __future__ import annotations

from recforge.data.stats import plot_stats as plot_data
from recforge.viz.curves import metric_at_ks, plot_learning_curve, plot_metric_vs_k
from recforge.viz.embeddings import model_embeddings, plot_embeddings, plot_model_embeddings, umap_2d

__all__ = ["metric_at_ks", "model_embeddings", "plot_data", "plot_embeddings", "plot_learning_curve", "plot_metric_vs_k",
           "plot_model_embeddings", "umap_2d"]

"""Per-user drill-down and the embedding map.

Drill-down: each served model is refitted (same class and hyperparameters, seed 0) on the
``loo-full`` protocol's training part (:func:`recforge.splits.leave_one_out`: each user's latest
interaction held out), and the page shows where each model ranks the user's held-out item among
the items the user had not seen: the rank the ``loo-full`` metrics are computed from.

Embedding map: the UMAP projection (:func:`recforge.viz.umap_2d`, seed 0) of a model's item
vectors, as a plotly figure (drawn by the plotly.js that ships with the plotly package), coloured
by first genre, with the selected user's items drawn on top.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from recforge.config import FitOptions
from recforge.data.interactions import Interactions
from recforge.ui.catalog import Catalog

__all__ = ["embedding_figure", "fit_holdout", "holdout_ranks", "item_coords", "user_history"]

_PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f"]


def user_history(data: Interactions, catalog: Catalog, user_id: Any) -> list[dict[str, Any]]:
    """The user's interactions in the dataset, latest first (by timestamp, else as stored)."""
    u = data.users.index_one(user_id)
    if u < 0:
        return []
    rows = np.flatnonzero(data.user_idx == u)
    if data.timestamps is not None:
        rows = rows[np.argsort(-data.timestamps[rows], kind="stable")]
    out = []
    for r in rows.tolist():
        j = int(data.item_idx[r])
        entry = catalog.info(j)
        entry["value"] = float(data.values[r])
        entry["timestamp"] = None if data.timestamps is None else int(data.timestamps[r])
        out.append(entry)
    return out


def fit_holdout(models: list[tuple[str, Any]], data: Interactions) -> dict[str, Any]:
    """``{"split": the loo split, "models": {label: a clone fitted on its train part}}``."""
    from recforge.splits import leave_one_out

    split = leave_one_out(data, seed=0)
    fitted = {label: model.clone().fit(split.train, FitOptions(seed=0)) for label, model in models}
    return {"split": split, "models": fitted}


def holdout_ranks(holdout: dict[str, Any], catalog: Catalog, user_id: Any, k: int = 10) -> dict[str, Any]:
    """The user's held-out items and, per model, their rank among the unseen items and the top k.

    Rank 1 is the top; an item the model cannot score (unknown to it) has rank None. Ties count
    in the item's favour (rank = 1 + items scored strictly higher).
    """
    split = holdout["split"]
    test = split.test
    u = test.users.index_one(user_id)
    held = [] if u < 0 else test.items.ids[test.item_idx[test.user_idx == u]].tolist()
    out: dict[str, Any] = {"heldout": [catalog.info(catalog.index(x)) if catalog.index(x) >= 0 else
                                       {"item_id": x, "title": str(x), "genres": [], "year": None, "n": 0}
                                       for x in held], "models": []}
    for label, model in holdout["models"].items():
        row = np.asarray(model.score_all(user_id), np.float64)
        ui = model.users_.index_one(user_id)
        if ui >= 0:
            seen = model.seen_[ui].indices
            row = row.copy()
            row[seen] = np.nan
        ranks = []
        for x in held:
            j = model.items_.index_one(x)
            if j < 0 or not np.isfinite(row[j]):
                ranks.append(None)
            else:
                ranks.append(int(1 + np.sum(row[np.isfinite(row)] > row[j])))
        ids, _ = model.recommend(user_id, k=k)
        top = [catalog.info(catalog.index(x)) | {"hit": x in held} for x in np.asarray(ids).tolist()
               if catalog.index(x) >= 0]
        out["models"].append({"label": label, "ranks": ranks, "top": top, "known": bool(model.knows_user(user_id))})
    return out


def item_coords(model: Any, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(raw item ids, 2-D UMAP coordinates)`` of the items the model learned vectors for."""
    from recforge.viz import model_embeddings, umap_2d

    _, iv = model_embeddings(model)
    known = np.asarray(model.item_known_, bool)
    return model.items_.ids[known], umap_2d(np.asarray(iv)[known], seed=seed)


def embedding_figure(ids: np.ndarray, xy: np.ndarray, catalog: Catalog, highlight: list[Any],
                     title: str) -> dict[str, Any]:
    """A plotly figure (as a dict) of the item map: one trace per first genre (the 8 largest,
    the rest as "other"), and the highlighted items as a last trace drawn on top."""
    idx = np.array([catalog.index(x) for x in ids.tolist()])
    first = np.array([catalog.genres[j][0] if j >= 0 and catalog.genres[j] else "none" for j in idx.tolist()])
    names, counts = np.unique(first, return_counts=True)
    top = [str(n) for n in names[np.argsort(-counts, kind="stable")][:8]]
    group = np.where(np.isin(first, top), first, "other")
    text = [catalog.titles[j] if j >= 0 else str(x) for j, x in zip(idx.tolist(), ids.tolist(), strict=True)]
    traces: list[dict[str, Any]] = []
    for c, g in enumerate([*top, "other"]):
        sel = np.flatnonzero(group == g)
        if not len(sel):
            continue
        traces.append({
            "type": "scatter", "mode": "markers", "name": g, "x": xy[sel, 0].round(4).tolist(),
            "y": xy[sel, 1].round(4).tolist(), "text": [text[s] for s in sel.tolist()],
            "hovertemplate": "%{text}<extra>" + g + "</extra>",
            "marker": {"size": 5, "opacity": 0.6, "color": _PALETTE[c % len(_PALETTE)]},
        })
    keys = {str(x) for x in highlight}
    hl = np.flatnonzero([str(x) in keys for x in ids.tolist()])
    if len(hl):
        traces.append({
            "type": "scatter", "mode": "markers", "name": "this user's items", "x": xy[hl, 0].round(4).tolist(),
            "y": xy[hl, 1].round(4).tolist(), "text": [text[s] for s in hl.tolist()],
            "hovertemplate": "%{text}<extra>history</extra>",
            "marker": {"size": 11, "color": "#ffcc00", "line": {"width": 2, "color": "#000000"}, "symbol": "diamond"},
        })
    layout = {"title": {"text": title}, "height": 560, "margin": {"l": 30, "r": 10, "t": 50, "b": 30},
              "xaxis": {"showticklabels": False, "title": {"text": "UMAP 1"}},
              "yaxis": {"showticklabels": False, "title": {"text": "UMAP 2"}},
              "legend": {"orientation": "h"}, "hovermode": "closest"}
    return {"data": traces, "layout": layout}

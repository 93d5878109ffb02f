"""UMAP maps of user or item embeddings: a PNG and an interactive plotly page with titles on hover."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recforge._optional import require
from recforge.errors import ConfigError, DataError
from recforge.io import atomic_path, atomic_write


def umap_2d(vectors: np.ndarray, *, seed: int = 0, n_neighbors: int = 15, min_dist: float = 0.1,
            metric: str = "cosine") -> np.ndarray:
    """2-D UMAP coordinates of ``vectors`` (rows), deterministic under ``seed``.

    umap-learn runs single-threaded when given a seed, which is what makes the map reproducible.
    """
    umap = require("umap", purpose="embedding plots")
    x = np.asarray(vectors, dtype=np.float32)
    if x.ndim != 2 or len(x) < 4:
        raise DataError(f"need a 2-D array of at least 4 vectors for UMAP, got shape {x.shape}")
    reducer = umap.UMAP(n_components=2, n_neighbors=min(n_neighbors, len(x) - 1), min_dist=min_dist, metric=metric,
                        random_state=seed, n_jobs=1, init="spectral" if len(x) > 20 else "random")
    return np.asarray(reducer.fit_transform(x), dtype=np.float64)


def plot_embeddings(
    vectors: np.ndarray,
    out_dir: str | Path,
    *,
    labels: Sequence[str] | None = None,
    color: Sequence[Any] | None = None,
    color_label: str = "",
    title: str = "embeddings",
    basename: str = "embeddings",
    seed: int = 0,
    hover: Sequence[str] | None = None,
    coords: np.ndarray | None = None,
) -> list[Path]:
    """Project ``vectors`` with UMAP and write ``<basename>.png``, ``<basename>.html`` and ``<basename>.csv``.

    Args:
        vectors: One row per point.
        out_dir: Output folder.
        labels: Names shown on hover (e.g. movie titles); row numbers when None.
        color: One value per point: strings colour by category (one legend entry each), numbers
            by a continuous scale.
        color_label: Name of the colour variable (legend / colour-bar title).
        title: Plot title.
        basename: File name stem.
        seed: UMAP seed.
        hover: Extra hover text per point (e.g. all genres).
        coords: Precomputed 2-D coordinates (skips UMAP).

    Returns:
        The PNG, HTML and CSV paths. The CSV holds ``label, color, x, y`` per point.
    """
    require("matplotlib", purpose="plots")
    go = require("plotly.graph_objects", purpose="interactive plots")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(vectors) if coords is None else len(coords)
    xy = umap_2d(vectors, seed=seed) if coords is None else np.asarray(coords, dtype=np.float64)
    names = [str(s) for s in labels] if labels is not None else [str(j) for j in range(n)]
    if len(names) != n or (color is not None and len(color) != n) or (hover is not None and len(hover) != n):
        raise ConfigError("labels, color and hover must have one entry per vector")
    categorical = color is not None and not np.issubdtype(np.asarray(color).dtype, np.number)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    texts = [f"{nm}<br>{h}" if hover is not None else nm for nm, h in zip(names, hover or names, strict=True)]

    # PNG
    fig, ax = plt.subplots(figsize=(8, 7))
    if categorical:
        cats = pd.Series(np.asarray(color, dtype=str))
        order = cats.value_counts().index.tolist()
        cmap = plt.get_cmap("tab20")
        for j, cat in enumerate(order):
            sel = (cats == cat).to_numpy()
            ax.scatter(xy[sel, 0], xy[sel, 1], s=8, color=cmap(j % 20), label=f"{cat} ({sel.sum()})", alpha=0.8)
        ax.legend(fontsize=7, markerscale=2, loc="best", title=color_label or None, ncol=2 if len(order) > 10 else 1)
    else:
        sc = ax.scatter(xy[:, 0], xy[:, 1], s=8, c=None if color is None else np.asarray(color, dtype=float),
                        cmap="viridis", alpha=0.8)
        if color is not None:
            fig.colorbar(sc, ax=ax, label=color_label)
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    png = out / f"{basename}.png"
    with atomic_path(png) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)

    # HTML
    traces = []
    if categorical:
        cats_arr = np.asarray(color, dtype=str)
        for cat in pd.Series(cats_arr).value_counts().index:
            sel = np.flatnonzero(cats_arr == cat)
            traces.append(go.Scatter(x=xy[sel, 0], y=xy[sel, 1], mode="markers", name=str(cat),
                                     hovertext=[texts[j] for j in sel], hoverinfo="text", marker={"size": 6}))
    else:
        marker: dict[str, Any] = {"size": 6}
        if color is not None:
            marker.update(color=np.asarray(color, dtype=float), colorscale="Viridis", showscale=True,
                          colorbar={"title": {"text": color_label}})
        traces.append(go.Scatter(x=xy[:, 0], y=xy[:, 1], mode="markers", name=basename, hovertext=texts,
                                 hoverinfo="text", marker=marker))
    pfig = go.Figure(traces)
    pfig.update_layout(title={"text": title}, template="plotly_white", xaxis={"visible": False},
                       yaxis={"visible": False}, legend={"title": {"text": color_label}}, width=900, height=750)
    html = out / f"{basename}.html"
    with atomic_write(html) as fh:
        # plotly.js inlined: the page works offline, with no CDN
        fh.write(pfig.to_html(include_plotlyjs=True, full_html=True))

    csv = out / f"{basename}.csv"
    frame = pd.DataFrame({"label": names, "color": list(color) if color is not None else "", "x": xy[:, 0],
                          "y": xy[:, 1]})
    with atomic_write(csv) as fh:
        frame.to_csv(fh, index=False)
    return [png, html, csv]


def model_embeddings(model: Any) -> tuple[np.ndarray, np.ndarray]:
    """``model.embeddings()`` as numpy arrays, for models that declare ``has_embeddings``.

    Raises:
        NotImplementedError: When the model has no user and item vectors.
    """
    if not getattr(model, "has_embeddings", False):
        raise NotImplementedError(f"{type(model).__name__} has no embeddings (has_embeddings is False)")
    uv, iv = model.embeddings()
    return np.asarray(uv), np.asarray(iv)


def _first_genre(genres: pd.Series) -> pd.Series:
    return genres.fillna("").astype(str).map(lambda g: g.split("|")[0] if g else "unknown")


def plot_model_embeddings(
    model: Any,
    out_dir: str | Path,
    *,
    data: Any = None,
    which: str = "items",
    color_by: str = "popularity",
    seed: int = 0,
    title: str | None = None,
    max_points: int | None = None,
) -> list[Path]:
    """UMAP map of a fitted model's item (or user) embeddings.

    Only items (users) with training data are drawn. Hover shows the title (item feature
    ``title``, else the raw id) and the genres. ``color_by``: ``"popularity"`` (log of the
    training interaction count), ``"genre"`` (the first genre in the ``genres`` feature), or any
    item/user feature column.

    Args:
        model: A fitted model with :meth:`embeddings`.
        out_dir: Output folder; files are ``{items,users}_embeddings.{png,html,csv}``.
        data: Interactions carrying the side features (titles, genres); optional.
        which: ``"items"`` or ``"users"``.
        color_by: See above.
        seed: UMAP seed.
        title: Plot title.
        max_points: Draw at most this many (the most popular), for very large catalogues.
    """
    if which not in ("items", "users"):
        raise ConfigError(f"which must be 'items' or 'users', not {which!r}")
    uv, iv = model_embeddings(model)
    vectors = np.asarray(iv if which == "items" else uv)
    known = np.asarray(model.item_known_ if which == "items" else model.user_known_)
    counts = np.asarray(model.seen_.sum(axis=0 if which == "items" else 1)).ravel()
    idx = np.flatnonzero(known)
    if max_points is not None and len(idx) > max_points:
        idx = idx[np.argsort(-counts[idx], kind="stable")[:max_points]]
        idx.sort()
    vocab = model.items_ if which == "items" else model.users_
    raw = vocab.ids[idx]
    feats = None
    if data is not None:
        feats = data.item_features if which == "items" else data.user_features
    labels = [str(r) for r in raw]
    hover = None
    if feats is not None:
        sub = feats.reindex(raw)
        if "title" in sub.columns:
            labels = [str(t) if isinstance(t, str) else str(r) for t, r in zip(sub["title"], raw, strict=True)]
        if "genres" in sub.columns:
            hover = [f"genres: {g}" if isinstance(g, str) else "" for g in sub["genres"]]
    if color_by == "popularity":
        color: Any = np.log10(1.0 + counts[idx])
        color_label = "log10(1 + training interactions)"
        if hover is None:
            hover = [f"interactions: {int(c)}" for c in counts[idx]]
        else:
            hover = [f"{h}<br>interactions: {int(c)}" for h, c in zip(hover, counts[idx], strict=True)]
    else:
        if feats is None:
            raise ConfigError(f"color_by={color_by!r} needs side features: pass data with {which[:-1]} features")
        sub = feats.reindex(raw)
        if color_by == "genre":
            if "genres" not in sub.columns:
                raise ConfigError("color_by='genre' needs a 'genres' feature column")
            color = _first_genre(sub["genres"]).to_numpy()
            color_label = "first genre"
        elif color_by in sub.columns:
            col = sub[color_by]
            color = col.to_numpy() if pd.api.types.is_numeric_dtype(col) else col.astype(str).to_numpy()
            color_label = color_by
        else:
            raise ConfigError(f"color_by={color_by!r}: no such feature; use popularity, genre or one of "
                              f"{', '.join(map(str, sub.columns))}")
    return plot_embeddings(
        vectors[idx], out_dir, labels=labels, color=color, color_label=color_label, hover=hover,
        title=title or f"{model.name}: {which} embeddings (UMAP)", basename=f"{which}_embeddings", seed=seed,
    )

"""Plots: each file exists, is a valid PNG or HTML page, and holds the expected number of points."""

from __future__ import annotations

import base64
import json
import re

import numpy as np
import pandas as pd
import pytest

from recforge.config import FitOptions
from recforge.models.registry import get_model_class
from recforge.testing.datasets import checkerboard, toy_ratings

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def png_shape(path):
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, f"{path} is not a PNG"
    import matplotlib.image as mpimg

    img = mpimg.imread(path)
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100
    return img.shape


def plotly_traces(path):
    """The traces of the first plotly figure in an HTML page (typed arrays decoded)."""
    from html.parser import HTMLParser

    text = path.read_text()
    assert text.lstrip().lower().startswith(("<!doctype html", "<html")) and text.rstrip().lower().endswith("</html>")

    class Tags(HTMLParser):
        def __init__(self):
            super().__init__()
            self.seen = set()

        def handle_starttag(self, tag, attrs):
            self.seen.add(tag)

    parser = Tags()
    parser.feed(text)
    assert {"html", "head", "body", "script", "div"} <= parser.seen
    m = re.search(r'Plotly\.newPlot\(\s*"[^"]+",\s*(\[.*?\])\s*,\s*\{', text, re.DOTALL)
    assert m, "no Plotly.newPlot call"
    traces = json.loads(m.group(1))
    for t in traces:
        for axis in ("x", "y"):
            v = t[axis]
            if isinstance(v, dict):  # plotly >= 6 writes numbers as base64 typed arrays
                t[axis] = np.frombuffer(base64.b64decode(v["bdata"]), dtype=v["dtype"]).tolist()
    return traces


def test_embeddings_categorical_png_html_csv(tmp_path):
    pytest.importorskip("plotly")
    from recforge.viz import plot_embeddings

    rng = np.random.default_rng(0)
    n = 37
    coords = rng.normal(size=(n, 2))
    genres = np.array(["Drama", "Comedy", "Action"])[rng.integers(0, 3, n)]
    titles = [f"Movie {j} (19{j:02d})" for j in range(n)]
    png, html, csv = plot_embeddings(np.zeros((n, 4)), tmp_path, labels=titles, color=genres, coords=coords,
                                     color_label="genre", title="toy map", basename="toy")
    png_shape(png)
    traces = plotly_traces(html)
    assert sorted(t["name"] for t in traces) == ["Action", "Comedy", "Drama"]
    assert sum(len(t["x"]) for t in traces) == n
    hover = [h for t in traces for h in t["hovertext"]]
    assert sorted(hover) == sorted(titles)
    for t in traces:  # each point sits where the coordinates say, under its own title
        for x, y, h in zip(t["x"], t["y"], t["hovertext"], strict=True):
            j = titles.index(h)
            assert (x, y) == pytest.approx(tuple(coords[j])) and genres[j] == t["name"]
    assert "toy map" in html.read_text()
    frame = pd.read_csv(csv)
    assert len(frame) == n and frame["label"].tolist() == titles


def test_embeddings_numeric_colour_single_trace(tmp_path):
    pytest.importorskip("plotly")
    from recforge.viz import plot_embeddings

    n = 12
    png, html, _ = plot_embeddings(np.zeros((n, 3)), tmp_path, color=np.arange(n, dtype=float), coords=np.eye(n, 2),
                                   basename="num")
    png_shape(png)
    traces = plotly_traces(html)
    assert len(traces) == 1 and len(traces[0]["x"]) == n and traces[0]["hovertext"] == [str(j) for j in range(n)]


def test_learning_curve_and_metric_vs_k(tmp_path):
    from recforge.evaluation.protocols import full_ranking
    from recforge.splits import leave_one_out
    from recforge.viz import metric_at_ks, plot_learning_curve, plot_metric_vs_k

    path = plot_learning_curve({"epoch": [0, 1, 2], "train_loss": [3, 2, 1.5], "val_rmse": [1.2, 1.1, 1.15]},
                               tmp_path / "lc.png")
    assert png_shape(path)[1] > png_shape(plot_learning_curve({"train_loss": [3, 2]}, tmp_path / "lc1.png"))[1]

    split = leave_one_out(checkerboard(20))
    model = get_model_class("item-knn-implicit")({"n_neighbors": 5}).fit(split.train)
    table = metric_at_ks(model, split.test, ks=(1, 2, 5, 10))
    assert set(table["k"]) == {1, 2, 5, 10} and len(table) == 4 * 5
    hr = table[table["metric"] == "HR"].sort_values("k")["value"].to_numpy()
    assert np.all(np.diff(hr) >= 0)  # hit rate cannot fall as the list grows
    per, _, _ = full_ranking(model, split.test, 5, ("NDCG",))
    ndcg5 = table[(table["metric"] == "NDCG") & (table["k"] == 5)]["value"].item()
    assert ndcg5 == pytest.approx(float(np.nanmean(per["NDCG@5"])))  # same numbers as the protocols
    png_shape(plot_metric_vs_k(table, tmp_path / "mk.png"))


def test_data_plots_are_reused(tmp_path):
    from recforge.viz import plot_data

    paths = plot_data(toy_ratings(), tmp_path)
    assert [p.name for p in paths] == ["rating_distribution.png", "long_tail.png"]
    for p in paths:
        png_shape(p)


@pytest.mark.slow
def test_umap_is_seeded_and_model_map_has_one_point_per_known_item(tmp_path):
    pytest.importorskip("umap")
    pytest.importorskip("plotly")
    from recforge.viz import plot_model_embeddings, umap_2d

    x = np.random.default_rng(1).normal(size=(60, 8))
    a, b = umap_2d(x, seed=3), umap_2d(x, seed=3)
    assert a.shape == (60, 2) and np.array_equal(a, b)

    data = toy_ratings(n_users=50, n_items=40)
    model = get_model_class("svd")({"epochs": 3, "embedding_size": 6}).fit(data, FitOptions(seed=0))
    feats = pd.DataFrame({"title": [f"Film {i}" for i in data.items.ids],
                          "genres": ["Drama|War" if i % 2 else "Comedy" for i in data.items.ids]},
                         index=data.items.ids)
    png, html, _ = plot_model_embeddings(model, tmp_path, data=data.with_features(None, feats), color_by="genre")
    png_shape(png)
    traces = plotly_traces(html)
    assert sum(len(t["x"]) for t in traces) == int(model.item_known_.sum())
    assert {t["name"] for t in traces} == {"Drama", "Comedy"}
    assert any(h.startswith("Film ") and "genres: Drama|War" in h for t in traces for h in t["hovertext"])


def test_model_embeddings_are_the_public_embeddings():
    pytest.importorskip("lightning")
    from recforge.viz import model_embeddings

    data = toy_ratings(n_users=20, n_items=15).to_implicit()
    model = get_model_class("neumf")({"epochs": 1, "embedding_size": 4, "hidden": [8, 4]})
    model.fit(data, FitOptions(seed=0, threads=1))
    assert model.has_embeddings
    uv, iv = model_embeddings(model)
    want_u, want_i = model.embeddings()
    assert isinstance(uv, np.ndarray) and isinstance(iv, np.ndarray)
    np.testing.assert_array_equal(uv, want_u)
    np.testing.assert_array_equal(iv, want_i)
    # NeuMF's vectors: its GMF table (4) then its MLP table (8 / 2)
    assert uv.shape == (len(model.users_), 8) and iv.shape == (len(model.items_), 8)
    net = model._net
    np.testing.assert_array_equal(iv[:, :4], net.gmf_item.weight.detach().numpy())
    np.testing.assert_array_equal(iv[:, 4:], net.mlp_item.weight.detach().numpy())


def test_model_embeddings_refuses_models_without_them():
    from recforge.viz import model_embeddings

    model = get_model_class("popularity")().fit(toy_ratings(n_users=20, n_items=15))
    assert not model.has_embeddings
    with pytest.raises(NotImplementedError, match="has no embeddings"):
        model_embeddings(model)

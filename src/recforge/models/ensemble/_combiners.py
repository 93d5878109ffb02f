"""The blend's combiners: a ridge regression and boosted regression trees over member predictions.

Both learn ``f(x) ~ r`` from rows ``x`` (member predictions, optionally log support counts) and
held-out ratings ``r``; both are kept as plain arrays (no pickle) so that a saved blend reloads
without scikit-learn.
"""

from __future__ import annotations

import numpy as np

__all__ = ["fit_gbdt", "fit_ridge", "predict_trees"]

#: column order of the node table written by :func:`fit_gbdt`
_FEATURE, _THRESHOLD, _LEFT, _RIGHT, _VALUE, _MISSING_LEFT = range(6)


def fit_ridge(X: np.ndarray, y: np.ndarray, reg: float) -> tuple[np.ndarray, float]:
    r"""Ridge regression in closed form, the intercept unpenalised.

    Minimises :math:`\sum_n (y_n - b - w^\top x_n)^2 + \mathrm{reg}\,\|w\|^2`: with centred
    :math:`X_c, y_c`, :math:`w = (X_c^\top X_c + \mathrm{reg}\, I)^{-1} X_c^\top y_c` and
    :math:`b = \bar y - w^\top \bar x` (least squares when ``reg`` is 0; a least-squares solve
    then copes with collinear columns).

    Returns:
        ``(w, b)``.
    """
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    x_mean, y_mean = X.mean(axis=0), float(y.mean())
    Xc, yc = X - x_mean, y - y_mean
    A = Xc.T @ Xc + reg * np.eye(X.shape[1])
    if reg > 0:
        w = np.linalg.solve(A, Xc.T @ yc)
    else:
        w = np.linalg.lstsq(Xc, yc, rcond=None)[0]
    return w, y_mean - float(w @ x_mean)


def fit_gbdt(X: np.ndarray, y: np.ndarray, *, n_trees: int, learning_rate: float, max_leaf_nodes: int,
             min_samples_leaf: int, l2_regularization: float, seed: int,
             threads: int = 1) -> tuple[np.ndarray, np.ndarray, float]:
    """Gradient-boosted regression trees (squared error) by scikit-learn's histogram booster.

    Fixed ``n_trees`` rounds, no internal early stopping (its random hold-out would change with
    the data size). The booster runs on ``threads`` OpenMP threads: a blend's carve is small, and
    OpenMP threads spin-wait for each other on a busy machine. The fitted trees are read out into one node table so that prediction
    (:func:`predict_trees`) and persistence need no scikit-learn.

    Returns:
        ``(nodes, roots, baseline)``: ``nodes`` has one row per tree node, columns feature (``-1``
        for a leaf), threshold (``x <= threshold`` goes left), left child, right child, value
        (leaves), missing-goes-left; ``roots`` the row of each tree's root; ``baseline`` the
        constant the trees' leaf values are added to.
    """
    from recforge._optional import require

    require("sklearn", purpose="the blend's 'gbdt' combiner")
    from sklearn.ensemble import HistGradientBoostingRegressor

    model = HistGradientBoostingRegressor(
        max_iter=n_trees, learning_rate=learning_rate, max_leaf_nodes=max_leaf_nodes,
        min_samples_leaf=min_samples_leaf, l2_regularization=l2_regularization, early_stopping=False,
        random_state=seed)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=threads, user_api="openmp"):
        model.fit(np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.float64))
    tables, roots, offset = [], [], 0
    # scikit-learn keeps the trees as TreePredictor node records (one per boosting round for a
    # regressor); their fields are stable since 0.21, and the test against model.predict guards them
    for round_trees in model._predictors:
        for tree in round_trees:
            n = tree.nodes
            t = np.empty((len(n), 6))
            t[:, _FEATURE] = np.where(n["is_leaf"], -1, n["feature_idx"])
            t[:, _THRESHOLD] = n["num_threshold"]
            t[:, _LEFT] = n["left"] + offset
            t[:, _RIGHT] = n["right"] + offset
            t[:, _VALUE] = n["value"]
            t[:, _MISSING_LEFT] = n["missing_go_to_left"]
            tables.append(t)
            roots.append(offset)
            offset += len(n)
    nodes = np.concatenate(tables) if tables else np.zeros((0, 6))
    return nodes, np.asarray(roots, dtype=np.int64), float(np.ravel(model._baseline_prediction)[0])


def predict_trees(nodes: np.ndarray, roots: np.ndarray, baseline: float, X: np.ndarray,
                  block: int = 1 << 15) -> np.ndarray:
    """``baseline`` plus the sum over trees of the leaf each row of ``X`` reaches (NaN follows the
    node's missing-value direction); rows are walked down every tree at once, ``block`` at a time."""
    X = np.asarray(X, dtype=np.float64)
    out = np.full(len(X), baseline)
    if not len(roots) or not len(X):
        return out
    feature = nodes[:, _FEATURE].astype(np.int64)
    threshold = nodes[:, _THRESHOLD]
    left = nodes[:, _LEFT].astype(np.int64)
    right = nodes[:, _RIGHT].astype(np.int64)
    missing_left = nodes[:, _MISSING_LEFT] > 0
    step = max(1, block // len(roots))
    for s in range(0, len(X), step):
        x = X[s : s + step]
        rows = np.arange(len(x))[None, :]
        at = np.repeat(roots[:, None], len(x), axis=1)  # (trees, rows): the node each row is at
        while True:
            f = feature[at]
            inner = f >= 0
            if not inner.any():
                break
            v = x[rows, np.maximum(f, 0)]
            go_left = np.where(np.isnan(v), missing_left[at], v <= threshold[at])
            at = np.where(inner, np.where(go_left, left[at], right[at]), at)
        out[s : s + step] += nodes[at, _VALUE].sum(axis=0)
    return out

"""Evaluation metrics as pure functions on arrays.

Nothing here sees a model: metrics take predictions, labels or recommendation lists, so saved
outputs of any tool can be scored the same way.

Ranking metrics take

* ``recs``: a 2-D integer array ``(n_users, n_cols)`` of item indices, best first, with ``-1`` for
  an empty slot (a list shorter than ``n_cols``);
* ``truth``: the relevant items of the same users, either a scipy sparse matrix with one row per
  ``recs`` row and one column per item (any stored non-zero is relevant) or a list of integer
  arrays of item indices;
* ``k``: the cut-off; the first ``k`` columns of ``recs`` are used.

They return one float per user (so protocols can average them and run paired tests); users with
no relevant item get NaN, which ``np.nanmean`` skips. An item repeated within one list counts once,
at its first position. Gains are binary.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.stats import rankdata

from recforge.errors import DataError

__all__ = [
    "average_popularity",
    "average_precision_at_k",
    "catalog_coverage",
    "hit_rate_at_k",
    "hits_at_k",
    "intra_list_diversity",
    "log_loss",
    "mae",
    "ndcg_at_k",
    "novelty",
    "precision_at_k",
    "recall_at_k",
    "reciprocal_rank_at_k",
    "rmse",
    "roc_auc",
]

Truth = sp.spmatrix | sp.sparray | Sequence[Any]


# ---------------------------------------------------------------------------------------- rating
def _paired(y_true: Any, y_pred: Any, names: tuple[str, str]) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(y_true, dtype=np.float64).ravel()
    b = np.asarray(y_pred, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise DataError(f"{names[0]} and {names[1]} differ in length ({len(a)} vs {len(b)})")
    if len(a) == 0:
        raise DataError(f"{names[0]} is empty: nothing to evaluate")
    for arr, name in ((a, names[0]), (b, names[1])):
        bad = ~np.isfinite(arr)
        if bad.any():
            raise DataError(
                f"{name} has {int(bad.sum())} non-finite value(s), first at position {int(np.argmax(bad))}"
            )
    return a, b


def rmse(y_true: Any, y_pred: Any) -> float:
    """Root mean squared error, ``sqrt(mean((y_true - y_pred)^2))``."""
    a, b = _paired(y_true, y_pred, ("y_true", "y_pred"))
    return float(np.sqrt(np.mean((a - b) ** 2)))


def mae(y_true: Any, y_pred: Any) -> float:
    """Mean absolute error, ``mean(|y_true - y_pred|)``."""
    a, b = _paired(y_true, y_pred, ("y_true", "y_pred"))
    return float(np.mean(np.abs(a - b)))


# ---------------------------------------------------------------------------------------- ranking
def _check_k(k: Any) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise DataError(f"k must be a positive integer, got {k!r}")
    return int(k)


def _top(recs: Any, k: int | None) -> np.ndarray:
    """The first ``k`` columns of ``recs`` as an int64 2-D array (all columns when k is None)."""
    arr = np.asarray(recs)
    if arr.ndim != 2:
        raise DataError(f"recs must be a 2-D array (n_users, k), got {arr.ndim} dimension(s)")
    if arr.size and arr.dtype.kind not in "iu":
        if arr.dtype.kind == "f" and np.all(np.mod(arr, 1) == 0):
            arr = arr.astype(np.int64)
        else:
            raise DataError(f"recs must hold integer item indices, got dtype {arr.dtype}")
    arr = arr.astype(np.int64, copy=False)
    if k is not None:
        arr = arr[:, : _check_k(k)]
    if arr.size and arr.min() < -1:
        raise DataError(
            f"recs holds the index {int(arr.min())}; item indices are >= 0 and -1 marks an empty slot"
        )
    return arr


def _truth_csr(truth: Truth, n_rows: int, min_items: int) -> sp.csr_matrix:
    """Canonical CSR (sorted, no duplicates, no stored zeros) of the relevant items per user."""
    if sp.issparse(truth):
        m = sp.csr_matrix(truth)
        if not m.has_canonical_format or (m.nnz and (m.data == 0).any()):
            # the converted matrix may share its arrays with the caller's, which must not change
            m = m.copy()
            m.sum_duplicates()
            m.eliminate_zeros()
    else:
        rows = [np.asarray(t, dtype=np.int64).ravel() for t in truth]
        lengths = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
        cols = np.concatenate(rows) if rows else np.empty(0, np.int64)
        if cols.size and cols.min() < 0:
            raise DataError(f"truth holds the negative item index {int(cols.min())}")
        n_items = max(int(cols.max()) + 1 if cols.size else 0, min_items)
        indptr = np.concatenate([[0], np.cumsum(lengths)])
        m = sp.csr_matrix((np.ones(len(cols), np.float32), cols, indptr), shape=(len(rows), n_items))
        m.sum_duplicates()
    if m.shape[0] != n_rows:
        raise DataError(f"truth has {m.shape[0]} rows but recs has {n_rows}; they must align user by user")
    return m


def hits_at_k(recs: Any, truth: Truth, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The hit matrix behind every ranking metric.

    Args:
        recs: ``(n_users, n_cols)`` item indices, best first, ``-1`` for an empty slot.
        truth: Relevant items per user (sparse matrix rows or a list of index arrays).
        k: Cut-off.

    Returns:
        ``(hits, n_relevant)``: a boolean ``(n_users, min(k, n_cols))`` matrix, True where the item
        at that rank is relevant (a repeated item only at its first rank), and the number of
        relevant items of each user.
    """
    top = _top(recs, k)
    n_users, width = top.shape
    m = _truth_csr(truth, n_users, int(top.max()) + 1 if top.size else 0)
    n_items = m.shape[1]
    if top.size and top.max() >= n_items:
        raise DataError(f"recs holds item index {int(top.max())} but truth has only {n_items} item columns")
    n_rel = np.diff(m.indptr).astype(np.int64)
    # one sorted key per relevant (user, item) cell; canonical CSR is already in key order
    tkeys = np.repeat(np.arange(n_users, dtype=np.int64), n_rel) * n_items + m.indices
    valid = top >= 0
    rkeys = np.arange(n_users, dtype=np.int64)[:, None] * n_items + top
    if tkeys.size:
        pos = np.minimum(np.searchsorted(tkeys, rkeys), tkeys.size - 1)
        hits = valid & (tkeys[pos] == rkeys)
    else:
        hits = np.zeros(top.shape, dtype=bool)
    if width > 1:
        order = np.argsort(top, axis=1, kind="stable")
        s = np.take_along_axis(top, order, axis=1)
        dup_sorted = np.zeros(top.shape, dtype=bool)
        dup_sorted[:, 1:] = s[:, 1:] == s[:, :-1]
        dup = np.empty_like(dup_sorted)
        np.put_along_axis(dup, order, dup_sorted, axis=1)
        hits &= ~dup
    return hits, n_rel


def _per_user(values: np.ndarray, n_rel: np.ndarray) -> np.ndarray:
    out = np.asarray(values, dtype=np.float64)
    return np.where(n_rel > 0, out, np.nan)


def hit_rate_at_k(recs: Any, truth: Truth, k: int) -> np.ndarray:
    """HR@k per user: 1 if any of the first ``k`` recommendations is relevant, else 0."""
    hits, n_rel = hits_at_k(recs, truth, k)
    return _per_user(hits.any(axis=1), n_rel)


def precision_at_k(recs: Any, truth: Truth, k: int) -> np.ndarray:
    """Precision@k per user: relevant items among the first ``k`` divided by ``k``.

    The divisor is ``k`` even when a list is shorter (empty slots count as misses).
    """
    hits, n_rel = hits_at_k(recs, truth, k)
    return _per_user(hits.sum(axis=1) / _check_k(k), n_rel)


def recall_at_k(recs: Any, truth: Truth, k: int) -> np.ndarray:
    """Recall@k per user: relevant items among the first ``k`` divided by ``|truth|``.

    This is the definition of NGCF and LightGCN (Wang et al. 2019, He et al. 2020), whose
    Recall@20 on Gowalla is the usual reference; it is below 1 for a perfect list when
    ``|truth| > k``.
    """
    hits, n_rel = hits_at_k(recs, truth, k)
    return _per_user(hits.sum(axis=1) / np.maximum(n_rel, 1), n_rel)


def _discounts(n: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(2, n + 2, dtype=np.float64))


def ndcg_at_k(recs: Any, truth: Truth, k: int) -> np.ndarray:
    """NDCG@k per user with binary gains and a log2 discount.

    ``DCG = sum_{r=1..k} rel_r / log2(r + 1)`` and the ideal DCG places ``min(|truth|, k)`` relevant
    items first, so a perfect list scores 1.
    """
    k = _check_k(k)
    hits, n_rel = hits_at_k(recs, truth, k)
    # discounts only as far as a list or an ideal list reaches: never k of them for a huge k
    depth = min(k, max(hits.shape[1], int(n_rel.max()) if len(n_rel) else 0))
    disc = _discounts(depth)
    dcg = hits.astype(np.float64) @ disc[: hits.shape[1]]
    idcg_table = np.concatenate([[0.0], np.cumsum(disc)])
    idcg = idcg_table[np.minimum(n_rel, depth)]
    return _per_user(dcg / np.where(idcg > 0, idcg, 1.0), n_rel)


def average_precision_at_k(recs: Any, truth: Truth, k: int) -> np.ndarray:
    """AP@k per user (its mean over users is MAP@k).

    ``AP@k = sum_{r <= k, rel_r} P@r / min(|truth|, k)``, where ``P@r`` is the precision of the
    first ``r`` recommendations.
    """
    k = _check_k(k)
    hits, n_rel = hits_at_k(recs, truth, k)
    prec = np.cumsum(hits, axis=1) / np.arange(1, hits.shape[1] + 1, dtype=np.float64)
    total = (prec * hits).sum(axis=1)
    return _per_user(total / np.maximum(np.minimum(n_rel, k), 1), n_rel)


def reciprocal_rank_at_k(recs: Any, truth: Truth, k: int) -> np.ndarray:
    """RR@k per user (its mean is MRR@k): ``1 / rank`` of the first relevant item, 0 if none in the top k."""
    hits, n_rel = hits_at_k(recs, truth, k)
    first = np.argmax(hits, axis=1) if hits.shape[1] else np.zeros(len(hits), np.int64)
    rr = np.where(hits.any(axis=1), 1.0 / (first + 1.0), 0.0)
    return _per_user(rr, n_rel)


# ---------------------------------------------------------------------------------------- classification
def _labels_scores(labels: Any, scores: Any, what: str) -> tuple[np.ndarray, np.ndarray]:
    y, s = _paired(labels, scores, ("labels", what))
    return y > 0, s


def roc_auc(labels: Any, scores: Any) -> float:
    """Area under the ROC curve, from ranks (ties share the average rank).

    Equals the Mann-Whitney statistic ``U / (n_pos * n_neg)``: the probability that a random
    positive scores above a random negative, a tie counting one half.

    Args:
        labels: Positive where > 0 (so 0/1, -1/1 and bool labels all work).
        scores: Higher means more likely positive.

    Returns:
        The AUC, or NaN when all labels are of one class.
    """
    y, s = _labels_scores(labels, scores, "scores")
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(s)
    u = ranks[y].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def log_loss(labels: Any, probs: Any, eps: float = 1e-15) -> float:
    """Mean binary cross-entropy ``-mean(y log p + (1 - y) log(1 - p))``.

    Args:
        labels: Positive where > 0.
        probs: Predicted probabilities of the positive class, in [0, 1].
        eps: Probabilities are clipped to ``[eps, 1 - eps]`` so a confident mistake costs a
            finite amount.
    """
    y, p = _labels_scores(labels, probs, "probs")
    if p.min() < 0 or p.max() > 1:
        raise DataError(f"probs must lie in [0, 1], got values from {p.min()} to {p.max()}")
    p = np.clip(p, eps, 1 - eps)
    return float(-np.mean(np.where(y, np.log(p), np.log1p(-p))))


# ---------------------------------------------------------------------------------------- beyond accuracy
def _item_values(values: Any, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64).ravel()
    if arr.size == 0:
        raise DataError(f"{name} is empty")
    return arr


def _gather(top: np.ndarray, per_item: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    """``per_item[top]`` with empty slots masked out, checking indices against ``per_item``."""
    valid = top >= 0
    if top.size and top.max() >= len(per_item):
        raise DataError(f"recs holds item index {int(top.max())} but {name} has only {len(per_item)} items")
    vals = np.where(valid, per_item[np.where(valid, top, 0)], 0.0)
    return vals, valid


def _mean_per_list(vals: np.ndarray, valid: np.ndarray) -> np.ndarray:
    n = valid.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, vals.sum(axis=1) / np.maximum(n, 1), np.nan)


def catalog_coverage(recs: Any, n_items: int, k: int | None = None) -> float:
    """Fraction of the ``n_items`` catalogue that appears in at least one list (first ``k`` columns)."""
    if n_items <= 0:
        raise DataError(f"n_items must be positive, got {n_items}")
    top = _top(recs, k)
    shown = np.unique(top[top >= 0])
    if shown.size and shown[-1] >= n_items:
        raise DataError(f"recs holds item index {int(shown[-1])} but the catalogue has {n_items} items")
    return float(shown.size / n_items)


def novelty(recs: Any, item_popularity: Any, n_users: int, k: int | None = None) -> np.ndarray:
    """Mean self-information of each user's list: ``mean_i -log2(pop_i / n_users)``.

    ``pop_i`` is the number of (training) users who interacted with item ``i``; items with no
    interaction are counted as one so the value stays finite (Zhou et al., PNAS 2010).

    Returns:
        One value per user (NaN for an empty list).
    """
    if n_users <= 0:
        raise DataError(f"n_users must be positive, got {n_users}")
    pop = np.maximum(_item_values(item_popularity, "item_popularity"), 1.0)
    info = -np.log2(pop / n_users)
    vals, valid = _gather(_top(recs, k), info, "item_popularity")
    return _mean_per_list(vals, valid)


def average_popularity(recs: Any, item_popularity: Any, k: int | None = None) -> np.ndarray:
    """Mean popularity of the items in each user's list (NaN for an empty list)."""
    pop = _item_values(item_popularity, "item_popularity")
    vals, valid = _gather(_top(recs, k), pop, "item_popularity")
    return _mean_per_list(vals, valid)


def intra_list_diversity(
    recs: Any, item_vectors: Any, k: int | None = None, *, block: int = 4096
) -> np.ndarray:
    """Mean pairwise cosine distance ``1 - cos(v_i, v_j)`` within each user's list.

    Args:
        recs: ``(n_users, n_cols)`` item indices, ``-1`` for an empty slot.
        item_vectors: ``(n_items, d)`` dense or sparse item representations (features or
            embeddings); an all-zero vector has distance 1 to everything.
        k: Use the first ``k`` columns (all when None).
        block: Users per block, bounding memory to ``block * k * (k + d)`` floats.

    Returns:
        One value per user; NaN for lists with fewer than two items.
    """
    vecs = item_vectors.toarray() if sp.issparse(item_vectors) else np.asarray(item_vectors)
    vecs = np.asarray(vecs, dtype=np.float64)
    if vecs.ndim != 2:
        raise DataError(f"item_vectors must be 2-D (n_items, d), got {vecs.ndim} dimension(s)")
    norms = np.linalg.norm(vecs, axis=1, keepdims=True)
    unit = vecs / np.where(norms > 0, norms, 1.0)
    top = _top(recs, k)
    if top.size and top.max() >= len(unit):
        raise DataError(f"recs holds item index {int(top.max())} but item_vectors has {len(unit)} rows")
    out = np.full(len(top), np.nan)
    for s in range(0, len(top), block):
        t = top[s : s + block]
        valid = t >= 0
        e = unit[np.where(valid, t, 0)] * valid[..., None]
        gram = np.einsum("ukd,ujd->ukj", e, e)
        m = valid.sum(axis=1)
        pairs = m * (m - 1) / 2.0
        # sum over i<j of cos = (sum of all entries - diagonal) / 2; masked rows contribute zero
        cos_sum = (gram.sum(axis=(1, 2)) - np.trace(gram, axis1=1, axis2=2)) / 2.0
        with np.errstate(invalid="ignore", divide="ignore"):
            out[s : s + block] = np.where(m >= 2, (pairs - cos_sum) / np.maximum(pairs, 1), np.nan)
    return out

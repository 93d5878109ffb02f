"""Candidate retrieval: nearest neighbours over item embeddings, item co-occurrence, popularity.

Every retriever answers ``retrieve(query, n, exclude)`` with item *indices* (the model's item
vocabulary) and scores, best first. :class:`EmbeddingIndex` is the maximum-inner-product search
behind :class:`EmbeddingRetriever`: ``"exact"`` (NumPy, the reference), or faiss ``"flat"``
(exhaustive), ``"ivf"`` (inverted lists over k-means cells; Jégou et al., "Product quantization
for nearest neighbor search", TPAMI 2011) and ``"hnsw"`` (Malkov & Yashunin, "Efficient and robust
approximate nearest neighbor search using Hierarchical Navigable Small World graphs", TPAMI 2018).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp

from recforge._arrays import check_k
from recforge.errors import ConfigError
from recforge.topk import order_by_score, topk_rows

IndexKind = Literal["auto", "exact", "flat", "ivf", "hnsw"]
INDEX_KINDS = ("auto", "exact", "flat", "ivf", "hnsw")
AUTO_FLAT_MAX = 100_000  # "auto": exhaustive search up to this many items (~1 ms/query at d=64), HNSW above
DENSE_MAX = 50_000  # exact/flat: one query scores every item with one NumPy product up to this many items
_FAISS_LOCK = threading.Lock()


def _faiss() -> Any:
    from recforge._optional import require

    return require("faiss", purpose="approximate nearest-neighbour retrieval")


@dataclass(frozen=True)
class IndexConfig:
    """How to index item vectors.

    Attributes:
        kind: ``exact`` (NumPy matrix product), ``flat``, ``ivf`` or ``hnsw`` (faiss), or
            ``auto``: ``flat`` up to 100,000 items (exact, and faster than a graph at that size),
            ``hnsw`` above; ``exact`` when faiss is not installed.
        nlist: IVF cells (default ``~4 sqrt(n)``, at most ``n / 39`` so k-means has data).
        nprobe: IVF cells visited per query.
        hnsw_m: HNSW graph degree.
        ef_construction: HNSW build beam width.
        ef_search: HNSW search beam width (raised to at least the number of results asked).
        threads: faiss OpenMP threads (build and search).
    """

    kind: IndexKind = "auto"
    nlist: int | None = None
    nprobe: int = 16
    hnsw_m: int = 32
    ef_construction: int = 100
    ef_search: int = 128
    threads: int = 1

    def __post_init__(self) -> None:
        if self.kind not in INDEX_KINDS:
            raise ConfigError(f"index kind must be one of {', '.join(INDEX_KINDS)}, not {self.kind!r}")
        for name in ("nprobe", "hnsw_m", "ef_construction", "ef_search", "threads"):
            check_k(getattr(self, name), f"index {name}")
        if self.nlist is not None:
            check_k(self.nlist, "index nlist")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> IndexConfig:
        names = set(cls.__dataclass_fields__)
        unknown = sorted(set(d) - names)
        if unknown:
            raise ConfigError(f"unknown index option(s) {', '.join(unknown)}; valid: {', '.join(sorted(names))}")
        return cls(**d)


class EmbeddingIndex:
    """Maximum-inner-product search over a set of item vectors.

    Args:
        vectors: ``(n_items, d)`` item vectors in the model's item order.
        config: Index kind and parameters.
        active: Optional boolean mask of items that may be returned (e.g. items known in
            training); the others are left out of the index.
    """

    def __init__(self, vectors: np.ndarray, config: IndexConfig | None = None, active: np.ndarray | None = None):
        config = config or IndexConfig()
        vecs = np.ascontiguousarray(vectors, dtype=np.float32)
        if vecs.ndim != 2 or vecs.shape[0] == 0:
            raise ConfigError(f"item vectors must be a non-empty 2-D array, got shape {vecs.shape}")
        self.n_items, self.dim = vecs.shape
        self.ids = np.flatnonzero(active) if active is not None else np.arange(self.n_items)
        if config.kind == "auto":
            from recforge._optional import available

            kind = "flat" if len(self.ids) <= AUTO_FLAT_MAX else "hnsw"
            config = replace(config, kind=kind if available("faiss") else "exact")
        self.config = config
        self.vectors: np.ndarray | None = np.ascontiguousarray(vecs[self.ids])
        self._index: Any = None
        # small exact/flat catalogues: a served query scores every item (one matrix-vector product,
        # seen items masked in place), cheaper than asking faiss for n + len(seen) results
        self.dense: np.ndarray | None = None
        if self.config.kind in ("exact", "flat") and self.n_items <= DENSE_MAX:
            self.dense = vecs
            self.inactive = np.ones(self.n_items, bool)
            self.inactive[self.ids] = False
        if self.config.kind != "exact":
            self._index = self._build()
            self.vectors = None  # faiss holds its own copy

    def _build(self) -> Any:
        faiss = _faiss()
        cfg = self.config
        n, d = self.vectors.shape
        ip = faiss.METRIC_INNER_PRODUCT
        with _FAISS_LOCK:
            faiss.omp_set_num_threads(cfg.threads)
            if cfg.kind == "flat":
                index = faiss.IndexFlatIP(d)
            elif cfg.kind == "ivf":
                nlist = cfg.nlist or int(4 * np.sqrt(n))
                nlist = max(1, min(nlist, n // 39 or 1))
                quantizer = faiss.IndexFlatIP(d)
                index = faiss.IndexIVFFlat(quantizer, d, nlist, ip)
                index.cp.seed = 0
                index.cp.niter = 10  # faiss' default 25 k-means rounds buys little recall for 2.5x the build time
                train = self.vectors
                if n > 64 * nlist:  # k-means needs ~40 points per cell; more only costs time
                    pick = np.random.default_rng(0).choice(n, 64 * nlist, replace=False)
                    train = self.vectors[np.sort(pick)]
                index.train(train)
                index.nprobe = min(cfg.nprobe, nlist)
            else:
                index = faiss.IndexHNSWFlat(d, cfg.hnsw_m, ip)
                index.hnsw.efConstruction = cfg.ef_construction
                index.hnsw.efSearch = cfg.ef_search
            index.add(self.vectors)
        return index

    def __len__(self) -> int:
        return len(self.ids)

    def search_one(self, query: np.ndarray, n: int, exclude: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Exact top ``n`` of one query with ``exclude`` left out, by scoring every item (needs
        ``dense``); ties break towards the lower item index."""
        s = self.dense @ np.asarray(query, np.float32)
        s[self.inactive] = -np.inf
        if exclude is not None and len(exclude):
            s[exclude] = -np.inf
        m = min(n, len(s))
        if m <= 0:
            return np.empty(0, np.int64), np.empty(0)
        top, vals = topk_rows(s[None, :], m)
        ok = np.isfinite(vals[0])
        return top[0][ok], vals[0][ok].astype(np.float64)

    def search(self, queries: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``n`` items with the largest inner product with each query row.

        Returns ``(item_indices, scores)`` of shape ``(len(queries), n)``; rows are padded with
        ``-1`` and ``-inf`` when the index holds fewer than ``n`` items (or HNSW/IVF find fewer).
        """
        q = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        if q.shape[1] != self.dim:
            raise ConfigError(f"query vectors have {q.shape[1]} dimensions, the index {self.dim}")
        n_eff = min(n, len(self.ids))
        out_i = np.full((len(q), n), -1, np.int64)
        out_s = np.full((len(q), n), -np.inf, np.float32)
        if n_eff == 0 or len(q) == 0:
            return out_i, out_s
        if self._index is None:
            pos, sc = topk_rows(q @ self.vectors.T, n_eff)
        else:
            params = None
            if self.config.kind == "hnsw":
                params = _faiss().SearchParametersHNSW(efSearch=max(self.config.ef_search, n_eff))
            sc, pos = self._index.search(q, n_eff, params=params)
        ok = pos >= 0
        out_i[:, :n_eff] = np.where(ok, self.ids[np.maximum(pos, 0)], -1)
        out_s[:, :n_eff] = np.where(ok, sc, -np.inf)
        return out_i, out_s


# ---------------------------------------------------------------------------------------- retrievers
@dataclass
class Query:
    """What a retriever may use about one user.

    Attributes:
        vector: The user's query vector for embedding retrieval, or None.
        history: Item indices the user interacted with (training and recent events).
        recent: Item indices of the latest events, most recent first.
    """

    vector: np.ndarray | None
    history: np.ndarray
    recent: np.ndarray


class Retriever:
    """Base of the candidate retrievers."""

    kind = "base"

    def retrieve(self, query: Query, n: int, exclude: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Up to ``n`` candidate item indices (best first) and their scores; ``exclude`` is left out."""
        raise NotImplementedError

    def can_answer(self, query: Query) -> bool:
        """Whether this retriever has anything to go on for ``query``."""
        return True


def member(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``np.isin(a, b)`` for non-negative int arrays; a lookup table when the id range is small
    (10x faster than ``isin`` for a request's few hundred candidates)."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros(len(a), bool)
    top = int(max(a.max(), b.max())) + 1
    if top > 65536 + 16 * (len(a) + len(b)):
        return np.isin(a, b)
    table = np.zeros(top, bool)
    table[b] = True
    return table[np.maximum(a, 0)] & (a >= 0)


def _drop(idx: np.ndarray, sc: np.ndarray, exclude: np.ndarray | None, n: int) -> tuple[np.ndarray, np.ndarray]:
    keep = idx >= 0
    if exclude is not None and len(exclude):
        keep &= ~member(idx, exclude)
    return idx[keep][:n], sc[keep][:n].astype(np.float64)


class EmbeddingRetriever(Retriever):
    """Items whose vectors have the largest inner product with the user's vector."""

    kind = "ann"

    def __init__(self, index: EmbeddingIndex) -> None:
        self.index = index

    def can_answer(self, query: Query) -> bool:
        return query.vector is not None

    def retrieve(self, query: Query, n: int, exclude: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        if query.vector is None:
            return np.empty(0, np.int64), np.empty(0)
        if self.index.dense is not None:
            return self.index.search_one(query.vector, n, exclude)
        extra = 0 if exclude is None else len(exclude)
        idx, sc = self.index.search(query.vector[None, :], min(n + extra, len(self.index)))
        return _drop(idx[0], sc[0], exclude, n)

    def retrieve_many(self, vectors: np.ndarray, n: int, excludes: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Batched :meth:`retrieve` for many users (one index search)."""
        extra = max((len(e) for e in excludes), default=0)
        idx, sc = self.index.search(vectors, min(n + extra, len(self.index)))
        return [_drop(idx[r], sc[r], excludes[r], n) for r in range(len(vectors))]


class PopularityRetriever(Retriever):
    """The most interacted-with items (the same list for everyone)."""

    kind = "popularity"

    def __init__(self, counts: np.ndarray, active: np.ndarray | None = None) -> None:
        counts = np.asarray(counts, dtype=np.float64)
        order = order_by_score(counts, keep_missing=True)
        if active is not None:
            order = order[np.asarray(active)[order]]
        self.order = order
        self.scores = counts[order]

    def retrieve(self, query: Query, n: int, exclude: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        extra = 0 if exclude is None else len(exclude)
        m = n + extra
        return _drop(self.order[:m], self.scores[:m], exclude, n)


class CooccurrenceRetriever(Retriever):
    """Item-to-item retrieval: items that co-occur with the user's items, most recent weighted most.

    The item-item weights are cosine similarities of the binary item columns of the interaction
    matrix, ``s(i, j) = |U_i ∩ U_j| / sqrt(|U_i| |U_j|)``, keeping each item's ``neighbors``
    strongest (Sarwar et al., WWW 2001; Linden et al., "Amazon.com recommendations: item-to-item
    collaborative filtering", IEEE Internet Computing 2003). A user's score for item ``j`` is
    ``sum_i w_i s(i, j)`` over their history, with weight ``recent_weight`` on recent events and
    1 on the rest (at most ``max_history`` items, recent first).
    """

    kind = "item-knn"

    def __init__(self, similarity: sp.csr_matrix, recent_weight: float = 3.0, max_history: int = 200) -> None:
        self.similarity = similarity.tocsr()
        self.recent_weight = float(recent_weight)
        self.max_history = int(max_history)

    @classmethod
    def from_interactions(cls, seen: sp.csr_matrix, neighbors: int = 100, **kw: Any) -> CooccurrenceRetriever:
        """Build from a users x items interaction matrix (values are binarised).

        The neighbours are the item-kNN models' own: :func:`recforge.models.neighbors.item_neighbors`
        with cosine similarity over the binary item columns.
        """
        from recforge.models.neighbors import item_neighbors

        x = sp.csr_matrix(seen, dtype=np.float32, copy=True)
        x.data[:] = 1.0
        n_items = x.shape[1]
        sim = sp.csr_matrix(item_neighbors(x, min(neighbors, max(n_items - 1, 1)), similarity="cosine"),
                            dtype=np.float32)
        sim.data[~(sim.data > 0)] = 0.0  # only positive similarities are neighbours
        sim.eliminate_zeros()
        sim.sort_indices()
        return cls(sim, **kw)

    def can_answer(self, query: Query) -> bool:
        return len(query.history) > 0 or len(query.recent) > 0

    def retrieve(self, query: Query, n: int, exclude: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        recent = np.asarray(query.recent, np.int64)[: self.max_history]
        older = np.asarray(query.history, np.int64)
        older = older[~np.isin(older, recent)][: max(0, self.max_history - len(recent))]
        items = np.concatenate([recent, older])
        if len(items) == 0:
            return np.empty(0, np.int64), np.empty(0)
        w = np.concatenate([np.full(len(recent), self.recent_weight), np.ones(len(older))])
        sim = self.similarity
        lo, hi = sim.indptr[items], sim.indptr[items + 1]
        counts = hi - lo
        total = int(counts.sum())
        if total == 0:
            return np.empty(0, np.int64), np.empty(0)
        starts = np.cumsum(counts) - counts
        sel = np.arange(total) - np.repeat(starts - lo, counts)
        if len(sel) == 0:
            return np.empty(0, np.int64), np.empty(0)
        cand = sim.indices[sel]
        contrib = sim.data[sel] * np.repeat(w, counts)
        uniq, inv = np.unique(cand, return_inverse=True)
        score = np.bincount(inv, weights=contrib)
        if exclude is not None and len(exclude):
            keep = ~member(uniq, exclude)
            uniq, score = uniq[keep], score[keep]
        if len(uniq) == 0:
            return np.empty(0, np.int64), np.empty(0)
        order = order_by_score(score, uniq, n)
        return uniq[order].astype(np.int64), score[order]

    def similar(self, item: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``n`` strongest neighbours of one item index."""
        lo, hi = self.similarity.indptr[item], self.similarity.indptr[item + 1]
        idx, sc = self.similarity.indices[lo:hi], self.similarity.data[lo:hi]
        order = order_by_score(sc, idx, n)
        return idx[order].astype(np.int64), sc[order].astype(np.float64)


def recall_against_exact(approx: np.ndarray, exact: np.ndarray) -> float:
    """Mean fraction of each exact top-n row found in the approximate row (``-1`` pads ignored)."""
    hits, total = 0, 0
    for a, e in zip(approx, exact, strict=True):
        e = e[e >= 0]
        hits += int(np.isin(e, a[a >= 0]).sum())
        total += len(e)
    return hits / total if total else float("nan")

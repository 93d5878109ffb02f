"""The recommendation pipeline: retrieval -> ranking -> post-processing -> top k.

A :class:`Pipeline` wraps one fitted recforge model (the *retrieval model*: its item vocabulary,
training history and, when it has them, embeddings) and optionally a second model that reranks the
candidates. Stages are chosen in a config file (TOML or YAML)::

    [retrieval]
    kind = "ann"            # ann | item-knn | popularity
    index = "auto"          # auto | exact | flat | ivf | hnsw (ann only)
    n_candidates = 200
    fallback = ["item-knn", "popularity"]

    [ranking]
    kind = "model"          # none | model | ctr
    model = "models/ranker.npz"   # default: the retrieval model itself

    # or a CTR model (lr, fm, deepfm) over user and item features:
    # kind = "ctr"
    # model = "models/deepfm.npz"
    # encoder = "models/deepfm-encoder.json"   # the FeatureEncoder its training rows used
    # features = "ml-100k"  # dataset (or user_features / item_features: dataset or CSV/Parquet file)
    # user_field = "user"   # encoder fields holding the raw ids
    # item_field = "item"

    [cold_start]            # users the model never saw, or with a short history
    model = "models/content.npz"  # content, hybrid-switching, hybrid-weighted, lightfm-style
    threshold = 5           # history length (training + recent events) from which a user is warm

    [[postprocess]]
    kind = "drop-seen"
    [[postprocess]]
    kind = "block"
    attribute = "genres"
    values = ["Horror"]
    [[postprocess]]
    kind = "mmr"
    lambda = 0.8
    using = "embeddings"    # or an item-feature column such as "genres"

Fresh events fold into the request: a model with ``recalculate_user`` (implicit ALS) recomputes
the user's vector from training history plus recent items; another embedding model gets the same
closed-form implicit-ALS user step against its item vectors; a model without embeddings answers
from item-to-item co-occurrence with the latest items.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recforge.errors import ConfigError, DataError
from recforge.models.base import Recommender
from recforge.serving.postprocess import MMR, AllowList, BlockList, DropSeen, MinScore, Stage
from recforge.serving.ranking import ColdStart, CTRRanker
from recforge.serving.retrieval import (
    CooccurrenceRetriever,
    EmbeddingIndex,
    EmbeddingRetriever,
    IndexConfig,
    PopularityRetriever,
    Query,
    Retriever,
)

RETRIEVERS = ("ann", "item-knn", "popularity")


def _key(raw: Any) -> str:
    return str(raw.item() if hasattr(raw, "item") else raw)


class ModelView:
    """What serving needs from a fitted model, precomputed for per-request speed.

    Attributes:
        model: The fitted recommender.
        user_vectors / item_vectors: The model's embeddings, or None.
        counts: Training interactions per item index.
    """

    def __init__(self, model: Recommender) -> None:
        if not model.is_fitted():
            raise ConfigError(f"{type(model).__name__} is not fitted")
        self.model = model
        self.items = model.items_
        self.users = model.users_
        self.item_ids = model.items_.ids
        self._item_lookup = {_key(x): j for j, x in enumerate(self.item_ids.tolist())}
        self._user_lookup = {_key(x): j for j, x in enumerate(model.users_.ids.tolist())}
        self.user_known = np.asarray(model.user_known_, bool)
        self.item_known = np.asarray(model.item_known_, bool)
        self.seen = model.seen_.tocsr()
        self.counts = np.diff(self.seen.tocsc().indptr).astype(np.float64)
        self.explicit = bool(getattr(model, "explicit_", False))
        try:
            uv, iv = model.embeddings()
            self.user_vectors: np.ndarray | None = np.ascontiguousarray(uv, np.float32)
            self.item_vectors: np.ndarray | None = np.ascontiguousarray(iv, np.float32)
        except NotImplementedError:
            self.user_vectors = self.item_vectors = None
        self._gram: np.ndarray | None = None

    @property
    def has_embeddings(self) -> bool:
        return self.item_vectors is not None

    def user_index(self, raw: Any) -> int:
        """Index of a raw user id known in training, else ``-1``."""
        u = self._user_lookup.get(_key(raw), -1)
        return u if u >= 0 and self.user_known[u] else -1

    def item_index(self, raw: Any) -> int:
        """Index of a raw item id known in training, else ``-1``."""
        i = self._item_lookup.get(_key(raw), -1)
        return i if i >= 0 and self.item_known[i] else -1

    def train_history(self, u: int) -> np.ndarray:
        if u < 0:
            return np.empty(0, np.int64)
        return self.seen.indices[self.seen.indptr[u] : self.seen.indptr[u + 1]].astype(np.int64)

    def train_values(self, u: int) -> np.ndarray:
        if u < 0:
            return np.empty(0, np.float64)
        return self.seen.data[self.seen.indptr[u] : self.seen.indptr[u + 1]].astype(np.float64)

    def fold_in(self, items: np.ndarray, values: np.ndarray | None = None) -> np.ndarray | None:
        """A user vector for a history of item indices, without refitting (None without embeddings).

        Uses the model's ``recalculate_user`` when it has one; otherwise solves the implicit-ALS
        user step ``(V^T V + reg I + alpha V_h^T V_h) x = (1 + alpha) V_h^T 1`` against the
        model's item vectors (Hu, Koren & Volinsky, ICDM 2008).
        """
        if self.item_vectors is None or len(items) == 0:
            return None
        recalc = getattr(self.model, "recalculate_user", None)
        if callable(recalc):
            return np.asarray(recalc(self.item_ids[items], values), np.float32)
        V = self.item_vectors.astype(np.float64)
        reg = float(getattr(self.model.config, "reg", 0.1) or 0.1)
        alpha = float(getattr(self.model.config, "alpha", 1.0))
        if self._gram is None:
            self._gram = V.T @ V + reg * np.eye(V.shape[1])
        vh = V[np.unique(items)]
        A = self._gram + alpha * vh.T @ vh
        b = (1.0 + alpha) * vh.sum(axis=0)
        return np.linalg.solve(A, b).astype(np.float32)


@dataclass
class UserContext:
    """One request's view of a user.

    Attributes:
        user_id: The raw id as requested.
        u: Index in the retrieval model (``-1``: unknown to it).
        history: Item indices to treat as seen (training history plus recent events).
        recent: Item indices of recent events, most recent first.
        vector: Query vector for embedding retrieval (trained, or folded in from events).
        folded: True when ``vector`` was recomputed from recent events.
        cold: True when the cold-start model answers for this user.
        recent_values: Values of the recent events (ratings, 1 for clicks), aligned with ``recent``.
        train_items / train_values: The training history (item indices, values) of a known user.
    """

    user_id: Any
    u: int
    history: np.ndarray
    recent: np.ndarray
    vector: np.ndarray | None = None
    folded: bool = False
    cold: bool = False
    recent_values: np.ndarray | None = None
    train_items: np.ndarray | None = None
    train_values: np.ndarray | None = None

    def query(self) -> Query:
        return Query(self.vector, self.history, self.recent)


@dataclass
class Recommendation:
    """Result of one request: raw item ids, scores (NaN where a fallback gave no score), source."""

    item_ids: list[Any]
    scores: list[float | None]
    source: str
    candidates: int = 0


class ModelRanker:
    """Reorders candidates by a recforge model's scores of (user, item) pairs.

    With a folded-in user vector and a ranker that is the retrieval model itself (a factor model),
    it scores the new vector against the item vectors (plus the model's item biases); otherwise it
    scores pairs with the model for users it knows, and leaves other users' order unchanged.
    """

    def __init__(self, model: Recommender, base: ModelView) -> None:
        self.model = model
        self.same = model is base.model
        if self.same:
            self.item_map = np.arange(len(base.item_ids))
            self.user_map = None
        else:
            im = model.items_.index(base.item_ids)
            ok = im >= 0
            ok[ok] = model.item_known_[im[ok]]
            self.item_map = np.where(ok, im, -1)  # base item index -> ranker item index (-1: unknown)
            self.user_map = model.users_
        self._vec = hasattr(model, "_item_vectors") and base.has_embeddings and self.same

    def score(self, ctx: UserContext, items: np.ndarray) -> np.ndarray | None:
        """Scores of ``items`` (base indices) for the user; None when the ranker cannot score them."""
        m = self.model
        if ctx.folded and self._vec and ctx.vector is not None:
            out = m._item_vectors()[items] @ ctx.vector.astype(np.float64)
            io = m._item_offsets()
            if not np.isscalar(io):
                out = out + np.asarray(io)[items]
            if ctx.u >= 0:
                out = out + np.asarray(m._user_offsets(np.asarray([ctx.u]))).ravel()[0]
            return np.asarray(out, np.float64)
        if self.same:
            ur = ctx.u
        else:
            ur = int(self.user_map.index_one(ctx.user_id)) if ctx.user_id is not None else -1
            if ur >= 0 and not m.user_known_[ur]:
                ur = -1
        if ur < 0:
            return None
        ir = self.item_map[items]
        out = np.full(len(items), -np.inf)
        ok = ir >= 0
        if ok.any():
            out[ok] = m._score_pairs(np.full(int(ok.sum()), ur, np.int64), ir[ok])
        return out


class Pipeline:
    """Retrieval, optional ranking and post-processing over one fitted model.

    Args:
        model: The fitted retrieval model.
        retriever: The primary retriever kind: ``ann`` (needs embeddings), ``item-knn`` or
            ``popularity``.
        index: Index options for ``ann`` (see :class:`IndexConfig`).
        n_candidates: Candidates to retrieve before ranking and post-processing.
        fallback: Retrievers tried, in order, when the primary has nothing for a user (no
            embedding vector, no history).
        ranker: A fitted model that scores pairs, a :class:`~recforge.serving.ranking.CTRRanker`
            (a CTR model over user and item features), or None.
        stages: Post-processing stages, in order.
        item_knn_neighbors: Neighbours kept per item for the co-occurrence retriever.
        recent_weight: Weight of recent events against training history in item-kNN retrieval.
        cold_start: A fitted model with ``scores_for_history`` (``content``, ``hybrid-switching``,
            ``lightfm-style``...) or a :class:`~recforge.serving.ranking.ColdStart`: users the
            retrieval model never saw, or with fewer than ``cold_threshold`` items of history
            (training plus recent events), are answered from it; None = the fallback chain.
        cold_threshold: History length from which a user is warm.
    """

    def __init__(
        self,
        model: Recommender,
        *,
        retriever: str = "ann",
        index: IndexConfig | dict[str, Any] | None = None,
        n_candidates: int = 200,
        fallback: tuple[str, ...] | list[str] = ("item-knn", "popularity"),
        ranker: Recommender | None = None,
        stages: list[Stage] | None = None,
        item_knn_neighbors: int = 100,
        recent_weight: float = 3.0,
        cold_start: Any = None,
        cold_threshold: int = 5,
    ) -> None:
        if retriever not in RETRIEVERS:
            raise ConfigError(f"retrieval kind must be one of {', '.join(RETRIEVERS)}, not {retriever!r}")
        bad = [f for f in fallback if f not in ("item-knn", "popularity")]
        if bad:
            raise ConfigError(f"fallback retrievers must be item-knn or popularity, not {bad[0]!r}")
        if isinstance(n_candidates, bool) or not isinstance(n_candidates, int) or n_candidates < 1:
            raise ConfigError(f"n_candidates must be a positive integer, got {n_candidates!r}")
        self.view = ModelView(model)
        self.model = model
        self.n_candidates = n_candidates
        self.index_config = index if isinstance(index, IndexConfig) else IndexConfig.from_dict(index or {})
        self.retrievers: dict[str, Retriever] = {}
        if retriever == "ann":
            if not self.view.has_embeddings:
                raise ConfigError(f"{type(model).__name__} has no embeddings; use retrieval kind item-knn or popularity")
            self.index = EmbeddingIndex(self.view.item_vectors, self.index_config, active=self.view.item_known)
            self.retrievers["ann"] = EmbeddingRetriever(self.index)
        if retriever == "item-knn" or "item-knn" in fallback:
            self.retrievers["item-knn"] = CooccurrenceRetriever.from_interactions(
                self.view.seen, neighbors=item_knn_neighbors, recent_weight=recent_weight
            )
        self.retrievers["popularity"] = PopularityRetriever(self.view.counts, active=self.view.item_known)
        self.chain = [retriever, *[f for f in fallback if f != retriever]]
        if "popularity" not in self.chain:
            self.chain.append("popularity")
        self.ranker: ModelRanker | CTRRanker | None
        if ranker is None or isinstance(ranker, CTRRanker):
            self.ranker = ranker
        else:
            self.ranker = ModelRanker(ranker, self.view)
        self.cold: ColdStart | None
        if cold_start is None or isinstance(cold_start, ColdStart):
            self.cold = cold_start
        else:
            self.cold = ColdStart(cold_start, self.view.item_ids, self.view.item_known, cold_threshold)
        self.stages = list(stages or [DropSeen()])
        self.drop_seen = any(isinstance(s, DropSeen) for s in self.stages)
        # with drop-seen, retrieval and padding already leave the history out
        self._post = [s for s in self.stages if not isinstance(s, DropSeen)]

    # ------------------------------------------------------------------ construction from config
    @classmethod
    def from_config(
        cls,
        config: dict[str, Any] | str | Path,
        model: Recommender,
        *,
        item_features: pd.DataFrame | None = None,
        ranker: Recommender | None = None,
        base_dir: Path | None = None,
        user_features: pd.DataFrame | None = None,
        cold_start: Recommender | None = None,
    ) -> Pipeline:
        """Build from a config dict or a TOML/YAML file (see the module docstring).

        ``ranking.model`` names a saved model file (relative paths resolve against the config
        file's folder); ``ranking.kind = "model"`` without one reranks with the retrieval model.
        ``ranking.kind = "ctr"`` needs the CTR model and its feature encoder file, and user and
        item features (``features`` names a dataset with both, or the ``user_features`` /
        ``item_features`` arguments). ``cold_start.model`` (or the ``cold_start`` argument)
        answers cold users.
        """
        if not isinstance(config, dict):
            from recforge.config import read_config

            path = Path(config)
            base_dir = path.parent
            config = read_config(path)
            config = config.get("pipeline", config)
        cfg = dict(config)
        unknown = sorted(set(cfg) - {"retrieval", "ranking", "postprocess", "cold_start"})
        if unknown:
            raise ConfigError(f"unknown pipeline section(s) {', '.join(unknown)}; valid: retrieval, ranking, "
                              "postprocess, cold_start")

        def resolve(path: Any) -> Path:
            p = Path(str(path))
            return base_dir / p if not p.is_absolute() and base_dir is not None else p

        ret = dict(cfg.get("retrieval", {}))
        kind = ret.pop("kind", "ann" if _has_embeddings(model) else "item-knn")
        index = {k: ret.pop(k) for k in list(ret) if k in IndexConfig.__dataclass_fields__ or k == "index"}
        if "index" in index:
            index["kind"] = index.pop("index")
        kwargs: dict[str, Any] = {}
        for key in ("n_candidates", "item_knn_neighbors", "recent_weight"):
            if key in ret:
                kwargs[key] = ret.pop(key)
        if "fallback" in ret:
            fb = ret.pop("fallback")
            kwargs["fallback"] = [fb] if isinstance(fb, str) else list(fb)
        if ret:
            raise ConfigError(f"unknown retrieval option(s) {', '.join(sorted(ret))}")
        rank = dict(cfg.get("ranking", {}))
        rkind = rank.pop("kind", "none")
        if rkind not in ("none", "model", "ctr"):
            raise ConfigError(f"ranking kind must be none, model or ctr, not {rkind!r}")
        ranker_obj: Any = None
        if rkind == "model":
            path = rank.pop("model", None)
            if ranker is None:
                ranker = Recommender.load(resolve(path)) if path else model
            ranker_obj = ranker
        elif rkind == "ctr":
            ranker_obj = _ctr_ranker(rank, model, ranker, resolve, user_features, item_features)
        rank.pop("model", None)
        if rank:
            raise ConfigError(f"unknown ranking option(s) {', '.join(sorted(rank))}")
        cold = dict(cfg.get("cold_start", {}))
        cold_path = cold.pop("model", None)
        if cold_start is None and cold_path:
            cold_start = Recommender.load(resolve(cold_path))
        if "threshold" in cold:
            kwargs["cold_threshold"] = cold.pop("threshold")
        if cold:
            raise ConfigError(f"unknown cold_start option(s) {', '.join(sorted(cold))}; valid: model, threshold")
        post = cfg.get("postprocess", [{"kind": "drop-seen"}])
        if not isinstance(post, list):
            raise ConfigError("postprocess must be a list of tables ([[postprocess]] in TOML)")
        stages = [make_stage(dict(s), model, item_features) for s in post]
        return cls(model, retriever=kind, index=index, ranker=ranker_obj, stages=stages, cold_start=cold_start,
                   **kwargs)

    # ------------------------------------------------------------------ requests
    def context(self, user_id: Any, recent: list[tuple[int, float]] | None = None) -> UserContext:
        """The request context of a raw user id plus recent events ``[(item index, value), ...]``
        (most recent first)."""
        return self._context(user_id, self.view.user_index(user_id), recent)

    def _context(self, user_id: Any, u: int, recent: list[tuple[int, float]] | None) -> UserContext:
        v = self.view
        train = v.train_history(u)
        if recent:
            rec = np.fromiter((i for i, _ in recent), np.int64, len(recent))
            vals = np.fromiter((x for _, x in recent), np.float64, len(recent))
            if len(rec) > 1:
                _, first = np.unique(rec, return_index=True)
                keep = np.sort(first)
                rec, vals = rec[keep], vals[keep]
            history = np.union1d(train, rec)
        else:
            rec, vals = np.empty(0, np.int64), np.empty(0, np.float64)
            history = train
        cold = self.cold is not None and self.cold.is_cold(UserContext(user_id, u, history, rec)) and len(history) > 0
        vector = None
        folded = False
        if v.has_embeddings and not cold:
            if len(rec):
                vector = v.fold_in(history)
                folded = vector is not None
            elif u >= 0:
                vector = v.user_vectors[u]
        tv = v.train_values(u) if cold else None
        return UserContext(user_id, u, history, rec, vector, folded, cold, vals, train, tv)

    def recommend(self, user_id: Any, k: int = 10, recent: list[tuple[int, float]] | None = None,
                  *, ctx: UserContext | None = None) -> Recommendation:
        """Top-``k`` raw item ids for one user (recent events as item indices, latest first)."""
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k <= 0:
            raise ConfigError(f"k must be a positive integer, got {k!r}")
        items, scores, source, n_cand = self.recommend_top(user_id, k, recent, ctx=ctx)
        ids = self.view.item_ids[items].tolist()
        sc = [s if math.isfinite(s) else None for s in scores.tolist()]
        return Recommendation(ids, sc, source, n_cand)

    def recommend_top(self, user_id: Any, k: int, recent: list[tuple[int, float]] | None = None,
                      *, ctx: UserContext | None = None) -> tuple[np.ndarray, np.ndarray, str, int]:
        """:meth:`recommend` at index level: ``(item indices, scores, source, n_candidates)``."""
        ctx = ctx or self.context(user_id, recent)
        items, scores, source = self._retrieve(ctx, max(self.n_candidates, k))
        n_cand = len(items)
        items, scores = self._rank_and_process(ctx, items, scores, source)
        items, scores = self._pad(ctx, items, scores, k)
        return items[:k], np.asarray(scores[:k], np.float64), source, n_cand

    def item_json(self) -> list[bytes]:
        """Per item index, the start of its JSON list entry ``{"item_id":<id>,"score":`` (cached)."""
        if "_item_json" not in self.__dict__:
            import json

            self._item_json = [b'{"item_id":' + json.dumps(_plain_id(x), ensure_ascii=False).encode() + b',"score":'
                               for x in self.view.item_ids.tolist()]
        return self._item_json

    def recommend_indices(self, users: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` item indices and scores for user indices of the retrieval model, no events.

        Rows are padded with ``-1`` and NaN; a NaN score inside a row marks a fallback item.

        Evaluation and the batch job use this; ANN retrieval is batched in one index search.
        """
        users = np.asarray(users, np.int64)
        out = np.full((len(users), k), -1, np.int64)
        out_sc = np.full((len(users), k), np.nan)
        v = self.view
        ctxs = []
        for u in users.tolist():
            uk = u if u >= 0 and v.user_known[u] else -1
            raw = v.users.ids[u] if u >= 0 else None
            ctxs.append(self._context(raw, uk, None))
        retrieved: list[tuple[np.ndarray, np.ndarray, str] | None] = [None] * len(users)
        if self.chain[0] == "ann":
            rows = [r for r, c in enumerate(ctxs) if c.vector is not None]
            if rows:
                vecs = np.stack([ctxs[r].vector for r in rows])
                excl = [ctxs[r].history if self.drop_seen else np.empty(0, np.int64) for r in rows]
                res = self.retrievers["ann"].retrieve_many(vecs, max(self.n_candidates, k), excl)
                for r, (it, sc) in zip(rows, res, strict=True):
                    retrieved[r] = (it, sc, "model")
        for r, ctx in enumerate(ctxs):
            got = retrieved[r] or self._retrieve(ctx, max(self.n_candidates, k))
            items, scores = self._rank_and_process(ctx, got[0], got[1], got[2])
            items, scores = self._pad(ctx, items, scores, k)
            out[r, : min(k, len(items))] = items[:k]
            out_sc[r, : min(k, len(items))] = scores[:k]
        return out, out_sc

    # ------------------------------------------------------------------ stages
    def _retrieve(self, ctx: UserContext, n: int) -> tuple[np.ndarray, np.ndarray, str]:
        excl = ctx.history if self.drop_seen else None
        if ctx.cold and self.cold is not None:
            row = self.cold.scores(ctx)
            if row is not None:
                items, scores = _top_of_row(row, n, excl)
                if len(items):
                    return items, scores, "cold-start"
        q = ctx.query()
        for j, name in enumerate(self.chain):
            r = self.retrievers[name]
            if not r.can_answer(q):
                continue
            items, scores = r.retrieve(q, n, excl)
            if len(items):
                source = "model" if j == 0 else f"fallback-{'recent' if name == 'item-knn' else name}"
                return items, scores, source
        return np.empty(0, np.int64), np.empty(0), "none"

    def _rank_and_process(self, ctx: UserContext, items: np.ndarray, scores: np.ndarray,
                          source: str = "model") -> tuple[np.ndarray, np.ndarray]:
        # the cold-start model's order is the answer for a cold user; a ranker trained on warm
        # users would undo it
        if self.ranker is not None and len(items) and source != "cold-start":
            rs = self.ranker.score(ctx, items)
            if rs is not None:
                order = np.lexsort((items, -np.nan_to_num(rs, nan=-np.inf)))
                items, scores = items[order], rs[order]
        for st in self._post:
            items, scores = st.apply(ctx, items, scores)
        return items, scores

    def _pad(self, ctx: UserContext, items: np.ndarray, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Fill a short list with popular items that pass the filters (score NaN: no model opinion)."""
        if len(items) >= k:
            return items, scores
        pop = self.retrievers["popularity"]
        excl = np.union1d(ctx.history if self.drop_seen else np.empty(0, np.int64), items)
        extra, _ = pop.retrieve(ctx.query(), k - len(items) + len(excl) + 64, excl)
        extra_sc = np.full(len(extra), np.nan)
        for st in self.stages:
            if st.is_filter and not isinstance(st, MinScore):
                extra, extra_sc = st.apply(ctx, extra, extra_sc)
        need = k - len(items)
        return np.concatenate([items, extra[:need]]), np.concatenate([scores, extra_sc[:need]])

    # ------------------------------------------------------------------ similar items
    def similar_items(self, item: int, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest items to one item index: by embedding cosine, else by co-occurrence."""
        v = self.view
        if v.has_embeddings:
            vecs = v.item_vectors
            q = vecs[item].astype(np.float64)
            qn = np.linalg.norm(q) or 1.0
            norms = self._item_norms()
            sims = (vecs @ q) / (norms * qn)
            sims[~v.item_known] = -np.inf
            sims[item] = -np.inf
            kk = min(k, int(np.isfinite(sims).sum()))
            top = np.argpartition(-sims, kk - 1)[:kk] if kk > 0 else np.empty(0, np.int64)
            top = top[np.lexsort((top, -sims[top]))]
            return top.astype(np.int64), sims[top].astype(np.float64)
        if "item-knn" not in self.retrievers:
            self.retrievers["item-knn"] = CooccurrenceRetriever.from_interactions(v.seen)
        return self.retrievers["item-knn"].similar(item, k)  # type: ignore[attr-defined]

    def _item_norms(self) -> np.ndarray:
        if "_norms" not in self.__dict__:
            n = np.linalg.norm(self.view.item_vectors.astype(np.float64), axis=1)
            n[n == 0] = 1.0
            self._norms = n
        return self._norms

    def describe(self) -> dict[str, Any]:
        """The configured stages, for /healthz and reports."""
        return {
            "retrieval": self.chain[0],
            "index": self.index.config.kind if self.chain[0] == "ann" else None,
            "fallback": self.chain[1:],
            "n_candidates": self.n_candidates,
            "ranker": None if self.ranker is None else (
                self.ranker.describe() if isinstance(self.ranker, CTRRanker) else self.ranker.model.name),
            "cold_start": None if self.cold is None else self.cold.describe(),
            "postprocess": [s.kind for s in self.stages],
        }


def _plain_id(x: Any) -> Any:
    return x.item() if isinstance(x, np.generic) else x


def _top_of_row(row: np.ndarray, n: int, exclude: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """The ``n`` best finite entries of a score row over item indices (``exclude`` left out)."""
    if exclude is not None and len(exclude):
        row = row.copy()
        row[exclude] = -np.inf
    ok = int(np.isfinite(row).sum())
    n = min(n, ok)
    if n <= 0:
        return np.empty(0, np.int64), np.empty(0)
    top = np.argpartition(-row, n - 1)[:n] if n < len(row) else np.arange(len(row))
    top = top[np.lexsort((top, -row[top]))]
    top = top[np.isfinite(row[top])]
    return top.astype(np.int64), row[top].astype(np.float64)


def _has_embeddings(model: Recommender) -> bool:
    try:
        model.embeddings()
    except NotImplementedError:
        return False
    return True


def _ctr_ranker(spec: dict[str, Any], model: Recommender, ctr_model: Recommender | None, resolve: Any,
                user_features: pd.DataFrame | None, item_features: pd.DataFrame | None) -> CTRRanker:
    """A :class:`CTRRanker` from a ``[ranking]`` table with ``kind = "ctr"`` (options popped)."""
    from recforge.data.ctr import FeatureEncoder

    path = spec.pop("model", None)
    if ctr_model is None:
        if not path:
            raise ConfigError("ranking kind ctr needs model = <a saved CTR model file>")
        ctr_model = Recommender.load(resolve(path))
    enc = spec.pop("encoder", None)
    kept = getattr(ctr_model, "encoder_", None)  # a CTR model that keeps its training rows' encoder
    if enc:
        encoder = FeatureEncoder.load(resolve(enc))
    elif kept is not None:
        encoder = FeatureEncoder.from_dict(kept) if isinstance(kept, dict) else kept
    else:
        raise ConfigError("ranking kind ctr needs encoder = <the FeatureEncoder file of its training rows>")
    features = spec.pop("features", None)
    uf_src, if_src = spec.pop("user_features", None), spec.pop("item_features", None)
    if features is not None:
        uf_src, if_src = uf_src or features, if_src or features
    if uf_src is not None:
        user_features = load_user_features(_source(uf_src, resolve))
    if if_src is not None:
        item_features = load_item_features(_source(if_src, resolve))
    kw = {k: spec.pop(k) for k in ("user_field", "item_field") if k in spec}
    return CTRRanker(ctr_model, encoder, model.items_.ids, user_features, item_features,
                     user_ids=model.users_.ids[model.user_known_], **kw)


def _source(s: Any, resolve: Any) -> str:
    """A dataset name as is; a feature file relative to the config file's folder."""
    return str(resolve(s)) if Path(str(s)).suffix.lower() in (".csv", ".parquet", ".pq") else str(s)


def make_stage(spec: dict[str, Any], model: Recommender, item_features: pd.DataFrame | None) -> Stage:
    """One post-processing stage from its config table (``kind`` plus options)."""
    kind = spec.pop("kind", None)
    items = model.items_
    if kind == "drop-seen":
        st: Stage = DropSeen()
    elif kind in ("block", "allow"):
        cls = BlockList if kind == "block" else AllowList
        st = cls(items, spec.pop("items", None), spec.pop("attribute", None), spec.pop("values", None), item_features)
    elif kind == "min-score":
        if "threshold" not in spec:
            raise ConfigError("min-score needs a threshold")
        st = MinScore(spec.pop("threshold"))
    elif kind == "mmr":
        using = spec.pop("using", "embeddings")
        kw = {"lambda_": spec.pop("lambda", 0.7), "k": spec.pop("k", 10), "pool": spec.pop("pool", 100)}
        if using == "embeddings":
            if not _has_embeddings(model):
                raise ConfigError(f"mmr over embeddings: {type(model).__name__} has none; set using to a feature column")
            st = MMR(model.embeddings()[1], **kw)
        else:
            st = MMR.from_attribute(items, item_features, using, **kw)
    else:
        raise ConfigError(f"unknown postprocess kind {kind!r}; use drop-seen, block, allow, min-score or mmr")
    if spec:
        raise ConfigError(f"unknown option(s) for {kind}: {', '.join(sorted(spec))}")
    return st


def load_item_features(source: str | Path | None) -> pd.DataFrame | None:
    """Item features from a registered dataset name or a CSV/Parquet file (first column = item id)."""
    return _load_features(source, "item")


def load_user_features(source: str | Path | None) -> pd.DataFrame | None:
    """User features from a registered dataset name or a CSV/Parquet file (first column = user id)."""
    return _load_features(source, "user")


def _load_features(source: str | Path | None, side: str) -> pd.DataFrame | None:
    if source is None:
        return None
    s = str(source)
    p = Path(s)
    if p.suffix.lower() in (".csv", ".parquet", ".pq"):
        if not p.exists():
            raise DataError(f"{p}: no such {side}-features file")
        df = pd.read_parquet(p) if p.suffix.lower() != ".csv" else pd.read_csv(p)
        return df.set_index(df.columns[0])
    from recforge.data import load

    ds = load(s)
    feats = None if ds.interactions is None else getattr(ds.interactions, f"{side}_features")
    if feats is None:
        raise DataError(f"dataset {s!r} has no {side} features")
    return feats

"""The recommendation pipeline: retrieval -> ranking -> post-processing -> top k.

A :class:`Pipeline` wraps one fitted recforge model (the *retrieval model*: its item vocabulary,
training history and, when it has them, embeddings) and optionally a second model that reranks the
candidates. Stages are chosen in a config file (TOML or YAML)::

    [retrieval]
    kind = "model"          # model (default) | ann | item-knn | popularity
    index = "auto"          # auto | exact | flat | ivf | hnsw (ann only)
    n_candidates = 200
    fallback = ["item-knn", "popularity"]

    [ranking]
    kind = "model"          # none | model | ctr
    model = "models/ranker.npz"   # default: the retrieval model itself

    # or a CTR model (lr, fm, deepfm) over user and item features:
    # kind = "ctr"
    # model = "models/deepfm.npz"
    # onnx = "models/deepfm-onnx"   # or its ONNX export folder: scored by ONNX Runtime, no torch
    # encoder = "models/deepfm-encoder.json"   # the FeatureEncoder its training rows used
    # features = "ml-100k"  # dataset (or user_features / item_features: dataset or CSV/Parquet file)
    # user_field = "user"   # encoder fields holding the raw ids
    # item_field = "item"
    # context_fields = ["daytime", "weekday"]  # fields each request supplies (?daytime=morning)

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

The default retrieval, ``model``, ranks every item by the loaded model's own scores: for a user
without fresh events the answer is exactly :meth:`Recommender.recommend
<recforge.models.base.Recommender.recommend>` (same items, same order), so the service and
``recforge recommend``/``recforge batch`` agree for every model. ``ann`` searches an index over
the model's embeddings instead (faster on large catalogues, but the inner product of
``embeddings()`` is the model's score only for plain factor models).

Every answer names its ``source``: ``model`` (the model's own scores), ``ann`` (nearest
neighbours of its embeddings), ``item-knn`` or ``popularity`` (configured as the primary
retriever), ``fallback-recent`` / ``fallback-popularity`` (the primary had nothing for the user:
co-occurrence with the latest events, or popular items) and ``cold-start``.

Fresh events reach the request through the models' declared capabilities: a retrieval model
that ``folds_in`` (ALS, iALS) solves the user's vector from training history plus recent events
(values included) for ANN retrieval; the co-occurrence retriever follows the latest items; a
ranker scores the user with recent events by ``fold_in`` against its item vectors, else by
``scores_for_history`` when it ``scores_history``, else from its training history.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recforge._arrays import check_k
from recforge.errors import ConfigError, DataError
from recforge.models.base import Recommender
from recforge.serving.history import Event
from recforge.serving.pipeline_config import pipeline_arguments
from recforge.serving.postprocess import DropSeen, MinScore, Stage
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
from recforge.topk import clamp_k, order_by_score, topk_rows

__all__ = ["RETRIEVERS", "ModelRanker", "ModelView", "Pipeline", "Recommendation", "UserContext"]

RETRIEVERS = ("model", "ann", "item-knn", "popularity")
_EMPTY_IDX = np.empty(0, np.int64)
_EMPTY_VAL = np.empty(0, np.float64)


class ModelView:
    """What serving needs from a fitted model, precomputed for per-request speed.

    Ids map to indices through the model's own vocabularies (``model.items_``, ``model.users_``);
    embeddings come from the public :meth:`~recforge.models.base.Recommender.embeddings` of a
    model that declares ``has_embeddings``.

    Attributes:
        model: The fitted recommender.
        user_vectors / item_vectors: The model's embeddings (float32), or None.
        counts: Training interactions per item index.
    """

    def __init__(self, model: Recommender) -> None:
        if not model.is_fitted():
            raise ConfigError(f"{type(model).__name__} is not fitted")
        self.model = model
        self.items = model.items_
        self.users = model.users_
        self.item_ids = model.items_.ids
        self.user_known = np.asarray(model.user_known_, bool)
        self.item_known = np.asarray(model.item_known_, bool)
        self.seen = model.seen_.tocsr()
        self.counts = np.diff(self.seen.tocsc().indptr).astype(np.float64)
        self.explicit = bool(model.explicit_)
        self._rating_range = (float(model.rating_min_), float(model.rating_max_)) if self.explicit else None
        self.user_vectors: np.ndarray | None = None
        self.item_vectors: np.ndarray | None = None
        if model.has_embeddings:
            uv, iv = model.embeddings()
            self.user_vectors = np.ascontiguousarray(uv, np.float32)
            self.item_vectors = np.ascontiguousarray(iv, np.float32)

    @property
    def has_embeddings(self) -> bool:
        return self.item_vectors is not None

    def user_index(self, raw: Any) -> int:
        """Index of a raw user id known in training, else ``-1``."""
        u = self.users.index_one(raw)
        return u if u >= 0 and self.user_known[u] else -1

    def item_index(self, raw: Any) -> int:
        """Index of a raw item id known in training, else ``-1``."""
        i = self.items.index_one(raw)
        return i if i >= 0 and self.item_known[i] else -1

    def known_events(self, events: list[tuple[Any, float]]) -> list[tuple[int, float]]:
        """Recent events ``[(raw item id, value), ...]`` as ``(item index, value)``, unknown items dropped."""
        out: list[tuple[int, float]] = []
        for e in events:
            i = self.item_index(e[0])
            if i >= 0:
                # keep the event's kind and time (an Event from the history store) for context models
                out.append(Event(i, e[1], getattr(e, "kind", None), getattr(e, "time", None)))
        return out

    def rating_range(self) -> tuple[float, float] | None:
        """The training rating scale ``(lo, hi)`` of an explicit-feedback model, else None."""
        return self._rating_range

    def train_history(self, u: int) -> np.ndarray:
        if u < 0:
            return _EMPTY_IDX
        return self.seen.indices[self.seen.indptr[u] : self.seen.indptr[u + 1]].astype(np.int64)

    def train_values(self, u: int) -> np.ndarray:
        if u < 0:
            return _EMPTY_VAL
        return self.seen.data[self.seen.indptr[u] : self.seen.indptr[u + 1]].astype(np.float64)


@dataclass
class UserContext:
    """One request's view of a user.

    Attributes:
        user_id: The raw id as requested.
        u: Index in the retrieval model (``-1``: unknown to it).
        history: Item indices to treat as seen (training history plus recent events), sorted.
        recent: Item indices of recent events, most recent first.
        vector: Query vector for embedding retrieval (trained, or folded in from events).
        folded: True when ``vector`` was solved from recent events (``model.fold_in``).
        cold: True when the cold-start model answers for this user.
        recent_values: Values of the recent events (ratings, 1 for clicks), aligned with ``recent``.
        train_items / train_values: The training history (item indices, values) of the user.
        history_values: One value per entry of ``history`` when there are recent events (a
            recent event's value wins over training), else None.
        request: The request context (``{field: value}``, e.g. ``daytime=morning``) a CTR ranker
            with context fields scores the candidates in; None: none given.
        recent_kinds / recent_times: The kind (click, view, like, rating; None: unknown) and time
            (unix seconds; NaN: unknown) of each recent event, aligned with ``recent``.
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
    history_values: np.ndarray | None = None
    request: dict[str, str] | None = None
    recent_kinds: list[str | None] | None = None
    recent_times: np.ndarray | None = None

    def query(self) -> Query:
        return Query(self.vector, self.history, self.recent)

    def events(self, item_ids: np.ndarray) -> dict[str, Any] | None:
        """The recent events in time order (oldest first) as a model's ``scores_for_history`` takes
        them (``{"items": raw ids, "kinds", "values", "times"}``); None without recent events."""
        if not len(self.recent):
            return None
        n = len(self.recent)
        kinds = self.recent_kinds if self.recent_kinds is not None else [None] * n
        times = self.recent_times if self.recent_times is not None else np.full(n, np.nan)
        values = self.recent_values if self.recent_values is not None else np.ones(n)
        return {"items": item_ids[self.recent[::-1]], "kinds": list(kinds)[::-1], "values": values[::-1],
                "times": times[::-1]}


@dataclass
class Recommendation:
    """Result of one request: raw item ids, scores (NaN where a fallback gave no score), source."""

    item_ids: list[Any]
    scores: list[float | None]
    source: str
    candidates: int = 0


class ModelRanker:
    """Reorders candidates by a recforge model's scores.

    A user with recent events is scored through the ranker's declared capability: a model that
    ``folds_in`` scores the folded-in vector against its item vectors (``embeddings()``), a model
    that ``scores_history`` scores the history; otherwise a user the ranker knows is scored from
    training (:meth:`~recforge.models.base.Recommender.score_indices`), and other users keep the
    retrieval order.
    """

    def __init__(self, model: Recommender, base: ModelView) -> None:
        if not model.is_fitted():
            raise ConfigError(f"the ranker {type(model).__name__} is not fitted")
        self.model = model
        self.base = base
        self.same = model is base.model
        if self.same:
            self.item_map = np.arange(len(base.item_ids))
        else:
            im = model.items_.index(base.item_ids)
            ok = im >= 0
            ok[ok] = model.item_known_[im[ok]]
            self.item_map = np.where(ok, im, -1)  # base item index -> ranker item index (-1: unknown)
        self.folds_in = bool(model.folds_in and model.has_embeddings)
        self.item_vectors = np.asarray(model.embeddings()[1], np.float64) if self.folds_in else None

    def score(self, ctx: UserContext, items: np.ndarray) -> np.ndarray | None:
        """Scores of ``items`` (base indices) for the user; None when the ranker cannot score them."""
        m = self.model
        ir = self.item_map[items]
        ok = ir >= 0
        out = np.full(len(items), -np.inf)
        if len(ctx.recent) and (self.folds_in or m.scores_history):
            if self.folds_in:
                vec = ctx.vector if self.same and ctx.folded else m.fold_in(*self._history(ctx))
                out[ok] = self.item_vectors[ir[ok]] @ np.asarray(vec, np.float64)
            else:
                row = m.scores_for_history(*self._history(ctx), user=ctx.user_id,
                                           events=ctx.events(self.base.item_ids))
                out[ok] = row[ir[ok]]
            return out
        ur = ctx.u if self.same else (m.users_.index_one(ctx.user_id) if ctx.user_id is not None else -1)
        if ur < 0 or not m.user_known_[ur]:
            return None
        if ok.any():
            out[ok] = m.score_indices(np.full(int(ok.sum()), ur, np.int64), ir[ok])
        return out

    def _history(self, ctx: UserContext) -> tuple[np.ndarray, np.ndarray | None]:
        return self.base.item_ids[ctx.history], ctx.history_values

    def describe(self) -> str:
        return self.model.name


class ModelRetriever:
    """Candidates ranked by the retrieval model's own scores (retrieval kind ``model``).

    A user the model knows, without fresh events, gets exactly ``model.recommend`` (the same
    :meth:`~recforge.models.base.Recommender.recommend_indices` call). With fresh events the model
    answers through its declared capability: ``scores_history`` scores the whole history,
    ``folds_in`` scores the folded-in vector against its item vectors, and any other model keeps
    its trained list minus the items just seen. A user it cannot score (unknown, no capability)
    goes to the fallback chain.
    """

    kind = "model"

    def __init__(self, view: ModelView) -> None:
        self.view = view
        self.model = view.model
        m = self.model
        self.item_vectors = (np.asarray(m.embeddings()[1], np.float64) if m.folds_in and m.has_embeddings
                             else None)

    def retrieve(self, ctx: UserContext, n: int, drop_seen: bool) -> tuple[np.ndarray, np.ndarray] | None:
        """Up to ``n`` item indices and scores, best first; None when the model cannot answer."""
        m, v = self.model, self.view
        if len(ctx.recent) and m.scores_history:
            row = np.array(m.scores_for_history(v.item_ids[ctx.history], ctx.history_values, user=ctx.user_id,
                                                events=ctx.events(v.item_ids)), np.float64)
        elif len(ctx.recent) and ctx.folded and self.item_vectors is not None:
            row = self.item_vectors @ np.asarray(ctx.vector, np.float64)
        elif ctx.u >= 0:
            extra = len(ctx.recent) if drop_seen else 0
            idx, sc = m.recommend_indices(np.array([ctx.u]), n + extra, exclude_seen=drop_seen, fallback="none")
            idx, sc = idx[0], sc[0]
            ok = idx >= 0
            if extra:
                ok &= ~np.isin(idx, ctx.recent)
            return idx[ok][:n], sc[ok][:n].astype(np.float64)
        else:
            return None
        row[~v.item_known] = -np.inf
        return _top_of_scores(row, n, ctx.history if drop_seen else None)

    def retrieve_many(self, users: np.ndarray, n: int, drop_seen: bool) -> tuple[np.ndarray, np.ndarray]:
        """Known user indices without fresh events, in one call (the batch job)."""
        return self.model.recommend_indices(users, n, exclude_seen=drop_seen, fallback="none")


class Pipeline:
    """Retrieval, optional ranking and post-processing over one fitted model.

    Args:
        model: The fitted retrieval model.
        retriever: The primary retriever kind: ``model`` (the model's own scores: the same lists
            as ``model.recommend``), ``ann`` (an index over the model's embeddings), ``item-knn``
            or ``popularity``.
        index: Index options for ``ann`` (see :class:`IndexConfig`).
        n_candidates: Candidates to retrieve before ranking and post-processing.
        fallback: Retrievers tried, in order, when the primary has nothing for a user (no
            embedding vector, no history).
        ranker: A fitted model that scores pairs, a :class:`~recforge.serving.ranking.CTRRanker`
            (a CTR model over user and item features), or None.
        stages: Post-processing stages, in order.
        item_knn_neighbors: Neighbours kept per item for the co-occurrence retriever.
        recent_weight: Weight of recent events against training history in item-kNN retrieval.
        cold_start: A fitted model that declares ``scores_history`` (``content``, ``hybrid-switching``,
            ``lightfm-style``...) or a :class:`~recforge.serving.ranking.ColdStart`: users the
            retrieval model never saw, or with fewer than ``cold_threshold`` items of history
            (training plus recent events), are answered from it; None = the fallback chain.
        cold_threshold: History length from which a user is warm.
    """

    def __init__(
        self,
        model: Recommender,
        *,
        retriever: str = "model",
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
        n_candidates = check_k(n_candidates, "n_candidates")
        self.view = ModelView(model)
        self.model = model
        self.n_candidates = n_candidates
        self.index_config = index if isinstance(index, IndexConfig) else IndexConfig.from_dict(index or {})
        self.retrievers: dict[str, Retriever] = {}
        self.model_retriever = ModelRetriever(self.view) if retriever == "model" else None
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
        """Build from a config dict or a TOML/YAML file (see the module docstring and
        :func:`recforge.serving.pipeline_config.pipeline_arguments`).

        ``ranking.model`` names a saved model file (relative paths resolve against the config
        file's folder); ``ranking.kind = "model"`` without one reranks with the retrieval model.
        ``ranking.kind = "ctr"`` needs the CTR model and its feature encoder file, and user and
        item features (``features`` names a dataset with both, or the ``user_features`` /
        ``item_features`` arguments). ``cold_start.model`` (or the ``cold_start`` argument)
        answers cold users.
        """
        return cls(model, **pipeline_arguments(config, model, item_features=item_features, ranker=ranker,
                                               base_dir=base_dir, user_features=user_features, cold_start=cold_start))

    # ------------------------------------------------------------------ requests
    def context(self, user_id: Any, recent: list[tuple[int, float]] | None = None) -> UserContext:
        """The request context of a raw user id plus recent events ``[(item index, value), ...]``
        (most recent first)."""
        return self._context(user_id, self.view.user_index(user_id), recent)

    def _context(self, user_id: Any, u: int, recent: list[tuple[int, float]] | None) -> UserContext:
        v = self.view
        train = v.train_history(u)
        kinds: list[str | None] | None = None
        times: np.ndarray | None = None
        if recent:
            rec = np.fromiter((i for i, _ in recent), np.int64, len(recent))
            vals = np.fromiter((x for _, x in recent), np.float64, len(recent))
            kinds = [getattr(e, "kind", None) for e in recent]
            times = np.array([np.nan if getattr(e, "time", None) is None else e.time for e in recent],  # type: ignore[attr-defined]
                             np.float64)
            if len(rec) > 1:
                _, first = np.unique(rec, return_index=True)
                keep = np.sort(first)
                rec, vals, times = rec[keep], vals[keep], times[keep]
                kinds = [kinds[j] for j in keep]
            history = np.union1d(train, rec)
        else:
            rec, vals = _EMPTY_IDX, _EMPTY_VAL
            history = train
        if self.cold is not None and len(history) > 0 and self.cold.is_cold(u, len(history)):
            return UserContext(user_id, u, history, rec, cold=True, recent_values=vals, train_items=train,
                               train_values=v.train_values(u))
        ctx = UserContext(user_id, u, history, rec, recent_values=vals, train_items=train, recent_kinds=kinds,
                          recent_times=times)
        m = self.model
        if len(rec):
            # the training history's values, overwritten by the recent events' (the latest wins)
            hv = np.ones(len(history))
            hv[np.searchsorted(history, train)] = v.train_values(u)
            hv[np.searchsorted(history, rec)] = vals
            ctx.history_values = hv
            if m.folds_in and v.has_embeddings:
                ctx.vector = np.asarray(m.fold_in(v.item_ids[history], hv), np.float32)
                ctx.folded = True
        if ctx.vector is None and u >= 0 and v.has_embeddings:
            ctx.vector = v.user_vectors[u]
        return ctx

    @property
    def takes_context(self) -> bool:
        """Whether the ranker scores candidates in a request context (a CTR ranker with context fields)."""
        return isinstance(self.ranker, CTRRanker) and bool(self.ranker.context_fields)

    def check_context(self, context: dict[str, Any] | None) -> dict[str, str] | None:
        """A request context validated against the CTR ranker's context fields (None when empty).

        Raises:
            DataError: A field the ranker's model does not take, or a context without such a ranker.
        """
        if not context:
            return None
        if isinstance(self.ranker, CTRRanker):
            return self.ranker.check_context(context)
        raise DataError(f"request context {', '.join(sorted(map(str, context)))}: this pipeline's ranker takes no "
                        "context (a ranking.kind = \"ctr\" model trained with context fields does)")

    def recommend(self, user_id: Any, k: int = 10, recent: list[tuple[int, float]] | None = None,
                  *, ctx: UserContext | None = None, context: dict[str, Any] | None = None) -> Recommendation:
        """Top-``k`` raw item ids for one user (recent events as item indices, latest first) in a
        request ``context`` (``{field: value}`` for a CTR ranker with context fields)."""
        check_k(k)
        items, scores, source, n_cand = self.recommend_top(user_id, k, recent, ctx=ctx, context=context)
        ids = self.view.item_ids[items].tolist()
        sc = [s if math.isfinite(s) else None for s in scores.tolist()]
        return Recommendation(ids, sc, source, n_cand)

    def recommend_top(self, user_id: Any, k: int, recent: list[tuple[int, float]] | None = None,
                      *, ctx: UserContext | None = None,
                      context: dict[str, Any] | None = None) -> tuple[np.ndarray, np.ndarray, str, int]:
        """:meth:`recommend` at index level: ``(item indices, scores, source, n_candidates)``."""
        ctx = ctx or self.context(user_id, recent)
        k = clamp_k(k, len(self.view.item_ids))
        if context:
            ctx.request = self.check_context(context)
        items, scores, source = self._retrieve(ctx, max(self.n_candidates, k))
        n_cand = len(items)
        items, scores = self._rank_and_process(ctx, items, scores, source)
        items, scores = self._pad(ctx, items, scores, k)
        return items[:k], np.asarray(scores[:k], np.float64), source, n_cand

    def recommend_indices(self, users: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` item indices and scores for user indices of the retrieval model, no events.

        Rows are padded with ``-1`` and NaN; a NaN score inside a row marks a fallback item. The
        result has ``min(k, n_items)`` columns (see :func:`recforge.topk.clamp_k`).

        Evaluation and the batch job use this; ANN retrieval is batched in one index search.
        """
        users = np.asarray(users, np.int64)
        k = clamp_k(k, len(self.view.item_ids))
        out = np.full((len(users), k), -1, np.int64)
        out_sc = np.full((len(users), k), np.nan)
        v = self.view
        ctxs = []
        for u in users.tolist():
            uk = u if u >= 0 and v.user_known[u] else -1
            raw = v.users.ids[u] if u >= 0 else None
            ctxs.append(self._context(raw, uk, None))
        retrieved: list[tuple[np.ndarray, np.ndarray, str] | None] = [None] * len(users)
        n = max(self.n_candidates, k)
        if self.model_retriever is not None:
            rows = [r for r, c in enumerate(ctxs) if c.u >= 0 and not c.cold]
            if rows:
                idx, sc = self.model_retriever.retrieve_many(np.array([ctxs[r].u for r in rows]), n, self.drop_seen)
                for j, r in enumerate(rows):
                    ok = idx[j] >= 0
                    if ok.any():
                        retrieved[r] = (idx[j][ok], sc[j][ok].astype(np.float64), "model")
        if self.chain[0] == "ann":
            rows = [r for r, c in enumerate(ctxs) if c.vector is not None]
            if rows:
                vecs = np.stack([ctxs[r].vector for r in rows])
                excl = [ctxs[r].history if self.drop_seen else _EMPTY_IDX for r in rows]
                res = self.retrievers["ann"].retrieve_many(vecs, max(self.n_candidates, k), excl)
                for r, (it, sc) in zip(rows, res, strict=True):
                    retrieved[r] = (it, sc, "ann")
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
                items, scores = _top_of_scores(row, n, excl)
                if len(items):
                    return items, scores, "cold-start"
        q = ctx.query()
        for j, name in enumerate(self.chain):
            if name == "model":
                got = self.model_retriever.retrieve(ctx, n, self.drop_seen)  # type: ignore[union-attr]
                if got is not None and len(got[0]):
                    return got[0], got[1], "model"
                continue
            r = self.retrievers[name]
            if not r.can_answer(q):
                continue
            items, scores = r.retrieve(q, n, excl)
            if len(items):
                source = name if j == 0 else f"fallback-{'recent' if name == 'item-knn' else name}"
                return items, scores, source
        return _EMPTY_IDX, _EMPTY_VAL, "none"

    def _rank_and_process(self, ctx: UserContext, items: np.ndarray, scores: np.ndarray,
                          source: str = "model") -> tuple[np.ndarray, np.ndarray]:
        # the cold-start model's order is the answer for a cold user; a ranker trained on warm
        # users would undo it
        if self.ranker is not None and len(items) and source != "cold-start":
            rs = self.ranker.score(ctx, items)
            if rs is not None:
                order = order_by_score(rs, items, keep_missing=True)
                items, scores = items[order], rs[order]
        for st in self._post:
            items, scores = st.apply(ctx, items, scores)
        return items, scores

    def _pad(self, ctx: UserContext, items: np.ndarray, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Fill a short list with popular items that pass the filters (score NaN: no model opinion)."""
        if len(items) >= k:
            return items, scores
        pop = self.retrievers["popularity"]
        excl = np.union1d(ctx.history if self.drop_seen else _EMPTY_IDX, items)
        extra, _ = pop.retrieve(ctx.query(), k - len(items) + len(excl) + 64, excl)
        extra_sc = np.full(len(extra), np.nan)
        for st in self.stages:
            if st.is_filter and not isinstance(st, MinScore):
                extra, extra_sc = st.apply(ctx, extra, extra_sc)
        need = k - len(items)
        return np.concatenate([items, extra[:need]]), np.concatenate([scores, extra_sc[:need]])

    # ------------------------------------------------------------------ similar items
    def similar_items(self, item_id: Any, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` items most similar to one raw item id, as raw ids and similarities.

        The model's own :meth:`~recforge.models.base.Recommender.similar_items` (its neighbour
        matrix or embedding cosine); a model with neither answers from item co-occurrence.
        Padding is dropped, so the lists may be shorter than ``k``.
        """
        check_k(k)
        try:
            ids, sc = self.model.similar_items(item_id, k)
        except NotImplementedError:  # the documented answer of a model without neighbours or embeddings
            i = self.view.item_index(item_id)
            if i < 0:
                return self.view.item_ids[:0], _EMPTY_VAL
            if "item-knn" not in self.retrievers:
                self.retrievers["item-knn"] = CooccurrenceRetriever.from_interactions(self.view.seen)
            idx, sc = self.retrievers["item-knn"].similar(i, k)  # type: ignore[attr-defined]
            return self.view.item_ids[idx], sc
        ok = np.isfinite(np.asarray(sc, np.float64))
        return np.asarray(ids)[ok], np.asarray(sc, np.float64)[ok]

    def describe(self) -> dict[str, Any]:
        """The configured stages, for /healthz and reports."""
        return {
            "retrieval": self.chain[0],
            "index": self.index.config.kind if self.chain[0] == "ann" else None,
            "fallback": self.chain[1:],
            "n_candidates": self.n_candidates,
            "ranker": None if self.ranker is None else self.ranker.describe(),
            "cold_start": None if self.cold is None else self.cold.describe(),
            "postprocess": [s.kind for s in self.stages],
        }


def _top_of_scores(row: np.ndarray, n: int, exclude: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """The ``n`` best finite entries of a score row over item indices (``exclude`` left out), best
    first, ties to the lower index (:func:`recforge.topk.topk_rows`)."""
    if exclude is not None and len(exclude):
        row = row.copy()
        row[exclude] = -np.inf
    top, vals = topk_rows(row[None, :], n)
    ok = np.isfinite(vals[0])
    return top[0][ok], vals[0][ok].astype(np.float64)

"""Post-processing of a ranked candidate list: filters (seen, block list, allow list, minimum score)
and a maximal-marginal-relevance diversity re-rank.

Every stage maps ``(context, items, scores)`` to a new ``(items, scores)``; items are item indices
of the model's vocabulary. Item masks are computed once when the stage is built, so a request
costs one vectorised lookup per stage.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from recforge._arrays import check_k, id_key
from recforge.data.vocabulary import Vocabulary
from recforge.errors import ConfigError
from recforge.serving.retrieval import member


def attribute_sets(item_features: pd.DataFrame | None, items: Vocabulary, attribute: str) -> list[frozenset[str]]:
    """The values of ``attribute`` per item index, as sets of strings (``"a|b"`` splits on ``|``).

    Items without features (or without a value) get the empty set.
    """
    if item_features is None:
        raise ConfigError(f"attribute {attribute!r} needs item features, and none were given")
    if attribute not in item_features.columns:
        raise ConfigError(
            f"item features have no column {attribute!r}; columns: {', '.join(map(str, item_features.columns))}"
        )
    values = item_features[attribute].to_numpy()
    feat_vocab = Vocabulary(np.asarray(item_features.index), "item")
    pos = feat_vocab.index(items.ids)
    # the feature vocabulary sorts ids; map its positions back to the table's row order
    row_of = np.empty(len(feat_vocab), np.int64)
    row_of[feat_vocab.index(np.asarray(item_features.index))] = np.arange(len(item_features))
    out: list[frozenset[str]] = []
    for p in pos:
        if p < 0:
            out.append(frozenset())
            continue
        v = values[row_of[p]]
        if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA:
            out.append(frozenset())
        elif isinstance(v, str):
            out.append(frozenset(s for s in v.split("|") if s))
        else:
            out.append(frozenset([id_key(v)]))
    return out


def _item_mask(
    items: Vocabulary,
    item_ids: list[Any] | None,
    attribute: str | None,
    values: list[Any] | None,
    item_features: pd.DataFrame | None,
) -> np.ndarray:
    mask = np.zeros(len(items), bool)
    if item_ids:
        idx = items.index(np.asarray(item_ids, dtype=object))
        mask[idx[idx >= 0]] = True
    if attribute is not None:
        if not values:
            raise ConfigError(f"attribute {attribute!r} given without values")
        want = {str(v) for v in values}
        sets = attribute_sets(item_features, items, attribute)
        mask |= np.fromiter((bool(s & want) for s in sets), bool, len(sets))
    elif values:
        raise ConfigError("values given without an attribute")
    return mask


class Stage:
    """A post-processing stage."""

    kind = "stage"
    is_filter = True

    def apply(self, ctx: Any, items: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class DropSeen(Stage):
    """Leaves out items the user already interacted with (training history and recent events)."""

    kind = "drop-seen"

    def apply(self, ctx: Any, items: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if len(ctx.history) == 0:
            return items, scores
        keep = ~member(items, ctx.history)
        return items[keep], scores[keep]


class BlockList(Stage):
    """Leaves out listed item ids and items whose ``attribute`` takes one of ``values``.

    Args:
        items: The model's item vocabulary.
        item_ids: Raw item ids to block (unknown ids are ignored).
        attribute: An item-feature column (e.g. ``"genres"``; ``"a|b"`` strings are split on ``|``).
        values: Blocked values of ``attribute``.
        item_features: Item features indexed by raw item id.
    """

    kind = "block"

    def __init__(self, items: Vocabulary, item_ids: list[Any] | None = None, attribute: str | None = None,
                 values: list[Any] | None = None, item_features: pd.DataFrame | None = None) -> None:
        if not item_ids and attribute is None:
            raise ConfigError("a block list needs item ids or an attribute with values")
        self.mask = _item_mask(items, item_ids, attribute, values, item_features)

    def apply(self, ctx: Any, items: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        keep = ~self.mask[items]
        return items[keep], scores[keep]


class AllowList(BlockList):
    """Keeps only listed item ids and items whose ``attribute`` takes one of ``values``."""

    kind = "allow"

    def apply(self, ctx: Any, items: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        keep = self.mask[items]
        return items[keep], scores[keep]


class MinScore(Stage):
    """Leaves out items scored below ``threshold`` (and items without a score)."""

    kind = "min-score"

    def __init__(self, threshold: float) -> None:
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not np.isfinite(threshold):
            raise ConfigError(f"min-score threshold must be a finite number, got {threshold!r}")
        self.threshold = float(threshold)

    def apply(self, ctx: Any, items: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        keep = np.nan_to_num(scores, nan=-np.inf) >= self.threshold
        return items[keep], scores[keep]


class MMR(Stage):
    """Maximal marginal relevance re-rank (Carbonell & Goldstein, SIGIR 1998).

    Greedily picks, from the best ``pool`` candidates, the item maximising
    ``lambda * rel(i) - (1 - lambda) * max_{j in S} sim(i, j)`` where ``rel`` is the candidate's
    score min-max scaled to [0, 1] over the pool and ``sim`` is the cosine of item vectors (model
    embeddings, or multi-hot attribute values such as genres). ``lambda = 1`` keeps the ranking.

    Args:
        vectors: ``(n_items, d)`` item vectors (embeddings or multi-hot genres).
        lambda_: Trade-off between relevance and diversity, in [0, 1].
        k: How many items to pick greedily (the rest keep their order after them).
        pool: How many of the best candidates to consider.
    """

    kind = "mmr"
    is_filter = False

    def __init__(self, vectors: np.ndarray, lambda_: float = 0.7, k: int = 10, pool: int = 100) -> None:
        if isinstance(lambda_, bool) or not isinstance(lambda_, (int, float)) or not 0.0 <= lambda_ <= 1.0:
            raise ConfigError(f"mmr lambda must be in [0, 1], got {lambda_!r}")
        k, pool = check_k(k, "mmr k"), check_k(pool, "mmr pool")
        v = np.asarray(vectors, dtype=np.float64)
        norms = np.linalg.norm(v, axis=1)
        norms[norms == 0] = 1.0
        self.unit = v / norms[:, None]
        self.lambda_ = float(lambda_)
        self.k = k
        self.pool = pool

    @classmethod
    def from_attribute(cls, items: Vocabulary, item_features: pd.DataFrame | None, attribute: str,
                       **kw: Any) -> MMR:
        """MMR over multi-hot vectors of an attribute's values (e.g. genres)."""
        sets = attribute_sets(item_features, items, attribute)
        vocab = sorted(set().union(*sets)) if sets else []
        col = {v: j for j, v in enumerate(vocab)}
        mat = np.zeros((len(sets), max(1, len(vocab))), np.float64)
        for r, s in enumerate(sets):
            for v in s:
                mat[r, col[v]] = 1.0
        return cls(mat, **kw)

    def apply(self, ctx: Any, items: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = min(len(items), self.pool)
        if n <= 1 or self.lambda_ >= 1.0:
            return items, scores
        head, rest = items[:n], items[n:]
        s = np.nan_to_num(scores[:n].astype(np.float64), nan=np.nanmin(scores[:n]) if np.isfinite(scores[:n]).any() else 0.0)
        lo, hi = s.min(), s.max()
        rel = (s - lo) / (hi - lo) if hi > lo else np.ones(n)
        sim = self.unit[head] @ self.unit[head].T
        chosen: list[int] = []
        max_sim = np.full(n, -np.inf)
        free = np.ones(n, bool)
        for _ in range(min(self.k, n)):
            div = np.where(np.isfinite(max_sim), max_sim, 0.0)
            obj = self.lambda_ * rel - (1.0 - self.lambda_) * div
            obj[~free] = -np.inf
            j = int(np.argmax(obj))
            chosen.append(j)
            free[j] = False
            max_sim = np.maximum(max_sim, sim[j])
        order = np.concatenate([np.asarray(chosen, np.int64), np.flatnonzero(free)])
        return np.concatenate([head[order], rest]), np.concatenate([scores[:n][order], scores[n:]])

    def __repr__(self) -> str:
        return f"MMR(lambda={self.lambda_}, k={self.k}, pool={self.pool})"

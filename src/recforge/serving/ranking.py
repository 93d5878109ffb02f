"""Ranking candidates with a click-through-rate model (LR, FM, DeepFM) over feature rows.

A CTR model (:mod:`recforge.models.ctr`) scores encoded feature rows, not (user, item) index
pairs. :class:`CTRRanker` builds those rows for one user and a few hundred candidates from the
user's and the items' features with the :class:`~recforge.data.ctr.FeatureEncoder` the model was
trained with, and scores them in one vectorised ``decision_function`` call. Every item's slots are
encoded once when the ranker is built (an ``(n_items, slots)`` index and value template), and
every user's slots once per user (cached), so a request only gathers rows and overwrites the
user's slots.

Each encoder field is a *user field* (the user id field, or a column of the user features), an
*item field* (the item id field, or a column of the item features) or a *context field* (any other
field: Frappe's daytime, weekday, weather, ...): for ML-100K, ``user``, age, gender and occupation;
``item``, genres and release year. Context fields come with the request
(``GET /v1/users/{id}/recommendations?daytime=morning&weekday=sunday``): :meth:`CTRRanker.check_context`
refuses names that are not context fields, and a value the encoder has not seen (or a field the
request leaves out) gets the field's out-of-vocabulary / missing-value feature, as does a user
without features (one the service has never seen): what the model learnt for rare values.
Encoded contexts are cached like users.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from recforge._arrays import category_key, check_k, id_key
from recforge.errors import ConfigError, DataError
from recforge.models.base import Recommender

try:  # the encoder's marker for a missing categorical value
    from recforge.data.ctr import _MISSING
except ImportError:  # pragma: no cover
    _MISSING = "\x00missing"


def _isna(v: Any) -> bool:
    return v is None or v is pd.NA or (isinstance(v, float) and v != v)


def _by_key(features: pd.DataFrame | None, ids: list[Any], columns: list[str]) -> pd.DataFrame:
    """Rows of ``features`` for raw ``ids`` (matched as strings, so 7 and "7" agree), NaN when absent."""
    if not columns:
        return pd.DataFrame(index=range(len(ids)))
    if features is None:
        return pd.DataFrame({c: [None] * len(ids) for c in columns})
    f = features[columns].copy()
    f.index = [id_key(x) for x in f.index.tolist()]
    f = f[~f.index.duplicated()]
    return f.reindex([id_key(x) for x in ids]).reset_index(drop=True)


class CTRRanker:
    """Reorders candidates by a fitted CTR model's logits of (user features, item features) rows.

    Args:
        model: A fitted :class:`~recforge.models.ctr._base.CTRModel` (its public
            ``decision_function(index, value)`` scores the rows).
        encoder: The fitted :class:`~recforge.data.ctr.FeatureEncoder` the model's training rows
            were encoded with.
        item_ids: The pipeline's item vocabulary (raw ids, in index order).
        user_features: User features indexed by raw user id (e.g. age, gender, occupation).
        item_features: Item features indexed by raw item id (e.g. genres, year).
        user_field: Name of the encoder field holding the raw user id ("" or None: no id field).
        item_field: Name of the encoder field holding the raw item id.
        cache_users: Users whose encoded slots are kept.
        user_ids: Raw user ids to encode up front in one call (e.g. the retrieval model's users),
            so their first request does not pay for it; others are encoded on first sight.
        context_fields: Encoder fields a request supplies (Frappe: daytime, weekday, weather, ...);
            every other field must be a user or an item field.
    """

    def __init__(self, model: Any, encoder: Any, item_ids: np.ndarray, user_features: pd.DataFrame | None,
                 item_features: pd.DataFrame | None, *, user_field: str | None = "user",
                 item_field: str | None = "item", cache_users: int = 100_000,
                 user_ids: np.ndarray | None = None, context_fields: Sequence[str] = ()) -> None:
        if not getattr(model, "task", None) == "ctr" or not hasattr(model, "decision_function"):
            raise ConfigError(f"a ctr ranker needs a fitted CTR model (lr, fm, deepfm), not {type(model).__name__}")
        if not model.is_fitted():
            raise ConfigError(f"{type(model).__name__} is not fitted")
        if not getattr(encoder, "fitted_", False):
            raise ConfigError("the ctr ranker's feature encoder is not fitted")
        if int(encoder.n_features_) != int(model.n_features_):
            raise ConfigError(f"the feature encoder has {encoder.n_features_} features, the CTR model was trained on "
                              f"{model.n_features_}: use the encoder its training rows were encoded with")
        self.model = model
        self.encoder = encoder
        self.user_features = user_features
        names = [s.name for s in encoder.fields]
        ucols = set(user_features.columns) if user_features is not None else set()
        icols = set(item_features.columns) if item_features is not None else set()
        self.user_side: list[str] = []
        self.item_side: list[str] = []
        self.context_fields: list[str] = []
        unknown = sorted(set(context_fields) - set(names))
        if unknown:
            raise ConfigError(f"ctr ranker: context field(s) {', '.join(unknown)} are not fields of the feature "
                              f"encoder ({', '.join(names)})")
        for n in names:
            if n in context_fields:
                self.context_fields.append(n)
            elif n == user_field or (n in ucols and n != item_field and n not in icols):
                self.user_side.append(n)
            elif n == item_field or n in icols:
                self.item_side.append(n)
            else:
                raise ConfigError(f"ctr ranker: encoder field {n!r} is neither the user/item id field, a column of "
                                  "the user or item features, nor a request context field (context_fields)")
        self.user_field = user_field if user_field in names else None
        self.item_field = item_field if item_field in names else None
        ids = list(np.asarray(item_ids).tolist())
        frame = self._frame(ids, self.item_side, item_features, self.item_field, self.user_side + self.context_fields)
        rows = encoder.transform(frame, name="ctr-ranker items")
        if not np.array_equal(rows.slot_fields, model.slot_fields_):
            raise ConfigError("the feature encoder's slot layout differs from the CTR model's training rows")
        user_fields = [names.index(n) for n in self.user_side]
        self.user_slots = np.flatnonzero(np.isin(rows.slot_fields, user_fields))
        self.context_slots = np.flatnonzero(np.isin(rows.slot_fields, [names.index(n) for n in self.context_fields]))
        self._contexts: OrderedDict[tuple[str, ...], tuple[np.ndarray, np.ndarray]] = OrderedDict()
        # a context field that no cross field reads encodes on its own: its (field, value) slots are
        # cached, so a new combination of known values costs lookups, not an encoder call
        crossed = {c for f in encoder.fields if f.kind == "cross" for c in f.columns}
        self._per_field = not (crossed & set(self.context_fields)) and all(
            f.kind != "cross" for f in encoder.fields if f.name in self.context_fields)
        ctx_fields = rows.slot_fields[self.context_slots]
        self._field_pos = {n: np.flatnonzero(ctx_fields == names.index(n)) for n in self.context_fields}
        self._field_values: dict[tuple[str, str | None], tuple[np.ndarray, np.ndarray]] = {}
        self.item_index = np.ascontiguousarray(rows.index)
        self.item_value = np.ascontiguousarray(rows.value)
        self._users: OrderedDict[str, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._cache_users = cache_users
        if user_ids is not None and len(user_ids):
            ids = list(np.asarray(user_ids).tolist())[:cache_users]
            frame = self._frame(ids, self.user_side, user_features, self.user_field,
                                self.item_side + self.context_fields)
            rows = encoder.transform(frame, name="ctr-ranker users")
            ui = rows.index[:, self.user_slots]
            uv = rows.value[:, self.user_slots]
            for r, x in enumerate(ids):
                self._users[id_key(x)] = (ui[r].copy(), uv[r].copy())

    def _frame(self, ids: list[Any], side: list[str], features: pd.DataFrame | None, id_field: str | None,
               other: list[str]) -> pd.DataFrame:
        cols = [c for c in side if c != id_field]
        df = _by_key(features, ids, cols)
        if id_field is not None:
            df[id_field] = [id_key(x) for x in ids]
        for c in other:  # the other side's fields: missing here, overwritten per request
            df[c] = None
        # categorical cells as canonical strings, missing ones as the encoder's missing value
        # (what its own reader does), numeric ones as floats: one code path for every column dtype
        for spec in self.encoder.fields:
            col = df[spec.name]
            if spec.kind == "categorical":
                df[spec.name] = pd.Series([_MISSING if _isna(v) else category_key(v) for v in col.tolist()], dtype=object)
            elif spec.kind == "numeric":
                df[spec.name] = pd.to_numeric(col, errors="coerce").astype(np.float64)
        return df

    def user_row(self, user_id: Any) -> tuple[np.ndarray, np.ndarray]:
        """The encoded user slots ``(index, value)`` of one raw user id (cached)."""
        key = id_key(user_id) if user_id is not None else "\x00none"
        hit = self._users.get(key)
        if hit is not None:
            return hit
        frame = self._frame([user_id], self.user_side, self.user_features, self.user_field,
                            self.item_side + self.context_fields)
        if user_id is None and self.user_field is not None:
            frame[self.user_field] = _MISSING
        rows = self.encoder.transform(frame, name="ctr-ranker user")
        out = (rows.index[0, self.user_slots].copy(), rows.value[0, self.user_slots].copy())
        self._users[key] = out
        if len(self._users) > self._cache_users:
            self._users.popitem(last=False)
        return out

    def check_context(self, context: Mapping[str, Any] | None) -> dict[str, str]:
        """A request's context as ``{field: value}`` strings; names must be context fields.

        Raises:
            DataError: A name is not a context field of the encoder (one line naming the fields).
        """
        if not context:
            return {}
        bad = sorted(str(k) for k in context if k not in self.context_fields)
        if bad:
            takes = ", ".join(self.context_fields) if self.context_fields else "none"
            raise DataError(f"unknown request context field(s) {', '.join(bad)}; the ranker's model takes: {takes}")
        return {str(k): category_key(v) for k, v in context.items()}

    def context_row(self, context: Mapping[str, Any] | None) -> tuple[np.ndarray, np.ndarray]:
        """The encoded context slots ``(index, value)`` of a request context (cached); absent fields
        and unseen values get the field's missing / out-of-vocabulary feature."""
        ctx = self.check_context(context)
        key = tuple(ctx.get(n, "\x00absent") for n in self.context_fields)
        hit = self._contexts.get(key)
        if hit is not None:
            self._contexts.move_to_end(key)
            return hit
        if self._per_field:
            idx = np.empty(len(self.context_slots), np.int64)
            val = np.empty(len(self.context_slots), np.float32)
            for n in self.context_fields:
                fi, fv = self._field_value(n, ctx.get(n))
                idx[self._field_pos[n]] = fi
                val[self._field_pos[n]] = fv
            out = (idx.astype(self.item_index.dtype), val.astype(self.item_value.dtype))
        else:
            rows = self.encoder.transform(self._context_frame(ctx), name="request context")
            out = (rows.index[0, self.context_slots].copy(), rows.value[0, self.context_slots].copy())
        self._contexts[key] = out
        if len(self._contexts) > 4096:
            self._contexts.popitem(last=False)
        return out

    def _context_frame(self, ctx: Mapping[str, str]) -> pd.DataFrame:
        """One encoder row: every field missing except the context's."""
        frame = self._frame([None], [], None, None, self.user_side + self.item_side + self.context_fields)
        for n, v in ctx.items():
            spec = self.encoder.fields[[s.name for s in self.encoder.fields].index(n)]
            frame[n] = pd.Series([v], dtype=object) if spec.kind != "numeric" else pd.to_numeric(
                pd.Series([v]), errors="coerce").astype(np.float64)
        return frame

    def _field_value(self, field: str, value: str | None) -> tuple[np.ndarray, np.ndarray]:
        """The slots of one context field holding ``value`` (None: absent), encoded once."""
        key = (field, value)
        hit = self._field_values.get(key)
        if hit is None:
            rows = self.encoder.transform(self._context_frame({} if value is None else {field: value}),
                                          name="request context")
            slots = self.context_slots[self._field_pos[field]]
            hit = (rows.index[0, slots].copy(), rows.value[0, slots].copy())
            if len(self._field_values) < 100_000:  # bounded: values outside the vocabulary are unbounded
                self._field_values[key] = hit
        return hit

    def rows(self, user_id: Any, items: np.ndarray,
             context: Mapping[str, Any] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Feature rows ``(index, value)`` of one user with each of ``items`` (item indices) in a
        request ``context`` (``{context field: value}``)."""
        idx = self.item_index[items]
        val = self.item_value[items]
        ui, uv = self.user_row(user_id)
        idx[:, self.user_slots] = ui
        val[:, self.user_slots] = uv
        if len(self.context_slots):
            ci, cv = self.context_row(context)
            idx[:, self.context_slots] = ci
            val[:, self.context_slots] = cv
        elif context:
            self.check_context(context)
        return idx, val

    def score(self, ctx: Any, items: np.ndarray) -> np.ndarray:
        """Logits of ``items`` for the request's user in the request's context (one vectorised call)."""
        if len(items) == 0:
            return np.empty(0)
        idx, val = self.rows(ctx.user_id, np.asarray(items, np.int64), getattr(ctx, "request", None))
        return np.asarray(self.model.decision_function(idx, val), np.float64)

    def describe(self) -> str:
        return f"ctr:{self.model.name}"


class _ScoreCache:
    """A small LRU of score rows keyed by a history (for cold users asking again without new events)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._d: OrderedDict[Any, Any] = OrderedDict()

    def get(self, key: Any) -> Any:
        v = self._d.get(key)
        if v is not None:
            self._d.move_to_end(key)
        return v

    def put(self, key: Any, value: Any) -> None:
        self._d[key] = value
        if len(self._d) > self.size:
            self._d.popitem(last=False)


class ColdStart:
    """Routes cold users to a cold-start model that scores an ad-hoc history without refitting.

    A user is cold when the retrieval model never saw them, or when their training history plus
    recent events holds fewer than ``threshold`` items. A cold user with at least one event is
    scored by ``model.scores_for_history(item_ids, values)`` (the public onboarding API of
    ``content``, ``hybrid-switching``, ``hybrid-weighted`` and ``lightfm-style``: scores over the
    cold model's items for a handful of (item, value) events, oldest first); a cold user with no
    events at all keeps the pipeline's fallback chain (popular items).

    Args:
        model: The fitted cold-start model.
        item_ids: The pipeline's item vocabulary (raw ids, in index order).
        active: Items the pipeline may recommend.
        threshold: History length from which a user is warm.
        cache_size: Score rows kept per distinct history.
    """

    def __init__(self, model: Recommender, item_ids: np.ndarray, active: np.ndarray, threshold: int = 5,
                 cache_size: int = 4096) -> None:
        if not (isinstance(model, Recommender) and model.scores_history):
            raise ConfigError(f"a cold-start model must score a history (scores_history: content, hybrid-switching, "
                              f"hybrid-weighted, lightfm-style...); {type(model).__name__} does not")
        if not model.is_fitted():
            raise ConfigError(f"{type(model).__name__} is not fitted")
        threshold = check_k(threshold, "cold_start threshold")
        self.model = model
        self.threshold = threshold
        m = model.items_.index(np.asarray(item_ids))
        self.map = np.asarray(m, np.int64)  # pipeline item index -> cold model item index (-1: unknown)
        self.usable = (self.map >= 0) & np.asarray(active, bool)
        self.item_ids = np.asarray(item_ids)
        self._cache = _ScoreCache(cache_size)

    def is_cold(self, u: int, n_history: int) -> bool:
        """Whether a user (index ``u`` in the retrieval model, ``-1`` unknown) with ``n_history``
        items of training history plus recent events is answered by the cold-start model."""
        return u < 0 or n_history < self.threshold

    def scores(self, ctx: Any) -> np.ndarray | None:
        """Scores over the pipeline's items for the user's history (None: no events to go on)."""
        items = list(ctx.train_items.tolist()) + list(ctx.recent[::-1].tolist())  # oldest first
        if not items:
            return None
        vals = list(ctx.train_values.tolist()) + list(np.asarray(ctx.recent_values)[::-1].tolist())
        key = (tuple(items), tuple(vals))
        row = self._cache.get(key)
        if row is None:
            s = np.asarray(self.model.scores_for_history(self.item_ids[np.asarray(items)], np.asarray(vals)), np.float64)
            row = np.full(len(self.map), -np.inf)
            row[self.usable] = s[self.map[self.usable]]
            row[~np.isfinite(row)] = -np.inf
            self._cache.put(key, row)
        return row

    def describe(self) -> dict[str, Any]:
        return {"model": self.model.name, "threshold": self.threshold}

"""The shared model contract: raw ids in and out, typed configs, fit/predict/recommend, save/load.

Every recforge model subclasses :class:`Recommender` and implements ``_fit`` plus either
``_score_pairs`` (scores of (user, item) index pairs) or ``_score_users`` (a dense row of item
scores per user), or both; ``recommend``, ``predict``, batching, unknown-id handling, seen-item
exclusion and persistence are written once here.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar, Literal, Self

import numpy as np
import scipy.sparse as sp

from recforge.config import FitOptions, ModelConfig
from recforge.data.interactions import Interactions
from recforge.data.vocabulary import Vocabulary, normalize_ids
from recforge.errors import ConfigError, DataError, NotFittedError
from recforge.io import atomic_path
from recforge.topk import topk_excluding, topk_sparse_product

Task = Literal["rating", "ranking", "ctr", "sequence"]
FORMAT_VERSION = 1
_SCORE_BUDGET = 2**24  # floats per dense score block: bounds memory in recommend/evaluation


class Recommender(ABC):
    """Base class of every recommender.

    Subclasses set ``name`` (the short CLI name), ``task`` and ``config_class``, and implement
    ``_fit``. Learned state lives in public attributes ending in ``_`` and is what
    :meth:`save` writes; refitting starts fresh.

    Args:
        config: A config object of ``config_class``; or pass hyperparameters as keywords.
    """

    name: ClassVar[str] = "base"
    task: ClassVar[Task] = "ranking"
    config_class: ClassVar[type[ModelConfig]] = ModelConfig

    def __init__(self, config: ModelConfig | dict[str, Any] | None = None, **kwargs: Any) -> None:
        if isinstance(config, ModelConfig):
            if not isinstance(config, self.config_class):
                raise ConfigError(f"{type(self).__name__} takes a {self.config_class.__name__}")
            cfg = config.replace(**kwargs) if kwargs else config
        else:
            cfg = self.config_class.from_dict({**(config or {}), **kwargs})
        self.config = cfg

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config.to_dict().items())
        return f"{type(self).__name__}({args})"

    # ------------------------------------------------------------------ fitting
    def fit(self, data: Interactions, options: FitOptions | None = None) -> Self:
        """Learn from ``data``; returns ``self``. Refitting forgets the previous fit."""
        if not isinstance(data, Interactions):
            raise DataError(f"fit expects Interactions, got {type(data).__name__}")
        if len(data) == 0:
            raise DataError(f"{type(self).__name__}.fit: the training data has no interactions")
        options = options or FitOptions()
        for key in [k for k in vars(self) if k.endswith("_") and not k.startswith("_")]:
            delattr(self, key)
        self.__dict__.pop("_pop_order", None)
        self.users_ = data.users
        self.items_ = data.items
        self.user_known_ = data.user_counts() > 0
        self.item_known_ = data.item_counts() > 0
        self.seen_ = data.csr().astype(bool).astype(np.float32).tocsr()
        lo, hi = data.rating_scale()
        self.rating_min_ = lo
        self.rating_max_ = hi
        self.explicit_ = bool(data.explicit)
        self._fit(data, options)
        return self

    @abstractmethod
    def _fit(self, data: Interactions, options: FitOptions) -> None:
        """Learn state from ``data`` (the base has set vocabularies and the seen matrix)."""

    def is_fitted(self) -> bool:
        return hasattr(self, "users_")

    def _check_fitted(self) -> None:
        if not self.is_fitted():
            raise NotFittedError(f"{type(self).__name__} is not fitted; call fit() first")

    # ------------------------------------------------------------------ scoring hooks
    def _score_pairs(self, u: np.ndarray, i: np.ndarray) -> np.ndarray:
        """Scores of known (user, item) index pairs. Default: gather from ``_score_users``."""
        out = np.empty(len(u), dtype=np.float64)
        if len(u) == 0:
            return out
        uniq, inv = np.unique(u, return_inverse=True)
        step = max(1, _SCORE_BUDGET // max(1, len(self.items_)))
        for s in range(0, len(uniq), step):
            block = self._score_users(uniq[s : s + step])
            sel = (inv >= s) & (inv < s + step)
            out[sel] = block[inv[sel] - s, i[sel]]
        return out

    def _score_users(self, u: np.ndarray) -> np.ndarray:
        """Dense scores, shape ``(len(u), n_items)``. Default: ``_score_pairs`` on every pair."""
        n_items = len(self.items_)
        uu = np.repeat(u, n_items)
        ii = np.tile(np.arange(n_items), len(u))
        return self._score_pairs(uu, ii).reshape(len(u), n_items)

    # ------------------------------------------------------------------ public API (raw ids)
    def score(self, users: Any, items: Any) -> np.ndarray:
        """Raw model scores of (user, item) pairs; NaN where the user or the item is unknown."""
        self._check_fitted()
        u, i = self._pair_indices(users, items)
        out = np.full(len(u), np.nan)
        ok = (u >= 0) & (i >= 0)
        ok[ok] = self.user_known_[u[ok]] & self.item_known_[i[ok]]
        if ok.any():
            out[ok] = self._score_pairs(u[ok], i[ok])
        self.n_impossible_last_ = int((~ok).sum())
        return out

    def predict(self, users: Any, items: Any, *, fallback: Literal["nan", "mean"] = "nan") -> np.ndarray:
        """Predicted ratings for (user, item) pairs, clipped to the training rating scale.

        Unknown users or items give NaN, or the training mean with ``fallback="mean"`` (the
        count of such pairs is in ``n_impossible_last_``).
        """
        if fallback not in ("nan", "mean"):
            raise ConfigError(f"fallback must be 'nan' or 'mean', not {fallback!r}")
        out = self.score(users, items)
        if fallback == "mean" and np.isnan(out).any():
            u, i = self._pair_indices(users, items)
            miss = np.flatnonzero(np.isnan(out))
            uu = np.where((u[miss] >= 0) & self.user_known_[np.maximum(u[miss], 0)], u[miss], -1)
            ii = np.where((i[miss] >= 0) & self.item_known_[np.maximum(i[miss], 0)], i[miss], -1)
            part = self._score_partial(uu, ii)
            part[np.isnan(part)] = self._fallback_rating()
            out[miss] = part
        if self.explicit_:
            out = np.clip(out, self.rating_min_, self.rating_max_)
        return out

    def _score_partial(self, u: np.ndarray, i: np.ndarray) -> np.ndarray:
        """Fallback scores where the user or the item (index ``-1``) is unknown; NaN = no opinion.

        Models with biases override this to use the known side (as scikit-surprise's baseline
        estimate does); the caller fills remaining NaNs with the training mean.
        """
        return np.full(len(u), np.nan)

    def _fallback_rating(self) -> float:
        if hasattr(self, "global_mean_"):
            return float(self.global_mean_)  # type: ignore[attr-defined]
        return float((self.rating_min_ + self.rating_max_) / 2)

    def recommend(
        self,
        users: Any,
        k: int = 10,
        *,
        exclude_seen: bool = True,
        candidates: Any = None,
        fallback: Literal["popular", "none"] = "popular",
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` items for each user, best first, as raw item ids and scores.

        Args:
            users: One raw user id (1-D results) or an array of them (2-D results, one row each).
            k: List length (> 0).
            exclude_seen: Leave out items the user interacted with in training.
            candidates: Optional raw item ids to choose from (unknown ones are ignored).
            fallback: For users unknown to the model: ``"popular"`` ranks the most popular
                training items (their scores are NaN, marking the fallback); ``"none"`` leaves the
                row empty.

        Returns:
            ``(item_ids, scores)``; rows shorter than ``k`` (too few candidates) are padded with
            the id ``-1`` (or ``""`` for string ids) and a NaN score.
        """
        self._check_fitted()
        if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k <= 0:
            raise ConfigError(f"k must be a positive integer, got {k!r}")
        single = np.ndim(users) == 0
        raw = normalize_ids(np.atleast_1d(np.asarray(users, dtype=object if single else None)))
        u = self.users_.index(raw) if len(raw) else np.empty(0, np.int64)
        cand_mask = None
        if candidates is not None:
            ci = self.items_.index(candidates)
            cand_mask = np.zeros(len(self.items_), bool)
            cand_mask[ci[ci >= 0]] = True
        idx, scores = self.recommend_indices(u, k, exclude_seen=exclude_seen, candidate_mask=cand_mask,
                                             fallback=fallback)
        ids = self._ids_with_padding(idx)
        if single:
            return ids[0], scores[0]
        return ids, scores

    def recommend_indices(
        self,
        u: np.ndarray,
        k: int,
        *,
        exclude_seen: bool = True,
        candidate_mask: np.ndarray | None = None,
        fallback: Literal["popular", "none"] = "popular",
        exclude: sp.csr_matrix | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Index-level :meth:`recommend`: user indices (``-1`` = unknown) to item indices (``-1`` pad).

        ``exclude`` adds a users x items matrix of further items to leave out (evaluation uses it).
        """
        u = np.asarray(u, dtype=np.int64)
        n_items = len(self.items_)
        k_eff = min(k, n_items)
        out_idx = np.full((len(u), k), -1, dtype=np.int64)
        out_sc = np.full((len(u), k), np.nan)
        known = (u >= 0)
        known[known] = self.user_known_[u[known]]
        rows = np.flatnonzero(known)
        banned = ~self.item_known_
        if candidate_mask is not None:
            banned = banned | ~candidate_mask
        step = max(1, _SCORE_BUDGET // max(1, n_items))
        for s in range(0, len(rows), step):
            r = rows[s : s + step]
            excl = self.seen_[u[r]] if exclude_seen else sp.csr_matrix((len(r), n_items), dtype=np.float32)
            if exclude is not None:
                excl = excl + exclude[u[r]]
            excl = excl.tocsr()
            excl.sort_indices()
            product = self._nonnegative_sparse_product()
            if product is not None:
                idx, sc = topk_sparse_product(product[0], u[r], product[1], excl.indptr, excl.indices, banned, k_eff)
            else:
                block = np.asarray(self._score_users(u[r]))
                if block.dtype not in (np.float32, np.float64):
                    block = block.astype(np.float64)
                idx, sc = topk_excluding(np.ascontiguousarray(block), excl.indptr, excl.indices, banned, k_eff)
            out_idx[r, :k_eff] = idx
            out_sc[r, :k_eff] = sc
        unknown = np.flatnonzero(~known)
        if len(unknown) and fallback == "popular":
            pop = self._popularity_order()
            if candidate_mask is not None:
                pop = pop[candidate_mask[pop]]
            for j in unknown:
                items = pop
                if exclude is not None and u[j] >= 0:
                    items = items[~np.isin(items, exclude[u[j]].indices)]
                top = items[:k]
                out_idx[j, : len(top)] = top
        return out_idx, out_sc

    def _sparse_product(self) -> tuple[sp.csr_matrix, sp.csr_matrix] | None:
        """``(a, m)`` with ``_score_users(u) == a[u] @ m`` for sparse models (None: dense scores)."""
        return None

    def _nonnegative_sparse_product(self) -> tuple[sp.csr_matrix, sp.csr_matrix] | None:
        """:meth:`_sparse_product` when both factors are non-negative, so that items a user's row
        never touches score exactly 0 and top-k needs only the touched ones (checked once per fit)."""
        product = self._sparse_product()
        if product is None:
            return None
        cached = self.__dict__.get("_sparse_ok")
        if cached is None or cached[0] is not product[0] or cached[1] is not product[1]:
            ok = all(len(x.data) == 0 or float(x.data.min()) >= 0.0 for x in product)
            self._sparse_ok = (product[0], product[1], ok)
            cached = self._sparse_ok
        return product if cached[2] else None

    def _popularity_order(self) -> np.ndarray:
        if "_pop_order" not in self.__dict__:
            counts = np.asarray(self.seen_.sum(axis=0)).ravel()
            self._pop_order = np.lexsort((np.arange(len(counts)), -counts))
            self._pop_order = self._pop_order[self.item_known_[self._pop_order]]
        return self._pop_order

    def _ids_with_padding(self, idx: np.ndarray) -> np.ndarray:
        ids = self.items_.ids
        pad: Any = "" if ids.dtype.kind == "U" else -1
        out = np.where(idx >= 0, ids[np.clip(idx, 0, max(0, len(ids) - 1))] if len(ids) else pad, pad)
        return out

    def _pair_indices(self, users: Any, items: Any) -> tuple[np.ndarray, np.ndarray]:
        uu = np.atleast_1d(np.asarray(users, dtype=object if np.ndim(users) == 0 else None))
        ii = np.atleast_1d(np.asarray(items, dtype=object if np.ndim(items) == 0 else None))
        if len(uu) != len(ii):
            if len(uu) == 1:
                uu = np.repeat(uu, len(ii))
            elif len(ii) == 1:
                ii = np.repeat(ii, len(uu))
            else:
                raise DataError(f"users and items differ in length ({len(uu)} vs {len(ii)})")
        u = self.users_.index(uu) if len(uu) else np.empty(0, np.int64)
        i = self.items_.index(ii) if len(ii) else np.empty(0, np.int64)
        return u, i

    # ------------------------------------------------------------------ similar entities
    def embeddings(self) -> tuple[np.ndarray, np.ndarray]:
        """(user_vectors, item_vectors) in index order, for models that learn them."""
        raise NotImplementedError(f"{type(self).__name__} has no embeddings")

    # ------------------------------------------------------------------ persistence
    def get_state(self) -> dict[str, Any]:
        """Learned state as arrays and JSON values (override for non-array state)."""
        return {k: v for k, v in vars(self).items() if k.endswith("_") and not k.startswith("_")}

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`get_state` returned."""
        for k, v in state.items():
            setattr(self, k, v)

    def save(self, path: str | Path) -> Path:
        """Write config and learned state to one ``.npz`` file, atomically and without pickle."""
        self._check_fitted()
        path = Path(path)
        arrays: dict[str, np.ndarray] = {}
        meta: dict[str, Any] = {}
        for key, val in self.get_state().items():
            _pack(key, val, arrays, meta)
        header = {
            "format": FORMAT_VERSION,
            "model": self.name,
            "class": f"{type(self).__module__}.{type(self).__qualname__}",
            "config": self.config.to_dict(),
            "meta": meta,
        }
        arrays["__header__"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
        return path

    @classmethod
    def load(cls, path: str | Path) -> Recommender:
        """Read a model written by :meth:`save` (the class is looked up from the file)."""
        path = Path(path)
        if not path.exists():
            raise DataError(f"{path}: no such model file")
        try:
            npz = np.load(path, allow_pickle=False)
            header = json.loads(bytes(npz["__header__"]).decode())
        except Exception as exc:
            raise DataError(f"{path}: not a recforge model file ({exc})") from exc
        if header.get("format") != FORMAT_VERSION:
            raise DataError(f"{path}: unsupported model format {header.get('format')}")
        from recforge.models.registry import get_model_class

        model_cls = get_model_class(header["model"])
        if cls is not Recommender and not issubclass(model_cls, cls):
            raise DataError(f"{path}: holds a {model_cls.__name__}, not a {cls.__name__}")
        model = model_cls(header["config"])
        state: dict[str, Any] = {}
        for key, spec in header["meta"].items():
            state[key] = _unpack(key, spec, npz)
        model.set_state(state)
        return model


def _pack(key: str, val: Any, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
    if isinstance(val, Vocabulary):
        arrays[key] = val.ids
        meta[key] = {"kind": "vocab", "name": val.name}
    elif isinstance(val, np.ndarray):
        if val.dtype == object:
            raise DataError(f"cannot save object array {key}")
        arrays[key] = val
        meta[key] = {"kind": "array"}
    elif sp.issparse(val):
        m = sp.csr_matrix(val)
        arrays[f"{key}.data"] = m.data
        arrays[f"{key}.indices"] = m.indices
        arrays[f"{key}.indptr"] = m.indptr
        meta[key] = {"kind": "csr", "shape": list(m.shape)}
    elif isinstance(val, (np.integer, np.floating, np.bool_)):
        meta[key] = {"kind": "json", "value": val.item()}
    elif val is None or isinstance(val, (bool, int, float, str, list, dict)):
        meta[key] = {"kind": "json", "value": val}
    elif isinstance(val, tuple):
        meta[key] = {"kind": "tuple", "n": len(val)}
        for j, v in enumerate(val):
            _pack(f"{key}.{j}", v, arrays, meta[key].setdefault("items", {}))
    else:
        raise DataError(f"cannot save attribute {key} of type {type(val).__name__}")


def _unpack(key: str, spec: dict[str, Any], npz: Any) -> Any:
    kind = spec["kind"]
    if kind == "vocab":
        return Vocabulary._from_sorted(npz[key], spec["name"])
    if kind == "array":
        return npz[key]
    if kind == "csr":
        return sp.csr_matrix(
            (npz[f"{key}.data"], npz[f"{key}.indices"], npz[f"{key}.indptr"]), shape=tuple(spec["shape"])
        )
    if kind == "tuple":
        return tuple(_unpack(k, s, npz) for k, s in spec["items"].items())
    return spec["value"]

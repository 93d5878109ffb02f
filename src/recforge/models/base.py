"""The shared model contract: raw ids in and out, typed configs, fit/predict/recommend, save/load.

Every recforge model subclasses :class:`Recommender` and implements ``_fit`` plus either
``_score_pairs`` (scores of (user, item) index pairs) or ``_score_users`` (a dense row of item
scores per user), or both; ``recommend``, ``predict``, batching, unknown-id handling, seen-item
exclusion and persistence are written once here.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal, Self

import numpy as np
import scipy.sparse as sp

from recforge.training.backends import fit_backend
from recforge._arrays import check_k
from recforge.config import FitOptions, ModelConfig
from recforge.data.interactions import Interactions, require_ratings
from recforge.data.vocabulary import Vocabulary, normalize_ids
from recforge.errors import ConfigError, DataError, NotFittedError, RecforgeError
from recforge.models.persist import FORMAT_VERSION, read_header, read_state, restore, write_model
from recforge.models.capabilities import Backend, Feedback
from recforge.topk import clamp_k, topk_excluding, topk_rows, topk_sparse_product

Task = Literal["rating", "ranking", "ctr", "sequence"]
__all__ = ["FORMAT_VERSION", "Estimator", "Recommender", "Task", "check_is_fitted"]
_SCORE_BUDGET = 2**24  # floats per dense score block: bounds memory in recommend/evaluation


# learned arrays with one row per vocabulary id wherever a model has them (the conventional names)
_PER_ID_STATE = frozenset(f"{side}_{what}_" for side in ("user", "item")
                          for what in ("known", "factors", "bias"))


def _csr_rows(m: sp.csr_matrix, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``indptr, indices`` of ``m[rows]`` with sorted column indices per row (what
    ``topk_excluding`` reads), gathered without building a sparse matrix."""
    if not m.has_sorted_indices:
        m.sort_indices()
    starts = m.indptr[rows].astype(np.int64)
    lens = m.indptr[rows + 1].astype(np.int64) - starts
    ptr = np.zeros(len(rows) + 1, np.int64)
    np.cumsum(lens, out=ptr[1:])
    pos = np.repeat(starts - ptr[:-1], lens) + np.arange(ptr[-1], dtype=np.int64)
    return ptr.astype(m.indptr.dtype), m.indices[pos]  # scipy's dtypes: the compiled kernels' signature


def check_is_fitted(model: Estimator) -> None:
    """Raise :class:`NotFittedError` unless ``model`` is fitted (scikit-learn's ``check_is_fitted``)."""
    if not model.is_fitted():
        raise NotFittedError(f"{type(model).__name__} is not fitted; call fit() first")


class Estimator(ABC):
    """What every recforge model has: a typed config, ``fit``, learned state and persistence.

    Subclasses set ``name`` (the short CLI name), ``task`` and ``config_class``. Learned state lives
    in public attributes ending in ``_`` and is what :meth:`save` writes; refitting starts fresh.
    :class:`Recommender` (the user-item API) and :class:`~recforge.models.ctr.CTRModel` (feature
    rows, ``predict_proba``) are the two kinds.

    Args:
        config: A config object of ``config_class``; or pass hyperparameters as keywords.
    """

    name: ClassVar[str] = "base"
    task: ClassVar[Task] = "ranking"
    config_class: ClassVar[type[ModelConfig]] = ModelConfig
    backend: ClassVar[Backend] = "numpy"
    """``"numpy"`` (numpy/numba/scipy) or ``"torch"`` (a torch network: ``device`` applies)."""
    fits_on_ray: ClassVar[bool] = False
    """``fit`` itself distributes its work when ``FitOptions.backend == "ray"`` (``ials``); torch
    models are instead fitted by Ray Train (:func:`recforge.distributed.train.fit_on_ray`)."""

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

    def clone(self) -> Self:
        """An unfitted copy with the same configuration (scikit-learn's ``clone``)."""
        return type(self)(self.config)

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The hyperparameters as a dict (scikit-learn interoperability)."""
        return self.config.to_dict()

    def set_params(self, **params: Any) -> Self:
        """Change hyperparameters (validated again); the model must be refitted."""
        self.config = self.config.replace(**params)
        return self

    @abstractmethod
    def fit(self, data: Any, options: FitOptions | None = None) -> Self:
        """Learn from ``data``; returns ``self``. Refitting forgets the previous fit."""

    def is_fitted(self) -> bool:
        """Whether :meth:`fit` (or :meth:`load`) has set learned state."""
        return any(k.endswith("_") and not k.startswith("_") for k in vars(self))

    def check_is_fitted(self) -> None:
        """Raise :class:`NotFittedError` unless fitted."""
        check_is_fitted(self)

    def target_transform(self) -> str | None:
        """How the model transforms the values it is given before it learns them, as result rows
        report it (the ``normalized`` wrapper: ``user-zscore``, ...); None: it learns them as they are."""
        return None

    _check_fitted = check_is_fitted

    def _forget(self) -> None:
        for key in [k for k in vars(self) if k.endswith("_") and not k.startswith("_")]:
            delattr(self, key)

    # ------------------------------------------------------------------ persistence
    def get_state(self) -> dict[str, Any]:
        """Learned state as arrays and JSON values (override for non-array state)."""
        return {k: v for k, v in vars(self).items() if k.endswith("_") and not k.startswith("_")}

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`get_state` returned: learned attributes only (public names ending
        in ``_`` that the class does not define), so a crafted file cannot replace a method."""
        for k, v in state.items():
            if not (isinstance(k, str) and k.isidentifier() and k.endswith("_") and not k.startswith("_")
                    and not hasattr(type(self), k)):
                raise DataError(f"{k[:80]!r} is not learned state of {type(self).__name__}")
            setattr(self, k, v)

    def check_state(self) -> None:
        """Check that loaded state fits together (called after :meth:`load`); raise
        :class:`DataError` naming the bad array. Models extend it."""

    def save(self, path: str | Path) -> Path:
        """Write config and learned state to one ``.npz`` file, atomically and without pickle."""
        self.check_is_fitted()
        header = {
            "model": self.name,
            "class": f"{type(self).__module__}.{type(self).__qualname__}",
            "config": self.config.to_dict(),
        }
        return write_model(path, header, self.get_state())

    @classmethod
    def load(cls, path: str | Path) -> Any:
        """Read a model written by :meth:`save` (the class is looked up from the file)."""
        header, npz = read_header(path)
        from recforge.models.registry import get_model_class

        model_cls = get_model_class(header["model"])
        if cls not in (Estimator, Recommender) and not issubclass(model_cls, cls):
            raise DataError(f"{path}: holds a {model_cls.__name__}, not a {cls.__name__}")
        try:
            model = model_cls(header["config"])
        except RecforgeError as exc:
            raise DataError(f"{path}: the saved config is invalid: {exc}") from None
        except Exception as exc:  # noqa: BLE001 - a crafted header: one line, never a traceback
            raise DataError(f"{path}: the saved config is invalid ({type(exc).__name__})") from None
        return restore(model, read_state(header, npz, path), path)


class Recommender(Estimator):
    """Base class of every user-item recommender (rating, ranking, sequence and cold-start models).

    Subclasses implement ``_fit`` plus ``_score_pairs`` and/or ``_score_users``, and optionally
    ``_score_history`` (scores for an ad-hoc history: fold-in, cold start, real-time serving) and
    ``embeddings``/``_neighbor_matrix`` (similar items and users).

    Capabilities are declared as class variables, never discovered with ``hasattr``:

    - ``feedback``: what ``fit`` learns from. ``"implicit"`` models (the default for ranking and
      sequence tasks) turn explicit ratings into implicit feedback first (every rated item a
      positive, :meth:`Interactions.to_implicit`) and take implicit values (clicks, play counts)
      as given; ``"explicit"`` models (rating prediction) and ``"any"`` models use the values as
      given. This is the one place that rule lives: protocols, the CLI and serving just call ``fit``.
      An ``"explicit"`` model's ``fit`` refuses implicit data and constant values with a one-line
      :class:`DataError` naming the model (:func:`~recforge.data.interactions.require_ratings`).
    - ``scores_history``: :meth:`scores_for_history` and :meth:`recommend_for_history` work.
    - ``has_embeddings``: :meth:`embeddings` returns user and item vectors.
    - ``folds_in``: :meth:`fold_in` solves a user vector for a history.
    - ``uses_signals``: ``fit`` reads the log's named signals (:attr:`Interactions.signals`) and
      learns from rows whose rating is missing (NaN), as the implicit-to-explicit models do; a
      protocol that hides ratings gives such a model the whole log with those ratings masked,
      and every other rating model the rated rows only.

    Args:
        config: A config object of ``config_class``; or pass hyperparameters as keywords.
    """

    feedback: ClassVar[Feedback] = "implicit"
    scores_history: ClassVar[bool] = False
    has_embeddings: ClassVar[bool] = False
    folds_in: ClassVar[bool] = False
    uses_signals: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # rating models learn from the ratings unless a class says otherwise
        if "feedback" not in cls.__dict__ and cls.__dict__.get("task") == "rating":
            cls.feedback = "explicit"

    # ------------------------------------------------------------------ fitting
    def fit(self, data: Interactions, options: FitOptions | None = None) -> Self:
        """Learn from ``data``; returns ``self``. Refitting forgets the previous fit."""
        if not isinstance(data, Interactions):
            raise DataError(f"fit expects Interactions, got {type(data).__name__}")
        if len(data) == 0:
            raise DataError(f"{type(self).__name__}.fit: the training data has no interactions")
        if self.feedback == "explicit":
            # every rating model, however it is called (Python, CLI, protocols, serving): implicit
            # data or constant values would fit a constant and score a perfect, meaningless RMSE
            require_ratings(data, f"{self.name} (a rating model)")
        options = options or FitOptions()
        if options.backend != "local" and not self.fits_on_ray:
            return fit_backend(options.backend)(self, data, options)
        if self.feedback == "implicit" and data.explicit:
            data = data.to_implicit()
        self._forget()
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

    def check_state(self) -> None:
        """Loaded state fits together: the vocabularies' sizes match the per-user and per-item
        arrays (the conventional names ``user_factors_``, ``item_bias_``... have one row per id), factor matrices have
        ``embedding_size`` columns, embeddings match the vocabularies, and one known user's
        scores have one finite-or-masked entry per item. Raises :class:`DataError` naming the array."""
        for key in ("users_", "items_", "user_known_", "item_known_", "seen_"):
            if not hasattr(self, key):
                raise DataError(f"the model state lacks {key!r}")
        n_u, n_i = len(self.users_), len(self.items_)
        sizes = {"user": n_u, "item": n_i}
        dim = getattr(self.config, "embedding_size", None)
        for key, val in vars(self).items():
            if not (key.endswith("_") and isinstance(val, np.ndarray)) or key in ("users_", "items_"):
                continue
            side = key.split("_", 1)[0] if key in _PER_ID_STATE else None
            if side is not None and (val.ndim == 0 or val.shape[0] != sizes[side]):
                raise DataError(f"array {key!r} has shape {val.shape}; the model has {sizes[side]} {side}s")
            if (isinstance(dim, int) and val.ndim == 2 and key.endswith(("factors_", "embeddings_"))
                    and val.shape[1] != dim):
                raise DataError(f"array {key!r} has shape {val.shape}; embedding_size is {dim}")
        if getattr(self.seen_, "shape", None) != (n_u, n_i):
            raise DataError(f"array 'seen_' has shape {getattr(self.seen_, 'shape', None)}; expected {(n_u, n_i)}")
        if self.has_embeddings:
            uv, iv = self.embeddings()
            if np.ndim(uv) != 2 or np.ndim(iv) != 2 or len(uv) != n_u or len(iv) != n_i or uv.shape[1] != iv.shape[1]:
                raise DataError(f"embeddings of shapes {np.shape(uv)} and {np.shape(iv)} do not match "
                                f"{n_u} users and {n_i} items")
        known = np.flatnonzero(self.user_known_)
        if len(known):
            row = np.asarray(self._score_users(known[:1]))
            if row.shape != (1, n_i):
                raise DataError(f"scores have shape {row.shape} for {n_i} items: an array does not match the vocabularies")

    def knows_user(self, user_id: Any) -> bool:
        """Whether ``user_id`` (a raw id) had training interactions, so that it gets personal scores."""
        self.check_is_fitted()
        u = self.users_.index(normalize_ids(np.atleast_1d(np.asarray(user_id, dtype=object))))[0]
        return bool(u >= 0 and self.user_known_[u])

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
    def score_indices(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """:meth:`score` for (user index, item index) pairs of this model's vocabularies, for callers
        that already hold indices (a serving ranker: no raw-id lookups per request).

        Args:
            users: User indices (``-1`` = unknown).
            items: Item indices (``-1`` = unknown), same length.

        Returns:
            Scores; NaN where the user or the item is unknown or had no training interactions.
        """
        self.check_is_fitted()
        u = np.asarray(users, dtype=np.int64)
        i = np.asarray(items, dtype=np.int64)
        if u.shape != i.shape:
            raise DataError(f"users and items differ in length ({len(u)} vs {len(i)})")
        out = np.full(len(u), np.nan)
        ok = (u >= 0) & (i >= 0)
        ok[ok] = self.user_known_[u[ok]] & self.item_known_[i[ok]]
        if ok.any():
            out[ok] = self._score_pairs(u[ok], i[ok])
        return out

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

    def score_all(self, users: Any) -> np.ndarray:
        """Raw model scores of every item (columns in item index order) for each raw user id.

        The dense counterpart of :meth:`score` for callers that need whole rows (hybrids blend and
        standardise them per user). Rows of unknown users and columns of items without training
        data are NaN; the caller bounds memory by passing users in blocks.

        Returns:
            ``(len(users), len(model.items_))`` floats; one raw id gives a 1-D row.
        """
        self.check_is_fitted()
        single = np.ndim(users) == 0
        raw = normalize_ids(np.atleast_1d(np.asarray(users, dtype=object if single else None)))
        u = self.users_.index(raw) if len(raw) else np.empty(0, np.int64)
        out = np.full((len(u), len(self.items_)), np.nan)
        ok = u >= 0
        ok[ok] = self.user_known_[u[ok]]
        if ok.any():
            out[ok] = self._score_users(u[ok])
        out[:, ~self.item_known_] = np.nan
        return out[0] if single else out

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
            k: List length (> 0). A ``k`` beyond the catalogue is clamped to the number of
                items (the arrays have ``min(k, n_items)`` columns), so memory never grows with
                ``k`` alone.
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
        check_k(k)
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
        The result has ``min(k, n_items)`` columns (see :func:`recforge.topk.clamp_k`).
        """
        u = np.asarray(u, dtype=np.int64)
        n_items = len(self.items_)
        k = k_eff = clamp_k(k, n_items)
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
            if exclude is None and exclude_seen:
                # the seen rows gathered straight from the CSR arrays: scipy's fancy row indexing
                # costs ~0.7 ms per call, most of a served request
                ex_ptr, ex_idx = _csr_rows(self.seen_, u[r])
            else:
                excl = self.seen_[u[r]] if exclude_seen else sp.csr_matrix((len(r), n_items), dtype=np.float32)
                if exclude is not None:
                    excl = excl + exclude[u[r]]
                excl = excl.tocsr()
                excl.sort_indices()
                ex_ptr, ex_idx = excl.indptr, excl.indices
            product = self._nonnegative_sparse_product()
            if product is not None:
                idx, sc = topk_sparse_product(product[0], u[r], product[1], ex_ptr, ex_idx, banned, k_eff)
            else:
                block = np.asarray(self._score_users(u[r]))
                if block.dtype not in (np.float32, np.float64):
                    block = block.astype(np.float64)
                idx, sc = topk_excluding(np.ascontiguousarray(block), ex_ptr, ex_idx, banned, k_eff)
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

    # ------------------------------------------------------------------ ad-hoc histories
    def _score_history(self, item_idx: np.ndarray, values: np.ndarray | None,
                       context: Mapping[str, Any]) -> np.ndarray:
        """Scores of every item index for a user described only by a history (no refit).

        The one hook behind :meth:`scores_for_history`, :meth:`recommend_for_history`, serving's
        real-time path, the hybrids and cold start. Models that set ``scores_history = True``
        override it.

        Args:
            item_idx: Known item indices of the history, in the order given (oldest first), repeats kept.
            values: One value per entry of ``item_idx`` (rating, count, click weight), or None.
            context: Optional facts about the user: ``"user"`` (an index, ``-1`` when unknown) and
                ``"attributes"`` (a dict such as ``{"age": 31}``); models use what they understand.

        Returns:
            A float array of shape ``(n_items,)``; NaN or ``-inf`` marks items the model cannot score.
        """
        raise NotImplementedError(f"{type(self).__name__} cannot score an ad-hoc history (scores_history is False)")

    def _history_indices(self, item_ids: Any, values: Any) -> tuple[np.ndarray, np.ndarray | None]:
        """Known item indices of a raw-id history (order kept, unknown ids dropped) and their values."""
        raw = normalize_ids(np.atleast_1d(np.asarray(item_ids, dtype=object if np.ndim(item_ids) == 0 else None)))
        idx = self.items_.index(raw) if len(raw) else np.empty(0, np.int64)
        vals = None
        if values is not None:
            vals = np.atleast_1d(np.asarray(values, dtype=np.float64))
            if len(vals) != len(idx):
                raise DataError(f"values has {len(vals)} entries for {len(idx)} item ids")
        ok = idx >= 0
        ok[ok] = self.item_known_[idx[ok]]
        return idx[ok], None if vals is None else vals[ok]

    def _history_context(self, user: Any, attributes: Mapping[str, Any] | None,
                         events: Mapping[str, Any] | None = None) -> dict[str, Any]:
        u = -1
        if user is not None:
            u = int(self.users_.index(normalize_ids(np.atleast_1d(np.asarray(user, dtype=object))))[0])
            if u >= 0 and not self.user_known_[u]:
                u = -1
        out: dict[str, Any] = {"user": u, "attributes": dict(attributes) if attributes else None}
        if events is not None:
            out["events"] = self._events_indices(events)
        return out

    def _events_indices(self, events: Mapping[str, Any]) -> dict[str, Any]:
        """Recent events ``{"items": raw ids, "kinds", "values", "times"}`` (oldest first) with the
        items as known item indices; unknown items are dropped with their other entries."""
        items = events.get("items")
        raw = normalize_ids(np.atleast_1d(np.asarray([] if items is None else items,
                                                     dtype=object if np.ndim(items) == 0 else None)))
        idx = self.items_.index(raw) if len(raw) else np.empty(0, np.int64)
        ok = idx >= 0
        ok[ok] = self.item_known_[idx[ok]]
        out: dict[str, Any] = {"items": idx[ok]}
        for key in ("kinds", "values", "times"):
            val = events.get(key)
            if val is None:
                continue
            arr = np.asarray(list(val), dtype=object if key == "kinds" else np.float64)
            if len(arr) != len(raw):
                raise DataError(f"events: {key} has {len(arr)} entries for {len(raw)} items")
            out[key] = arr[ok]
        return out

    def scores_for_history(
        self, item_ids: Any, values: Any = None, *, user: Any = None, attributes: Mapping[str, Any] | None = None,
        events: Mapping[str, Any] | None = None,
    ) -> np.ndarray:
        """Scores of every item (in index order, ``len(model.items_)``) for an ad-hoc history.

        Args:
            item_ids: Raw ids of the items the user interacted with, oldest first (unknown ids
                are ignored; repeats count again).
            values: Optional value per item (rating or count; default 1 where the model uses values).
            user: Optional raw user id, for models that also use who the user is (unknown: ignored).
            attributes: Optional user attributes (e.g. ``{"age": 31, "gender": "F"}``) for the
                models that use them.
            events: Optional recent events in time order, oldest first, for the models that read
                a context (``two-tower-context``): ``{"items": raw ids, "kinds": ["click", ...],
                "values": [...], "times": [unix seconds]}`` (kinds, values, times optional);
                other models ignore them (``item_ids`` already holds the items).

        Returns:
            A float array of shape ``(n_items,)``; NaN or ``-inf`` marks items the model cannot
            score. A history with no known item gives all NaN unless the model has a prior for an
            empty history (demographic, popularity, the hybrids), as :meth:`recommend_for_history`
            then falls back to popularity.

        Raises:
            NotImplementedError: When the model cannot score histories (``scores_history`` is False).
        """
        self.check_is_fitted()
        if not self.scores_history:
            raise NotImplementedError(f"{type(self).__name__} cannot score an ad-hoc history")
        idx, vals = self._history_indices(item_ids, values)
        if len(idx) == 0 and not self._scores_empty_history():
            # the same rule as recommend_for_history: no known item and no prior, no opinion
            return np.full(len(self.items_), np.nan)
        out = np.asarray(self._score_history(idx, vals, self._history_context(user, attributes, events)),
                         dtype=np.float64)
        return out

    def recommend_for_history(
        self,
        item_ids: Any,
        k: int = 10,
        values: Any = None,
        *,
        exclude_seen: bool = True,
        candidates: Any = None,
        user: Any = None,
        attributes: Mapping[str, Any] | None = None,
        events: Mapping[str, Any] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` items for a user described only by ``item_ids`` (no refit), best first.

        The real-time and cold-start path: a new user's first ratings, or a known user's latest
        clicks. Same conventions as :meth:`recommend` for one user.

        Args:
            item_ids: Raw ids of the items the user interacted with, oldest first.
            k: List length (> 0).
            values: Optional value per item.
            exclude_seen: Leave the history's items out of the list.
            candidates: Optional raw item ids to choose from.
            user, attributes, events: See :meth:`scores_for_history`.

        Returns:
            ``(item_ids, scores)``; a history with no known item gives the most popular training
            items with NaN scores, as :meth:`recommend` does for an unknown user. Short rows are
            padded with ``-1`` (``""`` for string ids) and NaN; ``k`` is clamped to the catalogue.
        """
        check_k(k)
        self.check_is_fitted()
        if not self.scores_history:
            raise NotImplementedError(f"{type(self).__name__} cannot score an ad-hoc history")
        idx, vals = self._history_indices(item_ids, values)
        n_items = len(self.items_)
        banned = ~self.item_known_
        if candidates is not None:
            ci = self.items_.index(candidates)
            allowed = np.zeros(n_items, bool)
            allowed[ci[ci >= 0]] = True
            banned = banned | ~allowed
        if exclude_seen and len(idx):
            banned = banned.copy()
            banned[idx] = True
        k = clamp_k(k, n_items)
        if len(idx) == 0 and not self._scores_empty_history():
            out_idx = np.full(k, -1, np.int64)
            pop = self._popularity_order()
            pop = pop[~banned[pop]][:k]
            out_idx[: len(pop)] = pop
            return self._ids_with_padding(out_idx[None])[0], np.full(k, np.nan)
        scores = np.asarray(self._score_history(idx, vals, self._history_context(user, attributes, events)),
                            np.float64)
        none = np.zeros(1, np.int64)
        top, sc = topk_excluding(np.ascontiguousarray(scores[None, :]), none, none[:0], banned, k)
        out_idx = np.full(k, -1, np.int64)
        out_sc = np.full(k, np.nan)
        out_idx[: top.shape[1]] = top[0]
        out_sc[: top.shape[1]] = sc[0]
        return self._ids_with_padding(out_idx[None])[0], out_sc

    def _scores_empty_history(self) -> bool:
        """Whether an empty history still gets model scores (priors, attributes) instead of the
        popularity fallback. Models with a prior for new users override this."""
        return False

    def fold_in(self, item_ids: Any, values: Any = None) -> np.ndarray:
        """The user vector that the model would learn for this history, solved against the fixed
        item vectors (models with ``folds_in``: ALS, iALS). Zeros for an empty history."""
        raise NotImplementedError(f"{type(self).__name__} does not fold users in (folds_in is False)")

    # ------------------------------------------------------------------ similar entities
    def embeddings(self) -> tuple[np.ndarray, np.ndarray]:
        """``(user_vectors, item_vectors)`` in index order, as numpy arrays (``has_embeddings`` models)."""
        raise NotImplementedError(f"{type(self).__name__} has no embeddings")

    def _neighbor_matrix(self, side: Literal["user", "item"]) -> sp.spmatrix | np.ndarray | None:
        """A square matrix whose row ``a`` scores every other entity as a neighbour of ``a`` (kNN
        similarities, SLIM/EASE weights), or None to use cosine over :meth:`embeddings`."""
        return None

    def similar_items(self, item_id: Any, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` items most similar to ``item_id``, best first, with their similarities.

        Similarity is the model's own neighbour matrix where it has one (kNN, SLIM, EASE, RP3beta)
        and the cosine of the item embeddings otherwise. One raw id gives 1-D arrays, an array of
        ids 2-D arrays; the item itself is left out; rows are padded with ``-1`` (``""``) and NaN,
        and an unknown id gives a padded row. ``k`` is clamped to the number of entities.
        """
        return self._similar("item", item_id, k)

    def similar_users(self, user_id: Any, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` users most similar to ``user_id``; see :meth:`similar_items`."""
        return self._similar("user", user_id, k)

    def _similar(self, side: Literal["user", "item"], ids: Any, k: int) -> tuple[np.ndarray, np.ndarray]:
        check_k(k)
        self.check_is_fitted()
        vocab: Vocabulary = self.users_ if side == "user" else self.items_
        known = self.user_known_ if side == "user" else self.item_known_
        single = np.ndim(ids) == 0
        raw = normalize_ids(np.atleast_1d(np.asarray(ids, dtype=object if single else None)))
        q = vocab.index(raw) if len(raw) else np.empty(0, np.int64)
        ok = q >= 0
        ok[ok] = known[q[ok]]
        n = len(vocab)
        k = clamp_k(k, n)
        out_idx = np.full((len(q), k), -1, np.int64)
        out_sc = np.full((len(q), k), np.nan)
        mat = self._neighbor_matrix(side)
        if mat is None:
            if not self.has_embeddings:
                other = "items" if side == "user" else "users"
                raise NotImplementedError(f"{type(self).__name__} has no {side} neighbours or embeddings"
                                          + (f"; try similar_{other}()" if self._neighbor_matrix(
                                              "item" if side == "user" else "user") is not None else ""))
            vecs = np.asarray(self.embeddings()[0 if side == "user" else 1], dtype=np.float64)
            norms = np.linalg.norm(vecs, axis=1)
            norms[norms == 0] = 1.0
            unit = vecs / norms[:, None]
        rows = np.flatnonzero(ok)
        if mat is not None and sp.issparse(mat):
            mat = sp.csr_matrix(mat)
        step = max(1, 2**22 // max(n, 1))
        for s in range(0, len(rows), step):
            r = rows[s : s + step]
            if mat is None:
                block = unit[q[r]] @ unit.T
            else:  # sparse rows rank only their stored entries: a neighbour list lists only neighbours
                block = mat[q[r]]
            itself = sp.csr_matrix((np.ones(len(r)), q[r], np.arange(len(r) + 1)), shape=(len(r), n))
            out_idx[r], out_sc[r] = topk_rows(block, k, exclude=itself, allowed=known)
        names = vocab.ids
        pad: Any = "" if names.dtype.kind == "U" else -1
        out_ids = np.where(out_idx >= 0, names[np.clip(out_idx, 0, max(0, n - 1))] if n else pad, pad)
        if single:
            return out_ids[0], out_sc[0]
        return out_ids, out_sc

"""``similar_items`` / ``similar_users`` for models that hold an entity x entity weight matrix."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import scipy.sparse as sp

from recforge.data.vocabulary import Vocabulary, normalize_ids
from recforge.errors import ConfigError, DataError

Side = Literal["user", "item"]


class SimilarEntities:
    """Mixin: nearest neighbours by the model's own similarity (or weight) matrix.

    A model overrides :meth:`_neighbor_matrix` to return, for ``"item"`` or ``"user"``, a square
    matrix (scipy sparse or dense) whose row ``a`` scores every other entity ``b`` as a neighbour
    of ``a``, or None when it has no such matrix for that side.
    """

    def _neighbor_matrix(self, side: Side) -> sp.spmatrix | np.ndarray | None:
        return None

    def similar_items(self, item_id: Any, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` items most similar to ``item_id`` (raw ids), best first, with their similarities.

        One raw id gives 1-D arrays; an array of ids gives 2-D arrays, one row each. Rows with
        fewer than ``k`` neighbours are padded with the id ``-1`` (``""`` for string ids) and NaN.
        """
        return self._similar("item", item_id, k)

    def similar_users(self, user_id: Any, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` users most similar to ``user_id`` (raw ids); see :meth:`similar_items`."""
        return self._similar("user", user_id, k)

    def _similar(self, side: Side, ids: Any, k: int) -> tuple[np.ndarray, np.ndarray]:
        self._check_fitted()  # type: ignore[attr-defined]
        if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k <= 0:
            raise ConfigError(f"k must be a positive integer, got {k!r}")
        mat = self._neighbor_matrix(side)
        if mat is None:
            other = "items" if side == "user" else "users"
            raise NotImplementedError(
                f"{type(self).__name__} compares {other}, not {side}s; use similar_{other}()"
            )
        vocab: Vocabulary = self.users_ if side == "user" else self.items_  # type: ignore[attr-defined]
        single = np.ndim(ids) == 0
        raw = normalize_ids(np.atleast_1d(np.asarray(ids, dtype=object if single else None)))
        idx = vocab.index(raw) if len(raw) else np.empty(0, np.int64)
        if (idx < 0).any():
            bad = raw[np.flatnonzero(idx < 0)[0]]
            raise DataError(f"unknown {side} id {bad!r}")
        out_idx = np.full((len(idx), k), -1, np.int64)
        out_val = np.full((len(idx), k), np.nan)
        for row, a in enumerate(idx):
            if sp.issparse(mat):
                lo, hi = mat.indptr[a], mat.indptr[a + 1]
                cols = np.asarray(mat.indices[lo:hi], np.int64)
                vals = np.asarray(mat.data[lo:hi], np.float64)
            else:
                vals = np.asarray(mat[a], np.float64)
                cols = np.arange(len(vals))
            keep = cols != a
            cols, vals = cols[keep], vals[keep]
            order = np.lexsort((cols, -vals))[:k]
            out_idx[row, : len(order)] = cols[order]
            out_val[row, : len(order)] = vals[order]
        names = vocab.ids
        pad: Any = "" if names.dtype.kind == "U" else -1
        out_ids = np.where(out_idx >= 0, names[np.clip(out_idx, 0, max(0, len(names) - 1))], pad)
        if single:
            return out_ids[0], out_val[0]
        return out_ids, out_val


class SparseItemItem(SimilarEntities):
    """Mixin for models that score ``x_u W`` with a sparse item x item matrix ``weights_`` and the
    users' training rows ``history_`` (SLIM, RP3beta): scores, neighbours and the sparse top-k."""

    history_: sp.csr_matrix
    weights_: sp.csr_matrix

    def _score_users(self, u: np.ndarray) -> np.ndarray:
        from recforge.models.neighbors._kernels import sparse_rows_dot

        return sparse_rows_dot(self.history_, u, self.weights_)

    def _sparse_product(self) -> tuple[sp.csr_matrix, sp.csr_matrix]:
        return self.history_, self.weights_

    def _neighbor_matrix(self, side: Side) -> sp.spmatrix | None:
        return self.weights_ if side == "item" else None

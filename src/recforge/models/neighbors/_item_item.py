"""Scoring shared by the item-based models whose scores are ``x_u M`` (EASE, SLIM, RP3beta, item kNN)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from recforge.models.neighbors._similarity_kernels import sparse_rows_dot


class TrainingRows:
    """Mixin: the users' training rows ``x_u`` a neighbourhood model scores with.

    The base's ``seen_`` (0/1) when the model binarises or the values are all 1; otherwise the
    values, kept as ``train_values_`` by :meth:`_keep_values` (only then: no copy of ``seen_``).
    """

    seen_: sp.csr_matrix
    config: Any

    def _binarized(self) -> bool:
        return bool(getattr(self.config, "binarize", True))

    def _keep_values(self, x: sp.csr_matrix) -> None:
        """Keep the training values as ``train_values_`` when they are not what ``seen_`` holds."""
        if not self._binarized() and not np.all(x.data == 1):
            self.train_values_ = sp.csr_matrix(x, dtype=np.float32)

    def _user_rows(self) -> sp.csr_matrix:
        values = self.__dict__.get("train_values_")
        return self.seen_ if values is None else values


class ItemItemScores(TrainingRows):
    """Mixin for a :class:`~recforge.models.base.Recommender` scoring a user as ``x_u M``.

    ``x_u`` is the user's training row (:class:`TrainingRows`) and ``M`` the item x item matrix of
    :meth:`_item_matrix` (sparse: scored and ranked by the compiled sparse-product kernels; dense:
    a BLAS product). An ad-hoc history is scored the same way, so a known user's own training
    items give exactly that user's scores.
    """

    scores_history: ClassVar[bool] = True
    items_: Any

    def _item_matrix(self) -> sp.csr_matrix | np.ndarray:
        """The item x item matrix ``M`` of the scores ``x_u M``."""
        raise NotImplementedError

    def _score_users(self, u: np.ndarray) -> np.ndarray:
        m = self._item_matrix()
        if sp.issparse(m):
            return sparse_rows_dot(self._user_rows(), u, m)
        return np.asarray(self._user_rows()[u] @ m, dtype=np.float64)

    def _sparse_product(self) -> tuple[sp.csr_matrix, sp.csr_matrix] | None:
        m = self._item_matrix()
        return (self._user_rows(), m) if sp.issparse(m) else None

    def _history_row(self, item_idx: np.ndarray, values: np.ndarray | None) -> sp.csr_matrix:
        """A history as a one-row CSR like a training row (repeats add up; 1 when binarised)."""
        n = len(self.items_)
        data = np.ones(len(item_idx), np.float32) if values is None else np.asarray(values, np.float32)
        rows = np.zeros(len(item_idx), np.int64)
        h = sp.csr_matrix((data, (rows, item_idx)), shape=(1, n), dtype=np.float32)
        h.sum_duplicates()
        h.sort_indices()
        if self._binarized():
            h.data[:] = 1.0
        return h

    def _score_history(self, item_idx: np.ndarray, values: np.ndarray | None,
                       context: Mapping[str, Any]) -> np.ndarray:
        h = self._history_row(item_idx, values)
        m = self._item_matrix()
        if sp.issparse(m):
            return sparse_rows_dot(h, np.zeros(1, np.int64), m)[0]
        return np.asarray(h @ m, dtype=np.float64).ravel()

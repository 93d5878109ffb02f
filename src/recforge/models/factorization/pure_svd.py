"""PureSVD: top-N ranking from a truncated SVD of the zero-filled user-item matrix, and the one
truncated-SVD routine that also starts the SGD rating models (``svd``/``svdpp`` with ``init="svd"``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import svds

from recforge.config import FitOptions, ModelConfig
from recforge.data.interactions import Interactions
from recforge.models.factorization._base import FactorRecommender, seed_sequence

__all__ = ["PureSVD", "PureSVDConfig", "truncated_svd"]

#: Below this many cells the matrix is decomposed densely (exact, and faster than ARPACK there).
DENSE_CELLS = 100_000


def truncated_svd(
    matrix: sp.spmatrix, k: int, rng: np.random.Generator, solver: Literal["arpack", "randomized"] = "arpack"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ``k`` largest singular triplets ``(U, s, Vt)`` of a sparse matrix, ``s`` descending.

    Small matrices (at most :data:`DENSE_CELLS` cells, or ``k`` close to their rank) use a dense
    LAPACK SVD; larger ones ARPACK (``scipy.sparse.linalg.svds``, seeded start vector) or a
    randomized SVD (Halko, Martinsson, Tropp 2011; scikit-learn's ``randomized_svd``, 7 power
    iterations). Components past the matrix's smaller side are zero. Signs are whatever the solver
    returns: the products PureSVD uses (``V V^T``, ``U diag(s) V^T``) do not depend on them.
    """
    n_rows, n_cols = matrix.shape
    k_eff = min(k, n_rows, n_cols)
    if k_eff == 0:
        return np.zeros((n_rows, k)), np.zeros(k), np.zeros((k, n_cols))
    if n_rows * n_cols <= DENSE_CELLS or k_eff >= min(n_rows, n_cols) - 1:
        U, s, Vt = np.linalg.svd(matrix.toarray(), full_matrices=False)
        U, s, Vt = U[:, :k_eff], s[:k_eff], Vt[:k_eff]
    elif solver == "randomized":
        from sklearn.utils.extmath import randomized_svd

        U, s, Vt = randomized_svd(matrix, k_eff, n_iter=7, random_state=int(rng.integers(2**31 - 1)))
    else:
        v0 = rng.uniform(-1.0, 1.0, min(n_rows, n_cols))
        U, s, Vt = svds(matrix.astype(np.float64), k=k_eff, v0=v0)
        order = np.argsort(-s, kind="stable")
        U, s, Vt = U[:, order], s[order], Vt[order]
    if k_eff < k:  # pad to the asked width so factor shapes follow the config
        U = np.hstack([U, np.zeros((n_rows, k - k_eff))])
        s = np.concatenate([s, np.zeros(k - k_eff)])
        Vt = np.vstack([Vt, np.zeros((k - k_eff, n_cols))])
    return U, s, Vt


@dataclass(frozen=True)
class PureSVDConfig(ModelConfig):
    """Hyperparameters of :class:`PureSVD`."""

    embedding_size: int = 50
    """Number of singular vectors kept (``f`` in the paper; 50 was its best on MovieLens)."""
    solver: Literal["arpack", "randomized"] = "arpack"
    """Truncated SVD of large matrices: ARPACK (exact to tolerance) or randomized (faster, approximate)."""
    binarize: bool = False
    """Use 1 for every observed interaction instead of its value (the paper uses the ratings)."""

    def validate(self) -> None:
        self.check(self.embedding_size >= 1, "embedding_size", "must be >= 1")
        self.check(self.solver in ("arpack", "randomized"), "solver", "must be 'arpack' or 'randomized'")


class PureSVD(FactorRecommender):
    r"""PureSVD (Cremonesi, Koren, Turrin, "Performance of Recommender Algorithms on Top-N
    Recommendation Tasks", RecSys 2010).

    The user-item matrix :math:`R` (observed values, zeros elsewhere: missing entries are treated
    as zero, not as unknown) is factored by a truncated SVD, :math:`R \approx U_f \Sigma_f Q^\top`,
    and a user's scores are the projection of their row onto the top-``f`` item space:

    .. math:: \hat r_u = r_u Q Q^\top

    So the user vector is :math:`p_u = r_u Q` (:math:`= U_f \Sigma_f` row ``u``) and the item vector
    :math:`q_i`. No training loop: the same history always gives the same scores, which also makes
    fold-in exact: a new user's :math:`r Q Q^\top` is what refitting with that user would give, to
    the extent that one row does not move :math:`Q`. The scores are not ratings: use it for ranking.
    """

    name = "pure-svd"
    task = "ranking"
    config_class = PureSVDConfig
    feedback: ClassVar[Literal["explicit", "implicit", "any"]] = "any"
    folds_in: ClassVar[bool] = True
    scores_history: ClassVar[bool] = True

    def _fit(self, data: Interactions, options: FitOptions) -> None:
        cfg = self.config
        R = data.csr().astype(np.float64)
        if cfg.binarize:
            R = R.copy()
            R.data[:] = 1.0
        _, s, Vt = truncated_svd(R, cfg.embedding_size, seed_sequence(options, 21), cfg.solver)
        self.singular_values_ = s
        self.item_factors_ = np.ascontiguousarray(Vt.T)
        self.user_factors_ = np.asarray(R @ self.item_factors_)

    def _history_vector(self, item_idx: np.ndarray, values: np.ndarray | None) -> np.ndarray:
        x = np.zeros(len(self.items_))
        if len(item_idx):
            vals = np.ones(len(item_idx)) if values is None or self.config.binarize else np.asarray(values, float)
            np.add.at(x, item_idx, vals)
            if self.config.binarize:
                x = (x > 0).astype(np.float64)
        return x

    def fold_in(self, item_ids: Any, values: Any = None) -> np.ndarray:
        """The user vector :math:`r Q` of a history (unknown ids ignored; repeats add up)."""
        self.check_is_fitted()
        idx, vals = self._history_indices(item_ids, values)
        return self._history_vector(idx, vals) @ self.item_factors_

    def _score_history(self, item_idx: np.ndarray, values: np.ndarray | None,
                       context: Mapping[str, Any]) -> np.ndarray:
        return (self._history_vector(item_idx, values) @ self.item_factors_) @ self.item_factors_.T

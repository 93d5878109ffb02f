"""PureSVD and the SVD start of the SGD rating models against dense numpy SVDs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from recforge.config import FitOptions
from recforge.data.interactions import Interactions
from recforge.models.factorization import pure_svd
from recforge.models.factorization.pure_svd import PureSVD, truncated_svd
from recforge.models.factorization.sgd import BiasedMF, BiasedMFConfig, _biased_start


def ratings(seed: int = 0, n_users: int = 30, n_items: int = 20, density: float = 0.3) -> Interactions:
    rng = np.random.default_rng(seed)
    mask = rng.random((n_users, n_items)) < density
    u, i = np.nonzero(mask)
    frame = pd.DataFrame({"user_id": u, "item_id": i, "rating": rng.integers(1, 6, len(u)).astype(float)})
    return Interactions.from_dataframe(frame, rating="rating")


def dense_projection(R: np.ndarray, k: int) -> np.ndarray:
    _, _, Vt = np.linalg.svd(R, full_matrices=False)
    V = Vt[:k].T
    return R @ V @ V.T


@pytest.mark.parametrize("k", [1, 3, 8])
def test_scores_are_the_dense_projection(k: int) -> None:
    data = ratings()
    model = PureSVD(embedding_size=k).fit(data, FitOptions(seed=0))
    want = dense_projection(data.csr().toarray().astype(np.float64), k)
    got = model._score_users(np.arange(data.n_users))
    np.testing.assert_allclose(got, want, atol=1e-9)


def test_binarize_projects_the_zero_one_matrix() -> None:
    data = ratings(seed=1)
    model = PureSVD(embedding_size=4, binarize=True).fit(data, FitOptions(seed=0))
    R = (data.csr().toarray() > 0).astype(float)
    np.testing.assert_allclose(model._score_users(np.arange(data.n_users)), dense_projection(R, 4), atol=1e-9)


@pytest.mark.parametrize("solver", ["arpack", "randomized"])
def test_sparse_solvers_agree_with_dense(monkeypatch: pytest.MonkeyPatch, solver: str) -> None:
    monkeypatch.setattr(pure_svd, "DENSE_CELLS", 0)  # force the sparse path on a small matrix
    rng = np.random.default_rng(3)
    # a clear spectral gap after 5 components, so the top-5 subspace is well defined
    M = rng.normal(size=(60, 5)) @ rng.normal(size=(5, 40)) * 3 + rng.normal(size=(60, 40)) * 0.01
    U, s, Vt = truncated_svd(sp.csr_matrix(M), 5, np.random.default_rng(0), solver)
    s_ref = np.linalg.svd(M, compute_uv=False)[:5]
    np.testing.assert_allclose(s, s_ref, rtol=1e-6)
    assert np.all(np.diff(s) <= 0)
    np.testing.assert_allclose((U * s) @ Vt, dense_projection(M, 5) @ np.eye(40), atol=1e-6)


def test_k_beyond_the_rank_pads_with_zeros() -> None:
    U, s, Vt = truncated_svd(sp.csr_matrix(np.eye(3)), 5, np.random.default_rng(0))
    assert U.shape == (3, 5) and Vt.shape == (5, 3)
    np.testing.assert_allclose(s, [1, 1, 1, 0, 0])


def test_fold_in_equals_the_fitted_user() -> None:
    data = ratings(seed=2)
    model = PureSVD(embedding_size=5).fit(data, FitOptions(seed=0))
    R = data.csr()
    for u in (0, 7, 19):
        row = R.getrow(u)
        items, values = data.items.ids[row.indices], row.data
        np.testing.assert_allclose(model.fold_in(items, values), model.user_factors_[u], atol=1e-10)
        np.testing.assert_allclose(model.scores_for_history(items, values), model._score_users(np.array([u]))[0],
                                   atol=1e-10)


def test_svd_start_is_the_rank_k_fit_of_the_residuals() -> None:
    data = ratings(seed=4)
    cfg = BiasedMFConfig(embedding_size=3, init="svd")
    r = data.values.astype(np.float64)
    mu, _, _, P, Q = _biased_start(data, cfg, np.random.default_rng(0), r)
    resid = data.csr().toarray().astype(np.float64)
    resid[resid != 0] -= mu
    U, s, Vt = np.linalg.svd(resid, full_matrices=False)
    np.testing.assert_allclose(P @ Q.T, (U[:, :3] * s[:3]) @ Vt[:3], atol=1e-9)


def test_svd_start_keeps_the_epoch_stream() -> None:
    """Both starts draw the same normals first, so (on the dense path, which draws nothing more)
    the generator is in the same state when the epochs start shuffling."""
    data = ratings(seed=5)
    r = data.values.astype(np.float64)
    a, b = np.random.default_rng(0), np.random.default_rng(0)
    _biased_start(data, BiasedMFConfig(embedding_size=3), a, r)
    _biased_start(data, BiasedMFConfig(embedding_size=3, init="svd"), b, r)
    assert a.integers(1 << 30, size=5).tolist() == b.integers(1 << 30, size=5).tolist()


def test_svd_start_fits_at_least_as_well_after_one_epoch() -> None:
    data = ratings(seed=6, n_users=60, n_items=40, density=0.4)
    opts = FitOptions(seed=0)
    svd = BiasedMF(embedding_size=5, epochs=1, init="svd").fit(data, opts)
    normal = BiasedMF(embedding_size=5, epochs=1).fit(data, opts)
    assert svd.history_["train_loss"][-1] < normal.history_["train_loss"][-1]

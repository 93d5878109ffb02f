"""EASE above the dense limit: the block-packed inverse (``_blocked_spd``) against numpy, the same
scores as the dense path, and the memory guard stated up front."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from recforge.config import FitOptions
from recforge.errors import ConfigError
from recforge.models.base import Recommender
from recforge.models.neighbors import ease as ease_module
from recforge.models.neighbors._blocked_spd import PackedSymmetric, packed_bytes
from recforge.models.neighbors.ease import EASE, memory_estimate
from recforge.testing.datasets import toy_ratings


@pytest.mark.parametrize("block", [7, 16, 40, 64])
def test_packed_inverse_matches_numpy(block):
    rng = np.random.default_rng(block)
    x = sp.csr_matrix((rng.random((120, 40)) < 0.2).astype(np.float32))
    p = PackedSymmetric.gram(x, block, 3.0)
    g = (x.T @ x).toarray().astype(np.float64) + 3.0 * np.eye(40)
    p.invert_spd()
    want = np.linalg.inv(g)
    np.testing.assert_allclose(p.diagonal(), np.diag(want), rtol=1e-5)
    np.testing.assert_allclose(p.left_multiply(x[:30]), x[:30] @ want, rtol=1e-4, atol=1e-6)
    assert p.data.nbytes == packed_bytes(40, block)
    assert p.data.nbytes < 40 * 40 * 4 or block >= 40


def test_not_positive_definite_is_reported():
    p = PackedSymmetric(4, 2)
    p.blk(0, 0)[...] = -np.eye(2, dtype=np.float32)
    p.blk(1, 1)[...] = np.eye(2, dtype=np.float32)
    with pytest.raises(np.linalg.LinAlgError, match="positive definite"):
        p.invert_spd()


@pytest.fixture
def small_limits(monkeypatch):
    """Take the packed path on toy data: 'large' above 8 items, blocks of 5."""
    monkeypatch.setattr(ease_module, "_DENSE_MAX_ITEMS", 8)
    monkeypatch.setattr(ease_module, "_FLOAT64_ITEMS", 8)
    monkeypatch.setattr(ease_module, "_BLOCK", 5)


def test_packed_path_scores_equal_the_dense_path(small_limits, tmp_path):
    data = toy_ratings(n_users=40, n_items=23, seed=5).to_implicit()
    big = EASE(reg=4.0).fit(data)
    assert hasattr(big, "gram_inverse_") and not hasattr(big, "weights_")
    x = data.csr().toarray()
    p = np.linalg.inv(x.T @ x + 4.0 * np.eye(23))
    b = np.eye(23) - p / np.diag(p)[None, :]
    users = data.users.ids
    np.testing.assert_allclose(big.score_all(users), x @ b, rtol=1e-4, atol=1e-5)
    ids, _ = big.recommend(users[:5], k=4)
    for row, u in enumerate(users[:5]):
        hist = data.items.ids[np.flatnonzero(x[row])]
        got, _ = big.recommend_for_history(hist, k=4)
        np.testing.assert_array_equal(got, ids[row])
    again = Recommender.load(big.save(tmp_path / "ease.npz"))
    np.testing.assert_allclose(again.score_all(users), big.score_all(users), rtol=1e-6)


def test_memory_is_stated_and_guarded(capsys):
    need, method = memory_estimate(40_981)
    assert 3.4e9 < need < 4.5e9 and "packed" in method  # Gowalla: about half a dense 6.7 GB matrix
    assert memory_estimate(1682)[0] < 0.05e9
    data = toy_ratings(n_users=20, n_items=15, seed=1).to_implicit()
    EASE(reg=1.0).fit(data, FitOptions(verbose=True))
    assert "EASE: 15 items" in capsys.readouterr().out
    with pytest.raises(ConfigError, match=r"needs about .* GB \(max_memory = 1e-09 GB\)"):
        EASE(max_memory=1e-9).fit(data)

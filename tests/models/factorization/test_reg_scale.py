"""``reg_scale`` of ``svd`` and ``svdpp``: a multiplier of the factor penalties, or ``"auto"``,
chosen per fit on a held-out tenth of the training ratings (the rule of ``benchmarks/results/defaults.md``)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recforge.config import FitOptions
from recforge.data.interactions import Interactions
from recforge.models.factorization.sgd import AUTO_MIN_RATINGS, BiasedMF, SVDpp


def _ratings(kind: str, n_users: int = 120, n_items: int = 80, per_user: int = 30, seed: int = 0) -> Interactions:
    """``low-rank``: ratings of a rank-2 model plus little noise (factors pay, little penalty is
    best); ``noise``: independent draws around per-item means (factors only fit noise, a large
    penalty is best)."""
    rng = np.random.default_rng(seed)
    users = np.repeat(np.arange(n_users), per_user)
    items = np.concatenate([rng.choice(n_items, per_user, replace=False) for _ in range(n_users)])
    if kind == "low-rank":
        P, Q = rng.normal(0, 1, (n_users, 2)), rng.normal(0, 1, (n_items, 2))
        r = 3 + (P[users] * Q[items]).sum(1) + rng.normal(0, 0.1, len(users))
    else:
        r = 3 + rng.normal(0, 0.3, n_items)[items] + rng.normal(0, 1.0, len(users))
    df = pd.DataFrame({"u": users, "i": items, "r": r})
    return Interactions.from_dataframe(df, "u", "i", "r")


@pytest.mark.parametrize("cls", [BiasedMF, SVDpp])
def test_auto_moves_the_penalty_the_way_the_data_asks(cls: type) -> None:
    cfg = {"embedding_size": 20, "epochs": 30}
    structured = cls(reg_scale="auto", **cfg).fit(_ratings("low-rank", per_user=40), FitOptions(seed=0))
    noisy = cls(reg_scale="auto", **cfg).fit(_ratings("noise", per_user=40), FitOptions(seed=0))
    assert structured.reg_scale_ <= 0.5 + 1e-9, structured.reg_scale_  # measured: 0.25 (both models)
    assert noisy.reg_scale_ >= 2**0.5 - 1e-6, noisy.reg_scale_  # measured: 2 (svd), 1.41 (svdpp)
    # the scales are on the walk: powers of sqrt(2) within [1/4, 4]
    for s in (structured.reg_scale_, noisy.reg_scale_):
        assert 0.25 - 1e-9 <= s <= 4 + 1e-9 and abs(np.log(s) / np.log(2**0.5) - round(np.log(s) / np.log(2**0.5))) < 1e-6


def test_auto_refits_on_every_rating_with_the_scale_it_chose() -> None:
    data = _ratings("noise")
    cfg = {"embedding_size": 4, "epochs": 10}
    auto = BiasedMF(reg_scale="auto", **cfg).fit(data, FitOptions(seed=3))
    fixed = BiasedMF(reg_scale=auto.reg_scale_, **cfg).fit(data, FitOptions(seed=3))
    np.testing.assert_array_equal(auto.user_factors_, fixed.user_factors_)
    np.testing.assert_array_equal(auto.item_bias_, fixed.item_bias_)
    assert fixed.reg_scale_ == auto.reg_scale_


def test_scale_multiplies_the_factor_penalties_only() -> None:
    data = _ratings("low-rank")
    a = BiasedMF(reg=0.2, reg_scale=0.5, embedding_size=4, epochs=5).fit(data)
    b = BiasedMF(reg=0.1, reg_scale=1.0, embedding_size=4, epochs=5).fit(data)
    np.testing.assert_allclose(a.user_factors_, b.user_factors_)
    c = SVDpp(reg=0.2, reg_implicit=0.8, reg_scale=0.5, embedding_size=4, epochs=5).fit(data)
    d = SVDpp(reg=0.1, reg_implicit=0.4, reg_scale=1.0, embedding_size=4, epochs=5).fit(data)
    np.testing.assert_allclose(c.implicit_factors_, d.implicit_factors_)


def test_small_data_skips_the_search() -> None:
    data = _ratings("noise", n_users=20, per_user=20)
    assert len(data) < AUTO_MIN_RATINGS
    assert BiasedMF(reg_scale="auto", epochs=3).fit(data).reg_scale_ == 1.0


def test_the_search_shows_no_progress_of_its_own() -> None:
    from recforge.training.progress import ProgressReporter, ProgressTask, reporting

    class Count(ProgressReporter):
        active = True

        def __init__(self) -> None:
            self.names: list[str] = []

        def task(self, description: str, total: int | None = None) -> ProgressTask:
            self.names.append(description)
            return ProgressTask()

    rec = Count()
    with reporting(rec):
        model = BiasedMF(reg_scale="auto", embedding_size=4, epochs=3).fit(_ratings("noise"))
    assert len(_ratings("noise")) >= AUTO_MIN_RATINGS  # so the search ran its fits
    assert rec.names.count("svd: epochs") == 1, rec.names

"""``FitOptions.epoch_callback``: called once per epoch, sees the model as trained so far, can stop it."""

from __future__ import annotations

import numpy as np
import pytest

from recforge.config import FitOptions, StopTraining
from recforge.models.factorization.als import ALS
from recforge.models.factorization.bpr import BPR
from recforge.models.factorization.ials import ImplicitALS
from recforge.models.factorization.nmf import NMF
from recforge.models.factorization.sgd import BiasedMF, SVDpp
from recforge.testing.datasets import toy_ratings

EPOCHS = 4
MODELS = [
    (BiasedMF, {}, False),
    (SVDpp, {}, False),
    (NMF, {}, False),
    (ALS, {}, False),
    (ImplicitALS, {}, True),
    (BPR, {}, True),
    (BPR, {"parallel": "blocks", "pair_sampling": "pairs"}, True),
]
IDS = ["svd", "svdpp", "nmf", "als", "ials", "bpr-hogwild", "bpr-blocks"]


def _data(implicit: bool):
    data = toy_ratings()
    return data.to_implicit() if implicit else data


def _state(model):
    return {k: np.array(v, copy=True) for k, v in model.get_state().items()
            if k.endswith("_factors_") or k.endswith("_bias_")}


@pytest.mark.parametrize("cls, params, implicit", MODELS, ids=IDS)
def test_called_once_per_epoch_with_a_scorable_model_and_no_effect_on_the_fit(cls, params, implicit):
    data = _data(implicit)
    users, items = data.users.ids[:5], data.items.ids[:5]
    calls, scores = [], []

    def callback(epoch, model):
        calls.append(epoch)
        scores.append(model.score(users, items))

    model = cls(embedding_size=4, epochs=EPOCHS, **params)
    model.fit(data, FitOptions(seed=3, threads=1, epoch_callback=callback))
    assert calls == [1, 2, 3, 4]
    # each call saw that epoch's state: the scores move, and the last call saw the final model
    assert not np.allclose(scores[0], scores[-1])
    np.testing.assert_allclose(scores[-1], model.score(users, items), rtol=1e-6)
    # a callback that does nothing leaves the fit as without one (to the last bits: fastmath SIMD
    # reductions may round differently with the arrays' alignment, even between two plain fits)
    plain = cls(embedding_size=4, epochs=EPOCHS, **params).fit(data, FitOptions(seed=3, threads=1))
    got, want = _state(model), _state(plain)
    assert got.keys() == want.keys() and got
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=1e-12, atol=1e-15, err_msg=key)


@pytest.mark.parametrize("cls, params, implicit", MODELS, ids=IDS)
def test_stop_training_ends_the_fit_with_that_epochs_state(cls, params, implicit):
    data = _data(implicit)

    seen = []

    def stop_after_two(epoch, model):
        seen.append(epoch)
        if epoch == 2:
            raise StopTraining

    stopped = cls(embedding_size=4, epochs=EPOCHS, **params)
    stopped.fit(data, FitOptions(seed=3, threads=1, epoch_callback=stop_after_two))
    assert seen == [1, 2]
    two = cls(embedding_size=4, epochs=2, **params).fit(data, FitOptions(seed=3, threads=1))
    for key, val in _state(two).items():
        np.testing.assert_allclose(_state(stopped)[key], val, rtol=1e-6, err_msg=key)
    # every per-epoch record stops at the same epoch
    assert stopped.history_["epoch"] == [0.0, 1.0]
    assert all(len(v) == 2 for v in stopped.history_.values())


def test_other_exceptions_abort_the_fit():
    class Abort(Exception):
        pass

    def boom(epoch, model):
        raise Abort

    with pytest.raises(Abort):
        BiasedMF(embedding_size=4, epochs=3).fit(toy_ratings(), FitOptions(epoch_callback=boom))

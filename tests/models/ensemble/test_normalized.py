"""The ``normalized`` wrapper: conformance, and predictions that are the inner model's mapped back."""

from __future__ import annotations

import numpy as np

from recforge.config import FitOptions
from recforge.data.utility import Normalizer
from recforge.models.ensemble.normalized import Normalized
from recforge.models.registry import make_model
from recforge.testing.conformance import RecommenderConformance


class TestNormalizedConformance(RecommenderConformance):
    model_class = Normalized
    config = {"model": "bias", "kind": "zscore"}
    changes = {"model": "global-mean", "params": {"reg_user": 50.0}, "kind": "center", "side": "item"}
    unchanged: dict[str, str] = {}
    invalid = [{"model": "ease"}, {"kind": "minmax"}, {"side": "both"}, {"model": "nope"},
               # learns its rating signal, not the normalised values:
               {"model": "implicit-to-explicit-linear"}]


def test_predictions_are_the_inner_models_on_the_original_scale() -> None:
    data = TestNormalizedConformance().make_data()
    opts = FitOptions(seed=0)
    outer = Normalized(model="bias", kind="zscore").fit(data, opts)
    norm = Normalizer("zscore", "user").fit(data)
    inner = make_model("bias").fit(norm.apply_to(data), opts)
    users, items = data.users.ids[data.user_idx], data.items.ids[data.item_idx]
    want = norm.inverse(data.user_idx, inner.predict(users, items, fallback="mean"))
    want = np.clip(want, data.values.min(), data.values.max())
    np.testing.assert_allclose(outer.predict(users, items), want, rtol=1e-6)
    # the global mean model under user centring predicts each user's own mean
    centred = Normalized(model="global-mean", kind="center").fit(data, opts)
    u0 = data.users.ids[0]
    own = data.values[data.user_idx == 0].mean()
    assert abs(centred.predict([u0], [data.items.ids[0]])[0] - own) < 1e-5

"""``fit_epochs``: the one epoch loop of the classical models (exact, on a toy trainer)."""

from __future__ import annotations

import numpy as np
import pytest

from recforge.config import FitOptions, StopTraining
from recforge.training.epochs import fit_epochs, validation_rmse
from recforge.config import FitOptions


class Toy:
    """A 'model' whose learned state is one array; every epoch adds 1 to it."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.work = np.zeros(1)

    def step(self, epoch: int) -> dict[str, float]:
        self.events.append(f"step {epoch}")
        self.work += 1
        return {"train_loss": 1.0 / (epoch + 1)}

    def publish(self) -> None:
        self.events.append("publish")
        self.value_ = self.work  # published by reference, as the factor models do

    def get_state(self) -> dict:
        return {"value_": self.value_, "history_": self.history_}

    def set_state(self, state: dict) -> None:
        for key, val in state.items():
            setattr(self, key, val)


def _fit(toy: Toy, options: FitOptions, n: int = 3, **kw):
    return fit_epochs(toy, n, toy.step, options, name="toy", publish=toy.publish, **kw)


def test_history_is_recorded_and_returned():
    toy = Toy()
    hist = _fit(toy, FitOptions())
    assert hist is toy.history_
    assert hist == {"epoch": [0.0, 1.0, 2.0], "train_loss": [1.0, 0.5, 1.0 / 3]}
    # nobody looked between epochs: one publication, at the end
    assert toy.events == ["step 0", "step 1", "step 2", "publish"]
    assert toy.value_[0] == 3


def test_callback_sees_each_epoch_after_publication_in_order():
    toy = Toy()
    seen = []

    def callback(epoch, model):
        assert model is toy
        toy.events.append(f"callback {epoch}")
        seen.append(float(model.value_[0]))

    _fit(toy, FitOptions(epoch_callback=callback))
    assert toy.events == [
        "step 0", "publish", "callback 1",
        "step 1", "publish", "callback 2",
        "step 2", "publish", "callback 3",
        "publish",
    ]
    assert seen == [1.0, 2.0, 3.0]


def test_stop_training_keeps_that_epochs_state_and_history():
    toy = Toy()

    def stop_at_two(epoch, model):
        if epoch == 2:
            raise StopTraining

    hist = _fit(toy, FitOptions(epoch_callback=stop_at_two), n=5)
    assert hist == {"epoch": [0.0, 1.0], "train_loss": [1.0, 0.5]}
    assert toy.value_[0] == 2 and toy.events[-1] == "publish"


def test_other_exceptions_propagate():
    def boom(epoch, model):
        raise KeyError("abort")

    with pytest.raises(KeyError):
        _fit(Toy(), FitOptions(epoch_callback=boom))


def test_verbose_prints_one_line_per_epoch(capsys):
    _fit(Toy(), FitOptions(verbose=True), n=2)
    assert capsys.readouterr().out == "[toy] epoch 1/2  train_loss 1\n[toy] epoch 2/2  train_loss 0.5\n"


def test_verbose_without_metrics_prints_the_epoch(capsys):
    fit_epochs(Toy(), 1, lambda e: None, FitOptions(verbose=True), name="quiet")
    assert capsys.readouterr().out == "[quiet] epoch 1/1\n"


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[dict, int | None]] = []

    def log_metrics(self, metrics, step=None):
        self.calls.append((dict(metrics), step))


def test_logger_gets_every_epochs_metrics_at_its_step():
    logger = Recorder()
    _fit(Toy(), FitOptions(logger=logger))
    assert logger.calls == [({"train_loss": 1.0}, 0), ({"train_loss": 0.5}, 1), ({"train_loss": 1.0 / 3}, 2)]


def test_a_logger_without_log_metrics_is_ignored():
    toy = Toy()
    _fit(toy, FitOptions(logger="runs"))  # a Lightning-style path: the torch loop's business
    assert toy.history_["train_loss"] == [1.0, 0.5, 1.0 / 3]


def test_steps_fast_path_only_when_nobody_watches():
    calls = []

    def steps(first, count):
        calls.append((first, count))
        return {"train_auc": [0.5 + 0.1 * e for e in range(first, first + count)]}

    def step(epoch):
        return {key: vals[0] for key, vals in steps(epoch, 1).items()}

    toy = Toy()
    hist = fit_epochs(toy, 3, step, FitOptions(), name="toy", publish=toy.publish, steps=steps)
    assert calls == [(0, 3)]
    assert hist == {"epoch": [0.0, 1.0, 2.0], "train_auc": [0.5, 0.6, 0.7]}
    # a logger does not need to look between epochs: it gets the same rows afterwards
    calls.clear()
    logger = Recorder()
    hist = fit_epochs(toy, 3, step, FitOptions(logger=logger), name="toy", publish=toy.publish, steps=steps)
    assert calls == [(0, 3)]
    assert logger.calls == [({"train_auc": 0.5}, 0), ({"train_auc": 0.6}, 1), ({"train_auc": 0.7}, 2)]
    # verbose output does: one call per epoch, the same history
    calls.clear()
    hist = fit_epochs(toy, 3, step, FitOptions(verbose=True), name="toy", publish=toy.publish, steps=steps)
    assert calls == [(0, 1), (1, 1), (2, 1)]
    assert hist == {"epoch": [0.0, 1.0, 2.0], "train_auc": [0.5, 0.6, 0.7]}


def _scripted(values):
    it = iter(values)
    return lambda model: {"val_rmse": next(it)}


def test_early_stopping_after_patience_checks_and_restores_the_best():
    toy = Toy()
    opts = FitOptions(validation=object(), patience=2, restore_best=True)
    hist = _fit(toy, opts, n=10, evaluate=_scripted([3.0, 2.0, 2.5, 2.6, 1.0]))
    assert hist["epoch"] == [0.0, 1.0, 2.0, 3.0]
    assert hist["val_rmse"] == [3.0, 2.0, 2.5, 2.6]
    assert toy.value_[0] == 2  # the state of the best epoch (the second), not the last (the fourth)
    assert toy.history_ is hist


def test_early_stopping_mode_max_and_min_delta():
    toy = Toy()
    opts = FitOptions(validation=object(), patience=1, restore_best=False, min_delta=0.05)
    hist = _fit(toy, opts, n=10, evaluate=lambda m: {"val_auc": 0.5 + 0.01 * m.value_[0]},
                monitor="val_auc", mode="max")
    assert hist["epoch"] == [0.0, 1.0]  # +0.01 is not an improvement of more than 0.05
    assert toy.value_[0] == 2


def test_validation_without_patience_or_evaluate_never_stops():
    toy = Toy()
    hist = _fit(toy, FitOptions(validation=object()), n=4, evaluate=_scripted([1.0, 2.0, 3.0, 4.0]))
    assert hist["val_rmse"] == [1.0, 2.0, 3.0, 4.0]
    hist = _fit(Toy(), FitOptions(validation=object(), patience=1), n=4)  # no evaluate: no checks
    assert set(hist) == {"epoch", "train_loss"} and len(hist["epoch"]) == 4


def test_validation_rmse_matches_the_models_predictions():
    from recforge.models.factorization.sgd import BiasedMF
    from recforge.testing.datasets import toy_ratings

    data = toy_ratings(n_users=40, n_items=30, seed=2)
    held = np.random.default_rng(0).random(len(data)) < 0.2
    train, valid = data.subset(~held), data.subset(held)
    model = BiasedMF(embedding_size=3, epochs=3).fit(train, FitOptions(validation=valid))
    pred = model.predict(valid.users.ids[valid.user_idx], valid.items.ids[valid.item_idx])
    ok = np.isfinite(pred)
    want = np.sqrt(np.mean((pred[ok] - valid.values[ok]) ** 2))
    assert model.history_["val_rmse"][-1] == pytest.approx(want, rel=1e-12)
    assert validation_rmse(None) is None
    # validating does not change the fit
    plain = BiasedMF(embedding_size=3, epochs=3).fit(train)
    np.testing.assert_array_equal(plain.item_factors_, model.item_factors_)
    assert plain.history_["train_loss"] == model.history_["train_loss"]

"""The shared Lightning training loop (recforge.training)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("lightning")

from recforge.config import FitOptions, StopTraining
from recforge.errors import ConfigError
from recforge.loggers import as_lightning, make_logger
from recforge.training import RecNetwork, fit_network, resolve_device, run_context
from recforge.training.batches import TensorBatcher
from recforge.training.validation import Validation


class _Linear(RecNetwork):
    """y = w . x + b with squared loss: a network whose optimum is known."""

    def __init__(self, d: int = 3) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(d, 1)

    def loss(self, batch):
        x, y = batch
        return torch.mean((self.lin(x).squeeze(-1) - y) ** 2)


def _regression(ctx, n=512, batch_size=64):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, generator=g)
    y = x @ torch.tensor([1.0, -2.0, 0.5]) + 3.0
    return TensorBatcher(x, y, batch_size=batch_size, generator=ctx.generator, device=ctx.device)


class _Scripted(Validation):
    """Reports a scripted metric per epoch and snapshots the weights at each check."""

    monitor = "val_score"
    mode = "min"

    def __init__(self, values):
        self.values = list(values)
        self.calls = 0
        self.snapshots = []

    def batches(self):
        from recforge.training.batches import FixedBatches

        return FixedBatches([0])

    def step(self, net, batch):
        self.snapshots.append(net.lin.weight.detach().clone())
        return {"n": torch.tensor(1.0)}

    def compute(self, sums):
        v = self.values[min(self.calls, len(self.values) - 1)]
        self.calls += 1
        return {"val_score": v}


def _fit(net, opts, epochs=5, lr=0.05, validation=None, model=None):
    with run_context(opts) as ctx:
        return fit_network(net, _regression(ctx), ctx, epochs=epochs, learning_rate=lr, validation=validation,
                           model=model)


# ------------------------------------------------------------------------------ options and context
def test_resolve_device():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device(None).type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ConfigError, match="unknown device"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA"):
            resolve_device("cuda")


def test_loop_options_validate_and_resolve_patience():
    with pytest.raises(ConfigError, match="patience"):
        FitOptions(patience=0)
    with pytest.raises(ConfigError, match="precision"):
        FitOptions(precision="8-bit")
    with pytest.raises(ConfigError, match="min_delta"):
        FitOptions(min_delta=-1.0)
    plain = FitOptions(seed=4, device="cpu", progress=True, threads=1, verbose=True)
    assert plain.patience == "auto" and plain.early_stopping_patience() == FitOptions.DEFAULT_PATIENCE == 5
    assert plain.early_stopping_patience(3) == 3
    assert FitOptions(patience=2).early_stopping_patience(3) == 2
    assert FitOptions(patience=None).early_stopping_patience() is None
    assert plain.replace(patience=7).patience == 7 and plain.patience == "auto"


def test_training_options_is_a_deprecated_alias_of_fit_options():
    with pytest.warns(DeprecationWarning, match="FitOptions"):
        from recforge.training import TrainingOptions
    assert TrainingOptions is FitOptions


def test_auto_patience_stops_after_five_checks_without_improvement():
    val = _Scripted([1.0] + [2.0] * 10)
    result = _fit(_Linear(), FitOptions(seed=0), epochs=10, validation=val)
    assert result.epochs_run == 6 and result.best_epoch == 0


def test_run_context_seeds_and_restores_threads():
    before = torch.get_num_threads()
    with run_context(FitOptions(seed=3, threads=1)) as a:
        assert torch.get_num_threads() == 1
        ra, ta, wa = a.rng.random(3), torch.rand(3, generator=a.generator), torch.rand(3)
    assert torch.get_num_threads() == before
    with run_context(FitOptions(seed=3)) as b:
        rb, tb, wb = b.rng.random(3), torch.rand(3, generator=b.generator), torch.rand(3)
    np.testing.assert_array_equal(ra, rb)
    assert torch.equal(ta, tb) and torch.equal(wa, wb)
    with run_context(FitOptions(seed=4)) as c:
        assert not np.array_equal(c.rng.random(3), ra)


def test_training_threads_default_to_one_on_cpu():
    from recforge.training.loop import training_threads

    cpu = torch.device("cpu")
    assert training_threads(None, cpu) == 1
    assert training_threads(3, cpu) == 3
    with pytest.raises(ConfigError, match="threads"):
        training_threads(0, cpu)
    torch.set_num_threads(2)
    try:
        with run_context(FitOptions(seed=0)):
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2  # restored
        with run_context(FitOptions(seed=0, threads=2)):
            assert torch.get_num_threads() == 2
        with pytest.raises(ConfigError, match="threads"), run_context(FitOptions(threads=0)):
            pass
    finally:
        torch.set_num_threads(1)


# ------------------------------------------------------------------------------ training
def test_loss_falls_and_the_optimum_is_found():
    net = _Linear()
    result = _fit(net, FitOptions(seed=0), epochs=30, lr=0.05)
    loss = result.history["train_loss"]
    assert len(loss) == 30 and result.epochs_run == 30
    assert loss[-1] < 1e-3 < loss[0]
    np.testing.assert_allclose(net.lin.weight.detach().numpy().ravel(), [1.0, -2.0, 0.5], atol=0.02)
    np.testing.assert_allclose(net.lin.bias.item(), 3.0, atol=0.02)
    assert not net.training  # left in eval mode


def test_same_seed_same_weights():
    a, b, c = _Linear(), _Linear(), _Linear()
    for net, seed in ((a, 1), (b, 1), (c, 2)):
        torch.manual_seed(seed)
        net.lin.reset_parameters()
        _fit(net, FitOptions(seed=seed), epochs=2)
    assert torch.equal(a.lin.weight, b.lin.weight)
    assert not torch.equal(a.lin.weight, c.lin.weight)


def test_early_stopping_and_best_weights():
    val = _Scripted([1.0, 0.5, 0.7, 0.8, 0.9, 0.95, 0.99])
    net = _Linear()
    result = _fit(net, FitOptions(seed=0, patience=2), epochs=20, validation=val)
    assert result.best_epoch == 1 and result.best_score == 0.5
    assert result.epochs_run == 4  # epochs 0..3: two checks without improvement after epoch 1
    assert result.history["val_score"] == pytest.approx([1.0, 0.5, 0.7, 0.8])
    # the snapshot taken during the check after epoch 1 holds the best weights
    assert torch.equal(net.lin.weight.detach(), val.snapshots[1])


def test_no_restore_and_no_early_stopping():
    val = _Scripted([1.0, 0.5, 0.7, 0.8, 0.9])
    net = _Linear()
    result = _fit(net, FitOptions(seed=0, patience=None, restore_best=False), epochs=5, validation=val)
    assert result.epochs_run == 5 and result.best_epoch == 1
    assert not torch.equal(net.lin.weight.detach(), val.snapshots[1])


def test_csv_logger_and_checkpoints(tmp_path):
    val = _Scripted([3.0, 2.0, 1.0])
    ckpt = tmp_path / "ckpt"
    _fit(_Linear(), FitOptions(seed=0, logger=str(tmp_path / "logs"), checkpoint_dir=str(ckpt)), epochs=3,
         validation=val)
    metrics = list((tmp_path / "logs").rglob("metrics.csv"))
    assert len(metrics) == 1
    text = metrics[0].read_text()
    assert "train_loss" in text and "val_score" in text
    assert (ckpt / "last.ckpt").exists()
    assert any(p.name.startswith("model-epoch=2") for p in ckpt.iterdir())


def test_logger_option_variants(tmp_path):
    from lightning.pytorch.loggers import CSVLogger

    assert as_lightning(None, "m") is False
    assert as_lightning(False, "m") is False
    lg = as_lightning(tmp_path, "m")
    assert isinstance(lg, CSVLogger) and lg.name == "m"
    mine = CSVLogger(str(tmp_path))
    assert as_lightning(mine, "m") is mine
    run = make_logger("csv", root=tmp_path / "runs", name="exp")
    adapter = as_lightning(run, "m")
    assert isinstance(adapter, CSVLogger) and str(run.run_dir) in adapter.log_dir


def test_experiment_logger_as_fit_option_logs_into_its_run(tmp_path):
    run = make_logger("csv", root=tmp_path, name="exp")
    _fit(_Linear(), FitOptions(seed=0, logger=run), epochs=2)
    text = (run.run_dir / "lightning" / "metrics.csv").read_text()
    assert "train_loss" in text


# ------------------------------------------------------------------------------ epoch callback
def test_epoch_callback_sees_every_epoch_with_the_network_in_eval_mode():
    net = _Linear()
    seen = []

    def callback(epoch, model):
        seen.append((epoch, model, net.training))

    owner = object()
    _fit(net, FitOptions(seed=0, epoch_callback=callback), epochs=3, model=owner)
    assert [e for e, _, _ in seen] == [1, 2, 3]
    assert all(m is owner and not training for _, m, training in seen)


def test_epoch_callback_needs_the_model():
    calls = []
    _fit(_Linear(), FitOptions(seed=0, epoch_callback=lambda e, m: calls.append(e)), epochs=2)
    assert calls == []  # a network trained on its own (e.g. NeuMF's pretraining) reports nothing


def test_epoch_callback_stop_training_ends_the_fit():
    def callback(epoch, model):
        if epoch == 2:
            raise StopTraining

    result = _fit(_Linear(), FitOptions(seed=0, epoch_callback=callback), epochs=10, model=object())
    assert result.epochs_run == 2


def test_epoch_callback_exception_aborts_the_fit():
    class Pruned(Exception):
        pass

    def callback(epoch, model):
        raise Pruned(epoch)

    with pytest.raises(Pruned):
        _fit(_Linear(), FitOptions(seed=0, epoch_callback=callback), epochs=10, model=object())


def test_verbose_prints_epochs_and_progress_runs(capsys):
    _fit(_Linear(), FitOptions(seed=0, verbose=True, progress=True), epochs=2)
    out = capsys.readouterr().out
    assert "epoch 1/2" in out and "epoch 2/2" in out and "train_loss" in out


def test_cuda_request_without_gpu_is_a_config_error():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(ConfigError), run_context(FitOptions(device="cuda")):
        pass


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cpu_gpu_parity_and_mixed_precision():
    cpu, gpu, amp = _Linear(), _Linear(), _Linear()
    for net in (cpu, gpu, amp):
        torch.manual_seed(0)
        net.lin.reset_parameters()
    _fit(cpu, FitOptions(seed=0), epochs=5)
    _fit(gpu, FitOptions(seed=0, device="cuda"), epochs=5)
    _fit(amp, FitOptions(seed=0, device="cuda", precision="16-mixed"), epochs=5)
    np.testing.assert_allclose(gpu.lin.weight.detach().cpu().numpy(), cpu.lin.weight.detach().numpy(), atol=1e-4)
    np.testing.assert_allclose(amp.lin.weight.detach().cpu().numpy(), cpu.lin.weight.detach().numpy(), atol=5e-2)


def test_ema_weights_are_the_moving_average_of_the_trajectory():
    from lightning.pytorch.callbacks import Callback

    class Record(Callback):
        def __init__(self):
            self.seen = []

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            self.seen.append(pl_module.net.lin.weight.detach().clone())

    rec = Record()
    net = _Linear()
    torch.manual_seed(0)
    net.lin.reset_parameters()
    start = net.lin.weight.detach().clone()
    with run_context(FitOptions(seed=0, callbacks=(rec,))) as ctx:
        fit_network(net, _regression(ctx), ctx, epochs=2, learning_rate=0.05, ema_decay=0.9)
    ema = start.clone()
    for t, w in enumerate(rec.seen, start=1):
        d = min(0.9, (1 + t) / (10 + t))
        ema = d * ema + (1 - d) * w
    torch.testing.assert_close(net.lin.weight.detach(), ema, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(net.lin.weight.detach(), rec.seen[-1])


def test_ema_weights_are_validated_and_restored():
    val = _Scripted([1.0, 0.5, 0.7, 0.8, 0.9])
    net = _Linear()
    with run_context(FitOptions(seed=0, patience=None)) as ctx:
        fit_network(net, _regression(ctx), ctx, epochs=5, learning_rate=0.05, validation=val, ema_decay=0.9)
    # the check after epoch 1 saw (and the restore brought back) the averaged weights
    assert torch.equal(net.lin.weight.detach(), val.snapshots[1])

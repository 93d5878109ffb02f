"""The network contract and the one LightningModule that trains every recforge torch model."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch import nn

from recforge.training.batches import FixedBatches
from recforge.errors import ConfigError
from recforge.training.validation import Validation

__all__ = ["OPTIMIZERS", "RecDataModule", "RecModule", "RecNetwork"]

OPTIMIZERS = ("adam", "adamw", "sgd", "adagrad")


class RecNetwork(nn.Module):
    """What the shared loop needs from a model's network.

    ``loss(batch)`` returns the scalar training objective of one mini-batch (the maths of the
    model: prediction, loss function and any per-batch regularisation). ``score_pairs`` and
    ``score_users`` score index tensors on the network's device; networks that can precompute
    their final embeddings cache them while in ``eval()`` mode and drop the cache in ``train()``.
    """

    def loss(self, batch: Any) -> torch.Tensor:
        raise NotImplementedError

    def score_pairs(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def score_users(self, users: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def train(self, mode: bool = True) -> RecNetwork:
        self.clear_cache()
        return super().train(mode)

    def clear_cache(self) -> None:
        """Forget anything precomputed for scoring (called whenever the mode changes)."""


class RecModule(L.LightningModule):
    """Wraps a :class:`RecNetwork`: training step, validation metrics, optimiser.

    The epoch's mean training loss is logged as ``train_loss`` (accumulated on the device and
    logged once per epoch, so logging costs nothing per step); validation metrics come from a
    :class:`~recforge.training.validation.Validation`.

    Args:
        net: The network.
        learning_rate: Optimiser step size.
        optimizer: ``"adam"``, ``"adamw"``, ``"sgd"`` or ``"adagrad"``.
        weight_decay: The optimiser's weight decay (L2 on every parameter, every step).
        validation: Optional validator.
        ema_decay: When > 0, keep an exponential moving average of the weights (decay warmed up as
            ``min(decay, (1 + t) / (10 + t))`` over steps ``t``); validation uses the averaged
            weights and they become the network's weights when training ends.
    """

    def __init__(
        self,
        net: RecNetwork,
        *,
        learning_rate: float,
        optimizer: str = "adam",
        weight_decay: float = 0.0,
        validation: Validation | None = None,
        ema_decay: float = 0.0,
    ) -> None:
        super().__init__()
        if not 0 <= ema_decay < 1:
            raise ConfigError(f"ema_decay must be in [0, 1), got {ema_decay}")
        if optimizer not in OPTIMIZERS:
            raise ConfigError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, not {optimizer!r}")
        self.net = net
        self.learning_rate = learning_rate
        self.optimizer_name = optimizer
        self.weight_decay = weight_decay
        self.validation = validation
        self._loss_sum: torch.Tensor | None = None
        self._loss_n = 0
        self._val_sums: dict[str, torch.Tensor] = {}
        self.ema_decay = ema_decay
        self._ema: list[torch.Tensor] | None = None
        self._ema_steps = 0
        self._swapped = False

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self.net.score_pairs(users, items)

    # -- training --------------------------------------------------------------
    def on_train_epoch_start(self) -> None:
        self._loss_sum = None
        self._loss_n = 0

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        loss = self.net.loss(batch)
        d = loss.detach()
        self._loss_sum = d if self._loss_sum is None else self._loss_sum + d
        self._loss_n += 1
        return loss

    def epoch_loss(self) -> float | None:
        """Mean training loss of the current epoch so far (None before the first step).

        In a data-parallel group (DDP) it is the mean over the processes, each of which saw its
        share of every batch; every process must then call it (it is a collective).
        """
        if not self._loss_n:
            return None
        loss = self._loss_sum / self._loss_n  # type: ignore[operator]
        trainer = getattr(self, "_trainer", None)
        if trainer is not None and trainer.world_size > 1:
            loss = trainer.strategy.reduce(loss, reduce_op="mean")
        return float(loss)

    # -- weight averaging --------------------------------------------------------
    def _params(self) -> list[torch.Tensor]:
        return [p for p in self.net.parameters() if p.requires_grad]

    def on_train_start(self) -> None:
        if self.ema_decay > 0 and self._ema is None:
            self._ema = [p.detach().clone() for p in self._params()]

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self._ema is None:
            return
        self._ema_steps += 1
        d = min(self.ema_decay, (1 + self._ema_steps) / (10 + self._ema_steps))
        with torch.no_grad():
            torch._foreach_lerp_(self._ema, [p.detach() for p in self._params()], 1.0 - d)

    def _swap_ema(self) -> None:
        if self._ema is None:
            return
        with torch.no_grad():
            for p, e in zip(self._params(), self._ema, strict=True):
                tmp = p.detach().clone()
                p.copy_(e)
                e.copy_(tmp)
        self._swapped = not self._swapped

    def on_train_end(self) -> None:
        # the averaged weights are the result (a best-check restore, if any, comes after this)
        if self._ema is not None:
            if self._swapped:
                self._swap_ema()
            with torch.no_grad():
                for p, e in zip(self._params(), self._ema, strict=True):
                    p.copy_(e)
            self._ema = None

    def on_train_epoch_end(self) -> None:
        if self._loss_n:
            # sync_dist: the mean over a data-parallel group's processes (nothing to do in one process)
            self.log("train_loss", self._loss_sum / self._loss_n, prog_bar=True, sync_dist=True)  # type: ignore[operator]

    # -- validation ------------------------------------------------------------
    def on_validation_epoch_start(self) -> None:
        self._val_sums = {}
        if self._ema is not None and not self._swapped:
            self._swap_ema()  # validate (and let callbacks snapshot) the averaged weights

    def on_validation_end(self) -> None:
        # runs after the callbacks' on_validation_end (best-weight snapshot, early stopping)
        if self._swapped:
            self._swap_ema()

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        assert self.validation is not None
        for key, val in self.validation.step(self.net, batch).items():
            val = val.detach().double().to(self.device)
            self._val_sums[key] = self._val_sums[key] + val if key in self._val_sums else val

    def on_validation_epoch_end(self) -> None:
        if self.validation is None or not self._val_sums:
            return
        sums = {k: float(v) for k, v in self._val_sums.items()}
        metrics = self.validation.compute(sums)
        self.log_dict(metrics, prog_bar=True)

    # -- optimiser ---------------------------------------------------------------
    def configure_optimizers(self) -> torch.optim.Optimizer:
        params = [p for p in self.net.parameters() if p.requires_grad]
        lr, wd = self.learning_rate, self.weight_decay
        if self.optimizer_name == "adam":
            return torch.optim.Adam(params, lr=lr, weight_decay=wd)
        if self.optimizer_name == "adamw":
            return torch.optim.AdamW(params, lr=lr, weight_decay=wd)
        if self.optimizer_name == "adagrad":
            return torch.optim.Adagrad(params, lr=lr, weight_decay=wd)
        return torch.optim.SGD(params, lr=lr, weight_decay=wd)


class RecDataModule(L.LightningDataModule):
    """Owns the data of one fit: the training batcher and the validation batches.

    Args:
        train: An iterable of training batches (a :class:`~recforge.training.batches.TensorBatcher`
            or :class:`~recforge.training.batches.RatingRows`).
        validation: Optional validator whose ``batches()`` are the validation loader.
    """

    def __init__(self, train: Any, validation: Validation | None = None) -> None:
        super().__init__()
        self.train_batches = train
        self.validation = validation

    def train_dataloader(self) -> Any:
        return self.train_batches

    def val_dataloader(self) -> Any:
        return self.validation.batches() if self.validation is not None else FixedBatches([])

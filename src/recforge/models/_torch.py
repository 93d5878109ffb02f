"""What every torch model shares, user-item or CTR: the base config and the network's state.

:class:`TorchConfig` holds the training hyperparameters every torch model has (epochs, batch size,
optimiser, step size, weight averaging). :class:`TorchState` is the mixin that keeps the fitted
network in ``_net``: :meth:`~TorchState.get_state`/:meth:`~TorchState.set_state` save its
``state_dict`` as numpy arrays under ``torch_state.<name>`` keys, so torch models save and load
through the one npz format without pickle, and ``device``/``to_device`` say and choose where it
runs. :class:`~recforge.models.neural.TorchRecommender` (neural and sequential models) and
:class:`~recforge.models.ctr.CTRModel` both build on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Self

import numpy as np
import torch
from torch import nn

from recforge.config import ModelConfig
from recforge.errors import DataError
from recforge.models.base import check_is_fitted
from recforge.models.capabilities import Backend
from recforge.training.module import OPTIMIZERS

__all__ = ["TORCH_PREFIX", "Optimizer", "TorchConfig", "TorchState"]

TORCH_PREFIX = "torch_state."
"""Prefix of the state keys that hold the network's ``state_dict`` entries."""

Optimizer = Literal["adam", "adamw", "sgd", "adagrad"]


@dataclass(frozen=True)
class TorchConfig(ModelConfig):
    """Hyperparameters every torch model has (subclasses add their own and set defaults)."""

    epochs: int = 20
    """Passes over the training data (the most; early stopping may stop sooner)."""
    batch_size: int = 1024
    """Training examples per optimiser step."""
    learning_rate: float = 1e-3
    """Optimiser step size."""
    optimizer: Optimizer = "adam"
    """``adam``, ``adamw``, ``sgd`` or ``adagrad``."""
    ema_decay: float = 0.0
    """When > 0, the fitted weights are an exponential moving average of the training trajectory
    with this decay per step (0: the last step's weights)."""

    def validate(self) -> None:
        self.check(self.epochs >= 1, "epochs", "must be >= 1")
        self.check(self.batch_size >= 1, "batch_size", "must be >= 1")
        self.check(self.learning_rate > 0, "learning_rate", "must be > 0")
        self.check(self.optimizer in OPTIMIZERS, "optimizer", f"must be one of {', '.join(OPTIMIZERS)}")
        self.check(0 <= self.ema_decay < 1, "ema_decay", "must be in [0, 1)")


class TorchState:
    """Mixin for estimators whose learned state includes a torch network in ``_net``.

    Put it before the estimator base (``class M(TorchState, Recommender)``). The class then
    declares ``backend = "torch"`` and gets :meth:`network`, :attr:`device`, :meth:`to_device`
    and persistence of the network. Subclasses say how to rebuild an empty network of the right
    shape from the restored ``_`` attributes by :meth:`_restore_network` (default: ``_network()``).
    """

    backend: ClassVar[Backend] = "torch"
    _net: nn.Module | None = None

    def _restore_network(self) -> nn.Module:
        """An untrained network of the fitted shape, for :meth:`set_state` to load weights into."""
        return self._network()  # type: ignore[attr-defined]

    def _after_load(self) -> None:
        """Restore anything the network needs besides its weights (e.g. a graph)."""

    def network(self) -> nn.Module:
        """The fitted network, in eval mode (for export and inspection; do not train it further).

        Raises:
            NotFittedError: The model is not fitted.
            DataError: The state was restored without the network's weights.
        """
        check_is_fitted(self)  # type: ignore[arg-type]
        if self._net is None:
            raise DataError(f"{type(self).__name__}: the network is missing (was the state restored?)")
        return self._net

    _require_net = network

    @property
    def device(self) -> torch.device:
        """Where the network lives."""
        net = self.network()
        p = next(iter(net.parameters()), None)
        return p.device if p is not None else torch.device("cpu")

    def to_device(self, device: str | torch.device) -> Self:
        """Move the fitted network (scoring then runs there); returns ``self``."""
        from recforge.training.loop import resolve_device

        net = self.network()
        net.to(resolve_device(device))
        net.eval()
        return self

    def get_state(self) -> dict[str, Any]:
        """Learned ``_`` attributes plus the network's ``state_dict`` as numpy arrays."""
        state = super().get_state()  # type: ignore[misc]
        for key, val in self.network().state_dict().items():
            state[TORCH_PREFIX + key] = val.detach().cpu().numpy()
        return state

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`get_state`'s output: attributes first, then a rebuilt network (on the CPU)."""
        tensors = {k[len(TORCH_PREFIX):]: torch.from_numpy(np.array(v)) for k, v in state.items()
                   if k.startswith(TORCH_PREFIX)}
        super().set_state({k: v for k, v in state.items() if not k.startswith(TORCH_PREFIX)})  # type: ignore[misc]
        net = self._restore_network()
        net.load_state_dict(tensors)
        self._net = net.eval()
        self._after_load()

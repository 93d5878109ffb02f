"""``implicit-to-explicit``: an MLP from implicit signals to explicit ratings, trained by the shared
Lightning loop."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from recforge.config import FitOptions
from recforge.data.interactions import Interactions
from recforge.errors import ConfigError, DataError
from recforge.models._torch import TorchConfig, TorchState
from recforge.models.signals.base import SignalConfig, SignalRatingModel
from recforge.training.batches import FixedBatches, TensorBatcher
from recforge.training.loop import fit_network, run_context
from recforge.training.module import RecNetwork
from recforge.training.validation import Validation

__all__ = ["ImplicitToExplicit", "ImplicitToExplicitConfig"]

_CHUNK = 1 << 16


@dataclass(frozen=True)
class ImplicitToExplicitConfig(SignalConfig, TorchConfig):
    """Hyperparameters of :class:`ImplicitToExplicit`."""

    hidden: tuple[int, ...] = (32,)
    """Sizes of the hidden layers (ReLU)."""
    dropout: float = 0.2
    """Dropout after each hidden layer, while training."""
    wide: bool = True
    """Add a linear path from the features to the output (wide and deep), so that the network
    starts from, and can always fall back to, the linear model."""
    weight_decay: float = 1e-3
    """The optimiser's L2 weight decay."""
    epochs: int = 20
    batch_size: int = 256
    learning_rate: float = 3e-3

    def validate(self) -> None:
        SignalConfig.validate(self)
        TorchConfig.validate(self)
        if not all(h >= 1 for h in self.hidden):
            raise ConfigError(f"{type(self).__name__}.hidden = {self.hidden!r}: layer sizes must be >= 1")
        self.check(0 <= self.dropout < 1, "dropout", "must be in [0, 1)")
        self.check(self.weight_decay >= 0, "weight_decay", "must be >= 0")


class _SignalNet(RecNetwork):
    """``r = mu + w . x + MLP(x)`` on standardised feature rows, trained by mean squared error."""

    def __init__(self, width: int, hidden: tuple[int, ...], dropout: float, wide: bool, mean: float) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        last = width
        for h in hidden:
            layers += [nn.Linear(last, h), nn.ReLU(), nn.Dropout(dropout)]
            last = h
        layers.append(nn.Linear(last, 1))
        self.deep = nn.Sequential(*layers)
        self.wide = nn.Linear(width, 1, bias=False) if wide else None
        if self.wide is not None:
            nn.init.zeros_(self.wide.weight)
        self.register_buffer("mean", torch.tensor(float(mean)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.deep(x).squeeze(-1) + self.mean
        if self.wide is not None:
            out = out + self.wide(x).squeeze(-1)
        return out

    def loss(self, batch: Any) -> torch.Tensor:
        x, y = batch
        return torch.mean((self(x) - y) ** 2)


class _RowValidation(Validation):
    """RMSE of predicted ratings (clipped to the scale) on held-out rated rows, from their feature rows."""

    monitor = "val_rmse"
    mode = "min"

    def __init__(self, x: np.ndarray, y: np.ndarray, lo: float, hi: float, device: torch.device) -> None:
        xt = torch.as_tensor(x, dtype=torch.float32, device=device)
        yt = torch.as_tensor(y, dtype=torch.float32, device=device)
        self.lo, self.hi = lo, hi
        self._batches = [(xt[s : s + _CHUNK], yt[s : s + _CHUNK]) for s in range(0, len(yt), _CHUNK)]

    def batches(self) -> FixedBatches:
        return FixedBatches(self._batches)

    def step(self, net: Any, batch: Any) -> dict[str, torch.Tensor]:
        x, y = batch
        pred = net(x).float().clamp(self.lo, self.hi)
        return {"sse": ((pred - y) ** 2).sum(), "n": torch.tensor(float(len(y)))}

    def compute(self, sums: dict[str, float]) -> dict[str, float]:
        return {"val_rmse": math.sqrt(sums["sse"] / max(sums["n"], 1.0))}


class ImplicitToExplicit(TorchState, SignalRatingModel):
    """Predicts a user's explicit rating of an item from their implicit signals on it: an MLP.

    Objective: ``min mean_(u,i rated) (r_ui - f(x_ui))^2`` (plus ``weight_decay``), with
    ``f(x) = mu + w . x + MLP(x)`` (``wide``) and ``x_ui`` the pair's features
    (:mod:`recforge.models.signals._features`): its transformed signals (``log1p`` of plays,
    replays, hours; completion and other fractions or flags as they are), the user's and item's
    mean signals and row counts (the per-user scale of behaviour: ten plays mean less from a heavy
    user) and, with ``rating_aggregates``, their shrunk leave-one-out mean ratings and rating counts.
    Trained with mini-batch Adam through the shared Lightning loop (early stopping on validation
    RMSE when ``FitOptions.validation`` holds rated rows with signals).

    Predictions for the rows without a rating are the point: they feed any rating model for users
    who never rated (:meth:`fill_ratings`, the cold-start route).

    References: Hu, Koren and Volinsky, "Collaborative Filtering for Implicit Feedback Datasets"
    (ICDM 2008), implicit counts as confidence in a preference; Jawaheer, Szomszor and Kostkova,
    "Comparison of Implicit and Explicit Feedback from an Online Music Recommendation Service"
    (HetRec 2010); Parra and Amatriain, "Walk the Talk: Analyzing the Relation between Implicit
    and Explicit Feedback for Preference Elicitation" (UMAP 2011), the regression of ratings on
    implicit behaviour that :class:`~recforge.models.signals.linear.ImplicitToExplicitLinear` is.
    """

    name = "implicit-to-explicit"
    config_class = ImplicitToExplicitConfig
    _net: _SignalNet | None = None

    def _network(self) -> _SignalNet:
        cfg: ImplicitToExplicitConfig = self.config  # type: ignore[assignment]
        return _SignalNet(len(self.feature_center_), tuple(cfg.hidden), cfg.dropout, cfg.wide,
                          float(self.global_mean_))

    def _fit_regressor(self, x: np.ndarray, y: np.ndarray, options: FitOptions) -> None:
        cfg: ImplicitToExplicitConfig = self.config  # type: ignore[assignment]
        self._net = None
        with run_context(options) as ctx:
            net = self._network().to(ctx.device)
            batches = TensorBatcher(torch.from_numpy(x), torch.from_numpy(y), batch_size=cfg.batch_size,
                                    shuffle=True, generator=ctx.generator, device=ctx.device)
            validation = self._validation(ctx.options.validation, ctx.device)
            self._net = net  # scorable between epochs (FitOptions.epoch_callback)
            result = fit_network(net, batches, ctx, epochs=cfg.epochs, learning_rate=cfg.learning_rate,
                                 optimizer=cfg.optimizer, weight_decay=cfg.weight_decay,
                                 validation=validation,
                                 name=self.name, ema_decay=cfg.ema_decay, model=self)
        self._net = net.eval()
        self.history_ = result.history
        self.best_epoch_ = result.best_epoch

    def _validation(self, valid: Any, device: torch.device) -> _RowValidation | None:
        if valid is None:
            return None
        if not isinstance(valid, Interactions):
            raise DataError(f"FitOptions.validation must be Interactions, got {type(valid).__name__}")
        if valid.n_users != len(self.users_) or valid.n_items != len(self.items_):
            raise DataError("FitOptions.validation must share the training data's vocabularies (make it with "
                            "a split or Interactions.subset)")
        x, y = self.log_features(valid)
        keep = np.isfinite(y)
        if not keep.any():
            raise DataError(f"FitOptions.validation ({valid.name!r}) has no row with a rating")
        return _RowValidation(x[keep], y[keep], self.rating_min_, self.rating_max_, device)

    def _regress(self, x: np.ndarray) -> np.ndarray:
        net = self.network()
        dev = self.device
        with torch.no_grad():
            return net(torch.as_tensor(x, dtype=torch.float32, device=dev)).double().cpu().numpy()

"""What every torch recommender shares: fitting through the Lightning loop, scoring, persistence."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import torch

from recforge.config import FitOptions, ModelConfig
from recforge.data.interactions import Interactions
from recforge.training.batches import NegativeSampler, TensorBatcher
from recforge.errors import DataError
from recforge.models.base import Recommender
from recforge.training.loop import RunContext, TrainResult, fit_network, run_context
from recforge.training.module import OPTIMIZERS, RecNetwork
from recforge.training.validation import RankingValidation, RatingValidation, Validation

_TORCH_PREFIX = "torch_state."
_PAIR_CHUNK = 1 << 18
_FLOAT_BUDGET = 1 << 24  # floats of intermediate activations per scoring block

Optimizer = Literal["adam", "adamw", "sgd", "adagrad"]
Sampling = Literal["uniform", "popularity"]


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


def baseline_biases(data: Interactions, reg_user: float = 15.0, reg_item: float = 10.0,
                    sweeps: int = 10) -> tuple[float, np.ndarray, np.ndarray]:
    """``(mu, b_u, b_i)`` of the regularised baseline ``mu + b_u + b_i`` (as the ``bias`` model).

    Alternating closed-form updates ``b_i = sum_u (r - mu - b_u) / (reg_item + |U_i|)`` and
    ``b_u = sum_i (r - mu - b_i) / (reg_user + |I_u|)``; rating models use it as the estimate for
    pairs whose user or item has no training rows (the known side's bias still informs it).
    """
    u, i, r = data.user_idx, data.item_idx, data.values.astype(np.float64)
    mu = float(r.mean()) if len(r) else 0.0
    n_u = np.bincount(u, minlength=data.n_users)
    n_i = np.bincount(i, minlength=data.n_items)
    bu = np.zeros(data.n_users)
    bi = np.zeros(data.n_items)
    for _ in range(sweeps):
        bi = np.bincount(i, weights=r - mu - bu[u], minlength=data.n_items) / (reg_item + n_i)
        bu = np.bincount(u, weights=r - mu - bi[i], minlength=data.n_users) / (reg_user + n_u)
    return mu, bu, bi


def partial_baseline(model: Recommender, u: np.ndarray, i: np.ndarray) -> np.ndarray:
    """``mu + b_u + b_i`` with the unknown side's bias (index ``-1``) left out; NaN without biases."""
    ub = getattr(model, "user_bias_", None)
    ib = getattr(model, "item_bias_", None)
    if ub is None or ib is None or not hasattr(model, "global_mean_"):
        return np.full(len(u), np.nan)
    bu = np.where(u >= 0, ub[np.maximum(u, 0)], 0.0)
    bi = np.where(i >= 0, ib[np.maximum(i, 0)], 0.0)
    return float(model.global_mean_) + bu + bi  # type: ignore[attr-defined]


class TorchRecommender(Recommender):
    """Base of the torch models: a private :class:`RecNetwork` trained by :func:`fit_network`.

    Subclasses implement ``_setup`` (read sizes and any data-derived state into public ``_``
    attributes), ``_network`` (build the network from the config and that state, so ``load`` can
    rebuild it) and ``_batches`` (the training batches); they may override ``_train`` (e.g. for
    pretraining) and ``_validation``. The network's ``state_dict`` is saved as numpy arrays under
    ``torch_state.<name>`` keys, so models save and load without pickle. After ``load`` the network
    lives on the CPU; :meth:`to_device` moves it.
    """

    backend = "torch"
    weight_decay_field: ClassVar[str | None] = None
    _net: RecNetwork | None = None

    # ------------------------------------------------------------------ subclass hooks
    def _setup(self, data: Interactions, ctx: RunContext) -> None:
        """Set data-derived state (sizes, means, features) before the network is built."""

    def _network(self) -> RecNetwork:
        raise NotImplementedError

    def _batches(self, data: Interactions, ctx: RunContext, net: RecNetwork) -> Any:
        raise NotImplementedError

    def _rating_objective(self) -> bool:
        """Whether the model predicts ratings (RMSE validation) rather than ranks (NDCG)."""
        return self.task == "rating" and bool(self.explicit_)

    def _validation(self, data: Interactions, ctx: RunContext) -> Validation | None:
        if ctx.options.validation is None:
            return None
        if self._rating_objective():
            return RatingValidation(ctx.options.validation, data, ctx.device)
        return RankingValidation(ctx.options.validation, data, ctx.device, k=20)

    def _weight_decay(self) -> float:
        return float(getattr(self.config, self.weight_decay_field)) if self.weight_decay_field else 0.0

    def _train(self, net: RecNetwork, data: Interactions, ctx: RunContext) -> TrainResult:
        cfg: Any = self.config
        return fit_network(
            net, self._batches(data, ctx, net), ctx, epochs=self._epochs(), learning_rate=cfg.learning_rate,
            optimizer=cfg.optimizer, weight_decay=self._weight_decay(),
            validation=self._validation(data, ctx), name=self.name,
            ema_decay=cfg.ema_decay, model=self,
        )

    def _epochs(self) -> int:
        """Epochs of this fit: the config's, unless a subclass fixed them (e.g. a refit)."""
        fixed = getattr(self, "_fixed_epochs", None)
        return int(fixed) if fixed is not None else int(self.config.epochs)  # type: ignore[attr-defined]

    def _after_fit(self, data: Interactions) -> None:
        """Anything to cache once the network is trained."""

    # ------------------------------------------------------------------ fit
    def _fit(self, data: Interactions, options: FitOptions) -> None:
        self._net = None
        with run_context(options) as ctx:
            self._setup(data, ctx)
            net = self._network().to(ctx.device)
            self._net = net  # scorable between epochs (FitOptions.epoch_callback)
            result = self._train(net, data, ctx)
            self._net = net.eval()
            self.history_ = result.history
            self.best_epoch_ = result.best_epoch
            self._after_fit(data)

    # ------------------------------------------------------------------ helpers for subclasses
    def _sampler(self, data: Interactions, ctx: RunContext, distribution: str = "uniform",
                 alpha: float = 1.0) -> NegativeSampler:
        return NegativeSampler(data.csr(), distribution=distribution, alpha=alpha,  # type: ignore[arg-type]
                               rng=ctx.rng)

    def _pair_batches(self, data: Interactions, ctx: RunContext, kind: str, batch_size: int,
                      negatives: int = 1, sampling: str = "uniform") -> TensorBatcher:
        """Batches of ``rating`` (u, i, r), ``pointwise`` (u, i, label) or ``pairwise`` (u, i, j) rows.

        Pointwise and pairwise epochs draw fresh negatives every epoch.
        """
        u = data.user_idx.astype(np.int64)
        i = data.item_idx.astype(np.int64)
        common = {"batch_size": batch_size, "shuffle": True, "generator": ctx.generator, "device": ctx.device}
        if kind == "rating":
            return TensorBatcher(torch.from_numpy(u), torch.from_numpy(i),
                                 torch.from_numpy(data.values.astype(np.float32)), **common)
        sampler = self._sampler(data, ctx, sampling)
        if kind == "pointwise":
            def source(epoch: int) -> tuple[torch.Tensor, ...]:
                uu, ii, yy = sampler.pointwise(u, i, negatives)
                return torch.from_numpy(uu), torch.from_numpy(ii), torch.from_numpy(yy)
        elif kind == "pairwise":
            def source(epoch: int) -> tuple[torch.Tensor, ...]:
                uu, ii, jj = sampler.pairwise(u, i, negatives)
                return torch.from_numpy(uu), torch.from_numpy(ii), torch.from_numpy(jj)
        else:
            raise ValueError(kind)
        return TensorBatcher(source=source, **common)

    # ------------------------------------------------------------------ scoring
    @property
    def device(self) -> torch.device:
        """Where the network lives."""
        net = self._require_net()
        p = next(iter(net.parameters()), None)
        return p.device if p is not None else torch.device("cpu")

    def to_device(self, device: str | torch.device) -> TorchRecommender:
        """Move the fitted network (scoring then runs there); returns ``self``."""
        from recforge.training.loop import resolve_device

        net = self._require_net()
        net.to(resolve_device(device))
        net.eval()
        return self

    def _require_net(self) -> RecNetwork:
        self._check_fitted()
        if self._net is None:
            raise DataError(f"{type(self).__name__}: the network is missing (was the state restored?)")
        return self._net

    def _pair_width(self) -> int:
        """Floats of intermediate activations per scored pair (bounds scoring block sizes)."""
        return 1

    def _score_pairs(self, u: np.ndarray, i: np.ndarray) -> np.ndarray:
        net = self._require_net()
        dev = self.device
        out = np.empty(len(u), dtype=np.float64)
        step = max(1, _PAIR_CHUNK // self._pair_width())
        with torch.no_grad():
            for s in range(0, len(u), step):
                uu = torch.as_tensor(u[s : s + step], dtype=torch.long, device=dev)
                ii = torch.as_tensor(i[s : s + step], dtype=torch.long, device=dev)
                out[s : s + step] = net.score_pairs(uu, ii).double().cpu().numpy()
        return out

    def _score_users(self, u: np.ndarray) -> np.ndarray:
        net = self._require_net()
        dev = self.device
        n_items = len(self.items_)
        out = np.empty((len(u), n_items), dtype=np.float64)
        step = max(1, _FLOAT_BUDGET // max(1, n_items * self._pair_width()))
        with torch.no_grad():
            for s in range(0, len(u), step):
                uu = torch.as_tensor(u[s : s + step], dtype=torch.long, device=dev)
                out[s : s + step] = net.score_users(uu).double().cpu().numpy()
        return out

    def embeddings(self) -> tuple[np.ndarray, np.ndarray]:
        """``(user_vectors, item_vectors)`` as float32 numpy arrays in index order, detached from
        the network and on the CPU (``has_embeddings`` models: their network's ``embeddings()``)."""
        if not self.has_embeddings:
            raise NotImplementedError(f"{type(self).__name__} has no embeddings")
        net = self._require_net()
        with torch.no_grad():
            uv, iv = net.embeddings()  # type: ignore[operator]
        return uv.detach().float().cpu().numpy(), iv.detach().float().cpu().numpy()

    # ------------------------------------------------------------------ persistence
    def get_state(self) -> dict[str, Any]:
        state = super().get_state()
        net = self._require_net()
        for key, val in net.state_dict().items():
            state[_TORCH_PREFIX + key] = val.detach().cpu().numpy()
        return state

    def set_state(self, state: dict[str, Any]) -> None:
        tensors = {k[len(_TORCH_PREFIX):]: torch.from_numpy(np.array(v)) for k, v in state.items()
                   if k.startswith(_TORCH_PREFIX)}
        super().set_state({k: v for k, v in state.items() if not k.startswith(_TORCH_PREFIX)})
        net = self._network()
        net.load_state_dict(tensors)
        self._net = net.eval()
        self._after_load()

    def _after_load(self) -> None:
        """Restore anything the network needs besides its weights (e.g. a graph)."""

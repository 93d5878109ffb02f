"""What every torch recommender shares: fitting through the Lightning loop, scoring, persistence."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np
import torch

from recforge.config import FitOptions
from recforge.data.interactions import Interactions
from recforge.training.batches import NegativeSampler, TensorBatcher
from recforge.models._torch import Optimizer, TorchConfig, TorchState  # noqa: F401 (re-exported)
from recforge.models.base import Recommender
from recforge.training.loop import RunContext, TrainResult, fit_network, run_context
from recforge.training.module import RecNetwork
from recforge.training.validation import RankingValidation, RatingValidation, Validation

_PAIR_CHUNK = 1 << 18
_FLOAT_BUDGET = 1 << 24  # floats of intermediate activations per scoring block

Sampling = Literal["uniform", "popularity"]


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


class TorchRecommender(TorchState, Recommender):
    """Base of the torch models: a private :class:`RecNetwork` trained by :func:`fit_network`.

    Subclasses implement ``_setup`` (read sizes and any data-derived state into public ``_``
    attributes), ``_network`` (build the network from the config and that state, so ``load`` can
    rebuild it) and ``_batches`` (the training batches); they may override ``_train`` (e.g. for
    pretraining) and ``_validation``. The network's persistence, ``network()``, ``device`` and
    ``to_device`` come from :class:`~recforge.models._torch.TorchState`; after ``load`` the network
    lives on the CPU.
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

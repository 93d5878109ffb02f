"""Matrix factorisation with biases in torch: explicit (MSE) or implicit (BPR or BCE) feedback."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from torch import nn

from recforge.data.interactions import Interactions
from recforge.models.neural import losses
from recforge.models.neural.base import TorchConfig, TorchRecommender
from recforge.training.loop import RunContext
from recforge.training.module import RecNetwork


@dataclass(frozen=True)
class TorchMFConfig(TorchConfig):
    """Hyperparameters of :class:`TorchMF`."""

    embedding_size: int = 128
    """Latent factors per user and item."""
    loss: Literal["auto", "mse", "bpr", "hinge", "bce"] = "auto"
    """``mse`` (ratings), ``bpr`` or ``hinge`` (pairwise: ``-ln sigmoid(x_uij)`` or
    ``max(0, margin - x_uij)``) or ``bce`` (pointwise with sampled negatives); ``auto`` picks ``mse``
    for explicit and ``bpr`` for implicit training data."""
    margin: float = 1.0
    """The hinge loss's margin (``loss="hinge"`` only)."""
    use_bias: bool = True
    """Learn a user and an item bias (and use the global mean for ratings)."""
    reg: float | None = None
    """L2 penalty on the factors of each training example (scaled by ``reg_exponent``). None: 1.25
    for ``mse`` on ratings (tuned on ML-100K), 0.01 for the implicit losses."""
    reg_exponent: float = 0.5
    """The factor penalty of an example is ``reg * n^-reg_exponent`` for a user (item) with ``n``
    training rows: 0 is SGD-style (a user's total penalty grows like ``n``), 1 makes it independent
    of ``n``, 0.5 lies in between."""
    reg_bias: float = 0.01
    """L2 penalty on the biases of each training example."""
    negatives: int | None = None
    """Sampled negatives per positive, redrawn every epoch: pointwise examples for ``bce`` (and
    ``mse`` on implicit data), triples for ``bpr``. None: 4 for pointwise losses, 1 for ``bpr``."""
    negative_sampling: Literal["uniform", "popularity"] = "uniform"
    """Negative-sampling distribution."""
    init_std: float = 0.1
    """Standard deviation of the normal initialisation of the factors."""
    epochs: int = 50
    batch_size: int = 1024
    learning_rate: float = 2e-3

    ALIASES: ClassVar[dict[str, str]] = {"biases": "use_bias", "sampling": "negative_sampling"}

    def validate(self) -> None:
        super().validate()
        self.check(self.embedding_size >= 1, "embedding_size", "must be >= 1")
        self.check(self.reg is None or self.reg >= 0, "reg", "must be >= 0 or None")
        self.check(self.reg_bias >= 0, "reg_bias", "must be >= 0")
        self.check(0 <= self.reg_exponent <= 1, "reg_exponent", "must be in [0, 1]")
        self.check(self.negatives is None or self.negatives >= 1, "negatives", "must be >= 1 or None")
        self.check(self.init_std > 0, "init_std", "must be > 0")
        self.check(self.margin > 0, "margin", "must be > 0")


class _MFNet(RecNetwork):
    def __init__(self, n_users: int, n_items: int, k: int, biases: bool, mean: float, loss: str,
                 reg: float, reg_bias: float, init_std: float, user_weight: torch.Tensor,
                 item_weight: torch.Tensor, margin: float = 1.0) -> None:
        super().__init__()
        self.margin = margin
        self.user = nn.Embedding(n_users, k)
        self.item = nn.Embedding(n_items, k)
        nn.init.normal_(self.user.weight, std=init_std)
        nn.init.normal_(self.item.weight, std=init_std)
        self.biases = biases
        if biases:
            self.user_bias = nn.Embedding(n_users, 1)
            self.item_bias = nn.Embedding(n_items, 1)
            nn.init.zeros_(self.user_bias.weight)
            nn.init.zeros_(self.item_bias.weight)
        self.register_buffer("mean", torch.tensor(float(mean)))
        self.register_buffer("user_weight", user_weight)
        self.register_buffer("item_weight", item_weight)
        self.loss_name = loss
        self.reg = reg
        self.reg_bias = reg_bias

    def _ub(self, u: torch.Tensor) -> torch.Tensor:
        return self.user_bias(u).squeeze(-1) if self.biases else torch.zeros(len(u), device=u.device)

    def _ib(self, i: torch.Tensor) -> torch.Tensor:
        return self.item_bias(i).squeeze(-1) if self.biases else torch.zeros(len(i), device=i.device)

    def score_pairs(self, u: torch.Tensor, i: torch.Tensor) -> torch.Tensor:
        return (self.user(u) * self.item(i)).sum(-1) + self._ub(u) + self._ib(i) + self.mean

    def score_users(self, u: torch.Tensor) -> torch.Tensor:
        out = self.user(u) @ self.item.weight.T + self.mean
        if self.biases:
            out = out + self.user_bias(u) + self.item_bias.weight.T
        return out

    def embeddings(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.user.weight, self.item.weight

    def loss(self, batch: Any) -> torch.Tensor:
        u, i, third = batch
        pu, qi = self.user(u), self.item(i)
        sq = self.user_weight[u] * pu.pow(2).sum(-1) + self.item_weight[i] * qi.pow(2).sum(-1)
        if self.loss_name in losses.PAIRWISE:
            qj = self.item(third)
            x = (pu * (qi - qj)).sum(-1) + self._ib(i) - self._ib(third)
            sq = sq + self.item_weight[third] * qj.pow(2).sum(-1)
            penalty = self.reg * sq.mean()
            if self.biases:
                penalty = penalty + self.reg_bias * (self._ib(i).pow(2) + self._ib(third).pow(2)).mean()
            return losses.pairwise(self.loss_name, x, torch.zeros_like(x), self.margin) + penalty
        pred = (pu * qi).sum(-1) + self._ub(u) + self._ib(i) + self.mean
        penalty = self.reg * sq.mean()
        if self.biases:
            penalty = penalty + self.reg_bias * (self._ub(u).pow(2) + self._ib(i).pow(2)).mean()
        fit = losses.bce(pred, third) if self.loss_name == "bce" else losses.mse(pred, third)
        return fit + penalty


class TorchMF(TorchRecommender):
    """Biased matrix factorisation trained with mini-batch Adam (Koren, Bell and Volinsky, 2009).

    Score ``x_ui = mu + b_u + b_i + p_u . q_i`` (``mu`` is the training mean for ratings, 0
    for implicit data). Objectives, each plus ``reg * (n_u^-a |p_u|^2 + n_i^-a |q_i|^2) +
    reg_bias * (b_u^2 + b_i^2)`` averaged over the examples of the batch (``a = reg_exponent``;
    with ``a = 0`` frequent users and items are penalised more, as in SGD matrix factorisation):

    - ``mse``: ``mean (r_ui - x_ui)^2`` over observed ratings (explicit feedback); on implicit data,
      observed pairs are 1 and ``negatives`` sampled pairs per positive are 0.
    - ``bce``: ``mean -[y log s(x_ui) + (1 - y) log(1 - s(x_ui))]`` with ``negatives`` sampled
      negatives per positive, redrawn every epoch.
    - ``bpr``: ``mean -log s(x_ui - x_uj)`` over triples with a sampled negative ``j`` (Rendle et
      al., "BPR: Bayesian Personalized Ranking from Implicit Feedback", UAI 2009).
    """

    name = "mf-torch"
    task = "rating"
    # ratings (mse) or implicit feedback (bpr/bce, or mse against sampled zeros): values as given
    feedback = "any"
    config_class = TorchMFConfig
    has_embeddings = True

    def _loss_name(self) -> str:
        cfg: TorchMFConfig = self.config  # type: ignore[assignment]
        if cfg.loss != "auto":
            return cfg.loss
        return "mse" if self.explicit_ else "bpr"

    def _reg(self) -> float:
        cfg: TorchMFConfig = self.config  # type: ignore[assignment]
        if cfg.reg is not None:
            return float(cfg.reg)
        return 1.25 if self._rating_objective() else 0.01

    def _rating_objective(self) -> bool:
        return bool(self.explicit_) and self._loss_name() == "mse"

    def _setup(self, data: Interactions, ctx: RunContext) -> None:
        self.loss_ = self._loss_name()
        self.global_mean_ = float(data.values.mean()) if self._rating_objective() else 0.0

    def _network(self) -> RecNetwork:
        cfg: TorchMFConfig = self.config  # type: ignore[assignment]
        # per-entity penalty weights n^-reg_exponent; restored from the state dict after load
        uw = np.maximum(np.asarray(self.seen_.sum(axis=1)).ravel(), 1.0) ** -cfg.reg_exponent
        iw = np.maximum(np.asarray(self.seen_.sum(axis=0)).ravel(), 1.0) ** -cfg.reg_exponent
        return _MFNet(len(self.users_), len(self.items_), cfg.embedding_size, cfg.use_bias, self.global_mean_,
                      self.loss_, self._reg(), cfg.reg_bias, cfg.init_std, torch.from_numpy(uw.astype(np.float32)),
                      torch.from_numpy(iw.astype(np.float32)), cfg.margin)

    def _batches(self, data: Interactions, ctx: RunContext, net: RecNetwork) -> Any:
        cfg: TorchMFConfig = self.config  # type: ignore[assignment]
        if self.loss_ == "mse" and data.explicit:
            return self._pair_batches(data, ctx, "rating", cfg.batch_size)
        if self.loss_ in losses.PAIRWISE:
            return self._pair_batches(data, ctx, "pairwise", cfg.batch_size, cfg.negatives or 1, cfg.negative_sampling)
        return self._pair_batches(data, ctx, "pointwise", cfg.batch_size, cfg.negatives or 4, cfg.negative_sampling)

    def _score_partial(self, u: np.ndarray, i: np.ndarray) -> np.ndarray:
        # a pair with one unseen side: mu plus the learned bias of the known side
        net = self._require_net()
        if not (self._rating_objective() and getattr(net, "biases", False)):
            return np.full(len(u), np.nan)
        bu = net.user_bias.weight.detach().cpu().numpy().ravel()  # type: ignore[union-attr]
        bi = net.item_bias.weight.detach().cpu().numpy().ravel()  # type: ignore[union-attr]
        return (self.global_mean_ + np.where(u >= 0, bu[np.maximum(u, 0)], 0.0)
                + np.where(i >= 0, bi[np.maximum(i, 0)], 0.0))

    def _fallback_rating(self) -> float:
        if self._rating_objective():
            return float(self.global_mean_)
        return super()._fallback_rating()


__all__ = ["TorchMF", "TorchMFConfig"]

"""Matrix factorisation with biases in torch: explicit (MSE) or implicit (BPR or BCE) feedback."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from recforge.data.interactions import Interactions
from recforge.models.neural import losses
from recforge.models.neural._base import TorchConfig, TorchRecommender
from recforge.training.loop import RunContext
from recforge.training.module import RecNetwork


@dataclass(frozen=True)
class TorchMFConfig(TorchConfig):
    """Hyperparameters of :class:`TorchMF`."""

    embedding_size: int = 128
    """Latent factors per user and item."""
    loss: Literal["auto", "mse", "bpr", "bce"] = "auto"
    """``mse`` (ratings), ``bpr`` (pairwise) or ``bce`` (pointwise with sampled negatives);
    ``auto`` picks ``mse`` for explicit and ``bpr`` for implicit training data."""
    biases: bool = True
    """Learn a user and an item bias (and use the global mean for ratings)."""
    reg: float = 0.05
    """L2 penalty on the factors and biases of each training example (SGD-style regularisation)."""
    negatives: int | None = None
    """Sampled negatives per positive, redrawn every epoch: pointwise examples for ``bce`` (and
    ``mse`` on implicit data), triples for ``bpr``. None: 4 for pointwise losses, 1 for ``bpr``."""
    sampling: Literal["uniform", "popularity"] = "uniform"
    """Negative-sampling distribution."""
    init_std: float = 0.1
    """Standard deviation of the normal initialisation of the factors."""
    epochs: int = 30
    batch_size: int = 1024
    learning_rate: float = 2e-3

    def validate(self) -> None:
        super().validate()
        self.check(self.embedding_size >= 1, "embedding_size", "must be >= 1")
        self.check(self.reg >= 0, "reg", "must be >= 0")
        self.check(self.negatives is None or self.negatives >= 1, "negatives", "must be >= 1 or None")
        self.check(self.init_std > 0, "init_std", "must be > 0")


class _MFNet(RecNetwork):
    def __init__(self, n_users: int, n_items: int, k: int, biases: bool, mean: float, loss: str,
                 reg: float, init_std: float) -> None:
        super().__init__()
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
        self.loss_name = loss
        self.reg = reg

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
        sq = pu.pow(2).sum(-1) + qi.pow(2).sum(-1)
        if self.loss_name == "bpr":
            qj = self.item(third)
            x = (pu * (qi - qj)).sum(-1) + self._ib(i) - self._ib(third)
            sq = sq + qj.pow(2).sum(-1)
            if self.biases:
                sq = sq + self._ib(i).pow(2) + self._ib(third).pow(2)
            return losses.bpr(x, torch.zeros_like(x)) + self.reg * sq.mean()
        pred = (pu * qi).sum(-1) + self._ub(u) + self._ib(i) + self.mean
        if self.biases:
            sq = sq + self._ub(u).pow(2) + self._ib(i).pow(2)
        fit = losses.bce(pred, third) if self.loss_name == "bce" else losses.mse(pred, third)
        return fit + self.reg * sq.mean()


class TorchMF(TorchRecommender):
    """Biased matrix factorisation trained with mini-batch Adam (Koren, Bell and Volinsky, 2009).

    Score ``x_ui = mu + b_u + b_i + p_u . q_i`` (``mu`` is the training mean for ratings, 0
    for implicit data). Objectives, each plus ``reg * (|p_u|^2 + |q_i|^2 + b_u^2 + b_i^2)`` on the
    examples of the batch:

    - ``mse``: ``mean (r_ui - x_ui)^2`` over observed ratings (explicit feedback); on implicit data,
      observed pairs are 1 and ``negatives`` sampled pairs per positive are 0.
    - ``bce``: ``mean -[y log s(x_ui) + (1 - y) log(1 - s(x_ui))]`` with ``negatives`` sampled
      negatives per positive, redrawn every epoch.
    - ``bpr``: ``mean -log s(x_ui - x_uj)`` over triples with a sampled negative ``j`` (Rendle et
      al., "BPR: Bayesian Personalized Ranking from Implicit Feedback", UAI 2009).
    """

    name = "mf-torch"
    task = "rating"
    config_class = TorchMFConfig

    def _loss_name(self) -> str:
        cfg: TorchMFConfig = self.config  # type: ignore[assignment]
        if cfg.loss != "auto":
            return cfg.loss
        return "mse" if self.explicit_ else "bpr"

    def _rating_objective(self) -> bool:
        return bool(self.explicit_) and self._loss_name() == "mse"

    def _setup(self, data: Interactions, ctx: RunContext) -> None:
        self.loss_ = self._loss_name()
        self.global_mean_ = float(data.values.mean()) if self._rating_objective() else 0.0

    def _network(self) -> RecNetwork:
        cfg: TorchMFConfig = self.config  # type: ignore[assignment]
        return _MFNet(len(self.users_), len(self.items_), cfg.embedding_size, cfg.biases, self.global_mean_,
                      self.loss_, cfg.reg, cfg.init_std)

    def _batches(self, data: Interactions, ctx: RunContext, net: RecNetwork) -> Any:
        cfg: TorchMFConfig = self.config  # type: ignore[assignment]
        if self.loss_ == "mse" and data.explicit:
            return self._pair_batches(data, ctx, "rating", cfg.batch_size)
        if self.loss_ == "bpr":
            return self._pair_batches(data, ctx, "pairwise", cfg.batch_size, cfg.negatives or 1, cfg.sampling)
        return self._pair_batches(data, ctx, "pointwise", cfg.batch_size, cfg.negatives or 4, cfg.sampling)

    def _fallback_rating(self) -> float:
        if self._rating_objective():
            return float(self.global_mean_)
        return super()._fallback_rating()


__all__ = ["TorchMF", "TorchMFConfig"]

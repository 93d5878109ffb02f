"""Logistic regression on sparse feature rows: the CTR baseline every other model must beat."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from recforge.models.ctr._networks import CTRNetwork
from recforge.models.ctr.base import CTRConfig, CTRModel


@dataclass(frozen=True)
class LogisticRegressionConfig(CTRConfig):
    """Hyperparameters of :class:`LogisticRegression`."""

    learning_rate: float = 1e-2


class _LRNet(CTRNetwork):
    def __init__(self, n_features: int, base_rate: float, reg: float) -> None:
        super().__init__()
        self.weight = nn.Embedding(n_features, 1)
        nn.init.zeros_(self.weight.weight)
        self.bias = nn.Parameter(torch.tensor(float(torch.logit(torch.tensor(base_rate)))))
        self.reg = reg

    def logits(self, index: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        return self.bias + (self.weight(index).squeeze(-1) * value).sum(1)

    def penalty(self, index: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        return (self.weight(index).squeeze(-1) * (value != 0)).pow(2).sum(1)


class LogisticRegression(CTRModel):
    """Logistic regression: ``p(y = 1 | x) = s(w0 + sum_i w_i x_i)``.

    Trained by minimising the mean binary cross-entropy ``-[y log p + (1 - y) log(1 - p)]`` plus
    ``reg * sum_{i active} w_i^2`` per row (and ``embedding_reg / 2 * |w|^2`` over all features),
    with mini-batch Adam (the linear part of Rendle's
    factorisation machine; McMahan et al., "Ad Click Prediction: a View from the Trenches",
    KDD 2013, for LR as the CTR workhorse). ``w0`` starts at the logit of the training click rate.
    """

    name = "lr"
    config_class = LogisticRegressionConfig

    def _network(self) -> CTRNetwork:
        cfg: LogisticRegressionConfig = self.config  # type: ignore[assignment]
        return _LRNet(self.n_features_, self.base_rate_, cfg.reg)


__all__ = ["LogisticRegression", "LogisticRegressionConfig"]

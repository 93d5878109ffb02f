"""GRU4Rec: a recurrent network over the item sequence (Hidasi et al., ICLR 2016)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from recforge.data.interactions import Interactions
from recforge.models.sequential._base import SequentialConfig, SequentialNetwork, SequentialRecommender
from recforge.training.loop import RunContext


@dataclass(frozen=True)
class GRU4RecConfig(SequentialConfig):
    """Hyperparameters of :class:`GRU4Rec`."""

    n_layers: int = 1
    """Stacked GRU layers."""
    batch_size: int = 64
    learning_rate: float = 3e-3

    def validate(self) -> None:
        super().validate()
        self.check(self.n_layers >= 1, "n_layers", "must be >= 1")


class _GRU4RecNet(SequentialNetwork):
    def __init__(self, n_items: int, n_users: int, cfg: GRU4RecConfig) -> None:
        super().__init__(n_items, n_users, cfg.max_len)
        d = cfg.embedding_size
        self.item = nn.Embedding(n_items + 1, d, padding_idx=n_items)
        nn.init.normal_(self.item.weight, std=0.02)
        with torch.no_grad():
            self.item.weight[n_items].zero_()
        self.drop = nn.Dropout(cfg.dropout)
        self.gru = nn.GRU(d, d, num_layers=cfg.n_layers, batch_first=True,
                          dropout=cfg.dropout if cfg.n_layers > 1 else 0.0)
        self.out = nn.Linear(d, d)

    def states(self, seqs: torch.Tensor) -> torch.Tensor:
        h, _ = self.gru(self.drop(self.item(seqs)))
        return self.out(self.drop(h))


class GRU4Rec(SequentialRecommender):
    """GRU4Rec (Hidasi, Karatzoglou, Baltrunas and Tikk, "Session-based Recommendations with
    Recurrent Neural Networks", ICLR 2016), on user histories.

    ``h_t = GRU(e_{s_t}, h_{t-1})``, ``o_t = W h_t + b`` and the score of item ``j`` after position
    ``t`` is ``<o_t, e_j>`` (output tied to the input item embeddings). Objective: the next-item loss
    summed over every position of every training window of ``max_len`` items: softmax
    cross-entropy over all items (``loss="ce"``, RecBole's set-up) or ``-log s(x_pos) - sum log(1 -
    s(x_neg))`` with sampled negatives (``loss="bce"``). The paper's session-parallel mini-batches
    and ranking losses (BPR, TOP1) are replaced by these window batches.
    """

    name = "gru4rec"
    config_class = GRU4RecConfig

    def _build_network(self) -> SequentialNetwork:
        return _GRU4RecNet(len(self.items_), len(self.users_), self.config)  # type: ignore[arg-type]

    def _batches(self, data: Interactions, ctx: RunContext, net: Any = None) -> Any:
        return self._position_batches(data, ctx)


__all__ = ["GRU4Rec", "GRU4RecConfig"]

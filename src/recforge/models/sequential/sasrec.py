"""SASRec: causal self-attention over the item sequence (Kang and McAuley, ICDM 2018)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from recforge.data.interactions import Interactions
from recforge.models.sequential._base import SequentialConfig, SequentialNetwork, SequentialRecommender
from recforge.training.loop import RunContext


@dataclass(frozen=True)
class SASRecConfig(SequentialConfig):
    """Hyperparameters of :class:`SASRec`."""

    n_layers: int = 2
    """Self-attention blocks."""
    n_heads: int = 2
    """Attention heads (must divide ``embedding_size``)."""
    max_len: int = 50
    batch_size: int = 64
    learning_rate: float = 3e-3

    def validate(self) -> None:
        super().validate()
        self.check(self.n_layers >= 1, "n_layers", "must be >= 1")
        self.check(self.n_heads >= 1, "n_heads", "must be >= 1")
        self.check(self.embedding_size % max(self.n_heads, 1) == 0, "n_heads", "must divide embedding_size")


class _SASRecNet(SequentialNetwork):
    def __init__(self, n_items: int, n_users: int, cfg: SASRecConfig) -> None:
        super().__init__(n_items, n_users, cfg.max_len)
        d = cfg.embedding_size
        self.d = d
        self.n_heads = cfg.n_heads
        self.item = nn.Embedding(n_items + 1, d, padding_idx=n_items)
        self.pos = nn.Embedding(cfg.max_len, d)
        nn.init.normal_(self.item.weight, std=0.02)
        nn.init.normal_(self.pos.weight, std=0.02)
        with torch.no_grad():
            self.item.weight[n_items].zero_()
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(d, cfg.n_heads, dim_feedforward=d, dropout=cfg.dropout, activation="relu",
                                       batch_first=True, norm_first=True)
            for _ in range(cfg.n_layers)
        )
        self.norm = nn.LayerNorm(d)

    def states(self, seqs: torch.Tensor) -> torch.Tensor:
        length = seqs.shape[1]
        valid = seqs != self.pad
        pos = torch.arange(length, device=seqs.device)
        x = self.item(seqs) * math.sqrt(self.d) + self.pos(pos).unsqueeze(0)
        x = self.drop(x) * valid.unsqueeze(-1)
        # causal attention that also ignores padding keys; a padding query may see itself (no empty rows)
        causal = pos.unsqueeze(0) <= pos.unsqueeze(1)
        allowed = causal.unsqueeze(0) & (valid.unsqueeze(1) | torch.eye(length, dtype=torch.bool, device=seqs.device))
        mask = (~allowed).repeat_interleave(self.n_heads, dim=0)
        for block in self.blocks:
            x = block(x, src_mask=mask) * valid.unsqueeze(-1)
        return self.norm(x)


class SASRec(SequentialRecommender):
    """SASRec (Kang and McAuley, "Self-Attentive Sequential Recommendation", ICDM 2018).

    Input ``x_t = sqrt(d) e_{s_t} + p_t`` (item plus learned position embedding) goes through
    ``n_layers`` pre-norm blocks of causal multi-head self-attention and a point-wise feed-forward
    network, each with a residual connection and dropout; the score of item ``j`` after position
    ``t`` is ``<F_t, e_j>`` (shared item embeddings). Objective: the next-item loss at every
    position of every window of ``max_len`` items: ``-log s(<F_t, e_pos>) - sum log(1 - s(<F_t,
    e_neg>))`` with sampled negatives as in the paper (``loss="bce"``), or softmax cross-entropy
    over all items (``loss="ce"``, the default).
    """

    name = "sasrec"
    config_class = SASRecConfig

    def _build_network(self) -> SequentialNetwork:
        return _SASRecNet(len(self.items_), len(self.users_), self.config)  # type: ignore[arg-type]

    def _batches(self, data: Interactions, ctx: RunContext, net: Any = None) -> Any:
        return self._position_batches(data, ctx)


__all__ = ["SASRec", "SASRecConfig"]

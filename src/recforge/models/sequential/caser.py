"""Caser: convolutional sequence embedding (Tang and Wang, WSDM 2018)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from recforge.data.interactions import Interactions
from recforge.training.batches import TensorBatcher
from recforge.models.sequential._base import SequentialConfig, SequentialNetwork, SequentialRecommender
from recforge.training.loop import RunContext


@dataclass(frozen=True)
class CaserConfig(SequentialConfig):
    """Hyperparameters of :class:`Caser`."""

    max_len: int = 5
    """Window length L: the latest L items are the input "image"."""
    targets: int = 3
    """T: each window is trained to predict the next T items (skip behaviour)."""
    n_horizontal: int = 16
    """Horizontal filters per height h = 1..L (union-level patterns)."""
    n_vertical: int = 4
    """Vertical filters (point-level, weighted sums over the L items)."""
    embedding_size: int = 50
    dropout: float = 0.5

    def validate(self) -> None:
        super().validate()
        self.check(self.targets >= 1, "targets", "must be >= 1")
        self.check(self.n_horizontal >= 0, "n_horizontal", "must be >= 0")
        self.check(self.n_vertical >= 0, "n_vertical", "must be >= 0")
        self.check(self.n_horizontal + self.n_vertical >= 1, "n_vertical", "needs at least one filter in all")


def caser_windows(indptr: np.ndarray, items: np.ndarray, length: int, targets: int,
                  pad: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For every position t >= 1 of every user: (user, previous ``length`` items, next ``targets`` items).

    Inputs are left-padded with ``pad``; targets past the end of the sequence are ``-1``.
    """
    users, ins, outs = [], [], []
    sizes = np.diff(indptr)
    for u in np.flatnonzero(sizes >= 2):
        seq = items[indptr[u] : indptr[u + 1]]
        n = len(seq)
        x = np.lib.stride_tricks.sliding_window_view(np.concatenate([np.full(length, pad), seq]), length)[1:n]
        y = np.lib.stride_tricks.sliding_window_view(np.concatenate([seq, np.full(targets - 1, -1)]), targets)[1:n]
        users.append(np.full(n - 1, u))
        ins.append(x)
        outs.append(y)
    if not users:
        return np.empty(0, np.int64), np.empty((0, length), np.int64), np.empty((0, targets), np.int64)
    return (np.concatenate(users).astype(np.int64), np.concatenate(ins).astype(np.int64),
            np.concatenate(outs).astype(np.int64))


class _CaserNet(SequentialNetwork):
    def __init__(self, n_items: int, n_users: int, cfg: CaserConfig) -> None:
        super().__init__(n_items, n_users, cfg.max_len)
        d, length = cfg.embedding_size, cfg.max_len
        self.item = nn.Embedding(n_items + 1, d, padding_idx=n_items)
        self.user = nn.Embedding(n_users, d)
        nn.init.normal_(self.item.weight, std=1.0 / d)
        nn.init.normal_(self.user.weight, std=1.0 / d)
        with torch.no_grad():
            self.item.weight[n_items].zero_()
        self.horizontal = nn.ModuleList(nn.Conv2d(1, cfg.n_horizontal, (h, d)) for h in range(1, length + 1)) \
            if cfg.n_horizontal else nn.ModuleList()
        self.vertical = nn.Conv2d(1, cfg.n_vertical, (length, 1)) if cfg.n_vertical else None
        self.fc = nn.Linear(cfg.n_vertical * d + cfg.n_horizontal * length, d)
        self.drop = nn.Dropout(cfg.dropout)
        self.out = nn.Embedding(n_items, 2 * d)
        self.out_bias = nn.Embedding(n_items, 1)
        nn.init.normal_(self.out.weight, std=1.0 / (2 * d))
        nn.init.zeros_(self.out_bias.weight)

    def final(self, seqs: torch.Tensor, users: torch.Tensor | None) -> torch.Tensor:
        x = self.item(seqs).unsqueeze(1)  # (B, 1, L, d)
        parts = []
        if self.vertical is not None:
            parts.append(self.vertical(x).flatten(1))
        for conv in self.horizontal:
            h = F.relu(conv(x).squeeze(3))  # (B, n_h, L - h + 1)
            parts.append(h.max(dim=2).values)
        z = F.relu(self.fc(self.drop(torch.cat(parts, 1))))
        pu = self.user(users) if users is not None else self.user.weight.mean(0).expand(len(seqs), -1)
        return torch.cat([z, pu], 1)

    def score_sequences(self, seqs: torch.Tensor, users: torch.Tensor | None = None) -> torch.Tensor:
        return self.final(seqs, users) @ self.out.weight.T + self.out_bias.weight.T

    def loss(self, batch: Any) -> torch.Tensor:
        users, seqs, targets = batch[0], batch[1], batch[2]
        negatives = batch[3] if len(batch) > 3 else None
        f = self.final(seqs, users)
        t = targets.shape[1]
        mask = targets >= 0
        states = f.unsqueeze(1).expand(-1, t, -1)[mask]
        neg = None if negatives is None else negatives[mask]
        return self.next_item_loss(states, targets[mask], neg, self.out.weight, self.out_bias.weight.squeeze(1))


class Caser(SequentialRecommender):
    """Caser (Tang and Wang, "Personalized Top-N Sequential Recommendation via Convolutional
    Sequence Embedding", WSDM 2018).

    The latest ``L = max_len`` item embeddings form an ``L x d`` image ``E``; horizontal filters of
    heights 1..L (ReLU, max-pooled over time) and vertical ``L x 1`` filters read it, ``z =
    ReLU(W [o_h; o_v] + b)`` (dropout before ``W``), and the score of item ``j`` is ``<W'_j, [z; P_u]>
    + b'_j`` with a user embedding ``P_u`` (the average user when a history is scored without one).
    Objective: every window predicts the next ``T = targets`` items: binary cross-entropy against
    sampled negatives as in the paper (``loss="bce"``), or softmax cross-entropy over all items for
    each target (``loss="ce"``, the default).
    """

    name = "caser"
    config_class = CaserConfig
    uses_user = True

    def _build_network(self) -> SequentialNetwork:
        return _CaserNet(len(self.items_), len(self.users_), self.config)  # type: ignore[arg-type]

    def _batches(self, data: Interactions, ctx: RunContext, net: Any = None) -> Any:
        cfg: CaserConfig = self.config  # type: ignore[assignment]
        u, x, y = caser_windows(*self._seq, cfg.max_len, cfg.targets, len(self.items_))  # type: ignore[misc]
        tensors = (torch.from_numpy(u), torch.from_numpy(x), torch.from_numpy(y))
        common = {"batch_size": cfg.batch_size, "shuffle": True, "generator": ctx.generator, "device": ctx.device}
        if cfg.loss == "ce":
            return TensorBatcher(*tensors, **common)

        def source(epoch: int) -> tuple[torch.Tensor, ...]:
            return (*tensors, self._negatives(ctx, tuple(y.shape)))  # type: ignore[return-value]

        return TensorBatcher(source=source, **common)


__all__ = ["Caser", "CaserConfig"]

"""The networks of the CTR models: :class:`CTRNetwork` (feature rows to logits, BCE loss), the
seed :class:`EnsembleNetwork`, and the layers the models share (:func:`field_pool`,
:func:`feature_embedding`, :func:`mlp_layers`)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from recforge.training.module import RecNetwork

__all__ = ["CTRNetwork", "EnsembleNetwork", "feature_embedding", "field_pool", "mlp_layers"]


class CTRNetwork(RecNetwork):
    """A network mapping ``(index, value)`` slot tensors to logits; the loss is BCE + ``reg`` L2."""

    reg: float = 0.0
    embedding_reg: float = 0.0

    def logits(self, index: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def penalty(self, index: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        """Squared norm of the parameters of each row's active features, per row."""
        raise NotImplementedError

    def tables(self) -> list[nn.Embedding]:
        """The feature tables (weights, factors) that ``embedding_reg`` shrinks."""
        return [m for m in self.modules() if isinstance(m, nn.Embedding)]

    def loss(self, batch: Any) -> torch.Tensor:
        index, value, y = batch
        out = F.binary_cross_entropy_with_logits(self.logits(index, value), y)
        if self.reg > 0:
            out = out + self.reg * self.penalty(index, value).mean()
        if self.embedding_reg > 0:
            out = out + 0.5 * self.embedding_reg * sum(t.weight.pow(2).sum() for t in self.tables())
        return out

    def score_pairs(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError("CTR networks score feature rows, not (user, item) pairs")


class EnsembleNetwork(CTRNetwork):
    """``m`` CTR networks trained side by side: logit = mean of theirs, loss = mean of their losses.

    Each member minimises its own objective on the same batches (so they stay independent
    learners that differ by their initialisation and dropout), and the mean of their logits is
    what validation and scoring see: a seed ensemble trained in one pass.
    """

    def __init__(self, members: list[CTRNetwork]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    def logits(self, index: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        return torch.stack([m.logits(index, value) for m in self.members]).mean(0)

    def loss(self, batch: Any) -> torch.Tensor:
        return torch.stack([m.loss(batch) for m in self.members]).mean()


def feature_embedding(n: int, k: int, std: float) -> nn.Embedding:
    """An ``n`` x ``k`` feature table initialised from a normal with standard deviation ``std``."""
    emb = nn.Embedding(n, k)
    nn.init.normal_(emb.weight, std=std)
    return emb


def field_pool(e: torch.Tensor, slot_fields: torch.Tensor, n_fields: int) -> torch.Tensor:
    """``(B, S, k)`` value-weighted slot embeddings -> ``(B, F, k)`` sums per field."""
    if e.shape[1] == n_fields:
        return e  # one slot per field: nothing to pool
    # a product with the (S, F) slot-to-field indicator, not index_add_: it exports to ONNX
    pool = F.one_hot(slot_fields, n_fields).to(e.dtype)
    return torch.einsum("bsk,sf->bfk", e, pool)


def mlp_layers(width: int, hidden: tuple[int, ...], dropout: float, batch_norm: bool) -> tuple[list[nn.Module], int]:
    """The hidden layers of an :class:`~recforge.models.ctr.base.MLPConfig` deep part, and the
    width of their output: per layer ``Linear``, ``BatchNorm1d`` (with ``batch_norm``), ``ReLU``,
    ``Dropout`` (when ``dropout > 0``); the caller adds its own output layer."""
    layers: list[nn.Module] = []
    for h in hidden:
        layers.append(nn.Linear(width, h))
        if batch_norm:
            layers.append(nn.BatchNorm1d(h))
        layers.append(nn.ReLU())
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = h
    return layers, width

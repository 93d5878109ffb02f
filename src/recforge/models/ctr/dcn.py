"""DCN-V2 (Wang et al., "DCN V2: Improved Deep & Cross Network and Practical Lessons for Web-scale
Learning to Rank Systems", WWW 2021) for click-through rate."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from recforge.models.ctr._networks import CTRNetwork, feature_embedding, field_pool, mlp_layers
from recforge.models.ctr.base import CTRModel, MLPConfig

__all__ = ["DCNv2", "DCNv2Config", "CrossLayer"]


@dataclass(frozen=True)
class DCNv2Config(MLPConfig):
    """Hyperparameters of :class:`DCNv2`: the cross network's, on top of the embedding table, deep
    part and BARS training defaults of :class:`~recforge.models.ctr.base.MLPConfig`."""

    cross_layers: int = 3
    """Cross layers ``L_c`` (each adds one degree of explicit feature interaction)."""
    low_rank: int = 0
    """0: full-rank cross matrices ``W_l`` (``d x d``, DCN-V2); ``r > 0``: ``W_l = U_l V_l^T`` of rank
    ``r`` (the paper's cheaper low-rank cross layer)."""
    structure: Literal["parallel", "stacked"] = "parallel"
    """``parallel``: cross network and MLP both read the embeddings, their outputs are concatenated;
    ``stacked``: the MLP reads the cross network's output."""

    def validate(self) -> None:
        super().validate()
        self.check(self.cross_layers >= 1, "cross_layers", "must be >= 1")
        self.check(self.low_rank >= 0, "low_rank", "must be >= 0 (0: full rank)")
        self.check(self.structure in ("parallel", "stacked"), "structure", "must be 'parallel' or 'stacked'")


class CrossLayer(nn.Module):
    """One DCN-V2 cross layer: ``x_{l+1} = x_0 * (W x_l + b) + x_l`` (``*`` element-wise).

    With ``rank > 0`` the matrix is ``U V^T`` (``x_0 * (U (V^T x_l)) + b) + x_l``).
    """

    def __init__(self, d: int, rank: int = 0) -> None:
        super().__init__()
        if rank > 0:
            self.v = nn.Linear(d, rank, bias=False)
            self.u = nn.Linear(rank, d, bias=True)
            self.w: nn.Linear | None = None
        else:
            self.w = nn.Linear(d, d, bias=True)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_normal_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x0: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        mixed = self.w(x) if self.w is not None else self.u(self.v(x))
        return x0 * mixed + x


class _DCNv2Net(CTRNetwork):
    def __init__(self, n_features: int, cfg: DCNv2Config, base_rate: float, slot_fields: torch.Tensor,
                 n_fields: int) -> None:
        super().__init__()
        k = cfg.embedding_size
        self.embedding = feature_embedding(n_features, k, cfg.init_std)
        self.register_buffer("slot_fields", slot_fields.long(), persistent=False)
        self.n_fields = n_fields
        self.reg = cfg.reg
        self.stacked = cfg.structure == "stacked"
        d = n_fields * k
        self.cross = nn.ModuleList([CrossLayer(d, cfg.low_rank) for _ in range(cfg.cross_layers)])
        layers, width = mlp_layers(d, tuple(cfg.hidden), cfg.dropout, cfg.batch_norm)
        self.deep = nn.Sequential(*layers)
        self.head = nn.Linear(width if self.stacked else d + width, 1)
        with torch.no_grad():
            self.head.bias.fill_(float(torch.logit(torch.tensor(float(base_rate)))))

    def logits(self, index: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        e = self.embedding(index) * value.unsqueeze(-1)
        x0 = field_pool(e, self.slot_fields, self.n_fields).flatten(1)
        x = x0
        for layer in self.cross:
            x = layer(x0, x)
        out = self.deep(x) if self.stacked else torch.cat([x, self.deep(x0)], dim=1)
        return self.head(out).squeeze(-1)

    def penalty(self, index: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        active = (value != 0).to(value.dtype)
        return (self.embedding(index).pow(2).sum(-1) * active).sum(1)


class DCNv2(CTRModel):
    """DCN-V2 (Wang et al., WWW 2021): a cross network of full-rank (or low-rank) cross layers
    beside (``parallel``) or before (``stacked``) an MLP, over the concatenated field embeddings.

    ``x_0 = [e_1; ...; e_F]``; ``x_{l+1} = x_0 * (W_l x_l + b_l) + x_l`` for ``l < L_c`` (explicit
    bounded-degree interactions: layer ``l`` holds the degree ``l + 1`` polynomial terms);
    ``parallel``: ``y = w^T [x_{L_c}; MLP(x_0)] + b``, ``stacked``: ``y = w^T MLP(x_{L_c}) + b``;
    ``p = s(y)``. Objective: mean binary cross-entropy plus ``reg`` on the active embeddings per row
    plus ``embedding_reg / 2 * ||E||^2`` over the whole table, mini-batch Adam. Defaults: the
    BARS/FuxiCTR setting used for DeepFM (``k = 10``, 400x400x400 with batch norm and dropout 0.2)
    with 3 full-rank cross layers in parallel, the paper's default structure.
    """

    name = "dcnv2"
    config_class = DCNv2Config

    def _network(self) -> CTRNetwork:
        cfg: DCNv2Config = self.config  # type: ignore[assignment]
        return _DCNv2Net(self.n_features_, cfg, self.base_rate_, torch.as_tensor(self.slot_fields_),
                         len(self.field_names_))

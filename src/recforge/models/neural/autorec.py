"""AutoRec: an autoencoder over the rows of the rating matrix (Sedhain et al., WWW 2015)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from recforge.data.interactions import Interactions
from recforge.data.torch_data import RatingRows
from recforge.models.neural._base import TorchConfig, TorchRecommender
from recforge.training.loop import RunContext
from recforge.training.module import RecNetwork

Activation = Literal["sigmoid", "relu", "tanh", "elu", "identity"]
_ACT = {"sigmoid": torch.sigmoid, "relu": torch.relu, "tanh": torch.tanh,
        "elu": nn.functional.elu, "identity": lambda x: x}


@dataclass(frozen=True)
class AutoRecConfig(TorchConfig):
    """Hyperparameters of :class:`AutoRec`."""

    based: Literal["item", "user"] = "item"
    """``item`` (I-AutoRec: each item's vector of user ratings is one example; the paper's best) or
    ``user`` (U-AutoRec: each user's vector of item ratings)."""
    hidden_size: int = 500
    """Units of the hidden layer."""
    activation: Activation = "sigmoid"
    """Encoder non-linearity ``g``."""
    output_activation: Activation = "identity"
    """Decoder non-linearity ``f``."""
    reg: float = 100.0
    """``lambda``: L2 penalty ``lambda / 2 * (|W|^2 + |V|^2)`` on the weight matrices."""
    dropout: float = 0.5
    """Dropout on the hidden layer during training (0: the paper's model)."""
    epochs: int = 100
    batch_size: int = 256
    learning_rate: float = 1e-3
    ema_decay: float = 0.99

    def validate(self) -> None:
        super().validate()
        self.check(self.hidden_size >= 1, "hidden_size", "must be >= 1")
        self.check(self.reg >= 0, "reg", "must be >= 0")
        self.check(0 <= self.dropout < 1, "dropout", "must be in [0, 1)")


class _AutoRecNet(RecNetwork):
    """Rows ``r`` (ratings, 0 where unobserved) -> ``f(V g(W r + mu) + b)``, trained on stored entries.

    ``encoder`` holds ``W^T`` (one row per input column) so that ``W r`` over a sparse row is an
    ``embedding_bag`` of the rated columns weighted by their ratings; ``decoder`` holds ``V`` (one
    row per output column), so the reconstruction at the rated columns is a row-wise dot product.
    Training therefore never touches unobserved entries, and costs O(ratings x hidden).
    """

    def __init__(self, n_cols: int, hidden: int, act: str, out_act: str, reg: float, n_observed: int,
                 item_based: bool, dropout: float = 0.0) -> None:
        super().__init__()
        bound = 1.0 / np.sqrt(n_cols)
        self.encoder = nn.Parameter(torch.empty(n_cols, hidden).uniform_(-bound, bound))
        self.encoder_bias = nn.Parameter(torch.empty(hidden).uniform_(-bound, bound))
        hb = 1.0 / np.sqrt(hidden)
        self.decoder = nn.Parameter(torch.empty(n_cols, hidden).uniform_(-hb, hb))
        self.decoder_bias = nn.Parameter(torch.empty(n_cols).uniform_(-hb, hb))
        self.act = _ACT[act]
        self.out_act = _ACT[out_act]
        self.reg = reg
        self.dropout = dropout
        self.n_observed = max(1, n_observed)
        self.item_based = item_based
        self.rows: RatingRows | None = None
        self._hidden: torch.Tensor | None = None

    def set_rows(self, rows: RatingRows) -> None:
        self.rows = rows
        self.clear_cache()

    def clear_cache(self) -> None:
        self._hidden = None

    def encode(self, offsets: torch.Tensor, cols: torch.Tensor, vals: torch.Tensor) -> torch.Tensor:
        """``g(W r + mu)`` of sparse rows given as ``embedding_bag`` inputs."""
        z = F.embedding_bag(cols, self.encoder, offsets, mode="sum", per_sample_weights=vals)
        return self.act(z + self.encoder_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Dense reconstruction of dense rows ``x`` (zeros where unobserved)."""
        h = self.act(x @ self.encoder + self.encoder_bias)
        return self.out_act(h @ self.decoder.T + self.decoder_bias)

    def penalty(self) -> torch.Tensor:
        return self.encoder.pow(2).sum() + self.decoder.pow(2).sum()

    def loss(self, batch: Any) -> torch.Tensor:
        _, offsets, cols, vals, local = batch
        h = self.encode(offsets, cols, vals)
        if self.dropout > 0:
            h = F.dropout(h, self.dropout, self.training)
        n_rows = len(offsets)
        if n_rows * self.decoder.shape[0] <= 16 * len(cols):
            # dense-ish batch: one matrix product then a gather beats gathering rows (BLAS vs scatter)
            z = (h @ self.decoder.T + self.decoder_bias)[local, cols]
        else:
            z = (F.embedding(local, h) * F.embedding(cols, self.decoder)).sum(-1) + self.decoder_bias[cols]
        recon = self.out_act(z)
        # the paper's objective divided by the number of observed ratings N, so each batch gives an
        # unbiased estimate: mean squared error over observed entries + lambda / (2 N) (|W|^2 + |V|^2)
        return torch.mean((recon - vals) ** 2) + self.reg / (2 * self.n_observed) * self.penalty()

    def hidden(self) -> torch.Tensor:
        """``g(W r + mu)`` for every input row (cached in eval mode)."""
        if self._hidden is not None and not self.training:
            return self._hidden
        assert self.rows is not None, "AutoRec network has no input rows"
        dev = self.encoder.device
        n_rows = self.rows.shape[0]
        step = 4096
        parts = []
        for s in range(0, n_rows, step):
            idx = torch.arange(s, min(n_rows, s + step), device=self.rows.device)
            offsets, cols, vals, _ = self.rows.entries(idx)
            parts.append(self.encode(offsets.to(dev), cols.to(dev), vals.to(dev)))
        h = torch.cat(parts) if parts else torch.zeros(0, self.encoder.shape[1], device=dev)
        if not self.training:
            self._hidden = h
        return h

    def _pairs(self, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        h = self.hidden()[rows]
        return self.out_act((h * self.decoder[cols]).sum(-1) + self.decoder_bias[cols])

    def score_pairs(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        if self.item_based:
            return self._pairs(items, users)
        return self._pairs(users, items)

    def score_users(self, users: torch.Tensor) -> torch.Tensor:
        h = self.hidden()
        if self.item_based:
            # all item rows, only the requested users' output columns
            return self.out_act(h @ self.decoder[users].T + self.decoder_bias[users]).T
        return self.out_act(h[users] @ self.decoder.T + self.decoder_bias)


class AutoRec(TorchRecommender):
    """AutoRec (Sedhain, Menon, Sanner and Xie, "AutoRec: Autoencoders Meet Collaborative
    Filtering", WWW 2015).

    Item-based (I-AutoRec, default): each item ``i`` is a vector ``r_i`` of its ratings by all
    users (0 where unobserved). The network reconstructs it as ``h(r_i) = f(V g(W r_i + mu) + b)``
    and is trained on the observed entries only:

    ``min sum_i |r_i - h(r_i)|^2_O + lambda / 2 (|W|_F^2 + |V|_F^2)``

    (divided by the number of observed ratings; ``|.|_O`` sums over observed ratings). The
    prediction for ``(u, i)`` is ``h(r_i)_u``. User-based (U-AutoRec) swaps the roles.

    The architecture follows the paper (500 sigmoid hidden units, identity output). The paper
    trains full-batch with RProp/L-BFGS; here mini-batch Adam is used, and two regularisers beyond
    the paper are on by default because they gave the best validation RMSE on ML-100K (selected on
    a 10% validation split of u1.base): dropout 0.5 on the hidden layer and an exponential moving
    average of the weights (``ema_decay=0.99``). ``dropout=0, ema_decay=0`` is the paper's model.
    """

    name = "autorec"
    task = "rating"
    config_class = AutoRecConfig

    def _matrix(self) -> sp.csr_matrix:
        cfg: AutoRecConfig = self.config  # type: ignore[assignment]
        return self.ratings_.T.tocsr() if cfg.based == "item" else self.ratings_

    def _setup(self, data: Interactions, ctx: RunContext) -> None:
        self.ratings_ = sp.csr_matrix(data.csr(), dtype=np.float32)
        self.global_mean_ = float(data.values.mean())

    def _network(self) -> RecNetwork:
        cfg: AutoRecConfig = self.config  # type: ignore[assignment]
        mat = self._matrix()
        net = _AutoRecNet(mat.shape[1], cfg.hidden_size, cfg.activation, cfg.output_activation, cfg.reg,
                          int(mat.nnz), cfg.based == "item", cfg.dropout)
        net.set_rows(RatingRows(mat, batch_size=cfg.batch_size, shuffle=False))
        return net

    def _batches(self, data: Interactions, ctx: RunContext, net: RecNetwork) -> Any:
        cfg: AutoRecConfig = self.config  # type: ignore[assignment]
        rows = RatingRows(self._matrix(), batch_size=cfg.batch_size, shuffle=True, generator=ctx.generator,
                          device=ctx.device)
        net.set_rows(rows)  # type: ignore[operator]
        return rows

    def to_device(self, device: str | torch.device) -> AutoRec:
        super().to_device(device)
        net = self._require_net()
        cfg: AutoRecConfig = self.config  # type: ignore[assignment]
        net.set_rows(RatingRows(self._matrix(), batch_size=cfg.batch_size, shuffle=False,  # type: ignore[operator]
                                device=self.device))
        return self

    def _pair_width(self) -> int:
        return 1

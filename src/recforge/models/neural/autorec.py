"""AutoRec: an autoencoder over the rows of the rating matrix (Sedhain et al., WWW 2015)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from recforge.data.interactions import Interactions
from recforge.data.torch_data import RatingRows
from recforge.models.neural import losses
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
    reg: float = 1.0
    """``lambda``: L2 penalty ``lambda / 2 * (|W|^2 + |V|^2)`` on the weight matrices."""
    epochs: int = 300
    batch_size: int = 64
    learning_rate: float = 1e-3

    def validate(self) -> None:
        super().validate()
        self.check(self.hidden_size >= 1, "hidden_size", "must be >= 1")
        self.check(self.reg >= 0, "reg", "must be >= 0")


class _AutoRecNet(RecNetwork):
    """Rows ``r`` (n_rows x n_cols ratings, 0 where unobserved) -> ``f(V g(W r + mu) + b)``."""

    def __init__(self, n_cols: int, hidden: int, act: str, out_act: str, reg: float, n_observed: int,
                 item_based: bool) -> None:
        super().__init__()
        self.encoder = nn.Linear(n_cols, hidden)
        self.decoder = nn.Linear(hidden, n_cols)
        self.act = _ACT[act]
        self.out_act = _ACT[out_act]
        self.reg = reg
        self.n_observed = max(1, n_observed)
        self.item_based = item_based
        self.rows: RatingRows | None = None
        self._hidden: torch.Tensor | None = None

    def set_rows(self, rows: RatingRows) -> None:
        self.rows = rows
        self.clear_cache()

    def clear_cache(self) -> None:
        self._hidden = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out_act(self.decoder(self.act(self.encoder(x))))

    def loss(self, batch: Any) -> torch.Tensor:
        _, vals, mask = batch
        recon = self(vals)
        # the paper's objective divided by the number of observed ratings, so the batch estimate is
        # unbiased: masked MSE + lambda / (2 N) (|W|^2 + |V|^2)
        penalty = self.encoder.weight.pow(2).sum() + self.decoder.weight.pow(2).sum()
        return losses.masked_mse(recon, vals, mask) + self.reg / (2 * self.n_observed) * penalty

    def hidden(self) -> torch.Tensor:
        """``g(W r + mu)`` for every input row (cached in eval mode)."""
        if self._hidden is not None and not self.training:
            return self._hidden
        assert self.rows is not None, "AutoRec network has no input rows"
        dev = self.encoder.weight.device
        n_rows = self.rows.shape[0]
        step = max(1, (1 << 22) // max(1, self.rows.shape[1]))
        parts = []
        for s in range(0, n_rows, step):
            idx = torch.arange(s, min(n_rows, s + step), device=dev)
            vals, _ = self.rows.get(idx)
            parts.append(self.act(self.encoder(vals.to(dev))))
        h = torch.cat(parts) if parts else torch.zeros(0, self.encoder.out_features, device=dev)
        if not self.training:
            self._hidden = h
        return h

    def _out(self, rows: torch.Tensor, cols: torch.Tensor | None, pair: bool) -> torch.Tensor:
        h = self.hidden()[rows]
        if pair:
            assert cols is not None
            z = (h * self.decoder.weight[cols]).sum(-1) + self.decoder.bias[cols]
        else:
            z = h @ self.decoder.weight.T + self.decoder.bias
        return self.out_act(z)

    def score_pairs(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        if self.item_based:
            return self._out(items, users, pair=True)
        return self._out(users, items, pair=True)

    def score_users(self, users: torch.Tensor) -> torch.Tensor:
        if self.item_based:
            # item rows x all users is too wide; gather only the requested users' decoder columns
            h = self.hidden()
            z = h @ self.decoder.weight[users].T + self.decoder.bias[users]
            return self.out_act(z).T
        return self._out(users, None, pair=False)


class AutoRec(TorchRecommender):
    """AutoRec (Sedhain, Menon, Sanner and Xie, "AutoRec: Autoencoders Meet Collaborative
    Filtering", WWW 2015).

    Item-based (I-AutoRec, default): each item ``i`` is a vector ``r_i`` of its ratings by all
    users (0 where unobserved). The network reconstructs it as ``h(r_i) = f(V g(W r_i + mu) + b)``
    and is trained on the observed entries only:

    ``min sum_i |r_i - h(r_i)|^2_O + lambda / 2 (|W|_F^2 + |V|_F^2)``

    (divided by the number of observed ratings; ``|.|_O`` sums over observed ratings). The
    prediction for ``(u, i)`` is ``h(r_i)_u``. User-based (U-AutoRec) swaps the roles. Defaults
    follow the paper: 500 sigmoid hidden units, identity output.
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
                          int(mat.nnz), cfg.based == "item")
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

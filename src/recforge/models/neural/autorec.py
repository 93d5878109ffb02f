"""AutoRec: an autoencoder over the rows of the rating matrix (Sedhain et al., WWW 2015)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from recforge.config import FitOptions
from recforge.data.interactions import Interactions
from recforge.training.batches import RatingRows
from recforge.models.neural.base import TorchConfig, TorchRecommender, baseline_biases, partial_baseline
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
    """``lambda``: L2 penalty ``lambda / 2 * (|W|^2 + |V|^2)`` on the weight matrices, against the
    sum of squared errors over observed ratings (the paper's scale; biases are not penalised)."""
    dropout: float = 0.5
    """Dropout on the hidden layer during training (0: the paper's model)."""
    validation_fraction: float = 0.05
    """Without ``FitOptions.validation``: share of the training ratings held out to choose the
    number of epochs (early stopping on their RMSE, ``FitOptions.patience`` checks); the
    network is then refitted on all ratings for that many epochs. 0: train ``epochs`` epochs on
    everything, no selection."""
    average_selection: bool = True
    """With the epoch selection above: predict with the mean of the refitted network and the
    selection run's network (trained on the other ``1 - validation_fraction`` of the ratings), a
    two-member ensemble that costs no extra training."""
    epochs: int = 200
    """The most epochs (the chosen number is usually far fewer: AutoRec overfits after ~50)."""
    batch_size: int = 256
    learning_rate: float = 3e-3
    ema_decay: float = 0.995

    def validate(self) -> None:
        super().validate()
        self.check(self.hidden_size >= 1, "hidden_size", "must be >= 1")
        self.check(self.reg >= 0, "reg", "must be >= 0")
        self.check(0 <= self.dropout < 1, "dropout", "must be in [0, 1)")
        self.check(0 <= self.validation_fraction < 1, "validation_fraction", "must be in [0, 1)")


class _AutoRecNet(RecNetwork):
    """Rows ``r`` (ratings, 0 where unobserved) -> ``f(V g(W r + mu) + b)``, trained on stored entries.

    ``encoder`` holds ``W^T`` (one row per input column) so that ``W r`` over a sparse row is an
    ``embedding_bag`` of the rated columns weighted by their ratings; ``decoder`` holds ``V`` (one
    row per output column), so the reconstruction at the rated columns is a row-wise dot product.
    Training therefore never touches unobserved entries, and costs O(ratings x hidden).
    """

    def __init__(self, n_cols: int, hidden: int, act: str, out_act: str, reg: float, n_observed: int,
                 item_based: bool, dropout: float = 0.0, unit: float = 1.0) -> None:
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
        self.unit = float(unit)  # rows hold ratings / unit; scores are multiplied back
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
        """Dense reconstruction of dense rows ``x`` (zeros where unobserved), in rating units."""
        h = self.act(x @ self.encoder + self.encoder_bias)
        return self.unit * self.out_act(h @ self.decoder.T + self.decoder_bias)

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
        return self.unit * self.out_act((h * self.decoder[cols]).sum(-1) + self.decoder_bias[cols])

    def score_pairs(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        if self.item_based:
            return self._pairs(items, users)
        return self._pairs(users, items)

    def score_users(self, users: torch.Tensor) -> torch.Tensor:
        h = self.hidden()
        if self.item_based:
            # all item rows, only the requested users' output columns
            return self.unit * self.out_act(h @ self.decoder[users].T + self.decoder_bias[users]).T
        return self.unit * self.out_act(h[users] @ self.decoder.T + self.decoder_bias)


class _Averaged(RecNetwork):
    """Mean of the scores of several trained AutoRec networks (never trained as a unit)."""

    def __init__(self, members: list[_AutoRecNet]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    def set_rows(self, rows: RatingRows) -> None:
        for m in self.members:
            m.set_rows(rows)  # type: ignore[operator]

    def clear_cache(self) -> None:
        for m in getattr(self, "members", ()):
            m.clear_cache()  # type: ignore[operator]

    def score_pairs(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return torch.stack([m.score_pairs(users, items) for m in self.members]).mean(0)  # type: ignore[operator]

    def score_users(self, users: torch.Tensor) -> torch.Tensor:
        return torch.stack([m.score_users(users) for m in self.members]).mean(0)  # type: ignore[operator]


class AutoRec(TorchRecommender):
    """AutoRec (Sedhain, Menon, Sanner and Xie, "AutoRec: Autoencoders Meet Collaborative
    Filtering", WWW 2015).

    Item-based (I-AutoRec, default): each item ``i`` is a vector ``r_i`` of its ratings by all
    users (0 where unobserved). The network reconstructs it as ``h(r_i) = f(V g(W r_i + mu) + b)``
    and is trained on the observed entries only:

    ``min sum_i |r_i - h(r_i)|^2_O + lambda / 2 (|W|_F^2 + |V|_F^2)``

    (divided by the number of observed ratings; ``|.|_O`` sums over observed ratings). The
    prediction for ``(u, i)`` is ``h(r_i)_u``. User-based (U-AutoRec) swaps the roles.

    The architecture follows the paper (500 sigmoid hidden units, identity output, unobserved
    inputs 0, L2 on the weights only at the paper's scale). The paper trains full-batch with
    RProp/L-BFGS; here mini-batch Adam is used, and two regularisers beyond the paper are on by
    default because they gave the best RMSE on ML-100K: dropout 0.5 on the hidden layer and an
    exponential moving average of the weights (``ema_decay``). ``dropout=0, ema_decay=0`` is the
    paper's model. The network overfits after a few dozen epochs at these settings, so by default
    the epoch count is chosen by early stopping on ``validation_fraction`` of the training ratings
    and the network refitted on all of them (``selected_epochs_``); predictions average the refit
    and the selection run's network (``average_selection``). Pairs whose item (user, for
    U-AutoRec) has no training rating get the baseline ``mu + b_u + b_i`` of the known side.
    """

    name = "autorec"
    task = "rating"
    config_class = AutoRecConfig

    def _fit(self, data: Interactions, options: FitOptions) -> None:
        cfg: AutoRecConfig = self.config  # type: ignore[assignment]
        opts = options
        self._fixed_epochs = None
        self.n_members_ = 1
        held = np.zeros(len(data), dtype=bool)
        if opts.validation is None and cfg.validation_fraction > 0:
            # choose the epoch count on held-out ratings, then use every rating for the final network
            rng = np.random.default_rng(None if opts.seed is None else [int(opts.seed), 0xA0])
            held = rng.random(len(data)) < cfg.validation_fraction
            rest_u = np.bincount(data.user_idx[~held], minlength=data.n_users)
            rest_i = np.bincount(data.item_idx[~held], minlength=data.n_items)
            if not ((rest_u[data.user_idx[held]] > 0) & (rest_i[data.item_idx[held]] > 0)).any():
                held[:] = False  # too little data to hold any scorable rating out
        if not held.any():
            super()._fit(data, opts)
            self.selected_epochs_ = int(cfg.epochs if self.best_epoch_ is None else self.best_epoch_ + 1)
            return
        inner = dataclasses.replace(opts, validation=data.subset(held), restore_best=True,
                                    patience=opts.patience if opts.patience is not None else 5)
        super()._fit(data.subset(~held), inner)
        history, best, first = self.history_, self.best_epoch_, self._net
        self._fixed_epochs = cfg.epochs if best is None else best + 1
        try:
            super()._fit(data, dataclasses.replace(opts, validation=None))
        finally:
            self._fixed_epochs = None
        self.history_ = history
        self.best_epoch_ = best
        self.selected_epochs_ = int(cfg.epochs if best is None else best + 1)
        if cfg.average_selection and first is not None and self._net is not None:
            both = _Averaged([self._net, first])  # type: ignore[list-item]
            both.set_rows(RatingRows(self._matrix(), batch_size=cfg.batch_size, shuffle=False,
                                     device=self.device))
            self._net = both.eval()
            self.n_members_ = 2

    def _matrix(self) -> sp.csr_matrix:
        cfg: AutoRecConfig = self.config  # type: ignore[assignment]
        return self.ratings_.T.tocsr() if cfg.based == "item" else self.ratings_

    def _setup(self, data: Interactions, ctx: RunContext) -> None:
        # the network sees ratings in units of max|r| / 5, so the defaults (tuned on 1-5 stars: reg
        # against squared errors, sigmoid inputs) mean the same on a 1-10 or 0.5-2.5 scale
        self.rating_unit_ = float(max(float(np.abs(data.values).max()) if len(data) else 5.0, 1e-6) / 5.0)
        self.ratings_ = sp.csr_matrix(sp.csr_matrix(data.csr(), dtype=np.float32) / self.rating_unit_, dtype=np.float32)
        # the network has no input row for an unseen item (I-AutoRec) or user (U-AutoRec), and an
        # all-zero row is not one it was trained on: such pairs get the baseline mu + b_u + b_i
        self.global_mean_, self.user_bias_, self.item_bias_ = baseline_biases(data)

    def _network(self) -> RecNetwork:
        cfg: AutoRecConfig = self.config  # type: ignore[assignment]
        mat = self._matrix()
        nets = [_AutoRecNet(mat.shape[1], cfg.hidden_size, cfg.activation, cfg.output_activation, cfg.reg,
                            int(mat.nnz), cfg.based == "item", cfg.dropout, getattr(self, "rating_unit_", 1.0))
                for _ in range(int(getattr(self, "n_members_", 1)))]
        net: RecNetwork = nets[0] if len(nets) == 1 else _Averaged(nets)
        net.set_rows(RatingRows(mat, batch_size=cfg.batch_size, shuffle=False))  # type: ignore[operator]
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

    def _score_partial(self, u: np.ndarray, i: np.ndarray) -> np.ndarray:
        return partial_baseline(self, u, i)

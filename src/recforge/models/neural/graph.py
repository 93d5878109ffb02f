"""Graph collaborative filtering on the user-item bipartite graph: NGCF and LightGCN.

Both propagate embeddings over the symmetric-normalised adjacency
``A_hat = D^-1/2 A D^-1/2`` of the graph ``A = [[0, R], [R^T, 0]]`` (``R`` the binary users x items
training matrix) held as a torch sparse CSR matrix on the training device, and train with BPR on
(user, positive, sampled negative) triples. Because ``A_hat`` is symmetric, the backward pass of
``A_hat X`` is ``A_hat G``: a custom autograd function reuses the forward kernel instead of the
much slower sparse transpose product. Once trained, the propagated embeddings are computed once
and full ranking is a batched matrix product on the device.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise
from typing import Any, ClassVar, Literal

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from recforge.data.interactions import Interactions
from recforge.models.neural import losses
from recforge.models.neural.base import Sampling, TorchConfig, TorchRecommender
from recforge.training.loop import RunContext
from recforge.training.module import RecNetwork

__all__ = ["NGCF", "LightGCN", "LightGCNConfig", "NGCFConfig", "normalized_adjacency", "sparse_tensor"]


def normalized_adjacency(interactions: sp.spmatrix, self_loops: bool = False) -> sp.csr_matrix:
    """``D^-1/2 A D^-1/2`` of the bipartite graph of a users x items matrix (nonzeros are edges).

    Nodes ``0..n_users-1`` are users and ``n_users..n_users+n_items-1`` items. ``D`` is the degree
    matrix of ``A`` (of ``A + I`` with ``self_loops``); isolated nodes get a zero row and column.
    """
    r = sp.csr_matrix(interactions, dtype=np.float32, copy=True)
    r.data[:] = 1.0
    r.sum_duplicates()
    r.data[:] = 1.0
    n_u, n_i = r.shape
    a = sp.bmat([[None, r], [r.T, None]], format="csr", dtype=np.float32)
    if a.shape != (n_u + n_i, n_u + n_i):  # bmat drops empty blocks' shapes when R has no rows
        a = sp.csr_matrix((n_u + n_i, n_u + n_i), dtype=np.float32)
    if self_loops:
        a = (a + sp.identity(n_u + n_i, dtype=np.float32, format="csr")).tocsr()
    deg = np.asarray(a.sum(axis=1)).ravel()
    with np.errstate(divide="ignore"):
        d = np.where(deg > 0, 1.0 / np.sqrt(deg), 0.0).astype(np.float32)
    out = sp.diags(d) @ a @ sp.diags(d)
    out = sp.csr_matrix(out, dtype=np.float32)
    out.sort_indices()
    return out


def sparse_tensor(mat: sp.csr_matrix, device: torch.device | str = "cpu") -> torch.Tensor:
    """A scipy CSR matrix as a torch sparse CSR tensor on ``device``."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Sparse CSR tensor support is in beta.*")
        return torch.sparse_csr_tensor(
            torch.from_numpy(mat.indptr.astype(np.int64)), torch.from_numpy(mat.indices.astype(np.int64)),
            torch.from_numpy(mat.data.astype(np.float32)), size=mat.shape, device=device,
            check_invariants=False,
        )


class _SymmetricSpMM(torch.autograd.Function):
    """``A @ X`` for a symmetric sparse ``A``; the gradient w.r.t. ``X`` is ``A @ G``."""

    @staticmethod
    @torch.amp.custom_fwd(device_type="cuda", cast_inputs=torch.float32)
    def forward(ctx: Any, adj: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        ctx.adj = adj
        return torch.sparse.mm(adj, x)

    @staticmethod
    @torch.amp.custom_bwd(device_type="cuda")
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[None, torch.Tensor]:
        return None, torch.sparse.mm(ctx.adj, grad.contiguous())


def _spmm(adj: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return _SymmetricSpMM.apply(adj, x)  # type: ignore[no-any-return]


class _GraphNet(RecNetwork):
    """Shared parts: ego embeddings, the adjacency, BPR loss and cached final embeddings."""

    def __init__(self, n_users: int, n_items: int, k: int, reg: float) -> None:
        super().__init__()
        self.n_users = n_users
        self.n_items = n_items
        self.embedding = nn.Embedding(n_users + n_items, k)
        self.reg = reg
        self.loss_name = "bpr"  # or "hinge"; set from the config by the model
        self.margin = 1.0
        self.adj: torch.Tensor | None = None
        self._final: tuple[torch.Tensor, torch.Tensor] | None = None

    def set_graph(self, adj: torch.Tensor) -> None:
        self.adj = adj
        self.clear_cache()

    def _apply(self, fn: Any, recurse: bool = True) -> Any:
        # keep the (non-parameter) adjacency on the module's device
        out = super()._apply(fn, recurse)
        if self.adj is not None:
            self.adj = fn(self.adj)
        self._final = None
        return out

    def clear_cache(self) -> None:
        self._final = None

    def propagate(self) -> torch.Tensor:
        raise NotImplementedError

    def final(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Propagated (user, item) embeddings; computed once per eval phase."""
        if self._final is not None and not self.training:
            return self._final
        all_ = self.propagate()
        out = (all_[: self.n_users], all_[self.n_users :])
        if not self.training:
            self._final = out
        return out

    def loss(self, batch: Any) -> torch.Tensor:
        u, i, j = batch
        all_ = self.propagate()
        eu, ei, ej = all_[u], all_[self.n_users + i], all_[self.n_users + j]
        fit = losses.pairwise(self.loss_name, (eu * ei).sum(-1), (eu * ej).sum(-1), self.margin)
        e0 = self.embedding
        sq = (e0(u).pow(2).sum() + e0(self.n_users + i).pow(2).sum() + e0(self.n_users + j).pow(2).sum())
        return fit + self.reg * 0.5 * sq / len(u)

    def score_pairs(self, u: torch.Tensor, i: torch.Tensor) -> torch.Tensor:
        uf, itf = self.final()
        return (uf[u] * itf[i]).sum(-1)

    def score_users(self, u: torch.Tensor) -> torch.Tensor:
        uf, itf = self.final()
        return uf[u] @ itf.T

    def embeddings(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.final()


class _LightGCNNet(_GraphNet):
    def __init__(self, n_users: int, n_items: int, k: int, n_layers: int, reg: float) -> None:
        super().__init__(n_users, n_items, k, reg)
        nn.init.normal_(self.embedding.weight, std=0.1)
        self.n_layers = n_layers

    def propagate(self) -> torch.Tensor:
        assert self.adj is not None, "LightGCN network has no graph"
        x = self.embedding.weight
        acc = x
        for _ in range(self.n_layers):
            x = _spmm(self.adj, x)
            acc = acc + x
        return acc / (self.n_layers + 1)


class _NGCFNet(_GraphNet):
    def __init__(self, n_users: int, n_items: int, k: int, layers: tuple[int, ...], reg: float,
                 node_dropout: float, message_dropout: float) -> None:
        super().__init__(n_users, n_items, k, reg)
        nn.init.xavier_uniform_(self.embedding.weight)
        sizes = (k, *layers)
        self.w1 = nn.ModuleList(nn.Linear(a, b) for a, b in pairwise(sizes))
        self.w2 = nn.ModuleList(nn.Linear(a, b) for a, b in pairwise(sizes))
        for lin in [*self.w1, *self.w2]:
            nn.init.xavier_uniform_(lin.weight)
            nn.init.zeros_(lin.bias)
        self.node_dropout = node_dropout
        self.message_dropout = message_dropout

    def propagate(self) -> torch.Tensor:
        assert self.adj is not None, "NGCF network has no graph"
        ego = self.embedding.weight
        outs = [ego]
        for w1, w2 in zip(self.w1, self.w2, strict=True):
            src = ego
            if self.training and self.node_dropout > 0:
                # node dropout: a dropped node sends no message in this pass (L diag(m) E / (1 - p))
                keep = torch.rand(ego.shape[0], 1, device=ego.device) >= self.node_dropout
                src = ego * keep / (1 - self.node_dropout)
            side = _spmm(self.adj, src)
            ego = F.leaky_relu(w1(side + ego) + w2(side * ego), negative_slope=0.2)
            ego = F.dropout(ego, self.message_dropout, self.training)
            outs.append(F.normalize(ego, p=2, dim=1))
        return torch.cat(outs, dim=1)


def _with_loss(net: _GraphNet, cfg: _GraphConfig) -> _GraphNet:
    net.loss_name, net.margin = cfg.loss, cfg.margin
    return net


@dataclass(frozen=True)
class _GraphConfig(TorchConfig):
    embedding_size: int = 64
    """Size of the ego (layer-0) embeddings."""
    reg: float = 1e-4
    """L2 penalty ``reg / 2 * (|e_u|^2 + |e_i|^2 + |e_j|^2)`` on the batch's layer-0 embeddings,
    averaged over the batch."""
    negative_sampling: Sampling = "uniform"
    """Negative-sampling distribution for the BPR triples."""
    loss: Literal["bpr", "hinge"] = "bpr"
    """The pairwise loss on the propagated embeddings: ``bpr`` (the papers') or ``hinge``."""
    margin: float = 1.0
    """The hinge loss's margin (``loss="hinge"`` only)."""
    batch_size: int = 2048
    learning_rate: float = 1e-3

    ALIASES: ClassVar[dict[str, str]] = {"sampling": "negative_sampling"}

    def validate(self) -> None:
        super().validate()
        self.check(self.embedding_size >= 1, "embedding_size", "must be >= 1")
        self.check(self.reg >= 0, "reg", "must be >= 0")
        self.check(self.loss in ("bpr", "hinge"), "loss", "must be 'bpr' or 'hinge'")
        self.check(self.margin > 0, "margin", "must be > 0")


@dataclass(frozen=True)
class LightGCNConfig(_GraphConfig):
    """Hyperparameters of :class:`LightGCN` (defaults: the paper's Gowalla setting)."""

    n_layers: int = 3
    """Propagation layers ``K``."""
    epochs: int = 1000

    def validate(self) -> None:
        super().validate()
        self.check(self.n_layers >= 0, "n_layers", "must be >= 0")


@dataclass(frozen=True)
class NGCFConfig(_GraphConfig):
    """Hyperparameters of :class:`NGCF` (defaults: the paper's Gowalla setting)."""

    layer_sizes: tuple[int, ...] = (64, 64, 64)
    """Output size of each propagation layer."""
    node_dropout: float = 0.1
    """Probability that a node sends no message in a training pass."""
    message_dropout: float = 0.1
    """Dropout on each layer's output embeddings."""
    reg: float = 1e-5
    epochs: int = 400
    batch_size: int = 1024
    learning_rate: float = 1e-4

    ALIASES: ClassVar[dict[str, str]] = {"sampling": "negative_sampling", "layers": "layer_sizes"}

    def validate(self) -> None:
        super().validate()
        self.check(len(self.layer_sizes) >= 1 and all(x >= 1 for x in self.layer_sizes), "layer_sizes",
                   "needs at least one layer, sizes >= 1")
        self.check(0 <= self.node_dropout < 1, "node_dropout", "must be in [0, 1)")
        self.check(0 <= self.message_dropout < 1, "message_dropout", "must be in [0, 1)")


class _GraphRecommender(TorchRecommender):
    task = "ranking"
    has_embeddings = True

    def _attach_graph(self, net: _GraphNet, device: torch.device | str) -> None:
        net.set_graph(sparse_tensor(normalized_adjacency(self.seen_), device))

    def _batches(self, data: Interactions, ctx: RunContext, net: RecNetwork) -> Any:
        cfg: Any = self.config
        self._attach_graph(net, ctx.device)  # type: ignore[arg-type]
        return self._pair_batches(data, ctx, "pairwise", cfg.batch_size, 1, cfg.negative_sampling)

    def _after_load(self) -> None:
        net: Any = self._require_net()
        self._attach_graph(net, self.device)

    def _after_fit(self, data: Interactions) -> None:
        net: Any = self._require_net()
        with torch.no_grad():
            net.final()


class LightGCN(_GraphRecommender):
    """LightGCN (He, Deng, Wang, Li, Zhang and Wang, "LightGCN: Simplifying and Powering Graph
    Convolution Network for Recommendation", SIGIR 2020).

    Propagation without transforms or non-linearities, ``E^(k+1) = A_hat E^(k)``; the final
    embedding is the layer mean ``e = 1/(K+1) sum_k E^(k)`` and the score ``y_ui = e_u . e_i``.
    Trained with BPR, ``mean -log sigmoid(y_ui - y_uj) + reg/2 (|e^0_u|^2 + |e^0_i|^2 + |e^0_j|^2)/B``,
    one sampled negative per observed pair, fresh every epoch.
    """

    name = "lightgcn"
    config_class = LightGCNConfig

    def _network(self) -> RecNetwork:
        cfg: LightGCNConfig = self.config  # type: ignore[assignment]
        return _with_loss(_LightGCNNet(len(self.users_), len(self.items_), cfg.embedding_size, cfg.n_layers,
                                       cfg.reg), cfg)


class NGCF(_GraphRecommender):
    """Neural graph collaborative filtering (Wang, He, Wang, Feng and Chua, SIGIR 2019).

    Layer ``l`` computes ``E^(l) = LeakyReLU((L + I) E^(l-1) W_1 + (L E^(l-1)) * E^(l-1) W_2)`` with
    ``L = D^-1/2 A D^-1/2``, message and node dropout; each layer's output is L2-normalised and
    the final embedding concatenates all layers, ``y_ui = e_u . e_i``. Trained with BPR plus an L2
    penalty on the batch's layer-0 embeddings.
    """

    name = "ngcf"
    config_class = NGCFConfig

    def _network(self) -> RecNetwork:
        cfg: NGCFConfig = self.config  # type: ignore[assignment]
        return _with_loss(_NGCFNet(len(self.users_), len(self.items_), cfg.embedding_size, tuple(cfg.layer_sizes),
                                   cfg.reg, cfg.node_dropout, cfg.message_dropout), cfg)

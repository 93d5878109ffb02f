"""GLocal-K: an item autoencoder with local (RBF-kernelised) weights and a global convolution kernel
(Han, Lim, Long, Burgstaller and Poon, CIKM 2021)."""

from __future__ import annotations

import itertools
import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import minimize

from recforge.config import FitOptions, ModelConfig
from recforge.data.interactions import Interactions
from recforge.errors import ConfigError
from recforge.models.base import Recommender
from recforge.models.neural.base import baseline_biases, partial_baseline

__all__ = ["GLocalK", "GLocalKConfig", "memory_estimate"]

log = logging.getLogger("recforge.models.glocal_k")
_GB = 1e9


def memory_estimate(n_users: int, n_items: int, hidden: int, layers: int) -> float:
    """Peak bytes of a full-batch GLocal-K fit (float32; the whole rating matrix is one input).

    About ten dense ``n_items x n_users`` matrices (ratings, mask, convolved ratings, the two
    reconstructions, their gradients) and, per hidden layer and pass, three ``n_items x hidden``
    activations (values, gradients, the kernelised weights' products), plus L-BFGS-B's float64
    history (10 pairs of parameter vectors).
    """
    n_params = n_users * hidden + max(layers - 1, 0) * hidden * hidden + hidden * n_users
    return 4.0 * (10 * n_items * n_users + 6 * layers * n_items * hidden) + 8.0 * 24 * n_params


@dataclass(frozen=True)
class GLocalKConfig(ModelConfig):
    """Hyperparameters of :class:`GLocalK` (defaults: the paper's ML-100K settings)."""

    hidden_size: int = 500
    """Units of each hidden layer (the paper's 500)."""
    layers: int = 2
    """Hidden layers of the autoencoder (the paper's 2), each followed by a sigmoid."""
    kernel_dim: int = 5
    """Dimension of the vectors ``u_i``, ``v_j`` whose distance gives the local kernel (the paper's 5)."""
    lambda_2: float = 20.0
    """L2 penalty ``lambda_2 / 2 * |W|^2`` on every layer's weight matrix, against half the sum of
    squared errors over the observed ratings (the paper's scale)."""
    lambda_s: float = 0.006
    """Sparsity penalty ``lambda_s / 2 * |K|^2`` on every layer's local kernel matrix ``K``."""
    gk_size: int = 3
    """Side of the global convolution kernel (the paper's 3 x 3)."""
    dot_scale: float = 1.0
    """Scale of the dot product that forms the global kernel (the paper's 1)."""
    pretrain_epochs: int = 500
    """The most pre-training epochs (local kernels only); each runs ``iterations`` L-BFGS-B steps."""
    finetune_epochs: int = 1000
    """The most fine-tuning epochs (global kernel and autoencoder together)."""
    iterations: int = 5
    """L-BFGS-B iterations per epoch (a fresh L-BFGS-B call each epoch, history of 10 pairs)."""
    pretrain_patience: int = 5
    """Stop pre-training after this many consecutive epochs whose training RMSE fell by less than
    ``pretrain_tol``."""
    finetune_patience: int = 10
    """The same for fine-tuning, with ``finetune_tol``."""
    pretrain_tol: float = 1e-4
    """Smallest training-RMSE decrease per epoch that counts as progress in pre-training."""
    finetune_tol: float = 1e-5
    """The same in fine-tuning."""
    max_memory: float = 4.0
    """Refuse to fit (one-line error stating the need) when the estimated peak memory, in GB, exceeds
    this: the model is dense in ``n_items x n_users`` (ML-100K: 0.33 GB estimated)."""

    def validate(self) -> None:
        self.check(self.hidden_size >= 1, "hidden_size", "must be >= 1")
        self.check(self.layers >= 1, "layers", "must be >= 1")
        self.check(self.kernel_dim >= 1, "kernel_dim", "must be >= 1")
        self.check(self.lambda_2 >= 0, "lambda_2", "must be >= 0")
        self.check(self.lambda_s >= 0, "lambda_s", "must be >= 0")
        self.check(self.gk_size >= 1 and self.gk_size % 2 == 1, "gk_size", "must be an odd number >= 1")
        self.check(self.dot_scale > 0, "dot_scale", "must be > 0")
        self.check(self.pretrain_epochs >= 0, "pretrain_epochs", "must be >= 0")
        self.check(self.finetune_epochs >= 0, "finetune_epochs", "must be >= 0")
        self.check(self.pretrain_epochs + self.finetune_epochs >= 1, "finetune_epochs",
                   "pretrain_epochs + finetune_epochs must be >= 1")
        self.check(self.iterations >= 1, "iterations", "must be >= 1")
        self.check(self.pretrain_patience >= 1, "pretrain_patience", "must be >= 1")
        self.check(self.finetune_patience >= 1, "finetune_patience", "must be >= 1")
        self.check(self.pretrain_tol >= 0, "pretrain_tol", "must be >= 0")
        self.check(self.finetune_tol >= 0, "finetune_tol", "must be >= 0")
        self.check(self.max_memory > 0, "max_memory", "must be > 0 (GB)")


def local_kernel(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``K_ij = max(0, 1 - |u_i - v_j|^2)``: the paper's finite-support RBF kernel between the
    input units' vectors ``u`` (``n_in x d``) and the output units' vectors ``v`` (``n_out x d``)."""
    d2 = (u * u).sum(1, keepdim=True) + (v * v).sum(1) - 2.0 * (u @ v.T)
    return torch.clamp(1.0 - d2, min=0.0)


class _Net:
    """The parameters as a list of tensors (per layer ``W, u, v, b``; then the conv weights)."""

    def __init__(self, n_in: int, cfg: GLocalKConfig, n_items: int, gen: torch.Generator) -> None:
        sizes = [n_in] + [cfg.hidden_size] * cfg.layers + [n_in]
        self.layers: list[list[torch.Tensor]] = []
        for a, b in itertools.pairwise(sizes):
            lim = float(np.sqrt(6.0 / (a + b)))  # Glorot uniform, as the paper's TF variables
            w = (torch.rand(a, b, generator=gen) * 2 - 1) * lim
            u = _trunc_normal((a, cfg.kernel_dim), 1e-3, gen)
            v = _trunc_normal((b, cfg.kernel_dim), 1e-3, gen)
            self.layers.append([w, u, v, torch.zeros(b)])
        self.conv = _trunc_normal((n_items, cfg.gk_size * cfg.gk_size), 0.1, gen)

    def tensors(self, with_conv: bool) -> list[torch.Tensor]:
        out = [t for layer in self.layers for t in layer]
        return out + [self.conv] if with_conv else out


def _trunc_normal(shape: tuple[int, ...], std: float, gen: torch.Generator) -> torch.Tensor:
    x = torch.randn(*shape, generator=gen)
    while True:  # resample beyond two standard deviations, as TF's truncated_normal
        bad = x.abs() > 2
        if not bad.any():
            return x * std
        x[bad] = torch.randn(int(bad.sum()), generator=gen)


def _encode(x: torch.Tensor, layers: list[list[torch.Tensor]],
            cfg: GLocalKConfig) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""The hidden layers on rows ``x`` (sparse or dense): ``(h, W_out \odot K_out, b_out, penalty)``,
    the last hidden layer, the output layer's kernelised weights and bias, and every layer's penalty."""
    penalty = x.new_zeros(()) if not x.is_sparse else torch.zeros(())
    effective = []
    for w, u, v, _ in layers:
        k = local_kernel(u, v)
        penalty = penalty + 0.5 * cfg.lambda_s * (k * k).sum() + 0.5 * cfg.lambda_2 * (w * w).sum()
        effective.append(w * k)
    for weff, (_, _, _, b) in zip(effective[:-1], layers[:-1], strict=True):
        x = torch.sigmoid((torch.sparse.mm(x, weff) if x.is_sparse else x @ weff) + b)
    return x, effective[-1], layers[-1][3], penalty


def _decode_pairs(h: torch.Tensor, weff: torch.Tensor, b: torch.Tensor, rows: torch.Tensor,
                  cols: torch.Tensor, step: int = 1 << 15) -> torch.Tensor:
    """The linear output layer ``h W + b`` at the ``(row, col)`` pairs only (the observed ratings):
    O(pairs x hidden) instead of the dense O(rows x cols x hidden)."""
    wt = weff.T
    parts = [(h[rows[s : s + step]] * wt[cols[s : s + step]]).sum(1) + b[cols[s : s + step]]
             for s in range(0, len(rows), step)]
    return torch.cat(parts) if parts else h.new_zeros(0)


def _global_conv(r: torch.Tensor, pooled: torch.Tensor, conv: torch.Tensor, cfg: GLocalKConfig) -> torch.Tensor:
    """``relu(R * G)``: the rating matrix convolved with the global kernel ``G``, formed as the
    item-wise mean of the reconstruction (``pooled``, one value per item) times ``conv`` (``n_items x k^2``)."""
    g = (pooled @ conv * cfg.dot_scale).reshape(1, 1, cfg.gk_size, cfg.gk_size)
    return F.relu(F.conv2d(r[None, None], g, padding=cfg.gk_size // 2))[0, 0]


class GLocalK(Recommender):
    r"""GLocal-K (Han, Lim, Long, Burgstaller and Poon, "GLocal-K: Global and Local Kernels for
    Recommender Systems", CIKM 2021): an item-based autoencoder whose weights are masked by a
    learned local kernel, fine-tuned on the rating matrix convolved with a learned global kernel.

    The input is the rating matrix :math:`R` (items x users, 0 where unobserved, ratings in
    units of ``max|r| / 5`` so that the paper's penalties mean the same on any scale); each item's
    row is one example, as in I-AutoRec. A layer maps :math:`x` to
    :math:`\sigma(x\,(W \odot K) + b)` with the **local kernel**
    :math:`K_{ij} = \max(0, 1 - \lVert u_i - v_j \rVert^2)` between learned
    ``kernel_dim``-vectors of its input and output units (a 2-d RBF-like kernel of finite support
    that sparsifies :math:`W`); ``layers`` sigmoid layers of ``hidden_size`` units and a linear
    output layer of ``n_users`` units make the autoencoder :math:`f`.

    1. **Pre-training** minimises
       :math:`\tfrac12 \lVert M \odot (R - f(R)) \rVert^2 + \sum_\ell \tfrac{\lambda_2}{2}\lVert W_\ell\rVert^2
       + \tfrac{\lambda_s}{2}\lVert K_\ell\rVert^2` (:math:`M` the mask of observed ratings).
    2. **Fine-tuning**: the **global kernel** :math:`G \in \mathbb{R}^{k \times k}` is the
       item-wise average pooling of the reconstruction, :math:`p_i = \operatorname{mean}_u f(R)_{iu}`,
       times a learned matrix :math:`C` (``n_items x k^2``) and ``dot_scale``, reshaped; the input
       becomes :math:`\hat R = \mathrm{ReLU}(R * G)` (a 2-d convolution over the rating matrix in
       index order, 'same' padding), and the same loss with :math:`f(\hat R)` in place of
       :math:`f(R)` is minimised over :math:`W, u, v, b` and :math:`C` together.

    Both stages are full-batch L-BFGS-B, ``iterations`` steps per epoch, and stop when the
    training RMSE improved by less than the tolerance for ``patience`` consecutive epochs (the
    paper's rule; no held-out data is used). The prediction for ``(u, i)`` is
    :math:`f(\hat R)_{iu}`; the fitted state is that reconstruction (``prediction_``, users x items),
    since the global convolution makes the model transductive. Pairs with an unknown side get the
    baseline :math:`\mu + b_u + b_i` of the known side.

    Memory: dense in ``n_items x n_users`` (see :func:`memory_estimate`; ``max_memory`` guards it):
    a model for ML-100K-sized rating data (thousands of users and items), as in the paper.
    """

    name = "glocal-k"
    task = "rating"
    config_class = GLocalKConfig

    def _fit(self, data: Interactions, options: FitOptions) -> None:
        cfg: GLocalKConfig = self.config  # type: ignore[assignment]
        n_u, n_i = data.n_users, data.n_items
        need = memory_estimate(n_u, n_i, cfg.hidden_size, cfg.layers)
        msg = f"GLocal-K: {n_i:,} items x {n_u:,} users, dense full-batch fit: needs about {need / _GB:.2f} GB"
        if need > cfg.max_memory * _GB:
            raise ConfigError(f"{msg} (max_memory = {cfg.max_memory:g} GB); raise max_memory if the machine has it")
        log.info(msg)
        if options.verbose:
            print(msg, flush=True)
        self.global_mean_, self.user_bias_, self.item_bias_ = baseline_biases(data)
        unit = float(max(float(np.abs(data.values).max()), 1e-6) / 5.0)
        threads_before = torch.get_num_threads()
        if options.threads:
            torch.set_num_threads(int(options.threads))
        try:
            pred = self._train(data, cfg, unit, options)
        finally:
            torch.set_num_threads(threads_before)
        self.prediction_ = np.ascontiguousarray(pred.T * unit, dtype=np.float32)

    def _train(self, data: Interactions, cfg: GLocalKConfig, unit: float, options: FitOptions) -> np.ndarray:
        n_u, n_i = data.n_users, data.n_items
        rows = torch.from_numpy(data.item_idx.astype(np.int64))
        cols = torch.from_numpy(data.user_idx.astype(np.int64))
        vals = torch.from_numpy((data.values / unit).astype(np.float32))
        sparse = torch.sparse_coo_tensor(torch.stack([rows, cols]), vals, (n_i, n_u),
                                         check_invariants=False).coalesce()
        dense = sparse.to_dense()  # duplicates (none after Interactions) would be summed, as in coalesce
        gen = torch.Generator().manual_seed(0 if options.seed is None else int(options.seed))
        net = _Net(n_u, cfg, n_i, gen)

        def pooled_reconstruction() -> torch.Tensor:
            # item-wise mean over users of f(R): the output layer is linear, so the mean of h W + b
            # over the columns is h mean_cols(W) + mean(b), without forming f(R)
            h, weff, b, _ = _encode(sparse, net.layers, cfg)
            return h @ weff.mean(1) + b.mean()

        def pretrain_input() -> torch.Tensor:
            return sparse

        def finetune_input() -> torch.Tensor:
            return _global_conv(dense, pooled_reconstruction(), net.conv, cfg)

        def loss_fn(make_input: Any) -> Any:
            def fn() -> tuple[torch.Tensor, torch.Tensor]:
                h, weff, b, pen = _encode(make_input(), net.layers, cfg)
                out = _decode_pairs(h, weff, b, rows, cols)
                return 0.5 * ((vals - out) ** 2).sum() + pen, out
            return fn

        lo, hi = data.rating_scale()
        truth = vals * unit

        def rmse(out: torch.Tensor) -> float:
            return float(torch.sqrt(((torch.clamp(out * unit, lo, hi) - truth) ** 2).mean()))

        self.history_: dict[str, list[float]] = {"pretrain_rmse": [], "finetune_rmse": []}
        make_input: Any = pretrain_input
        for stage, make, params, epochs, patience, tol in (
                ("pretrain", pretrain_input, net.tensors(False), cfg.pretrain_epochs, cfg.pretrain_patience,
                 cfg.pretrain_tol),
                ("finetune", finetune_input, net.tensors(True), cfg.finetune_epochs, cfg.finetune_patience,
                 cfg.finetune_tol)):
            last, stalled, t0 = np.inf, 0, time.perf_counter()
            fn = loss_fn(make)
            for epoch in range(epochs):
                make_input = make
                _lbfgsb(fn, params, cfg.iterations)
                with torch.no_grad():
                    err = rmse(fn()[1])
                self.history_[f"{stage}_rmse"].append(err)
                if options.epoch_callback is not None:  # the model as it stands, e.g. to score held-out data
                    with torch.no_grad():
                        h, weff, b, _ = _encode(make(), net.layers, cfg)
                        self.prediction_ = np.ascontiguousarray((h @ weff + b).numpy().T * unit, dtype=np.float32)
                    options.epoch_callback(len(self.history_["pretrain_rmse"]) + len(self.history_["finetune_rmse"]), self)
                if options.verbose:
                    print(f"GLocal-K {stage} epoch {epoch + 1}: train RMSE {err:.4f} "
                          f"({time.perf_counter() - t0:.0f} s)", flush=True)
                stalled = stalled + 1 if last - err < tol else 0
                last = err
                if stalled >= patience:
                    break
        with torch.no_grad():  # the last stage's full reconstruction (pre-training's when finetune_epochs = 0)
            h, weff, b, _ = _encode(make_input(), net.layers, cfg)
            return (h @ weff + b).numpy()

    def _score_users(self, u: np.ndarray) -> np.ndarray:
        return self.prediction_[u].astype(np.float64)

    def _score_pairs(self, u: np.ndarray, i: np.ndarray) -> np.ndarray:
        return self.prediction_[u, i].astype(np.float64)

    def _score_partial(self, u: np.ndarray, i: np.ndarray) -> np.ndarray:
        return partial_baseline(self, u, i)


def _lbfgsb(loss_fn: Any, params: list[torch.Tensor], iterations: int) -> None:
    """``iterations`` steps of SciPy's L-BFGS-B (history 10) on ``loss_fn()[0]`` over ``params``,
    written back in place."""
    shapes = [p.shape for p in params]
    sizes = [p.numel() for p in params]

    def assign(x: np.ndarray) -> None:
        s = 0
        for p, shape, n in zip(params, shapes, sizes, strict=True):
            p.data = torch.from_numpy(x[s : s + n].astype(np.float32)).reshape(shape)
            s += n

    def fun(x: np.ndarray) -> tuple[float, np.ndarray]:
        assign(x)
        for p in params:
            p.requires_grad_(True)
        loss = loss_fn()[0]
        grads = torch.autograd.grad(loss, params)
        for p in params:
            p.requires_grad_(False)
        return float(loss.detach()), np.concatenate([g.reshape(-1).numpy() for g in grads]).astype(np.float64)

    x0 = np.concatenate([p.detach().reshape(-1).numpy() for p in params]).astype(np.float64)
    res = minimize(fun, x0, jac=True, method="L-BFGS-B", options={"maxiter": iterations, "maxcor": 10})
    assign(res.x)

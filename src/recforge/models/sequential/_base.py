"""What the sequence-aware recommenders share: time-ordered histories, training windows, serving.

A sequence model scores the next item from the user's latest items. ``fit`` orders each user's
training interactions by time (ties: by item index, as :func:`recforge.splits.leave_one_out`
orders them) and keeps the latest ``max_len`` items as the user's history (``recent_``, padded on
the left with the padding index ``n_items``), which ``recommend``/``score`` read. For a live service
:meth:`~recforge.models.base.Recommender.recommend_for_history` scores any list of recent items (raw ids),
e.g. the training history plus the clicks of the last minutes, without refitting.
"""

from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F

from recforge.data.interactions import Interactions
from recforge.data.sampling import sample_unseen
from recforge.models.base import Recommender
from recforge.models.neural.base import TorchConfig, TorchRecommender
from recforge.training.loop import RunContext
from recforge.training.module import RecNetwork

__all__ = ["SequentialConfig", "SequentialNetwork", "SequentialRecommender", "position_windows", "user_sequences"]


@dataclass(frozen=True)
class SequentialConfig(TorchConfig):
    """Hyperparameters every sequence model has."""

    embedding_size: int = 64
    """Dimension of the item embeddings (and of the hidden states)."""
    max_len: int = 50
    """Most recent items the model reads (the window length L)."""
    dropout: float = 0.2
    """Dropout on embeddings and hidden layers while training."""
    loss: Literal["ce", "bce"] = "ce"
    """``ce``: softmax cross-entropy of the next item over all items; ``bce``: binary cross-entropy
    of the next item against ``negatives`` uniformly sampled items (the papers' set-up)."""
    negatives: int = 1
    """Sampled negatives per target with ``loss="bce"`` (redrawn every epoch)."""
    reg: float = 0.0
    """L2 weight decay of the optimiser on every parameter."""
    epochs: int = 30
    batch_size: int = 256
    learning_rate: float = 1e-3

    def validate(self) -> None:
        super().validate()
        self.check(self.embedding_size >= 1, "embedding_size", "must be >= 1")
        self.check(self.max_len >= 1, "max_len", "must be >= 1")
        self.check(0.0 <= self.dropout < 1.0, "dropout", "must be in [0, 1)")
        self.check(self.loss in ("ce", "bce"), "loss", "must be 'ce' or 'bce'")
        self.check(self.negatives >= 1, "negatives", "must be >= 1")
        self.check(self.reg >= 0, "reg", "must be >= 0")


def user_sequences(data: Interactions) -> tuple[np.ndarray, np.ndarray]:
    """Each user's items in time order, as CSR-like ``(indptr, items)`` over user indices.

    Rows are ordered by timestamp, ties by item index (without timestamps: by row order).
    """
    t = data.timestamps if data.timestamps is not None else np.arange(len(data))
    keys = (data.item_idx, t, data.user_idx) if data.timestamps is not None else (t, data.user_idx)
    order = np.lexsort(keys)
    items = data.item_idx[order].astype(np.int64)
    counts = np.bincount(data.user_idx, minlength=data.n_users)
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return indptr, items


def latest(indptr: np.ndarray, items: np.ndarray, length: int, pad: int) -> np.ndarray:
    """``(n_users, length)``: each user's latest ``length`` items, right-aligned, left-padded with ``pad``."""
    n = len(indptr) - 1
    out = np.full((n, length), pad, dtype=np.int64)
    sizes = np.minimum(np.diff(indptr), length)
    rows = np.repeat(np.arange(n), sizes)
    # position j (0-based from the left) of the k-th latest item is length - k
    back = np.arange(sizes.sum()) - np.repeat(np.cumsum(sizes) - sizes, sizes)  # 0..size-1
    src = np.repeat(indptr[1:] - sizes, sizes) + back
    out[rows, length - np.repeat(sizes, sizes) + back] = items[src]
    return out


def position_windows(indptr: np.ndarray, items: np.ndarray, length: int, pad: int) -> tuple[np.ndarray, np.ndarray]:
    """Training windows with a next-item target at every position (SASRec / GRU4Rec set-up).

    Each user's sequence ``s_1..s_n`` gives inputs ``s_1..s_{n-1}`` and targets ``s_2..s_n``, cut
    from the end into chunks of ``length`` positions, right-aligned. Returns ``(inputs, targets)``,
    both ``(n_windows, length)``; padded positions hold ``pad`` in inputs and ``-1`` in targets.
    """
    ins: list[np.ndarray] = []
    outs: list[np.ndarray] = []
    sizes = np.diff(indptr)
    for u in np.flatnonzero(sizes >= 2):
        seq = items[indptr[u] : indptr[u + 1]]
        x, y = seq[:-1], seq[1:]
        n_win = -(-len(x) // length)
        padded = n_win * length - len(x)
        xx = np.concatenate([np.full(padded, pad), x]).reshape(n_win, length)
        yy = np.concatenate([np.full(padded, -1), y]).reshape(n_win, length)
        ins.append(xx)
        outs.append(yy)
    if not ins:
        return np.empty((0, length), np.int64), np.empty((0, length), np.int64)
    return np.concatenate(ins).astype(np.int64), np.concatenate(outs).astype(np.int64)


class SequentialNetwork(RecNetwork):
    """A network that scores all items from a window of recent items (``(B, L)``, padded with ``pad``).

    Subclasses set ``item`` (an ``nn.Embedding`` of ``n_items + 1`` rows, the last the padding) and
    implement :meth:`states`, which gives :meth:`score_sequences` and the position-wise
    :meth:`loss`; a network that reads windows differently (Caser) overrides those two. ``history`` (a non-persistent buffer set
    by the model) holds every training user's latest items so the shared loop's validators can
    call :meth:`score_users`.
    """

    def __init__(self, n_items: int, n_users: int, max_len: int) -> None:
        super().__init__()
        self.n_items = n_items
        self.n_users = n_users
        self.pad = n_items
        self.max_len = max_len
        self.register_buffer("history", torch.full((n_users, max_len), n_items, dtype=torch.long), persistent=False)

    def set_history(self, history: np.ndarray) -> None:
        self.history = torch.as_tensor(history, dtype=torch.long, device=self.history.device)

    def states(self, seqs: torch.Tensor) -> torch.Tensor:
        """Hidden states ``(B, L, d)`` at every position of the windows (GRU4Rec, SASRec)."""
        raise NotImplementedError

    def score_sequences(self, seqs: torch.Tensor, users: torch.Tensor | None = None) -> torch.Tensor:
        """Scores ``(B, n_items)`` of the next item after each window.

        Default: the last position's state against the item embeddings ``self.item`` (tied input
        and output embeddings, the padding row left out).
        """
        return self.states(seqs)[:, -1] @ self.item.weight[: self.n_items].T

    def loss(self, batch: Any) -> torch.Tensor:
        """Next-item loss at every non-padded position of ``(inputs, targets[, negatives])`` windows
        (the default for networks with :meth:`states` and tied item embeddings)."""
        seqs, targets = batch[0], batch[1]
        negatives = batch[2] if len(batch) > 2 else None
        h = self.states(seqs)
        mask = targets >= 0
        return self.next_item_loss(h[mask], targets[mask], None if negatives is None else negatives[mask],
                                   self.item.weight)

    def score_users(self, users: torch.Tensor) -> torch.Tensor:
        return self.score_sequences(self.history[users], users)

    def score_pairs(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self.score_users(users).gather(1, items.unsqueeze(1)).squeeze(1)

    def next_item_loss(self, states: torch.Tensor, targets: torch.Tensor, negatives: torch.Tensor | None,
                       item_weight: torch.Tensor, item_bias: torch.Tensor | None = None) -> torch.Tensor:
        """Loss of hidden ``states`` ``(N, d)`` predicting ``targets`` ``(N,)`` against all items (CE)
        or against sampled ``negatives`` ``(N, m)`` (BCE)."""
        if negatives is None:
            logits = states @ item_weight[: self.n_items].T
            if item_bias is not None:
                logits = logits + item_bias
            return F.cross_entropy(logits, targets)
        pos = (states * item_weight[targets]).sum(-1)
        neg = torch.einsum("nd,nmd->nm", states, item_weight[negatives])
        if item_bias is not None:
            pos = pos + item_bias[targets]
            neg = neg + item_bias[negatives]
        return F.softplus(-pos).mean() + F.softplus(neg).sum(-1).mean()


class SequentialRecommender(TorchRecommender):
    """Base of the sequence models (task ``"sequence"``): histories, windows, serving by history."""

    task = "sequence"
    config_class: ClassVar[type] = SequentialConfig
    scores_history = True
    weight_decay_field = "reg"
    uses_user: ClassVar[bool] = False

    # ------------------------------------------------------------------ setup and batches
    def _history_length(self) -> int:
        return int(self.config.max_len)  # type: ignore[attr-defined]

    def _setup(self, data: Interactions, ctx: RunContext) -> None:
        indptr, items = user_sequences(data)
        self._seq = (indptr, items)
        self.recent_ = latest(indptr, items, self._history_length(), len(self.items_))

    def _after_fit(self, data: Interactions) -> None:
        self._seq = None

    def _after_load(self) -> None:
        self._net.set_history(self.recent_)  # type: ignore[union-attr]

    def _network(self) -> RecNetwork:
        net = self._build_network()
        net.set_history(self.recent_)
        return net

    def _build_network(self) -> SequentialNetwork:
        raise NotImplementedError

    def _negatives(self, ctx: RunContext, shape: tuple[int, ...]) -> torch.Tensor | None:
        cfg: Any = self.config
        if cfg.loss != "bce":
            return None
        # uniform over every item (the target is not excluded), drawn by the one sampler
        n = int(np.prod(shape))
        neg = sample_unseen(None, np.zeros(n, np.int64), cfg.negatives, ctx.rng, n_items=len(self.items_))
        return torch.from_numpy(neg.reshape(*shape, cfg.negatives))

    def _position_batches(self, data: Interactions, ctx: RunContext) -> Any:
        """Batches of ``(inputs, targets[, negatives])`` windows with a target at every position."""
        from recforge.training.batches import TensorBatcher

        cfg: Any = self.config
        x, y = position_windows(*self._seq, cfg.max_len, len(self.items_))  # type: ignore[misc]
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)
        common = {"batch_size": cfg.batch_size, "shuffle": True, "generator": ctx.generator, "device": ctx.device}
        if cfg.loss == "ce":
            return TensorBatcher(xt, yt, **common)

        def source(epoch: int) -> tuple[torch.Tensor, ...]:
            return xt, yt, self._negatives(ctx, tuple(y.shape))  # type: ignore[return-value]

        return TensorBatcher(source=source, **common)

    # ------------------------------------------------------------------ scoring
    def _score_pairs(self, u: np.ndarray, i: np.ndarray) -> np.ndarray:
        # gather from whole rows: a sequence network scores all items of a window at once
        return Recommender._score_pairs(self, u, i)

    def _pair_width(self) -> int:
        return int(self.config.embedding_size)  # type: ignore[attr-defined]

    def _score_history(self, item_idx: np.ndarray, values: np.ndarray | None,
                       context: Mapping[str, Any]) -> np.ndarray:
        # the real-time path: the latest max_len known items as given (oldest first), right-aligned
        # in one window; the user (Caser) when known, else the average user
        net = self._require_net()
        n_items = len(self.items_)
        length = self._history_length()
        window = np.full((1, length), n_items, dtype=np.int64)
        tail = item_idx[-length:]
        window[0, length - len(tail):] = tail
        u = int(context.get("user", -1))
        dev = self.device
        with torch.no_grad():
            users = torch.tensor([u], device=dev) if self.uses_user and u >= 0 else None
            scores = net.score_sequences(torch.as_tensor(window, device=dev), users)  # type: ignore[attr-defined]
        return scores.double().cpu().numpy()[0]

"""What the sequence-aware recommenders share: time-ordered histories, training windows, serving.

A sequence model scores the next item from the user's latest items. ``fit`` orders each user's
training interactions by time (ties: by item index, as :func:`recforge.splits.leave_one_out`
orders them) and keeps the latest ``max_len`` items as the user's history (``recent_``, padded on
the left with the padding index ``n_items``), which ``recommend``/``score`` read. For a live service
:meth:`SequentialRecommender.recommend_for_history` scores any list of recent items (raw ids),
e.g. the training history plus the clicks of the last minutes, without refitting.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F

from recforge.data.interactions import Interactions
from recforge.data.sampling import sample_unseen
from recforge.errors import ConfigError
from recforge.models.base import Recommender
from recforge.models.neural._base import TorchConfig, TorchRecommender
from recforge.topk import topk_rows
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

    Subclasses implement :meth:`encode` (the window's final state, ``(B, d)``, and optionally the
    states at every position) and :meth:`item_logits`. ``history`` (a non-persistent buffer set
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

    def score_sequences(self, seqs: torch.Tensor, users: torch.Tensor | None = None) -> torch.Tensor:
        """Scores ``(B, n_items)`` of the next item after each window."""
        raise NotImplementedError

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

    def recommend_for_history(
        self,
        item_ids: Any,
        k: int = 10,
        *,
        exclude_seen: bool = True,
        candidates: Any = None,
        user: Any = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` next items after the recent items ``item_ids`` (raw ids, oldest first).

        This is the real-time path: the history is read as given (unknown item ids are skipped, the
        latest ``max_len`` known ones are used), so a service answers right after new clicks
        without refitting.

        Args:
            item_ids: The user's recent items, oldest first.
            k: List length.
            exclude_seen: Leave out the items of ``item_ids``.
            candidates: Optional raw item ids to choose from.
            user: Optional raw user id, for models with a user embedding (Caser); unknown or None
                uses the average user.

        Returns:
            ``(item_ids, scores)`` best first; with no known item in the history the most popular
            training items are returned with NaN scores. Rows shorter than ``k`` are padded with
            ``-1`` (or ``""``) and NaN.
        """
        net = self._require_net()
        if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k <= 0:
            raise ConfigError(f"k must be a positive integer, got {k!r}")
        raw = np.atleast_1d(np.asarray(item_ids, dtype=object if np.ndim(item_ids) == 0 else None))
        idx = self.items_.index(raw) if len(raw) else np.empty(0, np.int64)
        idx = idx[idx >= 0]
        idx = idx[self.item_known_[idx]]
        n_items = len(self.items_)
        banned = ~self.item_known_
        if candidates is not None:
            ci = self.items_.index(candidates)
            allowed = np.zeros(n_items, bool)
            allowed[ci[ci >= 0]] = True
            banned = banned | ~allowed
        if exclude_seen and len(idx):
            banned = banned.copy()
            banned[idx] = True
        out_idx = np.full(k, -1, dtype=np.int64)
        out_sc = np.full(k, np.nan)
        if len(idx) == 0:
            pop = self._popularity_order()
            pop = pop[~banned[pop]][:k]
            out_idx[: len(pop)] = pop
            return self._ids_with_padding(out_idx[None])[0], out_sc
        length = self._history_length()
        window = np.full((1, length), n_items, dtype=np.int64)
        tail = idx[-length:]
        window[0, length - len(tail):] = tail
        u = None
        if user is not None and self.uses_user:
            ui = int(self.users_.index(np.asarray([user], dtype=object))[0])
            u = ui if ui >= 0 and self.user_known_[ui] else None
        dev = self.device
        with torch.no_grad():
            users = None if u is None else torch.tensor([u], device=dev)
            scores = net.score_sequences(torch.as_tensor(window, device=dev), users).double().cpu().numpy()  # type: ignore[attr-defined]
        scores[:, banned] = -np.inf
        top, sc = topk_rows(scores, min(k, n_items))
        top, sc = top[0], sc[0].astype(np.float64)
        ok = np.isfinite(sc)
        out_idx[: len(top)] = np.where(ok, top, -1)
        out_sc[: len(top)] = np.where(ok, sc, np.nan)
        return self._ids_with_padding(out_idx[None])[0], out_sc

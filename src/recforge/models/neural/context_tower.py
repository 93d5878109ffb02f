"""Context-aware two-tower: static user and item embeddings plus a user tower over the recent history.

The user's vector is their static embedding corrected by what they just did: the last ``n`` items,
the kind of each action (click, view, like, rating), its value and the time since it. The item's
vector is its static embedding (plus its side features). Static tables may start from a fitted
matrix-factorisation model (``init_from="ials"``, a saved model's path, or
:meth:`TwoTowerContext.init_with` a fitted model object).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Self

import numpy as np
import torch
from torch import nn

from recforge.config import FitOptions
from recforge.data.interactions import Interactions
from recforge.errors import ConfigError
from recforge.models.base import Recommender
from recforge.models.neural import losses
from recforge.models.neural.base import TorchConfig, TorchRecommender
from recforge.models.neural.two_tower import _mlp, set_side_features
from recforge.training.batches import TensorBatcher
from recforge.training.loop import RunContext
from recforge.training.module import RecNetwork

__all__ = ["ACTION_KINDS", "CONTEXT_FEATURES", "TwoTowerContext", "TwoTowerContextConfig", "context_rows"]

#: Action kinds the context knows; code 0 is a generic interaction (an event without a known kind).
#: The service's event types are the others. Training rows are ``rating`` actions on explicit
#: data and ``click`` actions on implicit data.
ACTION_KINDS = ("interaction", "click", "view", "like", "rating")
#: What each context slot may carry besides its item.
CONTEXT_FEATURES = ("kind", "value", "time")
_GAP_SCALE = 10.0  # log1p(hours) / 10: a day ~0.32, a year ~0.91
_GAP_CAP_HOURS = 24.0 * 365 * 10


@dataclass(frozen=True)
class TwoTowerContextConfig(TorchConfig):
    """Hyperparameters of :class:`TwoTowerContext`."""

    embedding_size: int = 64
    """Size of the static user and item embeddings (with ``init_from``: the source model's size)."""
    context_length: int = 10
    """The last ``n`` actions the user tower reads (0: no context, the static embeddings alone)."""
    context_features: tuple[str, ...] = CONTEXT_FEATURES
    """What each context slot carries besides its item: ``kind`` (action type), ``value`` (the
    rating, standardised; other kinds count as average) and ``time`` (log hours since the action)."""
    hidden: tuple[int, ...] = (128,)
    """Hidden layer sizes of the user tower's MLP (empty: one linear map)."""
    head: Literal["sigmoid", "linear"] = "sigmoid"
    """``sigmoid``: ``P(click) = sigmoid(<u, v> + b_i)``, binary cross-entropy of observed rows
    (1) against ``negatives`` sampled unseen items (0); ``linear``: ``<u, v> + b_i`` is the utility
    (the row's value, e.g. a rating or a composite utility; sampled items have utility 0), mean
    squared error."""
    negatives: int = 4
    """Sampled unseen items per observed row, redrawn every epoch (they share the row's context)."""
    init_from: str = ""
    """Start the static tables from a fitted model's embeddings: a registered model name (fitted
    first on the same training data, e.g. ``"ials"``) or the path of a saved model; empty: random."""
    freeze_static: bool = False
    """Keep the static user and item embeddings fixed (train the context tower and biases only)."""
    use_features: bool = True
    """Feed the data's user/item side features (numeric and low-cardinality categorical columns)."""
    max_categories: int = 50
    """Categorical feature columns with more distinct values than this are left out."""
    dropout: float = 0.0
    """Dropout inside the user tower."""
    static_dropout: float = 0.5
    """Share of training rows whose static user vector is dropped (zeroed), so the tower learns to
    read the context instead of memorising each user's items (without it, a user embedding alone
    fits the training rows and the context is ignored)."""
    reg: float = 0.0
    """Weight decay (L2 on all parameters, applied by the optimiser)."""
    epochs: int = 20
    batch_size: int = 1024
    learning_rate: float = 1e-3

    def validate(self) -> None:
        super().validate()
        self.check(self.embedding_size >= 1, "embedding_size", "must be >= 1")
        self.check(self.context_length >= 0, "context_length", "must be >= 0")
        bad = sorted(set(self.context_features) - set(CONTEXT_FEATURES))
        self.check(not bad, "context_features", f"unknown {bad}; choose from {', '.join(CONTEXT_FEATURES)}")
        self.check(all(h >= 1 for h in self.hidden), "hidden", "layer sizes must be >= 1")
        self.check(self.head in ("sigmoid", "linear"), "head", "must be 'sigmoid' or 'linear'")
        self.check(self.negatives >= 0, "negatives", "must be >= 0")
        self.check(self.head == "linear" or self.negatives >= 1, "negatives",
                   "the sigmoid head needs >= 1 (it has no other negatives)")
        self.check(self.max_categories >= 1, "max_categories", "must be >= 1")
        self.check(0 <= self.dropout < 1, "dropout", "must be in [0, 1)")
        self.check(0 <= self.static_dropout <= 1, "static_dropout", "must be in [0, 1]")
        self.check(self.reg >= 0, "reg", "must be >= 0")


def context_rows(data: Interactions, length: int) -> tuple[np.ndarray, np.ndarray]:
    """Row numbers of each training row's context and of each user's latest context.

    Returns ``(per_row, per_user)``: ``(n_rows, length)`` the rows of the same user just before
    each row, and ``(n_users, length)`` each user's last ``length`` rows; oldest first, left-padded
    with ``-1`` (order: timestamps, then rows, as :func:`~recforge.models.neural.two_tower.history_windows`).
    """
    n = len(data)
    key = data.timestamps if data.timestamps is not None else np.arange(n)
    order = np.lexsort((np.arange(n), key, data.user_idx))
    su = data.user_idx[order]
    starts = np.searchsorted(su, su, side="left")
    offsets = np.arange(-length, 0)
    pos = np.arange(n)[:, None] + offsets[None, :]
    ok = pos >= starts[:, None]
    sorted_rows = np.full((n, length), -1, np.int64)
    sorted_rows[ok] = order[pos[ok]]
    per_row = np.empty_like(sorted_rows)
    per_row[order] = sorted_rows
    counts = np.bincount(data.user_idx, minlength=data.n_users)
    ends = np.cumsum(counts)
    upos = ends[:, None] + offsets[None, :]
    uok = upos >= (ends - counts)[:, None]
    per_user = np.full((data.n_users, length), -1, np.int64)
    per_user[uok] = order[upos[uok]]
    return per_row, per_user


def _gap_feature(hours: np.ndarray) -> np.ndarray:
    """Time since an action as the model reads it: ``log1p(hours) / 10``, hours clipped to [0, 10 years]."""
    h = np.clip(np.nan_to_num(np.asarray(hours, np.float64), nan=0.0), 0.0, _GAP_CAP_HOURS)
    return (np.log1p(h) / _GAP_SCALE).astype(np.float32)


class _ContextTowerNet(RecNetwork):
    def __init__(self, n_users: int, n_items: int, dim: int, cfg: TwoTowerContextConfig, user_feats: torch.Tensor,
                 item_feats: torch.Tensor, user_context: tuple[torch.Tensor, ...]) -> None:
        super().__init__()
        self.n_items = n_items
        self.length = cfg.context_length
        self.head = cfg.head
        self.static_dropout = cfg.static_dropout
        self.feats = frozenset(cfg.context_features)
        self.user = nn.Embedding(n_users, dim)
        self.item = nn.Embedding(n_items + 1, dim, padding_idx=n_items)
        self.item_bias = nn.Embedding(n_items + 1, 1, padding_idx=n_items)
        for emb in (self.user, self.item):
            nn.init.normal_(emb.weight, std=0.05)
        nn.init.zeros_(self.item_bias.weight)
        with torch.no_grad():
            self.item.weight[n_items].zero_()
        self.user_feat = nn.Linear(user_feats.shape[1], dim, bias=False) if user_feats.shape[1] else None
        self.item_feat = nn.Linear(item_feats.shape[1], dim, bias=False) if item_feats.shape[1] else None
        self.register_buffer("user_feats", user_feats, persistent=False)
        self.register_buffer("item_feats", item_feats, persistent=False)
        if self.length:
            # per slot: item embedding + kind embedding, weighted by attention on (kind, value, time)
            self.kind = nn.Embedding(len(ACTION_KINDS), dim)
            self.kind_attn = nn.Embedding(len(ACTION_KINDS), 1)
            nn.init.zeros_(self.kind.weight)
            nn.init.zeros_(self.kind_attn.weight)
            self.attn = nn.Linear(2, 1)  # (value, time) -> attention logit
            nn.init.zeros_(self.attn.weight)
            nn.init.zeros_(self.attn.bias)
            self.tower = _mlp(2 * dim + user_feats.shape[1] + 2, tuple(cfg.hidden), dim, cfg.dropout)
            last = self.tower[-1]
            nn.init.zeros_(last.weight)  # training starts from the static vectors
            nn.init.zeros_(last.bias)
        names = ("ctx_items", "ctx_kinds", "ctx_values", "ctx_gaps")
        for name, t in zip(names, user_context, strict=True):
            self.register_buffer(name, t, persistent=False)
        # training rows' contexts (set for a fit, emptied after)
        for name, t in zip(("row_" + n[4:] for n in names), user_context, strict=True):
            self.register_buffer(name, t[:0], persistent=False)

    def set_rows(self, rows: tuple[torch.Tensor, ...]) -> None:
        self.row_items, self.row_kinds, self.row_values, self.row_gaps = rows

    # ------------------------------------------------------------------ towers
    def static_users(self, u: torch.Tensor) -> torch.Tensor:
        e = self.user(u)
        if self.user_feat is not None:
            e = e + self.user_feat(self.user_feats[u])
        return e

    def users(self, u: torch.Tensor, context: tuple[torch.Tensor, ...] | None = None,
              static: torch.Tensor | None = None, features: bool = False) -> torch.Tensor:
        """User vectors: ``static + 1[context] * MLP([static, pooled context, x_user, mean value, mean time])``.

        ``context`` = ``(items, kinds, values, gaps)``, each ``(B, L)`` (padding: item ``n_items``);
        default: the users' stored latest context. ``static`` replaces the users' static vectors
        (for a user the model does not know)."""
        e = self.static_users(u) if static is None else static
        if not self.length:
            return e
        items, kinds, values, gaps = context if context is not None else (
            self.ctx_items[u], self.ctx_kinds[u], self.ctx_values[u], self.ctx_gaps[u])
        valid = items != self.n_items
        if "kind" not in self.feats:
            kinds = torch.zeros_like(kinds)
        if "value" not in self.feats:
            values = torch.zeros_like(values)
        if "time" not in self.feats:
            gaps = torch.zeros_like(gaps)
        logit = self.kind_attn(kinds).squeeze(-1) + self.attn(torch.stack([values, gaps], -1)).squeeze(-1)
        logit = logit.masked_fill(~valid, float("-inf"))
        any_ctx = valid.any(1, keepdim=True)
        w = torch.softmax(logit.masked_fill(~any_ctx, 0.0), dim=1) * valid
        pooled = (w.unsqueeze(-1) * (self.item(items) + self.kind(kinds))).sum(1)
        n = valid.sum(1, keepdim=True).clamp(min=1)
        stats = torch.cat([(values * valid).sum(1, keepdim=True) / n, (gaps * valid).sum(1, keepdim=True) / n], -1)
        x = self.user_feats[u] if self.user_feat is not None else e[:, :0]
        if static is not None and self.user_feat is not None and not features:
            x = torch.zeros_like(x)
        delta = self.tower(torch.cat([e, pooled, x, stats], -1))
        return e + delta * any_ctx.to(delta.dtype)

    def items(self, i: torch.Tensor) -> torch.Tensor:
        v = self.item(i)
        if self.item_feat is not None:
            v = v + self.item_feat(self.item_feats[i])
        return v

    def all_items(self) -> torch.Tensor:
        return self.items(torch.arange(self.n_items, device=self.item.weight.device))

    def item_biases(self) -> torch.Tensor:
        return self.item_bias.weight[: self.n_items, 0]

    # ------------------------------------------------------------------ scoring
    def score_pairs(self, u: torch.Tensor, i: torch.Tensor) -> torch.Tensor:
        return (self.users(u) * self.items(i)).sum(-1) + self.item_bias(i).squeeze(-1)

    def score_users(self, u: torch.Tensor) -> torch.Tensor:
        return self.users(u) @ self.all_items().T + self.item_biases()

    def score_vectors(self, q: torch.Tensor) -> torch.Tensor:
        return q @ self.all_items().T + self.item_biases()

    def embeddings(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``[u, 1]`` and ``[v, b_i]``: their inner product is the score."""
        u = self.users(torch.arange(self.user.num_embeddings, device=self.user.weight.device))
        v = self.all_items()
        return (torch.cat([u, torch.ones(len(u), 1, device=u.device)], 1),
                torch.cat([v, self.item_biases().unsqueeze(1)], 1))

    # ------------------------------------------------------------------ training
    def loss(self, batch: Any) -> torch.Tensor:
        u, i, y, r = batch
        ctx = (self.row_items[r], self.row_kinds[r], self.row_values[r], self.row_gaps[r])
        static = None
        if self.static_dropout > 0:
            # drop a row's static user vector at random, so the tower learns to read the context
            keep = (torch.rand(len(u), 1, device=u.device) >= self.static_dropout).to(self.user.weight.dtype)
            static = self.static_users(u) * keep
        q = self.users(u, ctx, static=static, features=True)
        s = (q * self.items(i)).sum(-1) + self.item_bias(i).squeeze(-1)
        return losses.bce(s, y) if self.head == "sigmoid" else losses.mse(s, y)


class TwoTowerContext(TorchRecommender):
    """Context-aware two-tower model (Covington, Adams and Sargin, "Deep Neural Networks for YouTube
    Recommendations", RecSys 2016; Yi et al., "Sampling-Bias-Corrected Neural Modeling for Large
    Corpus Item Recommendations", RecSys 2019).

    Item tower: ``v_i = e_i + W_i x_i`` (static embedding plus side features). User tower:
    ``u = s_u + 1[C non-empty] * MLP([s_u, c, x_u, mean value, mean time])`` with the static part
    ``s_u = e_u + W_u x_u`` and the context ``C`` = the user's last ``context_length`` actions
    ``(item j, kind k, value r, time since t)``, pooled by attention: ``c = sum_j a_j (e_j +
    k_{kind_j})``, ``a = softmax_j(w_kind + w_r r_j + w_t log1p(t_j / 1 h) / 10)``. A user with no
    context gets their static vector. Score ``x_ui = <u, v_i> + b_i``: ``head="sigmoid"`` reads
    ``sigmoid(x_ui)`` as the probability of a click (binary cross-entropy, observed rows against
    ``negatives`` sampled unseen items sharing the row's context), ``head="linear"`` reads ``x_ui``
    as a utility (mean squared error to the row's value, 0 for sampled items), e.g. a rating or a
    composite utility from :mod:`recforge.data.utility` — the two heads the YouTube paper's
    watch-time ranking and click retrieval motivate.

    Training rows see the actions their user made before them (never the row itself), with the
    time since each measured from the row; at scoring time a user's context is their last
    training actions, timed from their last one. For the live service,
    :meth:`~recforge.models.base.Recommender.scores_for_history` takes the recent ``events``
    (items, kinds, values, times, oldest first): they extend the user's training context, and times
    count back from the latest one, so a click posted to ``/v1/events`` changes the next answer.
    Values are standardised with the training mean and spread; an event of another kind than the
    training rows' (a click on a rating model) counts as an average value. Static tables may start
    from a fitted matrix factorisation (``init_from``; each table rescaled to standard deviation
    0.05, which keeps its ranking), optionally frozen.
    """

    name = "two-tower-context"
    task = "ranking"
    feedback = "any"
    config_class = TwoTowerContextConfig
    has_embeddings = True
    scores_history = True
    weight_decay_field = "reg"
    _init_model: Recommender | None = None

    # ------------------------------------------------------------------ init from a fitted model
    def init_with(self, model: Recommender) -> Self:
        """Start the next fit's static tables from this fitted model's embeddings (overrides
        ``init_from``; users and items are matched by raw id). Returns ``self``."""
        if not (isinstance(model, Recommender) and model.has_embeddings and model.is_fitted()):
            raise ConfigError("init_with needs a fitted model with embeddings (has_embeddings: ials, bpr, mf-torch, ...)")
        self._init_model = model
        return self

    def _source_model(self, data: Interactions, ctx: RunContext) -> Recommender | None:
        cfg: TwoTowerContextConfig = self.config  # type: ignore[assignment]
        if self._init_model is not None:
            return self._init_model
        if not cfg.init_from:
            return None
        if cfg.init_from.endswith(".npz") or Path(cfg.init_from).is_file():
            model = Recommender.load(cfg.init_from)
        else:
            from recforge.models.registry import make_model

            model = make_model(cfg.init_from)
            if not model.has_embeddings:
                raise ConfigError(f"init_from: {cfg.init_from!r} has no embeddings (use ials, bpr, mf-torch, ...)")
            model.fit(data, FitOptions(seed=ctx.options.seed, threads=ctx.options.threads))
        if not model.has_embeddings:
            raise ConfigError(f"init_from: the model in {cfg.init_from!r} has no embeddings")
        return model

    def _static_tables(self, data: Interactions, ctx: RunContext) -> None:
        model = self._source_model(data, ctx)
        self.init_user_table_ = np.zeros((0, 0), np.float32)
        self.init_item_table_ = np.zeros((0, 0), np.float32)
        if model is None:
            return
        uv, iv = (np.asarray(x, np.float64) for x in model.embeddings())
        rng = np.random.default_rng(0 if ctx.options.seed is None else ctx.options.seed)
        tables = []
        for vec, vocab, ids in ((uv, model.users_, data.users.ids), (iv, model.items_, data.items.ids)):
            idx = vocab.index(ids)
            sd = float(vec.std()) or 1.0
            out = rng.normal(0.0, 0.05, (len(ids), vec.shape[1]))
            out[idx >= 0] = vec[idx[idx >= 0]] * (0.05 / sd)
            tables.append(out.astype(np.float32))
        self.init_user_table_, self.init_item_table_ = tables

    # ------------------------------------------------------------------ setup
    def _kind_code(self) -> int:
        return ACTION_KINDS.index("rating" if self.explicit_ else "click")

    def _setup(self, data: Interactions, ctx: RunContext) -> None:
        cfg: TwoTowerContextConfig = self.config  # type: ignore[assignment]
        set_side_features(self, data, cfg.use_features, cfg.max_categories)
        vals = data.values.astype(np.float64)
        self.value_mean_ = float(vals.mean())
        self.value_std_ = float(vals.std()) or 1.0
        self._static_tables(data, ctx)
        self.static_size_ = (self.init_item_table_.shape[1] if self.init_item_table_.size else cfg.embedding_size)
        L = cfg.context_length
        per_row, per_user = context_rows(data, L)
        times = (data.timestamps.astype(np.float64) if data.timestamps is not None else np.zeros(len(data)))
        std_values = ((vals - self.value_mean_) / self.value_std_).astype(np.float32)
        items = np.append(data.item_idx.astype(np.int64), data.n_items)  # row -1 -> padding
        kind = self._kind_code()
        # the users' latest context, kept raw (times) for the live path
        self.context_items_ = items[per_user]
        self.context_kinds_ = np.where(per_user >= 0, kind, 0).astype(np.int64)
        self.context_values_ = np.where(per_user >= 0, np.append(std_values, 0.0)[per_user], 0.0).astype(np.float32)
        self.context_times_ = np.where(per_user >= 0, np.append(times, np.nan)[per_user], np.nan)
        self.user_last_time_ = np.full(data.n_users, np.nan)
        np.fmax.at(self.user_last_time_, data.user_idx, times)
        row_gap = (times[:, None] - np.append(times, np.nan)[per_row]) / 3600.0
        self._rows = (
            torch.from_numpy(items[per_row]), torch.from_numpy(np.where(per_row >= 0, kind, 0).astype(np.int64)),
            torch.from_numpy(np.where(per_row >= 0, np.append(std_values, 0.0)[per_row], 0.0).astype(np.float32)),
            torch.from_numpy(np.where(per_row >= 0, _gap_feature(row_gap), 0.0).astype(np.float32)),
        )

    def _user_context(self) -> tuple[torch.Tensor, ...]:
        gaps = (self.user_last_time_[:, None] - self.context_times_) / 3600.0
        valid = self.context_items_ != len(self.items_)
        return (torch.from_numpy(np.asarray(self.context_items_, np.int64)),
                torch.from_numpy(np.asarray(self.context_kinds_, np.int64)),
                torch.from_numpy(np.asarray(self.context_values_, np.float32)),
                torch.from_numpy(np.where(valid, _gap_feature(gaps), 0.0).astype(np.float32)))

    def _network(self) -> RecNetwork:
        cfg: TwoTowerContextConfig = self.config  # type: ignore[assignment]
        net = _ContextTowerNet(len(self.users_), len(self.items_), int(self.static_size_), cfg,
                               torch.from_numpy(np.asarray(self.user_features_, np.float32)),
                               torch.from_numpy(np.asarray(self.item_features_, np.float32)), self._user_context())
        if self.init_item_table_.size:
            with torch.no_grad():
                net.user.weight.copy_(torch.from_numpy(np.asarray(self.init_user_table_)))
                net.item.weight[: len(self.items_)].copy_(torch.from_numpy(np.asarray(self.init_item_table_)))
        if cfg.freeze_static:
            net.user.weight.requires_grad_(False)
            net.item.weight.requires_grad_(False)
        return net

    def _batches(self, data: Interactions, ctx: RunContext, net: RecNetwork) -> Any:
        cfg: TwoTowerContextConfig = self.config  # type: ignore[assignment]
        net.set_rows(tuple(t.to(ctx.device) for t in self._rows))  # type: ignore[operator]
        self._rows = None
        n = len(data)
        u = data.user_idx.astype(np.int64)
        i = data.item_idx.astype(np.int64)
        pos_y = (data.values.astype(np.float32) if cfg.head == "linear" else np.ones(n, np.float32))
        rows = np.arange(n, dtype=np.int64)
        common = {"batch_size": cfg.batch_size, "shuffle": True, "generator": ctx.generator, "device": ctx.device}
        if cfg.negatives == 0:
            return TensorBatcher(torch.from_numpy(u), torch.from_numpy(i), torch.from_numpy(pos_y),
                                 torch.from_numpy(rows), **common)
        sampler = self._sampler(data, ctx)
        all_rows = torch.from_numpy(np.concatenate([rows, np.repeat(rows, cfg.negatives)]))
        targets = torch.from_numpy(np.concatenate([pos_y, np.zeros(n * cfg.negatives, np.float32)]))

        def source(epoch: int) -> tuple[torch.Tensor, ...]:
            uu, ii, _ = sampler.pointwise(u, i, cfg.negatives)
            return torch.from_numpy(uu), torch.from_numpy(ii), targets, all_rows

        return TensorBatcher(source=source, **common)

    def _after_fit(self, data: Interactions) -> None:
        # the network holds the initial tables now (and the saved state dict restores them)
        self.init_user_table_ = self.init_user_table_[:0]
        self.init_item_table_ = self.init_item_table_[:0]
        net = self._require_net()
        empty = tuple(t[:0] for t in (net.ctx_items, net.ctx_kinds, net.ctx_values, net.ctx_gaps))  # type: ignore[union-attr]
        net.set_rows(empty)  # type: ignore[operator]

    def _pair_width(self) -> int:
        return 1

    # ------------------------------------------------------------------ the live path
    def _score_history(self, item_idx: np.ndarray, values: np.ndarray | None,
                       context: Mapping[str, Any]) -> np.ndarray:
        """Scores for a user whose context is given: the recent ``events`` of ``context`` (oldest
        first) after the known user's training context, else the history ``item_idx`` as given
        (its last ``context_length`` items, all at one time); a user the model does not know gets
        the mean static vector of the known users."""
        u = int(context.get("user", -1))
        net: _ContextTowerNet = self._require_net()  # type: ignore[assignment]
        with torch.no_grad():
            q = self._query(u, self._context_of(u, item_idx, values, context.get("events")))
            return net.score_vectors(q).double().cpu().numpy()[0]

    def user_vector(self, user: Any = None, events: Mapping[str, Sequence[Any]] | None = None) -> np.ndarray:
        """The user tower's output for a raw ``user`` id (None or unknown: the mean static vector)
        after the user's training context and the optional recent ``events`` (``{"items": raw ids,
        "kinds": [...], "values": [...], "times": [seconds]}``, oldest first); :meth:`embeddings`
        adds a constant 1 column (for the item bias) to the same vectors."""
        self.check_is_fitted()
        ctx = self._history_context(user, None, events)
        u = int(ctx["user"])
        with torch.no_grad():
            events_idx = ctx.get("events") or {"items": np.empty(0, np.int64)}
            q = self._query(u, self._context_of(u, np.empty(0, np.int64), None, events_idx))
        return q.cpu().numpy()[0].astype(np.float32)

    def _query(self, u: int, context: tuple[np.ndarray, ...]) -> torch.Tensor:
        """The ``(1, d)`` user vector of user index ``u`` (``-1``: unknown) with this context."""
        net: _ContextTowerNet = self._require_net()  # type: ignore[assignment]
        items, kinds, vals, times = context
        L = int(self.config.context_length)  # type: ignore[attr-defined]
        row = np.full((1, L), len(self.items_), np.int64)
        k_row, v_row, g_row = np.zeros((1, L), np.int64), np.zeros((1, L), np.float32), np.zeros((1, L), np.float32)
        m = min(L, len(items))
        if m:
            finite = np.isfinite(times)
            now = times[finite].max() if finite.any() else 0.0
            row[0, L - m:], k_row[0, L - m:], v_row[0, L - m:] = items[-m:], kinds[-m:], vals[-m:]
            g_row[0, L - m:] = _gap_feature(np.where(np.isfinite(times[-m:]), now - times[-m:], 0.0) / 3600.0)
        dev = self.device
        static = None
        if u < 0:
            known = torch.as_tensor(np.flatnonzero(self.user_known_), device=dev)
            static = net.static_users(known).mean(0, keepdim=True)
        ctx = tuple(torch.as_tensor(x, device=dev) for x in (row, k_row, v_row, g_row))
        return net.users(torch.tensor([max(u, 0)], device=dev), ctx, static=static)

    def _context_of(self, u: int, item_idx: np.ndarray, values: np.ndarray | None,
                    events: Mapping[str, Any] | None) -> tuple[np.ndarray, ...]:
        """``(items, kinds, standardised values, times)`` of the context, oldest first."""
        n_items = len(self.items_)
        if events is None:
            n = len(item_idx)
            vals = (np.zeros(n, np.float32) if values is None
                    else ((np.asarray(values, np.float64) - self.value_mean_) / self.value_std_).astype(np.float32))
            return np.asarray(item_idx, np.int64), np.full(n, self._kind_code(), np.int64), vals, np.full(n, np.nan)
        e_items = np.asarray(events["items"], np.int64)
        n = len(e_items)
        names = events.get("kinds")
        names = [None] * n if names is None else list(names)
        e_kinds = np.array([ACTION_KINDS.index(k) if k in ACTION_KINDS else 0 for k in names], np.int64)
        raw = events.get("values")
        raw = np.ones(n) if raw is None else np.asarray(raw, np.float64)
        # a value is read on the training scale only for the training rows' kind (a rating on a
        # rating model); other kinds (a click on a rating model) count as average
        same = e_kinds == self._kind_code()
        e_vals = np.where(same, (raw - self.value_mean_) / self.value_std_, 0.0).astype(np.float32)
        t = events.get("times")
        e_times = np.full(n, np.nan) if t is None else np.asarray(t, np.float64)
        if u < 0:
            return e_items, e_kinds, e_vals, e_times
        ok = self.context_items_[u] != n_items
        return (np.concatenate([self.context_items_[u][ok], e_items]),
                np.concatenate([self.context_kinds_[u][ok], e_kinds]),
                np.concatenate([self.context_values_[u][ok], e_vals]),
                np.concatenate([self.context_times_[u][ok], e_times]))

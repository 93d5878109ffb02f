"""Two-tower retrieval model trained with in-batch sampled softmax and log-q correction."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from recforge.data.interactions import Interactions
from recforge.training.batches import TensorBatcher
from recforge.models.neural import losses
from recforge.models.neural.base import TorchConfig, TorchRecommender
from recforge.training.loop import RunContext
from recforge.training.module import RecNetwork


@dataclass(frozen=True)
class TwoTowerConfig(TorchConfig):
    """Hyperparameters of :class:`TwoTower`."""

    embedding_size: int = 64
    """Size of the id embeddings (and of the history embeddings)."""
    hidden: tuple[int, ...] = (128,)
    """Hidden layer sizes of each tower's MLP (empty: a single linear map)."""
    output_size: int = 64
    """Size of the final user and item vectors."""
    history_length: int = 20
    """Recent items mean-pooled into the user tower (0: no history)."""
    use_features: bool = True
    """Feed the data's user/item side features (numeric and low-cardinality categorical columns)."""
    max_categories: int = 50
    """Categorical feature columns with more distinct values than this are left out."""
    loss: Literal["softmax", "bpr", "hinge"] = "softmax"
    """``softmax``: in-batch sampled softmax with the log-q correction (Yi et al. 2019); ``bpr`` or
    ``hinge``: pairwise on ``(u, i, j)`` with one uniformly sampled unseen item ``j`` per training
    row and epoch, on the logits ``x = <u, v> / temperature``: ``-ln sigmoid(x_ui - x_uj)`` or
    ``max(0, margin - (x_ui - x_uj))``."""
    margin: float = 1.0
    """The hinge loss's margin, in logit units (``loss="hinge"`` only)."""
    temperature: float = 0.05
    """Temperature on the cosine similarities (the logits are ``cos / temperature``)."""
    logq_correction: bool = True
    """Subtract ``log q(i)`` (the item's share of training rows) from each in-batch logit."""
    dropout: float = 0.0
    """Dropout inside the towers."""
    reg: float = 0.0
    """Weight decay (L2 on all parameters, applied by the optimiser)."""
    epochs: int = 20
    batch_size: int = 1024
    learning_rate: float = 1e-3

    def validate(self) -> None:
        super().validate()
        self.check(self.embedding_size >= 1, "embedding_size", "must be >= 1")
        self.check(all(h >= 1 for h in self.hidden), "hidden", "layer sizes must be >= 1")
        self.check(self.output_size >= 1, "output_size", "must be >= 1")
        self.check(self.history_length >= 0, "history_length", "must be >= 0")
        self.check(self.max_categories >= 1, "max_categories", "must be >= 1")
        self.check(self.temperature > 0, "temperature", "must be > 0")
        self.check(0 <= self.dropout < 1, "dropout", "must be in [0, 1)")
        self.check(self.reg >= 0, "reg", "must be >= 0")
        self.check(self.loss in ("softmax", *losses.PAIRWISE), "loss", "must be 'softmax', 'bpr' or 'hinge'")
        self.check(self.margin > 0, "margin", "must be > 0")


def _mlp(n_in: int, hidden: tuple[int, ...], n_out: int, dropout: float) -> nn.Sequential:
    mods: list[nn.Module] = []
    for h in hidden:
        mods += [nn.Linear(n_in, h), nn.ReLU(), nn.Dropout(dropout)]
        n_in = h
    mods.append(nn.Linear(n_in, n_out))
    return nn.Sequential(*mods)


class _TwoTowerNet(RecNetwork):
    def __init__(self, n_users: int, n_items: int, cfg: TwoTowerConfig, user_feats: torch.Tensor,
                 item_feats: torch.Tensor, user_history: torch.Tensor, log_q: torch.Tensor) -> None:
        super().__init__()
        d = cfg.embedding_size
        self.n_items = n_items
        self.user_id = nn.Embedding(n_users, d)
        self.item_id = nn.Embedding(n_items, d)
        self.history_length = cfg.history_length
        if cfg.history_length:
            self.history = nn.Embedding(n_items + 1, d, padding_idx=n_items)
        for emb in (self.user_id, self.item_id):
            nn.init.normal_(emb.weight, std=0.05)
        self.register_buffer("user_feats", user_feats, persistent=False)
        self.register_buffer("item_feats", item_feats, persistent=False)
        self.register_buffer("user_history", user_history, persistent=False)
        self.register_buffer("log_q", log_q, persistent=False)
        n_user_in = d + user_feats.shape[1] + (d if cfg.history_length else 0)
        self.user_tower = _mlp(n_user_in, tuple(cfg.hidden), cfg.output_size, cfg.dropout)
        self.item_tower = _mlp(d + item_feats.shape[1], tuple(cfg.hidden), cfg.output_size, cfg.dropout)
        self.temperature = cfg.temperature
        self.logq = cfg.logq_correction
        self.loss_name = cfg.loss
        self.margin = cfg.margin
        self._items: torch.Tensor | None = None

    def clear_cache(self) -> None:
        self._items = None

    def users(self, u: torch.Tensor, hist: torch.Tensor | None = None) -> torch.Tensor:
        parts = [self.user_id(u), self.user_feats[u]]
        if self.history_length:
            h = self.user_history[u] if hist is None else hist
            valid = (h != self.n_items).unsqueeze(-1).float()
            pooled = (self.history(h) * valid).sum(1) / valid.sum(1).clamp(min=1.0)
            parts.append(pooled)
        return F.normalize(self.user_tower(torch.cat(parts, -1)), dim=-1)

    def items(self, i: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.item_tower(torch.cat([self.item_id(i), self.item_feats[i]], -1)), dim=-1)

    def all_items(self) -> torch.Tensor:
        if self._items is not None and not self.training:
            return self._items
        out = self.items(torch.arange(self.n_items, device=self.item_id.weight.device))
        if not self.training:
            self._items = out
        return out

    def loss(self, batch: Any) -> torch.Tensor:
        u, i, hist = batch[:3]
        q = self.users(u, hist if self.history_length else None)
        k = self.items(i)
        if self.loss_name in losses.PAIRWISE:
            pos = (q * k).sum(-1) / self.temperature
            neg = (q * self.items(batch[3])).sum(-1) / self.temperature
            return losses.pairwise(self.loss_name, pos, neg, self.margin)
        log_q = self.log_q[i] if self.logq else None
        return losses.sampled_softmax(q, k, log_q=log_q, temperature=self.temperature, item_ids=i)

    def score_pairs(self, u: torch.Tensor, i: torch.Tensor) -> torch.Tensor:
        return (self.users(u) * self.all_items()[i]).sum(-1)

    def score_users(self, u: torch.Tensor) -> torch.Tensor:
        return self.users(u) @ self.all_items().T

    def embeddings(self) -> tuple[torch.Tensor, torch.Tensor]:
        n_users = self.user_id.num_embeddings
        return self.users(torch.arange(n_users, device=self.user_id.weight.device)), self.all_items()


def set_side_features(model: Any, data: Interactions, use: bool, max_categories: int) -> None:
    """Set ``model.user_features_``/``item_features_`` (and their column names) from ``data``'s side
    features (:func:`encode_features`), or empty matrices when ``use`` is False."""
    if use:
        uf, un = encode_features(data.user_features, data.users.ids, max_categories)
        itf, itn = encode_features(data.item_features, data.items.ids, max_categories)
    else:
        uf, un = np.zeros((data.n_users, 0), np.float32), []
        itf, itn = np.zeros((data.n_items, 0), np.float32), []
    model.user_features_, model.user_feature_names_ = uf, un
    model.item_features_, model.item_feature_names_ = itf, itn


def encode_features(frame: pd.DataFrame | None, ids: np.ndarray, max_categories: int) -> tuple[np.ndarray, list[str]]:
    """Side features as a float32 matrix, one row per id (in ``ids`` order), and column names.

    Numeric and boolean columns are standardised (missing values become 0, the mean); datetime
    columns become standardised years; string or categorical columns with at most
    ``max_categories`` distinct values are one-hot encoded; other columns (free text, ids) are
    left out. Ids missing from ``frame`` get an all-zero row.
    """
    if frame is None or frame.shape[1] == 0:
        return np.zeros((len(ids), 0), np.float32), []
    frame = frame[~frame.index.duplicated()]
    cols: list[np.ndarray] = []
    names: list[str] = []
    for name in frame.columns:
        col = frame[name]
        if pd.api.types.is_datetime64_any_dtype(col):
            col = col.dt.year + col.dt.dayofyear / 366.0
        if pd.api.types.is_bool_dtype(col) or pd.api.types.is_numeric_dtype(col):
            x = pd.to_numeric(col, errors="coerce").astype(float).to_numpy()
            ok = np.isfinite(x)
            if ok.sum() == 0:
                continue
            mu, sd = x[ok].mean(), x[ok].std()
            cols.append(np.where(ok, (x - mu) / (sd if sd > 0 else 1.0), 0.0)[:, None])
            names.append(str(name))
            continue
        values = col.astype("string")
        levels = values.dropna().unique()
        if len(levels) == 0 or len(levels) > max_categories:
            continue
        levels = np.sort(np.asarray(levels, dtype=str))
        cols.append((values.to_numpy(dtype=object, na_value=None)[:, None] == levels[None, :]).astype(float))
        names += [f"{name}={lv}" for lv in levels]
    out = np.zeros((len(ids), sum(c.shape[1] for c in cols)), np.float32)
    if not cols:
        return out, []
    encoded = np.hstack(cols).astype(np.float32)
    index = frame.index
    pos = index.get_indexer(pd.Index(ids))
    if (pos < 0).all() and index.dtype != object:
        pos = pd.Index(index.astype(str)).get_indexer(pd.Index(np.asarray(ids).astype(str)))
    found = pos >= 0
    out[found] = encoded[pos[found]]
    return out, names


def history_windows(data: Interactions, length: int) -> tuple[np.ndarray, np.ndarray]:
    """Recent-item windows: per training row the ``length`` items its user had before it, and per
    user the last ``length`` items overall (padded with ``n_items``; order: timestamps, then rows).
    """
    n, n_items = len(data), data.n_items
    order_key = data.timestamps if data.timestamps is not None else np.arange(n)
    order = np.lexsort((np.arange(n), order_key, data.user_idx))
    su = data.user_idx[order]
    si = data.item_idx[order].astype(np.int64)
    starts = np.searchsorted(su, su, side="left")
    offsets = np.arange(-length, 0)
    pos = np.arange(n)[:, None] + offsets[None, :]
    rows = np.full((n, length), n_items, dtype=np.int64)
    ok = pos >= starts[:, None]
    rows[ok] = si[pos[ok]]
    per_row = np.empty_like(rows)
    per_row[order] = rows
    user_hist = np.full((data.n_users, length), n_items, dtype=np.int64)
    counts = data.user_counts()
    ends = np.cumsum(counts)
    upos = ends[:, None] + offsets[None, :]
    uok = upos >= (ends - counts)[:, None]
    user_hist[uok] = si[upos[uok]]
    return per_row, user_hist


class TwoTower(TorchRecommender):
    """Two-tower retrieval model (Yi et al., "Sampling-Bias-Corrected Neural Modeling for Large
    Corpus Item Recommendations", RecSys 2019; Covington et al., YouTube DNN, RecSys 2016).

    User tower: ``u = normalise(MLP([e_user, x_user, mean(e_h for h in recent items)]))``; item tower:
    ``v = normalise(MLP([e_item, x_item]))``; score ``<u, v>``. Training uses in-batch negatives:
    for a batch of observed pairs ``(u_b, i_b)`` the loss is the softmax cross-entropy of
    ``s_bj = <u_b, v_j> / T - log q(i_j)`` with the positive ``j = b``, where ``q(i)`` is the
    item's share of training rows (the log-q correction for the popularity-biased in-batch
    sampling); in-batch copies of a row's positive item are masked. The recent items of a training
    row are those its user interacted with before it, so the positive never appears in its own
    history; at scoring time a user's history is their last ``history_length`` training items.
    """

    name = "two-tower"
    task = "ranking"
    config_class = TwoTowerConfig
    has_embeddings = True
    weight_decay_field = "reg"

    def _setup(self, data: Interactions, ctx: RunContext) -> None:
        cfg: TwoTowerConfig = self.config  # type: ignore[assignment]
        set_side_features(self, data, cfg.use_features, cfg.max_categories)
        self._row_history, self.user_history_ = history_windows(data, cfg.history_length)
        counts = data.item_counts().astype(np.float64)
        self.log_q_ = np.log(np.maximum(counts, 1.0) / max(1, len(data))).astype(np.float32)

    def _network(self) -> RecNetwork:
        cfg: TwoTowerConfig = self.config  # type: ignore[assignment]
        return _TwoTowerNet(
            len(self.users_), len(self.items_), cfg, torch.from_numpy(np.asarray(self.user_features_)),
            torch.from_numpy(np.asarray(self.item_features_)), torch.from_numpy(np.asarray(self.user_history_)),
            torch.from_numpy(np.asarray(self.log_q_)),
        )

    def _batches(self, data: Interactions, ctx: RunContext, net: RecNetwork) -> Any:
        cfg: TwoTowerConfig = self.config  # type: ignore[assignment]
        hist = torch.from_numpy(self._row_history)
        self._row_history = None
        u = data.user_idx.astype(np.int64)
        i = data.item_idx.astype(np.int64)
        common = {"batch_size": cfg.batch_size, "shuffle": True, "generator": ctx.generator, "device": ctx.device}
        if cfg.loss in losses.PAIRWISE:
            sampler = self._sampler(data, ctx)
            ut, it = torch.from_numpy(u), torch.from_numpy(i)

            def source(epoch: int) -> tuple[torch.Tensor, ...]:
                # one fresh unseen item per row (pairwise keeps the row order, so histories stay aligned)
                return ut, it, hist, torch.from_numpy(sampler.pairwise(u, i, 1)[2])

            return TensorBatcher(source=source, **common)
        return TensorBatcher(torch.from_numpy(u), torch.from_numpy(i), hist, **common)

    def _pair_width(self) -> int:
        return 1

"""Validation metrics computed on the training device, for early stopping and model selection.

A validator turns held-out interactions into fixed batches once, then the Lightning module asks it
for per-batch sums (``step``) and the epoch's metrics (``compute``). Ranking validation scores all
items for a block of users at a time on the device, masks the training items and takes the top k,
so it never builds the whole users x items score matrix. CTR validation (:class:`AUCValidation`)
keeps every logit of the held-out rows and ranks them all at once for the epoch's exact AUC.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from recforge.data.ctr import CTRData
from recforge.data.interactions import Interactions
from recforge.training.batches import FixedBatches
from recforge.errors import DataError
from recforge.metrics import roc_auc

__all__ = [
    "AUCValidation",
    "RankingValidation",
    "RatingValidation",
    "Validation",
    "check_same_space",
    "check_validation_data",
]


class Validation:
    """Interface: ``batches`` to iterate, ``step`` per batch, ``compute`` per epoch."""

    monitor: str = "val_loss"
    mode: str = "min"

    def batches(self) -> FixedBatches:
        raise NotImplementedError

    def step(self, net: Any, batch: Any) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def compute(self, sums: dict[str, float]) -> dict[str, float]:
        raise NotImplementedError


def check_validation_data(validation: Any, train: Interactions) -> Interactions:
    """Validate that ``validation`` is an :class:`Interactions` indexed like ``train``."""
    if not isinstance(validation, Interactions):
        raise DataError(f"FitOptions.validation must be Interactions, got {type(validation).__name__}")
    if validation.n_users != train.n_users or validation.n_items != train.n_items:
        raise DataError(
            "FitOptions.validation must share the training data's vocabularies (make it with a split "
            f"or Interactions.subset); got {validation.n_users} x {validation.n_items}, "
            f"training has {train.n_users} x {train.n_items}"
        )
    if len(validation) == 0:
        raise DataError("FitOptions.validation has no interactions")
    return validation


class RatingValidation(Validation):
    """Root mean squared error of predicted ratings (clipped to the rating scale) on held-out pairs.

    Pairs whose user or item has no training rows are left out (models cannot score them).

    Args:
        validation: Held-out ratings, indexed like the training data.
        train: The training data (for the known users and items and the rating scale).
        device: Where the batches live.
        batch_size: Pairs per validation batch.
    """

    monitor = "val_rmse"
    mode = "min"

    def __init__(self, validation: Interactions, train: Interactions, device: torch.device,
                 batch_size: int = 65536) -> None:
        validation = check_validation_data(validation, train)
        known = (train.user_counts()[validation.user_idx] > 0) & (train.item_counts()[validation.item_idx] > 0)
        if not known.any():
            raise DataError("FitOptions.validation: no pair has both its user and its item in the training data")
        u = torch.as_tensor(validation.user_idx[known], dtype=torch.long, device=device)
        i = torch.as_tensor(validation.item_idx[known], dtype=torch.long, device=device)
        r = torch.as_tensor(validation.values[known], dtype=torch.float32, device=device)
        self.lo, self.hi = train.rating_scale()
        self._batches = [(u[s : s + batch_size], i[s : s + batch_size], r[s : s + batch_size])
                         for s in range(0, len(u), batch_size)]

    def batches(self) -> FixedBatches:
        return FixedBatches(self._batches)

    def step(self, net: Any, batch: Any) -> dict[str, torch.Tensor]:
        u, i, r = batch
        pred = net.score_pairs(u, i).float().clamp(self.lo, self.hi)
        return {"sse": ((pred - r) ** 2).sum(), "n": torch.tensor(float(len(r)))}

    def compute(self, sums: dict[str, float]) -> dict[str, float]:
        return {"val_rmse": math.sqrt(sums["sse"] / max(sums["n"], 1.0))}


class RankingValidation(Validation):
    """Recall@k and NDCG@k over all items, training items excluded (the ``given-split`` metrics).

    ``recall = hits / |held-out items of the user|`` and NDCG uses binary gains with the ideal DCG
    over ``min(|held-out|, k)`` positions, as in the NGCF/LightGCN evaluation code. Users without
    training rows are left out.

    Args:
        validation: Held-out interactions, indexed like the training data.
        train: The training data (its items are masked out of each user's ranking).
        device: Where the batches live.
        k: Cut-off.
        batch_size: Users per validation batch.
    """

    mode = "max"

    def __init__(self, validation: Interactions, train: Interactions, device: torch.device, k: int = 20,
                 batch_size: int = 1024) -> None:
        validation = check_validation_data(validation, train)
        self.k = int(k)
        self.monitor = f"val_ndcg@{self.k}"
        seen = train.csr()
        held = sp.csr_matrix(validation.csr(), copy=True)
        held.data[:] = 1.0
        held = held - held.multiply(seen.astype(bool))  # an item seen in training is not a target
        held.eliminate_zeros()
        users = np.flatnonzero((np.diff(held.indptr) > 0) & (train.user_counts() > 0))
        if len(users) == 0:
            raise DataError("FitOptions.validation: no user has both training rows and new held-out items")
        self.n_items = train.n_items
        self._batches = []
        for s in range(0, len(users), batch_size):
            u = users[s : s + batch_size]
            self._batches.append(
                tuple(torch.as_tensor(a, device=device) for a in (u, *_coo_rows(seen, u), *_coo_rows(held, u)))
            )

    def batches(self) -> FixedBatches:
        return FixedBatches(self._batches)

    def step(self, net: Any, batch: Any) -> dict[str, torch.Tensor]:
        u, s_row, s_col, h_row, h_col = batch
        scores = net.score_users(u).float()
        scores[s_row, s_col] = -torch.inf
        k = min(self.k, self.n_items)
        top = scores.topk(k, dim=1).indices
        target = torch.zeros_like(scores, dtype=torch.bool)
        target[h_row, h_col] = True
        hits = target.gather(1, top).float()
        n_held = target.sum(1).float()
        disc = 1.0 / torch.log2(torch.arange(2, k + 2, device=scores.device, dtype=torch.float32))
        dcg = (hits * disc).sum(1)
        ideal_n = n_held.clamp(max=k).long()
        idcg = torch.cumsum(disc, 0)[ideal_n - 1]
        return {
            "recall": (hits.sum(1) / n_held).sum(),
            "ndcg": (dcg / idcg).sum(),
            "n": torch.tensor(float(len(u))),
        }

    def compute(self, sums: dict[str, float]) -> dict[str, float]:
        n = max(sums["n"], 1.0)
        return {f"val_recall@{self.k}": sums["recall"] / n, f"val_ndcg@{self.k}": sums["ndcg"] / n}


def _coo_rows(mat: sp.csr_matrix, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    sub = mat[rows]
    r = np.repeat(np.arange(len(rows), dtype=np.int64), np.diff(sub.indptr))
    return r, sub.indices.astype(np.int64)


class AUCValidation(Validation):
    """ROC AUC (and log loss) of the network on held-out CTR rows, for early stopping.

    AUC is not a sum over batches, so each step keeps its logits and :meth:`compute` ranks them
    all at once (exact, not a binned approximation).
    """

    monitor = "val_auc"
    mode = "max"

    def __init__(self, data: CTRData, train: CTRData, device: torch.device, batch_size: int = 1 << 16) -> None:
        if not isinstance(data, CTRData):
            raise DataError(f"FitOptions.validation must be CTRData for a CTR model, got {type(data).__name__}")
        check_same_space(data, train, "FitOptions.validation")
        if data.labels is None or len(data) == 0:
            raise DataError("FitOptions.validation: CTR validation rows need labels")
        self.labels = data.labels
        idx = torch.as_tensor(data.index, device=device)
        val = torch.as_tensor(data.value, device=device)
        self._batches = [(idx[s : s + batch_size], val[s : s + batch_size]) for s in range(0, len(data), batch_size)]
        self._logits: list[torch.Tensor] = []

    def batches(self) -> FixedBatches:
        self._logits = []
        return FixedBatches(self._batches)

    def step(self, net: Any, batch: Any) -> dict[str, torch.Tensor]:
        z = net.logits(*batch).detach().float()
        self._logits.append(z.cpu())
        return {"n": torch.tensor(float(len(z)))}

    def compute(self, sums: dict[str, float]) -> dict[str, float]:
        z = torch.cat(self._logits).double().numpy() if self._logits else np.empty(0)
        self._logits = []
        if len(z) != len(self.labels):
            return {}
        y = self.labels.astype(np.float64)
        ll = float(np.mean(np.logaddexp(0.0, z) - y * z))
        return {"val_auc": roc_auc(y, z), "val_logloss": ll}


def check_same_space(data: CTRData, train: CTRData, what: str) -> None:
    """Raise :class:`DataError` unless ``data`` is encoded like ``train`` (same features and slots)."""
    if data.n_features != train.n_features or not np.array_equal(data.slot_fields, train.slot_fields):
        raise DataError(
            f"{what}: rows are encoded differently from the training rows ({data.n_features} features, "
            f"{data.n_slots} slots vs {train.n_features} features, {train.n_slots} slots); encode both with "
            "the same fitted FeatureEncoder"
        )

"""Loss functions shared by the neural models (all return a scalar mean over the batch).

- :func:`mse`: ``mean (y_hat - y)^2``, for explicit ratings.
- :func:`masked_mse`: the same over observed entries only (AutoRec's reconstruction loss).
- :func:`bce`: ``mean -[y log s(x) + (1 - y) log(1 - s(x))]`` on logits, pointwise implicit feedback.
- :func:`bpr`: ``mean -log s(x_ui - x_uj)`` (Rendle et al., UAI 2009), pairwise.
- :func:`hinge`: ``mean max(0, margin - (x_ui - x_uj))``, the pairwise hinge (margin ranking) loss
  (Weston et al., "WSABIE", IJCAI 2011; Hsieh et al., "Collaborative Metric Learning", WWW 2017);
  :func:`pairwise` picks one of the two by name.
- :func:`sampled_softmax`: in-batch softmax cross-entropy with the log-q correction of Yi et al.
  (RecSys 2019): logits ``<q_b, k_j> / T - log q_j``, the positive on the diagonal.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["PAIRWISE", "bce", "bpr", "hinge", "masked_mse", "mse", "pairwise", "sampled_softmax"]

#: The pairwise losses a model's ``loss`` option may name.
PAIRWISE = ("bpr", "hinge")


def mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error ``mean (pred - target)^2``."""
    return torch.mean((pred - target) ** 2)


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Squared error summed over entries where ``mask`` is 1, divided by their number.

    Unobserved entries (``mask == 0``) contribute neither to the sum nor to the count, whatever
    the prediction there.
    """
    sq = torch.where(mask > 0, (pred - target) ** 2, torch.zeros_like(pred))
    return sq.sum() / mask.sum().clamp(min=1.0)


def bce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy on logits: ``mean softplus(x) - y x``."""
    return F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))


def bpr(pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
    """Bayesian personalised ranking: ``mean -log sigmoid(pos - neg) = mean softplus(neg - pos)``."""
    return F.softplus(neg - pos).mean()


def hinge(pos: torch.Tensor, neg: torch.Tensor, margin: float = 1.0) -> torch.Tensor:
    """Pairwise hinge: ``mean max(0, margin - (pos - neg))``; zero gradient once a pair is ranked
    apart by the margin, a constant one (-1 on ``pos``, +1 on ``neg``, per pair) inside it."""
    return F.relu(margin - (pos - neg)).mean()


def pairwise(name: str, pos: torch.Tensor, neg: torch.Tensor, margin: float = 1.0) -> torch.Tensor:
    """The pairwise loss ``name`` (``"bpr"`` or ``"hinge"``) of positive and negative scores."""
    if name == "hinge":
        return hinge(pos, neg, margin)
    return bpr(pos, neg)


def sampled_softmax(
    queries: torch.Tensor,
    keys: torch.Tensor,
    *,
    log_q: torch.Tensor | None = None,
    temperature: float = 1.0,
    item_ids: torch.Tensor | None = None,
) -> torch.Tensor:
    """In-batch sampled softmax: row ``b``'s positive is key ``b``; the other keys are its negatives.

    Args:
        queries: ``(B, d)`` query (user) vectors.
        keys: ``(B, d)`` key (item) vectors, row-aligned with ``queries``.
        log_q: ``(B,)`` log sampling probability of each key's item; subtracted from its column
            (the log-q correction) so popular items are not over-penalised as negatives.
        temperature: Logits are divided by it.
        item_ids: ``(B,)`` item ids of the keys; a column holding the same item as the row's
            positive (an accidental hit) is masked out of that row.

    Returns:
        Mean cross-entropy of ``softmax(<q_b, k_j> / T - log q_j)`` over the diagonal.
    """
    logits = queries @ keys.T / temperature
    if log_q is not None:
        logits = logits - log_q.unsqueeze(0)
    if item_ids is not None:
        dup = item_ids.unsqueeze(0) == item_ids.unsqueeze(1)
        dup.fill_diagonal_(False)
        logits = logits.masked_fill(dup, float("-inf"))
    target = torch.arange(len(queries), device=queries.device)
    return F.cross_entropy(logits, target)

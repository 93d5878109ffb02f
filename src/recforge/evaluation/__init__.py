"""Evaluation: pure metric functions, named protocols and result tables."""

from recforge.metrics import (
    average_popularity,
    average_precision_at_k,
    catalog_coverage,
    hit_rate_at_k,
    hits_at_k,
    intra_list_diversity,
    log_loss,
    mae,
    ndcg_at_k,
    novelty,
    precision_at_k,
    recall_at_k,
    reciprocal_rank_at_k,
    rmse,
    roc_auc,
)

from recforge.evaluation.protocols import LAZY_PROTOCOLS as _LAZY

# the protocols that live in their own modules load on first use (the CTR one pulls in the CTR readers)
_LAZY.update({"ctr-holdout": "recforge.evaluation.ctr_protocol", "cold-start": "recforge.evaluation.cold_start",
              "rating-masked": "recforge.evaluation.masked_ratings",
              "rating-masked-users": "recforge.evaluation.masked_ratings"})

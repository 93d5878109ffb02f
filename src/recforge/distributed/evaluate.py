"""``recforge evaluate --backend ray``: full-ranking evaluation with the users scored on Ray.

Fitting stays in the driver; every block of test users the protocol ranks
(:func:`recforge.evaluation.protocols.full_ranking`, blocks planned by
:func:`recforge.evaluation.blocks.plan_blocks`, 2,048 users without a memory budget) is scored by
one of the Ray actors holding the fitted model (:mod:`recforge.distributed.scoring`), the blocks
going to the actors in turn. The metrics are computed by the driver from the same top-k lists, so
they equal the local run's; a job with fewer blocks than workers leaves workers idle. Protocols that
rank no blocks of users (rating, sampled, CTR) run as they do locally.
"""

from __future__ import annotations

from typing import Any

from recforge.distributed.scoring import ray_scoring
from recforge.evaluation.protocols import evaluate

__all__ = ["evaluate_ray"]


def evaluate_ray(model: Any, dataset: Any, protocol: str, *, workers: int = 2, address: str | None = None,
                 **kwargs: Any) -> Any:
    """:func:`recforge.evaluation.protocols.evaluate` (same arguments) with full ranking on
    ``workers`` Ray actors; returns its :class:`~recforge.evaluation.results.EvaluationResult`."""
    with ray_scoring(workers, address):
        return evaluate(model, dataset, protocol, **kwargs)

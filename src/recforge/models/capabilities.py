"""What a model can do, declared rather than discovered.

Every :class:`~recforge.models.base.Recommender` declares its capabilities as class variables
(``backend``, ``feedback``, ``scores_history``, ``has_embeddings``, ``folds_in``); callers test
those, never ``hasattr``. The :class:`typing.Protocol` classes below name the matching method sets
for type checkers and documentation.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

Backend = Literal["numpy", "torch"]
Feedback = Literal["explicit", "implicit", "any"]

__all__ = ["Backend", "Feedback", "FoldIn", "HasEmbeddings", "HistoryScorer"]


@runtime_checkable
class HistoryScorer(Protocol):
    """Scores an ad-hoc history without refitting (``scores_history = True``)."""

    def scores_for_history(self, item_ids: Any, values: Any = None, *, user: Any = None,
                           attributes: Mapping[str, Any] | None = None,
                           events: Mapping[str, Any] | None = None) -> np.ndarray: ...

    def recommend_for_history(self, item_ids: Any, k: int = 10, values: Any = None, *, exclude_seen: bool = True,
                              candidates: Any = None, user: Any = None,
                              attributes: Mapping[str, Any] | None = None,
                              events: Mapping[str, Any] | None = None) -> tuple[np.ndarray, np.ndarray]: ...


@runtime_checkable
class HasEmbeddings(Protocol):
    """Learns user and item vectors (``has_embeddings = True``)."""

    def embeddings(self) -> tuple[np.ndarray, np.ndarray]: ...


@runtime_checkable
class FoldIn(Protocol):
    """Solves a new user's vector against fixed item vectors (``folds_in = True``)."""

    def fold_in(self, item_ids: Any, values: Any = None) -> np.ndarray: ...

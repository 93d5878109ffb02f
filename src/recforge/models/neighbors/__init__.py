"""Memory-based models: rating kNN (item, user, baseline-centred), implicit kNN, RP3beta, EASE, SLIM and
onboarding kNN (short histories).

Besides the models, :func:`item_neighbors` (the item-kNN similarity kernel as a function: the
``n_neighbors`` most similar items of every item) is public, for serving's item-to-item retrieval.
The model modules load lazily: importing this package for :data:`CATALOG` compiles nothing.
"""

from __future__ import annotations

from typing import Any

__all__ = ["CATALOG", "item_neighbors"]

CATALOG = {
    "item-knn": ("recforge.models.neighbors.knn", "ItemKNN", "rating"),
    "user-knn": ("recforge.models.neighbors.knn", "UserKNN", "rating"),
    "knn-baseline": ("recforge.models.neighbors.knn", "KNNBaseline", "rating"),
    "item-knn-implicit": ("recforge.models.neighbors.implicit_knn", "ItemKNNImplicit", "ranking"),
    "user-knn-implicit": ("recforge.models.neighbors.implicit_knn", "UserKNNImplicit", "ranking"),
    "ease": ("recforge.models.neighbors.ease", "EASE", "ranking"),
    "slim": ("recforge.models.neighbors.slim", "SLIM", "ranking"),
    "rp3beta": ("recforge.models.neighbors.rp3beta", "RP3beta", "ranking"),
    "onboarding-knn": ("recforge.models.neighbors.onboarding", "OnboardingKNN", "ranking"),
}


def __getattr__(name: str) -> Any:
    if name == "item_neighbors":
        from recforge.models.neighbors.implicit_knn import item_neighbors

        return item_neighbors
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

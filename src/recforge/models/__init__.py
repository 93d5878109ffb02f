"""Model families. Each family package declares a ``CATALOG`` of its models without importing
them, so listing models never imports torch."""

from recforge.models.base import Recommender
from recforge.models.registry import get_model_class, list_models, make_model

__all__ = ["Recommender", "get_model_class", "list_models", "make_model"]

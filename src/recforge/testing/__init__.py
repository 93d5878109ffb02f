"""Shipped test helpers: tiny synthetic datasets with known answers and the model conformance suite."""

from recforge.testing.datasets import checkerboard, toy_ratings

__all__ = ["checkerboard", "toy_ratings"]

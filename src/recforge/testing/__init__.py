"""Shipped test helpers: tiny synthetic datasets with known answers and the model conformance suites.

The suites import pytest, so they live in their own modules:
:mod:`recforge.testing.conformance` (``RecommenderConformance``, user-item models),
:mod:`recforge.testing.ctr_conformance` (``CTRConformance``, CTR models) and their shared base
:mod:`recforge.testing.estimator_conformance` (``EstimatorConformance``).
"""

from recforge.testing.datasets import checkerboard, toy_ratings

__all__ = ["checkerboard", "toy_ratings"]

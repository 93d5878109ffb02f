"""Graph-filter rankers: training-free low-pass filters of the normalised item-item graph.

``gf-cf`` (Shen et al., CIKM 2021: linear filter plus an ideal low-pass filter from a truncated SVD),
``bspm`` (Choi et al., SIGIR 2023: blurring and sharpening ODEs over the same graph) and
``turbo-cf`` (Park et al., SIGIR 2024: a polynomial filter, no decomposition). The model modules
load lazily: importing this package for :data:`CATALOG` imports no model.
"""

from __future__ import annotations

__all__ = ["CATALOG"]

CATALOG = {
    "gf-cf": ("recforge.models.filters.gf_cf", "GFCF", "ranking"),
    "bspm": ("recforge.models.filters.bspm", "BSPM", "ranking"),
    "turbo-cf": ("recforge.models.filters.turbo_cf", "TurboCF", "ranking"),
}

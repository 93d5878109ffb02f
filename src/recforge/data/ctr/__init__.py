"""Click-through-rate data: field encoding fitted on training rows, encoded tables, sampled
negatives and the CTR readers of the registered datasets.

- :mod:`~recforge.data.ctr._encoding`: :class:`CTRData` (encoded rows), :class:`CTRSplit`,
  :class:`FieldSpec`, :func:`cross` and :class:`FeatureEncoder`.
- :mod:`~recforge.data.ctr._negatives`: :func:`sample_negatives` (raw frames) and
  :func:`with_sampled_negatives` (encoded rows), drawn by the one sampler of
  :mod:`recforge.data.sampling`.
- :mod:`~recforge.data.ctr.frappe`: Frappe's published split rebuilt from the raw log.
- :mod:`~recforge.data.ctr.readers`: frappe, frappe-pooled, ipinyou, criteo and MovieLens as CTR, and
  :func:`ctr_splits` for any registered CTR dataset.
"""

from recforge.data.ctr._encoding import _MISSING as _MISSING  # the missing-value category (serving.ranking)
from recforge.data.ctr._encoding import PAD, CTRData, CTRSplit, FeatureEncoder, FieldSpec, cross
from recforge.data.ctr._negatives import sample_negatives, with_sampled_negatives
# the readers' public names are listed once, in readers.__all__, and re-exported from here as they are
from recforge.data.ctr.readers import *  # noqa: F403
from recforge.data.ctr.readers import __all__ as _READERS
from recforge._arrays import random_parts

__all__ = [
    "PAD",
    "CTRData",
    "CTRSplit",
    "FeatureEncoder",
    "FieldSpec",
    "cross",
    "random_parts",
    "sample_negatives",
    "with_sampled_negatives",
    *_READERS,
]

"""Models that combine other registered models' predictions.

- ``blend``: :class:`~recforge.models.ensemble.blend.RatingBlend` (rating models' predictions
  combined by ridge regression or boosted trees learned on a validation carve, Netflix Prize style).
- ``normalized``: :class:`~recforge.models.ensemble.normalized.Normalized` (any rating model trained
  on per-user or per-item normalised ratings, predicting on the original scale).
"""

CATALOG = {
    "blend": ("recforge.models.ensemble.blend", "RatingBlend", "rating"),
    "normalized": ("recforge.models.ensemble.normalized", "Normalized", "rating"),
}

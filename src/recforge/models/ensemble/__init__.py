"""Models that combine other registered models' predictions.

- ``blend``: :class:`~recforge.models.ensemble.blend.RatingBlend` (rating models' predictions
  combined by ridge regression or boosted trees learned on a validation carve, Netflix Prize style).
"""

CATALOG = {
    "blend": ("recforge.models.ensemble.blend", "RatingBlend", "rating"),
}

"""Baselines every model must beat: global mean, user/item bias, popularity, random."""

CATALOG = {
    "global-mean": ("recforge.models.baselines.simple", "GlobalMean", "rating"),
    "bias": ("recforge.models.baselines.bias", "Bias", "rating"),
    "popularity": ("recforge.models.baselines.simple", "Popularity", "ranking"),
    "random": ("recforge.models.baselines.simple", "RandomScorer", "ranking"),
}

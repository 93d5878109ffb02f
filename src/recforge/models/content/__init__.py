"""Recommenders that use what is known about items and users, and cold-start routing.

- ``content``: :class:`~recforge.models.content.content.ContentBased` (attribute profiles, cosine).
- ``knowledge``: :class:`~recforge.models.content.knowledge.KnowledgeBased` (constraints + utility).
- ``hybrid-weighted``: :class:`~recforge.models.content.weighted.WeightedHybrid` (score blend, weights
  learned on validation data per history length).
- ``hybrid-switching``: :class:`~recforge.models.content.switching.SwitchingHybrid` (cold -> content or
  knowledge, warm -> collaborative filtering).
- ``lightfm-style``: :class:`~recforge.models.content.lightfm.LightFMStyle` (id + feature embeddings,
  BPR or WARP).
- ``demographic``: :class:`~recforge.models.content.demographic.DemographicPopularity` (popularity
  among users with the same attributes; the prior for users with no history).
"""

CATALOG = {
    "content": ("recforge.models.content.content", "ContentBased", "ranking"),
    "knowledge": ("recforge.models.content.knowledge", "KnowledgeBased", "rating"),
    "hybrid-weighted": ("recforge.models.content.weighted", "WeightedHybrid", "ranking"),
    "hybrid-switching": ("recforge.models.content.switching", "SwitchingHybrid", "ranking"),
    "lightfm-style": ("recforge.models.content.lightfm", "LightFMStyle", "ranking"),
    "demographic": ("recforge.models.content.demographic", "DemographicPopularity", "ranking"),
}

"""Models that turn implicit signals (plays, replays, watch time, completion) into explicit ratings.

- ``implicit-to-explicit``: :class:`~recforge.models.signals.mlp.ImplicitToExplicit`, an MLP on
  the shared Lightning loop (needs the ``torch`` extra).
- ``implicit-to-explicit-linear``: :class:`~recforge.models.signals.linear.ImplicitToExplicitLinear`,
  ridge regression on the same features (the classical baseline).

Both learn from the rows of a log that carry a rating and predict the others; ``fill_ratings``
hands the completed log to any rating model (the cold-start route of ``docs/implicit-to-explicit.md``).
"""

CATALOG = {
    "implicit-to-explicit": ("recforge.models.signals.mlp", "ImplicitToExplicit", "rating", "torch"),
    "implicit-to-explicit-linear": ("recforge.models.signals.linear", "ImplicitToExplicitLinear", "rating"),
}

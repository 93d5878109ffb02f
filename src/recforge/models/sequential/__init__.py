"""Sequence-aware recommenders (torch): Caser, GRU4Rec, SASRec.

They score the next item from the user's latest items and answer real-time requests from any
recent history (``recommend_for_history``). Listing these models never imports torch; building
one needs the ``torch`` extra.
"""

CATALOG = {
    "caser": ("recforge.models.sequential.caser", "Caser", "sequence", "torch"),
    "gru4rec": ("recforge.models.sequential.gru4rec", "GRU4Rec", "sequence", "torch"),
    "sasrec": ("recforge.models.sequential.sasrec", "SASRec", "sequence", "torch"),
}

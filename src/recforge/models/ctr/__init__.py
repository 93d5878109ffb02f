"""Click-through-rate models on encoded feature rows (:mod:`recforge.data.ctr`): LR, FM, DeepFM.

Listing these models never imports torch; building one needs the ``torch`` extra.
"""

CATALOG = {
    "lr": ("recforge.models.ctr.linear", "LogisticRegression", "ctr", "torch"),
    "fm": ("recforge.models.ctr.fm", "FM", "ctr", "torch"),
    "deepfm": ("recforge.models.ctr.fm", "DeepFM", "ctr", "torch"),
}

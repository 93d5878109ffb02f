"""Neural recommenders on torch, trained by the shared Lightning loop (:mod:`recforge.training`).

Listing these models never imports torch; building one needs the ``torch`` extra.
"""

CATALOG = {
    "mf-torch": ("recforge.models.neural.mf", "TorchMF", "rating", "torch"),
    "autorec": ("recforge.models.neural.autorec", "AutoRec", "rating", "torch"),
    "glocal-k": ("recforge.models.neural.glocal_k", "GLocalK", "rating", "torch"),
    "gmf": ("recforge.models.neural.ncf", "GMF", "ranking", "torch"),
    "mlp": ("recforge.models.neural.ncf", "MLP", "ranking", "torch"),
    "neumf": ("recforge.models.neural.ncf", "NeuMF", "ranking", "torch"),
    "ngcf": ("recforge.models.neural.graph", "NGCF", "ranking", "torch"),
    "lightgcn": ("recforge.models.neural.graph", "LightGCN", "ranking", "torch"),
    "two-tower": ("recforge.models.neural.two_tower", "TwoTower", "ranking", "torch"),
    "two-tower-context": ("recforge.models.neural.context_tower", "TwoTowerContext", "ranking", "torch"),
}

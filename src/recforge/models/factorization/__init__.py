"""Model-based collaborative filtering: latent-factor models fitted by SGD, ALS or multiplicative
updates, with compiled (numba) kernels.

- ``svd``: :class:`~recforge.models.factorization.sgd.BiasedMF` (Funk SVD with biases).
- ``svdpp``: :class:`~recforge.models.factorization.sgd.SVDpp` (Koren's SVD++).
- ``nmf``: :class:`~recforge.models.factorization.nmf.NMF` (non-negative MF, multiplicative updates).
- ``als``: :class:`~recforge.models.factorization.als.ALS` (explicit ALS-WR, optional biases).
- ``ials``: :class:`~recforge.models.factorization.ials.ImplicitALS` (Hu et al. confidence ALS, CG).
- ``bpr``: :class:`~recforge.models.factorization.bpr.BPR` (BPR-MF with item bias).
- ``pure-svd``: :class:`~recforge.models.factorization.pure_svd.PureSVD` (Cremonesi et al.'s truncated SVD).
"""

CATALOG = {
    "svd": ("recforge.models.factorization.sgd", "BiasedMF", "rating"),
    "svdpp": ("recforge.models.factorization.sgd", "SVDpp", "rating"),
    "nmf": ("recforge.models.factorization.nmf", "NMF", "rating"),
    "als": ("recforge.models.factorization.als", "ALS", "rating"),
    "ials": ("recforge.models.factorization.ials", "ImplicitALS", "ranking"),
    "bpr": ("recforge.models.factorization.bpr", "BPR", "ranking"),
    "pure-svd": ("recforge.models.factorization.pure_svd", "PureSVD", "ranking"),
}

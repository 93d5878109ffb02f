"""Memory-based models: rating kNN (item, user, baseline-centred), implicit kNN, RP3beta, EASE, SLIM and
onboarding kNN (short histories)."""

CATALOG = {
    "item-knn": ("recforge.models.neighbors.knn", "ItemKNN", "rating"),
    "user-knn": ("recforge.models.neighbors.knn", "UserKNN", "rating"),
    "knn-baseline": ("recforge.models.neighbors.knn", "KNNBaseline", "rating"),
    "item-knn-implicit": ("recforge.models.neighbors.implicit_knn", "ItemKNNImplicit", "ranking"),
    "user-knn-implicit": ("recforge.models.neighbors.implicit_knn", "UserKNNImplicit", "ranking"),
    "ease": ("recforge.models.neighbors.ease", "EASE", "ranking"),
    "slim": ("recforge.models.neighbors.slim", "SLIM", "ranking"),
    "rp3beta": ("recforge.models.neighbors.rp3beta", "RP3beta", "ranking"),
    "onboarding-knn": ("recforge.models.neighbors.onboarding", "OnboardingKNN", "ranking"),
}

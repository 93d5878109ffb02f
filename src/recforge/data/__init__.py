"""Data layer: interactions, vocabularies, readers, the dataset registry and statistics."""

from recforge.data.datasets import Dataset, list_datasets, load, load_file
from recforge.data.interactions import Interactions
from recforge.data.split import Split
from recforge.data.vocabulary import Vocabulary

__all__ = ["Dataset", "Interactions", "Split", "Vocabulary", "list_datasets", "load", "load_file"]

"""Data layer: interactions, vocabularies, readers, the dataset registry and statistics."""

from recforge.data.datasets import Dataset, list_datasets, load
from recforge.data.interactions import Interactions
from recforge.data.source import DataSource, data_source, load_file
from recforge.data.split import Split
from recforge.data.vocabulary import Vocabulary

__all__ = ["DataSource", "Dataset", "Interactions", "Split", "Vocabulary", "data_source", "list_datasets", "load", "load_file"]

"""Train/test splits of :class:`~recforge.data.interactions.Interactions`.

Every split keeps the parent's vocabularies (parts are row subsets), takes a ``seed`` where it is
random, and returns the same partition for the same inputs.
"""

from recforge.data.split import Split
from recforge.splits._cold import cold_start_split
from recforge.splits._random import kfold, random_parts, random_split, ratio_user_split
from recforge.splits._temporal import global_time_split, leave_one_out, temporal_user_split

__all__ = [
    "Split",
    "cold_start_split",
    "global_time_split",
    "kfold",
    "leave_one_out",
    "random_parts",
    "random_split",
    "ratio_user_split",
    "temporal_user_split",
]

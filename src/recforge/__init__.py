"""recforge: a recommender-systems toolkit from interaction log to served recommendations.

The core (data, splits, evaluation, classical models) needs only numpy, scipy, pandas and numba;
torch models, serving, plots and export live behind extras and are imported lazily.
"""

from recforge.errors import ConfigError, DataError, NotFittedError, RecforgeError

__version__ = "0.1.0"

__all__ = ["ConfigError", "DataError", "NotFittedError", "RecforgeError", "__version__"]

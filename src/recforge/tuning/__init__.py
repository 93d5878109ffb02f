"""Hyperparameter search with Optuna over the search space kept in the experiment file.

An experiment file's ``[tune]`` table sets the search (``n_trials``, ``metric``, ``direction``,
``pruner``, ``validation``, ``timeout``) and ``[tune.space]`` the hyperparameters to search::

    [tune]
    n_trials = 30
    metric = "NDCG@10"            # default: RMSE for rating models, NDCG@k for the others
    pruner = "median"             # median | hyperband | none
    [tune.space]
    embedding_size = { type = "int", low = 8, high = 128, log = true }
    learning_rate = { type = "float", low = 1e-4, high = 1e-1, log = true }
    loss = ["bpr", "bce"]         # a list is a categorical choice

Trials train on the protocol's training part minus a validation part carved from it (each
user's latest interaction, or a random fraction) and are scored on that validation part: the
protocol's test set is never looked at. Torch models report their validation metric to Optuna
every epoch through the shared Lightning loop, so bad trials are pruned early.
"""

from __future__ import annotations

from recforge.tuning.search import TuningResult, tune
from recforge.tuning.space import parse_space, suggest

__all__ = ["TuningResult", "parse_space", "suggest", "tune"]

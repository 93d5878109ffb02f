"""Hyperparameter search with Optuna over the search space kept in the experiment file.

An experiment file's ``[tune]`` table sets the search (``n_trials``, ``metric``, ``direction``,
``pruner``, ``validation``, ``timeout``) and ``[tune.space]`` the hyperparameters to search::

    [tune]
    n_trials = 30
    metric = "NDCG@10"            # default: RMSE for rating models, AUC for CTR models, NDCG@k for the others
    pruner = "median"             # median | hyperband | none
    report_every = 3              # iterative models: score the validation data every 3 epochs
    enqueue = [{ embedding_size = 64 }]   # values to try first (Optuna's enqueue_trial)
    [tune.space]
    embedding_size = { type = "int", low = 8, high = 128, log = true }
    learning_rate = { type = "float", low = 1e-4, high = 1e-1, log = true }
    loss = ["bpr", "bce"]         # a list is a categorical choice

Trials train on the protocol's training part minus a validation part carved from it (each
user's latest interaction, or a random fraction; CTR models: the ``ctr-holdout`` split's
validation rows) and are scored on that validation part: the protocol's test set is never looked
at. Bad trials are pruned early, the same way for every iterative model (the classical svd, svdpp,
nmf, als, ials, bpr between their compiled epochs, the torch and CTR models in the shared loop):
through :attr:`recforge.config.FitOptions.epoch_callback`, which the tuner sets to score the model
on the validation part every ``report_every`` epochs (default ``epochs // 10``) and raise
``optuna.TrialPruned`` when the pruner says so (or the score is not finite). Torch and CTR models
also get the validation part as ``FitOptions.validation`` (early stopping, best-epoch restore).
"""

from __future__ import annotations

from recforge.tuning.search import TuningResult, tune
from recforge.tuning.space import parse_space, suggest

__all__ = ["TuningResult", "parse_space", "suggest", "tune"]

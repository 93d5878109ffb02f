"""The ``ctr-holdout`` protocol: AUC and log loss of a CTR model on held-out rows.

The dataset's CTR split comes from :func:`recforge.data.ctr.ctr_splits` (the feature encoder is
fitted on the training rows only): iPinYou keeps its given train/test files (10% of train, seeded,
validates); Frappe ships only its validation and test files, so they are pooled and split 8:1:1 at
random with the run's seed (69,266 / 8,658 / 8,658 rows: 34% of the published 202,027-row
training file); the Criteo sample and MovieLens-100K as CTR (label ``rating >= 4``) are
split at random (8:1:1, seeded). The model trains with early stopping on validation AUC (patience 3
unless :class:`~recforge.training.TrainingOptions` say otherwise) and is scored once on the test
rows. Scoring latency per 1,000 candidate rows is measured on the test rows as well.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd

from recforge.config import FitOptions
from recforge.data.ctr import CTRSplit, ctr_splits
from recforge.errors import ConfigError
from recforge import metrics as M
from recforge.evaluation.protocols import Protocol, _fresh, register_protocol
from recforge.evaluation.results import EvaluationResult

DEFAULT_PATIENCE = 3


def _options(options: FitOptions, split: CTRSplit) -> Any:
    from recforge.training.options import TrainingOptions

    if isinstance(options, TrainingOptions):
        return options if options.validation is not None or split.valid is None else \
            _replace(options, validation=split.valid)
    return TrainingOptions(seed=options.seed, device=options.device, progress=options.progress, logger=options.logger,
                           validation=split.valid, threads=options.threads, verbose=options.verbose,
                           patience=DEFAULT_PATIENCE)


def _replace(options: Any, **kw: Any) -> Any:
    import dataclasses

    return dataclasses.replace(options, **kw)


def score_split(model: Any, split: CTRSplit, options: FitOptions, label: str, dataset: str,
                protocol: str = "ctr-holdout") -> EvaluationResult:
    """Fit a fresh copy of ``model`` on ``split.train`` (validating on ``split.valid``) and score ``split.test``."""
    fitted = _fresh(model)
    t0 = time.perf_counter()
    fitted.fit(split.train, _options(options, split))
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    p = fitted.predict_proba(split.test)
    pred_s = time.perf_counter() - t0
    y = split.test.labels
    n_lat = min(1000, len(split.test))
    lat = []
    for _ in range(5):
        t1 = time.perf_counter()
        fitted.predict_proba(split.test.subset(np.arange(n_lat)))
        lat.append(time.perf_counter() - t1)
    row = {
        "protocol": protocol, "dataset": dataset, "model": label, "fold": 1,
        "AUC": M.roc_auc(y, p), "LogLoss": M.log_loss(y, p),
        "fit_seconds": fit_s, "predict_seconds": pred_s,
        "epochs_run": int(getattr(fitted, "epochs_run_", 0)),
        "best_epoch": -1 if getattr(fitted, "best_epoch_", None) is None else int(fitted.best_epoch_),
        "train_rows_per_s": len(split.train) * max(1, int(getattr(fitted, "epochs_run_", 1) or 1)) / max(fit_s, 1e-9),
        "ms_per_1000_candidates": 1000.0 * float(np.median(lat)) * 1000.0 / max(n_lat, 1),
        "n_train": len(split.train), "n_valid": 0 if split.valid is None else len(split.valid),
        "n_eval": len(y), "n_fallback": 0,
    }
    df = pd.DataFrame([row])
    mean = {**row, "fold": "mean"}
    df = pd.concat([df, pd.DataFrame([mean])], ignore_index=True)
    df["fold"] = df["fold"].astype(str)
    per = {(label, "logloss"): -(y * np.log(np.clip(p, 1e-15, 1)) + (1 - y) * np.log(np.clip(1 - p, 1e-15, 1)))}
    return EvaluationResult(df, per, [split.description])


def _run_ctr_holdout(*, model, dataset, k, options, label, progress) -> EvaluationResult:
    if getattr(model, "task", None) != "ctr":
        raise ConfigError(f"protocol 'ctr-holdout' needs a CTR model (lr, fm, deepfm); {model.name!r} is a "
                          f"{model.task} model")
    seed = 0 if options.seed is None else options.seed
    split = ctr_splits(dataset, seed=seed)
    return score_split(model, split, options, label, dataset.name)


register_protocol(Protocol("ctr-holdout", "ctr", "CTR rows: given or seeded random train/valid/test; AUC, log loss",
                           _run_ctr_holdout, 0))

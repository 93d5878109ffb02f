"""The ``ctr-holdout`` protocol: AUC and log loss of a CTR model on held-out rows.

The dataset's CTR split comes from :func:`recforge.data.ctr.ctr_splits` (the feature encoder is
fitted on the training rows only): iPinYou keeps its given train/test files (10% of train, seeded,
validates); ``frappe`` is the published NFM split (training rows rebuilt from the raw log with 2
sampled negatives per positive drawn with the run's seed, the published validation and test
files; :mod:`recforge.data.ctr.frappe`); ``frappe-pooled`` pools the two published files and splits
them 8:1:1 at random with the run's seed (69,266 / 8,658 / 8,658 rows); the Criteo sample and MovieLens-100K as CTR (label ``rating >= 4``) are
split at random (8:1:1, seeded). The model trains with early stopping on validation AUC (patience
:data:`DEFAULT_PATIENCE` unless ``FitOptions.patience`` is set) and is scored once on the test
rows. Scoring latency per 1,000 candidate rows is measured on the test rows as well.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from recforge import metrics as M
from recforge.config import FitOptions
from recforge.data.ctr import CTRSplit, ctr_splits
from recforge.errors import ConfigError
from recforge.evaluation.protocols import Protocol, Scored, register_protocol
from recforge.evaluation.results import EvaluationResult

#: Validation checks without improvement before a ``ctr-holdout`` fit stops (``patience="auto"``).
DEFAULT_PATIENCE = 3


@dataclass(frozen=True)
class CTRHoldout(Protocol):
    """Fit on the CTR split's training rows (validating on its validation rows), score its test rows."""

    def check_model(self, model: Any) -> None:
        if getattr(model, "task", None) != "ctr":
            raise ConfigError(f"protocol {self.name!r} needs a CTR model (lr, fm, deepfm); {model.name!r} is a "
                              f"{model.task} model")

    def splits(self, dataset: Any, seed: int = 0) -> list[CTRSplit]:
        return [ctr_splits(dataset, seed=seed)]

    def fit_options(self, options: FitOptions, split: Any) -> FitOptions:
        options = super().fit_options(options, split)
        if options.patience == "auto":
            options = options.replace(patience=DEFAULT_PATIENCE)
        return options

    def score(self, fitted: Any, split: Any, *, k: int, dataset: Any, seed: int) -> Scored:
        t0 = time.perf_counter()
        p = fitted.predict_proba(split.test)
        seconds = time.perf_counter() - t0
        y = split.test.labels
        n_lat = min(1000, len(split.test))
        lat = []
        for _ in range(5):
            t1 = time.perf_counter()
            fitted.predict_proba(split.test.subset(np.arange(n_lat)))
            lat.append(time.perf_counter() - t1)
        epochs = int(getattr(fitted, "epochs_run_", 0))
        best = getattr(fitted, "best_epoch_", None)
        counts = {
            "epochs_run": epochs,
            "best_epoch": -1 if best is None else int(best),
            "ms_per_1000_candidates": 1000.0 * float(np.median(lat)) * 1000.0 / max(n_lat, 1),
            "n_train": len(split.train), "n_valid": 0 if split.valid is None else len(split.valid),
            "n_eval": len(y), "n_fallback": 0,
        }
        logloss = -(y * np.log(np.clip(p, 1e-15, 1)) + (1 - y) * np.log(np.clip(1 - p, 1e-15, 1)))
        return Scored({"AUC": M.roc_auc(y, p), "LogLoss": M.log_loss(y, p)}, {"logloss": logloss}, seconds, counts)

    def row(self, ids: dict[str, Any], scored: Scored, fit_seconds: float, fitted: Any,
            split: Any) -> dict[str, Any]:
        counts = dict(scored.counts)
        epochs = int(getattr(fitted, "epochs_run_", 1) or 1)
        head = {"epochs_run": counts.pop("epochs_run"), "best_epoch": counts.pop("best_epoch"),
                "train_rows_per_s": len(split.train) * max(1, epochs) / max(fit_seconds, 1e-9)}
        return {**ids, **scored.metrics, "fit_seconds": fit_seconds, "predict_seconds": scored.seconds,
                **head, **counts}

    def table(self, rows: list[dict[str, Any]]) -> pd.DataFrame:
        df = pd.DataFrame(rows)
        df = pd.concat([df, pd.DataFrame([{**rows[-1], "fold": "mean"}])], ignore_index=True)
        df["fold"] = df["fold"].astype(str)
        return df

    def notes(self, seed: int, splits: list[Any]) -> list[str]:
        return [split.description for split in splits]


PROTOCOL = register_protocol(CTRHoldout(
    "ctr-holdout", "ctr", "CTR rows: given or seeded random train/valid/test; AUC, log loss", 0))


def score_split(model: Any, split: CTRSplit, options: FitOptions, label: str, dataset: str,
                protocol: str = "ctr-holdout") -> EvaluationResult:
    """Fit a fresh copy of ``model`` on ``split.train`` (validating on ``split.valid``) and score ``split.test``.

    The ``ctr-holdout`` procedure on a split made elsewhere; ``dataset`` names it in the rows.
    """
    proto = PROTOCOL if protocol == PROTOCOL.name else CTRHoldout(protocol, PROTOCOL.task, PROTOCOL.description, 0)
    return proto.run_splits(model, [split], dataset, options=options, label=label)

"""The default logger: plain CSV and JSON files, nothing to install or set up."""

from __future__ import annotations

import csv
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from recforge.loggers._base import ExperimentLogger, finite_metrics, next_version, write_json


class CSVLogger(ExperimentLogger):
    """Writes ``root/<name>/version_N/``: ``metrics.csv``, ``config.json``, ``environment.json``, ``summary.json``.

    ``metrics.csv`` is a tidy table with one row per value: ``time, step, metric, value`` (a
    metric logged without a step has an empty ``step``); torch models' Lightning metrics go to
    ``lightning/metrics.csv`` in the same folder.
    """

    kind = "csv"

    def __init__(self, root: str | Path = "runs", name: str = "run", project: str = "recforge") -> None:
        super().__init__(root, name, project)
        self._dir = next_version(self.root / self.name)
        self._dir.mkdir(parents=True)
        self._metrics_path = self._dir / "metrics.csv"
        with open(self._metrics_path, "w", newline="", encoding="utf-8") as fh:
            csv.writer(fh).writerow(["time", "step", "metric", "value"])

    @property
    def run_dir(self) -> Path:
        return self._dir

    def log_config(self, config: Mapping[str, Any]) -> None:
        write_json(self._dir / "config.json", dict(config))

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        now = f"{time.time():.3f}"
        with open(self._metrics_path, "a", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            for key, val in finite_metrics(metrics).items():
                w.writerow([now, "" if step is None else int(step), key, repr(val)])

    def _log_summary(self, metrics: dict[str, float]) -> None:
        self.log_metrics(metrics)
        write_json(self._dir / "summary.json", self.summary)

    def _log_environment(self, env: dict[str, Any]) -> None:
        write_json(self._dir / "environment.json", env)

    def lightning(self, prefix: str = "") -> Any:
        from lightning.pytorch.loggers import CSVLogger as LightningCSV

        return LightningCSV(save_dir=str(self._dir), name="lightning", version="", prefix=prefix)

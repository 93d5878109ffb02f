"""Weights & Biases, offline by default: no account and no network; sync later with ``wandb sync``."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from recforge._optional import require
from recforge.loggers._base import ExperimentLogger, finite_metrics


class WandbLogger(ExperimentLogger):
    """A W&B run written under ``root/wandb/offline-run-<time>-<id>/`` (``run-<id>.wandb``).

    The mode is ``WANDB_MODE`` when set, otherwise ``"offline"``: nothing is sent anywhere and no
    login is needed; ``wandb sync <run folder>`` uploads the run later. System-metric sampling,
    console capture and code saving are off, so a run costs no extra processes' CPU.
    Per-epoch metrics are logged with an ``epoch`` key; the summary holds the final metrics; the
    config holds the run configuration plus an ``environment`` entry.
    """

    kind = "wandb"

    def __init__(self, root: str | Path = "runs", name: str = "run", project: str = "recforge",
                 mode: str | None = None) -> None:
        super().__init__(root, name, project)
        wandb = require("wandb", purpose="the Weights & Biases logger")
        self.root.mkdir(parents=True, exist_ok=True)
        self.mode = mode or os.environ.get("WANDB_MODE") or "offline"
        settings = wandb.Settings(
            silent=True, console="off", x_disable_stats=True, disable_git=True, save_code=False,
            disable_code=True, x_save_requirements=True,
        )
        self.run = wandb.init(project=project, name=self.name, dir=str(self.root.resolve()), mode=self.mode,
                              settings=settings, reinit="create_new")
        self._dir = Path(self.run.dir).parent

    @property
    def run_dir(self) -> Path:
        return self._dir

    @property
    def run_id(self) -> str:
        return str(self.run.id)

    def log_config(self, config: Mapping[str, Any]) -> None:
        self.run.config.update(dict(config), allow_val_change=True)

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        vals: dict[str, Any] = finite_metrics(metrics)
        if not vals:
            return
        if step is not None:
            vals["epoch"] = int(step)
        # wandb's own step counts log calls; the epoch is a metric, so folds may restart it
        self.run.log(vals)

    def _log_summary(self, metrics: dict[str, float]) -> None:
        self.run.summary.update(metrics)

    def _log_environment(self, env: dict[str, Any]) -> None:
        self.run.config.update({"environment": env}, allow_val_change=True)

    def log_artifact(self, path: str | Path) -> None:
        import shutil

        # files placed in the run's files folder are part of the run (uploaded by `wandb sync`)
        shutil.copy2(path, Path(self.run.dir) / Path(path).name)

    def lightning(self, prefix: str = "") -> Any:
        from lightning.pytorch.loggers import WandbLogger as LightningWandb

        return LightningWandb(experiment=self.run, prefix=prefix)

    def _close(self, status: str) -> None:
        self.run.finish(exit_code=0 if status == "success" else 1)
        if self.mode == "offline":
            # wandb-core writes the run file in its own process; wait until it has written the exit
            # record, so the run is complete on disk when close() returns
            from recforge.loggers.readers import wandb_run_complete

            deadline = time.monotonic() + 60
            while not wandb_run_complete(self._dir) and time.monotonic() < deadline:
                time.sleep(0.05)

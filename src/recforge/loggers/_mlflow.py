"""MLflow with a local file store (``root/mlruns``; ``mlflow ui --backend-store-uri ROOT/mlruns``)."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from recforge._optional import require
from recforge.loggers._base import ExperimentLogger, finite_metrics, flatten


def mlflow_key(name: str) -> str:
    """A metric or parameter name MLflow accepts: ``@`` becomes ``_at_``, other odd characters ``_``."""
    return re.sub(r"[^A-Za-z0-9_/. -]", "_", name.replace("@", "_at_"))


class MLflowLogger(ExperimentLogger):
    """An MLflow run in the file store ``root/mlruns/<experiment id>/<run id>/``.

    Files: ``params/<name>`` (the flattened config), ``metrics/<name>`` (lines
    ``timestamp value step``), ``tags/``, and ``artifacts/environment.json``. Metric names are
    made MLflow-safe (``NDCG@10`` -> ``NDCG_at_10``). MLflow 3 keeps the file store in
    maintenance mode behind ``MLFLOW_ALLOW_FILE_STORE=true``; this logger sets that variable
    unless it is already set. Pass ``tracking_uri`` (e.g. ``sqlite:///mlflow.db``) to use
    another store.
    """

    kind = "mlflow"

    def __init__(self, root: str | Path = "runs", name: str = "run", project: str = "recforge",
                 tracking_uri: str | None = None) -> None:
        super().__init__(root, name, project)
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        require("mlflow", purpose="the MLflow logger")
        from mlflow.tracking import MlflowClient

        self.tracking_uri = tracking_uri or (self.root.resolve() / "mlruns").as_uri()
        self.client = MlflowClient(tracking_uri=self.tracking_uri)
        exp = self.client.get_experiment_by_name(project)
        self.experiment_id = exp.experiment_id if exp is not None else self.client.create_experiment(project)
        self.run = self.client.create_run(self.experiment_id, run_name=self.name)
        self.run_id = self.run.info.run_id

    @property
    def run_dir(self) -> Path:
        uri = self.run.info.artifact_uri
        if uri.startswith("file:"):
            from urllib.parse import unquote, urlparse

            return Path(unquote(urlparse(uri).path)).parent
        return self.root / "mlruns" / self.experiment_id / self.run_id

    def log_config(self, config: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        params = [Param(mlflow_key(k), str(v)[:6000]) for k, v in flatten(config).items()]
        for s in range(0, len(params), 100):
            self.client.log_batch(self.run_id, params=params[s : s + 100])

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(mlflow_key(k), v, now, int(step or 0)) for k, v in finite_metrics(metrics).items()]
        if batch:
            self.client.log_batch(self.run_id, metrics=batch)

    def _log_summary(self, metrics: dict[str, float]) -> None:
        self.log_metrics(metrics, step=0)

    def _log_environment(self, env: dict[str, Any]) -> None:
        self.client.log_dict(self.run_id, env, "environment.json")
        tags = {"env.python": env.get("python", ""), "env.device": env.get("device", "")}
        for pkg, ver in env.get("packages", {}).items():
            tags[f"env.{pkg}"] = ver
        for key, val in tags.items():
            self.client.set_tag(self.run_id, mlflow_key(key), str(val))

    def log_artifact(self, path: str | Path) -> None:
        self.client.log_artifact(self.run_id, str(path))

    def lightning(self, prefix: str = "") -> Any:
        from lightning.pytorch.loggers import MLFlowLogger

        class _SafeMLFlowLogger(MLFlowLogger):
            def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
                super().log_metrics({mlflow_key(k): v for k, v in metrics.items()}, step)

            def finalize(self, status: str = "success") -> None:
                # the run belongs to the experiment logger, which ends it; Lightning would end it here
                return None

        return _SafeMLFlowLogger(experiment_name=self.project, tracking_uri=self.tracking_uri, run_id=self.run_id,
                                 prefix=prefix)

    def _close(self, status: str) -> None:
        self.client.set_terminated(self.run_id, "FINISHED" if status == "success" else "FAILED")

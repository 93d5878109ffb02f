"""Running the service: one process under uvicorn, or several worker processes on one port."""

from __future__ import annotations

import dataclasses
import gc
import json
import os
import shutil
import tempfile

from recforge._optional import require
from recforge.errors import ConfigError
from recforge.serving.config import ServiceConfig

require("fastapi", purpose="the recommendation service")

from fastapi import FastAPI  # noqa: E402

from recforge.serving.app import create_app  # noqa: E402

__all__ = ["app_from_env", "check_workers", "serve", "serve_workers"]

_CONFIG_ENV = "RECFORGE_SERVE_CONFIG"


def serve(app: FastAPI, host: str = "127.0.0.1", port: int = 8000, log_level: str = "warning") -> None:
    """Run ``app`` under uvicorn (blocking)."""
    uvicorn = require("uvicorn", purpose="serving HTTP")
    _freeze_heap()
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False)


def _freeze_heap() -> None:
    """Move the loaded model's objects out of the garbage collector's reach: a full collection
    then walks only the objects requests create (shorter pauses, a lower p99)."""
    gc.collect()
    gc.freeze()


def check_workers(config: ServiceConfig, workers: int) -> None:
    """Refuse fewer than one worker, or several without a shared (Redis) history.

    Raises:
        ConfigError: Naming the problem.
    """
    if workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}")
    if workers > 1 and not config.redis:
        raise ConfigError("several worker processes need a shared history: set redis (e.g. redis://127.0.0.1:6379/0)")


def serve_workers(config: ServiceConfig, workers: int, host: str = "127.0.0.1", port: int = 8000,
                  log_level: str = "warning") -> None:
    """Run ``workers`` service processes on one port (uvicorn's process manager).

    Recent history must live in Redis so every process sees every user's events; the
    configuration reaches the worker processes through the environment.

    Raises:
        ConfigError: For fewer than one worker, or several without Redis.
    """
    check_workers(config, workers)
    uvicorn = require("uvicorn", purpose="serving HTTP")
    os.environ[_CONFIG_ENV] = json.dumps(dataclasses.asdict(config))
    # one scrape of /metrics sums every worker: prometheus_client's multiprocess mode, each worker
    # writing its values under this folder (emptied per run; workers inherit the variable)
    own_dir = "PROMETHEUS_MULTIPROC_DIR" not in os.environ
    metrics_dir = tempfile.mkdtemp(prefix="recforge-metrics-") if own_dir else os.environ["PROMETHEUS_MULTIPROC_DIR"]
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    try:
        uvicorn.run("recforge.serving.run:app_from_env", factory=True, host=host, port=port, workers=workers,
                    log_level=log_level, access_log=False)
    finally:
        if own_dir:
            shutil.rmtree(metrics_dir, ignore_errors=True)
            os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)


def app_from_env() -> FastAPI:
    """The app of a worker process started by :func:`serve_workers`."""
    raw = os.environ.get(_CONFIG_ENV)
    if not raw:
        raise ConfigError(f"{_CONFIG_ENV} is not set; start workers with serve_workers()")
    app = create_app(ServiceConfig.from_dict(json.loads(raw)))
    _freeze_heap()
    return app

"""The service's shared state: the loaded model version, Prometheus metrics and the stores.

:class:`ServiceState` holds one :class:`ModelBundle` and swaps it atomically on reload, so a
request that started with the old version finishes with it.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recforge._arrays import plain_id
from recforge.errors import ConfigError, DataError, RecforgeError
from recforge.serving.config import ServiceConfig
from recforge.serving.features import load_item_features
from recforge.serving.history import History, MemoryHistory, make_history
from recforge.serving.pipeline import Pipeline

__all__ = ["Metrics", "ModelBundle", "ServiceState", "load_bundle"]

log = logging.getLogger("recforge.serving")


@dataclass
class ModelBundle:
    """A loaded model version: the pipeline and its identity."""

    pipeline: Pipeline
    version: str
    path: str | None
    loaded_at: float = field(default_factory=time.time)

    def item_json(self) -> list[bytes]:
        """Per item index, the start of its JSON list entry ``{"item_id":<id>,"score":`` (built once)."""
        frags = self.__dict__.get("_item_json")
        if frags is None:
            frags = self._item_json = [
                b'{"item_id":' + json.dumps(plain_id(x), ensure_ascii=False).encode() + b',"score":'
                for x in self.pipeline.view.item_ids.tolist()
            ]
        return frags


def load_bundle(path: str | Path, pipeline_cfg: dict[str, Any] | str | None, item_features: Any,
                cold_model: str | Path | None = None) -> ModelBundle:
    """Load a saved model (and cold-start model) and build its pipeline (index included)."""
    from recforge.models.base import Recommender
    from recforge.serving.batch import model_version

    model = Recommender.load(path)
    cold = Recommender.load(cold_model) if cold_model else None
    pipe = Pipeline.from_config({} if pipeline_cfg is None else pipeline_cfg, model, item_features=item_features,
                                cold_start=cold)
    return ModelBundle(pipe, model_version(model, path), str(path))


def _one_line(exc: BaseException | str, limit: int = 300) -> str:
    """An error as one line of at most ``limit`` characters."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


class Metrics:
    """Prometheus metrics of one app (own registry, so several apps can live in one process)."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter("recforge_http_requests_total", "HTTP requests", ["route", "method", "status"],
                                registry=self.registry)
        self.latency = Histogram(
            "recforge_http_request_seconds", "Request latency", ["route"], registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
        )
        self.recs = Counter("recforge_recommendations_total", "Recommendation lists served by source", ["source"],
                            registry=self.registry)
        self.events = Counter("recforge_events_total", "Events accepted by type", ["type"], registry=self.registry)
        self.rejected = Counter("recforge_events_rejected_total", "Events rejected", ["reason"],
                                registry=self.registry)
        self.loaded = Gauge("recforge_model_loaded", "1 when a model is loaded (the lowest over worker processes)",
                            registry=self.registry, multiprocess_mode="min")
        self.reloads = Counter("recforge_model_reloads_total", "Model reloads", ["outcome"], registry=self.registry)
        self.errors = Counter("recforge_backend_errors_total", "Failures of the database or history store",
                              ["backend"], registry=self.registry)

        self._children: dict[tuple[str, str, str], Any] = {}

    def observe(self, route: str, method: str, code: int, seconds: float) -> None:
        """Count one request and record its latency (label children cached: ~1 us instead of ~15)."""
        key = (route, method, str(code))
        pair = self._children.get(key)
        if pair is None:
            pair = self._children[key] = (self.requests.labels(*key), self.latency.labels(route))
        pair[0].inc()
        pair[1].observe(seconds)

    def rec_source(self, source: str) -> None:
        """Count one recommendation list by where it came from (model, fallback, batch...)."""
        child = self._children.get(("recs", source, ""))
        if child is None:
            child = self._children[("recs", source, "")] = self.recs.labels(source)
        child.inc()

    def render(self) -> tuple[bytes, str]:
        """The Prometheus text exposition and its content type.

        Under several worker processes (``PROMETHEUS_MULTIPROC_DIR`` set, as
        :func:`recforge.serving.run.serve_workers` does) every worker writes its values to files
        there and one scrape sums all workers (prometheus_client's multiprocess mode)."""
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class ServiceState:
    """The service's shared state; ``bundle`` is swapped atomically on reload.

    Args:
        config: The service config.
        bundle: A ready model bundle (tests); default: load ``config.model``.
        history: A recent-history store; default: Redis when ``config.redis`` is set, else in process.
        load_model: Load ``config.model`` at start (when no bundle is given).
    """

    def __init__(self, config: ServiceConfig, *, bundle: ModelBundle | None = None,
                 history: History | None = None, load_model: bool = True) -> None:
        from recforge.serving.db import EventStore, RecommendationReader, make_engine

        self.config = config
        self.api_key = config.api_key or os.environ.get("RECFORGE_API_KEY") or None
        self.metrics = Metrics()
        self.item_features = load_item_features(config.item_features) if config.item_features else None
        self.engine = make_engine(config.database)
        self.events = EventStore(self.engine, config.events_table)
        self.reader = RecommendationReader(self.engine, config.recommendations_table)
        self.history: History = history or make_history(config.redis, config.history_size, config.redis_prefix)
        self._reload_lock = threading.Lock()
        self.bundle: ModelBundle | None = bundle
        self.load_error: str | None = None
        self.last_reload: dict[str, Any] | None = None
        if self.bundle is None and load_model and config.model:
            try:
                self.bundle = load_bundle(config.model, config.pipeline, self.item_features, config.cold_model)
            except (RecforgeError, OSError) as exc:
                if not config.allow_empty:
                    self.close()
                    raise DataError(_one_line(exc)) from None
                # asked for: serve from the batch table rather than not at all
                self.load_error = _one_line(exc)
                log.warning("model not loaded (%s); answering from the batch table (allow_empty)", self.load_error)
        self.metrics.loaded.set(1 if self.bundle else 0)
        self.history_rebuilt = 0
        if config.rebuild_history and isinstance(self.history, MemoryHistory):
            self.history_rebuilt = self._rebuild_history()

    def _rebuild_history(self) -> int:
        """Refill the in-process history from the events table (see ``ServiceConfig.rebuild_history``);
        returns the number of events pushed. A database that cannot be read is logged, not fatal."""
        try:
            rows = self.events.latest_per_user(self.config.history_size, self.config.rebuild_max_events)
        except Exception as exc:  # noqa: BLE001 - start without history rather than not at all
            self.metrics.errors.labels("database").inc()
            log.error("rebuilding recent history from the events table failed: %s", _one_line(exc))
            return 0
        for user_id, item_id, value in rows:  # oldest first: each push becomes the most recent
            self.history.push(user_id, item_id, 1.0 if value is None else float(value))
        if rows:
            log.info("recent history rebuilt from %d stored events", len(rows))
        return len(rows)

    def models_dir(self) -> Path | None:
        """The folder reloads may read from (``config.models_dir``, else the model's folder)."""
        d = self.config.models_dir or (str(Path(self.config.model).parent) if self.config.model else None)
        return Path(d).resolve() if d else None

    def confine(self, path: str) -> str:
        """``path`` resolved inside :meth:`models_dir` (relative paths are relative to it).

        Raises:
            PermissionError: Outside it (or no folder configured); the message never says whether
                the path exists.
        """
        root = self.models_dir()
        if root is None:
            raise PermissionError("reloading another path needs models_dir in the service config")
        p = Path(path)
        full = (p if p.is_absolute() else root / p).resolve()
        if not full.is_relative_to(root):
            raise PermissionError("model_path must name a file inside the service's models directory")
        return str(full)

    def database_ok(self) -> bool:
        """Whether the database answers ``SELECT 1``."""
        import sqlalchemy as sa

        try:
            with self.engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
            return True
        except Exception:  # noqa: BLE001 - any failure means "not reachable"
            return False

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """``(ready, report)`` for ``/readyz``: a model is loaded (its arrays were checked finite and
        consistent when it loaded) or the batch table may answer (``allow_empty``), the database
        answers, Redis answers when configured; plus the last reload's outcome."""
        b = self.bundle
        checks = {
            "model": "ok" if b is not None else ("absent (batch table only)" if self.config.allow_empty else "absent"),
            "database": "ok" if self.database_ok() else "unreachable",
            "history": "ok" if self.history.ping() else f"{self.history.describe()} unreachable",
        }
        ready = (b is not None or self.config.allow_empty) and checks["database"] == "ok" and checks["history"] == "ok"
        report = {
            "status": "ready" if ready else "not ready",
            "checks": checks,
            "model_version": b.version if b else None,
            "load_error": self.load_error,
            "last_reload": self.last_reload,
        }
        return ready, report

    def recent(self, user_id: str) -> list[tuple[str, float]]:
        """The user's recent events; an unavailable history store degrades the answer, never fails it."""
        try:
            return self.history.recent(user_id)
        except Exception as exc:  # noqa: BLE001 - any store failure: answer without recent events
            self.metrics.errors.labels("history").inc()
            log.warning("recent history unavailable (%s); answering without it", exc)
            return []

    def reload(self, path: str | None = None) -> ModelBundle:
        """Load ``path`` (default: the configured model) and swap it in; requests never wait.

        A path given by a caller must lie inside :meth:`models_dir`. Any failure keeps the loaded
        version serving, is recorded in ``last_reload`` (``/readyz``) and raises a
        :class:`DataError` with one line.
        """
        target = self.confine(path) if path else ((self.bundle.path if self.bundle else None) or self.config.model)
        if not target:
            raise ConfigError("no model path configured to reload")
        with self._reload_lock:
            try:
                new = load_bundle(target, self.config.pipeline, self.item_features, self.config.cold_model)
            except Exception as exc:
                self.metrics.reloads.labels("error").inc()
                msg = _one_line(exc) if isinstance(exc, (RecforgeError, OSError)) else (
                    f"{target}: could not build the serving pipeline ({type(exc).__name__}: {_one_line(exc)})")
                self.last_reload = {"outcome": "error", "path": target, "error": msg, "at": time.time()}
                self.load_error = msg
                raise DataError(msg) from None
            self.bundle = new  # one reference assignment: in-flight requests keep the old bundle
            self.load_error = None
            self.last_reload = {"outcome": "ok", "path": target, "model_version": new.version, "at": time.time()}
        self.metrics.reloads.labels("ok").inc()
        self.metrics.loaded.set(1)
        return new

    def close(self) -> None:
        self.engine.dispose()

"""What the recommendation service reads at start-up: :class:`ServiceConfig` and its file format.

A service config is the ``[serve]`` table of a TOML/YAML file (or the file's top level), with an
optional ``[pipeline]`` table (see :mod:`recforge.serving.pipeline`); ``recforge serve`` flags
override its values.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from recforge.config import check_keys
from recforge.errors import ConfigError

__all__ = ["ID_PATTERN", "MAX_K", "ServiceConfig", "read_service_config"]

ID_PATTERN = r"^[^\x00-\x1f\x7f/]{1,128}$"
"""Raw user and item ids the service accepts: 1-128 characters, no control characters, no ``/``."""
MAX_K = 500
"""The longest list a request may ask for."""


@dataclass
class ServiceConfig:
    """Everything the service reads at start-up (TOML/YAML ``[serve]`` table or CLI flags).

    Attributes:
        model: Path of a model saved by ``recforge train`` / ``Recommender.save``; may be None to
            serve only the batch table.
        pipeline: Pipeline config (dict) or a path to a TOML/YAML file; None = ANN (or item-kNN)
            retrieval, drop seen, no ranker.
        item_features: Registered dataset name or CSV/Parquet file with item features (for
            attribute block lists and genre MMR).
        database: SQLAlchemy URL or SQLite path for events and the batch table.
        recommendations_table: Name of the batch table.
        events_table: Name of the events table.
        redis: ``redis://...`` to share recent history between processes; None = in process.
        redis_prefix: Key prefix of history lists in Redis.
        api_key: Key required in ``X-API-Key`` on write endpoints (env ``RECFORGE_API_KEY``
            when None). Without any key, writes are refused unless ``allow_anonymous_writes``.
        allow_anonymous_writes: Accept writes without a key (development only).
        max_body_bytes: Largest accepted request body.
        history_size: Recent events kept per user.
        default_k: List length when ``k`` is not given.
        watch_model_seconds: When > 0, check the model file's modification time this often and
            hot-reload a new version written there (e.g. by ``recforge train --output``); 0 = off.
        allow_empty: Start even when ``model`` cannot be loaded (missing or corrupt file), serving
            the batch table; without it the service refuses to start. ``recforge serve`` also
            needs it to start without any model.
        models_dir: The folder ``POST /v1/admin/reload`` may load model files from (default: the
            configured model's folder); other paths are refused without saying whether they exist.
        rebuild_history: At start, refill the in-process recent history from the events table
            (the latest ``history_size`` events of each user who has events in the last
            ``rebuild_max_events`` rows); Redis keeps its own.
        rebuild_max_events: The most recent events read for that rebuild.
        cold_model: Path of a saved cold-start model (``content``, ``hybrid-switching``,
            ``lightfm-style``...): users the model never saw, or with fewer than the pipeline's
            ``cold_start.threshold`` items of history, are answered from the events they sent
            (overrides ``cold_start.model`` of the pipeline config); None = popularity fallback.
    """

    model: str | None = None
    pipeline: dict[str, Any] | str | None = None
    item_features: str | None = None
    database: str | None = None
    recommendations_table: str = "recommendations"
    events_table: str = "events"
    redis: str | None = None
    redis_prefix: str = "recforge:history:"
    api_key: str | None = None
    allow_anonymous_writes: bool = False
    max_body_bytes: int = 16 * 1024
    history_size: int = 50
    default_k: int = 10
    watch_model_seconds: float = 0.0
    cold_model: str | None = None
    allow_empty: bool = False
    models_dir: str | None = None
    rebuild_history: bool = True
    rebuild_max_events: int = 1_000_000

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ServiceConfig:
        """A validated config from a dict; unknown keys are an error naming the nearest valid one.

        Raises:
            ConfigError: On an unknown key or an out-of-range value.
        """
        check_keys("service config", d, [f.name for f in fields(cls)], "serve option")
        cfg = cls(**d)
        if cfg.max_body_bytes < 256:
            raise ConfigError("max_body_bytes must be at least 256")
        if not 1 <= cfg.default_k <= MAX_K:
            raise ConfigError(f"default_k must be in 1..{MAX_K}")
        return cfg


def read_service_config(path: str | Path | None, overrides: dict[str, Any]) -> ServiceConfig:
    """A :class:`ServiceConfig` from a TOML/YAML file (its ``[serve]`` table, or the top level;
    a ``[pipeline]`` table is the pipeline config) with non-None ``overrides`` applied.

    Relative file paths in the file (model, pipeline, item features, cold model) are relative to
    the file's folder.
    """
    data: dict[str, Any] = {}
    if path is not None:
        from recforge.config import read_config

        raw = read_config(path)
        data = dict(raw.get("serve", {k: v for k, v in raw.items() if k != "pipeline"}))
        if "pipeline" in raw:
            data["pipeline"] = raw["pipeline"]
        base = Path(path).parent
        for key in ("model", "pipeline", "item_features", "cold_model", "models_dir"):
            val = data.get(key)
            if isinstance(val, str) and Path(val).suffix and not Path(val).is_absolute() and (base / val).exists():
                data[key] = str(base / val)
    data.update({k: v for k, v in overrides.items() if v is not None})
    return ServiceConfig.from_dict(data)

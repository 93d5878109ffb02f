"""The models behind the "Try it" page: each one is a ``recforge serve`` service (the same
pipeline, event endpoint and metrics), mounted under ``/svc/<slug>`` of the UI app.

Every service shares one recent-history store, so an event posted to one of them (a rating on the
page) reaches every model's next list, and one SQLite event table.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recforge.config import FitOptions
from recforge.errors import ConfigError
from recforge.models.base import Recommender

__all__ = ["ServedModel", "fit_models", "load_models", "pipeline_for", "serve_models"]


@dataclass
class ServedModel:
    """One model as a mounted service.

    Attributes:
        label: The name shown on the pages (unique among the served models).
        slug: The URL segment of its service (``/svc/<slug>/v1/...``).
        model: The fitted recommender.
        state: The service state (bundle, metrics, history, event store).
        app: The service's FastAPI app (``recforge.serving.app.create_app``).
        pipeline: The pipeline config the service was built with.
    """

    label: str
    slug: str
    model: Recommender
    state: Any
    app: Any
    pipeline: dict[str, Any] = field(default_factory=dict)

    @property
    def version(self) -> str:
        b = self.state.bundle
        return b.version if b is not None else "none"


def pipeline_for(model: Recommender) -> dict[str, Any]:
    """The pipeline a model is served with: ANN retrieval over its embeddings (the service's
    default) when it has them; otherwise co-occurrence retrieval from the latest events, reranked
    by the model itself when it ``scores_history`` (so ratings posted on the page move the list)."""
    if model.has_embeddings:
        return {}
    if model.scores_history:
        return {"retrieval": {"kind": "item-knn"}, "ranking": {"kind": "model"}}
    return {"retrieval": {"kind": "item-knn"}}


def fit_models(names: list[str], data: Any, seed: int = 0) -> list[tuple[str, Recommender, str | None]]:
    """Fit registered models (default hyperparameters) on ``data``: ``[(label, model, None)]``."""
    from recforge.models.registry import make_model

    out = []
    for name in names:
        model = make_model(name, {})
        if model.task == "ctr":
            raise ConfigError(f"{name} is a CTR model: it scores feature rows, not users; pick a ranking model")
        out.append((name, model.fit(data, FitOptions(seed=seed)), None))
    return out


def load_models(paths: list[str | Path]) -> list[tuple[str, Recommender, str | None]]:
    """Load saved models: ``[(label, model, path)]`` (the label is the model name, or the file stem
    when two files hold the same model)."""
    out = []
    for p in paths:
        path = Path(p)
        if not path.exists():
            raise ConfigError(f"{path}: no such model file")
        model = Recommender.load(path)
        if model.task == "ctr":
            raise ConfigError(f"{path}: {model.name} is a CTR model: it scores feature rows, not users")
        out.append((model.name, model, str(path)))
    return out


def _slug(label: str, taken: set[str]) -> str:
    base = re.sub(r"[^a-z0-9-]+", "-", label.lower()).strip("-") or "model"
    slug, j = base, 2
    while slug in taken:
        slug, j = f"{base}-{j}", j + 1
    taken.add(slug)
    return slug


def serve_models(models: list[tuple[str, Recommender, str | None]], *, item_features: Any = None,
                 database: str | Path, api_key: str | None = None, history_size: int = 50) -> list[ServedModel]:
    """One service per model, sharing the recent-history store and the event database.

    Args:
        models: ``(label, fitted model, saved path or None)`` per model.
        item_features: Item features for the pipelines' attribute stages.
        database: SQLite file (or SQLAlchemy URL) of the event table.
        api_key: The key the page sends with events (default: a fresh random one).
        history_size: Recent events kept per user.
    """
    from recforge.serving.app import create_app
    from recforge.serving.batch import model_version
    from recforge.serving.config import ServiceConfig
    from recforge.serving.history import MemoryHistory
    from recforge.serving.pipeline import Pipeline
    from recforge.serving.state import ModelBundle, ServiceState

    if not models:
        raise ConfigError("no model to serve: pass --model NAME or --model-path FILE")
    key = api_key or secrets.token_urlsafe(16)
    history = MemoryHistory(max_len=history_size)
    taken: set[str] = set()
    labels: set[str] = set()
    out = []
    for label, model, path in models:
        if label in labels:
            label = Path(path).stem if path else f"{label}-{len(labels) + 1}"
        labels.add(label)
        cfg = ServiceConfig(database=str(database), api_key=key, history_size=history_size, model=path)
        pipe_cfg = pipeline_for(model)
        pipe = Pipeline.from_config(pipe_cfg, model, item_features=item_features)
        bundle = ModelBundle(pipe, model_version(model, path), path)
        state = ServiceState(cfg, bundle=bundle, history=history, load_model=False)
        out.append(ServedModel(label, _slug(label, taken), model, state, create_app(state=state), pipe_cfg))
    return out

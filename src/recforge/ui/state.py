"""What the UI holds while it runs: the dataset and its catalogue, the served models, the runs
folder, uploaded datasets and background jobs."""

from __future__ import annotations

import secrets
import shutil
import tempfile
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recforge.data.interactions import Interactions
from recforge.errors import ConfigError
from recforge.ui.catalog import Catalog
from recforge.ui.jobs import Jobs
from recforge.ui.served import ServedModel, fit_models, load_models, serve_models

__all__ = ["DEFAULT_MODELS", "UIConfig", "UIState"]

DEFAULT_MODELS = ("item-knn-implicit", "popularity")
"""Fitted on the dataset when neither ``--model`` nor ``--model-path`` is given: both fit in
seconds, and item-kNN scores a new user's ratings without refitting."""


@dataclass
class UIConfig:
    """What ``recforge ui`` starts with.

    Attributes:
        dataset: Registered dataset name or a CSV/Parquet file (the catalogue, Data page and the
            models' training data); None = leaderboard only.
        runs: Folder of saved runs (``recforge run`` outputs) for the leaderboard.
        model_paths: Saved models to serve (``recforge train --output``).
        models: Registered model names to fit on the dataset at start (default
            :data:`DEFAULT_MODELS` when no model path is given either).
        max_upload_bytes: Largest dataset file the Data page accepts.
        k: List length on the Try it page.
        workdir: Folder for the event database, uploads and comparisons (default: a fresh
            temporary folder, removed on exit).
    """

    dataset: str | None = None
    runs: str | None = None
    model_paths: list[str] = field(default_factory=list)
    models: list[str] = field(default_factory=list)
    max_upload_bytes: int = 20 * 1024 * 1024
    k: int = 10
    workdir: str | None = None

    def __post_init__(self) -> None:
        if self.max_upload_bytes < 1024:
            raise ConfigError("max_upload_bytes must be at least 1024")
        if not 1 <= self.k <= 100:
            raise ConfigError("k must be in 1..100")


@dataclass
class Upload:
    """A dataset uploaded on the Data page."""

    token: str
    filename: str
    data: Interactions
    at: float = field(default_factory=time.time)


class UIState:
    """The running UI's state.

    Args:
        config: The UI config.
        data: The dataset's interactions (None: no catalogue, no models).
        dataset_name: Its label.
        served: The served models (see :func:`recforge.ui.served.serve_models`).
        workdir: Folder for the event database, uploads and comparisons.
        owns_workdir: Remove ``workdir`` on :meth:`close`.
    """

    MAX_UPLOADS = 4

    def __init__(self, config: UIConfig, *, data: Interactions | None, dataset_name: str | None,
                 served: list[ServedModel], workdir: Path, owns_workdir: bool = False) -> None:
        self.config = config
        self.data = data
        self.dataset_name = dataset_name
        self.catalog = Catalog(data) if data is not None else None
        self.served = served
        self.by_slug = {m.slug: m for m in served}
        self.workdir = workdir
        self.owns_workdir = owns_workdir
        self.jobs = Jobs()
        self.uploads: OrderedDict[str, Upload] = OrderedDict()
        self.started = time.time()
        self.ops_samples: dict[str, tuple[float, float]] = {}
        self.plot_cache: dict[tuple[str, str], bytes] = {}
        self.plot_lock = threading.Lock()
        self.api_key = served[0].state.api_key if served else secrets.token_urlsafe(16)

    @classmethod
    def from_config(cls, config: UIConfig, echo: Any = None) -> UIState:
        """Load the dataset, fit or load the models and start their services."""
        say = echo or (lambda s: None)
        owns = config.workdir is None
        workdir = Path(config.workdir) if config.workdir else Path(tempfile.mkdtemp(prefix="recforge-ui-"))
        workdir.mkdir(parents=True, exist_ok=True)
        data = None
        name = None
        served: list[ServedModel] = []
        if config.dataset:
            from recforge.experiments.runner import load_dataset
            from recforge.experiments.spec import ExperimentSpec

            ds = load_dataset(ExperimentSpec.from_dict({}, require=()).replace(dataset=config.dataset))
            if ds.interactions is None:
                raise ConfigError(f"dataset {ds.name!r} is CTR data without user-item interactions")
            data, name = ds.interactions, ds.name
        if config.model_paths or config.models or data is not None:
            models = load_models(list(config.model_paths))
            names = list(config.models) or ([] if config.model_paths else list(DEFAULT_MODELS))
            if names:
                if data is None:
                    raise ConfigError("--model fits on a dataset: pass --dataset too (or --model-path)")
                say(f"fitting {', '.join(names)} on {name}")
                models += fit_models(names, data)
            feats = data.item_features if data is not None else None
            served = serve_models(models, item_features=feats, database=workdir / "events.db")
        return cls(config, data=data, dataset_name=name, served=served, workdir=workdir, owns_workdir=owns)

    def add_upload(self, filename: str, data: Interactions) -> str:
        token = secrets.token_urlsafe(8)
        self.uploads[token] = Upload(token, filename, data)
        while len(self.uploads) > self.MAX_UPLOADS:
            gone, _ = self.uploads.popitem(last=False)
            for key in [k for k in self.plot_cache if k[0] == gone]:
                del self.plot_cache[key]
        return token

    def close(self) -> None:
        self.jobs.shutdown()
        for m in self.served:
            m.state.close()
        if self.owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)


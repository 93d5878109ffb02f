"""``recforge batch`` and ``recforge serve``: the serving commands, registered on the main app.

``recforge.cli.main`` calls :func:`register`; these commands
load FastAPI, SQLAlchemy and faiss only when they run. Their config file is an experiment file
(the one schema): ``batch`` reads ``[dataset]``, ``[model]``, ``[protocol] k``, ``[batch]`` and
``[pipeline]``; ``serve`` reads ``[serve]`` and ``[pipeline]``.
"""

# no ``from __future__ import annotations``: typer reads the option annotations at definition time,
# and they name objects imported inside register()
import os
from pathlib import Path
from typing import Annotated, Any

import typer

# the service may run numba (fold-in), faiss and torch (a CTR ranker) in one process: passive
# OpenMP waits keep one library's idle workers from starving the others' calls
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from recforge.cli._common import (  # noqa: E402 - after the OpenMP setting
    Backend,
    ConfigOpt,
    SetOpt,
    backend_options,
    build_dataset,
    check_fit_data,
    data_options,
    build_model,
    console,
    fit_options,
    handle_errors,
    list_length,
    read_spec,
)
from recforge.errors import ConfigError  # noqa: E402


def register(app: typer.Typer) -> None:
    """Add ``batch`` and ``serve`` to ``app``."""

    @app.command("batch")
    @handle_errors
    @data_options
    @backend_options
    def batch_cmd(
        model_path: Annotated[Path | None, typer.Option(help="a model saved by `recforge train`")] = None,
        model: Annotated[str | None, typer.Option(help="model short name, fitted on --dataset first")] = None,
        dataset: Annotated[str | None, typer.Option(help="registered name or a log file (text or Parquet; see the Data options)")] = None,
        database: Annotated[str | None, typer.Option(help="SQLAlchemy URL or SQLite file (default recommendations.db)")] = None,
        table: Annotated[str | None, typer.Option(help="table to (re)place (default recommendations)")] = None,
        k: Annotated[int | None, typer.Option(help="items per user")] = None,
        batch_size: Annotated[int | None, typer.Option(help="users per block")] = None,
        pipeline: Annotated[Path | None, typer.Option(help="pipeline config (TOML/YAML); default: the model's own top k")] = None,
        item_features: Annotated[str | None, typer.Option(help="dataset name or file with item features")] = None,
        version: Annotated[str | None, typer.Option(help="model_version written with each row")] = None,
        seed: int | None = None,
        progress: Annotated[bool, typer.Option(help="show a progress bar")] = True,
        memory_budget: Annotated[str | None, typer.Option(
            help="e.g. 8GB: users are scored in blocks that fit it; a model whose fit would exceed it is refused")] = None,
        lock_timeout: Annotated[float, typer.Option(help="seconds to wait while another job writes the same table")] = 60.0,
        cleanup: Annotated[bool, typer.Option("--cleanup", help="only drop what killed jobs left behind (staging tables), then exit")] = False,
        config: ConfigOpt = None,
        set_: SetOpt = None,
        data_flags: dict[str, Any] | None = None,
        backend: Backend | None = None,
    ) -> None:
        """Score every user and write (user_id, rank, item_id, score, model_version, created_at).

        One job per table at a time: a second job waits up to --lock-timeout seconds, then exits
        with status 2. With --backend ray the users are scored by Ray workers; this process keeps
        the lock and writes the same rows under the same atomic swap."""
        from recforge.evaluation.blocks import check_fit_memory, memory_budget as budget_scope, parse_bytes
        from recforge.models.base import Recommender
        from recforge.serving.batch import cleanup_batch, model_version, run_batch
        from recforge.serving.features import load_item_features
        from recforge.serving.pipeline import Pipeline

        if cleanup:
            spec = read_spec(config, {"batch.database": database, "batch.table": table}, set_, command="batch",
                             builds_model=False)
            tbl = str(spec.batch.get("table") or "recommendations")
            dropped = cleanup_batch(spec.batch.get("database"), table=tbl, lock_timeout=lock_timeout)
            console.print(f"dropped {len(dropped)} leftover staging table(s) of {tbl}"
                          + (f": {', '.join(dropped)}" if dropped else ""))
            return

        spec = read_spec(config, {
            "model": model, "dataset": dataset, "k": k, "seed": seed,
            "pipeline": None if pipeline is None else str(pipeline), "batch.database": database,
            "batch.table": table, "batch.batch_size": batch_size, "batch.item_features": item_features,
            "batch.version": version, "batch.model_path": None if model_path is None else str(model_path),
            **(data_flags or {}),
        }, set_, command="batch", builds_model=model_path is None)
        opts = spec.batch
        budget = None if memory_budget is None else parse_bytes(memory_budget)
        if opts.get("model_path"):
            mdl = Recommender.load(opts["model_path"])
            ver = opts.get("version") or model_version(mdl, opts["model_path"])
        else:
            ds = build_dataset(spec)
            mdl = build_model(spec)
            check_fit_data(mdl, ds.interactions)
            check_fit_memory(mdl, ds.interactions, budget)
            with console.status(f"fitting {mdl.name} on {ds.name}"):
                mdl.fit(ds.interactions, fit_options(spec))
            ver = opts.get("version") or model_version(mdl)
        from recforge.cli._output import note_k_clamped

        note_k_clamped(list_length(spec), len(mdl.items_))
        source: Any = mdl
        if spec.pipeline is not None:
            feats = load_item_features(opts.get("item_features"))
            pipe = spec.pipeline if isinstance(spec.pipeline, dict) else Path(spec.pipeline)
            source = Pipeline.from_config(pipe, mdl, item_features=feats)
        backend = backend or Backend()
        with budget_scope(budget), backend.scoring():
            res = run_batch(source, opts.get("database"), k=list_length(spec),
                            table=str(opts.get("table") or "recommendations"),
                            batch_size=int(opts.get("batch_size") or 1000), version=ver, progress=bool(progress),
                            lock_timeout=lock_timeout)
        on = f", scored on {backend.describe()}" if backend.is_ray else ""
        console.print(f"wrote {res.n_rows:,} rows for {res.n_users:,} users into {res.table} "
                      f"(model_version {res.model_version}, run {res.run_id}{on})")

    @app.command("serve")
    @handle_errors
    def serve_cmd(
        model_path: Annotated[Path | None, typer.Option(help="a model saved by `recforge train`")] = None,
        database: Annotated[str | None, typer.Option(help="SQLAlchemy URL or SQLite file for events and batch table")] = None,
        pipeline: Annotated[Path | None, typer.Option(help="pipeline config (TOML/YAML)")] = None,
        item_features: Annotated[str | None, typer.Option(help="dataset name or file with item features")] = None,
        redis: Annotated[str | None, typer.Option(help="redis://host:port/db to share recent history")] = None,
        api_key: Annotated[str | None, typer.Option(help="key for write endpoints (or env RECFORGE_API_KEY)")] = None,
        host: Annotated[str, typer.Option(help="interface to listen on")] = "127.0.0.1",
        port: Annotated[int, typer.Option(help="TCP port")] = 8000,
        log_level: Annotated[str, typer.Option(help="uvicorn log level")] = "info",
        watch_model_seconds: Annotated[float | None, typer.Option(help="reload the model file when it changes, checking this often")] = None,
        workers: Annotated[int, typer.Option(help="service processes on the port (more than 1 needs --redis)")] = 1,
        cold_model: Annotated[Path | None, typer.Option(help="saved cold-start model (content, hybrid-switching, lightfm-style) for new users")] = None,
        allow_empty: Annotated[bool, typer.Option("--allow-empty", help="start without a loadable model (answer from the batch table)")] = False,
        models_dir: Annotated[Path | None, typer.Option(help="folder POST /v1/admin/reload may load from (default: the model's folder)")] = None,
        config: ConfigOpt = None,
        set_: SetOpt = None,
    ) -> None:
        """Run the recommendation service (FastAPI under uvicorn).

        Refuses to start (exit 2) when the model file is missing or corrupt, unless --allow-empty."""
        from recforge.config import parse_sets
        from recforge.serving.app import create_app
        from recforge.serving.config import read_service_config
        from recforge.serving.run import check_workers, serve, serve_workers

        spec = read_spec(config, None, set_, command="serve", builds_model=False)
        pairs = parse_sets(set_)
        other = [key for key in pairs if not key.startswith("serve.")]
        if other:
            raise ConfigError(f"--set {other[0]}: `recforge serve` takes --set serve.key=value (a key of [serve])")
        sets = {key.removeprefix("serve."): val for key, val in pairs.items()}
        flags = {
            "model": str(model_path) if model_path else None, "database": database,
            "pipeline": str(pipeline) if pipeline else None, "item_features": item_features, "redis": redis,
            "api_key": api_key, "watch_model_seconds": watch_model_seconds,
            "cold_model": str(cold_model) if cold_model else None,
            "allow_empty": True if allow_empty else None, "models_dir": str(models_dir) if models_dir else None,
        }
        if spec.serve or config is None:
            # the file's [serve] table (its relative paths resolved against the file) and [pipeline]
            cfg = read_service_config(config, {**sets, **flags})
        else:  # a file without [serve]: only its [pipeline] table concerns the service
            cfg = read_service_config(None, {"pipeline": spec.pipeline, **sets, **flags})
        check_workers(cfg, workers)
        if not cfg.model and not cfg.allow_empty:
            raise ConfigError("no model to serve: give --model-path, or --allow-empty to answer from the batch table only")
        if workers != 1:
            if cfg.model and not cfg.allow_empty:
                from recforge.models.base import Recommender

                Recommender.load(cfg.model)  # a missing or corrupt file stops here, before any worker starts
            serve_workers(cfg, workers, host=host, port=port, log_level=log_level)  # validates; workers load the model
            return
        application = create_app(cfg)
        st = application.state.recforge
        what = st.bundle.version if st.bundle else f"no model ({st.load_error or 'none given'}): batch table only"
        console.print(f"serving {what} on http://{host}:{port}  (GET /v1/users/{{user_id}}/recommendations?k=10)")
        if st.api_key is None and not cfg.allow_anonymous_writes:
            console.print("note: no API key (--api-key or RECFORGE_API_KEY): POST /v1/events and reloads answer 403")
        serve(application, host=host, port=port, log_level=log_level)

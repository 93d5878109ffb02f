"""``recforge ui``: the local web app (explore a dataset, compare saved runs, try models live),
registered on the main app by :func:`register`; FastAPI and Jinja2 load only when it runs."""

# no ``from __future__ import annotations``: typer reads the option annotations at definition time
import os
from pathlib import Path
from typing import Annotated

import typer

# the UI runs numba (kNN scoring) and possibly torch in one process beside the web server
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from recforge.cli._common import console, handle_errors  # noqa: E402
from recforge.errors import ConfigError  # noqa: E402

_LOOPBACK = ("127.0.0.1", "localhost", "::1")


def register(app: typer.Typer) -> None:
    """Add ``ui`` to ``app``."""

    @app.command("ui")
    @handle_errors
    def ui_cmd(
        dataset: Annotated[str | None, typer.Option(help="registered name or a CSV/Parquet file")] = None,
        runs: Annotated[Path | None, typer.Option(help="folder of saved runs (`recforge run` outputs) for the leaderboard")] = None,
        model_path: Annotated[list[Path] | None, typer.Option(help="a model saved by `recforge train` (repeatable)")] = None,
        model: Annotated[list[str] | None, typer.Option(help="a model name to fit on --dataset at start (repeatable; "
                                                             "default item-knn-implicit and popularity)")] = None,
        host: Annotated[str, typer.Option(help="interface to listen on (keep it local)")] = "127.0.0.1",
        port: Annotated[int, typer.Option(help="TCP port")] = 8050,
        max_upload_mb: Annotated[float, typer.Option(help="largest file the Data page accepts")] = 20.0,
        log_level: Annotated[str, typer.Option(help="uvicorn log level")] = "warning",
    ) -> None:
        """Start the web UI: Try it, Data, Leaderboard, user drill-down, embeddings, operations."""
        from recforge.serving.run import serve
        from recforge.ui import UIConfig, UIState, create_ui_app

        if dataset is None and runs is None and not model_path:
            raise ConfigError("nothing to show: pass --dataset NAME|FILE, --runs DIR or --model-path FILE")
        if not 1 <= port <= 65535:
            raise ConfigError(f"--port must be in 1..65535, got {port}")
        cfg = UIConfig(dataset=dataset, runs=None if runs is None else str(runs),
                       model_paths=[str(p) for p in model_path or []], models=list(model or []),
                       max_upload_bytes=int(max_upload_mb * 2**20))
        with console.status("loading the dataset and fitting the models"):
            state = UIState.from_config(cfg, echo=console.print)
        if host not in _LOOPBACK:
            console.print(f"warning: listening on {host}: anyone who reaches it can post events", style="yellow")
        console.print(f"recforge ui on http://{'127.0.0.1' if host in _LOOPBACK else host}:{port}/  "
                      f"({len(state.served)} model(s): {', '.join(m.label for m in state.served) or 'none'})")
        serve(create_ui_app(state), host=host, port=port, log_level=log_level)

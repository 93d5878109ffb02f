"""The ``recforge ui`` web app: server-rendered pages (Jinja2), a little vanilla JavaScript, every
asset served from the package (plotly.js from the installed plotly package); nothing is fetched
from another host.

Pages: ``/try`` (live recommendations through the mounted services), ``/data``, ``/leaderboard``,
``/user`` (drill-down), ``/embeddings``, ``/ops``. Each served model's ``recforge serve`` API is
mounted at ``/svc/<slug>`` (``/svc/<slug>/v1/events``, ``/svc/<slug>/metrics``...).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from recforge._optional import require

require("fastapi", purpose="the web UI")
require("jinja2", purpose="the web UI's pages")

from fastapi import FastAPI, Request  # noqa: E402
from fastapi.responses import FileResponse, RedirectResponse, Response  # noqa: E402
from fastapi.staticfiles import StaticFiles  # noqa: E402
from fastapi.templating import Jinja2Templates  # noqa: E402

from recforge.ui import pages_data, pages_insights, pages_ops, pages_runs, pages_try  # noqa: E402
from recforge.ui.state import UIState  # noqa: E402

__all__ = ["NAV", "create_ui_app"]

HERE = Path(__file__).parent
NAV = [("/try", "Try it"), ("/data", "Data"), ("/leaderboard", "Leaderboard"), ("/user", "User drill-down"),
       ("/embeddings", "Embeddings"), ("/ops", "Operations")]

Render = Callable[..., Response]


def _plotly_js() -> Path | None:
    try:
        import plotly
    except ImportError:
        return None
    p = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    return p if p.exists() else None


def create_ui_app(state: UIState) -> FastAPI:
    """The UI application over a ready :class:`~recforge.ui.state.UIState`."""

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            state.close()

    app = FastAPI(title="recforge ui", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.ui = state
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.filters["num"] = _num

    def render(request: Request, name: str, status_code: int = 200, **ctx: Any) -> Response:
        base = {"nav": NAV, "path": request.url.path, "dataset": state.dataset_name, "models": state.served}
        return templates.TemplateResponse(request, name, {**base, **ctx}, status_code=status_code)

    @app.get("/", include_in_schema=False)
    async def root() -> Response:
        return RedirectResponse("/try" if state.served else "/leaderboard", status_code=307)

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> Response:
        return Response(status_code=204)

    js = _plotly_js()

    @app.get("/vendor/plotly.min.js", include_in_schema=False)
    async def plotly_js() -> Response:
        if js is None:
            return Response("plotly is not installed", status_code=404, media_type="text/plain")
        return FileResponse(js, media_type="text/javascript", headers={"Cache-Control": "max-age=86400"})

    for module in (pages_try, pages_data, pages_runs, pages_insights, pages_ops):
        app.include_router(module.router(state, render))
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    for m in state.served:
        app.mount(f"/svc/{m.slug}", m.app)
    return app


def _num(v: Any, digits: int = 4) -> str:
    """A table cell: floats to ``digits`` places (small p-values in scientific notation), None empty."""
    if v is None:
        return ""
    if isinstance(v, float):
        if v != v:
            return ""
        if 0 < abs(v) < 10 ** -(digits - 1):
            return f"{v:.2e}"
        return f"{v:.{digits}f}"
    return str(v)

"""The Data page: ``recforge data stats`` for the loaded dataset or an uploaded CSV/Parquet file,
with its plots; an upload that does not load shows the CLI's one-line error."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import UploadFile

from recforge.data.interactions import Interactions
from recforge.data.stats import compute_stats
from recforge.errors import RecforgeError
from recforge.ui.plots import PLOTS, render_plot
from recforge.ui.state import UIState

__all__ = ["load_upload", "router"]

SUFFIXES = (".csv", ".tsv", ".parquet", ".pq")
_COL = re.compile(r"^[^\x00-\x1f]{0,100}$")


def load_upload(path: Path, filename: str, columns: dict[str, str | None]) -> Interactions:
    """Load an uploaded file as ``recforge data stats FILE`` would.

    Raises:
        RecforgeError: The CLI's one-line error, naming the uploaded file instead of the
            temporary copy.
    """
    from recforge.data import load_file
    from recforge.errors import DataError

    try:
        ds = load_file(path, columns["user_col"] or "user_id", columns["item_col"] or "item_id",
                       columns["rating_col"] or None, columns["timestamp_col"] or None)
    except RecforgeError as exc:
        raise type(exc)(str(exc).replace(str(path), filename)) from None
    except (ValueError, OSError, UnicodeDecodeError) as exc:  # a file pandas/pyarrow cannot parse
        first = str(exc).replace(str(path), filename).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"{filename}: not a readable {path.suffix.lstrip('.')} file ({first})") from None
    if ds.interactions is None or len(ds.interactions) == 0:
        raise DataError(f"{filename}: no interactions")
    # the temporary copy's name would label the stats and plots
    return dataclasses.replace(ds.interactions, name=Path(filename).stem, _cache={})


def router(state: UIState, render: Any) -> APIRouter:
    r = APIRouter()

    def source(upload: str | None) -> tuple[Interactions | None, str | None]:
        if upload:
            up = state.uploads.get(upload)
            if up is None:
                raise HTTPException(404, "that upload is gone (the page keeps the latest 4); upload it again")
            return up.data, up.filename
        return state.data, state.dataset_name

    def page(request: Request, upload: str | None, error: str | None = None, status: int = 200,
             form: dict[str, str] | None = None) -> Response:
        data, label = source(None if error else upload)
        stats = compute_stats(data) if data is not None else None
        return render(request, "data.html", status_code=status, stats=stats, label=label, upload=None if error else upload,
                      error=error, plots=PLOTS, max_mb=state.config.max_upload_bytes / 2**20, form=form or {},
                      uploads=list(state.uploads.values()))

    @r.get("/data")
    async def data_page(request: Request, upload: Annotated[str | None, Query(max_length=64)] = None) -> Response:
        return page(request, upload)

    @r.get("/data/plot/{kind}.png")
    async def plot(kind: str, upload: Annotated[str | None, Query(max_length=64)] = None) -> Response:
        if kind not in PLOTS:
            raise HTTPException(404, f"no plot {kind!r}")
        data, _ = source(upload)
        if data is None:
            raise HTTPException(404, "no dataset loaded")
        key = (upload or "", kind)
        png = state.plot_cache.get(key)
        if png is None:
            # pyplot is not thread-safe: one plot at a time, off the event loop
            def draw() -> bytes | None:
                with state.plot_lock:
                    return state.plot_cache.get(key) or render_plot(data, kind)

            png = await run_in_threadpool(draw)
            if png is not None:
                state.plot_cache[key] = png
        if png is None:
            raise HTTPException(404, f"{kind} does not apply to this data (implicit feedback has no ratings)")
        return Response(png, media_type="image/png", headers={"Cache-Control": "max-age=3600"})

    @r.post("/data/upload")
    async def upload_file(request: Request) -> Response:
        limit = state.config.max_upload_bytes
        try:
            declared = int(request.headers.get("content-length", "0"))
        except ValueError:
            declared = 0
        if declared > limit + 64 * 1024:
            return page(request, None, f"error: upload larger than {limit / 2**20:g} MB", 413)
        form = await request.form(max_files=1, max_fields=10)
        fields = {k: str(form.get(k) or "").strip() for k in ("user_col", "item_col", "rating_col", "timestamp_col")}
        bad = [k for k, v in fields.items() if not _COL.fullmatch(v)]
        if bad:
            return page(request, None, f"error: {bad[0]}: a column name of at most 100 characters", 422, fields)
        up = form.get("file")
        if not isinstance(up, UploadFile) or not up.filename:
            return page(request, None, "error: choose a CSV or Parquet file to upload", 422, fields)
        filename = Path(up.filename).name[:200]
        suffix = Path(filename).suffix.lower()
        if suffix not in SUFFIXES:
            return page(request, None, f"error: {filename}: unsupported file type {suffix or '(none)'}; "
                                       f"upload {', '.join(SUFFIXES)}", 422, fields)
        body = await up.read(limit + 1)
        await up.close()
        if len(body) > limit:
            return page(request, None, f"error: {filename}: larger than {limit / 2**20:g} MB", 413, fields)
        folder = state.workdir / "uploads"
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f"upload-{len(state.uploads)}-{id(body):x}{suffix}"
        tmp.write_bytes(body)
        try:
            data = await run_in_threadpool(load_upload, tmp, filename, fields)
        except RecforgeError as exc:
            return page(request, None, f"error: {exc}", 422, fields)
        finally:
            tmp.unlink(missing_ok=True)
        token = state.add_upload(filename, data)
        return RedirectResponse(f"/data?upload={token}", status_code=303)

    return r

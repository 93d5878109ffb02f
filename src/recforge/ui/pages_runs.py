"""The Leaderboard page: every saved run with its protocol on the row, and the paired test of two."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response

from recforge.ui.runs import RunRecord, compare_runs, scan_runs
from recforge.ui.state import UIState

__all__ = ["router"]


def _metric_columns(runs: list[RunRecord]) -> list[str]:
    cols: dict[str, None] = {}
    for r in runs:
        cols.update(dict.fromkeys(r.metrics))
    return list(cols)


def router(state: UIState, render: Any) -> APIRouter:
    r = APIRouter()

    def runs_by_id() -> tuple[list[RunRecord], list[str], dict[str, RunRecord]]:
        runs, problems = scan_runs(state.config.runs)
        return runs, problems, {x.id: x for x in runs}

    @r.get("/leaderboard")
    async def leaderboard(request: Request, error: Annotated[str | None, Query(max_length=300)] = None) -> Response:
        runs, problems, _ = runs_by_id()
        return render(request, "leaderboard.html", runs=runs, problems=problems, metrics=_metric_columns(runs),
                      runs_dir=state.config.runs, error=error)

    @r.post("/leaderboard/compare")
    async def compare_form(request: Request) -> Response:
        form = await request.form(max_fields=200)
        chosen = [str(v) for v in form.getlist("run")]
        if len(chosen) != 2:
            runs, problems, _ = runs_by_id()
            return render(request, "leaderboard.html", status_code=422, runs=runs, problems=problems,
                          metrics=_metric_columns(runs), runs_dir=state.config.runs,
                          error=f"error: select exactly two runs to compare ({len(chosen)} selected)")
        from urllib.parse import urlencode

        return RedirectResponse("/leaderboard/compare?" + urlencode({"a": chosen[0], "b": chosen[1]}), status_code=303)

    @r.get("/leaderboard/compare")
    async def compare_page(request: Request, a: Annotated[str, Query(max_length=500)],
                           b: Annotated[str, Query(max_length=500)], retry: bool = False) -> Response:
        _, _, by_id = runs_by_id()
        if a not in by_id or b not in by_id:
            raise HTTPException(404, f"no saved run {a if a not in by_id else b!r} under {state.config.runs}")
        ra, rb = by_id[a], by_id[b]
        key = f"compare:{a}|{b}"
        work = state.workdir / "compare" / f"{len(state.jobs.all())}"
        job = state.jobs.start(key, f"paired test: {ra.name} vs {rb.name}", lambda: compare_runs(ra, rb, work),
                               retry=retry)
        return render(request, "compare.html", a=ra, b=rb, job=job, job_state=job.state)

    @r.get("/api/job")
    async def job_state(key: Annotated[str, Query(max_length=1200)]) -> Response:
        job = state.jobs.get(key)
        if job is None:
            raise HTTPException(404, "no such job")
        return JSONResponse({"key": job.key, "state": job.state, "error": job.error, "seconds": round(job.seconds, 1)})

    @r.get("/runs/file")
    async def run_file(run: Annotated[str, Query(max_length=500)], name: Annotated[str, Query(max_length=500)]) -> Response:
        _, _, by_id = runs_by_id()
        rec = by_id.get(run)
        if rec is None or name not in rec.plots:
            raise HTTPException(404, "no such plot")
        path = (rec.folder / name).resolve()
        if not path.is_relative_to(rec.folder.resolve()) or path.suffix != ".png":
            raise HTTPException(404, "no such plot")
        return FileResponse(Path(path), media_type="image/png")

    return r

"""The Operations page: each mounted service's request rate, latency percentiles, errors, event
and recommendation counts (read from its Prometheus registry), model version and last reload."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from recforge.ui.state import UIState

__all__ = ["router", "service_summary"]


def _quantile_bound(buckets: list[tuple[float, float]], q: float) -> float | None:
    """The upper bound of the histogram bucket holding quantile ``q`` (cumulative buckets)."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    total = buckets[-1][1]
    for le, cum in buckets:
        if cum >= q * total:
            return le
    return buckets[-1][0]


def service_summary(served: Any, samples: dict[str, tuple[float, float]]) -> dict[str, Any]:
    """One service's numbers from its metrics registry.

    Latency percentiles are histogram bucket bounds ("p95 <= 5 ms"); the request rate is over the
    time since the previous call for the same service (``samples`` keeps the last count).
    """
    st = served.state
    requests = 0.0
    errors = 0.0
    by_route: dict[str, float] = {}
    events: dict[str, float] = {}
    sources: dict[str, float] = {}
    rejected: dict[str, float] = {}
    backend: dict[str, float] = {}
    reloads: dict[str, float] = {}
    buckets: dict[float, float] = {}
    for fam in st.metrics.registry.collect():
        for s in fam.samples:
            lab = s.labels
            if s.name == "recforge_http_requests_total":
                requests += s.value
                by_route[lab["route"]] = by_route.get(lab["route"], 0.0) + s.value
                if lab["status"].startswith("5"):
                    errors += s.value
            elif s.name == "recforge_http_request_seconds_bucket":
                le = float(lab["le"])
                buckets[le] = buckets.get(le, 0.0) + s.value
            elif s.name == "recforge_events_total":
                events[lab["type"]] = s.value
            elif s.name == "recforge_recommendations_total":
                sources[lab["source"]] = s.value
            elif s.name == "recforge_events_rejected_total":
                rejected[lab["reason"]] = s.value
            elif s.name == "recforge_backend_errors_total":
                backend[lab["backend"]] = s.value
            elif s.name == "recforge_model_reloads_total":
                reloads[lab["outcome"]] = s.value
    now = time.time()
    last = samples.get(served.slug)
    rate = None
    if last is not None and now - last[0] >= 0.5:
        rate = (requests - last[1]) / (now - last[0])
    samples[served.slug] = (now, requests)
    cum = sorted(buckets.items())
    bundle = st.bundle
    return {
        "label": served.label, "slug": served.slug, "version": served.version,
        "loaded_at": datetime.fromtimestamp(bundle.loaded_at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if bundle else None,
        "path": bundle.path if bundle else None, "pipeline": bundle.pipeline.describe() if bundle else None,
        "requests": int(requests), "errors_5xx": int(errors), "rate_per_s": rate,
        "latency_ms": {q: (None if (b := _quantile_bound(cum, p)) is None else b * 1000)
                       for q, p in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))},
        "by_route": {k: int(v) for k, v in sorted(by_route.items())}, "events": {k: int(v) for k, v in events.items()},
        "sources": {k: int(v) for k, v in sources.items()}, "rejected": {k: int(v) for k, v in rejected.items()},
        "backend_errors": {k: int(v) for k, v in backend.items()}, "reloads": {k: int(v) for k, v in reloads.items()},
        "history": st.history.describe(), "load_error": st.load_error,
    }


def router(state: UIState, render: Any) -> APIRouter:
    r = APIRouter()

    def summaries() -> list[dict[str, Any]]:
        return [service_summary(m, state.ops_samples) for m in state.served]

    @r.get("/ops")
    async def ops_page(request: Request) -> Response:
        jobs = [{"title": j.title, "state": j.state, "seconds": round(j.seconds, 1), "error": j.error}
                for j in state.jobs.all()]
        return render(request, "ops.html", services=summaries(), jobs=jobs,
                      uptime=round(time.time() - state.started))

    @r.get("/api/ops")
    async def ops_json() -> Response:
        return JSONResponse({"services": summaries(), "uptime_s": round(time.time() - state.started)})

    return r

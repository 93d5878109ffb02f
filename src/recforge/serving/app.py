"""The real-time recommendation service (FastAPI; run by ``recforge serve`` under uvicorn).

Endpoints:

- ``GET /v1/users/{user_id}/recommendations?k=10``: the pipeline's top k, reflecting the user's
  recent events; unknown users get a fallback (recent-event neighbours, else popular items); with
  no model loaded, the precomputed batch table answers.
- ``GET /v1/items/{item_id}/similar?k=10``: the model's most similar items (its neighbour matrix or
  embedding cosine; item co-occurrence for a model with neither).
- ``POST /v1/events``: ``{user_id, item_id, type, value?, timestamp?}``; stored in the database and
  pushed onto the user's recent history (needs the API key).
- ``POST /v1/admin/reload``: load a new model version without dropping requests (API key).
- ``GET /healthz``: liveness (the process answers; 200 always, with what is loaded).
- ``GET /readyz``: readiness, 200 or 503: a model is loaded (arrays checked finite and
  consistent at load) or the batch table may answer (``allow_empty``), the database answers,
  Redis answers when configured; the body also reports the last reload's outcome.
- ``GET /metrics`` (Prometheus text format; summed over worker processes).

Inputs are validated (HTTP 422 with a message naming the field and at most 64 characters of the
offending input; NaN, infinite values and timestamps outside 1970..now+1 day included), bodies are
size-limited (413),
write endpoints need ``X-API-Key``, and ids reach SQL only as bound parameters.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import os
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from recforge._arrays import plain_id
from recforge._optional import require
from recforge.errors import DataError, RecforgeError

require("fastapi", purpose="the recommendation service")

from fastapi import FastAPI, Header, HTTPException, Path as PathParam, Query, Request  # noqa: E402
from fastapi.concurrency import run_in_threadpool  # noqa: E402
from fastapi.exceptions import RequestValidationError  # noqa: E402
from fastapi.responses import JSONResponse, Response  # noqa: E402
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator  # noqa: E402
from starlette.routing import Match  # noqa: E402

from recforge.serving.config import ID_PATTERN, MAX_K, ServiceConfig  # noqa: E402
from recforge.serving.middleware import LimitAndMeasure  # noqa: E402
from recforge.serving.state import Metrics, ModelBundle, ServiceState  # noqa: E402

__all__ = ["create_app", "render_recommendations"]

log = logging.getLogger("recforge.serving")
_ID_RE = re.compile(ID_PATTERN[1:-1])
_INF = float("inf")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_CLOCK_SKEW = timedelta(days=1)
_ECHO = 64  # characters of an invalid input echoed back in a 422


def _echo(value: Any) -> Any:
    """An invalid input as a 422 may show it: JSON-safe (NaN and infinities as strings) and at
    most :data:`_ECHO` characters, so a 10,000-character id is not sent back whole."""
    if isinstance(value, float) and (value != value or abs(value) == _INF):
        return str(value)
    if isinstance(value, (bool, int, float)) or value is None:
        return value
    text = value if isinstance(value, str) else json.dumps(value, default=str, allow_nan=True)
    return text if len(text) <= _ECHO else text[:_ECHO] + f"... ({len(text)} characters)"


async def _validation_error(_request: Any, exc: RequestValidationError) -> Response:
    """422 naming each bad field, with a truncated echo (FastAPI's default handler echoes the
    whole input and fails with a 500 on NaN)."""
    errors = [{"loc": list(e.get("loc", ())), "msg": str(e.get("msg", ""))[:200], "type": e.get("type", ""),
               "input": _echo(e.get("input"))} for e in exc.errors()[:10]]
    return JSONResponse({"detail": errors}, status_code=422)


# ---------------------------------------------------------------------------------------- rendering
def render_recommendations(bundle: ModelBundle, user_id: str, k: int, events: list[tuple[str, float]],
                           metrics: Metrics | None = None, context: dict[str, str] | None = None) -> bytes:
    """The JSON body of ``GET /v1/users/{user_id}/recommendations?k=k``: the pipeline's top ``k``
    for the user and their recent ``events`` ``[(raw item id, value), ...]`` (latest first).

    The one renderer of that answer (the route and the middleware's shortcut both call it). Scores
    that are not finite (fallback items) are ``null``. The body is what ``JSONResponse`` would
    write, assembled from per-item fragments cached on the bundle.

    Args:
        bundle: The loaded model version.
        user_id: The raw user id as requested.
        k: List length.
        events: The user's recent events.
        metrics: Where to count the answer's source, if anywhere.
        context: The request context (query parameters other than ``k``) for a CTR ranker with
            context fields, already checked by :meth:`Pipeline.check_context`.
    """
    pipe = bundle.pipeline
    items, scores, source, _ = pipe.recommend_top(user_id, k, pipe.view.known_events(events), context=context)
    if metrics is not None:
        metrics.rec_source(source)
    frag = bundle.item_json()
    return b"".join((
        b'{"user_id":', _json_str(user_id), b',"k":', str(k).encode(), b',"model_version":',
        _json_str(bundle.version), b',"source":', _json_str(source), b',"items":[',
        b",".join(frag[i] + (repr(s).encode() if s == s and abs(s) != _INF else b"null") + b"}"
                  for i, s in zip(items.tolist(), scores.tolist(), strict=True)),
        b"]}",
    ))


def _json_str(s: str) -> bytes:
    return json.dumps(s, ensure_ascii=False).encode()


async def _recent(st: ServiceState, user_id: str) -> list[tuple[str, float]]:
    """The user's recent events, off the event loop when the store blocks (Redis)."""
    if st.history.blocking:
        return await run_in_threadpool(st.recent, user_id)
    return st.recent(user_id)


def _fast_k(query_string: bytes, default_k: int) -> int | None:
    """``k`` of a query string that holds nothing else (``k=N``, N in 1..MAX_K), or None: the
    route then parses it (and answers 422 where it is invalid)."""
    if not query_string:
        return default_k
    key, _, raw = query_string.partition(b"=")
    if key != b"k" or not raw.isdigit() or len(raw) > 3:
        return None
    k = int(raw)
    return k if 1 <= k <= MAX_K else None


# ---------------------------------------------------------------------------------------- schemas
RawId = str | int


def _check_id(v: Any, what: str) -> str:
    if isinstance(v, bool) or not isinstance(v, (str, int)):
        raise ValueError(f"{what} must be a string or an integer")
    s = str(v)
    if not _ID_RE.fullmatch(s):
        raise ValueError(f"{what} must be 1-128 characters without control characters or '/'")
    return s


class EventIn(BaseModel):
    """One user event."""

    model_config = ConfigDict(extra="forbid")

    user_id: RawId
    item_id: RawId
    type: Literal["click", "view", "like", "rating"]
    value: float | None = Field(default=None, allow_inf_nan=False)
    timestamp: datetime | None = None

    @field_validator("user_id", mode="before")
    @classmethod
    def _user(cls, v: Any) -> str:
        return _check_id(v, "user_id")

    @field_validator("item_id", mode="before")
    @classmethod
    def _item(cls, v: Any) -> str:
        return _check_id(v, "item_id")

    @field_validator("timestamp", mode="after")
    @classmethod
    def _when(cls, v: datetime | None) -> datetime | None:
        if v is None:
            return v
        when = v if v.tzinfo is not None else v.replace(tzinfo=UTC)
        if not _EPOCH <= when <= datetime.now(UTC) + _MAX_CLOCK_SKEW:
            raise ValueError("timestamp must lie between 1970-01-01 and one day from now")
        return when

    @model_validator(mode="after")
    def _value(self) -> EventIn:
        if self.type == "rating" and self.value is None:
            raise ValueError("a rating event needs a value")
        return self


class ReloadIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model_path: str | None = Field(default=None, max_length=4096)


# ---------------------------------------------------------------------------------------- app
def create_app(config: ServiceConfig | dict[str, Any] | None = None, *, state: ServiceState | None = None) -> FastAPI:
    """The FastAPI application (see the module docstring for the endpoints)."""
    if state is None:
        cfg = config if isinstance(config, ServiceConfig) else ServiceConfig.from_dict(dict(config or {}))
        state = ServiceState(cfg)
    st = state

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(_watch_model(st)) if st.config.watch_model_seconds > 0 else None
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    app = FastAPI(title="recforge", version="1", docs_url="/docs", redoc_url=None, lifespan=lifespan)
    app.state.recforge = st
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]

    def require_key(key: str | None) -> None:
        if st.api_key is None:
            if st.config.allow_anonymous_writes:
                return
            raise HTTPException(403, "writes are disabled: no API key is configured (api_key or RECFORGE_API_KEY)")
        if key is None or not hmac.compare_digest(key.encode(), st.api_key.encode()):
            raise HTTPException(401, "missing or wrong X-API-Key")

    @app.get("/v1/users/{user_id}/recommendations")
    async def recommendations(
        user_id: Annotated[str, PathParam(pattern=ID_PATTERN, description="raw user id")],
        request: Request,
        k: Annotated[int | None, Query(ge=1, le=MAX_K, description="list length")] = None,
    ) -> Response:
        kk = k or st.config.default_k
        bundle = st.bundle
        # every other query parameter is request context (daytime=morning&weekday=sunday) for a CTR
        # ranker trained with context fields, whose encoder's fields are the valid names; a pipeline
        # that takes no context ignores them (cache busters, tracing flags), as HTTP APIs do
        context = {key: v for key, v in request.query_params.items() if key != "k"} or None
        if context is not None and bundle is not None and not bundle.pipeline.takes_context:
            context = None
        if bundle is None:
            try:
                items, scores, version = await run_in_threadpool(st.reader.get, user_id, kk)
            except Exception as exc:  # noqa: BLE001
                st.metrics.errors.labels("database").inc()
                raise HTTPException(503, f"no model is loaded and the batch table is unreadable ({type(exc).__name__})") from None
            if not items:
                raise HTTPException(503, "no model is loaded and no precomputed recommendations exist for this user")
            st.metrics.rec_source("batch")
            return _json({"user_id": user_id, "k": kk, "model_version": version, "source": "batch",
                          "items": [{"item_id": plain_id(i), "score": s} for i, s in zip(items, scores, strict=True)]})
        if context is not None:
            try:
                context = bundle.pipeline.check_context(context)
            except DataError as exc:
                raise HTTPException(422, str(exc)) from None
        body = render_recommendations(bundle, user_id, kk, await _recent(st, user_id), st.metrics, context)
        return Response(body, media_type="application/json")

    rec_route = app.router.routes[-1]

    async def shortcut(scope: dict[str, Any]) -> tuple[str, bytes] | None:
        """The recommendation route without FastAPI's routing, parameter solving and response
        objects (about 0.12 ms of CPU per request): valid requests only, with a model loaded;
        anything else (invalid input and its 422, other query parameters) goes to the route."""
        match, child = rec_route.matches(scope)
        bundle = st.bundle
        if match is not Match.FULL or bundle is None:
            return None
        user_id = child["path_params"]["user_id"]
        k = _fast_k(scope.get("query_string", b""), st.config.default_k)
        if k is None or not _ID_RE.fullmatch(user_id):
            return None
        return rec_route.path, render_recommendations(bundle, user_id, k, await _recent(st, user_id), st.metrics)

    @app.get("/v1/items/{item_id}/similar")
    async def similar(
        item_id: Annotated[str, PathParam(pattern=ID_PATTERN, description="raw item id")],
        k: Annotated[int | None, Query(ge=1, le=MAX_K)] = None,
    ) -> Response:
        kk = k or st.config.default_k
        bundle = st.bundle
        if bundle is None:
            raise HTTPException(503, "no model is loaded")
        if bundle.pipeline.view.item_index(item_id) < 0:
            raise HTTPException(404, f"unknown item id {item_id!r}")
        ids, sc = bundle.pipeline.similar_items(item_id, kk)
        return _json({"item_id": item_id, "k": kk, "model_version": bundle.version,
                      "items": [{"item_id": a, "score": float(b)} for a, b in zip(ids.tolist(), sc.tolist(), strict=True)]})

    @app.post("/v1/events", status_code=201)
    async def post_event(event: EventIn, x_api_key: Annotated[str | None, Header()] = None) -> Response:
        require_key(x_api_key)
        bundle = st.bundle
        if bundle is None:
            st.metrics.rejected.labels("no-model").inc()
            raise HTTPException(503, "no model is loaded, so item ids cannot be checked; try again later")
        view = bundle.pipeline.view
        if view.item_index(event.item_id) < 0:
            st.metrics.rejected.labels("unknown-item").inc()
            raise HTTPException(422, [{"loc": ["body", "item_id"], "msg": f"unknown item id {event.item_id!r}",
                                       "type": "value_error"}])
        scale = view.rating_range()
        if event.type == "rating" and scale is not None:
            lo, hi = scale
            if not lo <= float(event.value) <= hi:  # type: ignore[arg-type]
                st.metrics.rejected.labels("bad-value").inc()
                raise HTTPException(422, [{"loc": ["body", "value"], "msg": f"rating must be in [{lo:g}, {hi:g}]",
                                           "type": "value_error"}])
        when = event.timestamp or datetime.now(UTC)
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        value = 1.0 if event.value is None else float(event.value)
        try:
            event_id = await run_in_threadpool(st.events.add, event.user_id, event.item_id, event.type, event.value,
                                               when)
        except Exception as exc:  # noqa: BLE001 - the database is down or refused the row
            st.metrics.errors.labels("database").inc()
            log.error("storing an event failed: %s", exc)
            raise HTTPException(503, "the event store is unavailable; the event was not recorded") from None
        try:
            if st.history.blocking:
                await run_in_threadpool(st.history.push, event.user_id, event.item_id, value, event.type,
                                        when.timestamp())
            else:
                st.history.push(event.user_id, event.item_id, value, event.type, when.timestamp())
        except Exception as exc:  # noqa: BLE001
            st.metrics.errors.labels("history").inc()
            log.error("updating recent history failed: %s", exc)
            return _json({"status": "stored", "event_id": event_id,
                          "detail": "recorded, but the recent-history store is unavailable"}, status=202)
        st.metrics.events.labels(event.type).inc()
        return _json({"status": "accepted", "event_id": event_id}, status=201)

    @app.post("/v1/admin/reload")
    async def reload(body: ReloadIn | None = None, x_api_key: Annotated[str | None, Header()] = None) -> Response:
        require_key(x_api_key)
        path = body.model_path if body else None
        try:
            new = await run_in_threadpool(st.reload, path)
        except PermissionError as exc:
            raise HTTPException(403, str(exc)) from None
        except RecforgeError as exc:
            raise HTTPException(422, str(exc)) from None
        return _json({"status": "reloaded", "model_version": new.version})

    @app.get("/healthz")
    async def healthz() -> Response:
        """Liveness: the process answers (no dependency is checked here; see /readyz)."""
        b = st.bundle
        body = {
            "status": "alive",
            "model_loaded": b is not None,
            "model_version": b.version if b else None,
            "pipeline": b.pipeline.describe() if b else None,
            "history": st.history.describe(),
            "load_error": st.load_error,
            "last_reload": st.last_reload,
        }
        return _json(body)

    @app.get("/readyz")
    async def readyz() -> Response:
        """Readiness: 200 when this process should get traffic, else 503 with the failed checks."""
        ready, report = await run_in_threadpool(st.readiness)
        return _json(report, status=200 if ready else 503)

    @app.get("/metrics")
    async def metrics() -> Response:
        data, ctype = st.metrics.render()
        return Response(data, media_type=ctype)

    app.add_middleware(LimitAndMeasure, state=st, shortcut=shortcut)
    return app


async def _watch_model(st: ServiceState) -> None:
    """Reload the model when its file changes (written atomically, so never read half-written)."""
    def mtime() -> float | None:
        path = (st.bundle.path if st.bundle else None) or st.config.model
        try:
            return os.stat(path).st_mtime_ns if path else None
        except OSError:
            return None

    last = mtime()
    while True:
        await asyncio.sleep(st.config.watch_model_seconds)
        now = mtime()
        if now is not None and now != last:
            last = now
            try:
                new = await run_in_threadpool(st.reload)
                log.info("model file changed: now serving %s", new.version)
            except Exception as exc:  # noqa: BLE001 - keep serving the loaded version
                log.error("reloading the changed model file failed: %s", exc)


def _json(body: dict[str, Any], status: int = 200) -> Response:
    return JSONResponse(body, status_code=status)

"""The service's ASGI middleware: request body limit (413) and request metrics.

It knows no route. An app may hand it a *shortcut*: an async function that answers some requests
directly with ready bytes (the recommendation route does, to skip the framework's routing and
response objects on the hot path); the middleware then only sends the bytes and records the
metrics.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

from recforge.serving.state import ServiceState

__all__ = ["LimitAndMeasure", "Shortcut"]

Shortcut = Callable[[dict[str, Any]], Awaitable[tuple[str, bytes] | None]]
"""``scope -> (route name, JSON body)`` for a request answered with 200, or None to pass it on."""


class LimitAndMeasure:
    """Pure ASGI middleware: rejects oversized bodies (413) and records request metrics.

    Args:
        app: The wrapped ASGI app.
        state: The service state (config and metrics).
        shortcut: Optional :data:`Shortcut` tried first for GET requests.
    """

    def __init__(self, app: Any, state: ServiceState, shortcut: Shortcut | None = None) -> None:
        self.app = app
        self.state = state
        self.limit = state.config.max_body_bytes
        self.shortcut = shortcut

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        if self.shortcut is not None and scope["method"] == "GET":
            done = await self.shortcut(scope)
            if done is not None:
                route, body = done
                await send({"type": "http.response.start", "status": 200,
                            "headers": [(b"content-length", str(len(body)).encode()),
                                        (b"content-type", b"application/json")]})
                await send({"type": "http.response.body", "body": body})
                self.state.metrics.observe(route, "GET", 200, time.perf_counter() - t0)
                return
        status = {"code": 500}
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    too_big = int(value) > self.limit
                except ValueError:
                    too_big = True
                if too_big:
                    await _send_json(send, 413, {"detail": f"request body larger than {self.limit} bytes"})
                    self._observe(scope, 413, t0)
                    return
        seen = {"n": 0, "over": False}

        async def limited_receive() -> dict[str, Any]:
            if seen["over"]:
                return {"type": "http.disconnect"}
            msg = await receive()
            if msg["type"] == "http.request":
                seen["n"] += len(msg.get("body", b""))
                if seen["n"] > self.limit:
                    # a streamed body without Content-Length: stop reading; the app's answer to the
                    # truncated body is replaced by a 413 below
                    seen["over"] = True
                    return {"type": "http.request", "body": b"", "more_body": False}
            return msg

        async def send_wrapper(msg: dict[str, Any]) -> None:
            if seen["over"]:
                if msg["type"] == "http.response.start":
                    status["code"] = 413
                    await _send_json(send, 413, {"detail": f"request body larger than {self.limit} bytes"})
                return
            if msg["type"] == "http.response.start":
                status["code"] = msg["status"]
            await send(msg)

        await self.app(scope, limited_receive, send_wrapper)
        self._observe(scope, status["code"], t0)

    def _observe(self, scope: dict[str, Any], code: int, t0: float) -> None:
        route = scope.get("route")
        name = getattr(route, "path", None) or "unmatched"
        self.state.metrics.observe(name, scope.get("method", ""), code, time.perf_counter() - t0)


async def _send_json(send: Any, status: int, body: dict[str, Any]) -> None:
    data = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})

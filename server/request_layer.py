"""The one layer every HTTP request passes through, the hot POST fast path included.

It wraps the whole ASGI app (server/app.py calls it first), so nothing depends on which
route answers: it gives each request an id (the client's `X-Request-Id` when it is sane,
else a new one) and returns it, adds the per-stage timing headers (`Server-Timing`, and TEI's
`x-tokenization-time`, `x-queue-time`, `x-inference-time`, `x-total-time`, in milliseconds),
writes the access log line (`--access-log`, text or JSON) and, with `--otlp-endpoint`, the
request's trace spans. Starlette's `add_middleware` would miss the fast path.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.request_context import CURRENT, STAGES, RequestContext
from server.tracing import RequestTracer

access_log = logging.getLogger("server.access")

_MAX_ID_LENGTH = 128
_HEADER_OF_STAGE = {"tokenize": b"x-tokenization-time", "queue": b"x-queue-time", "inference": b"x-inference-time"}


def request_id(scope: Scope) -> str:
    """The client's X-Request-Id if it is printable ASCII of sane length, else a new one."""
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            if 0 < len(value) <= _MAX_ID_LENGTH and value.isascii() and all(32 < byte < 127 for byte in value):
                return value.decode("ascii")
            break
    return os.urandom(12).hex()


def timing_headers(context: RequestContext, now: float) -> list[tuple[bytes, bytes]]:
    stages = context.stages
    headers = []
    metrics = []
    for stage in STAGES:
        if stage in stages:
            ms = stages[stage] * 1000
            metrics.append(f"{stage};dur={ms:.3f}")
            if stage in _HEADER_OF_STAGE:
                headers.append((_HEADER_OF_STAGE[stage], f"{ms:.3f}".encode()))
    total_ms = (now - context.started) * 1000
    metrics.append(f"total;dur={total_ms:.3f}")
    headers.append((b"x-total-time", f"{total_ms:.3f}".encode()))
    headers.append((b"server-timing", ", ".join(metrics).encode()))
    return headers


class RequestLayer:
    def __init__(self, app: ASGIApp, *, access_log_enabled: bool, tracer: RequestTracer | None = None) -> None:
        self._app = app
        self._access_log = access_log_enabled
        self._tracer = tracer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        context = RequestContext(request_id(scope), scope["method"], scope["path"])
        if self._tracer is not None:
            context.spans = []
        token = CURRENT.set(context)
        try:
            await self._app(scope, receive, _with_headers(send, context))
        finally:
            CURRENT.reset(token)
            if self._access_log:
                _log_access(context)
            if self._tracer is not None:
                self._tracer.export(context, scope)


def _with_headers(send: Send, context: RequestContext) -> Callable[[Message], object]:
    async def send_with_headers(message: Message) -> None:
        if message["type"] == "http.response.start":
            context.status = message["status"]
            headers = [*message.get("headers", ()), (b"x-request-id", context.id.encode())]
            headers += timing_headers(context, time.perf_counter())
            message = {**message, "headers": headers}
        await send(message)

    return send_with_headers


def _log_access(context: RequestContext) -> None:
    elapsed_ms = (time.perf_counter() - context.started) * 1000
    fields: dict[str, object] = {
        "request_id": context.id,
        "method": context.method,
        "path": context.path,
        "status": context.status,
        "duration_ms": round(elapsed_ms, 3),
        "tenant": context.tenant,
        "model": context.model,
        "inputs": context.inputs,
        "tokens": context.tokens,
    }
    for stage, seconds in context.stages.items():
        fields[f"{stage}_ms"] = round(seconds * 1000, 3)
    access_log.info(
        "%s %s %d %.1fms tenant=%s model=%s inputs=%d tokens=%d%s",
        context.method, context.path, context.status, elapsed_ms, context.tenant, context.model, context.inputs,
        context.tokens, "".join(f" {stage}={seconds * 1000:.1f}ms" for stage, seconds in context.stages.items()),
        extra=fields,
    )  # fmt: skip

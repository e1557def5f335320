"""Probes and metrics: /health (liveness), /ready (readiness), /metrics (Prometheus)."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from server.api import schemas
from server.api.http import json_response, server_state
from server.errors import NotReadyError, error_parts
from server.metrics import CONTENT_TYPE
from server.responses import dumps

router = APIRouter()


@router.get(
    "/health",
    summary="Liveness: the event loop answers and every model can still recover",
    responses={
        **schemas.ok(schemas.Healthy, "Alive."),
        503: {
            "model": schemas.Unhealthy,
            "description": "A model can no longer recover: restart the process.",
            "headers": schemas.TRACE_HEADERS,
        },
    },
)
async def health(request: Request) -> Response:
    problem = server_state(request).liveness()
    if problem is None:
        return json_response(b'{"status":"ok"}')
    return json_response(dumps({"status": "unhealthy", "reason": problem}), 503)


@router.get(
    "/ready",
    summary="Readiness: every model loaded and warm, a live replica each, not draining",
    responses={
        **schemas.ok(schemas.Ready, "Ready, with each model's replica counts."),
        503: {
            "model": schemas.NotReady,
            "description": "Loading, draining, or a model without a live replica.",
            "headers": {**schemas.TRACE_HEADERS, **schemas.RETRY_AFTER},
        },
    },
)
async def ready(request: Request) -> Response:
    is_ready, report = server_state(request).readiness()
    if is_ready:
        return json_response(dumps(report))
    # A probe needs only the status; people and clients also get the state and OpenAI's error shape.
    error, status, _ = error_parts(NotReadyError(f"not ready: {report['status']}"))
    body = {**report, "error": {"message": error.message, "type": error.type, "param": None, "code": error.code}}
    return Response(dumps(body), status_code=status, media_type="application/json", headers=error.headers())


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    # Documents the text exposition format; the handler sets the exact type (CONTENT_TYPE).
    response_class=PlainTextResponse,
    responses={200: {"description": "Prometheus text exposition format.", "headers": schemas.TRACE_HEADERS}},
)
async def metrics(request: Request) -> Response:
    return Response(server_state(request).metrics.render(), media_type=CONTENT_TYPE)

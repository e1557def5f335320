"""Probes and metrics: /health (liveness), /ready (readiness), /metrics (Prometheus)."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from server.api.http import json_response, server_state
from server.errors import NotReadyError, error_parts
from server.metrics import CONTENT_TYPE
from server.responses import dumps

router = APIRouter()


@router.get("/health", summary="Liveness: the process answers")
async def health() -> Response:
    return json_response(b'{"status":"ok"}')


@router.get("/ready", summary="Readiness: every model loaded and warm, a live replica each, not draining")
async def ready(request: Request) -> Response:
    is_ready, report = server_state(request).readiness()
    if is_ready:
        return json_response(dumps(report))
    # A probe needs only the status; people and clients also get the state and OpenAI's error shape.
    error, status, _ = error_parts(NotReadyError(f"not ready: {report['status']}"))
    body = {**report, "error": {"message": error.message, "type": error.type, "param": None, "code": error.code}}
    return Response(dumps(body), status_code=status, media_type="application/json", headers=error.headers())


@router.get("/metrics", summary="Prometheus metrics")
async def metrics(request: Request) -> Response:
    return Response(server_state(request).metrics.render(), media_type=CONTENT_TYPE)

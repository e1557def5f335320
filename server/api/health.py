"""Probes and metrics: /health (liveness), /ready (readiness), /metrics (Prometheus)."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from server.api.http import json_response, server_state
from server.errors import error_response
from server.metrics import CONTENT_TYPE
from server.responses import dumps

router = APIRouter()


@router.get("/health", summary="Liveness: the process answers")
async def health() -> Response:
    return json_response(b'{"status":"ok"}')


@router.get("/ready", summary="Readiness: every model loaded and warmed")
async def ready(request: Request) -> Response:
    state = server_state(request)
    try:
        state.require_ready()
    except Exception as exc:
        return error_response(exc)
    return json_response(dumps({"status": "ready", "models": state.registry.names}))


@router.get("/metrics", summary="Prometheus metrics")
async def metrics(request: Request) -> Response:
    return Response(server_state(request).metrics.render(), media_type=CONTENT_TYPE)

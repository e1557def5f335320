"""HTTP plumbing shared by the routes: body limits, JSON decoding, disconnect watching."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import orjson
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive

from models.errors import ModelError
from server.errors import ApiError, InvalidRequestError, PayloadTooLargeError, as_api_error, error_response
from server.lifecycle import ServerState
from server.protocol import parse_request
from server.responses import Reply
from server.scheduling.pending import ClientDisconnectedError

log = logging.getLogger(__name__)


def server_state(request: Request) -> ServerState:
    return request.app.state.server


async def read_json(request: Request, limit: int) -> Any:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLargeError(f"request body of {declared} bytes exceeds the limit of {limit} bytes")
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(f"request body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    body = b"".join(chunks)
    if not body:
        raise InvalidRequestError("the request body is empty; send a JSON object")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequestError(f"the request body is not valid JSON: {exc}") from None


def watch_disconnect(receive: Receive) -> asyncio.Task[None]:
    """A task that finishes when the client disconnects (call after the body has been read)."""

    async def wait() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    return asyncio.ensure_future(wait())


def json_response(body: bytes, status: int = 200) -> Response:
    return Response(body, status_code=status, media_type="application/json")


async def answer(request: Request, endpoint: str, work: Callable[[ServerState], Awaitable[Reply]]) -> Response:
    """Run a /v1 endpoint: auth and readiness first, then `work`; every failure becomes an
    OpenAI-shaped error, and the stage metrics are recorded."""
    state = server_state(request)
    started = time.perf_counter()
    model = "-"
    try:
        state.check_api_key(request.headers.get("authorization"))
        state.require_ready()
        reply = await work(state)
        model = reply.model
        response = json_response(reply.body)
        if state.settings.cache_hits_header:
            response.headers["X-Cache-Hits"] = f"{reply.cache_hits}/{reply.inputs}"
    except ClientDisconnectedError:
        log.info("%s: client disconnected; its queued inputs were dropped", endpoint)
        response = Response(status_code=499)
    except Exception as exc:
        if not isinstance(exc, (ApiError, ModelError)):
            log.error("%s request failed", endpoint, exc_info=exc)
        response = error_response(exc)
        error = as_api_error(exc)
        state.metrics.errors.labels(error.type, error.code, response.status_code).inc()
    state.metrics.requests.labels(endpoint, response.status_code).inc()
    state.metrics.request_duration.labels(endpoint, model).observe(time.perf_counter() - started)
    return response


async def answer_post(
    request: Request, endpoint: str, schema: type[BaseModel], service: Callable[[ServerState], Service]
) -> Response:
    """A POST endpoint: body → `schema` → `service(state).create(payload, disconnect)`."""

    async def work(state: ServerState) -> Reply:
        payload = parse_request(schema, await read_json(request, state.settings.max_request_bytes))
        disconnect = watch_disconnect(request.receive)
        try:
            return await service(state).create(payload, disconnect)
        finally:
            disconnect.cancel()

    return await answer(request, endpoint, work)


class Service(Protocol):
    async def create(self, request: Any, abandon: Awaitable[Any] | None = None) -> Reply: ...

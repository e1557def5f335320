"""HTTP plumbing shared by the routes, at the ASGI level: body limits, JSON decoding,
disconnect watching, OpenAI-shaped answers and the per-request metrics.

The /v1 POST endpoints (`JsonPost`) work on the raw ASGI scope, receive and send, so the app
can dispatch to them without Starlette's router, middleware stack and FastAPI's dependency
solving (`server/app.py`): that stack costs ~150 us of CPU per request (a trivial handler,
32 clients: 37 us raw, 187 us as a FastAPI route), and on a small CPU box every such
microsecond comes out of the forward pass. FastAPI keeps the same handlers as routes, for
the OpenAPI schema and for any path the fast dispatch does not match.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from models.errors import ModelError
from server.errors import InvalidRequestError, PayloadTooLargeError, RequestTimeoutError, error_parts
from server.lifecycle import ServerState
from server.protocol import parse_request
from server.request_context import current
from server.responses import Reply
from server.scheduling.pending import ClientDisconnectedError

log = logging.getLogger(__name__)

_JSON = (b"content-type", b"application/json")


@dataclass(frozen=True, slots=True)
class Answer:
    """A JSON answer, sendable as raw ASGI messages or as a Starlette response."""

    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()

    async def send(self, send: Send) -> None:
        headers = [_JSON, (b"content-length", str(len(self.body)).encode())]
        headers += [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in self.headers]
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": self.body})

    def response(self) -> Response:
        return Response(self.body, status_code=self.status, media_type="application/json", headers=dict(self.headers))


def server_state(request: Request) -> ServerState:
    return request.app.state.server


def header(scope: Scope, name: bytes) -> str | None:
    """A request header by its lower-case name (ASGI servers lower-case them)."""
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


async def read_json(scope: Scope, receive: Receive, limit: int) -> Any:
    declared = header(scope, b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLargeError(f"request body of {declared} bytes exceeds the limit of {limit} bytes")
    chunks = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnectedError
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(f"request body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
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


def deadline_s(scope: Scope, default_s: float) -> float:
    """The request's time budget: --request-timeout-s, or less if the client asks (X-Request-Timeout)."""
    asked = header(scope, b"x-request-timeout")
    if asked is None:
        return default_s
    try:
        seconds = float(asked)
    except ValueError:
        seconds = float("nan")
    if not 0 < seconds < float("inf"):
        raise InvalidRequestError(
            f"X-Request-Timeout must be a positive number of seconds, got {asked!r}", param="X-Request-Timeout"
        )
    return min(seconds, default_s)


async def answer(state: ServerState, endpoint: str, scope: Scope, work: Callable[[], Awaitable[Reply]]) -> Answer:
    """Run a /v1 endpoint: auth, readiness and the deadline first, then `work`; every failure
    becomes an OpenAI-shaped error (a 500 is logged, with the request id), and the request
    metrics are recorded."""
    started = time.perf_counter()
    context = current()
    model = "-"
    admission = None
    state.metrics.in_flight.inc()
    try:
        tenant = state.tenants.authenticate(header(scope, b"authorization"))
        if context is not None:
            context.tenant = tenant.name  # also the request's turn group in the queue
        state.require_ready()
        budget = deadline_s(scope, state.settings.request_timeout_s)  # before admission: a 400 costs no quota
        if context is not None:
            context.deadline = started + budget
        admission = await state.limiter.admit(tenant)
        admission.raise_if_refused()
        try:
            with admission.bound():  # the services charge tokens and check models through it
                async with asyncio.timeout(budget):
                    reply = await work()
        except TimeoutError:
            raise RequestTimeoutError(
                f"the request did not finish within its deadline of {budget:g} s (--request-timeout-s or "
                "X-Request-Timeout); its queued inputs were dropped"
            ) from None
        model = reply.model
        if context is not None:
            context.model, context.inputs, context.tokens = reply.model, reply.inputs, reply.tokens
        headers = list(admission.headers().items())
        if state.settings.cache_hits_header:
            headers.append(("X-Cache-Hits", f"{reply.cache_hits}/{reply.inputs}"))
        result = Answer(200, reply.body, tuple(headers))
    except ClientDisconnectedError:
        log.info("%s: client disconnected; its queued inputs were dropped", endpoint)
        result = Answer(499, b"")
    except Exception as exc:
        error, status, body = error_parts(exc)
        if status == 500:
            log.error("%s request failed: %s", endpoint, exc, exc_info=not isinstance(exc, ModelError))
        result = Answer(status, body, tuple(error.headers().items()))
        state.metrics.errors.labels(error.type, error.code, status).inc()
    finally:
        if admission is not None:
            admission.release()
        state.metrics.in_flight.dec()
    state.metrics.observe_request(endpoint, model, result.status, time.perf_counter() - started)
    return result


class Service(Protocol):
    async def create(self, request: Any, abandon: Awaitable[Any] | None = None) -> Reply: ...


class JsonPost:
    """One JSON POST endpoint: body → `schema` → `service(state).create(payload, disconnect)`."""

    def __init__(self, endpoint: str, schema: type[BaseModel], service: Callable[[ServerState], Service]) -> None:
        self.endpoint = endpoint
        self.schema = schema
        self._service = service

    async def answer(self, state: ServerState, scope: Scope, receive: Receive) -> Answer:
        async def work() -> Reply:
            payload = parse_request(self.schema, await read_json(scope, receive, state.settings.max_request_bytes))
            disconnect = watch_disconnect(receive)
            try:
                return await self._service(state).create(payload, disconnect)
            finally:
                disconnect.cancel()

        return await answer(state, self.endpoint, scope, work)

    async def route(self, request: Request) -> Response:
        """The same endpoint as a FastAPI route."""
        return (await self.answer(server_state(request), request.scope, request.receive)).response()

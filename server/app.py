"""The FastAPI application: routes, error handlers, and the model lifecycle."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Callable

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from models.card import ModelCard
from server.api import documents, embeddings, health, models
from server.api.http import JsonPost
from server.errors import install_error_handlers
from server.lifecycle import ServerState, resolve_cards
from server.request_layer import RequestLayer
from server.settings import ServerSettings
from server.tracing import RequestTracer

# The hot endpoints, dispatched on their exact path before FastAPI's stack (see server/api/http.py).
FAST_POSTS: dict[str, JsonPost] = {
    "/v1/embeddings": embeddings.ENDPOINT,
    "/v1/documents/embeddings": documents.ENDPOINT,
}


# Response headers a browser client may read (CORS).
EXPOSED_HEADERS = [
    "x-request-id", "server-timing", "x-tokenization-time", "x-queue-time", "x-inference-time", "x-total-time",
    "retry-after", "retry-after-ms", "x-cache-hits", "x-ratelimit-limit-requests", "x-ratelimit-remaining-requests",
    "x-ratelimit-reset-requests", "x-ratelimit-limit-tokens", "x-ratelimit-remaining-tokens",
    "x-ratelimit-reset-tokens",
]  # fmt: skip


class EmbeddingApp(FastAPI):
    """FastAPI behind the request layer, except that a POST to a hot endpoint goes straight
    to its ASGI handler."""

    entry: ASGIApp  # the request layer around `dispatch` (set by create_app)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self.entry(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)

    async def dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] == "POST" and (post := FAST_POSTS.get(scope["path"])):
            await (await post.answer(self.state.server, scope, receive)).send(send)
            return
        await super().__call__(scope, receive, send)


def create_app(
    settings: ServerSettings,
    *,
    cards: list[ModelCard] | None = None,
    on_fatal: Callable[[BaseException], None] | None = None,
    tracer: RequestTracer | None = None,
) -> EmbeddingApp:
    """`cards` defaults to resolving settings.model; models load in the background after
    start-up so /health answers at once and /ready turns 200 when they are warm. `tracer`
    defaults to an OTLP exporter when --otlp-endpoint is set."""
    state = ServerState(settings)
    resolved = cards if cards is not None else resolve_cards(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loading = asyncio.create_task(state.load(resolved, on_fatal))
        app.state.loading = loading
        watching = asyncio.create_task(state.tenants.watch())
        with contextlib.suppress(RuntimeError, ValueError, NotImplementedError):  # only the main thread may
            # SIGHUP re-reads the tenants file (its default action would end the process).
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, state.tenants.reload)
        yield
        watching.cancel()
        if not loading.done():
            loading.cancel()
        with contextlib.suppress(BaseException):
            await loading
        with contextlib.suppress(BaseException):
            await watching
        await state.drain_and_stop()

    app = EmbeddingApp(
        title="embed-server",
        summary="OpenAI-compatible embedding server",
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.server = state
    install_error_handlers(app)
    for module in (embeddings, documents, models, health):
        app.include_router(module.router)
    inner: ASGIApp = app.dispatch
    if settings.cors_origin:
        inner = CORSMiddleware(
            inner, allow_origins=settings.cors_origin, allow_methods=["GET", "POST", "OPTIONS"], allow_headers=["*"],
            expose_headers=EXPOSED_HEADERS, max_age=600,
        )  # fmt: skip
    if tracer is None and settings.otlp_endpoint:
        tracer = RequestTracer.to_otlp(settings.otlp_endpoint)
    app.entry = RequestLayer(inner, access_log_enabled=settings.access_log, tracer=tracer)
    return app

"""The FastAPI application: routes, error handlers, and the model lifecycle."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from models.card import ModelCard
from server.api import documents, embeddings, health, models
from server.api.http import JsonPost
from server.errors import install_error_handlers
from server.lifecycle import ServerState, resolve_cards
from server.settings import ServerSettings

# The hot endpoints, dispatched on their exact path before FastAPI's stack (see server/api/http.py).
FAST_POSTS: dict[str, JsonPost] = {
    "/v1/embeddings": embeddings.ENDPOINT,
    "/v1/documents/embeddings": documents.ENDPOINT,
}


class EmbeddingApp(FastAPI):
    """FastAPI, except that a POST to a hot endpoint goes straight to its ASGI handler."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and (post := FAST_POSTS.get(scope["path"])):
            await (await post.answer(self.state.server, scope, receive)).send(send)
            return
        await super().__call__(scope, receive, send)


def create_app(
    settings: ServerSettings,
    *,
    cards: list[ModelCard] | None = None,
    on_fatal: Callable[[BaseException], None] | None = None,
) -> EmbeddingApp:
    """`cards` defaults to resolving settings.model; models load in the background after
    start-up so /health answers at once and /ready turns 200 when they are warm."""
    state = ServerState(settings)
    resolved = cards if cards is not None else resolve_cards(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loading = asyncio.create_task(state.load(resolved, on_fatal))
        app.state.loading = loading
        yield
        if not loading.done():
            loading.cancel()
        with contextlib.suppress(BaseException):
            await loading
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
    return app

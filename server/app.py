"""The FastAPI application: routes, error handlers, and the model lifecycle."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

from fastapi import FastAPI

from models.card import ModelCard
from server.api import documents, embeddings, health, models
from server.errors import install_error_handlers
from server.lifecycle import ServerState, resolve_cards
from server.settings import ServerSettings


def create_app(
    settings: ServerSettings,
    *,
    cards: list[ModelCard] | None = None,
    on_fatal: Callable[[BaseException], None] | None = None,
) -> FastAPI:
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

    app = FastAPI(
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

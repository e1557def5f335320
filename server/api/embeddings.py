"""POST /v1/embeddings: parse, delegate to the EmbeddingService, answer."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from server.api.http import answer, read_json, watch_disconnect
from server.lifecycle import ServerState
from server.protocol import EmbeddingRequest, parse_request
from server.responses import Reply

router = APIRouter()

_OPENAPI = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": EmbeddingRequest.model_json_schema()}},
    }
}


@router.post("/v1/embeddings", openapi_extra=_OPENAPI, summary="Create embeddings (OpenAI-compatible)")
async def create_embeddings(request: Request) -> Response:
    async def work(state: ServerState) -> Reply:
        payload = parse_request(EmbeddingRequest, await read_json(request, state.settings.max_request_bytes))
        disconnect = watch_disconnect(request.receive)
        try:
            return await state.embeddings.create(payload, disconnect)
        finally:
            disconnect.cancel()

    return await answer(request, "embeddings", work)

"""POST /v1/embeddings: parse, delegate to the EmbeddingService, answer."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from server.api.http import JsonPost
from server.protocol import EmbeddingRequest

router = APIRouter()

ENDPOINT = JsonPost("embeddings", EmbeddingRequest, lambda state: state.embeddings)

_OPENAPI = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": EmbeddingRequest.model_json_schema()}},
    }
}


@router.post("/v1/embeddings", openapi_extra=_OPENAPI, summary="Create embeddings (OpenAI-compatible)")
async def create_embeddings(request: Request) -> Response:
    return await ENDPOINT.route(request)

"""POST /v1/documents/embeddings: whole documents in, chunks with offsets and vectors out."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from server.api.http import JsonPost
from server.protocol import DocumentEmbeddingRequest

router = APIRouter()

ENDPOINT = JsonPost("documents", DocumentEmbeddingRequest, lambda state: state.documents)

_OPENAPI = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": DocumentEmbeddingRequest.model_json_schema()}},
    }
}


@router.post("/v1/documents/embeddings", openapi_extra=_OPENAPI, summary="Chunk documents and embed the chunks")
async def create_document_embeddings(request: Request) -> Response:
    return await ENDPOINT.route(request)

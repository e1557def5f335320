"""POST /v1/documents/embeddings: whole documents in, chunks with offsets and vectors out."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from server.api.http import answer, read_json, watch_disconnect
from server.lifecycle import ServerState
from server.protocol import DocumentEmbeddingRequest, parse_request
from server.responses import Reply

router = APIRouter()

_OPENAPI = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": DocumentEmbeddingRequest.model_json_schema()}},
    }
}


@router.post("/v1/documents/embeddings", openapi_extra=_OPENAPI, summary="Chunk documents and embed the chunks")
async def create_document_embeddings(request: Request) -> Response:
    async def work(state: ServerState) -> Reply:
        payload = parse_request(DocumentEmbeddingRequest, await read_json(request, state.settings.max_request_bytes))
        disconnect = watch_disconnect(request.receive)
        try:
            return await state.documents.create(payload, disconnect)
        finally:
            disconnect.cancel()

    return await answer(request, "documents", work)

"""POST /v1/documents/embeddings: whole documents in, chunks with offsets and vectors out."""

from __future__ import annotations

from fastapi import APIRouter, Security
from starlette.requests import Request
from starlette.responses import Response

from server.api import schemas
from server.api.http import JsonPost
from server.protocol import DocumentEmbeddingRequest

router = APIRouter()

ENDPOINT = JsonPost("documents", DocumentEmbeddingRequest, lambda state: state.documents)

_EXAMPLE = {"input": "Cats purr. Dogs bark.", "chunking": {"kind": "sentences", "max_tokens": 4}}


@router.post(
    "/v1/documents/embeddings",
    summary="Chunk documents and embed the chunks",
    openapi_extra={
        **schemas.request_body(DocumentEmbeddingRequest, _EXAMPLE),
        **schemas.V1_PARAMETERS,
    },
    dependencies=[Security(schemas.BEARER)],
    responses={
        **schemas.ok(
            schemas.DocumentList,
            "Each document's chunks, with character offsets and one vector each.",
            {**schemas.STAGE_HEADERS, **schemas.CACHE_HITS_HEADER},
        ),
        **schemas.errors(400, 401, 404, 413, 429, 500, 503, 504, headers=schemas.STAGE_HEADERS),
    },
)
async def create_document_embeddings(request: Request) -> Response:
    return await ENDPOINT.route(request)

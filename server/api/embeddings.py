"""POST /v1/embeddings: parse, delegate to the EmbeddingService, answer."""

from __future__ import annotations

from fastapi import APIRouter, Security
from starlette.requests import Request
from starlette.responses import Response

from server.api import schemas
from server.api.http import JsonPost
from server.protocol import EmbeddingRequest

router = APIRouter()

ENDPOINT = JsonPost("embeddings", EmbeddingRequest, lambda state: state.embeddings)

_EXAMPLE = {"input": ["The food was delicious.", "A pleasant meal."]}


@router.post(
    "/v1/embeddings",
    summary="Create embeddings (OpenAI-compatible)",
    openapi_extra={
        **schemas.request_body(EmbeddingRequest, _EXAMPLE),
        **schemas.V1_PARAMETERS,
    },
    dependencies=[Security(schemas.BEARER)],
    responses={
        **schemas.ok(
            schemas.EmbeddingList,
            "One vector per input, in input order.",
            {**schemas.STAGE_HEADERS, **schemas.CACHE_HITS_HEADER},
        ),
        **schemas.errors(400, 401, 404, 413, 429, 500, 503, 504, headers=schemas.STAGE_HEADERS),
    },
)
async def create_embeddings(request: Request) -> Response:
    return await ENDPOINT.route(request)

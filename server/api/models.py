"""GET /v1/models: every served name, OpenAI's shape, plus what each model computes."""

from __future__ import annotations

from fastapi import APIRouter, Security
from starlette.requests import Request
from starlette.responses import Response

from models.catalog import DEFAULT_MODEL
from server.api import schemas
from server.api.http import answer, server_state
from server.limits.limiter import current_admission
from server.model_runtime import ModelRuntime
from server.responses import Reply, dumps

router = APIRouter()


def _entry(name: str, runtime: ModelRuntime, created: int) -> dict[str, object]:
    return {
        "id": name,
        "object": "model",
        "created": created,
        "owned_by": "embed-server",
        "root": runtime.name,
        "metadata": runtime.loaded.describe(),
    }


@router.get(
    "/v1/models",
    summary="List served models",
    openapi_extra=schemas.V1_PARAMETERS,
    dependencies=[Security(schemas.BEARER)],
    responses={
        **schemas.ok(schemas.ModelList, "Every served name and alias."),
        **schemas.errors(400, 401, 500, 503, 504),
    },
)
async def list_models(request: Request) -> Response:
    state = server_state(request)

    async def work() -> Reply:
        admission = current_admission()
        tenant = admission.tenant if admission is not None else None
        data = [
            _entry(name, runtime, state.started_at)
            for runtime in state.registry.runtimes
            if tenant is None or tenant.may_use(runtime.names)  # a tenant sees only the models it may use
            for name in runtime.names
        ]
        return Reply("-", dumps({"object": "list", "data": data}))

    return (await answer(state, "models", request.scope, work)).response()


# The id is declared here, not as a handler argument: an argument would make FastAPI document a 422
# it never sends. It may contain "/" (e.g. sentence-transformers/all-MiniLM-L6-v2), sent as is or as %2F.
_MODEL_ID = {
    "name": "model_id",
    "in": "path",
    "required": True,
    "description": "A served model name or alias; it may contain '/'.",
    "schema": {"type": "string"},
    "example": DEFAULT_MODEL,
}


@router.get(
    "/v1/models/{model_id:path}",
    summary="Describe one served model",
    openapi_extra={**schemas.V1_PARAMETERS, "parameters": [_MODEL_ID, *schemas.V1_PARAMETERS["parameters"]]},
    dependencies=[Security(schemas.BEARER)],
    responses={**schemas.ok(schemas.ModelEntry, "The model."), **schemas.errors(400, 401, 404, 500, 503, 504)},
)
async def get_model(request: Request) -> Response:
    state = server_state(request)
    model_id: str = request.path_params["model_id"]

    async def work() -> Reply:
        runtime = state.registry.for_request(model_id)
        return Reply(runtime.name, dumps(_entry(model_id, runtime, state.started_at)))

    return (await answer(state, "models", request.scope, work)).response()

"""GET /v1/models: every served name, OpenAI's shape, plus what each model computes."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from server.api.http import answer, server_state
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


@router.get("/v1/models", summary="List served models")
async def list_models(request: Request) -> Response:
    state = server_state(request)

    async def work() -> Reply:
        data = [
            _entry(name, runtime, state.started_at) for runtime in state.registry.runtimes for name in runtime.names
        ]
        return Reply("-", dumps({"object": "list", "data": data}))

    return (await answer(state, "models", request.headers.get("authorization"), work)).response()


@router.get("/v1/models/{model_id:path}", summary="Describe one served model")
async def get_model(request: Request, model_id: str) -> Response:
    state = server_state(request)

    async def work() -> Reply:
        runtime = state.registry.get(model_id)
        return Reply(runtime.name, dumps(_entry(model_id, runtime, state.started_at)))

    return (await answer(state, "models", request.headers.get("authorization"), work)).response()

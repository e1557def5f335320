"""POST /v1/embeddings, step by step: pick the model, validate against what it can do,
tokenize, compute (queue + workers), shape the vectors, build the response."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from models.engines.base import EngineInput
from models.loader import LoadedModel
from models.matryoshka import shape_vectors
from models.prompts import select_prompt
from server.errors import InvalidRequestError
from server.protocol import EmbeddingRequest
from server.registry import ModelRegistry
from server.responses import embeddings_body
from server.settings import ServerSettings


class EmbeddingService:
    def __init__(self, registry: ModelRegistry, settings: ServerSettings) -> None:
        self._registry = registry
        self._settings = settings

    def model_name(self, request: EmbeddingRequest) -> str:
        return self._registry.get(request.model).name

    async def create(self, request: EmbeddingRequest, abandon: Awaitable[Any] | None = None) -> bytes:
        runtime = self._registry.get(request.model)
        count = len(request.input)
        if count > self._settings.max_inputs:
            raise InvalidRequestError(
                f"input has {count} items; at most {self._settings.max_inputs} are accepted per request",
                param="input",
            )
        dimensions = checked_dimensions(runtime.loaded, request.dimensions)
        card = runtime.card
        prompt = select_prompt(
            card, input_type=request.input_type, prompt_name=request.prompt_name, instruction=request.instruction
        )
        runtime.check_capacity()
        tokenized = await runtime.tokenize(
            request.input, prompt=prompt, truncation=request.truncate or self._settings.truncate
        )
        exclude_prompt = card.exclude_prompt_from_pooling
        payloads = [EngineInput(t.ids, t.prompt_tokens if exclude_prompt else 0) for t in tokenized]
        vectors = await runtime.compute(payloads, abandon)
        normalize = card.normalize if request.normalize is None else request.normalize
        shaped = shape_vectors(runtime.stack(vectors), dimensions=dimensions, normalize=normalize)
        return embeddings_body(
            shaped,
            model=request.model or runtime.name,
            encoding_format=request.encoding_format,
            tokens=sum(len(t) for t in tokenized),
        )


def checked_dimensions(model: LoadedModel, dimensions: int | None) -> int | None:
    """The Matryoshka size to cut to, or None for the full vector; refuses sizes the model lacks."""
    if dimensions is None:
        return None
    full = model.dimensions
    allowed = model.allowed_dimensions()
    if allowed is None:
        if not 1 <= dimensions <= full:
            raise InvalidRequestError(
                f"dimensions must be between 1 and {full} for model {model.card.name!r} (got {dimensions})",
                param="dimensions",
            )
    elif dimensions not in allowed and dimensions != full:
        raise InvalidRequestError(
            f"model {model.card.name!r} was trained for dimensions {sorted({*allowed, full})}; got {dimensions}",
            param="dimensions",
        )
    return dimensions if dimensions < full else None

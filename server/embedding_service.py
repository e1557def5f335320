"""POST /v1/embeddings, step by step: pick the model, validate against what it can do,
tokenize, compute (queue + workers), shape the vectors, build the response."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

import numpy as np

from models.engines.base import EngineInput
from models.matryoshka import shape_vectors
from server.document_service import LateChunker
from server.errors import InvalidRequestError
from server.limits.limiter import charge_tokens
from server.model_runtime import ModelRuntime
from server.protocol import EmbeddingRequest, TextInputs
from server.registry import ModelRegistry
from server.responses import Reply, embeddings_body
from server.settings import ServerSettings
from server.validation import checked_dimensions, prompt_for


class EmbeddingService:
    def __init__(self, registry: ModelRegistry, settings: ServerSettings) -> None:
        self._registry = registry
        self._settings = settings
        self._late = LateChunker(settings)

    async def create(self, request: EmbeddingRequest, abandon: Awaitable[Any] | None = None) -> Reply:
        runtime = self._registry.for_request(request.model)
        count = len(request.input)
        if count > self._settings.max_inputs:
            raise InvalidRequestError(
                f"input has {count} items; at most {self._settings.max_inputs} are accepted per request",
                param="input",
            )
        dimensions = checked_dimensions(runtime.loaded, request.dimensions)
        card = runtime.card
        prompt = prompt_for(card, request)
        runtime.check_capacity()
        if request.late_chunking:
            vectors, tokens, hits = await self._late_chunks(runtime, request, prompt, abandon)
        else:
            vectors, tokens, hits = await self._independent(runtime, request, prompt, abandon)
        normalize = card.normalize if request.normalize is None else request.normalize
        body = embeddings_body(
            shape_vectors(vectors, dimensions=dimensions, normalize=normalize),
            model=request.model or runtime.name,
            encoding_format=request.encoding_format,
            tokens=tokens,
        )
        runtime.count_served(len(vectors), tokens)
        return Reply(runtime.name, body, cache_hits=hits, inputs=len(vectors), tokens=tokens)

    async def _independent(
        self, runtime: ModelRuntime, request: EmbeddingRequest, prompt: str | None, abandon: Awaitable[Any] | None
    ) -> tuple[np.ndarray, int, int]:
        if request.window_overlap is not None:
            raise InvalidRequestError("window_overlap applies only with late_chunking", param="window_overlap")
        tokenized = await runtime.tokenize(
            request.input, prompt=prompt, truncation=request.truncate or self._settings.truncate
        )
        await charge_tokens(sum(len(t) for t in tokenized))  # the tenant's tokens per minute (429 beyond)
        exclude_prompt = runtime.card.exclude_prompt_from_pooling
        payloads = [EngineInput(t.ids, t.prompt_tokens if exclude_prompt else 0) for t in tokenized]
        result = await runtime.results.vectors(payloads, use_cache=request.cache, abandon=abandon)
        return runtime.stack(result.rows), sum(len(t) for t in tokenized), result.cache_hits

    async def _late_chunks(
        self, runtime: ModelRuntime, request: EmbeddingRequest, prompt: str | None, abandon: Awaitable[Any] | None
    ) -> tuple[np.ndarray, int, int]:
        if not isinstance(request.input, TextInputs):
            raise InvalidRequestError("late_chunking takes the document's chunks as strings", param="input")
        if request.truncate not in (None, "none"):
            raise InvalidRequestError(
                "late_chunking never truncates: documents longer than the context are encoded in overlapping windows",
                param="truncate",
            )
        overlap = self._late.overlap_for(runtime, request.window_overlap)
        result = await self._late.embed_chunks(
            runtime, request.input.texts, prompt=prompt, overlap=overlap, use_cache=request.cache, abandon=abandon
        )
        return result.vectors, result.tokens, result.cache_hits

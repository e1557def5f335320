"""Late chunking on the request path: whole documents in, one vector per chunk out.

The document is tokenized once (with character offsets), cut into the model's windows when
it is longer than the context, and every window goes through the same queue, batching and
workers as ordinary inputs; each window returns only the sums of its token vectors over
the chunk spans it holds, which are added up here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from models.engines.base import EngineInput
from models.late_chunking import (
    Span,
    SpanAccumulator,
    assign_spans,
    join_chunks,
    plan_windows,
    token_spans,
)
from models.tokenization import TokenizedDocument
from server.errors import InvalidRequestError
from server.model_runtime import ModelRuntime
from server.settings import ServerSettings


@dataclass(frozen=True, slots=True)
class LateChunkResult:
    vectors: np.ndarray  # [chunks, hidden] float32, not normalised
    tokens: int  # tokens the model processed (window overlaps count twice)


class LateChunker:
    def __init__(self, settings: ServerSettings) -> None:
        self._default_overlap = settings.window_overlap

    def overlap_for(self, runtime: ModelRuntime, requested: int | None) -> int:
        length = runtime.loaded.max_tokens
        if requested is None:
            return min(self._default_overlap, length // 2)
        if requested >= length:
            raise InvalidRequestError(
                f"window_overlap must be below the model's context of {length} tokens (got {requested})",
                param="window_overlap",
            )
        return requested

    async def embed_chunks(
        self,
        runtime: ModelRuntime,
        chunks: Sequence[str],
        *,
        prompt: str | None,
        overlap: int,
        abandon: Awaitable[Any] | None,
    ) -> LateChunkResult:
        """/v1/embeddings with late_chunking: `chunks` are consecutive pieces of one document."""
        text, char_spans = join_chunks(chunks)
        (document,) = await runtime.tokenize_documents([text], prompt=prompt)
        pool_prompt = not runtime.card.exclude_prompt_from_pooling
        spans = token_spans(document, text, char_spans, pool_prompt=pool_prompt)
        return await self.pool_spans(runtime, document, spans, overlap=overlap, abandon=abandon)

    async def pool_spans(
        self,
        runtime: ModelRuntime,
        document: TokenizedDocument,
        spans: Sequence[Span],
        *,
        overlap: int,
        abandon: Awaitable[Any] | None,
    ) -> LateChunkResult:
        windows = plan_windows(len(document.ids), runtime.loaded.max_tokens, overlap)
        plan = assign_spans(windows, spans)
        payloads = [EngineInput(document.ids[part.window.start : part.window.end], spans=part.local) for part in plan]
        sums = await runtime.compute(payloads, abandon)
        accumulator = SpanAccumulator(spans, runtime.loaded.dimensions)
        for part, window_sums in zip(plan, sums, strict=True):
            accumulator.add(part, window_sums)
        return LateChunkResult(accumulator.means(), sum(window.processed for window in windows))

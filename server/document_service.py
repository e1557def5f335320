"""Late chunking on the request path: whole documents in, one vector per chunk out.

The document is tokenized once (with character offsets), cut into the model's windows when
it is longer than the context, and every window goes through the same queue, batching and
workers as ordinary inputs; each window returns only the sums of its token vectors over
the chunk spans it holds, which are added up here.

Everything that grows with the document (chunk spans, windows, cache keys, payloads, the
sums' accumulation, the response body) runs on a worker thread: at --max-document-tokens
and --max-chunks it takes tens to hundreds of milliseconds, which the event loop, serving
short requests meanwhile, must not spend.
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from models.chunking import Chunk
from models.engines.base import EngineInput
from models.errors import InputTooLongError
from models.late_chunking import (
    Span,
    SpanAccumulator,
    Window,
    WindowSpans,
    assign_spans,
    fold_specials,
    join_chunks,
    plan_windows,
    token_spans,
)
from models.matryoshka import shape_vectors
from models.tokenization import TokenizedDocument
from server.cache.keys import chunk_keys
from server.errors import InvalidRequestError
from server.limits.limiter import charge_tokens
from server.model_runtime import ModelRuntime
from server.protocol import DocumentEmbeddingRequest, TextInputs
from server.registry import ModelRegistry
from server.responses import EncodingFormat, Reply, documents_body
from server.settings import ServerSettings
from server.validation import checked_dimensions, prompt_for


@dataclass(frozen=True, slots=True)
class LateChunkResult:
    vectors: np.ndarray  # [chunks, hidden] float32, not normalised
    tokens: int  # tokens the model processes for it (window overlaps count twice), hit or miss
    cache_hits: int = 0  # chunks answered from the cache


DocumentSpans = tuple[TokenizedDocument, Sequence[Span]]


@dataclass(frozen=True, slots=True)
class DocumentPlan:
    """One document's late-chunking work: its windows, the chunk pieces each window sums, the
    queue input of each window, and the chunks' cache keys."""

    spans: Sequence[Span]
    windows: list[Window]
    parts: list[WindowSpans]
    payloads: list[EngineInput]
    keys: list[bytes]

    @property
    def tokens(self) -> int:
        return sum(window.processed for window in self.windows)


def plan_documents(
    documents: Sequence[DocumentSpans], *, length: int, overlap: int, fingerprint: bytes
) -> list[DocumentPlan]:
    """Blocking and linear in tokens + chunks + windows: call it off the event loop."""
    plans = []
    for document, spans in documents:
        windows = plan_windows(len(document.ids), length, overlap)
        parts = assign_spans(windows, spans)
        payloads = [EngineInput(document.ids[p.window.start : p.window.end], spans=p.local) for p in parts]
        keys = chunk_keys(fingerprint, document.ids, spans, length, overlap)
        plans.append(DocumentPlan(spans, windows, parts, payloads, keys))
    return plans


def chunk_means(plans: Sequence[DocumentPlan], sums: Sequence[np.ndarray], dimensions: int) -> list[np.ndarray]:
    """Each document's chunk vectors (mean of their token vectors) from the span sums of all
    the plans' windows, in order. Blocking: call it off the event loop."""
    window_sums = iter(sums)
    out = []
    for plan in plans:
        accumulator = SpanAccumulator(plan.spans, dimensions)
        for part in plan.parts:
            accumulator.add(part, next(window_sums))
        out.append(accumulator.means())
    return out


def fold_chunks(split: Sequence[tuple[TokenizedDocument, list[Chunk]]], pool_prompt: bool) -> list[DocumentSpans]:
    """Each document with its chunks' spans of the full token sequence (blocking)."""
    return [
        (document, fold_specials([(c.token_start, c.token_end) for c in chunks], document, pool_prompt=pool_prompt))
        for document, chunks in split
    ]


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
        use_cache: bool,
        abandon: Awaitable[Any] | None,
    ) -> LateChunkResult:
        """/v1/embeddings with late_chunking: `chunks` are consecutive pieces of one document."""
        text, char_spans = join_chunks(chunks)
        (document,) = await runtime.tokenize_documents([text], prompt=prompt)
        pool_prompt = not runtime.card.exclude_prompt_from_pooling
        spans = await runtime.run_document_work(token_spans, document, text, char_spans, pool_prompt=pool_prompt)
        (result,) = await self.pool_spans(
            runtime, [(document, spans)], overlap=overlap, use_cache=use_cache, abandon=abandon
        )
        return result

    async def pool_spans(
        self,
        runtime: ModelRuntime,
        documents: Sequence[DocumentSpans],
        *,
        overlap: int,
        use_cache: bool,
        abandon: Awaitable[Any] | None,
    ) -> list[LateChunkResult]:
        """Documents whose chunks are all cached are answered from the cache (one lookup for the
        request); every window of the others goes to the queue as one request."""
        results = runtime.results
        # Planned in full before the cache lookup: on a hit the windows' part is wasted, but it
        # is linear and off the loop, and one hop keeps the flow plain.
        plans = await runtime.run_document_work(
            plan_documents,
            documents,
            length=runtime.loaded.max_tokens,
            overlap=overlap,
            fingerprint=results.fingerprint,
        )
        await charge_tokens(sum(plan.tokens for plan in plans))  # the tenant's tokens per minute (429 beyond)
        cached: list[np.ndarray | None] = []
        if use_cache and results.cache is not None:
            cached = await results.lookup([key for plan in plans for key in plan.keys])
        found = iter(cached)
        hits: list[np.ndarray | None] = []
        for plan in plans:
            vectors = [next(found) for _ in plan.keys] if cached else [None]
            if all(vector is not None for vector in vectors):
                hits.append(np.stack(vectors))  # type: ignore[arg-type]
            else:
                hits.append(None)
        misses = [plan for plan, hit in zip(plans, hits, strict=True) if hit is None]
        means: list[np.ndarray] = []
        if misses:
            sums = await runtime.compute([payload for plan in misses for payload in plan.payloads], abandon)
            means = await runtime.run_document_work(chunk_means, misses, sums, runtime.loaded.dimensions)
        computed = iter(means)
        out = []
        for plan, hit in zip(plans, hits, strict=True):
            if hit is not None:
                out.append(LateChunkResult(hit, plan.tokens, cache_hits=len(hit)))
                continue
            vectors = next(computed)
            if use_cache:
                results.store(list(zip(plan.keys, vectors, strict=True)))
            out.append(LateChunkResult(vectors, plan.tokens))
        return out


class DocumentService:
    """POST /v1/documents/embeddings: split, then late (default) or naive chunk embeddings."""

    def __init__(self, registry: ModelRegistry, settings: ServerSettings) -> None:
        self._registry = registry
        self._settings = settings
        self._late = LateChunker(settings)

    async def create(self, request: DocumentEmbeddingRequest, abandon: Awaitable[Any] | None = None) -> Reply:
        runtime = self._registry.for_request(request.model)
        if len(request.input) > self._settings.max_inputs:
            raise InvalidRequestError(
                f"input has {len(request.input)} documents; at most {self._settings.max_inputs} per request",
                param="input",
            )
        dimensions = checked_dimensions(runtime.loaded, request.dimensions)
        prompt = prompt_for(runtime.card, request)
        overlap = self._late.overlap_for(runtime, request.window_overlap) if request.late_chunking else 0
        if not request.late_chunking and request.window_overlap is not None:
            raise InvalidRequestError("window_overlap applies only with late_chunking", param="window_overlap")
        runtime.check_capacity()
        split = await runtime.split_documents(request.input, prompt=prompt, splitter=request.chunking)
        total = sum(len(chunks) for _, chunks in split)
        if total > self._settings.max_chunks:
            raise InvalidRequestError(
                f"the documents split into {total} chunks, more than the limit of {self._settings.max_chunks}; "
                "use larger chunks or less overlap",
                param="chunking",
            )
        if request.late_chunking:
            vectors, tokens, hits = await self._late_vectors(runtime, split, overlap, request.cache, abandon)
        else:
            vectors, tokens, hits = await self._naive_vectors(runtime, split, prompt, request.cache, abandon)
        normalize = runtime.card.normalize if request.normalize is None else request.normalize
        # Off the loop too: serialising thousands of chunk vectors takes longer than a batch.
        body = await runtime.run_document_work(
            _documents_reply_body,
            split,
            vectors,
            dimensions=dimensions,
            normalize=normalize,
            model=request.model or runtime.name,
            encoding_format=request.encoding_format,
            tokens=tokens,
        )
        runtime.count_served(total, tokens)
        return Reply(runtime.name, body, cache_hits=hits, inputs=total, tokens=tokens)

    async def _late_vectors(
        self,
        runtime: ModelRuntime,
        split: list[tuple[TokenizedDocument, list[Chunk]]],
        overlap: int,
        use_cache: bool,
        abandon: Awaitable[Any] | None,
    ) -> tuple[list[np.ndarray], int, int]:
        pool_prompt = not runtime.card.exclude_prompt_from_pooling
        documents = await runtime.run_document_work(fold_chunks, split, pool_prompt)
        results = await self._late.pool_spans(runtime, documents, overlap=overlap, use_cache=use_cache, abandon=abandon)
        return (
            [result.vectors for result in results],
            sum(result.tokens for result in results),
            sum(result.cache_hits for result in results),
        )

    async def _naive_vectors(
        self,
        runtime: ModelRuntime,
        split: list[tuple[TokenizedDocument, list[Chunk]]],
        prompt: str | None,
        use_cache: bool,
        abandon: Awaitable[Any] | None,
    ) -> tuple[list[np.ndarray], int, int]:
        texts = [chunk.text for _, chunks in split for chunk in chunks]
        owners = [(d, c) for d, (_, chunks) in enumerate(split) for c in range(len(chunks))]
        try:
            tokenized = await runtime.tokenize(TextInputs(texts), prompt=prompt, truncation="none")
        except InputTooLongError as exc:
            document, chunk = owners[exc.index or 0]
            raise InvalidRequestError(
                f"document {document} chunk {chunk}: {str(exc).split(': ', 1)[-1].split(';')[0]}; "
                "use a smaller chunking.max_tokens or late_chunking",
                param="chunking",
            ) from None
        await charge_tokens(sum(len(t) for t in tokenized))
        exclude = runtime.card.exclude_prompt_from_pooling
        payloads = [EngineInput(t.ids, t.prompt_tokens if exclude else 0) for t in tokenized]
        result = await runtime.results.vectors(payloads, use_cache=use_cache, abandon=abandon)
        rows = runtime.stack(result.rows)
        vectors, start = [], 0
        for _, chunks in split:
            vectors.append(rows[start : start + len(chunks)])
            start += len(chunks)
        return vectors, sum(len(t) for t in tokenized), result.cache_hits


def _documents_reply_body(
    split: list[tuple[TokenizedDocument, list[Chunk]]],
    vectors: list[np.ndarray],
    *,
    dimensions: int | None,
    normalize: bool,
    model: str,
    encoding_format: EncodingFormat,
    tokens: int,
) -> bytes:
    return documents_body(
        [[_chunk_fields(position, chunk) for position, chunk in enumerate(chunks)] for _, chunks in split],
        [shape_vectors(rows, dimensions=dimensions, normalize=normalize) for rows in vectors],
        model=model,
        encoding_format=encoding_format,
        tokens=tokens,
    )


def _chunk_fields(position: int, chunk: Chunk) -> dict[str, Any]:
    return {"index": position, "text": chunk.text, "start": chunk.start, "end": chunk.end, "tokens": chunk.tokens}

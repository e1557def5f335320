"""One served model at run time: its tokenizer thread, input queue, worker pool and limits."""

from __future__ import annotations

import asyncio
import contextvars
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, ParamSpec, TypeVar

import numpy as np

from models.chunking import Chunk, Splitter
from models.engines.base import Engine, EngineInput, ReplicaHealth
from models.loader import LoadedModel
from models.tokenization import TokenizedDocument, TokenizedInput, Truncation
from server.cache.tiered import ResultCache
from server.cached_compute import CachedCompute
from server.errors import InvalidRequestError, NotReadyError, OverloadedError
from server.metrics import Metrics
from server.protocol import Inputs, TokenInputs
from server.request_context import current, record_stage
from server.scheduling.batch_queue import BatchQueue, QueueClosedError
from server.scheduling.pending import ClientDisconnectedError, PendingRequest, QueuedInput
from server.scheduling.worker_pool import WorkerPool
from server.settings import ServerSettings
from server.token_ids import TokenIdPolicy

# Requests up to this many characters (or token ids) are tokenized on the event loop: a short
# one takes ~30 us there, while the hop to the tokenizer thread and back costs more CPU than
# that (two wake-ups and GIL hand-offs). The bound keeps the loop's pause under ~0.2 ms.
INLINE_TOKENIZE_UNITS = 512

P = ParamSpec("P")
T = TypeVar("T")


def _tenant() -> str:
    context = current()
    return context.tenant if context is not None else ""


def _size(inputs: Inputs) -> int:
    if isinstance(inputs, TokenInputs):
        return sum(len(ids) for ids in inputs.ids)
    return sum(len(text) for text in inputs.texts)


class ModelRuntime:
    def __init__(
        self,
        loaded: LoadedModel,
        engines: Sequence[Engine],
        *,
        names: tuple[str, ...],
        settings: ServerSettings,
        token_ids: TokenIdPolicy,
        metrics: Metrics,
        loop: asyncio.AbstractEventLoop,
        max_batch_tokens: int,
        cache: ResultCache | None = None,
        fingerprint: bytes = b"",
    ) -> None:
        self.loaded = loaded
        self.card = loaded.card
        self.name = names[0]
        self.names = names
        self._token_ids = token_ids
        self._tokenization_duration = metrics.tokenization_duration.labels(self.name)
        self._inputs_served = metrics.inputs.labels(self.name)
        self._tokens_served = metrics.tokens.labels(self.name)
        if max_batch_tokens < loaded.max_tokens:
            raise ValueError(
                f"--max-batch-tokens {max_batch_tokens} is below {self.name}'s input limit of "
                f"{loaded.max_tokens} tokens: its longest inputs could never be batched"
            )
        self.queue = BatchQueue(
            max_batch_tokens=max_batch_tokens,
            max_batch_size=settings.max_batch_size,
            max_queue_tokens=settings.max_queue_tokens,
        )
        self._engines = list(engines)
        self._pool = WorkerPool(
            self.name, engines, self.queue, loop=loop, metrics=metrics, batch_wait_s=settings.batch_wait_ms / 1000
        )
        self.throughput = self._pool.throughput
        self.max_queue_wait_s = settings.max_queue_wait_s
        self._tokenizer_thread = ThreadPoolExecutor(1, thread_name_prefix=f"{self.name}-tokenizer")
        # Whole documents tokenize on their own thread so short requests never wait behind them.
        self._document_thread = ThreadPoolExecutor(1, thread_name_prefix=f"{self.name}-documents")
        self.max_document_tokens = settings.max_document_tokens
        metrics.watch_queue(
            self.name, lambda: self.queue.queued_inputs, lambda: self.queue.queued_tokens, settings.max_queue_tokens
        )
        metrics.queue_wait.labels(self.name).set_function(lambda: self.throughput.wait_s(self.queue.queued_tokens))
        self._waiting: set[PendingRequest] = set()  # requests with inputs queued or running
        self.results = CachedCompute(self.compute, cache=cache, fingerprint=fingerprint, dimensions=loaded.dimensions)

    def warm_up(self) -> None:
        """One forward pass per replica, so the first request does not pay for lazy initialisation."""
        probe = self.loaded.tokenizer.encode_texts(["warm-up"])[0]
        for engine in self._engines:
            engine.run(engine.prepare([EngineInput(probe.ids, probe.prompt_tokens)]))

    def start(self) -> None:
        self._pool.start()

    def replica_health(self) -> list[ReplicaHealth]:
        return [engine.health() for engine in self._engines]

    def drain_and_stop(self, timeout: float | None = None) -> None:
        """Blocking: finish queued work (within `timeout`), then stop. Call off the event loop."""
        self._pool.drain_and_stop(timeout)
        self._tokenizer_thread.shutdown(wait=True)
        self._document_thread.shutdown(wait=True)

    # -- request path --------------------------------------------------------------

    def check_capacity(self) -> None:
        """Cheap refusal before any work when the queue is already full or already too slow."""
        if self.queue.is_full():
            raise OverloadedError(
                f"model {self.name!r} has {self.queue.queued_tokens} tokens queued (limit "
                f"{self.queue.max_queue_tokens}); retry later"
            )
        self._check_wait(_tenant(), 0)

    def _check_wait(self, tenant: str, tokens: int) -> None:
        """429 when a request of `tokens` tokens from `tenant` would wait longer than
        --max-queue-wait-s: the tokens that run before it (tenants take turns) at the model's speed."""
        if not self.queue.queued_tokens:
            return  # a request into an empty queue is always let in
        wait = self.throughput.wait_s(self.queue.tokens_ahead(tenant, tokens))
        if wait > self.max_queue_wait_s:
            raise OverloadedError(
                f"model {self.name!r} is busy: a new request would wait about {wait:.0f} s in its queue (limit "
                f"{self.max_queue_wait_s:g} s, --max-queue-wait-s); retry later",
                retry_after=max(1, math.ceil(wait - self.max_queue_wait_s)),
            )

    async def tokenize(self, inputs: Inputs, *, prompt: str | None, truncation: Truncation) -> list[TokenizedInput]:
        if isinstance(inputs, TokenInputs):
            self._token_ids.check_allowed()
        started = time.perf_counter()
        if _size(inputs) <= INLINE_TOKENIZE_UNITS:
            tokenized = self._tokenize(inputs, prompt, truncation)
        else:
            loop = asyncio.get_running_loop()
            tokenized = await loop.run_in_executor(self._tokenizer_thread, self._tokenize, inputs, prompt, truncation)
        ended = time.perf_counter()
        self._tokenization_duration.observe(ended - started)
        record_stage("tokenize", started, ended)
        return tokenized

    def _tokenize(self, inputs: Inputs, prompt: str | None, truncation: Truncation) -> list[TokenizedInput]:
        tokenizer = self.loaded.tokenizer
        if isinstance(inputs, TokenInputs):
            if self._token_ids.mode == "native":
                return tokenizer.encode_token_ids(inputs.ids, prompt=prompt, truncation=truncation)
            texts = self._token_ids.decode(inputs.ids)
        else:
            texts = inputs.texts
        return tokenizer.encode_texts(texts, prompt=prompt, truncation=truncation)

    async def tokenize_documents(self, texts: Sequence[str], *, prompt: str | None) -> list[TokenizedDocument]:
        """Whole documents with character offsets; refuses any longer than --max-document-tokens."""
        split = await self.split_documents(texts, prompt=prompt, splitter=None)
        return [document for document, _ in split]

    async def split_documents(
        self, texts: Sequence[str], *, prompt: str | None, splitter: Splitter | None
    ) -> list[tuple[TokenizedDocument, list[Chunk]]]:
        """Tokenize (and split, given a splitter) whole documents on the document thread."""
        started = time.perf_counter()
        loop = asyncio.get_running_loop()
        split = await loop.run_in_executor(self._document_thread, self._split_documents, texts, prompt, splitter)
        ended = time.perf_counter()
        self._tokenization_duration.observe(ended - started)
        record_stage("tokenize", started, ended)
        return split

    def _split_documents(
        self, texts: Sequence[str], prompt: str | None, splitter: Splitter | None
    ) -> list[tuple[TokenizedDocument, list[Chunk]]]:
        out = []
        for index, text in enumerate(texts):
            document = self.loaded.tokenizer.encode_document(text, prompt=prompt)
            if len(document.ids) > self.max_document_tokens:
                raise InvalidRequestError(
                    f"document {index} has {len(document.ids)} tokens, more than the limit of "
                    f"{self.max_document_tokens} (--max-document-tokens)",
                    param="input",
                )
            out.append((document, splitter.split(text, document) if splitter is not None else []))
        return out

    async def run_document_work(self, function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Blocking work that grows with a document (late-chunking plans, chunk means, response
        bodies) on this model's document thread: off the event loop, one piece at a time per model.
        The request's context goes along, so its stage timings still count for it."""
        loop = asyncio.get_running_loop()
        call = contextvars.copy_context().run
        return await loop.run_in_executor(self._document_thread, partial(call, function, *args, **kwargs))

    async def compute(self, payloads: Sequence[EngineInput], abandon: Awaitable[Any] | None = None) -> list[Any]:
        """Queue `payloads` as one unit and wait for one result per payload, in order.

        `abandon` resolves when nobody waits any more (client disconnected): the inputs still
        queued are dropped before they cost compute.
        """
        tokens = [len(payload.ids) for payload in payloads]
        total = sum(tokens)
        if total > self.queue.max_queue_tokens:
            raise InvalidRequestError(
                f"the request has {total} tokens; model {self.name!r} queues at most {self.queue.max_queue_tokens} "
                "tokens: split it into smaller requests",
                param="input",
            )
        context = current()
        tenant = _tenant()
        pending = PendingRequest(asyncio.get_running_loop(), len(payloads), tenant)
        items = [QueuedInput(payload, pending, slot, n) for slot, (payload, n) in enumerate(zip(payloads, tokens))]
        self._check_wait(tenant, total)
        try:
            accepted = self.queue.put(items)
        except QueueClosedError:
            raise NotReadyError(f"model {self.name!r} is shutting down") from None
        if not accepted:
            raise OverloadedError(f"model {self.name!r} queue is full ({self.queue.queued_tokens} tokens); retry later")
        self._waiting.add(pending)
        try:
            if abandon is None:
                results = await pending.future
            else:
                done, _ = await asyncio.wait((pending.future, abandon), return_when=asyncio.FIRST_COMPLETED)
                if pending.future not in done:
                    raise ClientDisconnectedError
                results = pending.future.result()
        except BaseException:
            pending.cancelled = True
            self.queue.discard(items)
            raise
        finally:
            self._waiting.discard(pending)
        if context is not None:
            context.record("queue", items[0].enqueued_at, pending.first_started)
            context.record("inference", pending.first_started, pending.last_finished)
        return results

    def abort_waiting(self, error: Exception) -> int:
        """Fail every waiting request with `error` and take no more work (end of a drain).
        On the event loop; returns how many requests were failed."""
        self.queue.close()
        waiting = list(self._waiting)
        for pending in waiting:
            pending.fail(error)
        return len(waiting)

    def count_served(self, inputs: int, tokens: int) -> None:
        self._inputs_served.inc(inputs)
        self._tokens_served.inc(tokens)

    def stack(self, vectors: list[np.ndarray]) -> np.ndarray:
        return np.stack(vectors) if vectors else np.zeros((0, self.loaded.dimensions), dtype=np.float32)

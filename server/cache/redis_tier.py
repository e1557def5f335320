"""The shared tier: Redis behind a breaker, one MGET per request (or fewer), writes off the
response path.

Redis is an optimisation, never a dependency: every call is bounded by a small timeout,
consecutive failures open a circuit breaker so requests stop waiting on a dead or slow
server, and a background probe closes it once Redis answers a PING again (the pool then
reconnects on its own). Writes go to a bounded queue drained by one writer task in
pipelines; when the queue is full they are dropped and counted, so they cannot pile up.
Nothing here raises into a request.

A redis-py call costs the event loop ~100-150 us of CPU whatever its size (measured: one MGET
of one key ~130 us, of 32 keys ~6 us per key), and on a small CPU box that time comes out of
the forward pass. So concurrent small lookups share MGETs (`MergedReads`: one in flight,
lookups made meanwhile go together in the next), and the writer lingers a moment so a
burst of responses becomes one pipeline.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TypeVar
from urllib.parse import urlsplit

import numpy as np
from prometheus_client import CollectorRegistry
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from server.cache.breaker import BreakerState, CircuitBreaker
from server.cache.codec import Key, Storage, decode, encode, key_bytes
from server.cache.metrics import CacheMetrics

log = logging.getLogger(__name__)

T = TypeVar("T")
_WRITE_BATCH = 256  # commands per write pipeline
_WRITE_LINGER_S = 0.002  # gather a burst of writes into one pipeline (off the response path)
_MERGE_MAX_KEYS = 64  # lookups up to this size share MGETs; larger ones amortise their own
_CALLER_GRACE_S = 0.005


Fetch = Callable[[list[bytes], float], Awaitable["list[bytes | None] | None"]]


class MergedReads:
    """Small concurrent lookups share MGETs: at most one merged MGET is in flight, and every
    lookup made while it runs goes in the next one. Idle, a lookup is sent at the next loop
    turn; busy, it waits at most one round trip more, and the CPU cost per lookup falls
    towards the per-key cost. Each caller keeps its own time bound."""

    def __init__(self, fetch: Fetch, max_keys: int = _MERGE_MAX_KEYS) -> None:
        self._fetch = fetch
        self._max_keys = max_keys
        self._waiting: deque[tuple[list[bytes], float, asyncio.Future[list[bytes | None] | None]]] = deque()
        self._sender: asyncio.Task[None] | None = None
        self.sent = 0  # MGETs sent for merged lookups (tests, debugging)

    async def get(self, names: list[bytes], timeout_s: float) -> list[bytes | None] | None:
        """The raw values for `names`, or None if they could not be had within `timeout_s`."""
        if len(names) > self._max_keys:
            return await self._fetch(names, timeout_s)
        future: asyncio.Future[list[bytes | None] | None] = asyncio.get_running_loop().create_future()
        self._waiting.append((names, timeout_s, future))
        if self._sender is None:
            self._sender = asyncio.get_running_loop().create_task(self._send(), name="redis-cache-reads")
        try:
            # The MGET's own timeout normally answers first (and is counted); this bound is for
            # a lookup queued behind a slow one.
            async with asyncio.timeout(timeout_s + _CALLER_GRACE_S):
                return await future  # cancelling the wait cancels the future: the sender skips it
        except TimeoutError:
            return None

    async def close(self) -> None:
        if self._sender is not None:
            self._sender.cancel()
            await asyncio.gather(self._sender, return_exceptions=True)

    async def _send(self) -> None:
        try:
            while self._waiting:
                batch, keys = [], 0
                while self._waiting and (not batch or keys + len(self._waiting[0][0]) <= self._max_keys):
                    entry = self._waiting.popleft()
                    if not entry[2].done():
                        batch.append(entry)
                        keys += len(entry[0])
                if not batch:
                    continue
                self.sent += 1
                values = await self._fetch([name for names, _, _ in batch for name in names],
                                           max(timeout for _, timeout, _ in batch))  # fmt: skip
                start = 0
                for names, _, future in batch:
                    if not future.done():
                        future.set_result(None if values is None else values[start : start + len(names)])
                    start += len(names)
        finally:
            self._sender = None


def _error_kind(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError | RedisTimeoutError):
        return "timeout"
    if isinstance(exc, RedisConnectionError | OSError):
        return "connection"
    return "response"


class RedisCache:
    def __init__(
        self,
        url: str,
        *,
        key_prefix: str = "embed:",
        ttl_s: float | None = 7 * 24 * 3600,
        timeout_s: float = 0.05,
        background_timeout_s: float = 1.0,
        failure_threshold: int = 5,
        reset_timeout_s: float = 2.0,
        max_pending_writes: int = 10_000,
        max_connections: int = 32,
        storage: Storage = "float32",
        metrics: CacheMetrics | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self.key_prefix = key_prefix
        self._prefix = key_prefix.encode()
        self._ttl_ms = round(ttl_s * 1000) if ttl_s else None  # None or 0: no expiry
        self._timeout_s = timeout_s
        self._background_timeout_s = background_timeout_s
        self._max_connections = max_connections
        self._storage: Storage = storage
        self._metrics = metrics or CacheMetrics(CollectorRegistry())
        self.breaker = CircuitBreaker(failure_threshold, reset_timeout_s, clock=clock, on_change=self._on_breaker)
        self._metrics.breaker_state.set(self.breaker.state)
        self._pending: asyncio.Queue[tuple[bytes, bytes | None]] = asyncio.Queue(max_pending_writes)
        self._metrics.watch_pending(self._pending.qsize)
        self._client: Redis | None = None
        self._reads = MergedReads(self._mget)
        self._writer: asyncio.Task[None] | None = None
        self._prober: asyncio.Task[None] | None = None
        self._closed = False
        self._last_error = ""
        parts = urlsplit(url)
        self._where = f"{parts.hostname}:{parts.port or 6379}" if parts.hostname else parts.path  # no credentials

    async def start(self) -> None:
        """Create the pool and the writer; if Redis does not answer, open the breaker (no error)."""
        if self._client is not None:
            return
        pool = BlockingConnectionPool.from_url(
            self.url,
            max_connections=self._max_connections,
            timeout=self._background_timeout_s,  # waiting for a free connection; reads are bounded tighter
            # No socket_timeout: redis-py then sends through asyncio.wait_for, which can swallow a
            # request's cancellation; every call is bounded by _call's own asyncio.timeout instead.
            socket_connect_timeout=self._background_timeout_s,
            retry=Retry(NoBackoff(), 0),  # the breaker decides when to try again, not the client
        )
        self._client = Redis.from_pool(pool)
        self._writer = asyncio.get_running_loop().create_task(self._write_loop(), name="redis-cache-writer")
        if not await self._ping():
            self.breaker.trip()

    async def close(self, drain_timeout_s: float = 1.0) -> None:
        """Attempt the queued writes (for at most `drain_timeout_s`), then stop the tasks and the pool."""
        if self._closed:
            return
        self._closed = True
        if self._writer is not None:
            await self.drain(drain_timeout_s)
        tasks = [task for task in (self._writer, self._prober) if task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._reads.close()
        if self._client is not None:
            await self._client.aclose()

    async def get_many(self, keys: Sequence[Key], *, timeout_s: float | None = None) -> list[np.ndarray | None]:
        """One MGET for every key, bounded by `timeout_s` (default: the configured one; a caller may
        scale it with the bytes a large request fetches). Unavailable, slow, failing Redis or a
        corrupt value: misses."""
        found: list[np.ndarray | None] = [None] * len(keys)
        if not keys or self._client is None or not self.breaker.allow():
            return found
        names = [key_bytes(key) for key in keys]
        values = await self._reads.get(names, timeout_s or self._timeout_s)
        if values is None:
            return found
        hits = corrupt = 0
        for slot, (name, value) in enumerate(zip(names, values)):
            if value is not None:
                found[slot] = vector = decode(value, key=name)
                hits += vector is not None
                corrupt += vector is None
        self._metrics.tier_hits["redis"].inc(hits)
        self._metrics.tier_misses["redis"].inc(len(keys) - hits)
        if corrupt:
            # Misses, so the caller recomputes them and its put_many overwrites the bad values.
            self._metrics.errors.labels("corrupt").inc(corrupt)
            log.warning("redis cache %s: %d corrupt value(s) under %r treated as misses", self._where, corrupt,
                        self.key_prefix)  # fmt: skip
        return found

    def put_many(self, items: Iterable[tuple[Key, np.ndarray]]) -> None:
        """Queue the writes (SET with the TTL) for the writer task; never blocks. Event-loop thread only."""
        for key, vector in items:
            if self._admit():
                name = key_bytes(key)
                self._pending.put_nowait((self._prefix + name, encode(vector, self._storage, key=name)))

    def discard(self, keys: Iterable[Key]) -> None:
        """Queue deletes, ordered with the writes (a value the caller found wrong)."""
        for key in keys:
            if self._admit():
                self._pending.put_nowait((self._prefix + key_bytes(key), None))

    async def drain(self, timeout_s: float) -> bool:
        """Wait until every queued write has been attempted; False if that takes longer than `timeout_s`."""
        try:
            async with asyncio.timeout(timeout_s):
                await self._pending.join()
        except TimeoutError:
            return False
        return True

    @property
    def timeout_s(self) -> float:
        return self._timeout_s

    @property
    def pending_writes(self) -> int:
        return self._pending.qsize()

    def _admit(self) -> bool:
        if self._closed or not self.breaker.allow():
            self._metrics.dropped_writes.labels("unavailable").inc()
            return False
        if self._pending.full():
            self._metrics.dropped_writes.labels("queue_full").inc()
            return False
        return True

    async def _mget(self, names: list[bytes], timeout_s: float) -> list[bytes | None] | None:
        if self._client is None or not self.breaker.allow():
            return None
        return await self._call("mget", timeout_s, self._client.mget([self._prefix + name for name in names]))

    async def _write_loop(self) -> None:
        while True:
            batch = [await self._pending.get()]
            if self._pending.qsize() < _WRITE_BATCH:
                await asyncio.sleep(_WRITE_LINGER_S)  # once per pipeline: a burst's writes go together
            while len(batch) < _WRITE_BATCH and not self._pending.empty():
                batch.append(self._pending.get_nowait())
            try:
                if not await self._write(batch):
                    self._metrics.dropped_writes.labels("unavailable").inc(len(batch))
            except Exception:  # a bug here must not stop every later write
                log.exception("redis cache writer failed")
            finally:
                for _ in batch:
                    self._pending.task_done()

    async def _write(self, batch: list[tuple[bytes, bytes | None]]) -> bool:
        if self._client is None or not self.breaker.allow():
            return False
        pipe = self._client.pipeline(transaction=False)
        for name, value in batch:
            if value is None:
                pipe.delete(name)
            else:
                pipe.set(name, value, px=self._ttl_ms)
        return await self._call("write", self._background_timeout_s, pipe.execute()) is not None

    async def _ping(self) -> bool:
        assert self._client is not None
        # Off the request path: a fresh connection's handshake (TLS, AUTH, HELLO) may need more than a read.
        return await self._call("ping", self._background_timeout_s, self._client.ping()) is not None

    async def _call(self, op: str, timeout_s: float, call: Awaitable[T]) -> T | None:
        """`call`'s result, or None once it failed or took longer than `timeout_s` (counted, fed to the breaker)."""
        started = time.perf_counter()
        try:
            async with asyncio.timeout(timeout_s):
                result = await call
        except Exception as exc:  # not CancelledError: a cancelled request is no Redis failure
            kind = _error_kind(exc)
            self._last_error = f"{op} {kind}: {type(exc).__name__}: {exc}"
            self._metrics.errors.labels(kind).inc()
            self.breaker.record_failure()
            return None
        finally:
            self._metrics.redis_op_duration[op].observe(time.perf_counter() - started)
        self.breaker.record_success()
        return result

    def _on_breaker(self, state: BreakerState) -> None:
        self._metrics.breaker_state.set(state)
        if state is BreakerState.CLOSED:
            log.info("redis cache %s: answering again, breaker closed", self._where)
        elif state is BreakerState.OPEN and (self._prober is None or self._prober.done()) and not self._closed:
            log.warning("redis cache %s: unavailable (%s); skipping it, probing every %.3gs", self._where,
                        self._last_error, self.breaker.reset_timeout_s)  # fmt: skip
            self._prober = asyncio.get_running_loop().create_task(self._probe(), name="redis-cache-probe")

    async def _probe(self) -> None:
        # Sleeps out each cool-down, then one PING: success closes the breaker, failure re-opens it.
        while self.breaker.state is BreakerState.OPEN:
            await asyncio.sleep(self.breaker.retry_in())
            if self.breaker.begin_probe():
                await self._ping()

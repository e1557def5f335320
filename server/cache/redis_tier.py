"""The shared tier: Redis behind a breaker, one MGET per request, writes off the response path.

Redis is an optimisation, never a dependency: every call is bounded by a small timeout,
consecutive failures open a circuit breaker so requests stop waiting on a dead or slow
server, and a background probe closes it once Redis answers a PING again (the pool then
reconnects on its own). Writes go to a bounded queue drained by one writer task in
pipelines; when the queue is full they are dropped and counted, so they cannot pile up.
Nothing here raises into a request.
"""

from __future__ import annotations

import asyncio
import logging
import time
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
            socket_timeout=self._background_timeout_s,
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
        mget = self._client.mget([self._prefix + name for name in names])
        values = await self._call("mget", timeout_s or self._timeout_s, mget)
        if values is None:
            return found
        hits = corrupt = 0
        for slot, (name, value) in enumerate(zip(names, values)):
            if value is not None:
                found[slot] = vector = decode(value, key=name)
                hits += vector is not None
                corrupt += vector is None
        self._metrics.hits.labels("redis").inc(hits)
        self._metrics.misses.labels("redis").inc(len(keys) - hits)
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

    async def _write_loop(self) -> None:
        while True:
            batch = [await self._pending.get()]
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
            self._metrics.redis_duration.labels(op).observe(time.perf_counter() - started)
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

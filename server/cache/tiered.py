"""The result cache a request sees: the local tier first, then one Redis round trip for the rest.

Redis hits are promoted into the local tier so the next request for them stays in process.
Writes go to the local tier at once and to Redis through its background writer. Either tier
may be absent (no Redis configured, or no local memory given); with neither, every lookup
misses and writes are ignored.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from server.cache.codec import Key
from server.cache.local import LocalCache
from server.cache.metrics import CacheMetrics
from server.cache.redis_tier import RedisCache


@dataclass(frozen=True, slots=True)
class CacheLookup:
    """One request's lookup: a vector or None per key, and where the hits came from."""

    vectors: list[np.ndarray | None]
    local_hits: int
    redis_hits: int

    @property
    def hits(self) -> int:
        return self.local_hits + self.redis_hits

    @property
    def misses(self) -> int:
        return len(self.vectors) - self.hits


@dataclass(slots=True)
class CacheStats:
    """Running totals since start, for logs or tests (Prometheus has the same as counters)."""

    local_hits: int = 0
    redis_hits: int = 0
    misses: int = 0


class ResultCache:
    def __init__(
        self, local: LocalCache | None = None, redis: RedisCache | None = None, metrics: CacheMetrics | None = None
    ) -> None:
        """`metrics`: the same CacheMetrics the RedisCache was given, if any."""
        self.local = local
        self.redis = redis
        self.stats = CacheStats()
        self._metrics = metrics
        if metrics is not None and local is not None:
            metrics.watch_local(lambda: local.bytes_held)

    @property
    def enabled(self) -> bool:
        return self.local is not None or self.redis is not None

    async def start(self) -> None:
        if self.redis is not None:
            await self.redis.start()

    async def close(self) -> None:
        if self.redis is not None:
            await self.redis.close()

    async def lookup(self, keys: Sequence[Key], *, redis_timeout_s: float | None = None) -> CacheLookup:
        """Never raises and never waits on Redis longer than its timeout (or `redis_timeout_s`)."""
        found: list[np.ndarray | None] = self.local.get_many(keys) if self.local else [None] * len(keys)
        missing = [slot for slot, vector in enumerate(found) if vector is None]
        local_hits = len(keys) - len(missing)
        if self.local is not None and self._metrics is not None:
            self._metrics.tier_hits["local"].inc(local_hits)
            self._metrics.tier_misses["local"].inc(len(missing))
        redis_hits = 0
        if missing and self.redis is not None:
            fetched = await self.redis.get_many([keys[slot] for slot in missing], timeout_s=redis_timeout_s)
            promoted: list[tuple[Key, np.ndarray]] = []
            for slot, vector in zip(missing, fetched):
                if vector is not None:
                    found[slot] = vector
                    promoted.append((keys[slot], vector))
            redis_hits = len(promoted)
            if promoted and self.local is not None:
                self.local.put_many(promoted)
        self.stats.local_hits += local_hits
        self.stats.redis_hits += redis_hits
        self.stats.misses += len(keys) - local_hits - redis_hits
        return CacheLookup(found, local_hits, redis_hits)

    async def get_many(self, keys: Sequence[Key], *, redis_timeout_s: float | None = None) -> list[np.ndarray | None]:
        """A read-only float32 vector or None per key (None: compute it, then put_many)."""
        return (await self.lookup(keys, redis_timeout_s=redis_timeout_s)).vectors

    def put_many(self, items: Iterable[tuple[Key, np.ndarray]]) -> None:
        """Store full-dimension vectors: the local tier now, Redis in the background (overwrites)."""
        items = list(items)
        if self.local is not None:
            self.local.put_many(items)
        if self.redis is not None:
            self.redis.put_many(items)

    def discard(self, keys: Iterable[Key]) -> None:
        """The caller found these values wrong (e.g. a dimension its model does not produce):
        drop them from both tiers; its next put_many stores the right ones."""
        keys = list(keys)
        if self.local is not None:
            self.local.discard(keys)
        if self.redis is not None:
            self.redis.discard(keys)

"""ResultCache: local first, one Redis round trip for the local misses, promotion, either tier alone."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import numpy as np
import pytest
import redis

from server.cache.local import LocalCache
from server.cache.metrics import CacheMetrics
from server.cache.redis_tier import RedisCache
from server.cache.tiered import ResultCache
from tests.redis_server import RedisProcess, command_calls

MB = 1 << 20


def vec(i: int, dim: int = 64) -> np.ndarray:
    return np.random.default_rng(i).standard_normal(dim).astype(np.float32)


def sample(metrics: CacheMetrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


@pytest.fixture
async def cache(redis_proc: RedisProcess, metrics: CacheMetrics) -> AsyncIterator[ResultCache]:
    redis_tier = RedisCache(redis_proc.url, timeout_s=0.2, reset_timeout_s=0.2, failure_threshold=2, metrics=metrics)
    result = ResultCache(LocalCache(MB), redis_tier, metrics)
    await result.start()
    yield result
    await result.close()


async def test_local_hits_never_reach_redis(cache: ResultCache, raw: redis.Redis, metrics: CacheMetrics) -> None:
    cache.put_many([("a", vec(1)), ("b", vec(2))])
    raw.config_resetstat()
    lookup = await cache.lookup(["a", "b"])
    assert (lookup.local_hits, lookup.redis_hits, lookup.misses) == (2, 0, 0)
    assert lookup.vectors[0].tobytes() == vec(1).tobytes()  # type: ignore[union-attr]
    assert command_calls(raw, "mget") == 0
    assert sample(metrics, "embed_cache_hits_total", tier="local") == 2
    assert sample(metrics, "embed_cache_local_bytes") == cache.local.bytes_held > 0  # type: ignore[union-attr]


async def test_local_misses_take_one_round_trip_and_redis_hits_are_promoted(
    cache: ResultCache, raw: redis.Redis, metrics: CacheMetrics
) -> None:
    assert cache.local is not None and cache.redis is not None
    cache.put_many([("local", vec(1)), ("shared", vec(2))])
    assert await cache.redis.drain(5)
    cache.local.discard(["shared"])  # as if another replica had computed it
    raw.config_resetstat()
    lookup = await cache.lookup(["local", "shared", "nowhere", "nowhere-either"])
    assert (lookup.local_hits, lookup.redis_hits, lookup.misses) == (1, 1, 2)
    assert [v is not None for v in lookup.vectors] == [True, True, False, False]
    assert lookup.vectors[1].tobytes() == vec(2).tobytes()  # type: ignore[union-attr]
    assert command_calls(raw, "mget") == 1
    assert sample(metrics, "embed_cache_misses_total", tier="local") == 3
    assert sample(metrics, "embed_cache_hits_total", tier="redis") == 1
    assert sample(metrics, "embed_cache_misses_total", tier="redis") == 2
    # Promoted: the next lookup of it stays in process.
    again = await cache.lookup(["shared"])
    assert again.local_hits == 1 and command_calls(raw, "mget") == 1
    assert (cache.stats.local_hits, cache.stats.redis_hits, cache.stats.misses) == (2, 1, 2)


async def test_corrupt_redis_value_is_a_miss_the_callers_write_repairs(
    cache: ResultCache, raw: redis.Redis, metrics: CacheMetrics
) -> None:
    assert cache.redis is not None and cache.local is not None
    raw.set("embed:k", b"not a vector")
    vectors = await cache.get_many(["k"])
    assert vectors == [None] and sample(metrics, "embed_cache_errors_total", kind="corrupt") == 1
    cache.put_many([("k", vec(3))])  # the caller computed the miss
    assert await cache.redis.drain(5)
    cache.local.clear()
    (got,) = await cache.get_many(["k"])
    assert got is not None and got.tobytes() == vec(3).tobytes()


async def test_discard_removes_from_both_tiers(cache: ResultCache, raw: redis.Redis) -> None:
    assert cache.redis is not None
    cache.put_many([("k", vec(1))])
    cache.discard(["k"])
    assert await cache.redis.drain(5)
    assert await cache.get_many(["k"]) == [None] and raw.exists("embed:k") == 0


async def test_local_tier_keeps_working_while_redis_is_down(cache: ResultCache, redis_proc: RedisProcess) -> None:
    cache.put_many([("a", vec(1))])
    redis_proc.kill()
    for _ in range(5):
        started = time.monotonic()
        lookup = await cache.lookup(["a", "b"])
        assert time.monotonic() - started < 0.5
        assert (lookup.local_hits, lookup.misses) == (1, 1)
        cache.put_many([("b", vec(2))])
        cache.local.discard(["b"])  # type: ignore[union-attr]
    assert cache.redis is not None and not cache.redis.breaker.allow()


async def test_local_only_and_redis_only_and_neither(redis_proc: RedisProcess) -> None:
    local_only = ResultCache(LocalCache(MB))
    local_only.put_many([("a", vec(1))])
    assert (await local_only.lookup(["a", "b"])).local_hits == 1

    redis_only = ResultCache(redis=RedisCache(redis_proc.url))
    await redis_only.start()
    redis_only.put_many([("a", vec(1))])
    assert await redis_only.redis.drain(5)  # type: ignore[union-attr]
    lookup = await redis_only.lookup(["a", "b"])
    assert (lookup.local_hits, lookup.redis_hits, lookup.misses) == (0, 1, 1)
    await redis_only.close()

    neither = ResultCache()
    neither.put_many([("a", vec(1))])
    assert not neither.enabled and await neither.get_many(["a"]) == [None]

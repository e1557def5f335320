"""RedisCache against real redis-server processes: round trips, TTL, prefixes, corrupt values,
a killed, restarted and paused server, and a full write queue."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import numpy as np
import pytest
import redis

from server.cache.breaker import BreakerState
from server.cache.codec import HEADER, encode
from server.cache.metrics import CacheMetrics
from server.cache.redis_tier import MergedReads, RedisCache
from tests.redis_server import RedisProcess, command_calls, wait_until

TIMEOUT_S = 0.2
# Slack for a loaded 2-core CI machine; a call that waited on a dead socket would take seconds.
MARGIN_S = 0.3

Factory = Callable[..., RedisCache]


def vec(i: int, dim: int = 384) -> np.ndarray:
    return np.random.default_rng(i).standard_normal(dim).astype(np.float32)


def sample(metrics: CacheMetrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


@pytest.fixture
async def make_cache(redis_proc: RedisProcess, metrics: CacheMetrics) -> AsyncIterator[Factory]:
    """Builds started caches (first one shares `metrics`); closes them after the test."""
    made: list[RedisCache] = []

    async def factory(**overrides: object) -> RedisCache:
        options: dict[str, object] = {"timeout_s": TIMEOUT_S, "reset_timeout_s": 0.2, "failure_threshold": 3}
        options.update(overrides)
        options.setdefault("metrics", None if made else metrics)
        cache = RedisCache(redis_proc.url, **options)  # type: ignore[arg-type]
        await cache.start()
        made.append(cache)
        return cache

    yield factory
    for cache in made:
        await cache.close(drain_timeout_s=0.1)


async def test_round_trip_is_bit_exact_with_header_and_ttl(make_cache: Factory, raw: redis.Redis) -> None:
    cache = await make_cache(key_prefix="t:", ttl_s=3600)
    items = [(f"k{i}", vec(i)) for i in range(10)]
    cache.put_many(items)
    assert await cache.drain(5)
    found = await cache.get_many([key for key, _ in items] + ["absent"])
    assert found[-1] is None
    for (_, expected), got in zip(items, found):
        assert got is not None and got.tobytes() == expected.tobytes() and not got.flags.writeable
    stored = raw.get("t:k0")
    assert stored is not None and len(stored) == HEADER.size + 384 * 4
    assert 3_590_000 < raw.pttl("t:k0") <= 3_600_000


async def test_float16_storage(make_cache: Factory, raw: redis.Redis) -> None:
    cache = await make_cache(storage="float16")
    cache.put_many([("a", vec(1))])
    assert await cache.drain(5)
    (got,) = await cache.get_many(["a"])
    assert len(raw.get("embed:a") or b"") == HEADER.size + 384 * 2
    np.testing.assert_array_equal(got, vec(1).astype(np.float16).astype(np.float32))  # type: ignore[arg-type]


async def test_one_round_trip_per_lookup(make_cache: Factory, raw: redis.Redis, metrics: CacheMetrics) -> None:
    cache = await make_cache()
    cache.put_many((f"k{i}", vec(i, 8)) for i in range(0, 200, 2))
    assert await cache.drain(5)
    raw.config_resetstat()
    found = await cache.get_many([f"k{i}" for i in range(200)])
    assert sum(v is not None for v in found) == 100
    assert command_calls(raw, "mget") == 1 and command_calls(raw, "get") == 0
    assert sample(metrics, "embed_cache_hits_total", tier="redis") == 100
    assert sample(metrics, "embed_cache_misses_total", tier="redis") == 100
    assert sample(metrics, "embed_cache_redis_duration_seconds_count", op="mget") == 1
    assert await cache.get_many([]) == [] and command_calls(raw, "mget") == 1


async def test_concurrent_small_lookups_share_mgets(make_cache: Factory, raw: redis.Redis) -> None:
    cache = await make_cache()
    cache.put_many((f"k{i}", vec(i, 8)) for i in range(100))
    assert await cache.drain(5)
    raw.config_resetstat()
    found = await asyncio.gather(*(cache.get_many([f"k{i}"]) for i in range(100)))
    assert all(got is not None and got.tobytes() == vec(i, 8).tobytes() for i, (got,) in enumerate(found))
    assert command_calls(raw, "mget") == 2  # 100 one-key lookups made together: MGETs of 64 and 36 keys


async def test_merged_lookup_queued_behind_a_hung_one_keeps_its_time_bound() -> None:
    release = asyncio.Event()
    calls: list[list[bytes]] = []

    async def fetch(names: list[bytes], timeout_s: float) -> list[bytes | None] | None:
        calls.append(names)
        if len(calls) == 1:
            await release.wait()  # a Redis that stopped answering (no timeout of its own here)
        return [b"v" + name for name in names]

    reads = MergedReads(fetch)
    hung = asyncio.ensure_future(reads.get([b"a"], 10.0))
    await asyncio.sleep(0.01)
    started = time.monotonic()
    assert await reads.get([b"b"], 0.05) is None  # waited its own bound, not the hung call's
    assert time.monotonic() - started < 0.05 + MARGIN_S
    later = asyncio.gather(reads.get([b"c"], 1.0), reads.get([b"d", b"e"], 1.0))
    await asyncio.sleep(0.01)
    release.set()
    assert await later == [[b"vc"], [b"vd", b"ve"]]
    assert await hung == [b"va"]
    assert calls == [[b"a"], [b"c", b"d", b"e"]]  # the timed-out lookup was skipped, the rest merged
    await reads.close()


async def test_ttl_expires_values(make_cache: Factory, raw: redis.Redis) -> None:
    cache = await make_cache(ttl_s=1.0)
    cache.put_many([("short", vec(1))])
    assert await cache.drain(5)
    assert 0 < raw.pttl("embed:short") <= 1000
    assert (await cache.get_many(["short"]))[0] is not None
    deadline = time.monotonic() + 5
    while (await cache.get_many(["short"]))[0] is not None:
        assert time.monotonic() < deadline, "value did not expire"
        await asyncio.sleep(0.05)


async def test_key_prefixes_isolate_deployments(make_cache: Factory, raw: redis.Redis) -> None:
    blue, green = await make_cache(key_prefix="blue:"), await make_cache(key_prefix="green:")
    blue.put_many([("same-key", vec(1))])
    green.put_many([("same-key", vec(2))])
    assert await blue.drain(5) and await green.drain(5)
    assert sorted(raw.keys()) == [b"blue:same-key", b"green:same-key"]
    (b,), (g,) = await blue.get_many(["same-key"]), await green.get_many(["same-key"])
    np.testing.assert_array_equal(b, vec(1))  # type: ignore[arg-type]
    np.testing.assert_array_equal(g, vec(2))  # type: ignore[arg-type]
    raw.delete("green:same-key")
    assert (await green.get_many(["same-key"]))[0] is None and (await blue.get_many(["same-key"]))[0] is not None


async def test_corrupt_and_foreign_values_are_counted_misses_then_overwritten(
    make_cache: Factory, raw: redis.Redis, metrics: CacheMetrics
) -> None:
    cache = await make_cache()
    raw.set("embed:garbage", b"\x00garbage")
    raw.set("embed:foreign", encode(vec(7), key="some other key"))  # valid header, wrong key
    raw.set("embed:cut", encode(vec(8), key="cut")[:-3])
    raw.rpush("embed:wrong-type", b"x")  # MGET answers nil for a non-string
    keys = ["garbage", "foreign", "cut", "wrong-type"]
    assert await cache.get_many(keys) == [None] * 4
    assert sample(metrics, "embed_cache_errors_total", kind="corrupt") == 3
    assert cache.breaker.state is BreakerState.CLOSED  # bad data is not an outage
    cache.put_many((key, vec(i)) for i, key in enumerate(keys))  # the caller recomputed them
    assert await cache.drain(5)
    found = await cache.get_many(keys)
    for i, got in enumerate(found):
        assert got is not None and got.tobytes() == vec(i).tobytes()


async def test_discard_deletes_in_order_with_writes(make_cache: Factory, raw: redis.Redis) -> None:
    cache = await make_cache()
    cache.put_many([("a", vec(1)), ("b", vec(2))])
    cache.discard(["a"])
    assert await cache.drain(5)
    assert raw.exists("embed:a") == 0 and raw.exists("embed:b") == 1


async def test_full_write_queue_drops_and_counts(make_cache: Factory, raw: redis.Redis, metrics: CacheMetrics) -> None:
    cache = await make_cache(max_pending_writes=4)
    cache.put_many((f"k{i}", vec(i, 8)) for i in range(10))  # synchronous: the writer cannot run in between
    assert cache.pending_writes == 4
    assert sample(metrics, "embed_cache_pending_writes") == 4
    assert sample(metrics, "embed_cache_dropped_writes_total", reason="queue_full") == 6
    assert await cache.drain(5)
    assert sorted(raw.keys()) == [f"embed:k{i}".encode() for i in range(4)]


async def test_close_flushes_pending_writes(redis_proc: RedisProcess, raw: redis.Redis) -> None:
    cache = RedisCache(redis_proc.url)
    await cache.start()
    cache.put_many([("a", vec(1))])
    await cache.close()
    assert raw.exists("embed:a") == 1
    cache.put_many([("b", vec(2))])  # after close: dropped, not queued forever
    assert cache.pending_writes == 0


async def test_paused_redis_costs_a_lookup_at_most_the_timeout(
    make_cache: Factory, raw: redis.Redis, metrics: CacheMetrics
) -> None:
    cache = await make_cache()
    cache.put_many([("a", vec(1))])
    assert await cache.drain(5)
    raw.client_pause(1500, all=True)  # every client's next command waits 1.5 s
    for _ in range(3):
        started = time.monotonic()
        assert await cache.get_many(["a"]) == [None]
        assert time.monotonic() - started < TIMEOUT_S + MARGIN_S
    assert sample(metrics, "embed_cache_errors_total", kind="timeout") >= 3
    assert cache.breaker.state is not BreakerState.CLOSED  # three timeouts in a row
    mgets = sample(metrics, "embed_cache_redis_duration_seconds_count", op="mget")
    assert await cache.get_many(["a"]) == [None]
    assert sample(metrics, "embed_cache_redis_duration_seconds_count", op="mget") == mgets  # open: no call at all
    await wait_until(lambda: cache.breaker.state is BreakerState.CLOSED, 10, "breaker closed after the pause")
    (got,) = await cache.get_many(["a"])
    assert got is not None and got.tobytes() == vec(1).tobytes()


async def test_killed_redis_mid_burst_then_restarted(
    make_cache: Factory, redis_proc: RedisProcess, metrics: CacheMetrics
) -> None:
    cache = await make_cache(reset_timeout_s=0.5)
    keys = [f"k{i}" for i in range(32)]
    cache.put_many((key, vec(i, 32)) for i, key in enumerate(keys))
    assert await cache.drain(5)
    durations: list[float] = []

    async def client(i: int) -> None:
        for round_ in range(10):
            started = time.monotonic()
            await cache.get_many(keys[i % 8 : i % 8 + 8])
            cache.put_many([(f"new-{i}-{round_}", vec(i, 32))])
            durations.append(time.monotonic() - started)
            await asyncio.sleep(0)

    burst = [asyncio.create_task(client(i)) for i in range(50)]
    await wait_until(lambda: len(durations) >= 100, 10, "burst under way")
    redis_proc.kill()
    await asyncio.gather(*burst)  # raises if any call raised
    assert len(durations) == 500
    assert max(durations) < TIMEOUT_S + MARGIN_S
    # Open, or half-open if the probe happens to be trying right now.
    assert cache.breaker.state is not BreakerState.CLOSED
    assert sample(metrics, "embed_cache_breaker_state") == cache.breaker.state
    failures = [sample(metrics, "embed_cache_errors_total", kind=kind) for kind in ("connection", "timeout")]
    assert failures[0] >= 1 and sum(failures) >= 3
    assert sample(metrics, "embed_cache_dropped_writes_total", reason="unavailable") > 0

    redis_proc.start()  # same port, empty (no persistence)
    # Nothing calls the cache meanwhile: the background probe alone must notice.
    await wait_until(lambda: cache.breaker.state is BreakerState.CLOSED, 10, "probe closed the breaker")
    assert sample(metrics, "embed_cache_breaker_state") == 0
    cache.put_many([("k0", vec(0, 32))])
    assert await cache.drain(5)
    (got,) = await cache.get_many(["k0"])
    assert got is not None and got.tobytes() == vec(0, 32).tobytes()


async def test_start_without_redis_then_redis_appears(metrics: CacheMetrics) -> None:
    process = RedisProcess()  # port chosen, server not started yet
    cache = RedisCache(process.url, timeout_s=TIMEOUT_S, reset_timeout_s=0.2, metrics=metrics)
    started = time.monotonic()
    await cache.start()  # no error: the cache is optional
    assert time.monotonic() - started < TIMEOUT_S + MARGIN_S
    assert cache.breaker.state is not BreakerState.CLOSED
    assert await cache.get_many(["a"]) == [None]
    try:
        process.start()
        await wait_until(lambda: cache.breaker.state is BreakerState.CLOSED, 10, "probe closed the breaker")
        cache.put_many([("a", vec(1))])
        assert await cache.drain(5)
        assert (await cache.get_many(["a"]))[0] is not None
    finally:
        await cache.close(drain_timeout_s=0.1)
        process.kill()

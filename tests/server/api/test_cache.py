"""The result cache through the real app, with a real redis-server process: bit-for-bit hits,
isolation, TTL, in-flight deduplication, Redis outages and corrupt values."""

from __future__ import annotations

import asyncio
import base64
import threading
import time
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
import redis

from tests.redis_server import RedisProcess

TEXTS = ["cache me if you can", "a second sentence", "and a third one"]


@pytest.fixture
def redis_proc() -> Iterator[RedisProcess]:
    process = RedisProcess().start()
    yield process
    process.kill()


def post(server, body: dict) -> httpx.Response:  # type: ignore[no-untyped-def]
    response = server.post("/v1/embeddings", {"encoding_format": "base64", **body})
    assert response.status_code == 200, response.text
    return response


def hits(response: httpx.Response) -> tuple[int, int]:
    done, total = response.headers["x-cache-hits"].split("/")
    return int(done), int(total)


def raw_vectors(response: httpx.Response) -> list[bytes]:
    return [base64.b64decode(item["embedding"]) for item in response.json()["data"]]


def redis_server(start_server, redis_proc: RedisProcess, **settings: object):  # type: ignore[no-untyped-def]
    """A server whose only cache tier is Redis, so every hit below is a Redis hit."""
    return start_server(redis_url=redis_proc.url, local_cache_mb=0, cache_hits_header=True, **settings)


def wait_for_writes(server) -> None:  # type: ignore[no-untyped-def]
    """Redis writes happen off the response path: wait until they are done."""
    redis_tier = server.state.cache.redis
    asyncio.run_coroutine_threadsafe(redis_tier.drain(5), server.app.state.loading.get_loop()).result()


def test_hit_equals_miss_bit_for_bit(start_server, redis_proc) -> None:  # type: ignore[no-untyped-def]
    server = redis_server(start_server, redis_proc)
    miss = post(server, {"input": TEXTS})
    assert hits(miss) == (0, 3)
    wait_for_writes(server)
    hit = post(server, {"input": TEXTS})
    assert hits(hit) == (3, 3)
    assert raw_vectors(hit) == raw_vectors(miss)
    assert hit.json()["usage"] == miss.json()["usage"]  # a hit looks exactly like a miss
    # Every Matryoshka size reuses the one stored full vector.
    small = post(server, {"input": TEXTS, "dimensions": 64})
    assert hits(small) == (3, 3)
    full = np.frombuffer(raw_vectors(miss)[0], dtype="<f4")
    cut = full[:64] / np.linalg.norm(full[:64])
    np.testing.assert_allclose(np.frombuffer(raw_vectors(small)[0], dtype="<f4"), cut, atol=1e-6)
    # Bypass: computed afresh, nothing read.
    assert hits(post(server, {"input": TEXTS, "cache": False})) == (0, 3)


def test_isolation_across_models_pooling_and_prompts(start_server, redis_proc, card_files) -> None:  # type: ignore[no-untyped-def]
    shared = {"redis_url": redis_proc.url, "local_cache_mb": 0, "cache_hits_header": True}
    mean = start_server(**shared)
    post(mean, {"input": TEXTS})
    wait_for_writes(mean)
    assert hits(post(mean, {"input": TEXTS})) == (3, 3)
    # Same weights, other pooling: another computation, so never a hit.
    cls = start_server(pooling="cls", **shared)
    first = post(cls, {"input": TEXTS})
    assert hits(first) == (0, 3)
    assert raw_vectors(first) != raw_vectors(post(mean, {"input": TEXTS}))
    # Another dtype is another computation too.
    assert hits(post(start_server(dtype="bfloat16", **shared), {"input": TEXTS})) == (0, 3)
    # Another model on the same Redis.
    other = start_server(model=[str(card_files["tiny-bert"])], **shared)
    assert hits(post(other, {"input": TEXTS})) == (0, 3)
    # A prompt changes the model input, hence the key.
    prompted = start_server(model=[str(card_files["tiny-qwen3"])], **shared)
    post(prompted, {"input": TEXTS})
    wait_for_writes(prompted)
    assert hits(post(prompted, {"input": TEXTS, "input_type": "query"})) == (0, 3)
    assert hits(post(prompted, {"input": TEXTS})) == (3, 3)


def test_ttl_expires_entries(start_server, redis_proc) -> None:  # type: ignore[no-untyped-def]
    server = redis_server(start_server, redis_proc, cache_ttl_s=1, cache_prefix="ttl-test:")
    post(server, {"input": TEXTS})
    wait_for_writes(server)
    client = redis.Redis.from_url(redis_proc.url)
    keys = client.keys("ttl-test:*")
    assert len(keys) == 3 and all(0 < client.pttl(key) <= 1000 for key in keys)
    assert hits(post(server, {"input": TEXTS})) == (3, 3)
    deadline = time.monotonic() + 10
    while client.keys("ttl-test:*"):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert hits(post(server, {"input": TEXTS})) == (0, 3)


def test_concurrent_identical_requests_compute_once(start_server) -> None:  # type: ignore[no-untyped-def]
    server = start_server(cache_hits_header=True)
    runtime = server.state.registry.get(None)
    engine = runtime._engines[0]
    gate = threading.Event()
    original = engine.run

    def held(batch):  # type: ignore[no-untyped-def]
        gate.wait(30)
        return original(batch)

    engine.run = held
    try:
        before = runtime.results.computed
        results: list[httpx.Response] = []

        def client() -> None:
            results.append(server.post("/v1/embeddings", {"input": ["same text", "same text"], "cache": False}))

        threads = [threading.Thread(target=client) for _ in range(12)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 30
        while server.metric("embed_tokenization_duration_seconds_count", model="all-MiniLM-L6-v2") < 12:
            assert time.monotonic() < deadline
            time.sleep(0.005)
        gate.set()
        for thread in threads:
            thread.join()
    finally:
        engine.run = original
    assert [response.status_code for response in results] == [200] * 12
    assert runtime.results.computed - before == 1  # 24 identical inputs, one computation
    first = results[0].json()["data"][0]["embedding"]
    assert all(item["embedding"] == first for response in results for item in response.json()["data"])


async def test_redis_outage_and_recovery(start_server, redis_proc) -> None:  # type: ignore[no-untyped-def]
    server = redis_server(start_server, redis_proc, cache_timeout_ms=50)
    post(server, {"input": TEXTS})
    wait_for_writes(server)
    redis_proc.kill()
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
        burst = [client.post("/v1/embeddings", json={"input": [f"burst {i}", *TEXTS]}) for i in range(40)]
        responses = await asyncio.gather(*burst)
    assert all(response.status_code == 200 for response in responses), [
        r.text for r in responses if r.status_code != 200
    ]
    assert server.metric("embed_cache_breaker_state") == 1  # open
    assert server.metric("embed_cache_errors_total", kind="connection") > 0
    # While open, requests do not wait on Redis at all.
    started = time.perf_counter()
    post(server, {"input": ["while redis is down"]})
    assert time.perf_counter() - started < 5
    redis_proc.start()
    deadline = time.monotonic() + 30
    while server.metric("embed_cache_breaker_state") != 0:
        assert time.monotonic() < deadline, "the breaker never closed"
        await asyncio.sleep(0.05)
    post(server, {"input": TEXTS})  # Redis came back empty: this stores them again
    wait_for_writes(server)
    assert hits(post(server, {"input": TEXTS})) == (3, 3)


def test_corrupt_value_is_recomputed_and_overwritten(start_server, redis_proc) -> None:  # type: ignore[no-untyped-def]
    server = redis_server(start_server, redis_proc, cache_prefix="corrupt:")
    good = raw_vectors(post(server, {"input": TEXTS}))
    wait_for_writes(server)
    client = redis.Redis.from_url(redis_proc.url)
    keys = client.keys("corrupt:*")
    assert len(keys) == 3
    client.set(keys[0], b"not a vector")
    client.set(keys[1], client.get(keys[1])[:-4])  # truncated
    again = post(server, {"input": TEXTS})
    assert hits(again) == (1, 3)
    # Recomputed in another batch: equal up to float rounding (batch composition differs).
    recomputed = [np.frombuffer(raw, dtype="<f4") for raw in raw_vectors(again)]
    np.testing.assert_allclose(recomputed, [np.frombuffer(raw, dtype="<f4") for raw in good], atol=1e-6)
    assert server.metric("embed_cache_errors_total", kind="corrupt") >= 2
    wait_for_writes(server)
    assert hits(post(server, {"input": TEXTS})) == (3, 3)  # overwritten with good values


def test_local_tier_alone(start_server) -> None:  # type: ignore[no-untyped-def]
    server = start_server(cache_hits_header=True)  # no Redis: the in-process tier still works
    first = post(server, {"input": TEXTS})
    second = post(server, {"input": TEXTS})
    assert hits(first) == (0, 3) and hits(second) == (3, 3)
    assert raw_vectors(first) == raw_vectors(second)
    assert server.metric("embed_cache_hits_total", tier="local") >= 3
    assert server.metric("embed_cache_local_bytes") > 3 * 384 * 4


def test_late_chunks_are_cached_by_document(start_server, redis_proc) -> None:  # type: ignore[no-untyped-def]
    server = redis_server(start_server, redis_proc)
    chunks = ["Berlin is the capital of Germany. ", "Its population is large. ", "The city is old."]
    first = post(server, {"input": chunks, "late_chunking": True})
    wait_for_writes(server)
    second = post(server, {"input": chunks, "late_chunking": True})
    assert hits(first) == (0, 3) and hits(second) == (3, 3)
    assert raw_vectors(first) == raw_vectors(second)
    # The same chunk text in another document is another vector: no hit.
    assert hits(post(server, {"input": [*chunks[:2], "Another ending."], "late_chunking": True})) == (0, 3)

"""Cache test fixtures: a fresh redis-server per test, a raw client beside the cache, metrics."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from prometheus_client import CollectorRegistry

from server.cache.metrics import CacheMetrics
from tests.redis_server import RedisProcess


@pytest.fixture
def redis_proc() -> Iterator[RedisProcess]:
    process = RedisProcess().start()
    yield process
    process.kill()


@pytest.fixture
def raw(redis_proc: RedisProcess) -> Iterator[redis.Redis]:
    """Writes garbage, reads what the cache stored, counts commands; never goes through the cache."""
    client = redis.Redis.from_url(redis_proc.url, socket_timeout=5)
    yield client
    client.close()


@pytest.fixture
def metrics() -> CacheMetrics:
    return CacheMetrics(CollectorRegistry())

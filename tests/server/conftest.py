"""Server test fixtures: a fresh redis-server per test, and a raw client beside it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from tests.redis_server import RedisProcess


@pytest.fixture
def redis_proc() -> Iterator[RedisProcess]:
    process = RedisProcess().start()
    yield process
    process.kill()


@pytest.fixture
def raw(redis_proc: RedisProcess) -> Iterator[redis.Redis]:
    """Writes garbage, reads what was stored, counts commands; never goes through the server's code."""
    client = redis.Redis.from_url(redis_proc.url, socket_timeout=5)
    yield client
    client.close()

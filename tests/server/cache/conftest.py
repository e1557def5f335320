"""Cache test fixtures (redis_proc and raw come from tests/server/conftest.py)."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from server.cache.metrics import CacheMetrics


@pytest.fixture
def metrics() -> CacheMetrics:
    return CacheMetrics(CollectorRegistry())

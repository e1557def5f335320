"""Result-cache metrics, registered on the registry the app passes in (no global metrics)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# 0.1 ms .. 1 s: a local-network MGET takes well under a millisecond; timeouts sit near the top.
REDIS_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
TIERS = ("local", "redis")
ERROR_KINDS = ("timeout", "connection", "corrupt", "response")
REDIS_OPS = ("mget", "write", "ping")
DROP_REASONS = ("queue_full", "unavailable")


class CacheMetrics:
    """Create once per registry and share between the tiers (a second one would collide)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = r = registry
        self.hits = Counter("embed_cache_hits", "Cache lookups answered, by tier.", ["tier"], registry=r)
        self.misses = Counter(
            "embed_cache_misses", "Cache lookups not answered, by tier (redis: keys looked up there).",
            ["tier"], registry=r,
        )  # fmt: skip
        self.redis_duration = Histogram(
            "embed_cache_redis_duration_seconds", "Redis call latency (mget, write pipeline, ping), failures included.",
            ["op"], buckets=REDIS_BUCKETS, registry=r,
        )  # fmt: skip
        self.errors = Counter(
            "embed_cache_errors", "Redis failures by kind (timeout, connection, corrupt value, error reply).",
            ["kind"], registry=r,
        )  # fmt: skip
        self.breaker_state = Gauge(
            "embed_cache_breaker_state", "Redis circuit breaker: 0 closed, 1 open, 2 half-open.", registry=r
        )
        self.local_bytes = Gauge("embed_cache_local_bytes", "Bytes held by the in-process tier.", registry=r)
        self.pending_writes = Gauge("embed_cache_pending_writes", "Redis writes waiting for the writer.", registry=r)
        self.dropped_writes = Counter(
            "embed_cache_dropped_writes", "Redis writes dropped: queue full, or Redis unavailable or failing.",
            ["reason"], registry=r,
        )  # fmt: skip
        # Every series exists from the start, so rates and alerts see zeros rather than gaps; the
        # per-request ones are bound once (a labels() lookup costs a lock and a dict per call).
        self.tier_hits = {tier: self.hits.labels(tier) for tier in TIERS}
        self.tier_misses = {tier: self.misses.labels(tier) for tier in TIERS}
        self.redis_op_duration = {op: self.redis_duration.labels(op) for op in REDIS_OPS}
        for kind in ERROR_KINDS:
            self.errors.labels(kind)
        for reason in DROP_REASONS:
            self.dropped_writes.labels(reason)

    def watch_local(self, bytes_held: Callable[[], float]) -> None:
        self.local_bytes.set_function(bytes_held)

    def watch_pending(self, pending: Callable[[], float]) -> None:
        self.pending_writes.set_function(pending)

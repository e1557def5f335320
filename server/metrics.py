"""Prometheus metrics: one registry per app, one histogram per pipeline stage (as TEI does)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Sequence

import psutil
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from models.engines.base import ReplicaHealth

# 0.5 ms .. 10 s: resolves cache hits and single short inputs as well as long batches.
LATENCY_BUCKETS = (
    0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.075,
    0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
BATCH_TOKEN_BUCKETS = (16, 64, 256, 1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072)

CONTENT_TYPE = CONTENT_TYPE_LATEST

# Each model's replicas as they are at scrape time: (model, one health report per replica).
ReplicaReports = Callable[[], Iterable[tuple[str, Sequence[ReplicaHealth]]]]


class ReplicaCollector(Collector):
    """Replica state read at scrape time: nothing is counted on the request path."""

    def __init__(self, reports: ReplicaReports) -> None:
        self._reports = reports

    def collect(self) -> Iterator[Metric]:
        restarts = CounterMetricFamily(
            "embed_replica_restarts", "Replica processes replaced after dying or hanging.", labels=["model"]
        )
        alive = GaugeMetricFamily("embed_replicas_alive", "Replicas able to run a batch.", labels=["model"])
        memory = GaugeMetricFamily(
            "embed_replica_resident_memory_bytes", "Resident memory of each replica process.",
            labels=["model", "replica"],
        )  # fmt: skip
        for model, replicas in self._reports():
            restarts.add_metric([model], sum(replica.restarts for replica in replicas))
            alive.add_metric([model], sum(replica.alive for replica in replicas))
            for index, replica in enumerate(replicas):
                if replica.pid is not None and replica.alive:
                    with contextlib.suppress(psutil.Error):  # it may exit between the two calls
                        memory.add_metric([model, str(index)], psutil.Process(replica.pid).memory_info().rss)
        yield from (restarts, alive, memory)

    def describe(self) -> Iterator[Metric]:
        return iter(())


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.request_duration = Histogram(
            "embed_request_duration_seconds", "Time from request received to response ready.",
            ["endpoint", "model"], buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.tokenization_duration = Histogram(
            "embed_tokenization_duration_seconds", "Time to tokenize one request's inputs.",
            ["model"], buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.queue_duration = Histogram(
            "embed_queue_duration_seconds", "Time an input waited in the queue before its batch ran.",
            ["model"], buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.inference_duration = Histogram(
            "embed_inference_duration_seconds", "Forward pass and pooling time of one batch.",
            ["model"], buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.batch_size = Histogram(
            "embed_batch_size", "Inputs per batch.", ["model"], buckets=BATCH_SIZE_BUCKETS, registry=r
        )
        self.batch_tokens = Histogram(
            "embed_batch_tokens", "Padded tokens per batch (longest input x inputs).",
            ["model"], buckets=BATCH_TOKEN_BUCKETS, registry=r,
        )  # fmt: skip
        self.queue_depth = Gauge("embed_queue_depth", "Inputs waiting in the queue.", ["model"], registry=r)
        self.queue_tokens = Gauge("embed_queue_tokens", "Tokens waiting in the queue.", ["model"], registry=r)
        self.queue_wait = Gauge(
            "embed_queue_wait_estimate_seconds",
            "Expected time to work through the queued tokens at the model's recent speed (0 before any batch).",
            ["model"], registry=r,
        )  # fmt: skip
        self.queue_capacity = Gauge(
            "embed_queue_capacity_tokens", "Queued tokens beyond which requests get 429 (--max-queue-tokens).",
            ["model"], registry=r,
        )  # fmt: skip
        self.inputs = Counter("embed_inputs", "Inputs or chunks answered, cache hits included.", ["model"], registry=r)
        self.tokens = Counter("embed_tokens", "Tokens answered (the usage reported to clients).", ["model"], registry=r)
        self.requests = Counter("embed_requests", "Requests answered.", ["endpoint", "status"], registry=r)
        self.errors = Counter("embed_errors", "Error responses by type.", ["type", "code", "status"], registry=r)
        self.in_flight = Gauge("embed_requests_in_flight", "Requests being answered.", registry=r)
        self.ready = Gauge("embed_ready", "1 while the server takes traffic: loaded, warm, not draining.", registry=r)
        self.model_info = Gauge(
            "embed_model_info", "1 per served model; labels say what computes its vectors.",
            ["model", "fingerprint", "engine", "dtype", "device"], registry=r,
        )  # fmt: skip
        # The server process's own CPU, memory and file descriptors (process_*).
        ProcessCollector(registry=r)
        # labels() takes a lock and builds a key on every call: the per-request children are bound once.
        self._request_children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    def watch_queue(self, model: str, depth: Callable[[], float], tokens: Callable[[], float], capacity: int) -> None:
        self.queue_depth.labels(model).set_function(depth)
        self.queue_tokens.labels(model).set_function(tokens)
        self.queue_capacity.labels(model).set(capacity)

    def watch_replicas(self, reports: ReplicaReports) -> None:
        self.registry.register(ReplicaCollector(reports))

    def observe_request(self, endpoint: str, model: str, status: int, seconds: float) -> None:
        children = self._request_children.get((endpoint, model, status))
        if children is None:
            children = (self.requests.labels(endpoint, status), self.request_duration.labels(endpoint, model))
            self._request_children[(endpoint, model, status)] = children
        children[0].inc()
        children[1].observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)

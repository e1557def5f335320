"""The server's own view of a step: per-stage times, batch sizes and queue gauges.

Stage times come from per-response timing headers when the server sends them (TEI's
`x-tokenization-time`, `x-queue-time`, `x-inference-time`, or `Server-Timing`, all in ms),
otherwise from the difference of the `/metrics` histograms' `_sum` and `_count` between the
start and the end of the step. The queue gauges are sampled during the step.
"""

from __future__ import annotations

import asyncio
import statistics
from collections.abc import Iterable
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

from loadtests.loadgen import TRANSPORT_ERRORS, Endpoint, fetch

STAGES = ("tokenize", "queue", "inference")
HISTOGRAMS = {
    "tokenize": "embed_tokenization_duration_seconds",
    "queue": "embed_queue_duration_seconds",
    "inference": "embed_inference_duration_seconds",
    "request": "embed_request_duration_seconds",
    "batch_size": "embed_batch_size",
}
TIMING_HEADERS = {b"x-tokenization-time": "tokenize", b"x-queue-time": "queue", b"x-inference-time": "inference"}
GAUGES = ("embed_queue_tokens", "embed_queue_depth")
SERVER_TIMING_NAMES = {"tokenize": "tokenize", "tokenization": "tokenize", "queue": "queue", "inference": "inference"}


@dataclass(frozen=True)
class Snapshot:
    """One scrape of /metrics, restricted to one model."""

    histograms: dict[str, tuple[float, float]]  # HISTOGRAMS key -> (sum, count)
    tokens: float  # embed_tokens_total
    queue_tokens: float
    queue_depth: float
    queue_capacity: float | None = None  # embed_queue_capacity_tokens: 429 beyond it (servers that export it)


def gauge_lines(text: str) -> str:
    """Only the queue gauges' lines: parsing the whole page takes long enough to delay scheduled sends."""
    return "\n".join(line for line in text.splitlines() if _metric_name(line) in GAUGES) + "\n"


def _metric_name(line: str) -> str:
    if line.startswith("#"):  # "# HELP name ..." or "# TYPE name ..."
        parts = line.split(" ", 3)
        return parts[2] if len(parts) > 2 else ""
    return line.split("{", 1)[0].split(" ", 1)[0]


def parse_metrics(text: str, model: str | None = None) -> Snapshot:
    """Histogram sums and counts, the token counter and the queue gauges of `model` (every model when None)."""
    names = {name: key for key, name in HISTOGRAMS.items()}
    sums = dict.fromkeys(HISTOGRAMS, 0.0)
    counts = dict.fromkeys(HISTOGRAMS, 0.0)
    tokens = queue_tokens = queue_depth = 0.0
    capacity: float | None = None
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if model is not None and sample.labels.get("model", model) != model:
                continue
            key = names.get(family.name)
            if key is not None and sample.name == family.name + "_sum":
                sums[key] += sample.value
            elif key is not None and sample.name == family.name + "_count":
                counts[key] += sample.value
            elif sample.name == "embed_tokens_total":
                tokens += sample.value
            elif sample.name == "embed_queue_tokens":
                queue_tokens += sample.value
            elif sample.name == "embed_queue_depth":
                queue_depth += sample.value
            elif sample.name == "embed_queue_capacity_tokens":
                capacity = (capacity or 0.0) + sample.value
    histograms = {key: (sums[key], counts[key]) for key in HISTOGRAMS}
    return Snapshot(histograms, tokens, queue_tokens, queue_depth, capacity)


@dataclass(frozen=True)
class StageTimes:
    """Mean milliseconds per stage. From metrics: tokenize and request per request, queue per
    input, inference per batch. From headers: every stage as the server reports it per request."""

    source: str  # "headers" or "metrics"
    tokenize_ms: float | None
    queue_ms: float | None
    inference_ms: float | None
    request_ms: float | None = None


@dataclass(frozen=True)
class ServerStats:
    stages: StageTimes
    batches: int
    mean_batch_size: float | None
    tokens: float
    queue_tokens_mean: float
    queue_tokens_max: float
    queue_depth_max: float
    gauge_samples: int
    queue_capacity: float | None = None


def _mean_ms(before: Snapshot, after: Snapshot, key: str) -> float | None:
    total = after.histograms[key][0] - before.histograms[key][0]
    count = after.histograms[key][1] - before.histograms[key][1]
    return total / count * 1000 if count > 0 else None


def metrics_stage_times(before: Snapshot, after: Snapshot) -> StageTimes:
    return StageTimes("metrics", *(_mean_ms(before, after, key) for key in (*STAGES, "request")))


def server_stats(
    before: Snapshot, after: Snapshot, gauges: Iterable[Snapshot], header_stages: StageTimes | None = None
) -> ServerStats:
    """What the server did between two scrapes; `gauges` are the snapshots taken while the load ran
    (the mean queue is theirs alone: before and after the step the queue is empty)."""
    during = list(gauges)
    sampled = [before, *during, after]
    batches = after.histograms["batch_size"][1] - before.histograms["batch_size"][1]
    inputs = after.histograms["batch_size"][0] - before.histograms["batch_size"][0]
    stages = metrics_stage_times(before, after)
    if header_stages is not None:
        stages = StageTimes(
            "headers", header_stages.tokenize_ms, header_stages.queue_ms, header_stages.inference_ms, stages.request_ms
        )
    return ServerStats(
        stages=stages,
        batches=int(batches),
        mean_batch_size=inputs / batches if batches > 0 else None,
        tokens=after.tokens - before.tokens,
        queue_tokens_mean=statistics.fmean(s.queue_tokens for s in during or sampled),
        queue_tokens_max=max(s.queue_tokens for s in sampled),
        queue_depth_max=max(s.queue_depth for s in sampled),
        gauge_samples=len(during),
        queue_capacity=after.queue_capacity,
    )


def timing_from_head(head: bytes) -> dict[str, float]:
    """Stage -> ms from one response head's timing headers (empty when it has none)."""
    found: dict[str, float] = {}
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name in TIMING_HEADERS:
            found[TIMING_HEADERS[name]] = float(value)
        elif name == b"server-timing":
            for entry in value.decode("latin-1").split(","):
                metric, *params = (part.strip() for part in entry.split(";"))
                stage = SERVER_TIMING_NAMES.get(metric.lower())
                durations = [float(p[4:]) for p in params if p.lower().startswith("dur=")]
                if stage is not None and durations:
                    found.setdefault(stage, durations[0])
    return found


def header_stage_times(heads: Iterable[bytes]) -> StageTimes | None:
    """Mean stage times over the replies that carry timing headers; None when most carry none."""
    timings = [timing_from_head(head) for head in heads]
    carrying = [timing for timing in timings if timing]
    if not carrying or len(carrying) * 2 < len(timings):
        return None

    def mean(stage: str) -> float | None:
        values = [timing[stage] for timing in carrying if stage in timing]
        return statistics.fmean(values) if values else None

    return StageTimes("headers", *(mean(stage) for stage in STAGES))


class MetricsWatcher:
    """Scrapes /metrics at the start and end of a step and samples the queue gauges once per `interval` between."""

    def __init__(self, endpoint: Endpoint, model: str | None, path: str = "/metrics", interval: float = 1.0) -> None:
        self.endpoint = endpoint
        self.model = model
        self.path = path
        self.interval = interval
        self.before: Snapshot | None = None
        self.gauges: list[Snapshot] = []
        self._sampler: asyncio.Task[None] | None = None

    async def scrape(self, gauges_only: bool = False) -> Snapshot | None:
        try:
            reply = await fetch(self.endpoint, self.path)
        except (TimeoutError, *TRANSPORT_ERRORS):
            return None
        if reply.status != 200:
            return None
        text = reply.body.decode()
        return parse_metrics(gauge_lines(text) if gauges_only else text, self.model)

    async def start(self, window: float) -> None:
        """Scrape now, then sample the gauges for the next `window` seconds (while the load runs)."""
        self.gauges = []
        self.before = await self.scrape()
        if self.before is not None:
            self._sampler = asyncio.create_task(self._sample(window))

    async def stop(self, header_stages: StageTimes | None = None) -> ServerStats | None:
        if self._sampler is not None:
            self._sampler.cancel()
            await asyncio.gather(self._sampler, return_exceptions=True)
            self._sampler = None
        after = await self.scrape() if self.before is not None else None
        if self.before is None or after is None:
            return None
        return server_stats(self.before, after, self.gauges, header_stages)

    async def wait_idle(self, limit: float = 30.0) -> None:
        """Until the model's queue is empty (work left by an overloaded step), at most `limit` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit
        while loop.time() < deadline:
            snapshot = await self.scrape(gauges_only=True)
            if snapshot is None or snapshot.queue_depth == 0:
                return
            await asyncio.sleep(0.25)

    async def _sample(self, window: float) -> None:
        loop = asyncio.get_running_loop()
        ends = loop.time() + window
        due = loop.time() + min(self.interval, window) / 2  # a sample even in a short step
        while due < ends:
            await asyncio.sleep(due - loop.time())
            snapshot = await self.scrape(gauges_only=True)
            if snapshot is not None:
                self.gauges.append(snapshot)
            due += self.interval

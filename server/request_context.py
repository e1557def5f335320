"""What the server knows about the request being answered, wherever in the pipeline it is.

One `RequestContext` per HTTP request, reachable through a context variable: the request
layer (server/request_layer.py) creates it, the pipeline records its stages into it
(tokenization, cache, queue, inference), and the layer turns it into response headers, a log
line and trace spans. Tasks started for a request (the coalescer's computations) copy the
context, and with it the same object, so their stages count for the request that started them.
"""

from __future__ import annotations

import contextvars
import time
from dataclasses import dataclass, field

STAGES = ("tokenize", "cache", "queue", "inference")


@dataclass(slots=True, eq=False)
class RequestContext:
    id: str
    method: str
    path: str
    started: float = field(default_factory=time.perf_counter)  # perf_counter seconds
    wall_started_ns: int = field(default_factory=time.time_ns)
    deadline: float | None = None  # perf_counter seconds
    tenant: str = "-"
    model: str = "-"
    inputs: int = 0
    tokens: int = 0
    status: int = 0
    stages: dict[str, float] = field(default_factory=dict)  # stage -> seconds, summed
    # (stage, start, end) in perf_counter seconds; kept only while tracing is on.
    spans: list[tuple[str, float, float]] | None = None

    def record(self, stage: str, started: float, ended: float) -> None:
        self.stages[stage] = self.stages.get(stage, 0.0) + (ended - started)
        if self.spans is not None:
            self.spans.append((stage, started, ended))

    def remaining(self) -> float | None:
        """Seconds left before the deadline (None: no deadline)."""
        return None if self.deadline is None else self.deadline - time.perf_counter()

    def wall_ns(self, perf_seconds: float) -> int:
        """A perf_counter reading as Unix time in nanoseconds (for trace spans)."""
        return self.wall_started_ns + int((perf_seconds - self.started) * 1e9)


CURRENT: contextvars.ContextVar[RequestContext | None] = contextvars.ContextVar("embed_request", default=None)


def current() -> RequestContext | None:
    return CURRENT.get()


def record_stage(stage: str, started: float, ended: float) -> None:
    """Add a stage's time to the request being answered, if any (batch threads have none)."""
    context = CURRENT.get()
    if context is not None:
        context.record(stage, started, ended)

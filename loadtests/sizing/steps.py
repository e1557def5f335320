"""One step of a sizing run (one offered rate, or one number of closed-loop clients) reduced to numbers.

Latency percentiles are over the successful replies plus the timed-out requests (counted at
the time waited), so timeouts cannot hide from p99; 429s and other errors are counted, not timed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from loadtests.loadgen import NO_REPLY, TIMED_OUT, Sample
from loadtests.sizing.scenarios import KIND_NAMES
from loadtests.sizing.server_stats import ServerStats

CDF_QUANTILES = (*range(0, 100), 99.5, 99.9, 100)
STATUS_NAMES = {NO_REPLY: "no reply", TIMED_OUT: "timeout"}


@dataclass(frozen=True)
class Latency:
    requests: int  # the replies timed: successes and timeouts
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float

    @classmethod
    def of(cls, seconds: Sequence[float]) -> Latency:
        if not seconds:
            nan = float("nan")
            return cls(0, nan, nan, nan, nan, nan)
        ms = np.asarray(seconds) * 1000
        p50, p90, p99 = np.percentile(ms, [50, 90, 99])
        return cls(len(ms), float(p50), float(p90), float(p99), float(ms.max()), float(ms.mean()))


@dataclass(frozen=True)
class Generator:
    """How well the load generator kept up: if it falls behind, the server was not the limit."""

    send_lag_p99_ms: float | None  # open loop: how late requests left after their scheduled time
    peak_connections: int
    waited_for_connection: int  # open loop: requests that found every connection busy at the cap
    cpu_share: float  # the generator's CPU seconds per wall second (1.0 = one core)


@dataclass
class Step:
    mode: str  # "open" or "closed"
    duration: float
    rate: float | None  # open loop: offered requests per second
    clients: int | None  # closed loop: concurrent clients
    sent: int
    ok: int
    rejected: int  # 429
    errors: int  # other HTTP errors and requests without a reply
    timeouts: int
    offered_rps: float | None  # open loop: the rate the Poisson schedule actually drew
    achieved_rps: float  # successful replies per second
    inputs_per_s: float
    latency: Latency
    by_kind: dict[str, Latency]
    status_counts: dict[int, int]
    generator: Generator
    server: ServerStats | None = None
    cdf_ms: list[float] = field(default_factory=list)  # latency at CDF_QUANTILES

    @property
    def label(self) -> str:
        return f"{self.rate:g} req/s" if self.rate is not None else f"{self.clients} clients"

    @property
    def load(self) -> float:
        """What the step varies: offered rate, or clients."""
        return self.rate if self.rate is not None else float(self.clients or 0)

    @property
    def failure_rate(self) -> float:
        return (self.rejected + self.errors + self.timeouts) / self.sent if self.sent else 0.0

    @property
    def throughput_ratio(self) -> float | None:
        """Achieved over offered (open loop)."""
        return self.achieved_rps / self.offered_rps if self.offered_rps else None


def summarize(
    samples: Sequence[Sample],
    *,
    mode: str,
    duration: float,
    generator: Generator,
    rate: float | None = None,
    clients: int | None = None,
    server: ServerStats | None = None,
) -> Step:
    ok = [s for s in samples if s.status == 200]
    timed = [s for s in samples if s.status in (200, TIMED_OUT)]
    counts: dict[int, int] = {}
    for sample in samples:
        counts[sample.status] = counts.get(sample.status, 0) + 1
    offered: float | None = None
    if mode == "open":
        offered, achieved = _open_loop_rates(samples, ok, duration)
    else:  # closed loop: the replies that arrived inside the window
        achieved = len(ok) / duration
    by_kind = {}
    for kind, name in enumerate(KIND_NAMES):
        of_kind = [s.latency for s in timed if s.kind == kind]
        if of_kind:
            by_kind[name] = Latency.of(of_kind)
    latencies = [s.latency for s in timed]
    return Step(
        mode=mode,
        duration=duration,
        rate=rate,
        clients=clients,
        sent=len(samples),
        ok=len(ok),
        rejected=counts.get(429, 0),
        errors=sum(n for status, n in counts.items() if status not in (200, 429, TIMED_OUT)),
        timeouts=counts.get(TIMED_OUT, 0),
        offered_rps=offered,
        achieved_rps=achieved,
        inputs_per_s=sum(s.inputs for s in ok) / duration if mode == "closed" else achieved * _inputs_per_ok(ok),
        latency=Latency.of(latencies),
        by_kind=by_kind,
        status_counts=counts,
        generator=generator,
        server=server,
        cdf_ms=[float(v) for v in np.percentile(np.asarray(latencies) * 1000, CDF_QUANTILES)] if latencies else [],
    )


def _open_loop_rates(samples: Sequence[Sample], ok: Sequence[Sample], duration: float) -> tuple[float, float]:
    """Offered and achieved rates measured the same way, over the span of sends and of successful replies.

    A server that keeps up answers as fast as requests arrive, so both spans match; one that falls
    behind stretches the span of its replies (its queue grows), and the ratio drops below 1.
    """
    sends = sorted(s.sent for s in samples)
    offered = (len(sends) - 1) / (sends[-1] - sends[0]) if len(sends) > 1 and sends[-1] > sends[0] else None
    dones = sorted(s.sent + s.latency for s in ok)
    if len(dones) > 1 and dones[-1] > dones[0]:
        achieved = (len(dones) - 1) / (dones[-1] - dones[0])
    else:
        achieved = len(dones) / duration
    if offered is None:
        offered = len(sends) / duration
    return offered, achieved


def _inputs_per_ok(ok: Sequence[Sample]) -> float:
    return sum(s.inputs for s in ok) / len(ok) if ok else 0.0

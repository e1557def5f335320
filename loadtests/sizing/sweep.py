"""Running steps against a deployment: warm-up, open-loop rates, closed-loop clients, the automatic sweep."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from loadtests.loadgen import Endpoint, Sample, run_closed_loop
from loadtests.sizing.knee import Bounds, find_knee, violations
from loadtests.sizing.openloop import poisson_offsets, run_open_loop
from loadtests.sizing.scenarios import RequestStream
from loadtests.sizing.server_stats import MetricsWatcher, ServerStats, header_stage_times
from loadtests.sizing.steps import Generator, Step, summarize

WARMUP_CLIENTS = 4
MIN_REQUESTS_PER_STEP = 20
MIN_GROWTH = 1.1  # an automatic sweep stops when a higher rate adds less throughput than this factor


@dataclass(frozen=True)
class StepSettings:
    duration: float = 20.0
    timeout: float = 10.0
    max_connections: int = 512
    seed: int = 0


@dataclass(frozen=True)
class AutoSweep:
    start: float | None = None  # None: an eighth of the rate the warm-up reached
    factor: float = 2.0
    max_steps: int = 10
    refine: int = 2  # extra steps between the knee and the step that broke, halving the gap (geometrically)


class Sizer:
    """Runs the steps of one sizing run in order, on one request stream."""

    def __init__(
        self,
        endpoint: Endpoint,
        stream: RequestStream,
        watcher: MetricsWatcher | None,
        settings: StepSettings,
        log: Callable[[str], None] = print,
    ) -> None:
        self.endpoint = endpoint
        self.stream = stream
        self.watcher = watcher
        self.settings = settings
        self.log = log
        self.warmup_rps: float | None = None
        self._steps_run = 0

    async def warm_up(self, seconds: float) -> None:
        """A few closed-loop clients: loads the server's code paths and kernels, and roughly measures its capacity."""
        if seconds <= 0:
            return
        requests = self.stream.take(64)
        run = await run_closed_loop(
            self.endpoint, requests, clients=WARMUP_CLIENTS, duration=seconds, warmup=0.0, timeout=self.settings.timeout
        )
        self.warmup_rps = sum(s.status == 200 for s in run.samples) / seconds
        self.log(f"warm-up: {WARMUP_CLIENTS} closed-loop clients reached {self.warmup_rps:,.1f} req/s")

    async def open_step(self, rate: float) -> Step:
        settings = self.settings
        rng = random.Random(settings.seed * 1000 + self._steps_run)
        self._steps_run += 1
        offsets = poisson_offsets(rate, settings.duration, rng)
        requests = self.stream.take(len(offsets))
        await self._before_step()
        cpu, wall = time.process_time(), time.perf_counter()
        run = await run_open_loop(
            self.endpoint,
            requests,
            offsets,
            duration=settings.duration,
            max_connections=settings.max_connections,
            timeout=settings.timeout,
        )
        cpu_share = (time.process_time() - cpu) / (time.perf_counter() - wall)
        lag = sorted(run.send_lag)
        generator = Generator(
            send_lag_p99_ms=lag[min(len(lag) - 1, int(0.99 * len(lag)))] * 1000 if lag else None,
            peak_connections=run.peak_connections,
            waited_for_connection=run.waited_for_connection,
            cpu_share=cpu_share,
        )
        server = await self._after_step(run.samples)
        step = summarize(
            run.samples, mode="open", duration=settings.duration, generator=generator, rate=rate, server=server
        )
        self.log(_progress(step))
        return step

    async def closed_step(self, clients: int) -> Step:
        settings = self.settings
        requests = self.stream.take(max(256, 8 * clients))
        await self._before_step()
        cpu, wall = time.process_time(), time.perf_counter()
        run = await run_closed_loop(
            self.endpoint, requests, clients=clients, duration=settings.duration, warmup=0.0, timeout=settings.timeout
        )
        cpu_share = (time.process_time() - cpu) / (time.perf_counter() - wall)
        generator = Generator(None, clients, 0, cpu_share)
        server = await self._after_step(run.samples)
        step = summarize(
            run.samples, mode="closed", duration=settings.duration, generator=generator, clients=clients, server=server
        )
        self.log(_progress(step))
        return step

    async def rates(self, rates: Sequence[float]) -> list[Step]:
        return [await self.open_step(rate) for rate in rates]

    async def clients(self, counts: Sequence[int]) -> list[Step]:
        return [await self.closed_step(count) for count in counts]

    async def auto(self, plan: AutoSweep, bounds: Bounds) -> list[Step]:
        """Multiply the rate until a bound breaks or throughput stops growing, then narrow the gap."""
        rate = plan.start or max(0.5, _two_digits((self.warmup_rps or 4.0) / 8))
        steps = [await self.open_step(rate)]
        for _ in range(2):  # the first rate already too much: step down, while a step still sends a few requests
            lower = steps[0].load / plan.factor
            if not violations(steps[0], bounds) or len(steps) >= plan.max_steps:
                break
            if lower * self.settings.duration < MIN_REQUESTS_PER_STEP:
                self.log(f"not stepping below {steps[0].label}: fewer than {MIN_REQUESTS_PER_STEP} requests a step")
                break
            steps.insert(0, await self.open_step(lower))
        while len(steps) < plan.max_steps and not violations(steps[-1], bounds):
            if len(steps) > 1 and steps[-1].achieved_rps < steps[-2].achieved_rps * MIN_GROWTH:
                self.log("throughput stopped growing")
                break
            steps.append(await self.open_step(steps[-1].load * plan.factor))
        for _ in range(plan.refine):
            knee = find_knee(steps, bounds)
            if knee.step is None or knee.broken is None or len(steps) >= plan.max_steps + plan.refine:
                break
            steps.append(await self.open_step(_two_digits(math.sqrt(knee.step.load * knee.broken.load))))
        return sorted(steps, key=lambda s: s.load)

    async def _before_step(self) -> None:
        if self.watcher is not None:
            await self.watcher.wait_idle()
            await self.watcher.start(self.settings.duration)

    async def _after_step(self, samples: Sequence[Sample]) -> ServerStats | None:
        if self.watcher is None:
            return None
        return await self.watcher.stop(header_stage_times(s.head for s in samples if s.status == 200))


def _two_digits(rate: float) -> float:
    """Rates with two significant digits read better in the report (110 req/s, not 113.137...)."""
    return float(f"{rate:.2g}")


def _progress(step: Step) -> str:
    line = (
        f"{step.label:>14}: {step.achieved_rps:8,.1f} req/s achieved, p50 {step.latency.p50_ms:8,.1f} ms, "
        f"p99 {step.latency.p99_ms:8,.1f} ms, {step.failure_rate:6.1%} failed"
    )
    if step.server is not None and step.server.mean_batch_size is not None:
        line += f", batch {step.server.mean_batch_size:5.1f}, queue tokens max {step.server.queue_tokens_max:,.0f}"
    return line

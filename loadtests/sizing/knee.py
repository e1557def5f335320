"""The knee of the latency curve: the highest load a pod serves within its bounds.

Steps are walked from the lightest load up; the knee is the last step that keeps every bound
before the first one that breaks any. A step that passes again above a broken one is ignored:
that is noise, not capacity to plan on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from loadtests.sizing.steps import Latency, Step


@dataclass(frozen=True)
class Bounds:
    slo_p99_ms: float = 500.0
    max_failure_rate: float = 0.01  # 429s, errors and timeouts, over requests sent
    min_throughput_ratio: float = 0.9  # open loop: achieved over offered
    slo_kind: str | None = None  # hold only this request kind to the p99 bound (mixed traffic: "query")

    def latency_of(self, step: Step) -> tuple[str, Latency]:
        """The latency the p99 bound applies to, and what to call it."""
        if self.slo_kind is not None and self.slo_kind in step.by_kind:
            return f"{self.slo_kind} p99", step.by_kind[self.slo_kind]
        return "p99", step.latency


def violations(step: Step, bounds: Bounds) -> list[str]:
    """Why `step` breaks the bounds, one phrase per bound broken (empty when it keeps them all)."""
    reasons = []
    name, latency = bounds.latency_of(step)
    if step.sent == 0:
        return ["no request sent (rate x duration below one)"]
    if step.ok == 0:
        reasons.append("no successful reply")
    elif not latency.p99_ms <= bounds.slo_p99_ms:  # NaN (only timeouts) breaks it too
        reasons.append(f"{name} {latency.p99_ms:,.0f} ms > {bounds.slo_p99_ms:,.0f} ms")
    if step.failure_rate > bounds.max_failure_rate:
        reasons.append(
            f"{step.failure_rate:.1%} of requests failed (> {bounds.max_failure_rate:.0%}: "
            f"{step.rejected} rejected with 429, {step.errors} errors, {step.timeouts} timeouts)"
        )
    ratio = step.throughput_ratio
    if ratio is not None and ratio < bounds.min_throughput_ratio:
        reasons.append(
            f"achieved {step.achieved_rps:,.1f} req/s = {ratio:.0%} of the {step.offered_rps:,.1f} offered "
            f"(< {bounds.min_throughput_ratio:.0%})"
        )
    return reasons


@dataclass(frozen=True)
class Knee:
    step: Step | None  # the highest step within bounds; None when even the lightest broke them
    broken: Step | None  # the first step above it that broke a bound; None when none did
    reasons: tuple[str, ...]  # why `broken` broke

    @property
    def reached(self) -> bool:
        """Whether the run went past the knee (otherwise the pod may take more than the highest load tried)."""
        return self.broken is not None


def find_knee(steps: Sequence[Step], bounds: Bounds) -> Knee:
    knee: Step | None = None
    for step in sorted(steps, key=lambda s: s.load):
        reasons = violations(step, bounds)
        if reasons:
            return Knee(knee, step, tuple(reasons))
        knee = step
    return Knee(knee, None, ())

"""The sizing report: report.md (recommendation, reasoning, tables, figures) and results.json."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loadtests.sizing.knee import Bounds, Knee, violations
from loadtests.sizing.plots import write_plots
from loadtests.sizing.server_stats import ServerStats
from loadtests.sizing.steps import CDF_QUANTILES, STATUS_NAMES, Step

# Above these the load generator, not the server, may have set the pace.
MAX_SEND_LAG_MS = 10.0
MAX_LAG_SHARE = 0.1  # of the step's p50: a lag far below the latency measured does not change it
MAX_GENERATOR_CPU = 0.8
MIN_TIMED_FOR_P99 = 100


@dataclass(frozen=True)
class RunInfo:
    url: str
    model: str
    scenario: str
    scenario_description: str
    mode: str
    started: str  # ISO 8601
    command: str
    settings: dict[str, Any]
    metrics_available: bool
    warmup_rps: float | None


def write_report(directory: Path, info: RunInfo, steps: Sequence[Step], bounds: Bounds, knee: Knee) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    title = f"{info.scenario} on {info.model} ({info.url})"
    plots = write_plots(directory, steps, knee, bounds, title)
    results = {
        "run": dataclasses.asdict(info),
        "bounds": dataclasses.asdict(bounds),
        "knee": _knee_json(knee),
        "steps": [_step_json(step, bounds) for step in steps],
        "cdf_quantiles": list(CDF_QUANTILES),
        "plots": plots,
    }
    (directory / "results.json").write_text(json.dumps(_finite(results), indent=2) + "\n")
    path = directory / "report.md"
    path.write_text(markdown(info, steps, bounds, knee, plots))
    return path


def markdown(info: RunInfo, steps: Sequence[Step], bounds: Bounds, knee: Knee, plots: Sequence[str]) -> str:
    lines = [
        f"# Sizing report: {info.scenario} on {info.model}",
        "",
        f"Target `{info.url}`, model `{info.model}`, {info.started}. Scenario: {info.scenario_description}. "
        f"Mode: {_mode_text(info)}.",
        "",
        f"    {info.command}",
        "",
        "## Recommendation",
        "",
        *recommendation(knee, bounds, info),
        "",
        *_caveats(info, steps),
        "## Steps",
        "",
        *_steps_table(steps, bounds),
        "",
    ]
    if any(step.server is not None for step in steps):
        lines += ["## The server's view", "", *_server_table(steps), ""]
    if any(len(step.by_kind) > 1 for step in steps):
        lines += ["## Latency per request kind", "", *_kind_table(steps), ""]
    lines += ["## Figures", ""]
    lines += [f"![{name}]({name})\n" for name in plots]
    lines += ["## Method", "", *_method(info, bounds), ""]
    return "\n".join(lines)


def recommendation(knee: Knee, bounds: Bounds, info: RunInfo) -> list[str]:
    latency_name = f"{bounds.slo_kind} p99" if bounds.slo_kind else "p99"
    bound_text = (
        f"{latency_name} <= {bounds.slo_p99_ms:g} ms, at most {bounds.max_failure_rate:.0%} of requests failed "
        f"(429, errors, timeouts)"
        + (f", achieved >= {bounds.min_throughput_ratio:.0%} of offered" if info.mode != "closed" else "")
    )
    if knee.step is None:
        broken = knee.broken
        assert broken is not None
        return [
            f"**No step kept the bounds** ({bound_text}). The lightest, {broken.label}, broke them: "
            f"{'; '.join(knee.reasons)}. Measure lower loads (`--rates`, `--start-rate`) or check the deployment."
        ]
    step = knee.step
    bounded = f", {latency_name} {bounds.latency_of(step)[1].p99_ms:,.1f} ms" if bounds.slo_kind else ""
    lines = [
        f"**Keep each pod below {step.achieved_rps:,.1f} req/s** of this traffic "
        f"({step.inputs_per_s:,.0f} inputs/s{_tokens_text(step)}).",
        "",
    ]
    server = step.server
    if server is not None:
        lines += [
            f"**Its queue tokens at that load were {server.queue_tokens_mean:,.0f} on average** "
            f"(max {server.queue_tokens_max:,.0f}; {server.gauge_samples} samples, about one a second). "
            f"That is the value an HPA on `embed_queue_tokens` should target per pod{_capacity_text(server)}, "
            "through a custom-metrics adapter such as prometheus-adapter:",
            "",
            "```yaml",
            "metrics:",
            "  - type: Pods",
            "    pods:",
            "      metric: {name: embed_queue_tokens}",
            f'      target: {{type: AverageValue, averageValue: "{max(1, round(server.queue_tokens_mean))}"}}',
            "```",
            "",
        ]
    lines += ["Why:", ""]
    lines.append(
        f"- The knee is the highest step that kept every bound ({bound_text}): {step.label}, "
        f"{step.achieved_rps:,.1f} req/s achieved, p50 {step.latency.p50_ms:,.1f} ms, "
        f"p99 {step.latency.p99_ms:,.1f} ms{bounded}, {step.failure_rate:.2%} failed."
    )
    if knee.broken is not None:
        broken = knee.broken
        past = ""
        if broken.server is not None and server is not None:
            past = (
                f" Its queue tokens averaged {broken.server.queue_tokens_mean:,.0f} "
                f"(max {broken.server.queue_tokens_max:,.0f}): past the knee the queue grows, which is what the "
                "HPA target above detects."
            )
        lines.append(f"- The next step, {broken.label}, broke: {'; '.join(knee.reasons)}.{past}")
    else:
        lines.append(
            "- **No step broke the bounds**: the pod takes at least this much. Sweep higher rates "
            "(`--rates` with larger values, or `--rates auto`) to find its limit."
        )
    if server is not None and server.queue_tokens_max == 0:
        lines.append(
            "- The queue was empty in every sample at the knee, so a queue-token target only reacts once load "
            "passes it: scale on request rate instead, or accept that scale-up starts at the knee."
        )
    lines.append(
        "- Scale-up is not instant (a new pod loads its model before /ready turns 200): set HPA targets "
        "below these values, in proportion to how fast your traffic can rise while new pods start."
    )
    return lines


def _capacity_text(server: ServerStats) -> str:
    if server.queue_capacity is None:
        return ""
    return f" (the server answers 429 beyond {server.queue_capacity:,.0f} queued tokens, `--max-queue-tokens`)"


def _tokens_text(step: Step) -> str:
    if step.server is None or step.server.tokens <= 0:
        return ""
    return f", {step.server.tokens / step.duration:,.0f} tokens/s"


def _mode_text(info: RunInfo) -> str:
    return {
        "open": "open loop (Poisson arrivals at one rate)",
        "sweep": "open-loop sweep (Poisson arrivals, one rate per step)",
        "closed": "closed loop (each client sends its next request when the last one returns)",
    }[info.mode]


def _caveats(info: RunInfo, steps: Sequence[Step]) -> list[str]:
    notes = []
    if not info.metrics_available:
        notes.append("`/metrics` could not be read: server stage times, batch sizes and queue tokens are missing.")
    few = [f"{s.label} ({s.latency.requests})" for s in steps if s.latency.requests < MIN_TIMED_FOR_P99]
    if few:
        notes.append(
            f"Few requests timed at {', '.join(few)}: a p99 of fewer than {MIN_TIMED_FOR_P99} requests is close "
            "to their maximum. Lengthen `--duration` for low rates."
        )
    lagging = [s.label for s in steps if _generator_limited(s)]
    if lagging:
        notes.append(
            f"The load generator may have set the pace at {', '.join(lagging)} (sends late by a noticeable part "
            "of the latency, a busy generator CPU, or every connection in use: see the generator columns). "
            "Run it on a machine of its own, or raise `--max-connections`."
        )
    if not notes:
        return []
    return ["Caveats:", "", *(f"- {note}" for note in notes), ""]


def _generator_limited(step: Step) -> bool:
    lag = step.generator.send_lag_p99_ms or 0.0
    late = lag > MAX_SEND_LAG_MS and not lag < MAX_LAG_SHARE * step.latency.p50_ms  # NaN p50 counts as late
    return late or step.generator.cpu_share > MAX_GENERATOR_CPU or step.generator.waited_for_connection > 0


def _fmt(value: float | None, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:,.{digits}f}"


def _steps_table(steps: Sequence[Step], bounds: Bounds) -> list[str]:
    rows = [
        "| step | offered req/s | achieved req/s | inputs/s | p50 ms | p90 ms | p99 ms | max ms | sent | ok | 429 "
        "| errors | timeouts | bounds |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for s in steps:
        broken = violations(s, bounds)
        rows.append(
            f"| {s.label} | {_fmt(s.offered_rps)} | {_fmt(s.achieved_rps)} | {_fmt(s.inputs_per_s, 0)} "
            f"| {_fmt(s.latency.p50_ms)} | {_fmt(s.latency.p90_ms)} | {_fmt(s.latency.p99_ms)} "
            f"| {_fmt(s.latency.max_ms)} | {s.sent} | {s.ok} | {s.rejected} | {s.errors} | {s.timeouts} "
            f"| {'; '.join(broken) if broken else 'kept'} |"
        )
    return rows


def _server_table(steps: Sequence[Step]) -> list[str]:
    source = next(s.server.stages.source for s in steps if s.server is not None)
    units = "per request" if source == "headers" else "tokenize per request, queue per input, inference per batch"
    rows = [
        f"Mean stage times in ms ({units}; from {'response headers' if source == 'headers' else '/metrics'}); "
        "queue gauges sampled about once a second; generator: how late it sent (p99), the most connections "
        "it held, and its CPU use (1.0 = one core).",
        "",
        "| step | tokenize | queue | inference | server total | mean batch | tokens/s | queue tokens mean "
        "| queue tokens max | queue depth max | send lag p99 ms | connections | generator CPU |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in steps:
        g = s.generator
        generator = f"| {_fmt(g.send_lag_p99_ms)} | {g.peak_connections} | {g.cpu_share:.2f} |"
        if s.server is None:
            rows.append(f"| {s.label} | - | - | - | - | - | - | - | - | - {generator}")
            continue
        st, sv = s.server.stages, s.server
        rows.append(
            f"| {s.label} | {_fmt(st.tokenize_ms, 2)} | {_fmt(st.queue_ms, 2)} | {_fmt(st.inference_ms, 2)} "
            f"| {_fmt(st.request_ms, 2)} | {_fmt(sv.mean_batch_size)} | {_fmt(sv.tokens / s.duration, 0)} "
            f"| {_fmt(sv.queue_tokens_mean, 0)} | {_fmt(sv.queue_tokens_max, 0)} | {_fmt(sv.queue_depth_max, 0)} "
            + generator
        )
    return rows


def _kind_table(steps: Sequence[Step]) -> list[str]:
    kinds = sorted({kind for s in steps for kind in s.by_kind})
    header = "| step | " + " | ".join(f"{k} n | {k} p50 ms | {k} p99 ms" for k in kinds) + " |"
    rows = [header, "|---|" + "---:|---:|---:|" * len(kinds)]
    for s in steps:
        cells = []
        for kind in kinds:
            latency = s.by_kind.get(kind)
            cells.append(
                "- | - | -"
                if latency is None
                else f"{latency.requests} | {_fmt(latency.p50_ms)} | {_fmt(latency.p99_ms)}"
            )
        rows.append(f"| {s.label} | " + " | ".join(cells) + " |")
    return rows


def _method(info: RunInfo, bounds: Bounds) -> list[str]:
    cache = info.settings.get("cache")
    lines = [
        "- Open loop: requests leave at Poisson arrival times whatever the replies do, over a pool of "
        "keep-alive connections that grows when all are busy (up to `--max-connections`); latency runs "
        "from each request's scheduled time, so queueing anywhere (client, network, server) is counted.",
        "- Latency percentiles cover successful replies and timeouts (at the time waited); 429s and other "
        "errors are counted, not timed. Achieved throughput is the rate of successful replies over their "
        "span; offered, the rate of sends over theirs, so a server that falls behind shows a ratio below 1.",
        "- Every request body is built before its step starts. "
        + (
            "The result cache may answer repeated inputs (`--cache`)."
            if cache
            else 'Bodies carry `"cache": false` and every pass over the corpus is reshuffled, so the server '
            "computes every input: the numbers measure compute, not the cache."
        ),
        "- /metrics is scraped before and after each step (histogram `_sum`/`_count` differences), and "
        "its queue gauges about once a second during it. With several pods behind `--url`, each scrape "
        "reaches one of them: point the tool at one pod (for example through `kubectl port-forward`) "
        "for per-pod numbers.",
        f"- Bounds: {f'{bounds.slo_kind} ' if bounds.slo_kind else ''}p99 <= {bounds.slo_p99_ms:g} ms "
        f"(`--slo-p99-ms`{', `--slo-kind`' if bounds.slo_kind else ''}), failures <= {bounds.max_failure_rate:.0%}, "
        f"achieved >= {bounds.min_throughput_ratio:.0%} of offered (open loop).",
    ]
    if info.warmup_rps is not None:
        lines.append(f"- Warm-up before the first step: closed loop, {info.warmup_rps:,.1f} req/s reached.")
    return lines


def _step_json(step: Step, bounds: Bounds) -> dict[str, Any]:
    data = dataclasses.asdict(step)
    data["label"] = step.label
    data["failure_rate"] = step.failure_rate
    data["throughput_ratio"] = step.throughput_ratio
    data["status_counts"] = {STATUS_NAMES.get(code, str(code)): n for code, n in step.status_counts.items()}
    data["violations"] = violations(step, bounds)
    return data


def _knee_json(knee: Knee) -> dict[str, Any]:
    step = knee.step
    return {
        "reached": knee.reached,
        "label": step.label if step else None,
        "rate": step.rate if step else None,
        "clients": step.clients if step else None,
        "achieved_rps": step.achieved_rps if step else None,
        "p99_ms": step.latency.p99_ms if step else None,
        "queue_tokens_mean": step.server.queue_tokens_mean if step and step.server else None,
        "queue_tokens_max": step.server.queue_tokens_max if step and step.server else None,
        "broken_by": knee.broken.label if knee.broken else None,
        "reasons": list(knee.reasons),
    }


def _finite(value: Any) -> Any:
    """NaN and infinities become null: results.json stays standard JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value

"""The report's figures: PNG files drawn by matplotlib's Agg canvas (no pyplot, no display, no global backend)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.axis import Axis
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from loadtests.sizing.knee import Bounds, Knee
from loadtests.sizing.steps import CDF_QUANTILES, Step

THROUGHPUT_LATENCY = "throughput_latency.png"
LATENCY_CDF = "latency_cdf.png"
SERVER_STAGES = "server_stages.png"


def write_plots(directory: Path, steps: Sequence[Step], knee: Knee, bounds: Bounds, title: str) -> list[str]:
    """Writes every figure the steps allow; returns their file names."""
    written = [
        _throughput_latency(directory, steps, knee, bounds, title),
        _latency_cdf(directory, steps, bounds.slo_p99_ms, title),
    ]
    if any(step.server is not None for step in steps):
        written.append(_server_stages(directory, steps, title))
    return written


def _load_axis_label(steps: Sequence[Step]) -> str:
    return "offered load (requests/s)" if steps[0].mode == "open" else "concurrent clients"


def _throughput_latency(directory: Path, steps: Sequence[Step], knee: Knee, bounds: Bounds, title: str) -> str:
    figure = Figure(figsize=(13, 5), layout="constrained")
    latency, rates = figure.subplots(1, 2)
    achieved = [s.achieved_rps for s in steps]
    latency.plot(achieved, [s.latency.p50_ms for s in steps], "o-", label="p50")
    latency.plot(achieved, [s.latency.p99_ms for s in steps], "s-", label="p99")
    kinds = sorted({kind for s in steps for kind in s.by_kind})
    if len(kinds) > 1:
        for kind in kinds:
            p99 = [s.by_kind[kind].p99_ms if kind in s.by_kind else float("nan") for s in steps]
            latency.plot(achieved, p99, ".:", label=f"p99, {kind} requests")
    bound_name = f"{bounds.slo_kind} p99" if bounds.slo_kind else "p99"
    latency.axhline(
        bounds.slo_p99_ms, color="tab:red", linestyle="--", label=f"{bound_name} bound ({bounds.slo_p99_ms:g} ms)"
    )
    if knee.step is not None:
        knee_p99 = bounds.latency_of(knee.step)[1].p99_ms
        latency.plot(
            [knee.step.achieved_rps], [knee_p99], "*", color="black", markersize=16, label=f"knee ({knee.step.label})"
        )
    for step in steps:
        latency.annotate(
            step.label,
            (step.achieved_rps, step.latency.p99_ms),
            textcoords="offset points",
            xytext=(4, 6),
            fontsize=7,
            color="dimgray",
        )
    latency.set(
        xlabel="achieved throughput (successful requests/s)",
        ylabel="latency (ms, log scale)",
        yscale="log",
        title="Latency vs throughput",
    )
    _plain_numbers(latency.yaxis)
    _finish(latency)

    loads = [s.load for s in steps]
    if steps[0].mode == "open":
        offered = [s.offered_rps or s.load for s in steps]
        rates.plot(offered, achieved, "o-", label="achieved")
        top = max([*offered, *achieved])
        rates.plot([0, top], [0, top], color="gray", linestyle=":", label="achieved = offered")
        rates.plot([0, top], [0, 0.9 * top], color="tab:red", linestyle="--", linewidth=1, label="90% of offered")
        rates.set(xlabel="offered load (requests/s, as drawn by the Poisson schedule)")
    else:
        rates.plot(loads, achieved, "o-", label="achieved")
        rates.set(xlabel="concurrent clients")
    rates.set(ylabel="achieved throughput (successful requests/s)", title="Throughput")
    _finish(rates)
    figure.suptitle(title)
    return _save(figure, directory / THROUGHPUT_LATENCY)


def _latency_cdf(directory: Path, steps: Sequence[Step], slo_p99_ms: float, title: str) -> str:
    figure = Figure(figsize=(9, 5.5), layout="constrained")
    axes = figure.subplots()
    fractions = [q / 100 for q in CDF_QUANTILES]
    colors = colormaps["viridis"]
    for index, step in enumerate(steps):
        if step.cdf_ms:  # the colour map's pale yellow end is left out: unreadable on white
            axes.plot(step.cdf_ms, fractions, label=step.label, color=colors(0.85 * index / max(1, len(steps) - 1)))
    axes.axvline(slo_p99_ms, color="tab:red", linestyle="--", label=f"p99 bound ({slo_p99_ms:g} ms)")
    axes.axhline(0.99, color="gray", linestyle=":", linewidth=1)
    axes.set(
        xscale="log",
        xlabel="latency (ms, log scale; timeouts at the timeout)",
        ylabel="fraction of requests at or below",
        ylim=(0, 1.01),
        title="Latency CDF, one line per step",
    )
    _plain_numbers(axes.xaxis)
    _finish(axes, legend_title="step")
    figure.suptitle(title)
    return _save(figure, directory / LATENCY_CDF)


def _server_stages(directory: Path, steps: Sequence[Step], title: str) -> str:
    figure = Figure(figsize=(9, 10), layout="constrained")
    times, queue, batches = figure.subplots(3, 1, sharex=True, height_ratios=(2, 1, 1))
    measured = [(s, s.server) for s in steps if s.server is not None]
    loads = [s.load for s, _ in measured]
    source = measured[0][1].stages.source
    per = {"metrics": ("per request", "per input", "per batch"), "headers": ("per request",) * 3}[source]
    series = [
        ("tokenize", per[0], [server.stages.tokenize_ms for _, server in measured]),
        ("queue wait", per[1], [server.stages.queue_ms for _, server in measured]),
        ("inference", per[2], [server.stages.inference_ms for _, server in measured]),
        ("server total", "per request", [server.stages.request_ms for _, server in measured]),
    ]
    for name, unit, values in series:
        if any(v is not None for v in values):
            times.plot(loads, [float("nan") if v is None else v for v in values], "o-", label=f"{name} ({unit})")
    times.plot(loads, [s.latency.mean_ms for s, _ in measured], "k--", label="client-measured (mean per request)")
    origin = "response headers" if source == "headers" else "/metrics"
    times.set(ylabel="mean time (ms, log scale)", yscale="log", title=f"Server stage times (from {origin})")
    _plain_numbers(times.yaxis)
    _finish(times)

    queue.plot(loads, [server.queue_tokens_max for _, server in measured], "o-", label="max sampled")
    queue.plot(loads, [server.queue_tokens_mean for _, server in measured], "s--", label="mean sampled")
    queue.set(ylabel="tokens", title="Queued tokens (embed_queue_tokens, sampled about once a second)")
    queue.set_ylim(0, 1.1 * max(1.0, *(server.queue_tokens_max for _, server in measured)))
    _finish(queue)

    sizes = [float("nan") if server.mean_batch_size is None else server.mean_batch_size for _, server in measured]
    batches.plot(loads, sizes, "o-", color="tab:green", label="mean batch size")
    batches.set(xlabel=_load_axis_label(steps), ylabel="inputs per batch", title="Mean batch size (embed_batch_size)")
    batches.set_ylim(0, 1.1 * max(1.0, *(size for size in sizes if not math.isnan(size))))
    _finish(batches)
    figure.suptitle(title)
    return _save(figure, directory / SERVER_STAGES)


def _plain_numbers(axis: Axis) -> None:
    """Log-scale ticks written 20 and 500 instead of 2x10^1 and 5x10^2; minor ticks labelled at 2 and 5 only."""
    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axis.set_minor_formatter(FuncFormatter(lambda value, _: f"{value:g}" if _leading_digit(value) in (2, 5) else ""))


def _leading_digit(value: float) -> int:
    return round(value / 10 ** math.floor(math.log10(value))) if value > 0 else 0


def _finish(axes: Axes, legend_title: str | None = None) -> None:
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8, title=legend_title)


def _save(figure: Figure, path: Path) -> str:
    FigureCanvasAgg(figure)  # attaches itself to the figure
    figure.savefig(path, dpi=110)
    return path.name

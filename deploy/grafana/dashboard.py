"""The embed-server Grafana dashboard, built with grafana-foundation-sdk==1769699520!11.4.0 (the build for
Grafana 11.4, the image docker-compose.yml runs; another build writes other JSON).

    .venv/bin/python deploy/grafana/dashboard.py           # rewrite embed-server.json beside this file
    .venv/bin/python deploy/grafana/dashboard.py --check   # exit 1 if embed-server.json is stale

Queries select the server's metrics by name and filter by the template variables, so they work under any
scrape job. Every expression is checked by tests/deploy/test_grafana.py: it parses (promtool) and each metric
it names is one the real server exports, or a recording rule of deploy/prometheus/rules.yml.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import heatmap, prometheus, stat, statetimeline, table, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models.dashboard import (
    DashboardCursorSync,
    DataSourceRef,
    DataTransformerConfig,
    DynamicConfigValue,
    Threshold,
    ThresholdsMode,
    ValueMap,
    ValueMappingResult,
    VariableOption,
    VariableRefresh,
    VariableSort,
)
from grafana_foundation_sdk.models.heatmap import HeatmapColorMode
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

OUTPUT = Path(__file__).resolve().parent / "embed-server.json"
# The uid of the data source that deploy/grafana/provisioning/datasources/prometheus.yml provisions.
DATASOURCE_UID = "prometheus"
DS = DataSourceRef(type_val="prometheus", uid="${datasource}")

# Label filters: the target (pod) and, for per-model metrics, the model.
T = 'namespace=~"$namespace", job=~"$job", instance=~"$instance"'
M = T + ', model=~"$model"'
RATE = "[$__rate_interval]"
QUANTILES = (0.5, 0.95, 0.99)


def query(expr: str, legend: str = "", *, instant: bool = False, fmt: PromQueryFormat | None = None):
    target = prometheus.Dataquery().expr(expr).datasource(DS)
    if legend:
        target = target.legend_format(legend)
    if instant:
        target = target.instant()
    if fmt is not None:
        target = target.format(fmt)
    return target


def with_targets(panel: Any, targets: Sequence[Any]) -> Any:
    for ref, target in zip("ABCDEFGHIJ", targets, strict=False):
        panel = panel.with_target(target.ref_id(ref))
    return panel


def thresholds(*steps: tuple[float | None, str]) -> db.ThresholdsConfig:
    return db.ThresholdsConfig().mode(ThresholdsMode.ABSOLUTE).steps([Threshold(v, c) for v, c in steps])


def graph(
    title: str,
    description: str,
    targets: Sequence[Any],
    unit: str = "short",
    *,
    width: int = 12,
    height: int = 8,
    bars: bool = False,
    limits: Sequence[tuple[float, str]] = (),
) -> timeseries.Panel:
    """A time series; `limits` are drawn as dashed lines (an SLO, a capacity)."""
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(DS)
        .unit(unit)
        .span(width)
        .height(height)
        .min(0)
        .fill_opacity(10)
        .legend(cb.VizLegendOptions().show_legend(True).display_mode(common.LegendDisplayMode.LIST)
                .placement(common.LegendPlacement.BOTTOM))
        .tooltip(cb.VizTooltipOptions().mode(common.TooltipDisplayMode.MULTI).sort(common.SortOrder.DESCENDING))
    )  # fmt: skip
    if bars:
        panel = panel.draw_style(common.GraphDrawStyle.BARS).fill_opacity(60)
    if limits:
        panel = panel.thresholds(thresholds((None, "transparent"), *limits)).thresholds_style(
            cb.GraphThresholdsStyleConfig().mode(common.GraphThresholdsStyleMode.DASHED)
        )
    return with_targets(panel, targets)


def single(title: str, description: str, expr: str, unit: str, steps: Sequence[tuple[float | None, str]],
           *, width: int = 3, decimals: int | None = None) -> stat.Panel:  # fmt: skip
    panel = (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(DS)
        .unit(unit)
        .span(width)
        .height(4)
        .thresholds(thresholds(*steps))
        .color_mode(common.BigValueColorMode.VALUE)
        .graph_mode(common.BigValueGraphMode.AREA)
        .reduce_options(cb.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
    )
    if decimals is not None:
        panel = panel.decimals(decimals)
    return with_targets(panel, [query(expr)])


def quantiles(metric: str, selector: str, by: str = "model") -> list[Any]:
    return [
        query(f"histogram_quantile({q}, sum by (le, {by}) (rate({metric}_bucket{{{selector}}}{RATE})))",
              f"p{round(q * 100)} {{{{{by}}}}}")
        for q in QUANTILES
    ]  # fmt: skip


def states(title: str, description: str, expr: str, legend: str, mapping: dict[str, tuple[str, str]]):
    return with_targets(
        statetimeline.Panel()
        .title(title)
        .description(description)
        .datasource(DS)
        .span(12)
        .height(8)
        .show_value(common.VisibilityMode.NEVER)
        .mappings([ValueMap({v: ValueMappingResult(text=t, color=c) for v, (t, c) in mapping.items()})]),
        [query(expr, legend)],
    )


def variable(name: str, label: str, query_text: str) -> db.QueryVariable:
    """Multi-select with All = .*, which also matches a missing label (docker-compose has no namespace)."""
    return (
        db.QueryVariable(name)
        .label(label)
        .datasource(DS)
        .query(query_text)
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".*")
        .current(VariableOption(selected=True, text=["All"], value=["$__all"]))
    )


def overview(d: db.Dashboard) -> db.Dashboard:
    bad = f'rate(embed_requests_total{{{T}, status=~"5..|429"}}{RATE})'
    valid = f'rate(embed_requests_total{{{T}, status!="499"}}{RATE})'
    return (
        d.with_row(db.Row("Overview"))
        .with_panel(single("Pods ready", "Pods reporting embed_ready 1: loaded, warm, not draining.",
                           f"sum(embed_ready{{{T}}})", "short", [(None, "red"), (1, "green")]))
        .with_panel(single("Requests / s", "Requests answered, every endpoint and status.",
                           f"sum(rate(embed_requests_total{{{T}}}{RATE}))", "reqps", [(None, "blue")]))
        .with_panel(single("Failed (5xx, 429)",
                           "Share of requests answered 5xx or 429 (499 left out): the availability SLI. "
                           "The SLO allows 0.1%.",
                           f"(sum({bad}) or vector(0)) / sum({valid})", "percentunit",
                           [(None, "green"), (0.001, "orange"), (0.0144, "red")], decimals=2))
        .with_panel(single("p99 embeddings latency",
                           "99th percentile of successful /v1/embeddings requests. "
                           "The SLO: 99% within 0.5 s.",
                           f"histogram_quantile(0.99, sum by (le) (rate(embed_request_duration_seconds_bucket"
                           f'{{{M}, endpoint="embeddings"}}{RATE})))',
                           "s", [(None, "green"), (0.25, "orange"), (0.5, "red")]))
        .with_panel(single("Queue saturation", "Fullest queue: queued tokens / capacity (429 beyond).",
                           f"max(embed_queue_tokens{{{M}}} / embed_queue_capacity_tokens{{{M}}})",
                           "percentunit", [(None, "green"), (0.5, "orange"), (0.8, "red")]))
        .with_panel(single("Cache hit ratio",
                           "Lookups answered by either tier / lookups (every lookup tries the local tier first; "
                           "with --local-cache-mb 0 see the per-tier panel instead).",
                           f"sum(rate(embed_cache_hits_total{{{T}}}{RATE})) / "
                           f'(sum(rate(embed_cache_hits_total{{{T}, tier="local"}}{RATE})) + '
                           f'sum(rate(embed_cache_misses_total{{{T}, tier="local"}}{RATE})))',
                           "percentunit", [(None, "blue")]))
        .with_panel(single("Replica restarts", "Replica processes replaced over the dashboard's time range.",
                           f"sum(increase(embed_replica_restarts_total{{{M}}}[$__range])) or vector(0)",
                           "short", [(None, "green"), (1, "orange"), (3, "red")], decimals=0))
        .with_panel(single("Firing alerts", "embed-server alerts firing now (see Prometheus /alerts).",
                           'count(ALERTS{alertname=~"EmbedServer.*", alertstate="firing", '
                           'namespace=~"$namespace", job=~"$job"}) or vector(0)',
                           "short", [(None, "green"), (1, "red")], decimals=0))
    )  # fmt: skip


def slo(d: db.Dashboard) -> db.Dashboard:
    sel = 'namespace=~"$namespace", job=~"$job"'
    windows = ("5m", "1h", "6h", "1d")
    return (
        d.with_row(db.Row("SLOs (recording rules of deploy/prometheus/rules.yml)"))
        .with_panel(graph(
            "Availability: failed share", "5xx and 429 over answered requests (499 left out), per window. "
            "Dashed: the 0.1% budget and the 14.4x page rate.",
            [query(f"namespace_job:embed_availability_errors:ratio_rate{w}{{{sel}}}", f"{w} {{{{job}}}}")
             for w in windows],
            "percentunit", limits=[(0.001, "orange"), (0.0144, "red")]))
        .with_panel(graph(
            "Latency: share over 0.5 s", "Successful /v1/embeddings requests slower than 0.5 s, per window. "
            "Dashed: the 1% budget and the 14.4x page rate.",
            [query(f"namespace_job:embed_latency_slow:ratio_rate{w}{{{sel}}}", f"{w} {{{{job}}}}")
             for w in windows],
            "percentunit", limits=[(0.01, "orange"), (0.144, "red")]))
    )  # fmt: skip


def traffic(d: db.Dashboard) -> db.Dashboard:
    return (
        d.with_row(db.Row("Traffic"))
        .with_panel(graph(
            "Requests by status", "Requests answered per endpoint and HTTP status (499: the client went away).",
            [query(f"sum by (endpoint, status) (rate(embed_requests_total{{{T}}}{RATE}))",
                   "{{endpoint}} {{status}}")],
            "reqps", width=8))
        .with_panel(graph(
            "Errors by type", "Error responses by OpenAI error type and code.",
            [query(f"sum by (status, type, code) (rate(embed_errors_total{{{T}}}{RATE}))",
                   "{{status}} {{type}} {{code}}")],
            "reqps", width=8))
        .with_panel(graph(
            "Inputs and tokens / s", "Inputs (or chunks) and tokens answered, cache hits included; "
            "tokens on the right axis.",
            [query(f"sum by (model) (rate(embed_inputs_total{{{M}}}{RATE}))", "inputs {{model}}"),
             query(f"sum by (model) (rate(embed_tokens_total{{{M}}}{RATE}))", "tokens {{model}}")],
            "short", width=8)
            .override_by_regexp("^tokens", [DynamicConfigValue("custom.axisPlacement", "right")]))
    )  # fmt: skip


def latency(d: db.Dashboard) -> db.Dashboard:
    return (
        d.with_row(db.Row("Latency"))
        .with_panel(graph(
            "Request", "From request received to response ready, successful requests of the selected models.",
            quantiles("embed_request_duration_seconds", M, by="endpoint"), "s", limits=[(0.5, "red")]))
        .with_panel(graph(
            "Tokenization", "Tokenizing one request's inputs.",
            quantiles("embed_tokenization_duration_seconds", M), "s"))
        .with_panel(graph(
            "Queue wait", "Time an input waited in the queue before its batch ran.",
            quantiles("embed_queue_duration_seconds", M), "s"))
        .with_panel(graph(
            "Inference per batch", "Forward pass and pooling of one batch.",
            quantiles("embed_inference_duration_seconds", M), "s"))
    )  # fmt: skip


def batching(d: db.Dashboard) -> db.Dashboard:
    tokens = (
        heatmap.Panel()
        .title("Padded tokens per batch")
        .description("How full batches are: padded tokens (longest input x inputs) per batch, against the "
                     "batch budget --max-batch-tokens (2,048 on CPU, 16,384 on GPU by default).")
        .datasource(DS)
        .span(8)
        .height(8)
        .calculate(False)
        .rows_frame(heatmap.RowsHeatmapOptions().layout(common.HeatmapCellLayout.LE))
        .color(heatmap.HeatmapColorOptions().mode(HeatmapColorMode.SCHEME).scheme("Oranges").steps(64)
               .exponent(0.5).fill("dark-orange"))
        .y_axis(heatmap.YAxisConfig().unit("short"))
        .mode(common.TooltipDisplayMode.SINGLE)
        .show_y_histogram()
    )  # fmt: skip
    tokens = with_targets(tokens, [
        query(f"sum by (le) (increase(embed_batch_tokens_bucket{{{M}}}{RATE}))", "{{le}}", fmt=PromQueryFormat.HEATMAP)
    ])  # fmt: skip
    return (
        d.with_row(db.Row("Batching"))
        .with_panel(tokens)
        .with_panel(graph(
            "Mean batch", "Mean inputs and mean padded tokens per batch; padded tokens on the right axis.",
            [query(f"sum by (model) (rate(embed_batch_size_sum{{{M}}}{RATE})) / "
                   f"sum by (model) (rate(embed_batch_size_count{{{M}}}{RATE}))", "inputs {{model}}"),
             query(f"sum by (model) (rate(embed_batch_tokens_sum{{{M}}}{RATE})) / "
                   f"sum by (model) (rate(embed_batch_tokens_count{{{M}}}{RATE}))", "padded tokens {{model}}")],
            width=8)
            .override_by_regexp("^padded", [DynamicConfigValue("custom.axisPlacement", "right")]))
        .with_panel(graph(
            "Batches / s", "Batches run, all replicas.",
            [query(f"sum by (model) (rate(embed_batch_size_count{{{M}}}{RATE}))", "{{model}}")],
            "short", width=8))
    )  # fmt: skip


def queue(d: db.Dashboard) -> db.Dashboard:
    return (
        d.with_row(db.Row("Queue"))
        .with_panel(graph(
            "Queued tokens and capacity", "Tokens waiting per pod and model; the capacity (--max-queue-tokens) "
            "beyond which requests get 429.",
            [query(f"embed_queue_tokens{{{M}}}", "{{instance}} {{model}}"),
             query(f"max by (model) (embed_queue_capacity_tokens{{{M}}})", "capacity {{model}}")],
            width=8)
            .override_by_regexp("^capacity", [DynamicConfigValue("custom.lineStyle", {"fill": "dash",
                                                                                      "dash": [10, 10]}),
                                              DynamicConfigValue("custom.fillOpacity", 0)]))
        .with_panel(graph(
            "Queue saturation", "Queued tokens / capacity. EmbedServerQueueSaturated warns at 80% "
            "averaged over 10 minutes.",
            [query(f"embed_queue_tokens{{{M}}} / embed_queue_capacity_tokens{{{M}}}", "{{instance}} {{model}}")],
            "percentunit", width=8, limits=[(0.8, "red")]).max(1))
        .with_panel(graph(
            "Queued inputs, in flight, refused", "Inputs waiting; requests being answered; requests refused "
            "(429) and abandoned by their client (499) per second.",
            [query(f"sum by (model) (embed_queue_depth{{{M}}})", "queued inputs {{model}}"),
             query(f"sum(embed_requests_in_flight{{{T}}})", "requests in flight"),
             query(f'sum by (status) (rate(embed_requests_total{{{T}, status=~"429|499"}}{RATE}))',
                   "{{status}} / s")],
            width=8))
    )  # fmt: skip


def cache(d: db.Dashboard) -> db.Dashboard:
    return (
        d.with_row(db.Row("Cache"))
        .with_panel(graph(
            "Hit ratio per tier", "Hits / lookups at each tier: local first, then Redis for the local misses.",
            [query(f"sum by (tier) (rate(embed_cache_hits_total{{{T}}}{RATE})) / "
                   f"(sum by (tier) (rate(embed_cache_hits_total{{{T}}}{RATE})) + "
                   f"sum by (tier) (rate(embed_cache_misses_total{{{T}}}{RATE})))", "{{tier}}")],
            "percentunit").max(1))
        .with_panel(states(
            "Redis circuit breaker", "Open: Redis failed repeatedly and is bypassed; half-open: probing it.",
            f"embed_cache_breaker_state{{{T}}}", "{{instance}}",
            {"0": ("closed", "green"), "1": ("open", "red"), "2": ("half-open", "orange")}))
        .with_panel(graph(
            "Redis errors and dropped writes", "Redis failures by kind; cache writes dropped (queue full, or "
            "Redis unavailable).",
            [query(f"sum by (kind) (rate(embed_cache_errors_total{{{T}}}{RATE}))", "error {{kind}}"),
             query(f"sum by (reason) (rate(embed_cache_dropped_writes_total{{{T}}}{RATE}))",
                   "dropped {{reason}}")],
            "ops", width=8))
        .with_panel(graph(
            "Redis latency", "Redis calls by operation, failures included.",
            quantiles("embed_cache_redis_duration_seconds", T, by="op"), "s", width=8))
        .with_panel(graph(
            "Local cache and pending writes", "Bytes held by the in-process tier; Redis writes waiting for the "
            "background writer (right axis).",
            [query(f"embed_cache_local_bytes{{{T}}}", "local bytes {{instance}}"),
             query(f"embed_cache_pending_writes{{{T}}}", "pending writes {{instance}}")],
            "bytes", width=8)
            .override_by_regexp("^pending", [DynamicConfigValue("custom.axisPlacement", "right"),
                                             DynamicConfigValue("unit", "short")]))
    )  # fmt: skip


def replicas(d: db.Dashboard) -> db.Dashboard:
    info = with_targets(
        table.Panel()
        .title("Model info")
        .description("One row per pod and model. Two fingerprints for one model mean two model revisions "
                     "serve side by side (a rollout in progress, or a mixed deployment) and their vectors "
                     "do not compare.")
        .datasource(DS)
        .span(16)
        .height(8)
        .with_transformation(DataTransformerConfig(id_val="organize", options={
            "excludeByName": {"Time": True, "Value": True, "__name__": True},
            "indexByName": {"model": 0, "fingerprint": 1, "instance": 2, "engine": 3, "dtype": 4, "device": 5},
        })),
        [query(f"embed_model_info{{{M}}}", instant=True, fmt=PromQueryFormat.TABLE)],
    )  # fmt: skip
    return (
        d.with_row(db.Row("Replicas and process"))
        .with_panel(graph(
            "Live replicas", "Replicas able to run a batch, per pod and model.",
            [query(f"embed_replicas_alive{{{M}}}", "{{instance}} {{model}}")], width=8))
        .with_panel(graph(
            "Replica restarts", "Replica processes replaced (died or hung) per interval.",
            [query(f"sum by (instance, model) (increase(embed_replica_restarts_total{{{M}}}{RATE}))",
                   "{{instance}} {{model}}")],
            width=8, bars=True))
        .with_panel(graph(
            "Resident memory", "The server process and each replica process.",
            [query(f"process_resident_memory_bytes{{{T}}}", "{{instance}} server"),
             query(f"embed_replica_resident_memory_bytes{{{M}}}", "{{instance}} {{model}} replica {{replica}}")],
            "bytes", width=8))
        .with_panel(states(
            "Ready", "embed_ready per pod: loading and draining pods take no traffic.",
            f"embed_ready{{{T}}}", "{{instance}}", {"0": ("not ready", "red"), "1": ("ready", "green")}))
        .with_panel(graph(
            "Server CPU and file descriptors", "CPU of the server process (replica processes excluded) in "
            "cores; open file descriptors on the right axis.",
            [query(f"rate(process_cpu_seconds_total{{{T}}}{RATE})", "cpu {{instance}}"),
             query(f"process_open_fds{{{T}}}", "fds {{instance}}")],
            width=12)
            .override_by_regexp("^fds", [DynamicConfigValue("custom.axisPlacement", "right")]))
        .with_panel(info)
        .with_panel(single(
            "Model revisions", "Distinct fingerprints of the most mixed model: over 1 means two revisions "
            "serve at once.",
            f"max(count by (model) (count by (model, fingerprint) (embed_model_info{{{M}}})))",
            "short", [(None, "green"), (2, "red")], width=8, decimals=0).height(8))
    )  # fmt: skip


def build() -> dict[str, Any]:
    d = (
        db.Dashboard("embed-server")
        .uid("embed-server")
        .description("OpenAI-compatible embedding server: traffic, SLOs, per-stage latency, batching, queue, "
                     "cache, replicas. Generated by deploy/grafana/dashboard.py; edit that, not the JSON.")
        .tags(["embed-server"])
        .editable()
        .tooltip(DashboardCursorSync.CROSSHAIR)
        .time("now-3h", "now")
        .timezone("browser")
        .refresh("30s")
        .with_variable(
            db.DatasourceVariable("datasource")
            .label("Data source")
            .type("prometheus")
            .current(VariableOption(selected=True, text="Prometheus", value=DATASOURCE_UID))
        )
        .with_variable(variable("namespace", "Namespace", "label_values(embed_ready, namespace)"))
        .with_variable(variable("job", "Job", 'label_values(embed_ready{namespace=~"$namespace"}, job)'))
        .with_variable(variable(
            "instance", "Instance", 'label_values(embed_ready{namespace=~"$namespace", job=~"$job"}, instance)'))
        .with_variable(variable("model", "Model", f"label_values(embed_model_info{{{T}}}, model)"))
    )  # fmt: skip
    for section in (overview, slo, traffic, latency, batching, queue, cache, replicas):
        d = section(d)
    model = json.loads(json.dumps(d.build(), cls=JSONEncoder))
    for number, panel in enumerate(model["panels"], start=1):
        panel["id"] = number
    return model


def render() -> str:
    return json.dumps(build(), indent=2, sort_keys=True) + "\n"


def main(argv: Sequence[str]) -> int:
    text = render()
    if "--check" in argv:
        if OUTPUT.read_text(encoding="utf-8") != text:
            print(f"{OUTPUT} is stale: run python {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Deployment sizing: load one embedding deployment and find the highest load a pod serves within bounds.

    python -m loadtests --url http://127.0.0.1:8000 --scenario queries --mode sweep --rates auto --report out/

Modes: `closed` (N clients, each sends its next request when its last returns), `open` (Poisson
arrivals at `--rate`), `sweep` (open loop at each of `--rates`, or `auto`: multiplied until a
bound breaks). Writes report.md, results.json and PNG figures into `--report`.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import resource
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from loadtests.loadgen import TRANSPORT_ERRORS, Endpoint, fetch
from loadtests.sizing.knee import Bounds, find_knee
from loadtests.sizing.report import RunInfo, write_report
from loadtests.sizing.scenarios import KIND_NAMES, SCENARIOS, RequestStream, Scenario
from loadtests.sizing.server_stats import MetricsWatcher
from loadtests.sizing.steps import Step
from loadtests.sizing.sweep import AutoSweep, Sizer, StepSettings


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m loadtests", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    target = parser.add_argument_group("target")
    target.add_argument("--url", required=True, help="base URL of one deployment (one pod for per-pod numbers)")
    target.add_argument("--model", help="model name to request (default: the first one /v1/models lists)")
    target.add_argument("--api-key", help="bearer key, if the deployment requires one")
    target.add_argument("--metrics-path", default="/metrics", help="Prometheus page, relative to --url (%(default)s)")
    target.add_argument("--no-metrics", action="store_true", help="do not scrape the server's /metrics")

    load = parser.add_argument_group("load")
    load.add_argument("--scenario", choices=SCENARIOS, default="queries", help="traffic shape (%(default)s)")
    load.add_argument(
        "--mode", choices=("closed", "open", "sweep"), default="sweep", help="how load is applied (%(default)s)"
    )
    load.add_argument(
        "--clients", default="8", help="closed loop: concurrent clients, or a comma list of steps (%(default)s)"
    )
    load.add_argument("--rate", type=float, help="open loop: requests per second")
    load.add_argument(
        "--rates", default="auto", help="sweep: comma list of requests per second, or 'auto' (%(default)s)"
    )
    load.add_argument("--start-rate", type=float, help="auto sweep: first rate (default: 1/8 of the warm-up's)")
    load.add_argument(
        "--factor", type=float, default=2.0, help="auto sweep: rate multiplier between steps (%(default)s)"
    )
    load.add_argument("--max-steps", type=int, default=10, help="auto sweep: most steps before refining (%(default)s)")
    load.add_argument(
        "--refine", type=int, default=2, help="auto sweep: extra steps between knee and break (%(default)s)"
    )
    load.add_argument("--duration", type=float, default=20.0, help="seconds per step (%(default)s)")
    load.add_argument(
        "--warmup", type=float, default=5.0, help="seconds of closed-loop load before the first step (%(default)s)"
    )
    load.add_argument(
        "--timeout", type=float, default=10.0, help="seconds before a request counts as timed out (%(default)s)"
    )
    load.add_argument("--max-connections", type=int, default=512, help="open loop: connection pool cap (%(default)s)")
    load.add_argument("--seed", type=int, default=0, help="schedules and texts (%(default)s)")

    body = parser.add_argument_group("request bodies")
    body.add_argument(
        "--query-share", type=float, default=0.8, help="mixed: fraction of requests that are queries (%(default)s)"
    )
    body.add_argument("--passages", type=int, default=32, help="ingestion: passages per request (%(default)s)")
    body.add_argument(
        "--passage-chars", type=int, default=600, help="ingestion: least characters per passage (%(default)s)"
    )
    body.add_argument(
        "--encoding-format",
        choices=("base64", "float"),
        default="base64",
        help="%(default)s: what the openai SDK sends by default",
    )
    body.add_argument("--cache", action="store_true", help='allow result-cache hits (omit "cache": false)')

    bounds = parser.add_argument_group("bounds (the knee)")
    bounds.add_argument("--slo-p99-ms", type=float, default=500.0, help="p99 latency bound (%(default)s)")
    bounds.add_argument("--slo-kind", choices=KIND_NAMES, help="mixed: hold only this request kind to the p99 bound")
    bounds.add_argument(
        "--max-failure-rate",
        type=float,
        default=0.01,
        help="429s, errors and timeouts over requests sent (%(default)s)",
    )
    bounds.add_argument(
        "--min-throughput-ratio", type=float, default=0.9, help="open loop: achieved over offered rate (%(default)s)"
    )

    parser.add_argument("--report", type=Path, required=True, help="directory for report.md, results.json, PNGs")
    args = parser.parse_args(argv)
    if args.mode == "open" and args.rate is None:
        parser.error("--mode open needs --rate")
    return args


def _rates(text: str) -> list[float]:
    """A comma list of positive numbers, ascending."""
    try:
        values = sorted(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        values = []
    if not values or values[0] <= 0:
        raise SystemExit(f"expected a comma list of positive numbers, got {text!r}")
    return values


def _counts(text: str) -> list[int]:
    values = _rates(text)
    if not all(value.is_integer() for value in values):
        raise SystemExit(f"expected a comma list of whole numbers, got {text!r}")
    return [int(value) for value in values]


async def resolve_model(endpoint: Endpoint, requested: str | None) -> tuple[str, str]:
    """(name to request, name the server labels its metrics with) from /v1/models."""
    try:
        reply = await fetch(endpoint, "/v1/models")
    except (TimeoutError, *TRANSPORT_ERRORS) as error:
        raise SystemExit(f"{endpoint.url}/v1/models: {error!r}") from error
    if reply.status != 200:
        raise SystemExit(f"{endpoint.url}/v1/models answered {reply.status}: {reply.body[:200]!r}")
    models = json.loads(reply.body)["data"]
    if requested is None:
        if not models:
            raise SystemExit(f"{endpoint.url}/v1/models lists no model")
        requested = models[0]["id"]
    for entry in models:
        if entry["id"] == requested:
            return requested, entry.get("root") or requested
    return requested, requested


async def run(args: argparse.Namespace, argv: Sequence[str]) -> tuple[RunInfo, list[Step]]:
    endpoint = Endpoint.from_url(args.url, args.api_key)
    model, metrics_model = await resolve_model(endpoint, args.model)
    scenario = Scenario.named(
        args.scenario, query_share=args.query_share, passages=args.passages, passage_chars=args.passage_chars
    )
    stream = RequestStream(
        scenario, endpoint, model=model, seed=args.seed, cache=args.cache, encoding_format=args.encoding_format
    )
    watcher = None
    if not args.no_metrics:
        watcher = MetricsWatcher(endpoint, metrics_model, path=args.metrics_path)
        if await watcher.scrape() is None:
            print(f"warning: {endpoint.url}{args.metrics_path} unreadable; no server-side numbers", file=sys.stderr)
            watcher = None
    settings = StepSettings(args.duration, args.timeout, args.max_connections, args.seed)
    sizer = Sizer(endpoint, stream, watcher, settings, log=lambda line: print(line, flush=True))
    started = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    await sizer.warm_up(args.warmup)
    if args.mode == "closed":
        steps = await sizer.clients(_counts(args.clients))
    elif args.mode == "open":
        steps = [await sizer.open_step(args.rate)]
    elif args.rates.strip().lower() == "auto":
        plan = AutoSweep(args.start_rate, args.factor, args.max_steps, args.refine)
        steps = await sizer.auto(plan, _bounds(args))
    else:
        steps = await sizer.rates(_rates(args.rates))
    settings_json = {
        key: getattr(args, key)
        for key in (
            "duration",
            "warmup",
            "timeout",
            "max_connections",
            "seed",
            "cache",
            "encoding_format",
            "clients",
            "rate",
            "rates",
            "start_rate",
            "factor",
            "max_steps",
            "refine",
        )
    }
    info = RunInfo(
        url=endpoint.url,
        model=model,
        scenario=scenario.name,
        scenario_description=scenario.describe(),
        mode=args.mode,
        started=started,
        command=shlex.join(["python", "-m", "loadtests", *_redacted(argv)]),
        settings=settings_json,
        metrics_available=watcher is not None,
        warmup_rps=sizer.warmup_rps,
    )
    return info, steps


def _bounds(args: argparse.Namespace) -> Bounds:
    return Bounds(args.slo_p99_ms, args.max_failure_rate, args.min_throughput_ratio, args.slo_kind)


def _redacted(argv: Sequence[str]) -> list[str]:
    """The command line for the report, without the API key."""
    out = list(argv)
    for index, part in enumerate(out):
        if part == "--api-key" and index + 1 < len(out):
            out[index + 1] = "***"
        elif part.startswith("--api-key="):
            out[index] = "--api-key=***"
    return out


def _raise_open_files_limit() -> None:
    """The open loop may hold hundreds of connections: lift the soft descriptor limit to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _loop_factory():  # type: ignore[no-untyped-def]
    try:
        import uvloop  # leaner per-request overhead: the generator shares the CPU with what it measures
    except ImportError:
        return None
    return uvloop.new_event_loop


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    _raise_open_files_limit()
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        info, steps = runner.run(run(args, argv))
    bounds = _bounds(args)
    knee = find_knee(steps, bounds)
    path = write_report(args.report, info, steps, bounds, knee)
    if knee.step is not None:
        print(
            f"knee: {knee.step.label} ({knee.step.achieved_rps:,.1f} req/s achieved)"
            + (
                f"; broke at {knee.broken.label}: {'; '.join(knee.reasons)}"
                if knee.broken
                else "; no step broke the bounds"
            )
        )
    else:
        print(f"no step kept the bounds: {'; '.join(knee.reasons)}")
    print(f"report: {path}")


if __name__ == "__main__":
    main()

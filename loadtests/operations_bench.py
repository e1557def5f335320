"""What operating the server costs, and how it holds up (docs/benchmarks.md, "Operations").

    python loadtests/operations_bench.py cost [--rounds 3 --duration 20] [--before-tree /tmp/before]
    python loadtests/operations_bench.py soak [--minutes 10]
    python loadtests/operations_bench.py overload [--factor 3 --duration 60]

cost: 32 closed-loop clients of one input each, every input distinct and computed (`cache:
false`, no local tier), against servers that differ in one thing each, all up at once and
measured in interleaved rounds: the default (tracing off, text logs), JSON access logs on,
tracing on (spans to a local OTLP sink), tenant rate limits through Redis, and optionally
the tree of an earlier commit (`--before-tree`, a git worktree) as the baseline of the
request layer itself. Ratios are per round, medians reported.

soak: the default server, cache off, 32 x 1 for `--minutes`: resident memory of the server
and its replica processes sampled every 10 s; growth after the first minute.

overload: the closed-loop capacity (32 x 1), then Poisson arrivals at `--factor` times it
(open loop): only 200 and 429 are allowed, and the p99 of accepted requests is bounded by the
queue-wait limit (`--max-queue-wait-s`, given to the server).
"""

from __future__ import annotations

import argparse
import asyncio
import http.server
import json
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from loadtests.loadgen import Endpoint, Request, run_closed_loop, stsb_sentences
from loadtests.serving_bench import ROOT, _env, wait_ready
from loadtests.sizing.openloop import poisson_offsets, run_open_loop
from tests.helpers import free_port
from tests.redis_server import RedisProcess

API_KEY = "bench-key"


class Server:
    def __init__(self, name: str, flags: list[str], tree: Path = ROOT, dtype: str = "float32") -> None:
        self.name = name
        self.port = free_port()
        command = [sys.executable, "-m", "server", "serve", "--port", str(self.port), "--dtype", dtype,
                   "--log-level", "warning", "--local-cache-mb", "0", *flags]  # fmt: skip
        # The access log goes to a file, as it would to a log collector, not to this terminal.
        self.log = tempfile.NamedTemporaryFile(prefix=f"ops-{name}-", suffix=".log", delete=False)  # noqa: SIM115
        self.process = subprocess.Popen(command, cwd=tree, env=_env(), stdout=self.log, stderr=self.log)
        wait_ready(self.process, f"http://127.0.0.1:{self.port}/ready")

    def rss_mb(self) -> float:
        parent = psutil.Process(self.process.pid)
        return sum(p.memory_info().rss for p in [parent, *parent.children(recursive=True)]) / 2**20

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=60)


def requests_for(endpoint: Endpoint, count: int, salt: str) -> list[Request]:
    sentences = stsb_sentences()
    return [Request(endpoint.post({"input": f"{salt}{i} {sentences[i % len(sentences)]}", "cache": False}))
            for i in range(count)]  # fmt: skip


def closed_loop(server: Server, seconds: float, salt: str, api_key: str | None = None) -> dict[str, float]:
    endpoint = Endpoint("127.0.0.1", server.port, api_key=api_key)
    run = asyncio.run(run_closed_loop(endpoint, requests_for(endpoint, 100_000, salt), clients=32,
                                      duration=seconds, warmup=2.0))  # fmt: skip
    ok = [s for s in run.samples if s.status == 200]
    latencies = sorted(s.latency for s in ok)
    return {
        "inputs_per_s": len(ok) / run.elapsed,
        "errors": len(run.samples) - len(ok),
        "p50_ms": 1000 * latencies[len(latencies) // 2] if latencies else float("nan"),
    }


class OtlpSink(http.server.ThreadingHTTPServer):
    """Accepts OTLP/HTTP exports and counts them (a collector stand-in)."""

    def __init__(self) -> None:
        sink = self
        self.exports = 0

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length", 0)))
                sink.exports += 1
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        super().__init__(("127.0.0.1", free_port()), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()


def cost(args: argparse.Namespace) -> dict:
    redis = RedisProcess().start()
    sink = OtlpSink()
    keys = Path(tempfile.mkdtemp()) / "api-keys.yaml"
    keys.write_text(json.dumps({"tenants": {"bench": {"keys": [API_KEY], "requests_per_minute": 10_000_000,
                                                      "tokens_per_minute": 10_000_000_000}}}))  # fmt: skip
    configs: list[tuple[str, list[str], Path, str | None]] = [
        ("default", [], ROOT, None),
        ("json access log", ["--log-format", "json", "--access-log"], ROOT, None),
        ("tracing", ["--otlp-endpoint", f"http://127.0.0.1:{sink.server_port}"], ROOT, None),
        ("rate limits (Redis)", ["--api-keys-file", str(keys), "--redis-url", redis.url], ROOT, API_KEY),
    ]
    if args.before_tree:
        configs.insert(0, ("before", [], Path(args.before_tree), None))
    servers = {name: (Server(name, flags, tree), key) for name, flags, tree, key in configs}
    rounds: list[dict[str, dict[str, float]]] = []
    try:
        for index in range(args.rounds):
            order = list(servers)[index % len(servers) :] + list(servers)[: index % len(servers)]
            result = {}
            for name in order:
                server, key = servers[name]
                result[name] = closed_loop(server, args.duration, f"r{index}-{name}-", key)
                print(f"round {index + 1} {name}: {result[name]}", flush=True)
            rounds.append(result)
    finally:
        for server, _ in servers.values():
            server.stop()
        redis.stop()
        sink.shutdown()
    summary = {}
    for name in servers:
        summary[name] = {
            "inputs_per_s": statistics.median(r[name]["inputs_per_s"] for r in rounds),
            "vs_default": statistics.median(r[name]["inputs_per_s"] / r["default"]["inputs_per_s"] for r in rounds),
            "per_round_vs_default": [round(r[name]["inputs_per_s"] / r["default"]["inputs_per_s"], 3) for r in rounds],
            "errors": sum(r[name]["errors"] for r in rounds),
        }
    summary["otlp_exports"] = sink.exports
    return {"rounds": rounds, "summary": summary}


def soak(args: argparse.Namespace) -> dict:
    server = Server("soak", [])
    samples: list[tuple[float, float]] = []
    stop = threading.Event()

    def sample() -> None:
        started = time.monotonic()
        while not stop.wait(10):
            samples.append((time.monotonic() - started, server.rss_mb()))
            print(f"{samples[-1][0]:.0f}s rss {samples[-1][1]:.0f} MB", flush=True)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        load = closed_loop(server, args.minutes * 60, "soak-")
    finally:
        stop.set()
        sampler.join()
        server.stop()
    warm = next(rss for at, rss in samples if at >= 60)
    return {"load": load, "rss_mb": samples, "warm_mb": warm, "end_mb": samples[-1][1],
            "growth": samples[-1][1] / warm - 1}  # fmt: skip


def overload(args: argparse.Namespace) -> dict:
    server = Server("overload", ["--max-queue-wait-s", str(args.max_queue_wait_s)])
    try:
        capacity = closed_loop(server, 15, "capacity-")
        rate = args.factor * capacity["inputs_per_s"]
        endpoint = Endpoint("127.0.0.1", server.port)
        offsets = poisson_offsets(rate, args.duration, random.Random(0))
        requests = requests_for(endpoint, len(offsets), "over-")
        run = asyncio.run(run_open_loop(endpoint, requests, offsets, duration=args.duration, timeout=120))
    finally:
        server.stop()
    statuses = Counter(sample.status for sample in run.samples)
    accepted = sorted(s.latency for s in run.samples if s.status == 200)
    return {
        "capacity_per_s": capacity["inputs_per_s"],
        "offered_per_s": rate,
        "statuses": dict(statuses),
        "accepted_per_s": len(accepted) / args.duration,
        "accepted_p50_s": accepted[len(accepted) // 2],
        "accepted_p99_s": accepted[int(0.99 * (len(accepted) - 1))],
        "max_queue_wait_s": args.max_queue_wait_s,
        "generator_peak_connections": run.peak_connections,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    modes = parser.add_subparsers(dest="mode", required=True)
    cost_parser = modes.add_parser("cost")
    cost_parser.add_argument("--rounds", type=int, default=3)
    cost_parser.add_argument("--duration", type=float, default=20)
    cost_parser.add_argument("--before-tree", help="a checkout of an earlier commit, run as the 'before' server")
    soak_parser = modes.add_parser("soak")
    soak_parser.add_argument("--minutes", type=float, default=10)
    overload_parser = modes.add_parser("overload")
    overload_parser.add_argument("--factor", type=float, default=3)
    overload_parser.add_argument("--duration", type=float, default=60)
    overload_parser.add_argument("--max-queue-wait-s", type=float, default=2.0)
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args()
    result = {"cost": cost, "soak": soak, "overload": overload}[args.mode](args)
    print(json.dumps(result.get("summary", result), indent=1))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()

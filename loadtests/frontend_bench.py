"""CPU the server spends per request outside the forward pass, measured without the model.

    python loadtests/frontend_bench.py [--clients 32] [--inputs-per-request 1] [--duration 10]
    python loadtests/frontend_bench.py --unique --config "no cache=--local-cache-mb 0" \
        --config "local + Redis=--redis"      # what the result cache costs an all-miss workload

The real server (HTTP, validation, tokenization, cache, queue, worker pool, response body)
runs in a child process whose engines sleep as long as a forward pass would take
(`--forward-ms` per input, GIL released) and answer unit vectors, under the closed-loop load
generator. With no compute competing for the cores, the server process's CPU per request is
a stable figure for changes to the request path; on a 2-core box that CPU is taken from the
forward pass (see docs/benchmarks.md). The replica processes' pipe is not exercised: the
engines are replaced in the server process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import httpx
import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tree this script is in, not the installed one
from loadgen import build_request, request_bodies, run_load, stsb_sentences
from serving_bench import ROOT, _env, wait_ready

from models.engines.base import EngineOutput, PreparedBatch


def fake_forward(vector: np.ndarray, ms_per_input: float, batch: PreparedBatch) -> EngineOutput:
    """Unit vectors after sleeping as long as the model would compute (the GIL is released,
    like torch does), so batches form as under real load."""
    time.sleep(ms_per_input * batch.size / 1000)
    return EngineOutput(pooled=np.tile(vector, (batch.size, 1)), span_sums=[None] * batch.size)


def serve(port: int, forward_ms: float, server_args: list[str]) -> None:
    """Child: the real app with fake engines."""
    import uvicorn

    from server.app import create_app
    from server.cli import build_parser
    from server.settings import ServerSettings

    args = vars(build_parser().parse_args(["serve", "--port", str(port), "--log-level", "warning", *server_args]))
    args.pop("command")
    app = create_app(ServerSettings(**args))
    state = app.state.server

    @app.get("/instant")
    async def instant() -> dict[str, bool]:
        """Once the models are loaded, swap every engine's forward pass for an instant answer."""
        if state.ready and not getattr(app.state, "instant", False):
            for runtime in state.registry.runtimes:
                for engine in runtime._engines:
                    ones = np.ones(engine.hidden_size, dtype=np.float32)
                    engine.run = partial(fake_forward, ones, forward_ms)  # type: ignore[method-assign]
            app.state.instant = True
        return {"ready": bool(getattr(app.state, "instant", False))}

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", loop="uvloop", http="httptools")


def measure(args: argparse.Namespace, server_args: list[str], texts: list[str]) -> dict:
    port, clients, per_request = args.port, args.clients, args.inputs_per_request
    command = [sys.executable, __file__, "--serve", str(port), "--forward-ms", str(args.forward_ms), "--", *server_args]
    process = subprocess.Popen(command, cwd=ROOT, env=_env())
    wait_ready(process, f"http://127.0.0.1:{port}/ready")
    while not httpx.get(f"http://127.0.0.1:{port}/instant").json()["ready"]:
        time.sleep(0.1)
    try:
        bodies = request_bodies(texts, model="all-MiniLM-L6-v2", inputs_per_request=per_request)
        raw = [build_request("127.0.0.1", port, body) for body in bodies]
        server = psutil.Process(process.pid)
        cpu = sum(server.cpu_times()[:2])
        started = time.perf_counter()
        result = asyncio.run(run_load("127.0.0.1", port, raw, clients=clients, inputs_per_request=per_request,
                                      duration=args.duration, warmup=2))  # fmt: skip
        wall = time.perf_counter() - started
        cpu = sum(server.cpu_times()[:2]) - cpu
    finally:
        process.terminate()
        process.wait(timeout=60)
    summary = result.summary()
    # The CPU window also holds the warm-up: count its requests at the measured rate.
    summary["server_cpu_us_per_request"] = round(cpu / (result.requests * wall / args.duration) * 1e6, 1)
    summary["server_cores"] = round(cpu / wall, 2)
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--inputs-per-request", type=int, default=1)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--forward-ms", type=float, default=2.5, help="fake forward time per input")
    parser.add_argument("--port", type=int, default=8361)
    parser.add_argument("--redis-port", type=int, default=8362)
    parser.add_argument("--unique", action="store_true", help="every input distinct (an all-miss cache workload)")
    parser.add_argument(
        "--config", action="append", default=[], metavar="NAME=FLAGS",
        help="a server configuration to compare (repeatable); the flag --redis stands for this script's own "
        "redis-server, emptied before each run. Default: one configuration with the cache off",
    )  # fmt: skip
    parser.add_argument("server_args", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.forward_ms, args.server_args)
        return
    configs = [tuple(config.split("=", 1)) for config in args.config] or [("cache off", "--local-cache-mb 0")]
    sentences = stsb_sentences()
    texts = [f"{s} ({i})" for i, s in enumerate(sentences * 20)] if args.unique else sentences
    redis = None
    if any("--redis" in flags.split() for _, flags in configs):
        redis = subprocess.Popen(["redis-server", "--port", str(args.redis_port), "--save", "", "--appendonly", "no",
                                  "--bind", "127.0.0.1"], stdout=subprocess.DEVNULL)  # fmt: skip
    redis_url = f"redis://127.0.0.1:{args.redis_port}/0"
    results: dict[str, list[dict]] = {name: [] for name, _ in configs}
    try:
        for _ in range(args.rounds):
            for name, flags in configs:
                if redis is not None:
                    subprocess.run(["redis-cli", "-p", str(args.redis_port), "flushall"], capture_output=True)
                server_args = [part for flag in flags.split() for part in (["--redis-url", redis_url]
                               if flag == "--redis" else [flag])]  # fmt: skip
                summary = measure(args, server_args, texts)
                results[name].append(summary)
                print(json.dumps({"config": name, **summary}), flush=True)
    finally:
        if redis is not None:
            redis.kill()
    for name, rows in results.items():
        cpu = statistics.median(row["server_cpu_us_per_request"] for row in rows)
        rate = statistics.median(row["inputs_per_s"] for row in rows)
        print(f"{name}: median server CPU {cpu:.0f} us/request, {rate:.0f} inputs/s")


if __name__ == "__main__":
    main()

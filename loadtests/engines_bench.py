"""Engines benchmark: our server with the torch engine, our server with the vLLM engine, and
vLLM's own OpenAI server on the same model and dtype, under the serving benchmark's
scenarios, in one run.

    python loadtests/engines_bench.py --rounds 3

Servers run one at a time, each alone on the machine, in interleaved rounds (A B C, A B C,
...): this box drifts by tens of percent over minutes, so each round's ratios compare
servers measured minutes apart, and the summary takes the median ratio over rounds.

vLLM's CPU backend keeps one core for its scheduler by default (`VLLM_CPU_OMP_THREADS_BIND`
auto: on this 2-core box the model gets one OpenMP thread); it also runs with both cores
bound (`0-N`). Both configurations are measured and the ratios are taken against the faster
one in each round. vLLM's server runs as `python -m vllm.entrypoints.openai.api_server
--runner pooling` (its `vllm` console script looks for a distribution named `vllm` and fails
with vllm-cpu).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from loadgen import build_request, native_dtype, request_bodies, run_load, stsb_sentences
from serving_bench import SCENARIOS, start_server, wait_ready

ROOT = Path(__file__).resolve().parents[1]
ALL_CORES = f"0-{(os.cpu_count() or 1) - 1}"
OURS = ("ours, torch engine", "ours, vllm engine")


def start_vllm_server(port: int, dtype: str, model_dir: str, bind: str | None) -> subprocess.Popen[bytes]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_NO_USAGE_STATS": "1"}
    if bind:
        env["VLLM_CPU_OMP_THREADS_BIND"] = bind
    command = [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", model_dir,
        "--served-model-name", "all-MiniLM-L6-v2", "--runner", "pooling", "--dtype", dtype,
        "--max-model-len", "256", "--enforce-eager", "--pooler-config", '{"pooling_type": "MEAN"}',
        "--host", "127.0.0.1", "--port", str(port), "--disable-log-stats", "--disable-uvicorn-access-log",
    ]  # fmt: skip
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return wait_ready(process, f"http://127.0.0.1:{port}/health")


def scenarios(port: int, sentences: list[str], duration: float) -> list[dict[str, float | int]]:
    results = []
    for _, clients, per_request in SCENARIOS:
        bodies = request_bodies(sentences, model="all-MiniLM-L6-v2", inputs_per_request=per_request)
        raw = [build_request("127.0.0.1", port, body) for body in bodies]
        results.append(asyncio.run(run_load("127.0.0.1", port, raw, clients=clients,
                                            inputs_per_request=per_request, duration=duration)).summary())  # fmt: skip
    return results


def servers(args: argparse.Namespace, model_dir: str) -> dict[str, Callable[[], subprocess.Popen[bytes]]]:
    ours = ["--local-cache-mb", "0", *args.server_arg]
    configs = [("ours, torch engine", "--engine torch")]
    if not args.no_vllm:
        configs.append(("ours, vllm engine", "--engine vllm"))
    configs += [tuple(config.split("=", 1)) for config in args.config]  # type: ignore[misc]
    starters: dict[str, Callable[[], subprocess.Popen[bytes]]] = {
        f"ours, {name}" if not name.startswith("ours") else name: partial(
            start_server, args.port, args.dtype, [*ours, *flags.split()]
        )
        for name, flags in configs
    }
    if not args.no_vllm:
        starters["vLLM OpenAI server (1 core bound)"] = partial(
            start_vllm_server, args.port, args.dtype, model_dir, None
        )
        starters[f"vLLM OpenAI server (cores {ALL_CORES} bound)"] = partial(
            start_vllm_server, args.port, args.dtype, model_dir, ALL_CORES
        )
    return starters


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dtype", default=native_dtype(), choices=["bfloat16", "float32"])
    parser.add_argument("--duration", type=float, default=12.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--port", type=int, default=8341)
    parser.add_argument("--server-arg", action="append", default=[], help="extra flag for our server")
    parser.add_argument(
        "--config", action="append", default=[], metavar="NAME=FLAGS",
        help="a further configuration of our server to measure (repeatable), "
        "e.g. 'torch 2x1=--workers 2 --torch-threads 1'",
    )  # fmt: skip
    parser.add_argument(
        "--no-vllm", action="store_true", help="only our torch engine and --config's: an A/B of configurations"
    )
    parser.add_argument("--out", type=Path, help="write every round's figures as JSON")
    args = parser.parse_args()

    from models.catalog import find_card
    from models.sources import resolve_source

    model_dir = str(resolve_source(find_card("all-MiniLM-L6-v2").source))
    sentences = stsb_sentences()
    starters = servers(args, model_dir)
    rounds: list[dict[str, list[dict[str, float | int]]]] = []
    for number in range(1, args.rounds + 1):
        rows = {}
        for name, start in starters.items():
            process = start()
            try:
                rows[name] = scenarios(args.port, sentences, args.duration)
            finally:
                process.terminate()
                process.wait(timeout=120)
        rounds.append(rows)
        print(f"round {number}: MiniLM {args.dtype}, STS-B sentences, {os.cpu_count()} cores; inputs/s (p50 ms)")
        print("| server | " + " | ".join(name for name, _, _ in SCENARIOS) + " |")
        print("|---|" + "---|" * len(SCENARIOS))
        for name, results in rows.items():
            cells = [f"{r['inputs_per_s']:.0f} ({r['p50_ms']})" + (f" {r['errors']} errors" if r["errors"] else "")
                     for r in results]  # fmt: skip
            print(f"| {name} | " + " | ".join(cells) + " |")
        print(flush=True)
    baseline = "best vLLM server" if not args.no_vllm else f"{OURS[0]}"
    for index, (scenario, _, _) in enumerate(SCENARIOS):
        for name in [name for name in starters if name.startswith("ours")]:
            ratios = []
            for rows in rounds:
                reference = (max(v[index]["inputs_per_s"] for k, v in rows.items() if k.startswith("vLLM"))
                             if not args.no_vllm else rows[OURS[0]][index]["inputs_per_s"])  # fmt: skip
                ratios.append(rows[name][index]["inputs_per_s"] / reference)
            print(f"{scenario}: {name} / {baseline}: rounds " + ", ".join(f"{r:.2f}" for r in ratios)
                  + f"; median {statistics.median(ratios):.2f}x")  # fmt: skip
    if args.out:
        args.out.write_text(
            json.dumps(
                {"dtype": args.dtype, "server_args": args.server_arg, "configs": args.config, "rounds": rounds},
                indent=1,
            )
        )


if __name__ == "__main__":
    main()

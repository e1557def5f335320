"""Result-cache benchmark: hot set (all hits) vs cold (all misses) under 32 concurrent
clients, the single cached request's latency, and what the cache costs an all-miss workload.

    python loadtests/cache_bench.py --dtype bfloat16

Starts its own redis-server on a free port. Runs, in one pass:
  1./2. alternated `--rounds` times on the same unique inputs (Redis emptied in between):
     no cache (--local-cache-mb 0, no Redis), the all-miss baseline; then local + Redis tiers,
     the all-miss cost of the cache
  3. local + Redis tiers, a warmed hot set: all hits (local tier)
  4. Redis tier only, a warmed hot set: all hits through Redis
  5. one client, one cached input per request: p50 / p99
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from loadgen import build_request, native_dtype, run_load, stsb_sentences
from serving_bench import start_server

ROOT = Path(__file__).resolve().parents[1]


def bodies(texts: list[str]) -> list[dict[str, object]]:
    return [{"input": text, "model": "all-MiniLM-L6-v2", "encoding_format": "float"} for text in texts]


def load(port: int, texts: list[str], clients: int, duration: float) -> dict[str, float | int]:
    raw = [build_request("127.0.0.1", port, body) for body in bodies(texts)]
    result = asyncio.run(run_load("127.0.0.1", port, raw, clients=clients, inputs_per_request=1,
                                  duration=duration, warmup=1.0))  # fmt: skip
    return result.summary()


def warm(port: int, texts: list[str]) -> None:
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
        for start in range(0, len(texts), 256):
            client.post("/v1/embeddings", json={"input": texts[start : start + 256]}).raise_for_status()
    time.sleep(1.0)  # Redis writes are off the response path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dtype", default=native_dtype(), choices=["bfloat16", "float32"])
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--port", type=int, default=8331)
    parser.add_argument("--redis-port", type=int, default=8332)
    parser.add_argument("--rounds", type=int, default=2, help="alternated no-cache / cache all-miss pairs")
    args = parser.parse_args()
    sentences = stsb_sentences()
    unique = [f"{sentence} ({index})" for index, sentence in enumerate(sentences * 20)]
    hot = sentences[:512]
    redis = subprocess.Popen(["redis-server", "--port", str(args.redis_port), "--save", "", "--appendonly", "no",
                              "--bind", "127.0.0.1", "--maxmemory-policy", "allkeys-lru"],
                             stdout=subprocess.DEVNULL)  # fmt: skip
    redis_url = f"redis://127.0.0.1:{args.redis_port}/0"
    rows = []
    try:
        time.sleep(0.5)

        def measure(name: str, flags: list[str], texts: list[str], warmed: bool) -> None:
            server = start_server(args.port, args.dtype, flags)
            try:
                if warmed:
                    warm(args.port, texts)
                rows.append((name, load(args.port, texts, 32, args.duration)))
                if warmed:
                    rows.append((name + ", 1 client", load(args.port, texts, 1, args.duration / 2)))
            finally:
                server.terminate()
                server.wait(timeout=60)

        # The all-miss cost: the same inputs with and without the cache, Redis emptied first,
        # alternated over rounds so the machine's drift hits both alike.
        for round_index in range(args.rounds):
            texts = unique[round_index :: args.rounds]
            measure(f"no cache, all misses (round {round_index + 1})", ["--local-cache-mb", "0"], texts, False)
            subprocess.run(["redis-cli", "-p", str(args.redis_port), "flushall"], check=True, capture_output=True)
            measure(f"local + Redis, all misses (round {round_index + 1})", ["--redis-url", redis_url], texts, False)
        measure("local + Redis, hot set (local hits)", ["--redis-url", redis_url], hot, True)
        measure("Redis only, hot set (Redis hits)", ["--redis-url", redis_url, "--local-cache-mb", "0"], hot, True)
    finally:
        redis.kill()
    print(f"MiniLM {args.dtype}, STS-B sentences, single-input requests")
    print("| scenario | clients | inputs/s | p50 ms | p99 ms | errors |")
    print("|---|---|---|---|---|---|")
    for name, result in rows:
        print(f"| {name} | {result['clients']} | {result['inputs_per_s']:.0f} | {result['p50_ms']} | "
              f"{result['p99_ms']} | {result['errors']} |")  # fmt: skip
    ratios = [rows[2 * r + 1][1]["inputs_per_s"] / rows[2 * r][1]["inputs_per_s"] for r in range(args.rounds)]
    print("all-miss cost of the cache per round: " + ", ".join(f"{100 * (1 - r):.1f}%" for r in ratios)
          + f"; mean {100 * (1 - sum(ratios) / len(ratios)):.1f}% throughput")  # fmt: skip
    print(json.dumps(rows))


if __name__ == "__main__":
    main()

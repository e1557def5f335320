"""CPU the result cache adds to an all-miss request, measured without the model.

    python loadtests/cache_cpu.py [--redis-url redis://127.0.0.1:6379/0]

`CachedCompute` with a compute that answers at the next loop turn, 32 concurrent request
loops, one distinct input each (every lookup misses, every result is stored): no cache, the
local tier alone, local + Redis. Reports event-loop CPU per request (process time), so the
cost is measured directly instead of as a small difference of two noisy throughputs.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import sys
import time
from pathlib import Path

import numpy as np
import uvloop
from prometheus_client import CollectorRegistry

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from models.engines.base import EngineInput
from server.cache.local import LocalCache
from server.cache.metrics import CacheMetrics
from server.cache.redis_tier import RedisCache
from server.cache.tiered import ResultCache
from server.cached_compute import CachedCompute

VEC = np.random.default_rng(0).standard_normal(384).astype(np.float32)
counter = itertools.count()


async def compute(payloads: list[EngineInput], abandon: object = None) -> list[np.ndarray]:
    await asyncio.sleep(0)  # one loop turn, like a batch's results coming back
    return [VEC for _ in payloads]


async def run(cache: ResultCache | None, requests: int = 20_000, clients: int = 32) -> tuple[float, float]:
    """(CPU, wall) microseconds per request; Redis writes drained inside the measurement."""
    cached = CachedCompute(compute, cache=cache, fingerprint=b"f" * 16, dimensions=384)

    async def client() -> None:
        for _ in range(requests // clients):
            i = next(counter)
            await cached.vectors([EngineInput([101, i % 30000, i // 30000, 102], 0)], use_cache=True, abandon=None)

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    if cache is not None and cache.redis is not None:
        await cache.redis.drain(10)
    return (time.process_time() - cpu) / requests * 1e6, (time.perf_counter() - wall) / requests * 1e6


async def main(url: str, rounds: int) -> None:
    metrics = CacheMetrics(CollectorRegistry())
    redis = RedisCache(url, key_prefix=f"cache-cpu-{time.time()}:", metrics=metrics)
    await redis.start()
    tiers = {
        "no cache": None,
        "local": ResultCache(LocalCache(256 << 20), None, CacheMetrics(CollectorRegistry())),
        "local + Redis": ResultCache(LocalCache(256 << 20), redis, metrics),
    }
    print("| round | cache | CPU us/request | wall us/request |")
    print("|---|---|---|---|")
    for round_index in range(rounds):
        for name, cache in tiers.items():
            cpu, wall = await run(cache)
            print(f"| {round_index + 1} | {name} | {cpu:.1f} | {wall:.1f} |", flush=True)
    lookups = rounds * 20_000
    print(f"Redis lookups {lookups}, MGETs sent for them {redis._reads.sent}")
    await redis.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    uvloop.run(main(args.redis_url, args.rounds))

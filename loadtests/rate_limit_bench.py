"""Rate-limiter cost per request: what admission, token charging and release add, with Redis on
loopback (one EVALSHA round trip per decision) and without it.

    python loadtests/rate_limit_bench.py --requests 10000 --json out/rate_limit.json

Starts its own redis-server on a free port and runs on uvloop, as the server does:
  1. one request at a time: latency of admit (EVALSHA), charge (EVALSHA) and a redis-py PING
     through the same pool (the client's floor), p50 / p99 per call
  2. 1, 8 and `--concurrency` requests at once on one event loop: requests/s, this process's
     CPU per request (admit + charge + release), the redis-server's CPU per request, and the
     script round trips per request
  3. the same without Redis (in-process store), for an unlimited tenant (no store at all), and
     for a tenant past its limit (refused in process until its retry-after)
Every other tenant here has limits far above the load, so every request is admitted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import redis
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from server.limits import RateLimiter
from server.tenants import Tenant
from tests.redis_server import RedisProcess

BIG = 10**12
LIMITED = Tenant("bench", requests_per_minute=BIG, tokens_per_minute=BIG, max_concurrent=1_000_000)
UNLIMITED = Tenant("open")
OVER_LIMIT = Tenant("over", requests_per_minute=1)
TOKENS = 37  # a short query's tokens


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def redis_cpu_s(client: redis.Redis) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_us": round(ordered[len(ordered) // 2] * 1e6, 1),
        "p99_us": round(ordered[int(len(ordered) * 0.99)] * 1e6, 1),
        "mean_us": round(statistics.fmean(ordered) * 1e6, 1),
    }


async def timed(call: Callable[[], Awaitable[object]], n: int) -> list[float]:
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        await call()
        samples.append(time.perf_counter() - started)
    return samples


async def one_request(limiter: RateLimiter, tenant: Tenant) -> None:
    admission = await limiter.admit(tenant)
    if not admission.allowed:
        assert tenant is OVER_LIMIT, admission.reason
        return
    await admission.charge_tokens(TOKENS)
    admission.headers()
    admission.release()


async def sequential(limiter: RateLimiter, n: int) -> dict[str, dict[str, float]]:
    """Per-call latency, one call in flight at a time."""
    admit_samples, charge_samples = [], []
    for _ in range(n):
        started = time.perf_counter()
        admission = await limiter.admit(LIMITED)
        admitted = time.perf_counter()
        await admission.charge_tokens(TOKENS)
        admit_samples.append(admitted - started)
        charge_samples.append(time.perf_counter() - admitted)
        admission.release()
    await limiter.flush()
    result = {"admit": percentiles(admit_samples), "charge": percentiles(charge_samples)}
    if limiter.redis is not None:
        client = limiter.redis.client
        result["ping (redis-py floor)"] = percentiles(await timed(client.ping, n))
    return result


async def concurrent(limiter: RateLimiter, tenant: Tenant, n: int, concurrency: int,
                     server: redis.Redis | None) -> dict[str, float]:  # fmt: skip
    """Requests/s and CPU per request with `concurrency` requests in flight on one loop."""
    remaining = n

    async def client() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await one_request(limiter, tenant)

    redis_before = redis_cpu_s(server) if server is not None else 0.0
    trips_before = limiter.redis.scripts.round_trips if limiter.redis is not None else 0
    cpu_before, started = cpu_s(), time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    await limiter.flush(30)
    elapsed, cpu = time.perf_counter() - started, cpu_s() - cpu_before
    result = {
        "requests_per_s": round(n / elapsed),
        "cpu_us_per_request": round(cpu / n * 1e6, 1),
    }
    if server is not None and limiter.redis is not None:
        result["redis_cpu_us_per_request"] = round((redis_cpu_s(server) - redis_before) / n * 1e6, 1)
        # admit + charge: 2 per request alone, fewer when concurrent requests share pipelines
        result["script_round_trips_per_request"] = round((limiter.redis.scripts.round_trips - trips_before) / n, 3)
    return result


async def run(args: argparse.Namespace) -> dict[str, object]:
    results: dict[str, object] = {}
    with RedisProcess() as process:
        server = redis.Redis.from_url(process.url)
        shared = RateLimiter(process.url, timeout_s=1.0)
        await shared.start()
        try:
            for _ in range(2):  # warm-up: connections, script cache, allocator
                await sequential(shared, min(1000, args.requests))
            results["sequential, Redis"] = await sequential(shared, args.requests)
            for concurrency in sorted({1, 8, args.concurrency}):
                results[f"{concurrency} concurrent, Redis"] = await concurrent(
                    shared, LIMITED, args.requests, concurrency, server
                )
            results[f"{args.concurrency} concurrent, tenant past its limit, Redis"] = await concurrent(
                shared, OVER_LIMIT, args.requests, args.concurrency, server
            )
        finally:
            await shared.close()
            server.close()
    local = RateLimiter(None)
    await sequential(local, 1000)
    results["sequential, in process"] = await sequential(local, args.requests)
    results[f"{args.concurrency} concurrent, in process"] = await concurrent(
        local, LIMITED, args.requests, args.concurrency, None
    )
    results[f"{args.concurrency} concurrent, unlimited tenant"] = await concurrent(
        local, UNLIMITED, args.requests, args.concurrency, None
    )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=10_000, help="requests per measurement (%(default)s)")
    parser.add_argument("--concurrency", type=int, default=64, help="requests in flight at once (%(default)s)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    results = uvloop.run(run(args))
    for name, values in results.items():
        print(f"{name}:")
        assert isinstance(values, dict)
        for key, value in values.items():
            print(f"  {key}: {value}")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()

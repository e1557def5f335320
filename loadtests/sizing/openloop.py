"""Open-loop load: requests sent at Poisson arrival times whatever the server's replies do.

Latency runs from each request's scheduled time, not from when a connection became free, so
a slow server shows up as latency instead of as fewer requests (no coordinated omission).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from loadtests.loadgen import (
    NO_REPLY,
    TIMED_OUT,
    TRANSPORT_ERRORS,
    ConnectionPool,
    Endpoint,
    Request,
    Sample,
    closed_before_reply,
)


def poisson_offsets(rate: float, duration: float, rng: random.Random) -> list[float]:
    """Arrival times (seconds from the start) of a Poisson process of `rate` per second over `duration`."""
    if rate <= 0:
        raise ValueError(f"rate must be positive, got {rate}")
    offsets: list[float] = []
    at = rng.expovariate(rate)
    while at < duration:
        offsets.append(at)
        at += rng.expovariate(rate)
    return offsets


@dataclass
class OpenLoopRun:
    samples: list[Sample]
    duration: float
    send_lag: list[float] = field(default_factory=list)  # how late the generator sent each request
    peak_connections: int = 0
    waited_for_connection: int = 0  # requests that found every connection busy at the cap


async def run_open_loop(
    endpoint: Endpoint,
    requests: Sequence[Request],
    offsets: Sequence[float],
    *,
    duration: float,
    max_connections: int = 512,
    timeout: float = 10.0,
) -> OpenLoopRun:
    """Send `requests[i]` at `offsets[i]` seconds; returns once every request is answered or timed out."""
    loop = asyncio.get_running_loop()
    pool = ConnectionPool(endpoint, max_connections)
    samples: list[Sample] = []
    lags: list[float] = []
    start = loop.time() + 0.05  # first sends are not late while the loop starts the first tasks

    async def send(request: Request, offset: float) -> None:
        due = start + offset
        status, head = await _exchange(pool, request.raw, due + timeout)
        samples.append(Sample(request.kind, request.inputs, offset, loop.time() - due, status, head))

    tasks: set[asyncio.Task[None]] = set()
    for request, offset in zip(requests, offsets, strict=True):
        delay = start + offset - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        lags.append(max(0.0, loop.time() - start - offset))
        task = asyncio.create_task(send(request, offset))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    while tasks:
        await asyncio.gather(*tasks)
    pool.close()
    return OpenLoopRun(samples, duration, lags, pool.peak, pool.waited)


async def _exchange(pool: ConnectionPool, raw: bytes, deadline: float) -> tuple[int, bytes]:
    try:
        async with asyncio.timeout_at(deadline):
            for attempt in range(2):
                connection = await pool.acquire()
                reused = connection.served > 0
                try:
                    reply = await connection.exchange(raw)
                except TRANSPORT_ERRORS as error:
                    pool.discard(connection)
                    if attempt == 0 and reused and closed_before_reply(error):
                        continue  # the server closed an idle keep-alive connection: resend on a new one
                    return NO_REPLY, b""
                except BaseException:
                    pool.discard(connection)  # timed out mid-request: the reply would arrive on a reused connection
                    raise
                if reply.keep_alive:
                    pool.release(connection)
                else:
                    pool.discard(connection)
                return reply.status, reply.head
    except TimeoutError:
        return TIMED_OUT, b""
    except TRANSPORT_ERRORS:  # could not connect
        return NO_REPLY, b""
    return NO_REPLY, b""

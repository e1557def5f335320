"""Coalescer: duplicates within and across requests computed once; a requester that leaves
neither fails the others nor keeps compute alive when nobody waits."""

from __future__ import annotations

import asyncio

import pytest

from server.scheduling.coalescer import Coalescer
from server.scheduling.pending import ClientDisconnectedError


class Compute:
    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.cancelled = 0

    async def __call__(self, payloads: list[str]) -> list[str]:
        self.calls.append(payloads)
        try:
            await self.gate.wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        if "boom" in payloads:
            raise RuntimeError("boom")
        return [p.upper() for p in payloads]


async def test_duplicates_in_one_request_are_computed_once() -> None:
    compute = Compute()
    coalescer: Coalescer[str, str] = Coalescer(compute)
    assert await coalescer.run(["a", "b", "a", "a"], ["a", "b", "a", "a"]) == ["A", "B", "A", "A"]
    assert compute.calls == [["a", "b"]] and len(coalescer) == 0


async def test_concurrent_identical_requests_share_one_computation() -> None:
    compute = Compute()
    compute.gate.clear()
    coalescer: Coalescer[str, str] = Coalescer(compute)
    runs = [asyncio.create_task(coalescer.run(["x", "y"], ["x", "y"])) for _ in range(16)]
    await asyncio.sleep(0)
    compute.gate.set()
    assert all(result == ["X", "Y"] for result in await asyncio.gather(*runs))
    assert compute.calls == [["x", "y"]] and coalescer.computed == 2


async def test_partial_overlap_computes_only_the_new_keys() -> None:
    compute = Compute()
    compute.gate.clear()
    coalescer: Coalescer[str, str] = Coalescer(compute)
    first = asyncio.create_task(coalescer.run(["p", "q"], ["p", "q"]))
    await asyncio.sleep(0)
    second = asyncio.create_task(coalescer.run(["q", "r"], ["q", "r"]))
    await asyncio.sleep(0)
    compute.gate.set()
    assert await first == ["P", "Q"] and await second == ["Q", "R"]
    assert compute.calls == [["p", "q"], ["r"]]


async def test_a_leaving_requester_does_not_fail_the_others() -> None:
    compute = Compute()
    compute.gate.clear()
    coalescer: Coalescer[str, str] = Coalescer(compute)
    gone = asyncio.get_running_loop().create_future()
    leaver = asyncio.create_task(coalescer.run(["k"], ["k"], abandon=gone))
    await asyncio.sleep(0)
    stayer = asyncio.create_task(coalescer.run(["k"], ["k"]))
    await asyncio.sleep(0)
    gone.set_result(None)
    with pytest.raises(ClientDisconnectedError):
        await leaver
    compute.gate.set()
    assert await stayer == ["K"]
    assert compute.cancelled == 0 and len(compute.calls) == 1


async def test_computation_nobody_waits_for_is_cancelled() -> None:
    compute = Compute()
    compute.gate.clear()
    coalescer: Coalescer[str, str] = Coalescer(compute)
    gone = asyncio.get_running_loop().create_future()
    leaver = asyncio.create_task(coalescer.run(["z"], ["z"], abandon=gone))
    await asyncio.sleep(0)
    gone.set_result(None)
    with pytest.raises(ClientDisconnectedError):
        await leaver
    await asyncio.sleep(0)
    assert compute.cancelled == 1 and len(coalescer) == 0
    compute.gate.set()
    assert await coalescer.run(["z"], ["z"]) == ["Z"]  # a later request starts afresh


async def test_failure_reaches_every_waiter_then_clears() -> None:
    compute = Compute()
    compute.gate.clear()
    coalescer: Coalescer[str, str] = Coalescer(compute)
    runs = [asyncio.create_task(coalescer.run(["boom"], ["boom"])) for _ in range(3)]
    await asyncio.sleep(0)
    compute.gate.set()
    results = await asyncio.gather(*runs, return_exceptions=True)
    assert all(isinstance(result, RuntimeError) for result in results)
    assert len(coalescer) == 0

"""WorkerPool with a fake engine: delivery, failure isolation, cancellation, prefetch, drain."""

from __future__ import annotations

import asyncio
import threading

import pytest

from models.engines.base import EngineInput
from models.errors import EngineError
from server.metrics import Metrics
from server.scheduling.batch_queue import BatchQueue
from server.scheduling.pending import PendingRequest, QueuedInput
from server.scheduling.worker_pool import WorkerPool
from tests.server.scheduling.fakes import POISON, FakeEngine


class Harness:
    def __init__(self, engines: list[FakeEngine], **queue_args: int) -> None:
        self.queue = BatchQueue(**{"max_batch_tokens": 10_000, "max_batch_size": 64, "max_queue_tokens": 100_000,
                                   **queue_args})  # fmt: skip
        self.pool = WorkerPool("fake", engines, self.queue, loop=asyncio.get_running_loop(), metrics=Metrics())
        self.pool.start()

    def submit(self, *sequences: list[int]) -> tuple[PendingRequest, list[QueuedInput]]:
        request = PendingRequest(asyncio.get_running_loop(), len(sequences))
        items = [QueuedInput(EngineInput(ids), request, slot, len(ids)) for slot, ids in enumerate(sequences)]
        assert self.queue.put(items)
        return request, items

    async def stop(self) -> None:
        await asyncio.to_thread(self.pool.drain_and_stop, 10)


async def test_results_arrive_in_input_order() -> None:
    engine = FakeEngine()
    harness = Harness([engine])
    first, _ = harness.submit([1, 2, 3], [4], [5, 5])
    second, _ = harness.submit([7] * 10)
    assert [list(v) for v in await first.future] == [[6, 3], [4, 1], [10, 2]]
    assert [list(v) for v in await second.future] == [[70, 10]]
    await harness.stop()


async def test_one_bad_input_fails_alone() -> None:
    engine = FakeEngine()
    harness = Harness([engine])
    # Queue everything while the engine is held, so all land in one batch.
    engine.gate = threading.Event()
    warm, _ = harness.submit([9])
    await asyncio.to_thread(engine.running.wait, 5)
    good, _ = harness.submit([1], [2])
    bad, _ = harness.submit([3, POISON])
    other, _ = harness.submit([4])
    engine.gate.set()
    assert len(await warm.future) == 1
    assert [list(v) for v in await good.future] == [[1, 1], [2, 1]]
    assert [list(v) for v in await other.future] == [[4, 1]]
    with pytest.raises(EngineError):
        await bad.future
    assert any(len(batch) == 4 for batch in engine.batches)  # they did share a batch first
    await harness.stop()


async def test_engine_failure_reaches_every_waiter() -> None:
    harness = Harness([FakeEngine(always_fail=True)])
    requests = [harness.submit([i], [i + 1])[0] for i in range(5)]
    results = await asyncio.gather(*(request.future for request in requests), return_exceptions=True)
    assert all(isinstance(result, EngineError) for result in results)
    await harness.stop()


async def test_cancelled_request_costs_no_compute() -> None:
    engine = FakeEngine()
    harness = Harness([engine], max_batch_size=1)
    engine.gate = threading.Event()
    blocker, _ = harness.submit([1])
    await asyncio.to_thread(engine.running.wait, 5)
    cancelled, items = harness.submit([42], [43], [44])
    cancelled.cancelled = True
    harness.queue.discard(items)
    kept, _ = harness.submit([5])
    engine.gate.set()
    await blocker.future
    await kept.future
    assert [42] not in engine.seen and [43] not in engine.seen and [44] not in engine.seen
    await harness.stop()


async def test_prefetched_batch_is_topped_up_with_later_arrivals() -> None:
    engine = FakeEngine()
    harness = Harness([engine])
    engine.gate = threading.Event()
    running, _ = harness.submit([1])
    await asyncio.to_thread(engine.running.wait, 5)
    early, _ = harness.submit([2])  # taken and prepared by the former while [1] runs
    await asyncio.sleep(0.05)
    late = [harness.submit([3 + i])[0] for i in range(5)]  # arrive after the prefetch
    engine.gate.set()
    await asyncio.gather(running.future, early.future, *(r.future for r in late))
    assert engine.batches[1] == [[2], [3], [4], [5], [6], [7]]
    await harness.stop()


async def test_replicas_share_the_queue() -> None:
    engines = [FakeEngine(), FakeEngine()]
    for engine in engines:
        engine.gate = threading.Event()
    harness = Harness(engines, max_batch_size=1)
    requests = [harness.submit([i])[0] for i in range(1, 4)]
    await asyncio.to_thread(engines[0].running.wait, 5)
    await asyncio.to_thread(engines[1].running.wait, 5)  # both replicas busy at once
    for engine in engines:
        engine.gate.set()
    await asyncio.gather(*(request.future for request in requests))
    assert sorted(ids for engine in engines for ids in engine.seen) == [[1], [2], [3]]
    await harness.stop()


async def test_idle_replicas_split_a_burst() -> None:
    # Closed-loop clients come back together: one greedy batch would leave the other replica idle.
    engines = [FakeEngine(), FakeEngine()]
    gate = threading.Event()
    for engine in engines:
        engine.gate = gate
    harness = Harness(engines)
    await asyncio.sleep(0.1)  # both replicas idle, waiting for work
    request, _ = harness.submit(*[[i] for i in range(1, 33)])  # queued at once
    await asyncio.to_thread(engines[0].running.wait, 5)
    await asyncio.to_thread(engines[1].running.wait, 5)
    gate.set()
    await request.future
    assert sorted(len(engine.batches[0]) for engine in engines) == [16, 16]
    await harness.stop()


async def test_under_light_load_the_replica_that_went_idle_last_serves() -> None:
    # Its threads are hot; the others sleep instead of spinning beside it.
    engines = [FakeEngine(), FakeEngine(), FakeEngine()]
    harness = Harness(engines)
    for i in range(12):  # one client: each request waits for the previous answer
        request, _ = harness.submit([i])
        await request.future
    assert sorted(len(engine.batches) for engine in engines) == [0, 0, 12]
    await harness.stop()


async def test_drain_finishes_queued_work() -> None:
    engine = FakeEngine()
    harness = Harness([engine], max_batch_size=2)
    requests = [harness.submit([i])[0] for i in range(20)]
    await harness.stop()
    await asyncio.sleep(0)  # deliveries scheduled by the workers run now
    assert all(request.future.done() and not request.future.exception() for request in requests)

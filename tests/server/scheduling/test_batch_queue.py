"""BatchQueue: admission, padded-token budget, length grouping, cancellation, blocking."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from models.engines.base import EngineInput
from server.scheduling.batch_queue import BatchQueue, QueueClosedError
from server.scheduling.pending import PendingRequest, QueuedInput


@pytest.fixture
def loop() -> asyncio.AbstractEventLoop:
    return asyncio.new_event_loop()


def items_of(loop: asyncio.AbstractEventLoop, *lengths: int) -> list[QueuedInput]:
    request = PendingRequest(loop, len(lengths))
    return [QueuedInput(EngineInput([1] * n), request, slot, n) for slot, n in enumerate(lengths)]


def queue(**overrides: int) -> BatchQueue:
    return BatchQueue(**{"max_batch_tokens": 1000, "max_batch_size": 100, "max_queue_tokens": 10_000, **overrides})


def test_batch_holds_oldest_and_nearest_lengths_within_padded_budget(loop) -> None:  # type: ignore[no-untyped-def]
    q = queue(max_batch_tokens=36)
    for n in (10, 100, 11, 99, 12, 3):
        q.put(items_of(loop, n))
    batch = q.take()
    assert [item.tokens for item in batch] == [10, 11, 12]  # 3 x 12 = 36 padded tokens
    assert [item.tokens for item in q.take()] == [100]  # the oldest leads even when alone
    assert [item.tokens for item in q.take()] == [99]
    assert [item.tokens for item in q.take()] == [3]


def test_oldest_input_always_leads(loop) -> None:  # type: ignore[no-untyped-def]
    q = queue(max_batch_tokens=200)
    for n in (100, 5, 6, 40, 7):
        q.put(items_of(loop, n))
    assert [item.tokens for item in q.take()] == [100, 40]  # 2 x 100 fits, 3 x 100 does not
    assert [item.tokens for item in q.take()] == [5, 6, 7]


@pytest.mark.parametrize(("anchor", "tokens", "joins"), [(10, 84, True), (10, 85, False), (256, 96, True),
                                                         (256, 95, False), (300, 300, True)])  # fmt: skip
def test_inputs_far_from_the_anchor_length_never_join(loop, anchor, tokens, joins) -> None:  # type: ignore[no-untyped-def]
    q = queue(max_batch_tokens=10_000)
    q.put(items_of(loop, anchor))
    q.put(items_of(loop, tokens))
    assert len(q.take()) == (2 if joins else 1)  # a short query never waits for a batch of long windows


def test_max_batch_size(loop) -> None:  # type: ignore[no-untyped-def]
    q = queue(max_batch_size=4)
    q.put(items_of(loop, *[5] * 10))
    assert len(q.take()) == 4
    assert q.queued_inputs == 6 and q.queued_tokens == 30


def test_admission_is_all_or_nothing(loop) -> None:  # type: ignore[no-untyped-def]
    q = queue(max_queue_tokens=100)
    assert q.put(items_of(loop, 40, 40))
    assert not q.put(items_of(loop, 10, 11))
    assert q.queued_tokens == 80 and q.queued_inputs == 2
    assert not q.is_full()
    assert q.put(items_of(loop, 20))
    assert q.is_full()


def test_cancelled_inputs_are_never_taken(loop) -> None:  # type: ignore[no-untyped-def]
    q = queue()
    dropped = items_of(loop, 5, 5, 5)
    kept = items_of(loop, 7)
    q.put(dropped)
    q.put(kept)
    dropped[0].request.cancelled = True
    q.discard(dropped)
    assert q.queued_tokens == 7 and q.queued_inputs == 1
    assert q.take() == kept


def test_cancelled_without_discard_is_skipped(loop) -> None:  # type: ignore[no-untyped-def]
    q = queue()
    gone = items_of(loop, 5)
    q.put(gone)
    q.put(items_of(loop, 9))
    gone[0].request.cancelled = True
    assert [item.tokens for item in q.take()] == [9]
    assert q.queued_tokens == 0


def test_claim_adds_arrivals_and_drops_cancelled(loop) -> None:  # type: ignore[no-untyped-def]
    q = queue(max_batch_tokens=40)
    first = items_of(loop, 10, 10)
    q.put(first)
    assert q.peek() == first
    assert q.queued_inputs == 2  # proposed, still queued
    late = items_of(loop, 10, 10, 10)
    q.put(late)
    first[0].request.cancelled = True
    assert q.claim() == late  # the cancelled pair is gone, the arrivals fill the budget (3 x 10 <= 40)
    assert q.queued_inputs == 0 and q.claim() == []


def test_arrival_with_an_earlier_turn_overtakes_the_proposal(loop) -> None:  # type: ignore[no-untyped-def]
    q = queue(max_batch_tokens=400)
    document = items_of(loop, *[200] * 8)
    q.put(document)
    assert q.take() == document[:2]  # running
    proposal = q.peek()
    assert proposal == document[2:4]  # prepared while it runs
    query = items_of(loop, 5)
    q.put(query)
    assert q.claim() == query  # the replica, once free, serves the query first, alone
    assert q.claim() == document[2:4]


def test_take_blocks_until_put_and_close_releases(loop) -> None:  # type: ignore[no-untyped-def]
    q = queue()
    taken: list[object] = []
    consumer = threading.Thread(target=lambda: taken.append(q.take()))
    consumer.start()
    time.sleep(0.05)
    assert not taken
    q.put(items_of(loop, 3))
    consumer.join(timeout=5)
    assert len(taken[0]) == 1
    waiting = threading.Thread(target=lambda: taken.append(q.take()))
    waiting.start()
    q.close()
    waiting.join(timeout=5)
    assert taken[1] is None
    with pytest.raises(QueueClosedError):
        q.put(items_of(loop, 1))


def test_close_drains_before_none(loop) -> None:  # type: ignore[no-untyped-def]
    q = queue(max_batch_size=1)
    q.put(items_of(loop, 1, 2))
    q.close()
    assert q.take() is not None and q.take() is not None
    assert q.take() is None


def test_batch_wait_expects_as_many_requests_as_last_time(loop) -> None:  # type: ignore[no-untyped-def]
    q = queue()
    q.put(items_of(loop, 4))
    started = time.perf_counter()
    assert len(q.take(wait_s=2.0)) == 1  # nothing expected yet: no wait at all
    assert time.perf_counter() - started < 0.5
    for _ in range(3):
        q.put(items_of(loop, 4))
    assert len(q.take(wait_s=2.0)) == 3  # three requests served: expect three next time
    q.put(items_of(loop, 4))
    threading.Timer(0.05, lambda: [q.put(items_of(loop, 4)) for _ in range(2)]).start()
    started = time.perf_counter()
    assert len(q.take(wait_s=2.0)) == 3  # waited for the other two, woke as soon as they came
    assert time.perf_counter() - started < 1.0
    q.put(items_of(loop, 4))
    started = time.perf_counter()
    assert len(q.take(wait_s=0.1)) == 1  # they never came: waited the bound, once
    assert time.perf_counter() - started >= 0.09
    q.put(items_of(loop, 4))
    started = time.perf_counter()
    assert len(q.take(wait_s=2.0)) == 1  # expectation followed the load down
    assert time.perf_counter() - started < 0.5


def test_waiting_former_survives_a_claim_taking_everything(loop) -> None:  # type: ignore[no-untyped-def]
    q = queue()
    for _ in range(3):
        q.put(items_of(loop, 4))
    q.take()  # expectation now three requests
    q.put(items_of(loop, 5))
    taken: list[object] = []
    former = threading.Thread(target=lambda: taken.append(q.take(wait_s=0.2)))
    former.start()
    time.sleep(0.05)
    assert len(q.claim()) == 1  # a replica claims the waiting input meanwhile
    former.join(timeout=0.5)
    assert former.is_alive()  # still waiting for work, not returning None (which stops the pool)
    q.put(late := items_of(loop, 6))
    former.join(timeout=5)
    assert taken == [late]


def test_short_request_does_not_wait_for_a_huge_one(loop) -> None:  # type: ignore[no-untyped-def]
    q = queue(max_batch_tokens=100)
    huge = items_of(loop, *[50] * 40)  # 20 batches of two windows
    q.put(huge)
    assert q.take() == huge[:2]
    short = items_of(loop, 5)
    q.put(short)
    assert q.take() == short  # the very next batch serves it, alone: no bulk input delays it
    assert q.take() == huge[2:4]


def test_two_large_requests_alternate(loop) -> None:  # type: ignore[no-untyped-def]
    q = queue(max_batch_tokens=100)
    first, second = items_of(loop, *[50] * 6), items_of(loop, *[50] * 6)
    q.put(first)
    q.put(second)
    owners = []
    while (batch := q.take(wait_s=0)) and q.queued_inputs >= 0:
        owners.append(batch[0].request)
        if not q.queued_inputs:
            break
    assert owners[:4] == [first[0].request, second[0].request, first[0].request, second[0].request]


def test_claim_takes_its_share_of_the_queue(loop) -> None:  # type: ignore[no-untyped-def]
    q = queue()
    for _ in range(10):
        q.put(items_of(loop, 5))
    assert len(q.peek(share=2)) == 5
    assert len(q.claim(share=2)) == 5  # another idle replica takes the rest
    assert len(q.claim(share=3)) == 2  # ceil(5 / 3)
    assert len(q.claim()) == 3


def test_tenants_take_turns_before_requests_do(loop) -> None:  # type: ignore[no-untyped-def]
    # Tenant "ingest" has 16 requests of 8 long inputs queued; tenant "search" sends one query.
    q = queue(max_batch_tokens=800, max_batch_size=8)

    def request(tenant: str, *lengths: int) -> list[QueuedInput]:
        pending = PendingRequest(loop, len(lengths), tenant)
        return [QueuedInput(EngineInput([1] * n), pending, slot, n) for slot, n in enumerate(lengths)]

    for _ in range(16):
        q.put(request("ingest", *[100] * 8))
    assert all(item.request.tenant == "ingest" for item in q.take())  # the oldest tenant leads
    q.put(request("search", 100))
    second = q.take()
    assert "search" in {item.request.tenant for item in second}  # next turn, not behind 15 requests
    # Within one tenant, requests still take turns in arrival order.
    assert [item.request for item in second if item.request.tenant == "ingest"]


def test_one_tenant_keeps_request_turns(loop) -> None:  # type: ignore[no-untyped-def]
    q = queue(max_batch_tokens=20, max_batch_size=2)
    first = items_of(loop, 10, 10, 10, 10)
    q.put(first)
    q.take()
    late = items_of(loop, 10)
    q.put(late)
    assert q.take()[0].request is late[0].request  # the served request goes behind the newcomer


def test_small_requests_share_batches_but_not_with_bulk_inputs(loop) -> None:  # type: ignore[no-untyped-def]
    q = queue(max_batch_tokens=200)
    bulk = items_of(loop, *[10] * 40)
    q.put(bulk)
    queries = [items_of(loop, 10)[0] for _ in range(5)]
    for query in queries:
        q.put([query])
    assert q.take() == bulk[:20]  # the bulk request's turn: its own inputs first, the budget is full
    assert q.take() == queries  # the queries' turn: together, and no bulk input in their batch
    assert q.take() == bulk[20:]


def test_tokens_ahead_of_a_new_request_follow_tenant_turns(loop) -> None:  # type: ignore[no-untyped-def]
    q = queue(max_queue_tokens=100_000)

    def request(tenant: str, *lengths: int) -> list[QueuedInput]:
        pending = PendingRequest(loop, len(lengths), tenant)
        return [QueuedInput(EngineInput([1] * n), pending, slot, n) for slot, n in enumerate(lengths)]

    q.put(request("ingest", *[100] * 50))  # 5,000 tokens
    assert q.tokens_ahead("ingest", 10) == 5_010  # its own queue first
    assert q.tokens_ahead("search", 10) == 20  # one turn of the other tenant, then its own
    q.put(request("search", *[100] * 3))
    assert q.tokens_ahead("search", 100) == 400 + 400
    q.take()
    assert q.tokens_ahead("other", 0) == 0 and q.queued_tokens == sum(q._tenant_tokens.values())

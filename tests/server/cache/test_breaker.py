"""CircuitBreaker: opens after N consecutive failures, only a probe after the cool-down closes it."""

from __future__ import annotations

import pytest

from server.cache.breaker import BreakerState, CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def breaker(clock: Clock, changes: list[BreakerState] | None = None) -> CircuitBreaker:
    return CircuitBreaker(3, 2.0, clock=clock, on_change=None if changes is None else changes.append)


def test_opens_after_threshold_consecutive_failures(clock: Clock) -> None:
    changes: list[BreakerState] = []
    b = breaker(clock, changes)
    b.record_failure()
    b.record_failure()
    b.record_success()  # not consecutive any more
    b.record_failure()
    b.record_failure()
    assert b.allow() and b.state is BreakerState.CLOSED and b.consecutive_failures == 2
    b.record_failure()
    assert not b.allow() and b.state is BreakerState.OPEN
    assert changes == [BreakerState.OPEN]


def test_stays_open_through_the_cool_down_whatever_requests_report(clock: Clock) -> None:
    b = breaker(clock)
    b.trip()
    assert b.retry_in() == 2.0 and not b.begin_probe()
    b.record_success()  # a late answer to a call made before opening
    b.record_failure()  # a late failure does not extend the cool-down
    clock.now += 1.5
    assert b.state is BreakerState.OPEN and b.retry_in() == pytest.approx(0.5) and not b.begin_probe()


def test_probe_after_cool_down_closes_on_success(clock: Clock) -> None:
    changes: list[BreakerState] = []
    b = breaker(clock, changes)
    b.trip()
    clock.now += 2.0
    assert b.begin_probe() and b.state is BreakerState.HALF_OPEN and not b.allow()
    assert not b.begin_probe()  # one probe at a time
    b.record_success()
    assert b.allow() and b.consecutive_failures == 0
    assert changes == [BreakerState.OPEN, BreakerState.HALF_OPEN, BreakerState.CLOSED]


def test_failed_probe_reopens_with_a_fresh_cool_down(clock: Clock) -> None:
    b = breaker(clock)
    b.trip()
    clock.now += 5.0
    assert b.begin_probe()
    b.record_failure()
    assert b.state is BreakerState.OPEN and b.retry_in() == 2.0


def test_state_values_are_the_gauge_values() -> None:
    assert [int(s) for s in (BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN)] == [0, 1, 2]


def test_rejects_bad_parameters() -> None:
    with pytest.raises(ValueError):
        CircuitBreaker(0, 1.0)
    with pytest.raises(ValueError):
        CircuitBreaker(1, -1.0)

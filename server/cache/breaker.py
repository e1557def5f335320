"""Circuit breaker in front of Redis: after N consecutive failures, stop calling for a while.

While open, requests skip Redis at once instead of each waiting out a timeout. Requests never
test whether Redis is back: the owner's background probe does, after the cool-down, by
calling `begin_probe()` (open → half-open) and then recording the probe's outcome.
Used from one event loop only, so it needs no lock.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import IntEnum


class BreakerState(IntEnum):
    # Values are the breaker-state gauge's.
    CLOSED = 0
    OPEN = 1
    HALF_OPEN = 2


class CircuitBreaker:
    def __init__(
        self,
        failure_threshold: int = 5,
        reset_timeout_s: float = 2.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[BreakerState], None] | None = None,
    ) -> None:
        if failure_threshold < 1 or reset_timeout_s < 0:
            raise ValueError("failure_threshold must be >= 1 and reset_timeout_s >= 0")
        self.failure_threshold = failure_threshold
        self.reset_timeout_s = reset_timeout_s
        self.on_change = on_change
        self._clock = clock
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0

    @property
    def state(self) -> BreakerState:
        return self._state

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    def allow(self) -> bool:
        """Whether a request may call Redis now."""
        return self._state is BreakerState.CLOSED

    def record_success(self) -> None:
        self._failures = 0
        # A late success of a call started before the breaker opened proves little; only
        # the probe (half-open) closes an open breaker.
        if self._state is BreakerState.HALF_OPEN:
            self._set(BreakerState.CLOSED)

    def record_failure(self) -> None:
        self._failures += 1
        if self._state is BreakerState.HALF_OPEN or (
            self._state is BreakerState.CLOSED and self._failures >= self.failure_threshold
        ):
            self.trip()

    def trip(self) -> None:
        """Open now (e.g. Redis unreachable at start-up), restarting the cool-down."""
        self._opened_at = self._clock()
        self._set(BreakerState.OPEN)

    def retry_in(self) -> float:
        """Seconds until the probe may try (0 unless open and cooling down)."""
        if self._state is not BreakerState.OPEN:
            return 0.0
        return max(0.0, self._opened_at + self.reset_timeout_s - self._clock())

    def begin_probe(self) -> bool:
        """Open and cooled down: go half-open and return True (the caller probes once)."""
        if self._state is not BreakerState.OPEN or self.retry_in() > 0:
            return False
        self._set(BreakerState.HALF_OPEN)
        return True

    def _set(self, state: BreakerState) -> None:
        changed = state is not self._state
        self._state = state
        if state is BreakerState.CLOSED:
            self._failures = 0
        if changed and self.on_change is not None:
            self.on_change(state)

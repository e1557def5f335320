"""GCRA (generic cell rate algorithm) and the in-process store that runs it.

A per-minute limit becomes an emission interval T (60 s / limit) and a tolerance tau (how
far the theoretical arrival time, TAT, may run ahead of now: capacity × T). A request costing
n is allowed when max(TAT, now) + n·T − tau <= now, and then the TAT moves to max(TAT, now)
+ n·T. One number per tenant and limit; the exact wait of a refused request is that
difference; "remaining" is how many more units fit now, and "reset" is TAT − now, the time
until the bucket is full again. With the default burst of one minute this is a token bucket
holding one minute's limit, refilled continuously.

The Redis store runs the same arithmetic in Lua (`redis_store.py`); the shared tests hold
the two to the same answers with a fake clock. Times are microseconds in floats: unix
microseconds (~1.8e15) keep a resolution of 0.25 us in a double, far below one interval.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

MINUTE_US = 60_000_000.0
_EPSILON = 1e-6  # float noise in "units that fit" (6.9999999 is 7)


@dataclass(frozen=True, slots=True)
class Rate:
    """One per-minute limit as GCRA parameters, in microseconds."""

    per_minute: float  # the limit this store enforces (a share of the tenant's in the fallback)
    interval_us: float  # one unit's emission interval
    tau_us: float  # how far ahead of now the TAT may be: capacity × interval

    @classmethod
    def of(cls, per_minute: float, burst_s: float = 60.0) -> Rate:
        interval = MINUTE_US / per_minute
        # At least one unit always fits, or a small share of a small limit would refuse everything.
        capacity = max(1.0, per_minute * burst_s / 60.0)
        return cls(per_minute, interval, capacity * interval)

    @property
    def capacity(self) -> float:
        return self.tau_us / self.interval_us

    def remaining(self, tat_us: float, now_us: float) -> int:
        """Units that fit now, given the TAT."""
        return max(0, math.floor((self.tau_us - max(0.0, tat_us - now_us)) / self.interval_us + _EPSILON))

    def wait_us(self, tat_us: float, now_us: float, cost: float = 1.0) -> float:
        """How long until `cost` units fit (<= 0: they fit now)."""
        return max(tat_us, now_us) + cost * self.interval_us - self.tau_us - now_us


@dataclass(frozen=True, slots=True)
class Plan:
    """What one tenant's admission checks: the same value for either store."""

    scope: str  # the tenant's name: the Redis keys' hash tag
    requests: Rate | None
    tokens: Rate | None
    max_concurrent: int  # 0: no limit


@dataclass(frozen=True, slots=True)
class AdmitResult:
    """A store's answer to an admission: the request was charged only when allowed."""

    allowed: bool
    now_us: float
    requests_tat_us: float  # after the charge when allowed; max(TAT, now) when not
    tokens_tat_us: float  # max(TAT, now): admission only checks that a token is left
    in_flight: int  # counting this request when allowed


@dataclass(frozen=True, slots=True)
class ChargeResult:
    allowed: bool
    now_us: float
    tat_us: float  # after the charge when allowed; max(TAT, now) when not


class LocalStore:
    """The algorithm in this process: the limiter without Redis, and its fallback.

    In-flight requests have no expiry here: the process that holds them releases them (in a
    `finally`), and if it dies the count dies with it."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._tats: dict[tuple[str, str], float] = {}
        self._in_flight: dict[str, set[str]] = {}

    def now_us(self) -> float:
        return self._clock() * 1e6

    def admit(self, plan: Plan, request_id: str) -> AdmitResult:
        now = self.now_us()
        requests_tat = max(self._tats.get((plan.scope, "requests"), 0.0), now)
        tokens_tat = max(self._tats.get((plan.scope, "tokens"), 0.0), now)
        held = self._in_flight.get(plan.scope)
        in_flight = len(held) if held else 0
        allowed = (
            (plan.requests is None or plan.requests.wait_us(requests_tat, now) <= 0)
            and (plan.tokens is None or plan.tokens.wait_us(tokens_tat, now) <= 0)
            and (not plan.max_concurrent or in_flight < plan.max_concurrent)
        )
        if allowed:
            if plan.requests is not None:
                requests_tat += plan.requests.interval_us
                self._tats[(plan.scope, "requests")] = requests_tat
            if plan.max_concurrent:
                self._in_flight.setdefault(plan.scope, set()).add(request_id)
                in_flight += 1
        return AdmitResult(allowed, now, requests_tat, tokens_tat, in_flight)

    def charge(self, plan: Plan, tokens: float) -> ChargeResult:
        assert plan.tokens is not None
        now = self.now_us()
        tat = max(self._tats.get((plan.scope, "tokens"), 0.0), now)
        if plan.tokens.wait_us(tat, now, tokens) > 0:
            return ChargeResult(False, now, tat)
        tat += tokens * plan.tokens.interval_us
        self._tats[(plan.scope, "tokens")] = tat
        return ChargeResult(True, now, tat)

    def release(self, scope: str, request_id: str) -> None:
        held = self._in_flight.get(scope)
        if held is not None:
            held.discard(request_id)
            if not held:
                del self._in_flight[scope]

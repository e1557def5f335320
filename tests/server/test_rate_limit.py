"""Per-tenant rate limits: GCRA arithmetic (burst, steady rate, exact retry-after) in both
stores, tokens charged once counted, concurrency slots and the lease of a crashed holder, two
limiters sharing one real redis-server, the local fallback when Redis stops or stalls, and
OpenAI's headers and error shape."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import orjson
import pytest
import redis
from prometheus_client import CollectorRegistry

from server.cache.breaker import BreakerState
from server.errors import InvalidRequestError, error_parts, status_of
from server.limits import Admission, RateLimiter, RateLimitError, charge_tokens, current_admission, format_duration
from server.limits.redis_store import RedisStore
from server.tenants import Tenant
from tests.redis_server import RedisProcess, command_calls, wait_until

TIMEOUT_S = 0.2
# Slack for a loaded 2-core CI machine; a call that waited on a dead socket would take seconds.
MARGIN_S = 0.3
EXACT = 1e-6  # seconds: GCRA's waits are exact with a fake clock

Factory = Callable[..., Awaitable[RateLimiter]]


class Clock:
    """Seconds, starting near today's unix time so Redis sees microseconds of realistic size."""

    def __init__(self) -> None:
        self.now = 1_790_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def make_limiter(redis_proc: RedisProcess) -> AsyncIterator[Factory]:
    """Started limiters on the test's redis-server (`local=True`: without Redis); closed after."""
    made: list[RateLimiter] = []

    async def factory(*, local: bool = False, **options: object) -> RateLimiter:
        options = {"timeout_s": TIMEOUT_S, "reset_timeout_s": 0.2, "failure_threshold": 3, **options}
        limiter = RateLimiter(None if local else redis_proc.url, **options)  # type: ignore[arg-type]
        await limiter.start()
        made.append(limiter)
        return limiter

    yield factory
    for limiter in made:
        await limiter.close()


@pytest.fixture(params=["local", "redis"])
async def limiter(request: pytest.FixtureRequest, make_limiter: Factory, clock: Clock) -> RateLimiter:
    """The same limiter over either store, on a fake clock: both must give the same answers."""
    return await make_limiter(local=request.param == "local", clock=clock, registry=CollectorRegistry())


def sample(limiter: RateLimiter, name: str, **labels: str) -> float:
    return limiter.metrics.registry.get_sample_value(name, labels) or 0.0


async def admit_n(limiter: RateLimiter, tenant: Tenant, n: int) -> list[Admission]:
    return [await limiter.admit(tenant) for _ in range(n)]


# -- headers ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (-1, "0s"),
        (0.0004, "1ms"),
        (0.02, "20ms"),
        (0.9994, "1s"),
        (1, "1s"),
        (1.5, "1.5s"),
        (8.64, "8.64s"),
        (60, "1m0s"),
        (179.56, "2m59.56s"),
        (360, "6m0s"),
        (3600, "1h0m0s"),
        (3723.25, "1h2m3.25s"),
    ],
)
def test_reset_durations_are_formatted_as_openai_does(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


# -- GCRA arithmetic, both stores ---------------------------------------------------------


async def test_burst_then_steady_rate_with_exact_retry_after(limiter: RateLimiter, clock: Clock) -> None:
    tenant = Tenant("search", requests_per_minute=60)  # one per second, a minute's worth at once
    burst = await admit_n(limiter, tenant, 60)
    assert all(a.allowed for a in burst)
    assert [a.requests.remaining for a in burst[:3]] == [59, 58, 57]  # type: ignore[union-attr]
    assert burst[-1].headers() == {
        "x-ratelimit-limit-requests": "60",
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-requests": "1m0s",
    }
    refused = await limiter.admit(tenant)
    assert not refused.allowed and refused.reason == "requests"
    assert refused.retry_after_s == pytest.approx(1.0, abs=EXACT)
    clock.advance(0.25)
    refused = await limiter.admit(tenant)
    assert refused.retry_after_s == pytest.approx(0.75, abs=EXACT) and refused.request_id is None
    clock.advance(0.75)
    assert (await limiter.admit(tenant)).allowed  # exactly when it said
    assert not (await limiter.admit(tenant)).allowed
    clock.advance(10)
    steady = await admit_n(limiter, tenant, 11)
    assert [a.allowed for a in steady] == [True] * 10 + [False]  # ten seconds bought ten requests
    clock.advance(120)
    fresh = await limiter.admit(tenant)
    assert fresh.allowed and fresh.requests.remaining == 59  # type: ignore[union-attr]


async def test_shorter_burst(make_limiter: Factory, clock: Clock) -> None:
    limiter = await make_limiter(clock=clock, burst_s=5.0)
    tenant = Tenant("search", requests_per_minute=120)  # two per second, ten at once
    assert [a.allowed for a in await admit_n(limiter, tenant, 11)] == [True] * 10 + [False]
    clock.advance(0.5)
    assert [a.allowed for a in await admit_n(limiter, tenant, 2)] == [True, False]


async def test_tokens_are_charged_once_counted(limiter: RateLimiter, clock: Clock) -> None:
    tenant = Tenant("search", tokens_per_minute=6000)  # 100 tokens a second
    first = await limiter.admit(tenant)
    assert first.allowed and first.tokens is not None and first.tokens.remaining == 6000
    await first.charge_tokens(5000)
    assert first.headers()["x-ratelimit-remaining-tokens"] == "1000"
    assert first.headers()["x-ratelimit-reset-tokens"] == "50s"
    second = await limiter.admit(tenant)
    assert second.allowed  # a token is left: admitted, its count decides
    with pytest.raises(RateLimitError) as caught:
        await second.charge_tokens(2000)
    error = caught.value
    assert error.reason == "tokens" and error.retry_after_s == pytest.approx(10.0, abs=EXACT)
    assert "Limit 6000, Remaining 1000, Requested 2000" in error.message and "try again in 10s" in error.message
    assert not second.allowed and second.reason == "tokens"
    clock.advance(10)
    third = await limiter.admit(tenant)
    await third.charge_tokens(2000)  # now it fits, and nothing was charged for the refusal
    assert third.tokens is not None and third.tokens.remaining == 0
    refused = await limiter.admit(tenant)  # not one token left: refused before tokenizing
    assert not refused.allowed and refused.reason == "tokens"
    assert refused.retry_after_s == pytest.approx(0.01, abs=EXACT)
    with pytest.raises(InvalidRequestError, match="more than its tokens-per-minute budget") as too_large:
        await third.charge_tokens(6001)  # could never fit: 400, not a 429 to retry
    assert status_of(too_large.value) == 400
    await third.charge_tokens(0)


@pytest.mark.parametrize(("rpm", "tpm", "reason"), [(60, 600, "requests"), (600, 60, "tokens")])
async def test_refusal_names_the_limit_that_refuses_longest(
    limiter: RateLimiter, rpm: int, tpm: int, reason: str
) -> None:
    tenant = Tenant("search", requests_per_minute=rpm, tokens_per_minute=tpm)
    admissions = await admit_n(limiter, tenant, rpm)
    await admissions[0].charge_tokens(tpm)
    refused = await limiter.admit(tenant)  # both refuse: one for 1 s, the other for 0.1 s
    assert refused.reason == reason and refused.retry_after_s == pytest.approx(1.0, abs=EXACT)
    assert refused.headers()["x-ratelimit-remaining-tokens"] == "0"
    assert refused.headers()["x-ratelimit-remaining-requests"] == "0"


async def test_concurrency_acquire_and_release(limiter: RateLimiter) -> None:
    tenant = Tenant("search", max_concurrent=2)
    first, second = await admit_n(limiter, tenant, 2)
    assert first.allowed and second.allowed and first.headers() == {}  # no rate limits: no headers
    third = await limiter.admit(tenant)
    assert not third.allowed and third.reason == "concurrency" and third.retry_after_s == 1.0
    assert "at most 2 at a time" in third.error().message
    first.release()
    first.release()  # idempotent
    third.release()  # refused: held nothing
    await limiter.flush()
    assert (await limiter.admit(tenant)).allowed
    assert not (await limiter.admit(tenant)).allowed


async def test_unlimited_tenants_never_reach_redis(make_limiter: Factory, raw: redis.Redis) -> None:
    limiter = await make_limiter()
    raw.config_resetstat()
    for tenant in (Tenant("anonymous"), Tenant("ingestion", models=frozenset({"m"}))):
        admission = await limiter.admit(tenant)
        await admission.charge_tokens(10_000)
        admission.release()
        assert admission.allowed and admission.headers() == {}
    assert command_calls(raw, "evalsha") == 0 and command_calls(raw, "eval") == 0
    assert sample(limiter, "embed_tenant_tokens_total", tenant="ingestion") == 10_000


async def test_a_tenant_past_its_limit_is_refused_without_round_trips(
    make_limiter: Factory, raw: redis.Redis, clock: Clock
) -> None:
    limiter = await make_limiter(clock=clock)
    tenant = Tenant("search", requests_per_minute=60, tokens_per_minute=6000)
    await admit_n(limiter, tenant, 60)
    raw.config_resetstat()
    first = await limiter.admit(tenant)
    clock.advance(0.4)
    for _ in range(100):
        again = await limiter.admit(tenant)
    assert command_calls(raw, "evalsha") == 1  # the refusal stands until its wait is over
    assert not again.allowed and again.reason == "requests"
    assert again.retry_after_s == pytest.approx(0.6, abs=EXACT)
    assert again.headers()["x-ratelimit-reset-requests"] == "59.6s" and first.retry_after_s == 1.0
    assert sample(limiter, "embed_tenant_requests_limited_total", tenant="search", reason="requests") == 101
    raised = Tenant("search", requests_per_minute=240, tokens_per_minute=6000)  # a reload raised the limit
    assert (await limiter.admit(raised)).allowed and command_calls(raw, "evalsha") == 2
    clock.advance(0.6)
    assert (await limiter.admit(tenant)).allowed is False and command_calls(raw, "evalsha") == 3


async def test_both_stores_agree_on_a_random_workload(make_limiter: Factory) -> None:
    """The Lua and the Python implementation, driven by one random sequence, give identical answers."""
    clocks = Clock(), Clock()
    local = await make_limiter(local=True, clock=clocks[0], burst_s=20.0)
    shared = await make_limiter(clock=clocks[1], burst_s=20.0)
    tenant = Tenant("t", requests_per_minute=90, tokens_per_minute=7000, max_concurrent=4)
    rng = random.Random(7)
    held: list[tuple[Admission, Admission]] = []
    for step in range(400):
        op = rng.random()
        if op < 0.3:
            seconds = rng.choice((0.001, 0.05, 0.37, 1.3))
            for c in clocks:
                c.advance(seconds)
        elif op < 0.55 and held:
            for admission in held.pop(rng.randrange(len(held))):
                admission.release()
            await shared.flush()
        elif op < 0.8:
            pair = await local.admit(tenant), await shared.admit(tenant)
            assert pair[0].allowed == pair[1].allowed and pair[0].reason == pair[1].reason, step
            assert pair[0].retry_after_s == pytest.approx(pair[1].retry_after_s, abs=EXACT), step
            assert pair[0].headers() == pair[1].headers(), step
            if pair[0].allowed:
                held.append(pair)
        elif held:
            tokens = rng.choice((1, 50, 400, 2000))  # the burst holds 2,333
            outcomes = []
            for admission in held[-1]:
                try:
                    await admission.charge_tokens(tokens)
                    outcomes.append(("ok", admission.headers()))
                except RateLimitError as exc:
                    outcomes.append((f"{exc.retry_after_s:.6f}", admission.headers()))
            assert outcomes[0] == outcomes[1], step


# -- across replicas ----------------------------------------------------------------------


async def test_two_limiters_sharing_redis_admit_the_limit_together(make_limiter: Factory) -> None:
    # Two server processes on Redis's clock; a generous timeout, so no call falls back.
    one, two = await make_limiter(timeout_s=5.0), await make_limiter(timeout_s=5.0)
    tenant = Tenant("search", requests_per_minute=120, tokens_per_minute=60_000)  # 2 requests/s, 1000 tokens/s
    started = time.monotonic()
    alternating = [await limiter.admit(tenant) for _ in range(50) for limiter in (one, two)]
    assert all(a.allowed for a in alternating)
    assert alternating[-1].requests is not None and alternating[-1].requests.remaining <= 20  # both counted
    burst = await asyncio.gather(*(limiter.admit(tenant) for _ in range(150) for limiter in (one, two)))
    elapsed = time.monotonic() - started
    admitted = [a for a in alternating + list(burst) if a.allowed]
    assert 120 <= len(admitted) <= 120 + 2 * elapsed + 1
    assert {a.store for a in burst} == {"redis"}
    charges = await asyncio.gather(*(a.charge_tokens(1000) for a in admitted), return_exceptions=True)
    elapsed = time.monotonic() - started
    assert all(result is None or isinstance(result, RateLimitError) for result in charges)
    assert 60 <= sum(result is None for result in charges) <= 60 + 1 * elapsed + 1  # 60,000 at once, 1,000/s


async def test_concurrent_decisions_share_round_trips_and_survive_a_script_flush(
    make_limiter: Factory, raw: redis.Redis, clock: Clock
) -> None:
    limiter = await make_limiter(timeout_s=5.0, clock=clock)
    assert limiter.redis is not None
    scripts = limiter.redis.scripts
    tenant = Tenant("search", requests_per_minute=10_000)
    raw.script_flush()  # as after a Redis restart: the first calls meet NOSCRIPT
    assert (await limiter.admit(tenant)).allowed  # alone: a plain EVALSHA, loaded on NOSCRIPT
    raw.script_flush()
    before = scripts.round_trips
    admissions = await asyncio.gather(*(limiter.admit(tenant) for _ in range(200)))
    assert all(a.allowed and a.store == "redis" for a in admissions)
    # One call alone, then the calls made meanwhile in pipelines of at most 128.
    assert scripts.round_trips - before <= 4
    remaining = sorted(a.requests.remaining for a in admissions)  # type: ignore[union-attr]
    assert remaining == list(range(9_799, 9_999))  # each charged once, atomically


async def test_releases_ride_with_the_next_admission(make_limiter: Factory, raw: redis.Redis) -> None:
    limiter = await make_limiter()
    tenant = Tenant("search", max_concurrent=1)
    for _ in range(50):  # one slot: each admission needs the previous release to have landed
        admission = await limiter.admit(tenant)
        assert admission.allowed and admission.store == "redis"
        admission.release()
    assert sample(limiter, "embed_rate_limit_redis_duration_seconds_count", op="release") < 5
    await limiter.flush()
    assert raw.zcard("embed:rl:{search}:in_flight") == 0


async def test_concurrency_is_shared_across_limiters(make_limiter: Factory) -> None:
    one, two = await make_limiter(), await make_limiter()
    tenant = Tenant("search", max_concurrent=5)
    admissions = await asyncio.gather(*(limiter.admit(tenant) for _ in range(10) for limiter in (one, two)))
    held = [a for a in admissions if a.allowed]
    assert len(held) == 5
    for admission in held[:2]:
        admission.release()
    await one.flush()
    await two.flush()
    again = await asyncio.gather(*(limiter.admit(tenant) for _ in range(3) for limiter in (one, two)))
    assert sum(a.allowed for a in again) == 2


async def test_crashed_holders_slots_expire_and_live_ones_are_renewed(make_limiter: Factory, raw: redis.Redis) -> None:
    tenant = Tenant("search", max_concurrent=2)
    alive = await make_limiter(lease_s=0.3)  # renews its slots every 0.1 s
    assert alive.redis is not None
    # Another replica took a slot and died: its entry is there, nobody renews or releases it.
    crashed = RedisStore(alive.redis.client, key_prefix="embed:rl:")
    await crashed.admit(alive.plan(tenant), "crashed:1", 0.3e6)
    assert (await alive.admit(tenant)).allowed
    refused = await alive.admit(tenant)
    assert not refused.allowed and refused.reason == "concurrency"
    await asyncio.sleep(0.6)  # two leases: the live slot was renewed, the dead one ran out
    assert (await alive.admit(tenant)).allowed  # the admission sweeps out expired entries
    held = raw.zrange("embed:rl:{search}:in_flight", 0, -1)
    assert len(held) == 2 and b"crashed:1" not in held
    assert not (await alive.admit(tenant)).allowed
    assert 0 < raw.pttl("embed:rl:{search}:in_flight") <= 302  # the set itself goes when everyone has


async def test_cancelling_a_waiting_request_cancels_it(make_limiter: Factory) -> None:
    """A request cancelled while its decision is on the wire ends cancelled, never with the
    cancellation swallowed (as redis-py's sends through asyncio.wait_for can on Python 3.11)."""
    limiter = await make_limiter(timeout_s=5.0, lease_s=0.3)  # renewals every 0.1 s run meanwhile
    tenant = Tenant("search", requests_per_minute=10**9, max_concurrent=10**6)
    rng = random.Random(3)
    outcomes: dict[str, int] = {}

    async def request() -> str:
        admission = await limiter.admit(tenant)
        admission.release()
        return "swallowed" if asyncio.current_task().cancelling() else "done"  # type: ignore[union-attr]

    for _ in range(300):
        task = asyncio.create_task(request())
        await asyncio.sleep(rng.random() * 0.0004)
        task.cancel()
        try:
            outcome = await task
        except asyncio.CancelledError:
            outcome = "cancelled"
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    assert "swallowed" not in outcomes and outcomes.get("cancelled", 0) > 0, outcomes
    started = time.monotonic()
    await limiter.close()  # with renewals in flight: bounded
    assert time.monotonic() - started < 2.0


# -- Redis down or slow -------------------------------------------------------------------


async def test_redis_stopped_mid_test_falls_back_to_local_limits(
    make_limiter: Factory, redis_proc: RedisProcess
) -> None:
    limiter = await make_limiter(replicas=2)
    tenant = Tenant("search", requests_per_minute=60, tokens_per_minute=60_000, max_concurrent=50)
    held = await admit_n(limiter, tenant, 10)
    assert all(a.allowed and a.store == "redis" for a in held)
    redis_proc.kill()
    admissions = []
    for _ in range(40):
        started = time.monotonic()
        admissions.append(await limiter.admit(tenant))  # never raises
        assert time.monotonic() - started < TIMEOUT_S + MARGIN_S
    assert all(a.store == "local" for a in admissions)
    # Half of each limit in this replica: 30 requests at once, 25 concurrent.
    assert sum(a.allowed for a in admissions) == 25
    assert {a.reason for a in admissions if not a.allowed} == {"concurrency"}
    assert admissions[0].headers()["x-ratelimit-limit-requests"] == "30"
    await admissions[0].charge_tokens(20_000)  # local share of tokens: 30,000
    with pytest.raises(RateLimitError):
        await admissions[1].charge_tokens(20_000)
    for admission in held + admissions:
        admission.release()  # nothing waits on the dead server
    again = await limiter.admit(tenant)
    assert again.allowed and again.store == "local"  # slots given back locally
    assert limiter.breaker.state is not BreakerState.CLOSED
    assert sample(limiter, "embed_rate_limit_fallback_decisions_total") >= 40
    assert sample(limiter, "embed_rate_limit_redis_errors_total", kind="connection") >= 1
    redis_proc.start()
    await wait_until(lambda: limiter.breaker.state is BreakerState.CLOSED, 10, "breaker closed after restart")
    back = await limiter.admit(tenant)
    assert back.allowed and back.store == "redis"
    assert back.headers()["x-ratelimit-limit-requests"] == "60"


async def test_stalled_redis_costs_a_decision_at_most_the_timeout(make_limiter: Factory, raw: redis.Redis) -> None:
    limiter = await make_limiter()
    tenant = Tenant("search", requests_per_minute=600)
    assert (await limiter.admit(tenant)).store == "redis"
    raw.client_pause(1500, all=True)
    for _ in range(3):
        started = time.monotonic()
        admission = await limiter.admit(tenant)
        assert admission.allowed and admission.store == "local"
        assert time.monotonic() - started < TIMEOUT_S + MARGIN_S
    assert sample(limiter, "embed_rate_limit_redis_errors_total", kind="timeout") >= 3
    assert limiter.breaker.state is not BreakerState.CLOSED
    started = time.monotonic()
    assert (await limiter.admit(tenant)).store == "local"  # breaker open: Redis not even tried
    assert time.monotonic() - started < 0.05
    await wait_until(lambda: limiter.breaker.state is BreakerState.CLOSED, 10, "breaker closed after the pause")
    assert (await limiter.admit(tenant)).store == "redis"


async def test_unreachable_redis_at_start_limits_locally(make_limiter: Factory, redis_proc: RedisProcess) -> None:
    redis_proc.kill()
    limiter = await make_limiter()
    assert limiter.breaker.state is BreakerState.OPEN
    admissions = await admit_n(limiter, Tenant("search", requests_per_minute=3), 4)
    assert [a.allowed for a in admissions] == [True, True, True, False]
    assert {a.store for a in admissions} == {"local"}


async def test_local_mode_divides_limits_by_the_replica_hint(make_limiter: Factory, clock: Clock) -> None:
    tenant = Tenant("search", requests_per_minute=60, max_concurrent=4)
    whole = await make_limiter(local=True, clock=clock)
    assert sum(a.allowed for a in await admit_n(whole, tenant, 10)) == 4  # concurrency 4 binds first
    third = await make_limiter(local=True, clock=clock, replicas=3)
    admissions = await admit_n(third, tenant, 3)
    assert [a.allowed for a in admissions] == [True, True, False]  # ceil(4 / 3) concurrent
    assert admissions[0].headers()["x-ratelimit-limit-requests"] == "20"
    for admission in admissions:
        admission.release()
    allowed = 0
    for _ in range(30):
        admission = await third.admit(tenant)
        allowed += admission.allowed
        admission.release()
    assert allowed == 18  # 20 a minute, 2 taken above


# -- the HTTP layer's view ----------------------------------------------------------------


async def test_refusal_is_openai_shaped_with_headers(make_limiter: Factory, clock: Clock) -> None:
    limiter = await make_limiter(clock=clock)
    tenant = Tenant("search", requests_per_minute=2, tokens_per_minute=1000)
    await admit_n(limiter, tenant, 2)
    refused = await limiter.admit(tenant)
    with pytest.raises(RateLimitError) as caught:
        refused.raise_if_refused()
    error, status, body = error_parts(caught.value)
    assert status == 429
    assert orjson.loads(body) == {
        "error": {
            "message": "Rate limit reached for tenant 'search' on requests per min (RPM): Limit 2, Remaining 0. "
            "Please try again in 30s.",
            "type": "rate_limit_error",
            "param": None,
            "code": "rate_limit_exceeded",
        }
    }
    assert error.headers() == {
        "Retry-After": "30",
        "retry-after-ms": "30000",
        "x-ratelimit-limit-requests": "2",
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-requests": "1m0s",
        "x-ratelimit-limit-tokens": "1000",
        "x-ratelimit-remaining-tokens": "1000",
        "x-ratelimit-reset-tokens": "0s",
    }


async def test_a_request_charges_its_tokens_through_the_bound_admission(make_limiter: Factory, clock: Clock) -> None:
    """The HTTP layer's flow: admit, bind for the services, charge once tokenized, release."""
    limiter = await make_limiter(clock=clock)
    tenant = Tenant("search", requests_per_minute=10, tokens_per_minute=100, max_concurrent=1)
    await charge_tokens(1_000)  # outside a request: nothing to charge
    admission = await limiter.admit(tenant)
    try:
        admission.raise_if_refused()
        with admission.bound():
            assert current_admission() is admission
            await charge_tokens(60)
            with pytest.raises(RateLimitError) as caught:
                await charge_tokens(60)
        assert current_admission() is None
        assert caught.value.headers()["x-ratelimit-remaining-tokens"] == "40"
        assert caught.value.headers()["x-ratelimit-remaining-requests"] == "9"
    finally:
        admission.release()
    again = await limiter.admit(tenant)
    assert again.allowed  # the one concurrency slot came back
    again.release()


async def test_metrics_count_per_tenant_name(make_limiter: Factory, clock: Clock) -> None:
    registry = CollectorRegistry()
    limiter = await make_limiter(clock=clock, registry=registry)
    search = Tenant("search", requests_per_minute=2, tokens_per_minute=100, max_concurrent=10)
    admissions = await admit_n(limiter, search, 3)
    await admissions[0].charge_tokens(60)
    with pytest.raises(RateLimitError):
        await admissions[1].charge_tokens(60)
    await limiter.admit(Tenant("ingestion"))

    def value(name: str, **labels: str) -> float:
        return registry.get_sample_value(name, labels) or 0.0

    assert value("embed_tenant_requests_admitted_total", tenant="search") == 2
    assert value("embed_tenant_requests_admitted_total", tenant="ingestion") == 1
    assert value("embed_tenant_requests_limited_total", tenant="search", reason="requests") == 1
    assert value("embed_tenant_requests_limited_total", tenant="search", reason="tokens") == 1
    assert value("embed_tenant_requests_limited_total", tenant="search", reason="concurrency") == 0
    assert value("embed_tenant_tokens_total", tenant="search") == 60
    assert value("embed_rate_limit_breaker_state") == 0
    assert value("embed_rate_limit_redis_duration_seconds_count", op="admit") == 3

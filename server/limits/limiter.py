"""Per-tenant limits on the request path: admission at arrival, tokens once counted, release.

    admission = await limiter.admit(tenant)       # 1 request + a concurrency slot, or refused
    try:
        admission.raise_if_refused()              # 429 with Retry-After and x-ratelimit-* headers
        with admission.bound():                   # for the services, deeper down:
            ...tokenize...
            await charge_tokens(n)                # the request's exact tokens, or 429
            ...compute...
        headers = admission.headers()             # OpenAI's x-ratelimit-* headers
    finally:
        admission.release()                       # never waits on Redis

With a Redis URL the state is shared by every replica (`RedisStore`, one EVALSHA per
decision; concurrent decisions share pipelines). Each call is bounded by a small timeout and
a circuit breaker, as the cache's are: when Redis is down or slow the in-process store
decides instead, each limit divided by `replicas`, the number of replicas expected to share a
tenant's traffic. The default, 1, means each replica enforces the whole limit during an
outage: no tenant is refused below its limit, and the deployment may admit up to `replicas`
times the limit while the outage lasts; set it to the replica count to keep the total (about)
right when the load balancer spreads each tenant evenly. Without a Redis URL the in-process
store is the limiter, with the same division. Nothing here raises because of Redis.

A refusal on requests or tokens stands until its retry-after (a TAT only moves forward), so
until then this replica refuses the tenant again without asking Redis: a client hammering past
its limit costs no round trips.

Tokens are checked after tokenization with the exact count, not before with an estimate from
characters: tokenization costs little next to the forward pass, characters per token vary
several-fold between languages, code and token-id inputs, and an estimate either refuses
requests that fit or adds nothing to the exact check that follows. Admission already refuses
when not a single token is left, so a tenant out of tokens is refused before its body is read.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import itertools
import logging
import math
import secrets
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Literal, TypeVar
from urllib.parse import urlsplit

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from server.cache.breaker import BreakerState, CircuitBreaker
from server.errors import InvalidRequestError, OverloadedError
from server.limits.gcra import AdmitResult, ChargeResult, LocalStore, Plan, Rate
from server.limits.redis_store import RedisStore
from server.tenants import Tenant

log = logging.getLogger(__name__)

T = TypeVar("T")
Reason = Literal["requests", "tokens", "concurrency"]
REASONS: tuple[Reason, ...] = ("requests", "tokens", "concurrency")
# A concurrency refusal cannot know when a slot frees; OpenAI's clients back off from here.
CONCURRENCY_RETRY_S = 1.0
REDIS_OPS = ("admit", "charge", "release", "renew", "ping")
# Releases wait this long before going on their own: the tenant's next admission usually
# carries them first (no round trip of their own), and a burst of them shares one pipeline.
RELEASE_LINGER_S = 0.005
REDIS_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1)


def format_duration(seconds: float) -> str:
    """OpenAI's x-ratelimit-reset-* form (Go's duration): "0s", "20ms", "1.5s", "6m0s", "1h0m0s";
    rounded up to the millisecond, so waiting that long is always enough."""
    ms = math.ceil(seconds * 1000 - 1e-6) if seconds > 0 else 0
    if ms <= 0:
        return "0s"
    if ms < 1000:
        return f"{ms}ms"
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs = f"{rest // 1000}.{rest % 1000:03d}".rstrip("0").rstrip(".")
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


class Quota:
    """One limit as the response reports it."""

    __slots__ = ("limit", "remaining", "reset_s")

    def __init__(self, limit: int, remaining: int, reset_s: float) -> None:
        self.limit = limit
        self.remaining = remaining
        self.reset_s = reset_s

    @classmethod
    def of(cls, rate: Rate, tat_us: float, now_us: float) -> Quota:
        return cls(max(1, int(rate.per_minute)), rate.remaining(tat_us, now_us), max(0.0, tat_us - now_us) / 1e6)

    def later(self, elapsed_s: float) -> Quota:
        return Quota(self.limit, self.remaining, max(0.0, self.reset_s - elapsed_s))

    def __repr__(self) -> str:
        return f"Quota(limit={self.limit}, remaining={self.remaining}, reset_s={self.reset_s:.3f})"


class RateLimitError(OverloadedError):
    """429 for a tenant over one of its limits, with OpenAI's code and headers. A subclass of
    OverloadedError, so the status table already answers 429."""

    code = "rate_limit_exceeded"

    def __init__(self, message: str, *, reason: Reason, retry_after_s: float, headers: dict[str, str]) -> None:
        super().__init__(message, retry_after=max(1, math.ceil(retry_after_s)))
        self.reason = reason
        self.retry_after_s = retry_after_s
        self._headers = headers

    def headers(self) -> dict[str, str]:
        # retry-after-ms: OpenAI's clients prefer it to Retry-After's whole seconds.
        return {
            "Retry-After": str(self.retry_after),
            "retry-after-ms": str(max(1, math.ceil(self.retry_after_s * 1000))),
            **self._headers,
        }


class RateLimitMetrics:
    """Per tenant name (never per key). Create once per registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = r = registry
        self.admitted = Counter(
            "embed_tenant_requests_admitted", "Requests admitted at arrival, by tenant.", ["tenant"], registry=r
        )
        self.limited = Counter(
            "embed_tenant_requests_limited",
            "Requests refused with 429 by a tenant limit, by reason (requests, tokens, concurrency); "
            "reason=tokens includes requests refused once their tokens were counted, which were admitted first.",
            ["tenant", "reason"], registry=r,
        )  # fmt: skip
        self.tokens = Counter("embed_tenant_tokens", "Tokens charged, by tenant.", ["tenant"], registry=r)
        self.fallback = Counter(
            "embed_rate_limit_fallback_decisions",
            "Limit decisions made in-process because Redis was configured but unavailable, failing or slow.",
            registry=r,
        )
        self.redis_errors = Counter(
            "embed_rate_limit_redis_errors", "Limiter Redis failures by kind.", ["kind"], registry=r
        )
        self.redis_duration = Histogram(
            "embed_rate_limit_redis_duration_seconds", "Limiter Redis call latency, failures included.", ["op"],
            buckets=REDIS_BUCKETS, registry=r,
        )  # fmt: skip
        self.breaker_state = Gauge(
            "embed_rate_limit_breaker_state", "Limiter's Redis circuit breaker: 0 closed, 1 open, 2 half-open.",
            registry=r,
        )  # fmt: skip
        for kind in ("timeout", "connection", "response"):
            self.redis_errors.labels(kind)
        self.redis_op_duration = {op: self.redis_duration.labels(op) for op in REDIS_OPS}
        self._by_tenant: dict[str, tuple[Counter, dict[Reason, Counter], Counter]] = {}

    def of(self, tenant: str) -> tuple[Counter, dict[Reason, Counter], Counter]:
        """The tenant's bound children (a labels() lookup costs a lock and a dict per call)."""
        found = self._by_tenant.get(tenant)
        if found is None:
            limited = {reason: self.limited.labels(tenant, reason) for reason in REASONS}
            found = self._by_tenant[tenant] = (self.admitted.labels(tenant), limited, self.tokens.labels(tenant))
        return found


class Admission:
    """One request's standing with its tenant's limits; `release()` it when the request ends."""

    __slots__ = ("_limiter", "allowed", "reason", "request_id", "requests", "retry_after_s", "store", "tenant",
                 "tokens")  # fmt: skip

    def __init__(
        self,
        limiter: RateLimiter,
        tenant: Tenant,
        *,
        allowed: bool = True,
        reason: Reason | None = None,
        retry_after_s: float = 0.0,
        requests: Quota | None = None,
        tokens: Quota | None = None,
        request_id: str | None = None,
        store: Literal["redis", "local"] | None = None,
    ) -> None:
        self._limiter = limiter
        self.tenant = tenant
        self.allowed = allowed
        self.reason = reason
        self.retry_after_s = retry_after_s
        self.requests = requests
        self.tokens = tokens
        self.request_id = request_id  # set while a concurrency slot is held
        self.store = store  # which store holds the slot

    def headers(self) -> dict[str, str]:
        """OpenAI's x-ratelimit-* headers for the limits the tenant has."""
        headers = {}
        for kind, quota in (("requests", self.requests), ("tokens", self.tokens)):
            if quota is not None:
                headers[f"x-ratelimit-limit-{kind}"] = str(quota.limit)
                headers[f"x-ratelimit-remaining-{kind}"] = str(quota.remaining)
                headers[f"x-ratelimit-reset-{kind}"] = format_duration(quota.reset_s)
        return headers

    def error(self, requested_tokens: int | None = None) -> RateLimitError:
        name, wait = self.tenant.name, format_duration(self.retry_after_s)
        if self.reason == "concurrency":
            message = (
                f"Too many concurrent requests for tenant {name!r}: at most {self.tenant.max_concurrent} at a time. "
                f"Please try again in {wait}."
            )
        else:
            quota = self.requests if self.reason == "requests" else self.tokens
            unit = "requests per min (RPM)" if self.reason == "requests" else "tokens per min (TPM)"
            used = f", Requested {requested_tokens}" if requested_tokens is not None else ""
            limits = f"Limit {quota.limit}, Remaining {quota.remaining}" if quota is not None else ""
            message = f"Rate limit reached for tenant {name!r} on {unit}: {limits}{used}. Please try again in {wait}."
        return RateLimitError(message, reason=self.reason or "requests", retry_after_s=self.retry_after_s,
                              headers=self.headers())  # fmt: skip

    def raise_if_refused(self) -> None:
        if not self.allowed:
            raise self.error()

    @contextlib.contextmanager
    def bound(self) -> Iterator[Admission]:
        """This admission as the current request's (`current_admission`, `charge_tokens`)."""
        token = _CURRENT.set(self)
        try:
            yield self
        finally:
            _CURRENT.reset(token)

    async def charge_tokens(self, tokens: int) -> None:
        """Charge the request's exact token count: RateLimitError (429) when the tenant's budget
        cannot take them now, InvalidRequestError (400) when it never could."""
        await self._limiter.charge_tokens(self, tokens)

    def release(self) -> None:
        """Give the concurrency slot back (idempotent; Redis is told in the background)."""
        self._limiter.release(self)


# The admission of the request being answered: the services charge its tokens and check its
# tenant's models without the HTTP layer threading it through every call.
_CURRENT: contextvars.ContextVar[Admission | None] = contextvars.ContextVar("embed_admission", default=None)


def current_admission() -> Admission | None:
    return _CURRENT.get()


async def charge_tokens(tokens: int) -> None:
    """Charge the current request's tokens to its tenant (nothing outside a bound admission)."""
    admission = _CURRENT.get()
    if admission is not None:
        await admission.charge_tokens(tokens)


class RateLimiter:
    def __init__(
        self,
        redis_url: str | None = None,
        *,
        registry: CollectorRegistry | None = None,
        key_prefix: str = "embed:rl:",
        replicas: int = 1,
        burst_s: float = 60.0,
        timeout_s: float = 0.02,
        background_timeout_s: float = 1.0,
        failure_threshold: int = 5,
        reset_timeout_s: float = 2.0,
        lease_s: float = 30.0,
        max_connections: int = 8,
        clock: Callable[[], float] | None = None,
    ) -> None:
        """`replicas`: how many replicas share each tenant's traffic when the limit is kept in
        process (no Redis, or Redis unavailable); each enforces limit / replicas. `burst_s`:
        seconds of each limit that may be used at once (60: a whole minute's). `timeout_s`:
        the longest a request waits on Redis before the local store decides (a loopback or LAN
        round trip takes well under a millisecond; the margin absorbs event-loop stalls, which
        would otherwise count as Redis failures). `lease_s`: how long a concurrency slot
        outlives a replica that crashed holding it (holders renew every lease_s / 3). `clock`:
        tests only (seconds; None: Redis's clock, and time.monotonic in process)."""
        if replicas < 1 or not 0 < burst_s <= 60 or lease_s <= 0:
            raise ValueError("replicas must be >= 1, burst_s in (0, 60], lease_s > 0")
        self.redis_url = redis_url
        self.replicas = replicas
        self.burst_s = burst_s
        self._timeout_s = timeout_s
        self._background_timeout_s = background_timeout_s
        self._lease_us = lease_s * 1e6
        self._renew_every_s = lease_s / 3
        self._max_connections = max_connections
        self._key_prefix = key_prefix
        self._clock = clock
        self.metrics = RateLimitMetrics(registry or CollectorRegistry())
        self._monotonic = clock or time.monotonic
        self.local = LocalStore(self._monotonic)
        self._refused: dict[str, tuple[float, Admission]] = {}  # tenant → (refused until, the refusal)
        self.redis: RedisStore | None = None
        self.breaker = CircuitBreaker(failure_threshold, reset_timeout_s, on_change=self._on_breaker)
        self.metrics.breaker_state.set(self.breaker.state)
        self._instance = secrets.token_hex(6)  # request ids unique across replicas
        self._ids = itertools.count()
        self._held: dict[str, set[str]] = {}  # Redis-held slots by tenant, for renewal
        self._releases: dict[str, list[str]] = {}  # Redis-held slots to give back, by tenant
        self._releaser: asyncio.Task[None] | None = None
        self._renewer: asyncio.Task[None] | None = None
        self._prober: asyncio.Task[None] | None = None
        self._closed = False
        self._last_error = ""
        parts = urlsplit(redis_url or "")
        self._where = f"{parts.hostname}:{parts.port or 6379}" if parts.hostname else parts.path  # no credentials

    # -- life ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect (if a URL was given) and start renewing leases; Redis not answering opens
        the breaker, it raises nothing."""
        if self.redis_url is None or self.redis is not None:
            return
        pool = BlockingConnectionPool.from_url(
            self.redis_url,
            max_connections=self._max_connections,
            timeout=self._background_timeout_s,
            # No socket timeout: with one, redis-py sends through asyncio.wait_for, which on
            # Python 3.11 can swallow a cancellation (the caller's timeout, or close()). Every
            # call here is bounded by an asyncio.timeout of its own instead.
            socket_timeout=None,
            socket_connect_timeout=self._background_timeout_s,
            retry=Retry(NoBackoff(), 0),  # the breaker decides when to try again
        )
        self.redis = RedisStore(
            Redis.from_pool(pool), key_prefix=self._key_prefix, timeout_s=self._background_timeout_s, clock=self._clock
        )
        self._renewer = asyncio.get_running_loop().create_task(self._renew_loop(), name="rate-limit-renew")
        if await self._call("ping", self._background_timeout_s, self.redis.client.ping()) is None:
            self.breaker.trip()

    async def flush(self, timeout_s: float | None = None) -> bool:
        """Wait until the queued releases have been sent; False if that takes longer than `timeout_s`."""
        releaser = self._releaser
        if releaser is None:
            return True
        try:
            async with asyncio.timeout(timeout_s or self._background_timeout_s):
                await asyncio.shield(releaser)
        except TimeoutError:
            return False
        return True

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self.flush()  # Redis frees those slots now rather than at lease end
        tasks = [task for task in (self._renewer, self._prober, self._releaser) if task is not None]
        for task in tasks:
            task.cancel()
        if tasks:  # bounded: the loops also end on their own once they see `_closed`
            await asyncio.wait(tasks, timeout=self._background_timeout_s)
        if self.redis is not None:
            await self.redis.close()

    # -- the request path ---------------------------------------------------------------

    def plan(self, tenant: Tenant, share: float = 1.0) -> Plan:
        """The tenant's limits as GCRA parameters; `share`: the fraction this store enforces."""
        rpm, tpm, concurrent = tenant.requests_per_minute, tenant.tokens_per_minute, tenant.max_concurrent
        return Plan(
            tenant.name,
            Rate.of(rpm * share, self.burst_s) if rpm else None,
            Rate.of(tpm * share, self.burst_s) if tpm else None,
            max(1, math.ceil(concurrent * share)) if concurrent else 0,
        )

    async def admit(self, tenant: Tenant) -> Admission:
        """Charge one request and take a concurrency slot, or refuse: never raises."""
        admitted, limited, _ = self.metrics.of(tenant.name)
        if not tenant.limited:
            admitted.inc()
            return Admission(self, tenant)
        refused = self._still_refused(tenant)
        if refused is not None:
            limited[refused.reason or "requests"].inc()
            return refused
        request_id = f"{self._instance}:{next(self._ids)}"
        store: Literal["redis", "local"] = "redis"
        result: AdmitResult | None = None
        plan = self.plan(tenant)
        if self.redis is not None and self.breaker.allow():
            # Releases not yet sent go with the admission: a slot this replica gave back is
            # free for it, even if the admission overtakes the background release.
            released = self._releases.pop(tenant.name, [])
            admit = self.redis.admit(plan, request_id, self._lease_us, released)
            result = await self._call("admit", self._timeout_s, admit)
            if result is None:
                # A timed-out script may still have run: take its slot back, off the request path.
                for finished in released + ([request_id] if plan.max_concurrent else []):
                    self._queue_release(plan.scope, finished)
        if result is None:
            store, plan = "local", self._local_plan(tenant)
            result = self.local.admit(plan, request_id)
        admission = self._admission(tenant, plan, result, store, request_id)
        if admission.allowed:
            admitted.inc()
            if admission.request_id is not None and store == "redis":
                self._held.setdefault(tenant.name, set()).add(request_id)
        else:
            limited[admission.reason or "requests"].inc()
            if admission.reason != "concurrency":
                # TATs only move forward: this refusal stands until its wait is over, so until
                # then the tenant is refused here without a round trip (a client hammering past
                # its limit costs no Redis calls). A concurrency slot may free at any moment.
                self._refused[tenant.name] = (self._monotonic() + admission.retry_after_s, admission)
        return admission

    def _still_refused(self, tenant: Tenant) -> Admission | None:
        found = self._refused.get(tenant.name)
        if found is None:
            return None
        until, refused = found
        wait = until - self._monotonic()
        if wait <= 0 or refused.tenant != tenant:  # over, or the tenant's limits were reloaded
            del self._refused[tenant.name]
            return None
        elapsed = refused.retry_after_s - wait
        return Admission(self, tenant, allowed=False, reason=refused.reason, retry_after_s=wait,
                         requests=refused.requests and refused.requests.later(elapsed),
                         tokens=refused.tokens and refused.tokens.later(elapsed), store=refused.store)  # fmt: skip

    async def charge_tokens(self, admission: Admission, tokens: int) -> None:
        tenant = admission.tenant
        _, limited, charged = self.metrics.of(tenant.name)
        if not tenant.tokens_per_minute or tokens <= 0:
            charged.inc(max(0, tokens))
            return
        plan = self.plan(tenant)
        assert plan.tokens is not None
        if tokens > plan.tokens.capacity:
            raise InvalidRequestError(
                f"Request too large for tenant {tenant.name!r}: {tokens} tokens, more than its tokens-per-minute "
                f"budget allows at once ({math.floor(plan.tokens.capacity)}); send fewer or shorter inputs",
                param="input",
                code="tokens_over_limit",
            )
        result: ChargeResult | None = None
        if self.redis is not None and self.breaker.allow():
            result = await self._call("charge", self._timeout_s, self.redis.charge(plan, tokens))
        cost: float = tokens
        if result is None:
            plan = self._local_plan(tenant)
            assert plan.tokens is not None
            # A request larger than this replica's share passes once that share is whole.
            cost = min(tokens, plan.tokens.capacity)
            result = self.local.charge(plan, cost)
        rate = plan.tokens
        assert rate is not None
        admission.tokens = Quota.of(rate, result.tat_us, result.now_us)
        if result.allowed:
            charged.inc(tokens)
            return
        admission.allowed, admission.reason = False, "tokens"
        admission.retry_after_s = rate.wait_us(result.tat_us, result.now_us, cost) / 1e6
        limited["tokens"].inc()
        raise admission.error(requested_tokens=tokens)

    def release(self, admission: Admission) -> None:
        request_id, scope = admission.request_id, admission.tenant.name
        if request_id is None:
            return
        admission.request_id = None
        if admission.store == "local":
            self.local.release(scope, request_id)
            return
        held = self._held.get(scope)
        if held is not None:
            held.discard(request_id)
            if not held:
                del self._held[scope]
        if not self._closed:
            self._queue_release(scope, request_id)  # if Redis cannot be told, the lease runs out

    # -- internals ----------------------------------------------------------------------

    def _local_plan(self, tenant: Tenant) -> Plan:
        if self.redis_url is not None:
            self.metrics.fallback.inc()
        return self.plan(tenant, 1.0 / self.replicas)

    def _admission(
        self, tenant: Tenant, plan: Plan, result: AdmitResult, store: Literal["redis", "local"], request_id: str
    ) -> Admission:
        now = result.now_us
        requests = Quota.of(plan.requests, result.requests_tat_us, now) if plan.requests else None
        tokens = Quota.of(plan.tokens, result.tokens_tat_us, now) if plan.tokens else None
        if result.allowed:
            held = request_id if plan.max_concurrent else None
            return Admission(self, tenant, requests=requests, tokens=tokens, request_id=held, store=store)
        # Refused: the reason is the limit that refuses longest, and its wait the retry-after
        # (retrying when a shorter one clears would meet the longer one).
        waits: list[tuple[Reason, float]] = []
        if plan.requests is not None and (wait := plan.requests.wait_us(result.requests_tat_us, now)) > 0:
            waits.append(("requests", wait / 1e6))
        if plan.tokens is not None and (wait := plan.tokens.wait_us(result.tokens_tat_us, now)) > 0:
            waits.append(("tokens", wait / 1e6))
        if plan.max_concurrent and result.in_flight >= plan.max_concurrent:
            waits.append(("concurrency", CONCURRENCY_RETRY_S))
        reason, retry = max(waits, key=lambda item: item[1], default=("requests", CONCURRENCY_RETRY_S))
        return Admission(self, tenant, allowed=False, reason=reason, retry_after_s=retry, requests=requests,
                         tokens=tokens, store=store)  # fmt: skip

    def _queue_release(self, scope: str, request_id: str) -> None:
        self._releases.setdefault(scope, []).append(request_id)
        if self._releaser is None:
            self._releaser = asyncio.get_running_loop().create_task(self._send_releases(), name="rate-limit-release")

    async def _send_releases(self) -> None:
        try:
            while self._releases:
                if not self._closed:
                    await asyncio.sleep(RELEASE_LINGER_S)
                batch, self._releases = self._releases, {}
                if self.redis is not None and self.breaker.allow():
                    await self._call("release", self._background_timeout_s, self.redis.release_many(batch))
        finally:
            self._releaser = None

    async def _renew_loop(self) -> None:
        # A heartbeat, not a poll: slots of running requests must outlive their lease.
        while not self._closed:
            await asyncio.sleep(self._renew_every_s)
            if self.redis is None or not self._held or not self.breaker.allow():
                continue
            for scope, ids in list(self._held.items()):
                renewal = self.redis.renew(scope, list(ids), self._lease_us)
                await self._call("renew", self._background_timeout_s, renewal)

    async def _call(self, op: str, timeout_s: float, call: Awaitable[T]) -> T | None:
        """`call`'s result, or None once it failed or took longer than `timeout_s` (counted, fed to the breaker)."""
        started = time.perf_counter()
        task = asyncio.current_task()
        cancelling = task.cancelling() if task is not None else 0
        failure: Exception | None = None
        try:
            async with asyncio.timeout(timeout_s):
                result = await call
        except Exception as exc:  # not CancelledError: a cancelled request is no Redis failure
            failure = exc
        finally:
            self.metrics.redis_op_duration[op].observe(time.perf_counter() - started)
        if task is not None and task.cancelling() > cancelling:
            # A cancellation a client library swallowed (or turned into an error): honour it.
            raise asyncio.CancelledError
        if failure is not None:
            kind = "timeout" if isinstance(failure, TimeoutError | RedisTimeoutError) else (
                "connection" if isinstance(failure, RedisConnectionError | OSError) else "response")  # fmt: skip
            self._last_error = f"{op} {kind}: {type(failure).__name__}: {failure}"
            self.metrics.redis_errors.labels(kind).inc()
            self.breaker.record_failure()
            return None
        self.breaker.record_success()
        return result

    def _on_breaker(self, state: BreakerState) -> None:
        self.metrics.breaker_state.set(state)
        if state is BreakerState.CLOSED:
            log.info("rate limiter: Redis %s answering again; limits shared across replicas", self._where)
        elif state is BreakerState.OPEN and (self._prober is None or self._prober.done()) and not self._closed:
            log.warning("rate limiter: Redis %s unavailable (%s); limiting in process at 1/%d of each limit, "
                        "probing every %.3gs", self._where, self._last_error, self.replicas,
                        self.breaker.reset_timeout_s)  # fmt: skip
            self._prober = asyncio.get_running_loop().create_task(self._probe(), name="rate-limit-probe")

    async def _probe(self) -> None:
        while self.breaker.state is BreakerState.OPEN and not self._closed:
            await asyncio.sleep(self.breaker.retry_in())
            if self.breaker.begin_probe() and self.redis is not None:
                await self._call("ping", self._background_timeout_s, self.redis.client.ping())

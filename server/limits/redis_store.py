"""The limiter's state in Redis, shared by every replica: one Lua script per decision, so
each check-and-charge is atomic and costs one EVALSHA round trip.

Keys per tenant (the `{tenant}` hash tag keeps a tenant's keys on one Redis Cluster slot):
`<prefix>{tenant}:requests` and `:tokens` hold a TAT (a string, unix microseconds) that
expires a minute after the bucket is full again: past that moment the key means nothing, so
the expiry only collects idle tenants' keys (the minute keeps a test's fake clock clear of it);
`<prefix>{tenant}:in_flight` is a sorted set of request ids scored by lease expiry, so the
requests of a replica that crashed stop counting once their lease runs out. Holders renew
their leases while they run (`renew`).

The clock is Redis's own (TIME), so replicas need not agree on the time; tests pass `now`.
Numbers cross as strings: Redis turns a Lua number reply into an integer.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import deque
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import hiredis
from redis.asyncio import Redis
from redis.exceptions import NoScriptError, ResponseError

from server.limits.gcra import AdmitResult, ChargeResult, Plan


@dataclass(frozen=True, slots=True)
class Script:
    source: str
    sha: str

    @classmethod
    def of(cls, source: str) -> Script:
        return cls(source, hashlib.sha1(source.encode()).hexdigest())


_PRELUDE = """
local function fmt(x) return string.format('%.17g', x) end
local now = tonumber(ARGV[1])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local function tat_of(key) return math.max(tonumber(redis.call('GET', key) or 0) or 0, now) end
local function store(key, tat) redis.call('SET', key, fmt(tat), 'PX', math.ceil((tat - now) / 1000) + 60000) end
"""

# KEYS: requests TAT, tokens TAT, in-flight set.
# ARGV: now|'', requests interval, requests tau, tokens interval, tokens tau (interval 0: no
# such limit), max concurrent (0: none), request id, lease in microseconds, then the ids of
# this replica's finished requests of the tenant not yet released (removed first, so a slot
# given back is free for the next admission however the two race).
# Admission charges one request; it only checks that a token is left (tokens are charged
# once counted). Nothing is charged unless every check passes.
ADMIT = Script.of(
    _PRELUDE
    + """
local r_interval, r_tau = tonumber(ARGV[2]), tonumber(ARGV[3])
local t_interval, t_tau = tonumber(ARGV[4]), tonumber(ARGV[5])
local max_concurrent, lease = tonumber(ARGV[6]), tonumber(ARGV[8])
local r_tat, t_tat, in_flight = now, now, 0
local allowed = true
for i = 9, #ARGV do redis.call('ZREM', KEYS[3], ARGV[i]) end
if r_interval > 0 then
  r_tat = tat_of(KEYS[1])
  if r_tat + r_interval - r_tau > now then allowed = false end
end
if t_interval > 0 then
  t_tat = tat_of(KEYS[2])
  if t_tat + t_interval - t_tau > now then allowed = false end
end
if max_concurrent > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', fmt(now))
  in_flight = redis.call('ZCARD', KEYS[3])
  if in_flight >= max_concurrent then allowed = false end
end
if allowed then
  if r_interval > 0 then
    r_tat = r_tat + r_interval
    store(KEYS[1], r_tat)
  end
  if max_concurrent > 0 then
    redis.call('ZADD', KEYS[3], fmt(now + lease), ARGV[7])
    redis.call('PEXPIRE', KEYS[3], math.ceil(lease / 1000) + 1)
    in_flight = in_flight + 1
  end
end
return {allowed and 1 or 0, fmt(now), fmt(r_tat), fmt(t_tat), in_flight}
"""
)

# KEYS: tokens TAT. ARGV: now|'', interval, tau, tokens. Charged only if they fit.
CHARGE = Script.of(
    _PRELUDE
    + """
local interval, tau, cost = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local tat = tat_of(KEYS[1])
local new_tat = tat + cost * interval
if new_tat - tau > now then return {0, fmt(now), fmt(tat)} end
store(KEYS[1], new_tat)
return {1, fmt(now), fmt(new_tat)}
"""
)

# KEYS: in-flight set. ARGV: now|'', lease, request ids. Only ids still present are extended:
# one whose lease already ran out has given its slot away.
RENEW = Script.of(
    _PRELUDE
    + """
local lease = tonumber(ARGV[2])
for i = 3, #ARGV do redis.call('ZADD', KEYS[1], 'XX', fmt(now + lease), ARGV[i]) end
redis.call('PEXPIRE', KEYS[1], math.ceil(lease / 1000) + 1)
return 0
"""
)


class _Call:
    __slots__ = ("future", "packed", "script")

    def __init__(self, script: Script, keys: Sequence[str], args: Sequence[object]) -> None:
        self.script = script
        # hiredis packs in C: a quarter of the time redis-py's Python packer takes, which is the
        # largest client-side cost of a script call.
        command = (b"EVALSHA", script.sha, str(len(keys)), *keys, *(a if isinstance(a, str) else str(a) for a in args))
        self.packed: bytes = hiredis.pack_command(command)
        self.future: asyncio.Future[Any] | None = None


class MergedScripts:
    """Concurrent script calls share round trips: at most one write in flight, and every call
    made meanwhile goes in the next. Idle, a call is sent at once from its caller; busy, it
    waits at most one round trip more. This keeps a burst of admissions off the connection
    pool's queue (where they would wait out their timeout) and divides the per-call costs
    (syscalls, pool, parsing) among them. A caller bounds its own wait; cancelling it drops a
    call not yet sent."""

    def __init__(self, client: Redis, *, timeout_s: float = 1.0, max_calls: int = 128) -> None:
        self._client = client
        self._timeout_s = timeout_s
        self._max_calls = max_calls
        self._waiting: deque[_Call] = deque()
        self._sender: asyncio.Task[None] | None = None
        self._direct = False  # a call sent by its caller is in flight
        self.round_trips = 0  # (tests, benchmarks)

    async def run(self, script: Script, keys: Sequence[str], args: Sequence[object]) -> Any:
        call = _Call(script, keys, args)
        if self._sender is None and not self._direct:
            # Idle: no task, no future, straight from the caller.
            self._direct = True
            try:
                (result,) = await self._execute([call])
            finally:
                self._direct = False
                self._start_sender()
            if isinstance(result, Exception):
                raise result
            return result
        call.future = asyncio.get_running_loop().create_future()
        self._waiting.append(call)
        if not self._direct:
            self._start_sender()
        return await call.future

    async def close(self) -> None:
        if self._sender is not None:
            self._sender.cancel()
            await asyncio.wait([self._sender], timeout=self._timeout_s)

    def _start_sender(self) -> None:
        if self._waiting and self._sender is None:
            self._sender = asyncio.get_running_loop().create_task(self._send(), name="rate-limit-scripts")

    async def _send(self) -> None:
        try:
            while self._waiting:
                batch: list[_Call] = []
                while self._waiting and len(batch) < self._max_calls:
                    call = self._waiting.popleft()
                    if call.future is not None and not call.future.done():
                        batch.append(call)
                if not batch:
                    continue
                try:
                    async with asyncio.timeout(self._timeout_s):
                        results = await self._execute(batch)
                except Exception as exc:  # every call of the batch fails alike; the limiter falls back
                    results = [exc] * len(batch)
                for call, result in zip(batch, results):
                    future = call.future
                    if future is None or future.done():
                        continue
                    if isinstance(result, Exception):
                        future.set_exception(result)
                    else:
                        future.set_result(result)
        finally:
            self._sender = None

    async def _execute(self, batch: list[_Call]) -> list[Any]:
        """Each call's reply, or its error reply as an exception (a failed round trip raises)."""
        results = await self._round_trip(batch)
        missing = [slot for slot, result in enumerate(results) if isinstance(result, NoScriptError)]
        if missing:  # a restarted or flushed Redis: load the scripts once, run those calls again
            for script in {batch[slot].script for slot in missing}:
                await self._client.script_load(script.source)
            for slot, result in zip(missing, await self._round_trip([batch[slot] for slot in missing])):
                results[slot] = result
        return results

    async def _round_trip(self, batch: list[_Call]) -> list[Any]:
        """One write, then one reply per call, on one pooled connection (what redis-py's own
        pipeline does, without its packer)."""
        self.round_trips += 1
        pool = self._client.connection_pool
        connection = await pool.get_connection()
        try:
            await connection.send_packed_command(b"".join(call.packed for call in batch))
            results: list[Any] = []
            for _ in batch:
                try:
                    results.append(await connection.read_response())
                except ResponseError as exc:  # an error reply: read in full, the stream stays in step
                    results.append(exc)
            return results
        except BaseException:
            # Replies may be left unread (a timeout, a cancelled caller): never reuse the stream.
            await connection.disconnect(nowait=True)
            raise
        finally:
            await pool.release(connection)


class RedisStore:
    """The three scripts on one client. Calls raise on any Redis failure; the limiter decides
    what a failure means (it falls back to the local store)."""

    def __init__(
        self,
        client: Redis,
        *,
        key_prefix: str = "embed:rl:",
        timeout_s: float = 1.0,
        clock: Callable[[], float] | None = None,
    ) -> None:
        """`timeout_s`: the longest one pipeline may take (callers bound their own waits tighter)."""
        self.client = client
        self.key_prefix = key_prefix
        self._clock = clock
        self.scripts = MergedScripts(client, timeout_s=timeout_s)

    def keys(self, scope: str) -> tuple[str, str, str]:
        base = f"{self.key_prefix}{{{scope}}}:"
        return base + "requests", base + "tokens", base + "in_flight"

    def in_flight_key(self, scope: str) -> str:
        return f"{self.key_prefix}{{{scope}}}:in_flight"

    async def admit(self, plan: Plan, request_id: str, lease_us: float, released: Sequence[str] = ()) -> AdmitResult:
        """`released`: ids of the tenant's finished requests to remove from its in-flight set first."""
        requests, tokens = plan.requests, plan.tokens
        args = (
            self._now(),
            requests.interval_us if requests else 0,
            requests.tau_us if requests else 0,
            tokens.interval_us if tokens else 0,
            tokens.tau_us if tokens else 0,
            plan.max_concurrent,
            request_id,
            lease_us,
            *released,
        )
        allowed, now, requests_tat, tokens_tat, in_flight = await self.scripts.run(ADMIT, self.keys(plan.scope), args)
        return AdmitResult(allowed == 1, float(now), float(requests_tat), float(tokens_tat), int(in_flight))

    async def charge(self, plan: Plan, tokens: float) -> ChargeResult:
        rate = plan.tokens
        assert rate is not None
        keys = (self.keys(plan.scope)[1],)
        args = (self._now(), rate.interval_us, rate.tau_us, tokens)
        allowed, now, tat = await self.scripts.run(CHARGE, keys, args)
        return ChargeResult(allowed == 1, float(now), float(tat))

    async def release_many(self, request_ids: Mapping[str, Collection[str]]) -> None:
        """Remove the ids (by tenant) from the in-flight sets: one pipeline, one ZREM per tenant."""
        pipe = self.client.pipeline(transaction=False)
        for scope, ids in request_ids.items():
            pipe.zrem(self.in_flight_key(scope), *ids)
        await pipe.execute()

    async def renew(self, scope: str, request_ids: Collection[str], lease_us: float) -> None:
        await self.scripts.run(RENEW, (self.in_flight_key(scope),), (self._now(), lease_us, *request_ids))

    async def close(self) -> None:
        await self.scripts.close()
        await self.client.aclose()

    def _now(self) -> str:
        return "" if self._clock is None else repr(self._clock() * 1e6)

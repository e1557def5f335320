"""The per-model input queue: admission by queued tokens, batches by a padded-token budget,
fair turns between requests.

Producers (the event loop) add a request's inputs all at once or not at all; consumers
(worker threads) block on a condition until there is work.

A batch is *anchored* on the first waiting input of the request whose turn it is, then
filled with queued inputs nearest in length to the anchor (padding stays small) and never
much longer or shorter than it (`compatible`): a short query must not wait for a batch of
long document windows. A batch anchored on a small request (a query) takes only other small
requests' inputs: filled with a bulk job's, it would run as long as any of the job's batches.
A batch costs `longest × count` tokens. Turns: a request waits with the turn number current
at its arrival; once served it goes behind every request that
arrived meanwhile. So a huge document (hundreds of windows) and short requests alternate
instead of the short ones waiting for the whole document, and no request starves.
Tenants take turns the same way, one level up: when a tenant's request is served, all of
that tenant's requests go behind the other tenants' (round-robin between tenants, then
between requests within a tenant), so one tenant's many concurrent ingestion requests do not
push another tenant's single queries back by a batch each.

Batches are chosen twice: `peek` proposes one (the former prepares it while the replicas
run) and `claim` commits whatever the queue holds *when a replica is free*. Until then the
proposed inputs stay queued, so a request that arrives meanwhile with an earlier turn goes
first instead of waiting behind the prepared batch, and cancelled inputs simply vanish.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterable

from server.scheduling.pending import InputState, PendingRequest, QueuedInput


class QueueClosedError(Exception):
    pass


def compatible(anchor: int, tokens: int) -> bool:
    """May an input of `tokens` share a batch anchored on one of `anchor` tokens? Within about
    a factor of two: a batch costs its slowest row, so a 10-token query batched with
    256-token windows would wait as long as they do."""
    short, long = sorted((anchor, tokens))
    return long <= 2 * short + 64


# Requests of at most this many inputs are interactive (queries): their batches are filled only
# with other such requests, never with a bulk job's inputs.
SMALL_REQUEST_INPUTS = 16


def is_small(request: PendingRequest) -> bool:
    return len(request.results) <= SMALL_REQUEST_INPUTS


class BatchQueue:
    def __init__(
        self,
        *,
        max_batch_tokens: int,
        max_batch_size: int,
        max_queue_tokens: int,
        lookahead: int = 1024,
    ) -> None:
        self.max_batch_tokens = max_batch_tokens
        self.max_batch_size = max_batch_size
        self.max_queue_tokens = max_queue_tokens
        self._lookahead = lookahead
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        # Waiting requests in arrival order, each with its queued inputs in order.
        self._waiting: dict[PendingRequest, deque[QueuedInput]] = {}
        self._round = 0
        self._tenant_turns: dict[str, int] = {}  # tenant -> its turn, set when it was last served
        self._expected = 1  # requests the previous batch served: how many to wait for
        self._live = 0
        self._queued_tokens = 0
        self._tenant_tokens: dict[str, int] = {}  # queued tokens per tenant with any queued
        self._closed = False

    # -- producer side -------------------------------------------------------------

    @property
    def queued_tokens(self) -> int:
        return self._queued_tokens

    @property
    def queued_inputs(self) -> int:
        return self._live

    def tokens_ahead(self, tenant: str, tokens: int) -> int:
        """About how many queued tokens run before a new request of `tenant` with `tokens` tokens
        is done: tenants take turns, so each tenant with work queued runs about as much as this
        one (its queued tokens plus the request), and no more than it has queued."""
        with self._lock:
            own = self._tenant_tokens.get(tenant, 0) + tokens
            others = sum(min(queued, own) for name, queued in self._tenant_tokens.items() if name != tenant)
        return own + others

    def is_full(self) -> bool:
        return self._queued_tokens >= self.max_queue_tokens

    def put(self, items: list[QueuedInput]) -> bool:
        """Queue all of one request's `items`, or none if that would pass the token bound."""
        if not items:
            return True
        tokens = sum(item.tokens for item in items)
        request = items[0].request
        with self._lock:
            if self._closed:
                raise QueueClosedError("the queue is closed")
            if self._queued_tokens + tokens > self.max_queue_tokens:
                return False
            now = time.perf_counter()
            for item in items:
                item.enqueued_at = now
            if request not in self._waiting:
                request.turn = self._round
                self._waiting[request] = deque()
            self._waiting[request].extend(items)
            request.queued += len(items)
            self._live += len(items)
            self._queued_tokens += tokens
            self._tenant_tokens[request.tenant] = self._tenant_tokens.get(request.tenant, 0) + tokens
            self._changed.notify_all()
        return True

    def discard(self, items: Iterable[QueuedInput]) -> None:
        """Forget inputs nobody waits for any more (cancelled or disconnected requests)."""
        with self._lock:
            for item in items:
                if item.state is InputState.QUEUED:
                    self._leave(item, InputState.DROPPED)

    def close(self) -> None:
        """No more inputs; consumers drain what is queued, then get None."""
        with self._lock:
            self._closed = True
            self._changed.notify_all()

    # -- consumer side -------------------------------------------------------------

    def peek(self, wait_s: float = 0.0, *, share: int = 1) -> list[QueuedInput] | None:
        """Block until a batch can be formed and propose it (its inputs stay queued until a
        `claim`); None once closed and drained.

        Under steady load, a batch that starts the moment the first request arrives holds
        one input while the rest of the clients' requests land just after it, and sizes then
        alternate between tiny and large. So with `wait_s` > 0 the first input waits (up to
        `wait_s`) until as many requests are queued as the previous batch served. The
        expectation follows the load: after a lone request it is one (no wait), and a lone
        request after a busy spell waits at most `wait_s`, once.

        `share`: how many idle consumers the queued work is split between (see `claim`).
        """
        with self._changed:
            while True:
                while not self._closed and not self._live:
                    self._changed.wait()
                if not self._live:
                    return None  # closed and drained
                if wait_s > 0:
                    deadline = time.perf_counter() + wait_s
                    while not self._closed and len(self._waiting) < self._expected and not self._batch_full():
                        # Woken by every put(); the deadline bounds the wait.
                        remaining = deadline - time.perf_counter()
                        if remaining <= 0:
                            break
                        self._changed.wait(remaining)
                if proposal := self._choose(share):
                    return proposal
                # A replica claimed everything meanwhile (or all was cancelled): wait for new work.

    def take(self, wait_s: float = 0.0, *, share: int = 1) -> list[QueuedInput] | None:
        """`peek` and `claim` at once (a consumer with nothing to prepare ahead)."""
        if self.peek(wait_s, share=share) is None:
            return None
        return self.claim(share=share)

    def claim(self, *, share: int = 1) -> list[QueuedInput]:
        """Commit the batch the queue holds now (empty if nothing is queued): usually the last
        proposal plus arrivals that fit, minus cancelled inputs, or a request whose turn came first.

        With `share` idle replicas (this one included) a batch takes at most its share of the
        queued inputs, so the others start at once on the rest instead of idling while one
        replica runs everything (what greedy batches do with closed-loop clients: all of them
        wait on the same batch, come back together, and fill one batch again)."""
        with self._lock:
            chosen = self._choose(share)
            if chosen:
                self._commit(chosen)
            return chosen

    # -- internals (lock held) -----------------------------------------------------

    def _batch_full(self) -> bool:
        return self._live >= self.max_batch_size or self._queued_tokens >= self.max_batch_tokens

    def _leave(self, item: QueuedInput, state: InputState) -> None:
        item.state = state
        item.request.queued -= 1
        self._live -= 1
        self._queued_tokens -= item.tokens
        left = self._tenant_tokens[item.request.tenant] - item.tokens
        if left:
            self._tenant_tokens[item.request.tenant] = left
        else:
            del self._tenant_tokens[item.request.tenant]

    def _candidates(self) -> list[QueuedInput]:
        """Live inputs, requests in turn order (ties: arrival), up to the lookahead."""
        candidates: list[QueuedInput] = []
        turns = self._tenant_turns
        for request in sorted(self._waiting, key=lambda r: (turns.get(r.tenant, 0), r.turn)):
            queue = self._waiting[request]
            for item in queue:
                if item.state is InputState.QUEUED and request.cancelled:
                    self._leave(item, InputState.DROPPED)
                elif item.state is InputState.QUEUED:
                    candidates.append(item)
                    if len(candidates) >= self._lookahead:
                        return candidates
        return candidates

    def _choose(self, share: int = 1) -> list[QueuedInput]:
        candidates = self._candidates()
        if not candidates:
            return []
        limit = min(self.max_batch_size, -(-self._live // max(1, share)))
        chosen = [candidates.pop(0)]
        anchor = width = chosen[0].tokens
        if is_small(chosen[0].request):
            # A query's batch runs as long as its longest row times its rows: filled with a bulk
            # job's inputs it would take a full batch. Small requests still share batches.
            candidates = [item for item in candidates if is_small(item.request)]
        # Nearest in length to the anchor first; ties go to the earlier candidate.
        ranked = sorted(range(len(candidates)), key=lambda i: (abs(candidates[i].tokens - anchor), i))
        for index in ranked:
            if len(chosen) >= limit:
                break
            item = candidates[index]
            padded = max(width, item.tokens) * (len(chosen) + 1)
            if padded > self.max_batch_tokens or not compatible(anchor, item.tokens):
                continue
            chosen.append(item)
            width = max(width, item.tokens)
        return chosen

    def _commit(self, chosen: list[QueuedInput]) -> None:
        self._round += 1
        self._expected = len({id(item.request) for item in chosen})
        for item in chosen:
            self._leave(item, InputState.TAKEN)
            # Served: behind every request that arrived before this batch, and its tenant
            # behind every other tenant.
            item.request.turn = self._round + 1
            self._tenant_turns[item.request.tenant] = self._round + 1
        self._forget_finished()

    def _forget_finished(self) -> None:
        for request, queue in list(self._waiting.items()):
            if not request.queued:
                del self._waiting[request]
            elif len(queue) > 2 * request.queued + 16:  # inputs were taken from the middle
                self._waiting[request] = deque(item for item in queue if item.state is InputState.QUEUED)

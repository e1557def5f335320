"""A request waiting for its inputs' vectors, and the queued form of each input.

Payload and queue entry have different names (as in Infinity): an `EngineInput` is what the
engine computes; a `QueuedInput` adds who waits for it and since when.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from models.engines.base import EngineInput


class ClientDisconnectedError(Exception):
    """The client went away; its queued inputs were dropped."""


class PendingRequest:
    """Collects one result per input; lives on the event loop, fed by the worker threads."""

    __slots__ = (
        "cancelled",
        "first_started",
        "future",
        "last_finished",
        "queued",
        "remaining",
        "results",
        "tenant",
        "turn",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop, count: int, tenant: str = "") -> None:
        self.future: asyncio.Future[list[Any]] = loop.create_future()
        self.tenant = tenant  # requests of one tenant share its turns (BatchQueue)
        self.results: list[Any] = [None] * count
        self.remaining = count
        # Read by worker threads to skip work nobody waits for.
        self.cancelled = False
        # Kept by the BatchQueue (under its lock): scheduling turn, inputs still queued.
        self.turn = 0
        self.queued = 0
        # When its first batch started and its last one finished (perf_counter; 0: not yet).
        self.first_started = 0.0
        self.last_finished = 0.0

    def ran(self, started: float, finished: float) -> None:
        """One of its batches ran from `started` to `finished` (on the event loop)."""
        if not self.first_started or started < self.first_started:
            self.first_started = started
        self.last_finished = max(self.last_finished, finished)

    def fulfil(self, slot: int, value: Any) -> None:
        if self.future.done():
            return
        self.results[slot] = value
        self.remaining -= 1
        if self.remaining == 0:
            self.future.set_result(self.results)

    def fail(self, exc: BaseException) -> None:
        if not self.future.done():
            self.future.set_exception(exc)


class InputState(Enum):
    QUEUED = 1
    TAKEN = 2
    DROPPED = 3


@dataclass(slots=True, eq=False)
class QueuedInput:
    payload: EngineInput
    request: PendingRequest
    slot: int
    tokens: int
    enqueued_at: float = field(default_factory=time.perf_counter)
    state: InputState = InputState.QUEUED

    @property
    def live(self) -> bool:
        return self.state is InputState.QUEUED and not self.request.cancelled

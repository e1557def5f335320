"""Identical inputs in flight at the same time are computed once.

Each distinct input key in flight has one entry (a future). A request that needs a key
already in flight waits on that entry; the keys nobody is computing yet are computed in one
task that belongs to no request, so a requester that goes away does not fail the others
waiting on the same keys. A task is cancelled (and its queued inputs dropped before they cost
compute) once none of its keys has a waiter left.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Any, Generic, TypeVar

from server.scheduling.pending import ClientDisconnectedError

Key = TypeVar("Key", bound=Hashable)
Payload = TypeVar("Payload")

ComputeFn = Callable[[list[Any]], Awaitable[list[Any]]]


class _Entry:
    __slots__ = ("future", "task", "waiters")

    def __init__(self, future: asyncio.Future[Any]) -> None:
        self.future = future
        self.waiters = 0
        self.task: asyncio.Task[None] | None = None


class Coalescer(Generic[Key, Payload]):
    def __init__(self, compute: ComputeFn) -> None:
        self._compute = compute
        self._inflight: dict[Key, _Entry] = {}
        self._task_entries: dict[asyncio.Task[None], list[_Entry]] = {}
        self.computed = 0  # distinct inputs this coalescer sent to compute (for metrics and tests)

    def __len__(self) -> int:
        return len(self._inflight)

    async def run(
        self, keys: Sequence[Key], payloads: Sequence[Payload], abandon: Awaitable[Any] | None = None
    ) -> list[Any]:
        """One result per key, in order; duplicates (within and across calls) computed once."""
        loop = asyncio.get_running_loop()
        mine: dict[Key, _Entry] = {}
        fresh: list[tuple[Key, Payload]] = []
        for key, payload in zip(keys, payloads, strict=True):
            if key in mine:
                continue
            entry = self._inflight.get(key)
            if entry is None:
                entry = self._inflight[key] = _Entry(loop.create_future())
                fresh.append((key, payload))
            entry.waiters += 1
            mine[key] = entry
        if fresh:
            self._start(fresh)
        try:
            await _wait_all([entry.future for entry in mine.values()], abandon)
        finally:
            self._leave(mine.values())
        return [mine[key].future.result() for key in keys]

    def _start(self, fresh: list[tuple[Key, Payload]]) -> None:
        entries = [self._inflight[key] for key, _ in fresh]
        coroutine = self._compute_into([key for key, _ in fresh], [p for _, p in fresh], entries)
        task = asyncio.ensure_future(coroutine)  # kept in _task_entries
        self._task_entries[task] = entries
        for entry in entries:
            entry.task = task
        self.computed += len(fresh)

    async def _compute_into(self, keys: list[Key], payloads: list[Payload], entries: list[_Entry]) -> None:
        try:
            results = await self._compute(payloads)
        except BaseException as exc:
            for entry in entries:
                if not entry.future.done():
                    entry.future.set_exception(exc if isinstance(exc, Exception) else asyncio.CancelledError())
                    entry.future.exception()  # retrieved: nobody may be left to read it
            if not isinstance(exc, Exception):
                raise
        else:
            for entry, result in zip(entries, results, strict=True):
                entry.future.set_result(result)
        finally:
            for key, entry in zip(keys, entries, strict=True):
                if self._inflight.get(key) is entry:
                    del self._inflight[key]
            self._task_entries.pop(asyncio.current_task(), None)  # type: ignore[arg-type]

    def _leave(self, entries: Any) -> None:
        tasks = set()
        for entry in entries:
            entry.waiters -= 1
            if entry.task is not None and not entry.task.done():
                tasks.add(entry.task)
        for task in tasks:
            task_entries = self._task_entries.get(task, ())
            if all(entry.waiters == 0 for entry in task_entries):
                # Nobody waits for any of its keys: drop its queued inputs. Later requests for
                # those keys must start afresh, not join a computation that is being cancelled.
                for key, entry in list(self._inflight.items()):
                    if entry in task_entries:
                        del self._inflight[key]
                task.cancel()


async def _wait_all(futures: list[asyncio.Future[Any]], abandon: Awaitable[Any] | None) -> None:
    """Wait for every future, or until `abandon` fires; never cancels the (shared) futures."""
    remaining: set[Any] = set(futures)
    watch = {abandon} if abandon is not None else set()
    while remaining:
        done, _ = await asyncio.wait(remaining | watch, return_when=asyncio.FIRST_COMPLETED)
        if watch & done:
            raise ClientDisconnectedError
        for future in done:
            if future.exception() is not None:
                raise future.exception()  # type: ignore[misc]
        remaining -= done

"""The per-model input queue: admission by queued tokens, batches by a padded-token budget.

Producers (the event loop) add whole requests at once or not at all; consumers (worker
threads) block on a condition until there is work. A batch always contains the oldest live
input (no starvation) and is filled with the queued inputs closest to it in length, so that
padding stays small; its cost is `longest × count` tokens, the padded size.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterable

from server.scheduling.pending import InputState, QueuedInput


class QueueClosedError(Exception):
    pass


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
        self._items: deque[QueuedInput] = deque()
        self._live = 0
        self._dead = 0
        self._queued_tokens = 0
        self._closed = False

    # -- producer side -------------------------------------------------------------

    @property
    def queued_tokens(self) -> int:
        return self._queued_tokens

    @property
    def queued_inputs(self) -> int:
        return self._live

    def is_full(self) -> bool:
        return self._queued_tokens >= self.max_queue_tokens

    def put(self, items: list[QueuedInput]) -> bool:
        """Queue all of `items`, or none of them if that would pass the token bound."""
        tokens = sum(item.tokens for item in items)
        with self._lock:
            if self._closed:
                raise QueueClosedError("the queue is closed")
            if self._queued_tokens + tokens > self.max_queue_tokens:
                return False
            now = time.perf_counter()
            for item in items:
                item.enqueued_at = now
            self._items.extend(items)
            self._live += len(items)
            self._queued_tokens += tokens
            self._changed.notify_all()
        return True

    def discard(self, items: Iterable[QueuedInput]) -> None:
        """Forget inputs nobody waits for any more (cancelled or disconnected requests)."""
        with self._lock:
            for item in items:
                if item.state is InputState.QUEUED:
                    self._drop(item)

    def close(self) -> None:
        """No more inputs; consumers drain what is queued, then get None."""
        with self._lock:
            self._closed = True
            self._changed.notify_all()

    # -- consumer side -------------------------------------------------------------

    def take(self, wait_s: float = 0.0) -> list[QueuedInput] | None:
        """Block until a batch can be formed; None once closed and drained.

        With `wait_s` > 0, a batch that is not yet full waits up to that long for more inputs.
        """
        with self._changed:
            while not self._closed and not self._has_live():
                self._changed.wait()
            if wait_s > 0 and not self._closed:
                deadline = time.perf_counter() + wait_s
                while not self._closed and not self._batch_full():
                    remaining = deadline - time.perf_counter()
                    if remaining <= 0:
                        break
                    self._changed.wait(remaining)
            if not self._has_live():
                return None
            return self._select([])

    def top_up(self, batch: list[QueuedInput]) -> list[QueuedInput]:
        """`batch` without inputs cancelled since it was formed, plus queued inputs that still fit."""
        with self._lock:
            kept = [item for item in batch if not item.request.cancelled]
            if not kept:
                return self._select([]) if self._has_live() else []
            return self._select(kept) if self._has_live() else kept

    # -- internals (lock held) -----------------------------------------------------

    def _has_live(self) -> bool:
        self._compact_head()
        return self._live > 0

    def _batch_full(self) -> bool:
        return self._live >= self.max_batch_size or self._queued_tokens >= self.max_batch_tokens

    def _compact_head(self) -> None:
        items = self._items
        while items and not items[0].live:
            head = items.popleft()
            if head.state is InputState.QUEUED:  # its request was cancelled
                self._drop(head)
            self._dead -= 1

    def _drop(self, item: QueuedInput) -> None:
        item.state = InputState.DROPPED
        self._live -= 1
        self._dead += 1
        self._queued_tokens -= item.tokens

    def _select(self, chosen: list[QueuedInput]) -> list[QueuedInput]:
        candidates: list[QueuedInput] = []
        for item in self._items:
            if item.live:
                candidates.append(item)
                if len(candidates) >= self._lookahead:
                    break
            elif item.state is InputState.QUEUED:
                self._drop(item)
        if not chosen:
            chosen = [candidates.pop(0)]
        anchor = chosen[0].tokens
        width = max(item.tokens for item in chosen)
        # Nearest in length to the oldest input first; ties go to the older input.
        ranked = sorted(range(len(candidates)), key=lambda i: (abs(candidates[i].tokens - anchor), i))
        for index in ranked:
            if len(chosen) >= self.max_batch_size:
                break
            item = candidates[index]
            padded = max(width, item.tokens) * (len(chosen) + 1)
            if padded > self.max_batch_tokens:
                continue
            chosen.append(item)
            width = max(width, item.tokens)
        for item in chosen:
            if item.state is InputState.QUEUED:
                item.state = InputState.TAKEN
                self._live -= 1
                self._dead += 1
                self._queued_tokens -= item.tokens
        if self._dead > 1024 and self._dead > self._live:
            self._items = deque(item for item in self._items if item.state is InputState.QUEUED)
            self._dead = 0
        self._compact_head()
        return chosen

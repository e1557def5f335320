"""How fast a model works through its queue, from the batches it has just run.

The admission check (`--max-queue-wait-s`) turns queued tokens into an expected wait with it:
a request that would wait longer than a load balancer or a client does is refused at once
with a Retry-After computed from the estimate, instead of timing out later.
"""

from __future__ import annotations

# Weight of the newest batch: the estimate follows a change of load within a few batches.
_ALPHA = 0.2
# A batch smaller than this is mostly fixed overhead: its rate would make a full queue look
# hundreds of times slower than it is (queued inputs run in full batches).
MIN_TOKENS = 256


class Throughput:
    def __init__(self, replicas: int) -> None:
        self._replicas = replicas
        self._tokens_per_s: float | None = None  # one replica's, smoothed over recent batches

    def observe(self, tokens: int, seconds: float) -> None:
        """A replica ran a batch of `tokens` real tokens in `seconds` (called from its thread)."""
        if seconds <= 0 or tokens < MIN_TOKENS:
            return
        rate = tokens / seconds
        previous = self._tokens_per_s
        self._tokens_per_s = rate if previous is None else previous + _ALPHA * (rate - previous)

    @property
    def tokens_per_s(self) -> float | None:
        """The model's rate with every replica busy (None until a large enough batch has run)."""
        rate = self._tokens_per_s
        return None if rate is None else rate * self._replicas

    def wait_s(self, tokens: int) -> float:
        """Expected seconds to work through `tokens` queued tokens (0 before any measurement)."""
        rate = self.tokens_per_s
        return 0.0 if rate is None else tokens / rate

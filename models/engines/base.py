"""The contract between the scheduler and an engine (Infinity's pre / core / post split).

`prepare` does the CPU work for a batch (padding, host-to-device copies) and may run while
the previous batch is still on the device; `run` does the forward pass and pooling.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True, slots=True)
class EngineInput:
    ids: list[int]
    prompt_tokens: int = 0  # leading tokens left out of pooling
    # Late chunking: return the sums of the token vectors over these half-open token ranges
    # (of this input) instead of a pooled vector.
    spans: tuple[tuple[int, int], ...] | None = None


@dataclass(frozen=True, slots=True)
class EngineOutput:
    """`pooled[i]`: input i's full-dimension pooled vector (float32, not normalised);
    `span_sums[i]`: its [len(spans), hidden] float32 span sums where spans were asked for."""

    pooled: np.ndarray
    span_sums: list[np.ndarray | None]

    def result(self, row: int) -> np.ndarray:
        sums = self.span_sums[row]
        return self.pooled[row] if sums is None else sums


@dataclass(frozen=True, slots=True)
class ReplicaHealth:
    """What a replica reports of itself, for /ready and the metrics."""

    alive: bool
    pid: int | None = None  # its own process; None when it runs in the server's
    restarts: int = 0  # times its process was replaced
    restarting: bool = False  # a new process is being started


IN_PROCESS = ReplicaHealth(alive=True)


class PreparedBatch(Protocol):
    @property
    def size(self) -> int: ...


class Engine(Protocol):
    hidden_size: int
    device_label: str

    def prepare(self, inputs: Sequence[EngineInput]) -> PreparedBatch: ...

    def run(self, batch: PreparedBatch) -> EngineOutput: ...

    def health(self) -> ReplicaHealth: ...

    def close(self) -> None: ...

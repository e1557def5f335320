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
    token_states: bool = False  # return every token's vector (late chunking) instead of a pooled one


@dataclass(frozen=True, slots=True)
class EngineOutput:
    """`pooled[i]` is input i's full-dimension pooled vector (float32, not normalised);
    `token_states[i]` its [tokens, hidden] float32 matrix where asked for, else None."""

    pooled: np.ndarray
    token_states: list[np.ndarray | None]


class PreparedBatch(Protocol):
    @property
    def size(self) -> int: ...


class Engine(Protocol):
    hidden_size: int
    device_label: str

    def prepare(self, inputs: Sequence[EngineInput]) -> PreparedBatch: ...

    def run(self, batch: PreparedBatch) -> EngineOutput: ...

    def close(self) -> None: ...

"""A deterministic fake engine for scheduling tests (never evidence that serving works)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from models.engines.base import EngineInput, EngineOutput

POISON = 666


@dataclass
class FakeBatch:
    inputs: list[EngineInput]

    @property
    def size(self) -> int:
        return len(self.inputs)


class FakeEngine:
    """Vector of an input = [sum of ids, number of ids]; an input containing POISON fails its batch."""

    hidden_size = 2
    device_label = "fake"

    def __init__(self, *, always_fail: bool = False) -> None:
        self.always_fail = always_fail
        self.batches: list[list[list[int]]] = []
        self.gate: threading.Event | None = None  # when set, run() waits for it
        self.running = threading.Event()

    def prepare(self, inputs: Sequence[EngineInput]) -> FakeBatch:
        return FakeBatch(list(inputs))

    def run(self, batch: FakeBatch) -> EngineOutput:
        self.running.set()
        if self.gate is not None:
            self.gate.wait(timeout=30)
        self.batches.append([item.ids for item in batch.inputs])
        if self.always_fail or any(POISON in item.ids for item in batch.inputs):
            raise RuntimeError("fake failure")
        pooled = np.array([[sum(item.ids), len(item.ids)] for item in batch.inputs], dtype=np.float32)
        return EngineOutput(pooled=pooled, span_sums=[None] * batch.size)

    def close(self) -> None:
        pass

    @property
    def seen(self) -> list[list[int]]:
        return [ids for batch in self.batches for ids in batch]

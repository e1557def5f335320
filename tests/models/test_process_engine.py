"""Replicas in their own process: same vectors as in-thread, a crashed child is replaced, and a
child never outlives its parent's pipe."""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

from models.catalog import find_card
from models.engines.base import EngineInput
from models.engines.process_engine import CoreShare, ProcessEngine
from models.errors import EngineError
from models.loader import load_model

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def engines():  # type: ignore[no-untyped-def]
    card = find_card("all-MiniLM-L6-v2")
    in_thread = load_model(card, device=CPU, dtype_override="float32").create_engines([CPU])[0]
    shell = load_model(card, device=CPU, dtype_override="float32", weights=False)
    assert all(parameter.is_meta for parameter in shell.backbone.module.parameters())  # no weights here
    (process,) = shell.create_engines([CPU], processes=True, threads=1)
    yield in_thread, process
    process.close()


def inputs(engine) -> list[EngineInput]:  # type: ignore[no-untyped-def]
    return [
        EngineInput(list(range(1000, 1000 + n)), prompt_tokens=p, spans=((0, 2), (2, n)) if p else None)
        for n, p in ((5, 0), (12, 3), (30, 0), (3, 1))
    ]


def test_same_vectors_as_in_thread(engines) -> None:  # type: ignore[no-untyped-def]
    in_thread, process = engines
    assert isinstance(process, ProcessEngine) and process.packing
    expected = in_thread.run(in_thread.prepare(inputs(in_thread)))
    got = process.run(process.prepare(inputs(process)))
    np.testing.assert_allclose(got.pooled[[0, 2]], expected.pooled[[0, 2]], atol=1e-5)
    for a, b in zip(got.span_sums, expected.span_sums, strict=True):
        assert (a is None) == (b is None)
        if a is not None:
            np.testing.assert_allclose(a, b, atol=1e-4)


def test_a_crashed_child_is_replaced(engines) -> None:  # type: ignore[no-untyped-def]
    _, process = engines
    old = process._process.pid
    os.kill(old, signal.SIGKILL)
    with pytest.raises(EngineError):
        process.run(process.prepare(inputs(process)))
    assert process._process.pid != old
    assert process.run(process.prepare(inputs(process))).pooled.shape == (4, 384)


def test_child_exits_when_the_pipe_closes(engines) -> None:  # type: ignore[no-untyped-def]
    _, process = engines
    child = process._process
    process._connection.close()  # what the OS does when the server dies
    deadline = time.monotonic() + 30
    while child.is_alive():
        assert time.monotonic() < deadline, "the model process outlived its server"
        time.sleep(0.05)
    process._restart()  # leave the fixture usable


def test_a_core_share_splits_the_cores_between_the_batches_running() -> None:
    share = CoreShare(4)
    with share.batch() as first:
        assert first == 4  # alone: every core
        with share.batch() as second, share.batch() as third:
            assert (second, third) == (2, 1)  # never below one thread
        with share.batch() as again:
            assert again == 2
    with share.batch() as alone:
        assert alone == 4


def test_replicas_sharing_cores_give_the_same_vectors_alone_and_together(engines) -> None:  # type: ignore[no-untyped-def]
    in_thread, _ = engines
    expected = in_thread.run(in_thread.prepare(inputs(in_thread))).pooled
    shell = load_model(find_card("all-MiniLM-L6-v2"), device=CPU, dtype_override="float32", weights=False)
    replicas = shell.create_engines([CPU, CPU], processes=True, cores=CoreShare(2))
    try:
        alone = replicas[0].run(replicas[0].prepare(inputs(replicas[0]))).pooled  # two threads
        with ThreadPoolExecutor(2) as pool:  # one thread each while both run
            together = list(pool.map(lambda r: r.run(r.prepare(inputs(r))).pooled, replicas * 3))
    finally:
        for replica in replicas:
            replica.close()
    for got in (alone, *together):
        np.testing.assert_allclose(got[[0, 2]], expected[[0, 2]], atol=1e-5)

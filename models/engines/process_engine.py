"""An engine replica in its own process.

The transformer forward pass spends much of its time in Python (module calls, mask
building) holding the GIL; in the server's process that time competes with the event loop,
which then answers requests late and feeds batches late (measured: the event loop spent
~40% of its time waiting for the GIL under 32 concurrent clients). In a child process the
model has its own interpreter, sets its own thread count, and the server's process keeps
only tokenization, scheduling and HTTP. Batches cross a pipe: token ids in, pooled vectors
out, a few tens of kilobytes per batch.

The child exits when its pipe closes, so it cannot outlive the server.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import multiprocessing
import multiprocessing.connection
import os
import threading
import time
import traceback
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from models.engines.base import EngineInput, EngineOutput, ReplicaHealth
from models.errors import EngineError, ModelError

log = logging.getLogger(__name__)

_START_TIMEOUT_S = 600.0
_RATE_MIN_TOKENS = 256


@dataclass(frozen=True, slots=True)
class ReplicaSpec:
    """What a child needs to build its replica (everything picklable)."""

    card: dict[str, Any]
    device: str
    dtype: str | None
    packing: bool
    threads: int  # intra-op threads; the most a batch may use when a CoreShare hands them out
    max_batch_tokens: int = 16384  # what the vLLM engine reserves for one step
    max_batch_size: int = 256


class CoreShare:
    """The CPU cores that sibling replicas share: each batch runs with an equal share of the
    cores among the replicas running at that moment.

    Under load, single-thread replicas can outrun one replica of many threads (those meet at a
    barrier after every op, so whenever the server process preempts one the others wait:
    +22% at 32 concurrent single-input clients on one 2-core box, level on another), while a
    lone request runs fastest on every core (fixed single-thread replicas: 0.73x). Sharing
    keeps the lone request's speed (docs/benchmarks.md). A replica that starts a batch while
    another runs one at full width briefly oversubscribes the cores, until that batch ends.
    """

    def __init__(self, cores: int) -> None:
        self.cores = cores
        self._running = 0
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def batch(self) -> Iterator[int]:
        """Threads for a batch about to run; hold the context while it runs."""
        with self._lock:
            self._running += 1
            threads = max(1, self.cores // self._running)
        try:
            yield threads
        finally:
            with self._lock:
                self._running -= 1


@dataclass(frozen=True, slots=True)
class ProcessBatch:
    inputs: list[EngineInput]

    @property
    def size(self) -> int:
        return len(self.inputs)


class ProcessEngine:
    """The server side of one replica process.

    Hung replicas: a batch that gets no answer within `timeout_s`, or within ten times what
    the replica's recent speed predicts for its tokens if that is longer, kills the process,
    starts a new one and fails (the worker pool then retries the batch in halves). A process
    that dies between batches is replaced at once by a watcher thread, which waits on the
    process's sentinel (no polling), so an idle replica does not stay dead until traffic comes.
    """

    def __init__(
        self, spec: ReplicaSpec, *, hidden_size: int, cores: CoreShare | None = None, timeout_s: float = 60.0
    ) -> None:
        self.hidden_size = hidden_size
        self.device_label = f"{spec.device}-process"
        self._spec = spec
        self._cores = cores
        self._timeout_s = timeout_s
        self._tokens_per_s: float | None = None  # smoothed over recent batches
        self._lock = threading.Lock()  # one batch in the pipe at a time; held while (re)starting
        self._connection: Connection
        self._process: multiprocessing.process.BaseProcess
        self.packing = False
        self.restarts = 0
        self._restarting = False
        self._closing = threading.Event()
        self._start()
        self._watcher = threading.Thread(target=self._watch, name=f"{self.device_label}-watcher", daemon=True)
        self._watcher.start()

    def prepare(self, inputs: Sequence[EngineInput]) -> ProcessBatch:
        # Padding and packing happen in the child, next to the model.
        return ProcessBatch(list(inputs))

    def run(self, batch: ProcessBatch) -> EngineOutput:
        tokens = sum(len(item.ids) for item in batch.inputs)
        with self._lock, self._cores.batch() if self._cores else contextlib.nullcontext(None) as threads:
            started = time.monotonic()
            bound = self.timeout_for(tokens)
            try:
                self._connection.send(("run", (batch.inputs, threads)))
                answered = self._connection.poll(bound)
                if answered:
                    status, payload = self._connection.recv()
            except (EOFError, OSError) as exc:
                if not self._closing.is_set():
                    log.error("%s: model process died (%s); starting a new one", self.device_label, exc)
                    self._restart()
                raise EngineError("the model process stopped while running a batch") from None
            if not answered:
                log.error("%s: no answer to a batch of %d tokens within %.0f s: the model process hangs; "
                          "replacing it", self.device_label, tokens, bound)  # fmt: skip
                self._restart()
                raise EngineError(f"the model process did not answer within {bound:.0f} s and was replaced")
            if status == "ok":
                self._observe(tokens, time.monotonic() - started)
        if status == "error":
            raise payload if isinstance(payload, ModelError) else EngineError(str(payload))
        return payload

    def timeout_for(self, tokens: int) -> float:
        """How long a batch of `tokens` may take before the replica counts as hung."""
        rate = self._tokens_per_s
        return self._timeout_s if rate is None else max(self._timeout_s, 10 * tokens / rate)

    def health(self) -> ReplicaHealth:
        return ReplicaHealth(
            alive=self._process.is_alive() and not self._restarting,
            pid=self._process.pid,
            restarts=self.restarts,
            restarting=self._restarting,
        )

    def close(self) -> None:
        self._closing.set()
        if not self._lock.acquire(timeout=1.0):
            # A batch is still running (the drain time is over) or the process hangs: stop it.
            with contextlib.suppress(OSError):
                self._process.kill()
            self._lock.acquire()
        try:
            with contextlib.suppress(OSError, EOFError):
                self._connection.send(("stop", None))
            self._connection.close()
            self._process.join(timeout=30)
            if self._process.is_alive():
                self._process.kill()
        finally:
            self._lock.release()

    def _observe(self, tokens: int, seconds: float) -> None:
        # Small batches are mostly fixed overhead: their rate would predict big ones far too slow.
        if tokens >= _RATE_MIN_TOKENS and seconds > 0:
            rate = tokens / seconds
            previous = self._tokens_per_s
            self._tokens_per_s = rate if previous is None else previous + 0.2 * (rate - previous)

    def _watch(self) -> None:
        """Replace a process that died while no batch was running (run() handles the others)."""
        backoff = 1.0
        while not self._closing.is_set():
            process = self._process
            multiprocessing.connection.wait([process.sentinel])
            with self._lock:
                if self._closing.is_set() or self._process is not process or process.is_alive():
                    continue  # closing, or already replaced by run()
                log.error("%s: model process exited (code %s); starting a new one", self.device_label,
                          process.exitcode)  # fmt: skip
                try:
                    self._restart()
                    backoff = 1.0
                    continue
                except Exception as exc:
                    log.error("%s: the new model process failed to start: %s", self.device_label, exc)
            self._closing.wait(backoff)  # before the next try; a close ends the wait
            backoff = min(backoff * 2, 60.0)

    def _start(self) -> None:
        context = multiprocessing.get_context("spawn")  # fork would copy the server's threads and locks
        parent, child = context.Pipe()
        self._process = context.Process(target=_serve, args=(child, self._spec), name=self.device_label, daemon=True)
        self._process.start()
        child.close()
        self._connection = parent
        if not parent.poll(_START_TIMEOUT_S):
            self._process.kill()
            raise EngineError(f"the model process did not start within {_START_TIMEOUT_S:.0f}s")
        status, payload = parent.recv()
        if status != "ready":
            self._process.join(timeout=5)
            raise payload if isinstance(payload, ModelError) else EngineError(f"model process failed: {payload}")
        self.packing = bool(payload["packing"])

    def _restart(self) -> None:
        """Kill the process and start a new one (lock held)."""
        self._restarting = True
        try:
            with contextlib.suppress(OSError):
                self._connection.close()
            with contextlib.suppress(OSError):
                self._process.kill()
            self._process.join(timeout=5)
            self.restarts += 1
            self._start()
        finally:
            self._restarting = False


def _serve(connection: Connection, spec: ReplicaSpec) -> None:
    """Child process: build the replica, then run batches until told to stop or orphaned."""
    # Read when torch loads OpenMP. Intra-op threads that spin a while between ops stay hot
    # across the many small ops of a batch (OMP_WAIT_POLICY=ACTIVE measured +9% under 32
    # concurrent clients on 2 cores); but ACTIVE spins for ever, so an idle replica would burn
    # its cores. A bounded spin (~0.1 s of PAUSE loops, then sleep) keeps most of the gain.
    os.environ.setdefault("GOMP_SPINCOUNT", "2000000")
    try:
        import torch

        from models.card import card_from_mapping
        from models.loader import load_model

        torch.set_num_threads(spec.threads)
        card = card_from_mapping(spec.card, "replica card")
        device = torch.device(spec.device)
        model = load_model(card, device=device, dtype_override=spec.dtype)
        (engine,) = model.create_engines([device], packing=spec.packing, max_batch_tokens=spec.max_batch_tokens,
                                         max_batch_size=spec.max_batch_size)  # fmt: skip
        # The model's modules live as long as the process: keep them out of every collection.
        gc.collect()
        gc.freeze()
        connection.send(("ready", {"packing": getattr(engine, "packing", False)}))
    except BaseException as exc:
        with contextlib.suppress(OSError, EOFError):  # the server may be gone already (shut down during start-up)
            connection.send(("error", exc if isinstance(exc, ModelError) else f"{type(exc).__name__}: {exc}"))
        return
    while True:
        try:
            command, payload = connection.recv()
        except (EOFError, OSError):
            return  # the server is gone
        if command == "stop":
            engine.close()
            return
        inputs, threads = payload
        if threads is not None and threads != torch.get_num_threads():
            torch.set_num_threads(threads)
        try:
            reply: tuple[str, Any] = ("ok", engine.run(engine.prepare(inputs)))
        except ModelError as exc:
            reply = ("error", exc)
        except Exception as exc:
            reply = ("error", f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=5)}")
        try:
            connection.send(reply)
        except (OSError, EOFError):
            return

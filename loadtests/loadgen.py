"""HTTP load generation for POST /v1/embeddings.

Closed loop (`run_closed_loop`, `run_load`): each client holds one keep-alive connection and
sends its next request as soon as the last answer arrived. The open-loop generator
(`loadtests/sizing/openloop.py`) shares this module's connections, pool and response reader.
The client is deliberately lean (raw asyncio streams, pre-built request bytes) because it
shares the machine's cores with the server it measures.

Own generator, not locust: locust's per-request Python competes for the server's cores, and its users are closed-loop.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import itertools
import json
import ssl
import statistics
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

STSB = Path(__file__).resolve().parents[1] / "tests" / "data" / "stsb" / "sts-test.csv"

# Sample.status when no HTTP status came back.
NO_REPLY = 0
TIMED_OUT = -1
TRANSPORT_ERRORS = (OSError, EOFError, asyncio.LimitOverrunError, ValueError)


def stsb_pairs(path: Path = STSB) -> list[tuple[str, str, float]]:
    """(sentence 1, sentence 2, gold similarity) for every STS-B row."""
    pairs: list[tuple[str, str, float]] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        fields = line.split("\t")
        if len(fields) >= 7:
            pairs.append((fields[5], fields[6], float(fields[4])))
    return pairs


def stsb_sentences(path: Path = STSB) -> list[str]:
    return [sentence for first, second, _ in stsb_pairs(path) for sentence in (first, second)]


@dataclass
class LoadResult:
    clients: int
    inputs_per_request: int
    requests: int = 0
    inputs: int = 0
    errors: int = 0
    elapsed: float = 0.0
    latencies: list[float] = field(default_factory=list)

    @property
    def inputs_per_s(self) -> float:
        return self.inputs / self.elapsed if self.elapsed else 0.0

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def summary(self) -> dict[str, float | int]:
        return {
            "clients": self.clients,
            "inputs_per_request": self.inputs_per_request,
            "requests": self.requests,
            "errors": self.errors,
            "inputs_per_s": round(self.inputs_per_s, 1),
            "p50_ms": round(self.percentile(0.5) * 1000, 2),
            "p99_ms": round(self.percentile(0.99) * 1000, 2),
            "mean_ms": round(statistics.fmean(self.latencies) * 1000, 2) if self.latencies else float("nan"),
        }


def build_request(
    host: str,
    port: int,
    body: dict[str, object],
    api_key: str | None = None,
    *,
    path: str = "/v1/embeddings",
) -> bytes:
    payload = json.dumps(body).encode()
    headers = [
        f"POST {path} HTTP/1.1",
        f"Host: {host}:{port}",
        "Content-Type: application/json",
        f"Content-Length: {len(payload)}",
    ]
    if api_key:
        headers.append(f"Authorization: Bearer {api_key}")
    return ("\r\n".join(headers) + "\r\n\r\n").encode() + payload


@dataclass(frozen=True)
class Endpoint:
    """Where the server is: scheme, host, port and an optional path prefix (a gateway route)."""

    host: str
    port: int
    base_path: str = ""
    tls: bool = False
    api_key: str | None = field(default=None, repr=False)

    @classmethod
    def from_url(cls, url: str, api_key: str | None = None) -> Endpoint:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"expected http://host[:port][/prefix] or https://..., got {url!r}")
        tls = parts.scheme == "https"
        port = parts.port or (443 if tls else 80)
        return cls(parts.hostname, port, parts.path.rstrip("/"), tls, api_key)

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self._host_header}:{self.port}{self.base_path}"

    @property
    def _host_header(self) -> str:
        return f"[{self.host}]" if ":" in self.host else self.host  # IPv6 literals are bracketed

    @functools.cached_property
    def _ssl(self) -> ssl.SSLContext | None:
        return ssl.create_default_context() if self.tls else None  # loading the CA store is slow: once

    def post(self, body: dict[str, object], path: str = "/v1/embeddings") -> bytes:
        return build_request(self._host_header, self.port, body, self.api_key, path=self.base_path + path)

    def get(self, path: str) -> bytes:
        lines = [f"GET {self.base_path}{path} HTTP/1.1", f"Host: {self._host_header}:{self.port}"]
        if self.api_key:
            lines.append(f"Authorization: Bearer {self.api_key}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    async def connect(self) -> Connection:
        reader, writer = await asyncio.open_connection(self.host, self.port, ssl=self._ssl)
        return Connection(reader, writer)


@dataclass(slots=True)
class Reply:
    status: int
    head: bytes  # the status line and headers, kept raw: timing headers are parsed after the run
    body: bytes
    keep_alive: bool


async def read_response(reader: asyncio.StreamReader) -> Reply:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length: int | None = None
    chunked = False
    keep_alive = head[5:8] == b"1.1"
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
        elif name == b"connection":
            keep_alive = b"close" not in value.lower()
    if chunked:
        body = await _read_chunked(reader)
    elif length is not None:
        body = await reader.readexactly(length)
    elif status in (204, 304) or 100 <= status < 200:
        body = b""
    else:  # neither length nor chunks: the body ends with the connection
        body, keep_alive = await reader.read(), False
    return Reply(status, head, body, keep_alive)


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts = []
    while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
        parts.append((await reader.readexactly(size + 2))[:-2])
    while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers
        pass
    return b"".join(parts)


class Connection:
    """One keep-alive HTTP/1.1 connection; one request at a time."""

    __slots__ = ("reader", "served", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.served = 0

    @property
    def stale(self) -> bool:
        """The server closed it while it sat idle (keep-alive timeout)."""
        return self.reader.at_eof() or self.writer.is_closing()

    async def exchange(self, raw: bytes) -> Reply:
        self.writer.write(raw)
        reply = await read_response(self.reader)
        self.served += 1
        return reply

    def close(self) -> None:
        self.writer.close()


def closed_before_reply(error: BaseException) -> bool:
    """A reused connection the server had already closed: the request never reached it, so it may be resent."""
    if isinstance(error, asyncio.IncompleteReadError):
        return not error.partial
    return isinstance(error, ConnectionResetError | BrokenPipeError)


class ConnectionPool:
    """Keep-alive connections lent one request at a time. When every connection is busy it opens
    another, up to `limit`; past the limit a request waits for the next free one."""

    def __init__(self, endpoint: Endpoint, limit: int) -> None:
        self.endpoint = endpoint
        self.limit = limit
        self.opened = 0  # connections open or being opened
        self.peak = 0
        self.waited = 0  # requests that found the pool at its limit
        self._idle: list[Connection] = []
        # A waiter gets a connection, or None: a free slot in which to open one.
        self._waiters: deque[asyncio.Future[Connection | None]] = deque()

    async def acquire(self) -> Connection:
        while self._idle:
            connection = self._idle.pop()
            if not connection.stale:
                return connection
            connection.close()
            return await self._open_in_slot()
        if self.opened < self.limit:
            self.opened += 1
            self.peak = max(self.peak, self.opened)
            return await self._open_in_slot()
        self.waited += 1
        waiter: asyncio.Future[Connection | None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            handed = await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():  # handed over just as we were cancelled
                late = waiter.result()
                self._free_slot() if late is None else self.release(late)
            raise
        return handed if handed is not None else await self._open_in_slot()

    def release(self, connection: Connection) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(connection)
                return
        self._idle.append(connection)

    def discard(self, connection: Connection) -> None:
        connection.close()
        self._free_slot()

    def close(self) -> None:
        for connection in self._idle:
            connection.close()
        self._idle.clear()

    async def _open_in_slot(self) -> Connection:
        try:
            return await self.endpoint.connect()
        except BaseException:
            self._free_slot()
            raise

    def _free_slot(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self.opened -= 1


@dataclass(frozen=True, slots=True)
class Request:
    raw: bytes
    inputs: int = 1
    kind: int = 0  # the scenario's request class (for example query or ingestion)


@dataclass(slots=True)
class Sample:
    kind: int
    inputs: int
    sent: float  # seconds after the run began: when due (open loop) or written (closed loop)
    latency: float  # from `sent` to the last byte of the reply; a timeout counts the time waited
    status: int  # HTTP status, or NO_REPLY / TIMED_OUT
    head: bytes = b""


@dataclass
class Run:
    samples: list[Sample]
    elapsed: float  # the measured window


async def run_closed_loop(
    endpoint: Endpoint,
    requests: Sequence[Request],
    *,
    clients: int,
    duration: float,
    warmup: float = 2.0,
    timeout: float | None = None,
) -> Run:
    """`clients` connections, each sending the next request of the cycle when its last reply
    arrived; samples are the replies that arrived inside the `duration` after `warmup`."""
    loop = asyncio.get_running_loop()
    cycle = itertools.cycle(requests)
    samples: list[Sample] = []
    began = loop.time() + warmup
    ends = began + duration

    async def client() -> None:
        connection = await endpoint.connect()
        try:
            while (now := loop.time()) < ends:
                if connection.stale:  # closed after an error, a timeout or `Connection: close`
                    connection = await endpoint.connect()
                    now = loop.time()
                request = next(cycle)
                status, head = await _timed_exchange(connection, request.raw, timeout)
                done = loop.time()
                if began <= done <= ends:
                    samples.append(Sample(request.kind, request.inputs, now - began, done - now, status, head))
        finally:
            connection.close()

    await asyncio.gather(*(client() for _ in range(clients)))
    return Run(samples, duration)


async def _timed_exchange(connection: Connection, raw: bytes, timeout: float | None) -> tuple[int, bytes]:
    try:
        if timeout is None:
            reply = await connection.exchange(raw)
        else:
            async with asyncio.timeout(timeout):
                reply = await connection.exchange(raw)
    except TimeoutError:
        connection.close()
        return TIMED_OUT, b""
    except TRANSPORT_ERRORS:
        connection.close()
        return NO_REPLY, b""
    if not reply.keep_alive:
        connection.close()
    return reply.status, reply.head


async def fetch(endpoint: Endpoint, path: str, timeout: float = 5.0) -> Reply:
    """One GET on a connection of its own (status pages: /metrics, /v1/models)."""
    async with asyncio.timeout(timeout):
        connection = await endpoint.connect()
        try:
            return await connection.exchange(endpoint.get(path))
        finally:
            connection.close()


async def run_load(
    host: str,
    port: int,
    requests: Sequence[bytes],
    *,
    clients: int,
    inputs_per_request: int,
    duration: float,
    warmup: float = 2.0,
) -> LoadResult:
    run = await run_closed_loop(
        Endpoint(host, port),
        [Request(raw, inputs_per_request) for raw in requests],
        clients=clients,
        duration=duration,
        warmup=warmup,
    )
    result = LoadResult(clients=clients, inputs_per_request=inputs_per_request, elapsed=run.elapsed)
    for sample in run.samples:
        result.requests += 1
        result.latencies.append(sample.latency)
        if sample.status == 200:
            result.inputs += sample.inputs
        else:
            result.errors += 1
    return result


def request_bodies(
    sentences: Sequence[str], *, model: str, inputs_per_request: int, encoding_format: str = "float"
) -> list[dict[str, object]]:
    bodies = []
    for start in range(0, len(sentences) - inputs_per_request + 1, inputs_per_request):
        chunk = list(sentences[start : start + inputs_per_request])
        bodies.append({"input": chunk[0] if inputs_per_request == 1 else chunk, "model": model,
                       "encoding_format": encoding_format})  # fmt: skip
    return bodies


def native_dtype() -> str:
    """The benchmarks' default dtype: the server's `--dtype auto` choice on this CPU (bf16 where
    it is measured clearly faster than fp32, see models/devices.py)."""
    from models.devices import cpu_prefers_bf16  # the installed project (make install-test)

    return "bfloat16" if cpu_prefers_bf16() else "float32"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--model", default="all-MiniLM-L6-v2")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--inputs-per-request", type=int, default=1)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--encoding-format", default="float", choices=["float", "base64"])
    args = parser.parse_args()
    bodies = request_bodies(stsb_sentences(), model=args.model, inputs_per_request=args.inputs_per_request,
                            encoding_format=args.encoding_format)  # fmt: skip
    raw = [build_request(args.host, args.port, body) for body in bodies]
    result = asyncio.run(run_load(args.host, args.port, raw, clients=args.clients,
                                  inputs_per_request=args.inputs_per_request, duration=args.duration))  # fmt: skip
    print(json.dumps(result.summary()))


if __name__ == "__main__":
    main()

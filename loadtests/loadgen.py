"""A closed-loop HTTP load generator for POST /v1/embeddings.

Each client holds one keep-alive connection and sends its next request as soon as the last
answer arrived. The client is deliberately lean (raw asyncio streams, pre-built request
bytes) because it shares the machine's cores with the server it measures.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

STSB = Path(__file__).resolve().parents[1] / "tests" / "data" / "stsb" / "sts-test.csv"


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


def build_request(host: str, port: int, body: dict[str, object], api_key: str | None = None) -> bytes:
    payload = json.dumps(body).encode()
    headers = [
        "POST /v1/embeddings HTTP/1.1",
        f"Host: {host}:{port}",
        "Content-Type: application/json",
        f"Content-Length: {len(payload)}",
    ]
    if api_key:
        headers.append(f"Authorization: Bearer {api_key}")
    return ("\r\n".join(headers) + "\r\n\r\n").encode() + payload


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    return status, await reader.readexactly(length)


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
    result = LoadResult(clients=clients, inputs_per_request=inputs_per_request)
    cycle = itertools.cycle(requests)
    measuring = False
    stop = False

    async def client() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while not stop:
                request = next(cycle)
                started = time.perf_counter()
                writer.write(request)
                status, _ = await _read_response(reader)
                if measuring and not stop:
                    result.latencies.append(time.perf_counter() - started)
                    result.requests += 1
                    if status == 200:
                        result.inputs += inputs_per_request
                    else:
                        result.errors += 1
        finally:
            writer.close()

    tasks = [asyncio.create_task(client()) for _ in range(clients)]
    await asyncio.sleep(warmup)
    measuring = True
    began = time.perf_counter()
    await asyncio.sleep(duration)
    result.elapsed = time.perf_counter() - began
    stop = True
    await asyncio.gather(*tasks, return_exceptions=True)
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


def native_dtype() -> str:
    """The benchmarks' default dtype: the server's `--dtype auto` choice on this CPU (bf16 where
    it is measured clearly faster than fp32, see models/devices.py)."""
    from models.devices import cpu_prefers_bf16  # the installed project (make install-test)

    return "bfloat16" if cpu_prefers_bf16() else "float32"

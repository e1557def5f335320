"""Late chunking at document scale: tokens/s for one long document through
POST /v1/documents/embeddings, and the latency of short requests sent while it runs.

    python loadtests/late_chunking_bench.py --tokens 50000 --dtype bfloat16

One server process (MiniLM, 256-token windows). Phases: short-request latency on an idle
server; the document alone; the document again with one closed-loop client sending single
short inputs all the while. Also reports the server's peak RSS, to show memory stays bounded.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from loadgen import native_dtype, stsb_sentences
from serving_bench import start_server


def document_of(tokens: int) -> str:
    """Real sentences (STS-B) joined into one text of about `tokens` MiniLM tokens."""
    sentences = stsb_sentences()
    words, text = 0, []
    index = 0
    while words < tokens:
        sentence = sentences[index % len(sentences)]
        text.append(sentence)
        words += int(len(sentence.split()) * 1.3) + 1
        index += 1
    return " ".join(text)


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_report(pid: int) -> str:
    """The server's and each model-replica process's peak RSS (replicas run in children)."""
    import psutil

    children = [c.pid for c in psutil.Process(pid).children(recursive=True) if "spawn_main" in " ".join(c.cmdline())]
    parts = [f"server process {peak_rss_mb(pid):.0f} MB"]
    parts += [f"replica process {peak_rss_mb(child):.0f} MB" for child in children]
    return ", ".join(parts)


def short_latencies(url: str, stop: threading.Event, out: list[tuple[float, float]], limit: int = 10_000) -> None:
    """(sent at, latency) of single short inputs, one at a time, until `stop`."""
    with httpx.Client(base_url=url, timeout=120) as client:
        index = 0
        while not stop.is_set() and len(out) < limit:
            started = time.perf_counter()
            response = client.post("/v1/embeddings", json={"input": f"short request {index}", "cache": False})
            assert response.status_code == 200, response.text
            out.append((started, time.perf_counter() - started))
            index += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=50_000)
    parser.add_argument("--dtype", default=native_dtype(), choices=["bfloat16", "float32"])
    parser.add_argument("--port", type=int, default=8321)
    parser.add_argument("--chunk-tokens", type=int, default=128)
    args = parser.parse_args()
    server = start_server(args.port, args.dtype, ["--max-document-tokens", str(max(262_144, args.tokens * 2))])
    url = f"http://127.0.0.1:{args.port}"
    try:
        document = document_of(args.tokens)
        request = {"input": document, "chunking": {"kind": "tokens", "max_tokens": args.chunk_tokens},
                   "encoding_format": "base64", "cache": False}  # fmt: skip
        with httpx.Client(base_url=url, timeout=600) as client:
            idle: list[tuple[float, float]] = []
            stop = threading.Event()
            threading.Timer(5.0, stop.set).start()
            short_latencies(url, stop, idle)
            started = time.perf_counter()
            body = client.post("/v1/documents/embeddings", json=request).json()
            alone = time.perf_counter() - started
            processed = body["usage"]["prompt_tokens"]
            chunks = len(body["data"][0]["chunks"])
            during: list[tuple[float, float]] = []
            stop = threading.Event()
            prober = threading.Thread(target=short_latencies, args=(url, stop, during))
            prober.start()
            time.sleep(0.5)
            started = time.perf_counter()
            client.post("/v1/documents/embeddings", json=request).raise_for_status()
            shared = time.perf_counter() - started
            stop.set()
            prober.join()
            # Only requests sent while the document was in the server.
            during = [(sent, latency) for sent, latency in during if started <= sent < started + shared]
        rss = peak_rss_report(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=60)
    print(f"document: {processed} tokens processed (windows of 256, overlap 64), {chunks} chunks; dtype {args.dtype}")
    print("| phase | seconds | tokens/s | short p50 ms | short p99 ms | short requests |")
    print("|---|---|---|---|---|---|")
    print(f"| idle server | - | - | {_p(idle, 0.5)} | {_p(idle, 0.99)} | {len(idle)} |")
    print(f"| document alone | {alone:.2f} | {processed / alone:.0f} | - | - | - |")
    print(f"| document + 1 short-request client | {shared:.2f} | {processed / shared:.0f} | {_p(during, 0.5)} | "
          f"{_p(during, 0.99)} (max {_p(during, 1.0)}) | {len(during)} |")  # fmt: skip
    print(f"peak RSS: {rss}")


def _p(values: list[tuple[float, float]], q: float) -> str:
    if not values:
        return "-"
    ordered = sorted(latency for _, latency in values)
    return f"{ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000:.1f}"


if __name__ == "__main__":
    main()

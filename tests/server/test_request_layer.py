"""The layer around every request: ids, timing headers, deadlines, access log, tracing, CORS."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from server.app import create_app
from server.settings import ServerSettings
from server.tracing import RequestTracer
from tests.helpers import RunningServer, free_port

ROOT = Path(__file__).resolve().parents[2]


def test_request_id_round_trips_on_the_fast_path_and_on_routes(minilm_server) -> None:  # type: ignore[no-untyped-def]
    sent = minilm_server.post("/v1/embeddings", {"input": "id please"}, headers={"X-Request-Id": "client-id-42"})
    assert sent.headers["x-request-id"] == "client-id-42"
    made = minilm_server.post("/v1/embeddings", {"input": "id please"})
    assert len(made.headers["x-request-id"]) == 24
    assert httpx.get(minilm_server.url + "/v1/models").headers["x-request-id"]
    missing = httpx.get(minilm_server.url + "/no-such-route", headers={"x-request-id": "on-a-404"})
    assert missing.status_code == 404 and missing.headers["x-request-id"] == "on-a-404"
    # Not sane (too long, spaces or non-ASCII): replaced, never echoed.
    odd = minilm_server.post("/v1/embeddings", {"input": "x"}, headers={"X-Request-Id": "a b"})
    assert odd.headers["x-request-id"] != "a b"


def test_timing_headers_report_each_stage(minilm_server) -> None:  # type: ignore[no-untyped-def]
    response = minilm_server.post("/v1/embeddings", {"input": ["time", "these stages"], "cache": False})
    headers = response.headers
    stages = dict(part.strip().split(";dur=") for part in headers["server-timing"].split(","))
    assert set(stages) == {"tokenize", "queue", "inference", "total"}
    assert all(float(ms) >= 0 for ms in stages.values())
    assert float(headers["x-inference-time"]) > 0 and float(headers["x-queue-time"]) >= 0
    assert float(headers["x-tokenization-time"]) >= 0
    assert float(stages["total"]) >= float(stages["inference"])
    # A cached answer shows the cache stage instead of queue and inference.
    minilm_server.post("/v1/embeddings", {"input": "cached stage"})
    cached = minilm_server.post("/v1/embeddings", {"input": "cached stage"}).headers["server-timing"]
    assert "cache;dur=" in cached and "inference" not in cached


def test_deadline_answers_504_and_drops_the_queued_inputs(start_server, stsb_test) -> None:  # type: ignore[no-untyped-def]
    server = start_server(local_cache_mb=0, max_batch_tokens=512)
    texts = [" ".join(pair[:2]) for pair in stsb_test[:1500]]
    before = server.metric("embed_batch_size_sum", model="all-MiniLM-L6-v2")
    started = time.monotonic()
    response = server.post("/v1/embeddings", {"input": texts}, headers={"X-Request-Timeout": "0.5"})
    elapsed = time.monotonic() - started
    assert response.status_code == 504, response.text
    error = response.json()["error"]
    assert error["type"] == "server_error" and error["code"] == "request_timeout" and "0.5 s" in error["message"]
    assert elapsed < 2.0
    # Its queued inputs were dropped: at most the batches already running finish.
    time.sleep(1.0)
    computed = server.metric("embed_batch_size_sum", model="all-MiniLM-L6-v2") - before
    assert computed < len(texts) / 2
    assert server.metric("embed_queue_depth", model="all-MiniLM-L6-v2") == 0
    bad = server.post("/v1/embeddings", {"input": "x"}, headers={"X-Request-Timeout": "soon"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "X-Request-Timeout"


def test_json_access_log_carries_the_request_id() -> None:
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "EMBED_DTYPE": "float32"}
    process = subprocess.Popen(
        [sys.executable, "-m", "server", "serve", "--port", str(port), "--log-format", "json", "--access-log"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(process.stderr), daemon=True)  # type: ignore[arg-type]
    reader.start()
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None
            try:
                if httpx.get(url + "/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline
            time.sleep(0.1)
        body = {"input": ["json log line"], "cache": False}
        answer = httpx.post(url + "/v1/embeddings", json=body, headers={"X-Request-Id": "trace-me-7"})
        assert answer.status_code == 200
    finally:
        process.terminate()
        process.wait(timeout=60)
        reader.join(timeout=10)
    records = [json.loads(line) for line in lines if line.startswith("{")]
    assert records and len(records) == len([line for line in lines if line.strip()]), "every line is JSON"
    (access,) = [r for r in records if r.get("request_id") == "trace-me-7" and r["logger"] == "server.access"]
    assert access["status"] == 200 and access["path"] == "/v1/embeddings" and access["model"] == "all-MiniLM-L6-v2"
    assert access["inputs"] == 1 and access["tokens"] > 0 and access["inference_ms"] > 0
    assert {"time", "level", "message"} <= set(access)


def test_traces_follow_the_callers_traceparent() -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    settings = ServerSettings(dtype="float32", port=free_port(), local_cache_mb=0)
    server = RunningServer(settings, app=create_app(settings, tracer=RequestTracer.with_provider(provider)))
    try:
        trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
        parent = f"00-{trace_id}-00f067aa0ba902b7-01"
        server.post("/v1/embeddings", {"input": ["traced"]}, headers={"traceparent": parent})
    finally:
        server.stop()
    spans = [span for span in exporter.get_finished_spans() if span.context.trace_id == int(trace_id, 16)]
    root = next(span for span in spans if span.name == "POST /v1/embeddings")
    assert root.parent.span_id == 0x00F067AA0BA902B7
    assert root.attributes["embed.model"] == "all-MiniLM-L6-v2" and root.attributes["http.response.status_code"] == 200
    children = {span.name: span for span in spans if span.parent and span.parent.span_id == root.context.span_id}
    assert {"tokenize", "queue", "inference"} <= set(children)
    for span in children.values():
        assert root.start_time <= span.start_time <= span.end_time <= root.end_time


def test_cors_when_asked(start_server) -> None:  # type: ignore[no-untyped-def]
    origin = "https://app.example"
    server = start_server(cors_origin=[origin])
    asking = {"Origin": origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "x-a"}
    preflight = httpx.options(server.url + "/v1/embeddings", headers=asking)
    assert preflight.status_code == 200 and preflight.headers["access-control-allow-origin"] == origin
    answer = server.post("/v1/embeddings", {"input": "cors"}, headers={"Origin": origin})
    assert answer.headers["access-control-allow-origin"] == origin
    assert "x-request-id" in answer.headers["access-control-expose-headers"]
    other = server.post("/v1/embeddings", {"input": "cors"}, headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers

"""Late chunking's request path: the plan and the chunk means it yields (no model needed), and
a real server that keeps answering short requests while it plans a long document."""

from __future__ import annotations

import itertools
import json
import socket
import threading
import time

import httpx
import numpy as np
import pytest

from models.late_chunking import plan_windows
from models.tokenization import TokenizedDocument
from server.cache.keys import chunk_keys
from server.document_service import chunk_means, plan_documents
from tests.helpers import RunningServer

MODEL = "all-MiniLM-L6-v2"


def partition(rng: np.random.Generator, n_tokens: int, n_chunks: int) -> list[tuple[int, int]]:
    cuts = sorted(rng.choice(np.arange(1, n_tokens), size=n_chunks - 1, replace=False).tolist())
    return list(itertools.pairwise([0, *cuts, n_tokens]))


@pytest.mark.parametrize(("n_tokens", "overlap"), [(100, 0), (256, 64), (257, 64), (3_000, 0), (3_000, 200)])
def test_plan_and_means_reproduce_single_pass_means(n_tokens: int, overlap: int) -> None:
    """Token vectors that ignore context make every window see what one pass would, so the
    chunk means assembled from the planned windows must equal the plain span means."""
    rng = np.random.default_rng(n_tokens + overlap)
    documents = []
    for size in (n_tokens, n_tokens // 2 + 1):
        document = TokenizedDocument(ids=rng.integers(0, 30_000, size).tolist(), offsets=[(0, 0)] * size,
                                     prefix_tokens=1, suffix_tokens=1)  # fmt: skip
        documents.append((document, partition(rng, size, min(50, size // 2))))
    plans = plan_documents(documents, length=256, overlap=overlap, fingerprint=b"model")
    hidden = 6
    vectors = rng.standard_normal((30_000, hidden))
    sums = []
    for (document, spans), plan in zip(documents, plans, strict=True):
        assert plan.windows == plan_windows(len(document.ids), 256, overlap)
        assert plan.keys == chunk_keys(b"model", document.ids, spans, 256, overlap)
        assert plan.tokens == sum(window.end - window.start for window in plan.windows)
        for payload, part in zip(plan.payloads, plan.parts, strict=True):
            assert payload.ids == document.ids[part.window.start : part.window.end] and payload.spans == part.local
            sums.append(np.stack([vectors[payload.ids[a:b]].sum(0) for a, b in part.local]).astype(np.float32))
    means = chunk_means(plans, sums, hidden)
    for (document, spans), got in zip(documents, means, strict=True):
        expected = np.stack([vectors[document.ids[a:b]].mean(0) for a, b in spans])
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_planning_a_long_document_does_not_delay_short_requests(minilm_server: RunningServer) -> None:
    """A document of ~182k tokens in ~11,400 chunks of 16 tokens is split and planned while one
    client keeps sending short requests, until the document's windows are queued: none of them
    may wait longer than the one batch of windows running when it is served (with the slack
    for timing noise that test_long_document_interleaves_with_short_requests allows), plus the
    document's tokenization, which still holds the GIL (`Tokenizer.encode`) on the document
    thread. Planning it on the event loop stalled the short request in flight for seconds. The
    document is then abandoned, which drops its windows, so that the test stays short."""
    server = minilm_server
    short = {"input": "short", "cache": False}
    full_batch = {"input": [" ".join(f"b{j} x{i}" for j in range(63)) for i in range(8)], "cache": False}  # 8 x 254

    with httpx.Client(base_url=server.url, timeout=120) as client:

        def seconds_for(body: dict) -> float:
            started = time.perf_counter()
            response = client.post("/v1/embeddings", json=body)
            assert response.status_code == 200, response.text
            return time.perf_counter() - started

        for _ in range(2):  # first-call costs (new shapes) are not what this test is about
            seconds_for(short), seconds_for(full_batch)
        idle_s = min(seconds_for(short) for _ in range(5))
        batch_s = min(seconds_for(full_batch) for _ in range(2))

    text = " ".join(f"w{i % 997}" for i in range(60_000))
    started = time.perf_counter()
    server.state.registry.get(None).loaded.tokenizer.encode_document(text)
    tokenize_s = time.perf_counter() - started
    body = json.dumps({
        "input": text, "chunking": {"kind": "tokens", "max_tokens": 16, "overlap_tokens": 0},
        "late_chunking": True, "cache": False, "encoding_format": "base64",
    }).encode()  # fmt: skip
    head = (
        f"POST /v1/documents/embeddings HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    answers: list[tuple[float, float, int]] = []  # (sent at, seconds, status)
    stop = threading.Event()

    def short_requests() -> None:
        with httpx.Client(base_url=server.url, timeout=120) as own:
            while not stop.is_set():
                started = time.perf_counter()
                status = own.post("/v1/embeddings", json=short).status_code
                answers.append((started, time.perf_counter() - started, status))

    depth = server.metric("embed_queue_depth", model=MODEL)
    sender = threading.Thread(target=short_requests)
    sender.start()
    # A raw connection, so that closing it abandons the document mid-way.
    with socket.create_connection(("127.0.0.1", server.settings.port)) as document:
        try:
            time.sleep(0.2)
            sent = time.perf_counter()
            document.sendall(head + body)
            deadline = time.monotonic() + 120
            while server.metric("embed_queue_depth", model=MODEL) < depth + 100:  # its ~950 windows
                assert time.monotonic() < deadline, "the document's windows never queued"
                time.sleep(0.002)
            planned_s = time.perf_counter() - sent
        finally:
            stop.set()
            sender.join()
    during = [(seconds, status) for started, seconds, status in answers if started + seconds > sent]
    assert during and all(status == 200 for _, status in during), during
    slowest = max(seconds for seconds, _ in during)
    assert slowest < idle_s + 1.8 * batch_s + 0.1 + tokenize_s, (
        f"a short request took {slowest:.3f} s while the document was split and planned ({planned_s:.2f} s); "
        f"idle {idle_s:.3f} s, one batch {batch_s:.3f} s, tokenization {tokenize_s:.3f} s; all: {during}"
    )
    deadline = time.monotonic() + 60
    while server.metric("embed_queue_depth", model=MODEL) > depth:  # abandoned: its windows are dropped
        assert time.monotonic() < deadline, "the abandoned document's windows stayed queued"
        time.sleep(0.01)

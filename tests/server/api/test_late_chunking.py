"""Late chunking over HTTP against an independent reference: plain transformers over the
whole document, offsets from the tokenizer, span means; and the paper's macro-chunk slicing
for documents longer than the context."""

from __future__ import annotations

import threading
import time

import httpx
import numpy as np
import pytest

from tests.conftest import cosine_rows
from tests.helpers import computed_inputs
from tests.references import reference_late_chunking

BERLIN = [
    "Berlin is the capital and largest city of Germany, both by area and by population. ",
    "Its more than 3.85 million inhabitants make it the European Union's most populous city. ",
    "The city is also one of the states of Germany, and is the third smallest state in the country by area. ",
    "Zoë's café ☕ sells 東京 pastries, naïve e\u0301clairs and 😀 cookies.",
]


def test_single_pass_matches_reference(minilm_server, reference_model) -> None:  # type: ignore[no-untyped-def]
    body = minilm_server.post("/v1/embeddings", {"input": BERLIN, "late_chunking": True}).json()
    got = np.stack([np.asarray(item["embedding"], dtype=np.float32) for item in body["data"]])
    expected = reference_late_chunking(*reference_model, BERLIN, window=256, overlap=0)
    assert got.shape == (len(BERLIN), 384)
    assert cosine_rows(got, expected).min() > 0.9999
    tokenizer = reference_model[0]
    assert body["usage"]["prompt_tokens"] == len(tokenizer("".join(BERLIN))["input_ids"])


def test_context_reaches_every_chunk(minilm_server) -> None:  # type: ignore[no-untyped-def]
    late = minilm_server.embed(BERLIN[:3], late_chunking=True)
    naive = minilm_server.embed(BERLIN[:3])
    query = minilm_server.embed(["Berlin"])
    # Chunks 2 and 3 never name Berlin; with the document's context they move towards it.
    assert ((late @ query.T)[1:] > (naive @ query.T)[1:]).all()


def test_macro_chunks_match_the_paper_slicing(minilm_server, reference_model) -> None:  # type: ignore[no-untyped-def]
    sentences = [f"Sentence number {i} talks about topic {i % 7} and mentions item {i * 13}. " for i in range(120)]
    chunks = ["".join(sentences[i : i + 6]) for i in range(0, 120, 6)]  # 20 chunks, ~1,900 tokens
    body = minilm_server.post("/v1/embeddings", {"input": chunks, "late_chunking": True, "window_overlap": 48}).json()
    got = np.stack([np.asarray(item["embedding"], dtype=np.float32) for item in body["data"]])
    expected = reference_late_chunking(*reference_model, chunks, window=256, overlap=48)
    assert got.shape == (20, 384)
    assert cosine_rows(got, expected).min() > 0.9999
    n_tokens = len(reference_model[0]("".join(chunks))["input_ids"])
    assert n_tokens > 1500
    windows = 1 + -(-(n_tokens - 256) // (256 - 48))
    assert body["usage"]["prompt_tokens"] == n_tokens + (windows - 1) * 48  # overlaps are processed twice


def test_chunks_without_whitespace_are_joined_with_a_space(minilm_server) -> None:  # type: ignore[no-untyped-def]
    tight = [chunk.strip() for chunk in BERLIN]
    spaced = [chunk.strip() + " " for chunk in BERLIN[:-1]] + [BERLIN[-1].strip()]
    np.testing.assert_allclose(
        minilm_server.embed(tight, late_chunking=True), minilm_server.embed(spaced, late_chunking=True), atol=1e-6
    )


def test_no_chunk_is_dropped(minilm_server) -> None:  # type: ignore[no-untyped-def]
    chunks = ["First part.", "", "   ", "Last part."]
    vectors = minilm_server.embed(chunks, late_chunking=True, dimensions=32, encoding_format="base64")
    assert vectors.shape == (4, 32)
    assert np.isfinite(vectors).all()


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"input": [[1, 2, 3]], "late_chunking": True}, "input"),
        ({"input": ["a", "b"], "late_chunking": True, "truncate": "end"}, "truncate"),
        ({"input": ["a", "b"], "late_chunking": True, "window_overlap": 256}, "window_overlap"),
        ({"input": ["a", "b"], "window_overlap": 16}, "window_overlap"),
        ({"input": ["a"], "late_chunking": True, "window_overlap": -1}, "window_overlap"),
    ],
)
def test_late_chunking_errors(minilm_server, fields, param) -> None:  # type: ignore[no-untyped-def]
    response = minilm_server.post("/v1/embeddings", fields)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param


def test_document_size_limit(start_server) -> None:  # type: ignore[no-untyped-def]
    server = start_server(max_document_tokens=1000)
    response = server.post("/v1/embeddings", {"input": ["word " * 600, "word " * 600], "late_chunking": True})
    assert response.status_code == 400
    message = response.json()["error"]["message"]
    assert "1000" in message and "max-document-tokens" in message


def test_long_document_interleaves_with_short_requests(start_server) -> None:  # type: ignore[no-untyped-def]
    # No result cache: it would answer every repeated "short" at once, never queued, and the
    # latencies below would say nothing about the scheduler.
    server = start_server(local_cache_mb=0)  # CPU default budget: 2,048 tokens, 8 windows of 256 per batch
    words = [f"w{i % 997}" for i in range(30_000)]
    chunks = [" ".join(words[i : i + 500]) + " " for i in range(0, len(words), 500)]  # ~60k tokens
    done: dict[str, float] = {}
    for _ in range(3):  # first-call costs (new shapes) are not what this test is about
        assert httpx.post(server.url + "/v1/embeddings", json={"input": "short"}, timeout=60).status_code == 200
    computed_before = computed_inputs(server)

    def long_request() -> None:
        started = time.perf_counter()
        response = server.post(
            "/v1/embeddings",
            {"input": chunks, "late_chunking": True, "window_overlap": 0, "encoding_format": "base64"},
        )
        assert response.status_code == 200 and len(response.json()["data"]) == len(chunks)
        done["long"] = time.perf_counter() - started
        done["tokens"] = response.json()["usage"]["prompt_tokens"]

    thread = threading.Thread(target=long_request)
    thread.start()
    deadline = time.monotonic() + 60
    while server.metric("embed_queue_depth", model="all-MiniLM-L6-v2") < 50:
        assert time.monotonic() < deadline, "the document never queued"
        time.sleep(0.005)
    latencies = []
    while thread.is_alive() and len(latencies) < 8:
        started = time.perf_counter()
        assert httpx.post(server.url + "/v1/embeddings", json={"input": "short"}, timeout=60).status_code == 200
        latencies.append(time.perf_counter() - started)
    thread.join()
    assert len(latencies) >= 3, "the document finished before the short requests were sent"
    # The engine computed every window (no overlap: 256 tokens each) and every short request.
    windows = -(-int(done["tokens"]) // 256)
    assert computed_inputs(server) - computed_before == windows + len(latencies)
    # A short request waits for the batch of windows running when it arrives, then runs on its
    # own: not behind the batch prepared meanwhile, nor inside a batch of windows.
    batch_s = done["long"] / (done["tokens"] / 2048)
    assert max(latencies) < 1.8 * batch_s + 0.1, (latencies, batch_s)

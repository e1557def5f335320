"""Every error path answers with its status and OpenAI's error body; never a stack trace."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
import yaml

from server.app import create_app
from server.settings import ServerSettings


def assert_error(response: httpx.Response, status: int, error_type: str, code: str | None = None) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == error_type
    assert error["message"] and "Traceback" not in error["message"]
    if code is not None:
        assert error["code"] == code
    return error


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b'{"input": "x"', "not valid JSON"),
        (b"", "empty"),
        (b"[1, 2]", "JSON object"),
        (b'{"model": "all-MiniLM-L6-v2"}', "Missing required parameter: input"),
        (b'{"input": []}', "must not be empty"),
        (b'{"input": 5}', "input must be"),
        (b'{"input": ["a", 1]}', "input[1]"),
        (b'{"input": [[1, 2], "a"]}', "input[1]"),
        (b'{"input": "x", "encoding_format": "int8"}', "encoding_format"),
        (b'{"input": "x", "dimensions": "64"}', "dimensions"),
        (b'{"input": "x", "colour": "red"}', "Unrecognized request argument supplied: colour"),
        (b'{"input": "x", "truncate": "middle"}', "truncate"),
        (b'{"input": "x", "model": 7}', "model"),
    ],
)
def test_validation_errors_are_400(minilm_server, content, fragment) -> None:  # type: ignore[no-untyped-def]
    response = httpx.post(
        minilm_server.url + "/v1/embeddings", content=content, headers={"Content-Type": "application/json"}
    )
    error = assert_error(response, 400, "invalid_request_error")
    assert fragment in error["message"]
    assert "detail" not in response.json()


def test_unknown_model_is_404_listing_served_names(minilm_server) -> None:  # type: ignore[no-untyped-def]
    response = minilm_server.post("/v1/embeddings", {"input": "x", "model": "text-embedding-3-small"})
    error = assert_error(response, 404, "invalid_request_error", "model_not_found")
    assert "all-MiniLM-L6-v2" in error["message"] and error["param"] == "model"


def test_unknown_route_and_method(minilm_server) -> None:  # type: ignore[no-untyped-def]
    assert_error(httpx.get(minilm_server.url + "/v2/nothing"), 404, "invalid_request_error", "not_found")
    assert_error(httpx.get(minilm_server.url + "/v1/embeddings"), 405, "invalid_request_error")


def test_api_keys(start_server) -> None:  # type: ignore[no-untyped-def]
    server = start_server(api_key=["key-one", "key-two"])
    body = {"input": "x"}
    missing = server.post("/v1/embeddings", body)
    assert_error(missing, 401, "authentication_error", "invalid_api_key")
    assert missing.headers["www-authenticate"] == "Bearer"
    assert_error(server.post("/v1/embeddings", body, headers={"Authorization": "Bearer nope"}), 401,
                 "authentication_error")  # fmt: skip
    assert_error(server.post("/v1/embeddings", body, headers={"Authorization": "Basic key-one"}), 401,
                 "authentication_error")  # fmt: skip
    for key in ("key-one", "key-two"):
        assert server.post("/v1/embeddings", body, headers={"Authorization": f"Bearer {key}"}).status_code == 200
    assert_error(httpx.get(server.url + "/v1/models"), 401, "authentication_error")
    # Probes and metrics stay open for orchestrators and scrapers.
    assert httpx.get(server.url + "/health").status_code == 200
    assert httpx.get(server.url + "/metrics").status_code == 200


def test_body_over_limit_is_413(start_server) -> None:  # type: ignore[no-untyped-def]
    server = start_server(max_request_bytes=2048)
    response = server.post("/v1/embeddings", {"input": ["x" * 100] * 50})
    error = assert_error(response, 413, "invalid_request_error", "request_too_large")
    assert "2048" in error["message"]

    def chunks():  # type: ignore[no-untyped-def]
        yield b'{"input": "'
        yield b"y" * 4096
        yield b'"}'

    chunked = httpx.post(server.url + "/v1/embeddings", content=chunks(), headers={"Content-Type": "application/json"})
    assert_error(chunked, 413, "invalid_request_error")
    assert server.post("/v1/embeddings", {"input": "fits"}).status_code == 200


def test_overload_is_429_with_retry_after(start_server, stsb_test, st_minilm) -> None:  # type: ignore[no-untyped-def]
    limit = 25_000
    server = start_server(max_queue_tokens=limit, max_batch_tokens=512)
    # Distinct texts: identical ones are computed once and would queue fewer tokens.
    texts = [f"{i}. {text}" for i, text in enumerate([pair[0] for pair in stsb_test] + [pair[1] for pair in stsb_test])]
    lengths = [len(ids) for ids in st_minilm.tokenizer(texts)["input_ids"]]
    cumulative = np.cumsum(lengths)
    big = texts[: int(np.searchsorted(cumulative, 0.8 * limit))]
    small = texts[len(big) : len(big) + int(np.searchsorted(cumulative, 0.3 * limit))]
    results: dict[str, httpx.Response] = {}
    first = threading.Thread(target=lambda: results.update(big=server.post("/v1/embeddings", {"input": big})))
    first.start()
    deadline = time.monotonic() + 30
    while server.metric("embed_queue_tokens", model="all-MiniLM-L6-v2") < 0.75 * limit:
        assert time.monotonic() < deadline, "the big request never queued"
        time.sleep(0.002)
    refused = server.post("/v1/embeddings", {"input": small})
    error = assert_error(refused, 429, "rate_limit_error", "server_overloaded")
    assert int(refused.headers["retry-after"]) >= 1
    assert "queue" in error["message"]
    first.join()
    assert results["big"].status_code == 200
    assert server.post("/v1/embeddings", {"input": small}).status_code == 200
    triples = [" ".join(texts[i : i + 3]) for i in range(0, 2400, 3)]  # ~800 inputs, ~32k tokens
    too_big = server.post("/v1/embeddings", {"input": triples})
    assert_error(too_big, 400, "invalid_request_error")
    assert "split it" in too_big.json()["error"]["message"]


def test_expected_wait_beyond_the_limit_is_429(start_server, stsb_test) -> None:  # type: ignore[no-untyped-def]
    server = start_server(max_queue_wait_s=0.5, max_batch_tokens=512, local_cache_mb=0)
    texts = [f"{i}. {pair[0]} {pair[1]}" for i, pair in enumerate(stsb_test)]
    assert server.post("/v1/embeddings", {"input": texts[:64]}).status_code == 200  # the speed is now known
    results: dict[str, httpx.Response] = {}
    first = threading.Thread(
        target=lambda: results.update(big=server.post("/v1/embeddings", {"input": texts[64:1200]}))
    )
    first.start()
    deadline = time.monotonic() + 30
    while server.metric("embed_queue_wait_estimate_seconds", model="all-MiniLM-L6-v2") < 2:
        assert time.monotonic() < deadline, "the big request never queued"
        time.sleep(0.002)
    refused = server.post("/v1/embeddings", {"input": texts[1200:1204]})
    error = assert_error(refused, 429, "rate_limit_error", "server_overloaded")
    assert "would wait about" in error["message"] and "--max-queue-wait-s" in error["message"]
    assert int(refused.headers["retry-after"]) >= 1
    first.join()
    assert results["big"].status_code == 200  # a request into an empty queue is always let in


async def test_not_ready_is_503() -> None:
    # The real app before its models are loaded (lifespan not run yet).
    app = create_app(ServerSettings())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
        ready = await client.get("/ready")
        assert ready.status_code == 503 and ready.headers["retry-after"]
        assert ready.json()["status"] == "loading"
        assert ready.json()["error"]["code"] == "model_not_ready"
        assert_error(await client.post("/v1/embeddings", json={"input": "x"}), 503, "server_error")
        assert (await client.get("/health")).status_code == 200


SHORT_VOCAB = 30_000  # rows of the broken model's embedding table; its tokenizer has 30,522 ids


@pytest.fixture(scope="module")
def short_vocab_card(minilm_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny BERT whose embedding table is shorter than its tokenizer's vocabulary (a real
    class of broken checkpoint). The server checks token ids against the tokenizer, so ids
    30,000..30,521 pass and reach the weights: the forward pass in the replica process fails
    with IndexError, and the child sends its error text back over the pipe."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    folder = tmp_path_factory.mktemp("short-vocab-bert")
    tokenizer = AutoTokenizer.from_pretrained(str(minilm_dir))
    assert len(tokenizer) > SHORT_VOCAB
    config = BertConfig(vocab_size=SHORT_VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                        num_attention_heads=2, max_position_embeddings=64)  # fmt: skip
    torch.manual_seed(0)
    BertModel(config).save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    card = folder / "card.yaml"
    card.write_text(yaml.safe_dump({"name": "short-vocab-bert", "source": str(folder), "pooling": "cls"}))
    return card


def test_replica_failure_is_generic_500_and_logged(start_server, short_vocab_card, caplog) -> None:  # type: ignore[no-untyped-def]
    # The default engine, each replica in its own process. Nothing is patched: the model itself fails.
    server = start_server(model=[str(short_vocab_card)], token_ids="native", local_cache_mb=0)
    assert server.settings.worker_processes
    good, bad = [2000, 2001, 2002], [2000, SHORT_VOCAB + 100, 2002]
    errors = {"type": "server_error", "code": "internal_error", "status": "500"}
    errors_before = server.metric("embed_errors_total", **errors)
    with caplog.at_level(logging.WARNING):
        response = server.post("/v1/embeddings", {"input": [good, bad]})
    error = assert_error(response, 500, "server_error", "internal_error")
    assert error["param"] is None
    for detail in ("IndexError", "index out of range", "Traceback", "File "):
        assert detail not in response.text
    # The replica's own error (text from the child process, raised on the server's replica
    # thread) is logged as an error, though the client never sees it.
    assert any(
        record.levelno >= logging.ERROR and "IndexError: index out of range" in record.getMessage()
        for record in caplog.records
    ), caplog.text
    assert server.metric("embed_errors_total", **errors) == errors_before + 1
    # The server keeps serving, from the same replica process: nothing was restarted.
    assert server.post("/v1/embeddings", {"input": [good]}).status_code == 200
    assert server.post("/v1/embeddings", {"input": "plain text"}).status_code == 200
    (replica,) = server.state.registry.get(None).replica_health()
    assert replica.alive and replica.restarts == 0

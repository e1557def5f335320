"""Every error path answers with its status and OpenAI's error body; never a stack trace."""

from __future__ import annotations

import logging
import threading
import time

import httpx
import numpy as np
import pytest

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


def test_internal_error_is_generic_500_and_logged(start_server, caplog) -> None:  # type: ignore[no-untyped-def]
    server = start_server()
    runtime = server.state.registry.get(None)
    engine = runtime._engines[0]

    def broken(batch):  # type: ignore[no-untyped-def]
        raise RuntimeError("secret internal detail")

    original = engine.run
    engine.run = broken
    try:
        with caplog.at_level(logging.ERROR):
            response = server.post("/v1/embeddings", {"input": ["a", "b", "c"]})
    finally:
        engine.run = original
    error = assert_error(response, 500, "server_error")
    assert "secret" not in response.text
    assert "secret internal detail" in caplog.text
    assert server.post("/v1/embeddings", {"input": "recovered"}).status_code == 200
    assert server.metric("embed_errors_total", type="server_error", code="internal_error", status="500") >= 1
    assert error["code"] == "internal_error"

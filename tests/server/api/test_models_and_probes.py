"""GET /v1/models, /health, /ready and /metrics."""

from __future__ import annotations

import httpx


def test_models_lists_every_served_name(minilm_server) -> None:  # type: ignore[no-untyped-def]
    body = httpx.get(minilm_server.url + "/v1/models").json()
    assert body["object"] == "list"
    ids = [item["id"] for item in body["data"]]
    assert ids == ["all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"]
    for item in body["data"]:
        assert item["object"] == "model" and isinstance(item["created"], int) and item["owned_by"]
        assert item["metadata"]["dimensions"] == 384
        assert item["metadata"]["max_tokens"] == 256
        assert item["metadata"]["pooling"] == "mean"
    one = httpx.get(minilm_server.url + "/v1/models/sentence-transformers/all-MiniLM-L6-v2").json()
    assert one["id"] == "sentence-transformers/all-MiniLM-L6-v2" and one["root"] == "all-MiniLM-L6-v2"
    missing = httpx.get(minilm_server.url + "/v1/models/nope")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "model_not_found"


def test_served_model_name_replaces_names(start_server) -> None:  # type: ignore[no-untyped-def]
    server = start_server(served_model_name=["text-embedding-3-small", "mini"])
    ids = [item["id"] for item in httpx.get(server.url + "/v1/models").json()["data"]]
    assert ids == ["text-embedding-3-small", "mini"]
    body = server.post("/v1/embeddings", {"input": "x", "model": "mini"}).json()
    assert body["model"] == "mini"
    assert server.post("/v1/embeddings", {"input": "x", "model": "all-MiniLM-L6-v2"}).status_code == 404


def test_health_and_ready(minilm_server) -> None:  # type: ignore[no-untyped-def]
    assert httpx.get(minilm_server.url + "/health").json() == {"status": "ok"}
    ready = httpx.get(minilm_server.url + "/ready").json()
    assert ready["status"] == "ready" and "all-MiniLM-L6-v2" in ready["models"]


def test_metrics_expose_every_stage(minilm_server) -> None:  # type: ignore[no-untyped-def]
    minilm_server.post("/v1/embeddings", {"input": ["metrics one", "metrics two"]})
    minilm_server.post("/v1/embeddings", {"input": "x", "model": "nope"})
    text = httpx.get(minilm_server.url + "/metrics").text
    for family in (
        "embed_request_duration_seconds_bucket",
        "embed_tokenization_duration_seconds_bucket",
        "embed_queue_duration_seconds_bucket",
        "embed_inference_duration_seconds_bucket",
        "embed_batch_size_bucket",
        "embed_batch_tokens_bucket",
        "embed_queue_depth",
        "embed_inputs_total",
        "embed_tokens_total",
        "embed_errors_total",
    ):
        assert family in text, family
    # Buckets resolve 1 ms to 10 s.
    assert 'le="0.001"' in text and 'le="10.0"' in text
    assert 'embed_errors_total{code="model_not_found",status="404",type="invalid_request_error"}' in text
    assert minilm_server.metric("embed_inputs_total", model="all-MiniLM-L6-v2") >= 2

"""GET /v1/models, /health, /ready and /metrics."""

from __future__ import annotations

import time

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
    assert ready["status"] == "ready"
    assert ready["models"]["all-MiniLM-L6-v2"] == {"replicas": 1, "alive": 1, "restarts": 0}


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


def test_operational_metrics(minilm_server) -> None:  # type: ignore[no-untyped-def]
    minilm_server.post("/v1/embeddings", {"input": "operational metrics"})
    model = "all-MiniLM-L6-v2"
    assert minilm_server.metric("embed_ready") == 1
    assert minilm_server.metric("embed_replicas_alive", model=model) == 1
    assert minilm_server.metric("embed_replica_restarts_total", model=model) == 0
    assert minilm_server.metric("embed_replica_resident_memory_bytes", model=model, replica="0") > 50e6
    assert minilm_server.metric("embed_requests_in_flight") == 0
    assert minilm_server.metric("embed_queue_capacity_tokens", model=model) == minilm_server.settings.max_queue_tokens
    assert minilm_server.metric("process_resident_memory_bytes") > 0
    (info,) = [
        sample
        for family in minilm_server.state.metrics.registry.collect()
        if family.name == "embed_model_info"
        for sample in family.samples
    ]
    assert info.labels["model"] == model and len(info.labels["fingerprint"]) == 16
    assert info.labels["engine"] == "torch" and info.labels["dtype"] == "float32"


def test_ready_fails_from_the_start_of_a_drain_while_work_goes_on(start_server) -> None:  # type: ignore[no-untyped-def]
    server = start_server(drain_timeout_s=60)
    server.state.loop.call_soon_threadsafe(server.state.begin_drain)
    deadline = time.monotonic() + 5
    while (ready := httpx.get(server.url + "/ready")).status_code == 200:
        assert time.monotonic() < deadline
    assert ready.status_code == 503 and ready.json()["status"] == "draining"
    assert ready.json()["error"]["code"] == "model_not_ready"
    assert server.metric("embed_ready") == 0
    # Accepted work is still done during the drain (the load balancer is moving away meanwhile).
    assert server.post("/v1/embeddings", {"input": "still served", "cache": False}).status_code == 200

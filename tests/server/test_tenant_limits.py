"""Tenants through the real server: limits shared by two server processes through one Redis,
OpenAI's rate-limit headers, model allow-lists, and fair turns between tenants in the queue."""

from __future__ import annotations

import statistics
import threading
import time
from pathlib import Path

import httpx
import yaml

from tests.helpers import ServerProcess
from tests.redis_server import RedisProcess

MODEL = "all-MiniLM-L6-v2"


def keys_file(tmp_path: Path, tenants: dict[str, dict[str, object]]) -> str:
    path = tmp_path / "api-keys.yaml"
    path.write_text(yaml.safe_dump({"tenants": tenants}))
    return str(path)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_limits_hold_across_two_servers_sharing_redis(tmp_path: Path, redis_proc: RedisProcess) -> None:
    limit = 12
    path = keys_file(tmp_path, {
        "metered": {"keys": ["k-metered"], "requests_per_minute": limit, "tokens_per_minute": 100_000},
        "search": {"keys": ["k-search"], "models": [MODEL]},
        "other": {"keys": ["k-other"], "models": ["some-other-model"]},
    })  # fmt: skip
    flags = ("--api-keys-file", path, "--redis-url", redis_proc.url, "--local-cache-mb", "0")
    servers = [ServerProcess(*flags), ServerProcess(*flags)]
    try:
        answers = []
        started = time.monotonic()
        for attempt in range(3 * limit):
            server = servers[attempt % 2]
            body = {"input": f"request {attempt}", "cache": False}
            answers.append(
                httpx.post(server.url + "/v1/embeddings", json=body, headers=bearer("k-metered"), timeout=60)
            )
        admitted = [a for a in answers if a.status_code == 200]
        refused = [a for a in answers if a.status_code == 429]
        assert len(admitted) + len(refused) == len(answers)
        # One budget for the deployment, not one per server: the burst of a minute's worth, plus what
        # the steady rate (GCRA) gave back while the requests ran.
        refilled = (time.monotonic() - started) * limit / 60
        assert limit <= len(admitted) <= limit + refilled + 1e-9, (len(admitted), refilled)
        assert {a.request.url.port for a in admitted} == {s.port for s in servers}
        first = admitted[0].headers
        assert first["x-ratelimit-limit-requests"] == str(limit)
        assert int(first["x-ratelimit-remaining-requests"]) == limit - 1
        assert first["x-ratelimit-limit-tokens"] == "100000" and first["x-ratelimit-reset-requests"].endswith("s")
        error = refused[0].json()["error"]
        assert error["type"] == "rate_limit_error" and error["code"] == "rate_limit_exceeded"
        assert "requests per min" in error["message"] and int(refused[0].headers["retry-after"]) >= 1
        assert refused[0].headers["x-ratelimit-remaining-requests"] == "0"
        # The allow-list: a model the tenant may not use does not exist for it.
        url = servers[0].url
        assert httpx.post(url + "/v1/embeddings", json={"input": "x"}, headers=bearer("k-search")).status_code == 200
        hidden = httpx.post(url + "/v1/embeddings", json={"input": "x"}, headers=bearer("k-other"))
        assert hidden.status_code == 404 and hidden.json()["error"]["code"] == "model_not_found"
        assert hidden.json()["error"]["message"].endswith("models available to you: none")
        assert httpx.get(url + "/v1/models", headers=bearer("k-other")).json()["data"] == []
        assert len(httpx.get(url + "/v1/models", headers=bearer("k-search")).json()["data"]) == 2
        assert httpx.post(url + "/v1/embeddings", json={"input": "x"}, headers=bearer("wrong")).status_code == 401
        metrics = httpx.get(url + "/metrics").text
        assert 'embed_tenant_requests_limited_total{reason="requests",tenant="metered"}' in metrics
    finally:
        for server in servers:
            server.stop()


def test_one_tenants_ingestion_does_not_starve_anothers_queries(tmp_path: Path, stsb_test) -> None:  # type: ignore[no-untyped-def]
    path = keys_file(tmp_path, {"ingest": {"keys": ["k-ingest"]}, "search": {"keys": ["k-search"]}})
    server = ServerProcess("--api-keys-file", path, "--local-cache-mb", "0", "--request-timeout-s", "600")
    try:
        pairs = [sentence for pair in stsb_test for sentence in pair[:2]]
        passages = [f"{i} {pairs[i % len(pairs)]}" for i in range(4096)]
        jobs = [passages[i : i + 256] for i in range(0, 4096, 256)]  # one job as 16 concurrent requests
        statuses: list[int] = []

        def ingest(inputs: list[str]) -> None:
            body = {"input": inputs, "cache": False}
            answer = httpx.post(server.url + "/v1/embeddings", json=body, headers=bearer("k-ingest"), timeout=300)
            statuses.append(answer.status_code)

        def metric(name: str) -> float:
            for line in httpx.get(server.url + "/metrics").text.splitlines():
                if line.startswith(f'{name}{{model="{MODEL}"}}'):
                    return float(line.rsplit(" ", 1)[1])
            return 0.0

        threads = [threading.Thread(target=ingest, args=(job,)) for job in jobs]
        for thread in threads:
            thread.start()
        while metric("embed_queue_depth") < 1024:
            time.sleep(0.01)
        batches_before = metric("embed_inference_duration_seconds_count")
        seconds_before = metric("embed_inference_duration_seconds_sum")
        latencies = []
        with httpx.Client(timeout=60) as http:
            for query in range(10):
                body = {"input": f"query {query}: {stsb_test[query][0]}", "cache": False}
                started = time.perf_counter()
                assert (
                    http.post(server.url + "/v1/embeddings", json=body, headers=bearer("k-search")).status_code == 200
                )
                latencies.append(time.perf_counter() - started)
        still_queued = metric("embed_queue_depth")
        # The job's batch time: each query ran one batch of its own, too short to count.
        batch_time = (metric("embed_inference_duration_seconds_sum") - seconds_before) / (
            metric("embed_inference_duration_seconds_count") - batches_before - len(latencies)
        )
        for thread in threads:
            thread.join()
    finally:
        server.stop()
    assert still_queued > 0, "the ingestion job must still be running when the queries end"
    assert statuses == [200] * len(jobs)
    print(f"queries p50 {statistics.median(latencies):.3f} s, batch time {batch_time:.3f} s")
    assert statistics.median(latencies) <= 2 * batch_time, (statistics.median(latencies), batch_time)

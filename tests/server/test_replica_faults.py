"""Fault injection on real replica processes: a hung replica (SIGSTOP), a killed one under
load (SIGKILL), one killed while idle, and one that cannot be restarted."""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
from pathlib import Path

import httpx

MODEL = "all-MiniLM-L6-v2"


def replica_pid(server) -> int:  # type: ignore[no-untyped-def]
    (health,) = server.state.registry.get(None).replica_health()
    assert health.alive and health.pid
    return health.pid


def wait_for(condition, timeout: float) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def run_clients(server, clients: int, requests: int, texts: list[str]) -> list[int]:  # type: ignore[no-untyped-def]
    statuses: list[int] = []

    def client(index: int) -> None:
        with httpx.Client(timeout=120) as http:
            for round_ in range(requests):
                body = {"input": [f"{index}.{round_} {text}" for text in texts], "cache": False}
                statuses.append(http.post(server.url + "/v1/embeddings", json=body).status_code)

    threads = [threading.Thread(target=client, args=(index,)) for index in range(clients)]
    for thread in threads:
        thread.start()
    return statuses, threads  # type: ignore[return-value]


def test_hung_replica_is_replaced_and_its_requests_answered(start_server, stsb_test) -> None:  # type: ignore[no-untyped-def]
    server = start_server(local_cache_mb=0, replica_timeout_s=2, request_timeout_s=120)
    pid = replica_pid(server)
    texts = [pair[0] for pair in stsb_test[:64]]
    statuses, threads = run_clients(server, 4, 3, texts)
    wait_for(lambda: server.metric("embed_batch_size_count", model=MODEL) >= 2, 60)
    os.kill(pid, signal.SIGSTOP)
    for thread in threads:
        thread.join(timeout=180)
    assert statuses == [200] * 12  # the hung batch was retried on the new process
    assert replica_pid(server) != pid
    assert server.metric("embed_replica_restarts_total", model=MODEL) == 1


def test_killed_replica_under_16_clients_loses_no_request(start_server, stsb_test) -> None:  # type: ignore[no-untyped-def]
    server = start_server(local_cache_mb=0)
    pid = replica_pid(server)
    texts = [pair[1] for pair in stsb_test[:8]]
    statuses, threads = run_clients(server, 16, 6, texts)
    wait_for(lambda: server.metric("embed_batch_size_count", model=MODEL) >= 5, 60)
    os.kill(pid, signal.SIGKILL)
    for thread in threads:
        thread.join(timeout=180)
    assert statuses == [200] * 96
    assert server.metric("embed_replica_restarts_total", model=MODEL) >= 1


def test_replica_killed_while_idle_is_replaced_without_traffic(start_server) -> None:  # type: ignore[no-untyped-def]
    server = start_server(local_cache_mb=0)
    pid = replica_pid(server)
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: server.state.registry.get(None).replica_health()[0].pid != pid, 10)
    wait_for(lambda: server.state.registry.get(None).replica_health()[0].alive, 120)
    assert httpx.get(server.url + "/ready").status_code == 200
    assert server.post("/v1/embeddings", {"input": "after the kill", "cache": False}).status_code == 200


def test_a_replica_that_cannot_restart_fails_readiness_then_liveness(  # type: ignore[no-untyped-def]
    start_server, minilm_dir: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "model"
    shutil.copytree(minilm_dir, folder)
    server = start_server(model=[str(folder)], local_cache_mb=0)
    assert httpx.get(server.url + "/health").status_code == 200
    shutil.rmtree(folder)  # the weights are gone: a new replica process cannot load them
    os.kill(replica_pid(server), signal.SIGKILL)

    def dead_for_good() -> bool:
        (health,) = server.state.registry.get(None).replica_health()
        return not health.alive and not health.restarting

    wait_for(dead_for_good, 120)
    ready = httpx.get(server.url + "/ready")
    assert ready.status_code == 503 and ready.json()["status"] == "no live replica"
    health = httpx.get(server.url + "/health")
    assert health.status_code == 503 and "dead" in health.json()["reason"]

"""The `cpu` image, built and run for real: metadata, a read-only arbitrary-UID container that
serves the host server's vectors, and a drain on SIGTERM that loses no accepted request."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import httpx
import numpy as np
import pytest

from tests.deploy.podman import Container, cpu_image, podman
from tests.helpers import free_port, vectors_of

SIZE_LIMIT = 1.5e9  # the aim for the cpu image, in bytes


@pytest.fixture(scope="module")
def image() -> str:
    return cpu_image()


@pytest.fixture(scope="module")
def container(image: str) -> Iterator[Container]:
    running = Container(image, "embed-server-test-serve", free_port(), {"EMBED_DTYPE": "float32"})
    try:
        running.wait_healthy()
        yield running
    finally:
        running.remove()


def test_image_metadata(image: str, record_property) -> None:  # type: ignore[no-untyped-def]
    (info,) = json.loads(podman("image", "inspect", image).stdout)
    config = info["Config"]
    user, _, group = config["User"].partition(":")
    assert user.isdigit() and int(user) != 0 and group == "0", config["User"]
    assert config["Entrypoint"] == ["embed-server", "serve", "--host", "0.0.0.0"]
    assert "8000/tcp" in config["ExposedPorts"]
    assert config["StopSignal"] == "SIGTERM"
    assert info["Healthcheck"]["Test"] == ["CMD", "python3", "-m", "server.probe", "/ready"]
    env = dict(item.split("=", 1) for item in config["Env"])
    assert env["HF_HUB_OFFLINE"] == "1" and env["TOKENIZERS_PARALLELISM"] == "false"
    assert env["EMBED_DATA_DIR"].startswith("/tmp/")
    record_property("image_bytes", info["Size"])
    assert info["Size"] < SIZE_LIMIT, f"image is {info['Size'] / 1e9:.2f} GB"


def test_image_holds_the_cpu_torch_build(image: str) -> None:
    script = (
        "import importlib.metadata as m, torch; "
        "print(torch.version.cuda, sorted(d.metadata['Name'] for d in m.distributions() "
        "if d.metadata['Name'].lower().startswith(('nvidia', 'triton'))))"
    )
    result = podman("run", "--rm", "--entrypoint", "python3", image, "-c", script)
    assert result.stdout.strip() == "None []"


def test_read_only_arbitrary_uid_container_serves_the_host_vectors(container: Container, minilm_server) -> None:  # type: ignore[no-untyped-def]
    ready = container.get("/ready")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    texts = ["the container computes this", "and this sentence too", "a third one, longer than the others"]
    body = {"input": texts, "cache": False}
    answered = httpx.post(container.url + "/v1/embeddings", json=body, timeout=60)
    assert answered.status_code == 200, answered.text
    in_container = vectors_of(answered.json())
    on_host = minilm_server.embed(texts, cache=False)
    np.testing.assert_allclose(in_container, on_host, atol=1e-5)
    # The probe the image's HEALTHCHECK runs also answers for liveness.
    assert podman("exec", container.name, "python3", "-m", "server.probe", "/health").returncode == 0


def test_sigterm_during_a_burst_answers_every_accepted_request(image: str) -> None:
    drain_s = 20
    running = Container(image, "embed-server-test-drain", free_port(), {"EMBED_DRAIN_TIMEOUT_S": str(drain_s)})
    try:
        running.wait_healthy()
        texts = [f"sentence {i} of the drain test, long enough to keep the replica busy " * 4 for i in range(64)]
        outcomes: list[tuple[float, float, object]] = []  # (sent, answered, status or error name)
        stop = threading.Event()

        def client() -> None:
            with httpx.Client(timeout=120) as http:
                while not stop.is_set():
                    sent = time.monotonic()
                    try:
                        status: object = http.post(
                            running.url + "/v1/embeddings", json={"input": texts, "cache": False}
                        ).status_code
                    except httpx.TransportError as exc:
                        status = type(exc).__name__
                    outcomes.append((sent, time.monotonic(), status))
                    if not isinstance(status, int):
                        return

        clients = [threading.Thread(target=client) for _ in range(8)]
        for thread in clients:
            thread.start()
        time.sleep(3)
        podman("kill", "--signal", "TERM", running.name)
        signalled = time.monotonic()
        try:
            first_probe: object = running.get("/ready").status_code
        except httpx.TransportError as exc:
            first_probe = type(exc).__name__
        probed_after = time.monotonic() - signalled
        stop.set()
        for thread in clients:
            thread.join(timeout=drain_s + 30)
        exit_code = podman("wait", running.name, timeout=drain_s + 30).stdout.strip()
        exited_after = time.monotonic() - signalled
    finally:
        running.remove()
    # Readiness is gone at once: 503 while the socket is open; once uvicorn stops listening, the
    # probe's connection is refused, or dropped unanswered if it was still in the backlog.
    assert first_probe in (503, "ConnectError", "ReadError", "RemoteProtocolError"), first_probe
    assert probed_after < 0.1
    # Every request the server accepted was answered; later ones were refused before being accepted
    # (a new connection refused, or one sent after the signal on a keep-alive connection it closed).
    before = [status for sent, _, status in outcomes if sent < signalled]
    after = [status for sent, _, status in outcomes if sent >= signalled]
    assert set(before) <= {200, "ConnectError"}, before
    assert set(after) <= {200, "ConnectError", "RemoteProtocolError"}, after
    in_flight_at_signal = [s for sent, done, s in outcomes if sent < signalled < done]
    assert in_flight_at_signal and all(status == 200 for status in in_flight_at_signal)
    assert exit_code in ("0", "143"), exit_code
    assert exited_after < drain_s + 5

"""Test utilities: real servers in background threads, decoding of API responses."""

from __future__ import annotations

import base64
import socket
import threading
import time
from typing import Any

import httpx
import numpy as np
import uvicorn

from server.app import create_app
from server.settings import ServerSettings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RunningServer:
    """The real app behind a real uvicorn on a free port, in a background thread."""

    def __init__(self, settings: ServerSettings, ready_timeout: float = 300.0, app: Any = None) -> None:
        self.settings = settings
        self.app = app if app is not None else create_app(settings)
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=settings.port, log_level="warning", lifespan="on", loop="asyncio"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name=f"uvicorn-{settings.port}", daemon=True)
        self._thread.start()
        self.url = f"http://127.0.0.1:{settings.port}"
        self.wait_ready(ready_timeout)

    @property
    def state(self):  # type: ignore[no-untyped-def]
        return self.app.state.server

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            loading = getattr(self.app.state, "loading", None)
            if loading is not None and loading.done() and loading.exception() is not None:
                raise RuntimeError(f"server failed to start: {loading.exception()}")
            try:
                if httpx.get(self.url + "/ready", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"server on {self.url} not ready after {timeout}s")

    def post(
        self, path: str, body: Any = None, *, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> httpx.Response:
        return httpx.post(self.url + path, json=body, headers=headers, timeout=300, **kwargs)

    def embed(self, inputs: Any, **fields: Any) -> np.ndarray:
        response = self.post("/v1/embeddings", {"input": inputs, **fields})
        assert response.status_code == 200, response.text
        return vectors_of(response.json())

    def metric(self, name: str, **labels: str) -> float:
        value = self.state.metrics.registry.get_sample_value(name, labels)
        return 0.0 if value is None else value

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=60)


def vectors_of(body: dict[str, Any]) -> np.ndarray:
    rows = []
    for expected_index, item in enumerate(body["data"]):
        assert item["index"] == expected_index
        assert item["object"] == "embedding"
        embedding = item["embedding"]
        if isinstance(embedding, str):
            rows.append(np.frombuffer(base64.b64decode(embedding), dtype="<f4"))
        else:
            rows.append(np.asarray(embedding, dtype=np.float32))
    return np.stack(rows)


def computed_inputs(server: RunningServer, model: str = "all-MiniLM-L6-v2") -> float:
    """Inputs the model's engine has computed so far (`embed_batch_size_sum`): cache hits and
    coalesced duplicates never reach it, so a rise by N proves N inputs were computed."""
    return server.metric("embed_batch_size_sum", model=model)


class ServerProcess:
    """The real `embed-server serve` command in a process of its own, ready on a free port."""

    def __init__(self, *flags: str, env: dict[str, str] | None = None, ready_timeout: float = 180.0) -> None:
        import os
        import subprocess
        import sys
        from pathlib import Path

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        environment = {**os.environ, "HF_HUB_OFFLINE": "1", "EMBED_DTYPE": "float32", **(env or {})}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "server", "serve", "--port", str(self.port), "--log-level", "warning", *flags],
            cwd=Path(__file__).resolve().parents[1], env=environment,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        deadline = time.monotonic() + ready_timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.process.stdout.read() if self.process.stdout else ''}")
            try:
                if httpx.get(self.url + "/ready", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"server on {self.url} not ready after {ready_timeout}s")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=60)
            except Exception:
                self.process.kill()

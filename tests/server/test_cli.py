"""The console command: --help, settings from flags and environment, start-up errors, SIGTERM."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from server.cli import build_parser, main
from server.settings import ServerSettings
from tests.helpers import free_port

ROOT = Path(__file__).resolve().parents[2]
EVERY_FLAG = [
    "--model", "--served-model-name", "--host", "--port", "--device", "--dtype", "--workers",
    "--max-batch-tokens", "--max-queue-tokens", "--api-keys-file", "--token-ids", "--truncate",
    "--pooling", "--attention", "--layer", "--normalize", "--no-normalize", "--engine",
]  # fmt: skip


def test_help_documents_every_flag() -> None:
    result = subprocess.run([sys.executable, "-m", "server", "--help"], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0
    for flag in EVERY_FLAG:
        assert flag in result.stdout, flag
    for name in ServerSettings.model_fields:
        assert f"EMBED_{name.upper()}" in result.stdout


def test_flags_override_environment(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("EMBED_PORT", "9001")
    monkeypatch.setenv("EMBED_API_KEY", "a,b")
    monkeypatch.setenv("EMBED_TRUNCATE", "end")
    args = vars(
        build_parser().parse_args(["serve", "--port", "9002", "--model", "x", "--model", "y", "--no-normalize"])
    )
    args.pop("command")
    settings = ServerSettings(**args)
    assert settings.port == 9002  # flag wins
    assert settings.api_key == ["a", "b"]  # from the environment
    assert settings.truncate == "end"
    assert settings.model == ["x", "y"]
    assert settings.normalize is False
    assert ServerSettings().host == "127.0.0.1" and ServerSettings(port=1).port == 1


def test_keys_are_never_flags_and_never_logged(capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # A flag would put the key in /proc/*/cmdline for every user of the machine to read.
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--api-key", "secret-key"])
    assert "unrecognized arguments: --api-key" in capsys.readouterr().err
    settings = ServerSettings(api_key=["secret-key-1"], redis_url="redis://:redis-pass@cache:6379/0")
    dumped = str(settings.redacted())
    assert "secret-key-1" not in dumped and "redis-pass" not in dumped and "cache:6379/0" in dumped
    # The start-up log line is that dump: start the real command with a model that cannot load.
    monkeypatch.setenv("EMBED_API_KEY", "secret-key-2")
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        assert main(["serve", "--model", "no-such-model-anywhere"]) == 2
    finally:  # serve() installs the server's own log handler
        root.handlers[:], root.level = handlers, level
    logged = capsys.readouterr().err
    assert "settings:" in logged and "<redacted>" in logged and "secret-key-2" not in logged


def test_bad_values_exit_with_a_message(capsys) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SystemExit):
        main(["serve", "--dtype", "float8"])
    assert main(["serve", "--workers", "0"]) == 2
    assert "--workers" in capsys.readouterr().err
    assert main(["serve", "--model", "no-such-model-anywhere"]) == 2
    assert "shipped" in capsys.readouterr().err


def _serve(*flags: str) -> tuple[subprocess.Popen[str], str]:
    """The real command in a process of its own, once /ready answers 200."""
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "EMBED_DTYPE": "float32"}
    process = subprocess.Popen(
        [sys.executable, "-m", "server", "serve", "--port", str(port), "--log-level", "warning", *flags],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        assert process.poll() is None, process.stdout.read() if process.stdout else ""
        try:
            if httpx.get(url + "/ready", timeout=1).status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline
        time.sleep(0.1)


def _wait_until_tokenized(url: str, requests: int) -> None:
    deadline = time.monotonic() + 60
    while _metric(url, "embed_tokenization_duration_seconds_count") < requests:
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_sigterm_finishes_queued_work_then_exits(stsb_test) -> None:  # type: ignore[no-untyped-def]
    process, url = _serve()
    try:
        texts = [pair[0] for pair in stsb_test[:300]]
        results: list[int] = []

        def client() -> None:
            response = httpx.post(url + "/v1/embeddings", json={"input": texts}, timeout=120)
            results.append(response.status_code)
            assert len(response.json()["data"]) == len(texts)

        threads = [threading.Thread(target=client) for _ in range(8)]
        for thread in threads:
            thread.start()
        # SIGTERM only once all eight requests are inside (tokenized: queued or running).
        _wait_until_tokenized(url, 8)
        process.send_signal(signal.SIGTERM)
        for thread in threads:
            thread.join()
        assert results == [200] * 8
        # uvicorn re-raises the captured SIGTERM once the drain is complete (exit by that signal).
        assert process.wait(timeout=60) == -signal.SIGTERM
        with pytest.raises(httpx.TransportError):
            httpx.get(url + "/health", timeout=2)
    finally:
        if process.poll() is None:
            process.kill()


def test_drain_is_bounded_by_drain_timeout(stsb_test) -> None:  # type: ignore[no-untyped-def]
    # Far more queued work than the drain allows: what is still waiting when it ends gets 503.
    drain_s = 1.0
    process, url = _serve("--drain-timeout-s", str(drain_s), "--no-packing")
    try:
        texts = [" ".join(pair[:2]) for pair in stsb_test[:1000]]
        answers: list[httpx.Response] = []

        def client(index: int) -> None:
            body = {"input": [f"{index} {text}" for text in texts], "cache": False}
            answers.append(httpx.post(url + "/v1/embeddings", json=body, timeout=120))

        threads = [threading.Thread(target=client, args=(index,)) for index in range(6)]
        for thread in threads:
            thread.start()
        _wait_until_tokenized(url, 6)
        signalled = time.monotonic()
        process.send_signal(signal.SIGTERM)
        for thread in threads:
            thread.join()
        process.wait(timeout=30)
        exited_after = time.monotonic() - signalled
    finally:
        if process.poll() is None:
            process.kill()
    statuses = sorted(answer.status_code for answer in answers)
    assert 503 in statuses and set(statuses) <= {200, 503}, statuses
    refused = next(answer for answer in answers if answer.status_code == 503)
    assert "drain time ran out" in refused.json()["error"]["message"]
    assert refused.headers["retry-after"]
    assert exited_after < drain_s + 5


def _metric(url: str, name: str) -> float:
    for line in httpx.get(url + "/metrics", timeout=5).text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0

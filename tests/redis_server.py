"""A real redis-server on a free port that tests can stop, kill and restart on the same port."""

from __future__ import annotations

import asyncio
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable

import redis


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pong(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class RedisProcess:
    """`redis-server` without persistence, bound to 127.0.0.1; `url` stays valid across restarts."""

    def __init__(self, port: int | None = None) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not on PATH: `make test` installs it")
        self.binary = binary
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 10.0) -> RedisProcess:
        assert self._process is None, "already running"
        command = [self.binary, "--port", str(self.port), "--save", "", "--appendonly", "no", "--bind", "127.0.0.1"]
        self._process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout_s
        while not _pong(self.port):
            if self._process.poll() is not None:
                self._process = None
                raise RuntimeError(f"redis-server exited at start on port {self.port}")
            if time.monotonic() > deadline:
                self.kill()
                raise TimeoutError(f"redis-server on port {self.port} did not answer PING in {timeout_s}s")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Graceful shutdown (SIGTERM)."""
        self._end(signal.SIGTERM)

    def kill(self) -> None:
        """Abrupt death (SIGKILL): the kernel closes every client connection."""
        self._end(signal.SIGKILL)

    def restart(self) -> RedisProcess:
        self.stop()
        return self.start()

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def _end(self, sig: signal.Signals) -> None:
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.send_signal(sig)
        self._process.wait(timeout=10)
        self._process = None

    def __enter__(self) -> RedisProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()


def command_calls(raw: redis.Redis, command: str) -> int:
    """Server-side count of `command` calls (e.g. "mget") since start or CONFIG RESETSTAT."""
    return int(raw.info("commandstats").get(f"cmdstat_{command}", {}).get("calls", 0))


async def wait_until(condition: Callable[[], object], timeout_s: float = 5.0, what: str = "condition") -> None:
    """Poll `condition` on the event loop until it holds; fail the test after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not met within {timeout_s}s")
        await asyncio.sleep(0.01)

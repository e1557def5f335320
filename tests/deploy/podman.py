"""The `cpu` image, built once per test run with podman, and containers run from it.

No registry is reachable here, so the Dockerfile's public base (python:3.11-slim) is replaced
by one made locally from Debian packages (mmdebstrap; Debian 12's Python is 3.11) and passed
as BASE_IMAGE, and torch comes from the machine's local CPU wheel when there is one. This
sandbox needs runc (crun cannot set up cgroups here) and no default rlimits.
"""

from __future__ import annotations

import functools
import os
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
BASE = "localhost/embed-server-base:python3.11"
IMAGE = "localhost/embed-server:cpu-test"
LOCAL_WHEELS = Path("/opt/wheels")


@functools.cache
def podman_env() -> dict[str, str]:
    conf = Path(tempfile.gettempdir()) / "embed-server-containers.conf"
    conf.write_text("[containers]\ndefault_ulimits = []\n")
    return {**os.environ, "CONTAINERS_CONF": str(conf)}


def podman(*args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    runtime = ("--runtime", "/usr/sbin/runc") if args[0] in ("build", "run") else ()
    return subprocess.run(
        ["podman", args[0], *runtime, *args[1:]],
        env=podman_env(),
        capture_output=True,
        text=True,
        check=check,
        timeout=timeout,
    )


def _ensure_base() -> None:
    if podman("image", "exists", BASE, check=False).returncode == 0:
        return
    with tempfile.TemporaryDirectory() as folder:
        tarball = Path(folder) / "base.tar"
        subprocess.run(
            ["mmdebstrap", "--variant=minbase", "--include=python3,python3-venv,ca-certificates", "bookworm",
             str(tarball)],
            check=True, capture_output=True, timeout=900,
        )  # fmt: skip
        podman("import", str(tarball), BASE)


@functools.cache
def cpu_image() -> str:
    """Build the Dockerfile's `cpu` target (layers are cached between runs) and return its tag."""
    _ensure_base()
    args = ["build", "--network", "host", "--format", "docker", "--target", "cpu", "-t", IMAGE]
    args += ["--build-arg", f"BASE_IMAGE={BASE}", "-v", "/etc/ssl/certs:/etc/ssl/certs:ro"]
    if LOCAL_WHEELS.is_dir():
        args += [
            "-v",
            f"{LOCAL_WHEELS}:{LOCAL_WHEELS}:ro",
            "--build-arg",
            f"TORCH_PIP_ARGS=--find-links {LOCAL_WHEELS}",
        ]
    result = podman(*args, str(ROOT), check=False, timeout=1800)
    assert result.returncode == 0, f"podman build failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return IMAGE


class Container:
    """A container of the image on the host network (a free port via EMBED_PORT), read-only
    root filesystem, an arbitrary non-root UID, as OpenShift runs it."""

    def __init__(self, image: str, name: str, port: int, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.url = f"http://127.0.0.1:{port}"
        podman("rm", "-f", name, check=False)
        environment = [f"--env={key}={value}" for key, value in {"EMBED_PORT": str(port), **(env or {})}.items()]
        podman("run", "-d", "--name", name, "--network", "host", "--read-only", "--tmpfs", "/tmp",
               "--user", "12345:0", *environment, image)  # fmt: skip

    def wait_healthy(self, timeout: float = 300) -> float:
        """Seconds until the image's own HEALTHCHECK passes (podman runs it on demand here)."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if podman("healthcheck", "run", self.name, check=False).returncode == 0:
                return time.monotonic() - started
            state = podman("container", "inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", self.name).stdout
            if not state.startswith("running"):
                raise AssertionError(f"container {self.name} is {state.strip()}:\n{self.logs()}")
            time.sleep(0.5)
        raise AssertionError(f"not healthy after {timeout}s:\n{self.logs()}")

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.url + path, timeout=10)

    def logs(self) -> str:
        result = podman("logs", self.name, check=False)
        return (result.stdout + result.stderr)[-6000:]

    def remove(self) -> None:
        podman("rm", "-f", "-t", "0", self.name, check=False)

"""`python -m loadtests` against the real server, started as its own process (as deployed: the
generator and the server do not share a GIL)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from loadtests.serving_bench import wait_ready
from tests.helpers import free_port

ROOT = Path(__file__).resolve().parents[2]
PLOTS = ("throughput_latency.png", "latency_cdf.png", "server_stages.png")


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    port = free_port()
    command = [str(Path(sys.executable).with_name("embed-server")), "serve", "--port", str(port),
               "--host", "127.0.0.1", "--log-level", "warning"]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    process = wait_ready(subprocess.Popen(command, cwd=ROOT, env=env), f"http://127.0.0.1:{port}/ready")
    yield f"http://127.0.0.1:{port}"
    process.terminate()
    process.wait(timeout=60)


def sizing(url: str, report: Path, *args: str) -> dict:
    command = [sys.executable, "-m", "loadtests", "--url", url, "--report", str(report), "--duration", "3",
               "--warmup", "1", *args]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "report:" in done.stdout
    for name in ("report.md", "results.json", *PLOTS):
        assert (report / name).stat().st_size > 0, name
    for name in PLOTS:
        assert (report / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return json.loads((report / "results.json").read_text())


def assert_plausible(step: dict) -> None:
    assert step["sent"] > 0 and step["ok"] > 0 and step["achieved_rps"] > 0
    assert step["latency"]["p99_ms"] >= step["latency"]["p50_ms"] > 0
    server = step["server"]
    assert server is not None and server["batches"] > 0 and server["mean_batch_size"] >= 1
    assert server["stages"]["inference_ms"] > 0


def test_sweep_and_closed_loop_reports(server_url: str, tmp_path: Path) -> None:
    sweep = sizing(
        server_url, tmp_path / "sweep", "--mode", "sweep", "--rates", "5,10", "--scenario", "mixed", "--passages", "4"
    )
    assert [step["rate"] for step in sweep["steps"]] == [5.0, 10.0]
    for step in sweep["steps"]:
        assert_plausible(step)
        assert step["offered_rps"] > 0
    assert sweep["run"]["model"] == "all-MiniLM-L6-v2" and sweep["run"]["metrics_available"]
    markdown = (tmp_path / "sweep" / "report.md").read_text()
    assert "## Recommendation" in markdown and "![throughput_latency.png](throughput_latency.png)" in markdown

    closed = sizing(server_url, tmp_path / "closed", "--mode", "closed", "--clients", "2", "--warmup", "0")
    (step,) = closed["steps"]
    assert step["clients"] == 2
    assert_plausible(step)
    assert step["achieved_rps"] == pytest.approx(step["ok"] / 3)

"""docker-compose.yml (and the GPU override) checked by the Compose binary itself, then the
wiring read from its resolved configuration."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from tests.deploy.tools import tool

ROOT = Path(__file__).resolve().parents[2]


def resolved(*files: str) -> dict[str, Any]:
    args = [tool("docker-compose"), "--project-directory", str(ROOT)]
    for name in files:
        args += ["-f", str(ROOT / name)]
    result = subprocess.run([*args, "config", "--format", "json"], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["services"]


def test_stack_wiring() -> None:
    services = resolved("docker-compose.yml")
    assert set(services) == {"embed-server", "redis", "prometheus", "grafana"}
    server = services["embed-server"]
    assert server["build"]["target"] == "cpu" and server["read_only"] and server["tmpfs"] == ["/tmp"]
    assert server["command"] == ["--redis-url", "redis://redis:6379/0"]
    assert server["depends_on"]["redis"]["condition"] == "service_healthy"
    assert {port["target"] for port in server["ports"]} == {8000}
    redis = " ".join(services["redis"]["command"])
    assert "--maxmemory-policy allkeys-lru" in redis and "--maxmemory " in redis
    assert "--save  --appendonly no" in redis  # no persistence: a cache, not a database
    assert services["redis"]["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    prometheus_files = {volume["source"] for volume in services["prometheus"]["volumes"]}
    assert {
        str(ROOT / "deploy/prometheus/prometheus.yml"),
        str(ROOT / "deploy/prometheus/rules.yml"),
    } <= prometheus_files
    grafana = services["grafana"]
    assert grafana["environment"]["GF_AUTH_ANONYMOUS_ENABLED"] == "true"
    assert grafana["environment"]["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    assert grafana["depends_on"]["prometheus"]["condition"] == "service_healthy"
    for volume in [*services["prometheus"]["volumes"], *grafana["volumes"]]:
        assert Path(volume["source"]).exists(), f"{volume['source']} is mounted but missing"


def test_gpu_override_runs_the_cuda_target_on_reserved_gpus() -> None:
    server = resolved("docker-compose.yml", "docker-compose.gpu.yml")["embed-server"]
    assert server["build"]["target"] == "cuda"
    assert server["environment"]["EMBED_DEVICE"] == "cuda"
    (device,) = server["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]


def test_compose_rejects_a_broken_file(tmp_path: Path) -> None:
    broken = tmp_path / "docker-compose.yml"
    broken.write_text("services:\n  app:\n    image: x\n    depends_on: [missing]\n")
    result = subprocess.run([tool("docker-compose"), "-f", str(broken), "config", "-q"], capture_output=True, text=True)
    assert result.returncode != 0 and "missing" in result.stderr

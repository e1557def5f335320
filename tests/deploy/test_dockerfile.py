"""The Dockerfile linted (both targets), and the `cuda` target's pinned packages resolved.

The `cuda` image cannot be built here (no CUDA base image is reachable, no GPU), so its
package set is checked the way pip would install it in that image: Linux x86_64, Python 3.12.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.deploy.tools import tool

ROOT = Path(__file__).resolve().parents[2]


def hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool("hadolint"), str(path)], capture_output=True, text=True, check=False)


def test_dockerfile_lints_clean() -> None:
    result = hadolint(ROOT / "Dockerfile")
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_catches_what_it_should(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nADD . /app\nRUN pip install requests\nCMD python app.py\n")
    findings = hadolint(bad).stdout
    for rule in ("DL3007", "DL3020", "DL3013", "DL3025"):  # :latest, ADD, unpinned pip, shell-form CMD
        assert rule in findings, findings


def test_dockerignore_is_an_allow_list() -> None:
    lines = [line for line in (ROOT / ".dockerignore").read_text().splitlines() if line and line[0] != "#"]
    assert lines[0] == "*"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    copied = set(re.findall(r"^COPY (?!--from)(\S+)", (ROOT / "Dockerfile").read_text(), re.M))
    for source in copied:
        assert source.rstrip("/") in allowed, f"COPY {source} but .dockerignore leaves it out"


def test_cuda_lock_pins_the_project_dependencies() -> None:
    lines = (ROOT / "requirements/cuda.txt").read_text().splitlines()
    locked = {
        canonicalize_name(name): version for name, version in (line.split("==") for line in lines if "==" in line)
    }
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for line in [*project["dependencies"], *project["optional-dependencies"]["vllm"]]:
        requirement = Requirement(line)
        name = canonicalize_name(requirement.name)
        assert name in locked, f"{name} missing from requirements/cuda.txt: run requirements/lock-cuda.sh"
        assert locked[name] in requirement.specifier, (
            f"{name}: pyproject says {requirement.specifier}, cuda.txt {locked[name]}"
        )


def test_cuda_requirements_resolve(tmp_path: Path) -> None:
    # Every pin exists for the image's platform and the set is consistent: pip resolves it
    # exactly as `pip install -r requirements/cuda.txt` in the cuda-build stage would.
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
         "--python-version", "3.12", "--only-binary=:all:", "--target", str(tmp_path / "target"),
         "-r", str(ROOT / "requirements/cuda.txt")],
        capture_output=True, text=True, check=False,
        # The index only: not this machine's local wheel folder (its torch is the CPU build).
        env={**os.environ, "PIP_CONFIG_FILE": "/dev/null", "PIP_FIND_LINKS": ""},
        timeout=900,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

"""The validators the deployment tests run (`make install-test` installs them all), and the
repository's scripts loaded as modules."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path
from types import ModuleType

import pytest

INSTALL_HINT = "run `make install-test` (requirements/deploy-tools.txt, deploy/tools, apt: podman promtool)"


def tool(name: str) -> str:
    """A command from the running interpreter's venv (even when its bin/ is not on PATH), else PATH.
    A missing tool fails the test: CI installs every one of them, so a skip would hide a gap."""
    found = Path(sys.executable).parent / name
    path = str(found) if found.exists() else shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is missing: {INSTALL_HINT}")
    return path


def load_script(path: Path) -> ModuleType:
    """A script of the repository (not in a package) as a module."""
    spec = importlib.util.spec_from_file_location(f"script_{path.stem}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module

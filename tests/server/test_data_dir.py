"""--data-dir: every library's cache and temporary files go to one directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from server.data_dir import LIBRARY_DIRS

ROOT = Path(__file__).resolve().parents[2]


def test_libraries_are_pointed_into_the_data_dir(tmp_path: Path) -> None:
    script = (
        "import json, os, sys, tempfile; from server.data_dir import use_data_dir; "
        "root = use_data_dir(sys.argv[1]); from models.sources import default_cache_dir; "
        "print(json.dumps({'env': dict(os.environ), 'tmp': tempfile.mkdtemp(), 'models': str(default_cache_dir())}))"
    )
    env = {name: value for name, value in os.environ.items() if name not in LIBRARY_DIRS}
    env["TIKTOKEN_CACHE_DIR"] = "/elsewhere"  # set by the operator: kept
    result = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "data")], env=env, cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    data = str(tmp_path / "data")
    for name in ("HF_HOME", "XDG_CACHE_HOME", "TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR", "TMPDIR"):
        assert seen["env"][name].startswith(data + "/"), name
    assert seen["env"]["TIKTOKEN_CACHE_DIR"] == "/elsewhere"
    assert seen["tmp"].startswith(data + "/") and seen["models"].startswith(data + "/")

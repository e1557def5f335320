"""The one directory the server writes to (`--data-dir`).

A container runs with a read-only root filesystem and an arbitrary user id, so every
library that caches or unpacks something is pointed at one writable directory before it is
imported. Variables already set win; replica processes inherit them.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

# Each library's own variable, relative to the data directory.
LIBRARY_DIRS = {
    "XDG_CACHE_HOME": "cache",  # unpacked split-zip models (models/sources.py) and generic caches
    "HF_HOME": "huggingface",
    "TIKTOKEN_CACHE_DIR": "tiktoken",
    "TORCHINDUCTOR_CACHE_DIR": "torchinductor",
    "TRITON_CACHE_DIR": "triton",
    "NUMBA_CACHE_DIR": "numba",
    "VLLM_CACHE_ROOT": "vllm",
    "TMPDIR": "tmp",
}


def use_data_dir(path: str) -> Path:
    """Create the directory and point every library's cache and temporary files into it."""
    root = Path(path).expanduser().resolve()
    for name, sub in LIBRARY_DIRS.items():
        os.environ.setdefault(name, str(root / sub))
    Path(os.environ["TMPDIR"]).mkdir(parents=True, exist_ok=True)  # the libraries create their own
    tempfile.tempdir = None  # re-read TMPDIR
    return root

"""Content digests of model files: the SHA-256 of every byte, remembered across restarts.

SHA-256 because it is the Hugging Face hub's own content address: in a hub snapshot an LFS
file is a symlink to `blobs/<sha256 of its content>`, so its digest is read from the name,
and a copy of the same file in a plain folder (a `--local-dir` download, a volume) hashes to
the same value, so servers that load one model from either place share cached vectors. Files
the hub keeps in git are named by their git blob SHA-1 instead; they are small and are read.

Other files are read once per version: their digests are kept in a JSON file in the cache
directory, keyed by the file's identity (device, inode, size, mtime, ctime; a file replaced
or rewritten, even with its mtime restored, changes at least the inode or the ctime). A cache
directory that cannot be created, read or written only costs the re-hashing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from models.sources import default_cache_dir

log = logging.getLogger(__name__)

CACHE_FILE = "file-digests.json"
CHUNK_BYTES = 4 << 20
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_VERSION = 1  # of the cache file's layout


def file_digests(paths: Sequence[Path], cache_dir: Path | None = None) -> list[bytes]:
    """The SHA-256 of each file's content, in order. `cache_dir` defaults to
    `$XDG_CACHE_HOME/embed-server` (inside `--data-dir` when the server has one)."""
    cache_dir = default_cache_dir() if cache_dir is None else cache_dir
    digests: list[bytes | None] = [_hub_blob_digest(path) for path in paths]
    stored = _load(cache_dir / CACHE_FILE)
    todo: dict[str, list[int]] = {}  # real path -> positions: a file named twice is read once
    identities: dict[str, list[int]] = {}
    for position, path in enumerate(paths):
        if digests[position] is not None:
            continue
        real = os.path.realpath(path)
        identity = _identity(os.stat(real))
        entry = stored.get(real)
        if entry is not None and entry.get("identity") == identity:
            digests[position] = bytes.fromhex(entry["sha256"])
        else:
            todo.setdefault(real, []).append(position)
            identities[real] = identity
    if todo:
        # hashlib releases the GIL on large updates: the files of a sharded checkpoint hash
        # on as many cores.
        with ThreadPoolExecutor(max_workers=min(len(todo), os.cpu_count() or 1)) as pool:
            hashed = list(pool.map(_hash_and_stat, [paths[positions[0]] for positions in todo.values()]))
        for (real, positions), (digest, after) in zip(todo.items(), hashed, strict=True):
            for position in positions:
                digests[position] = digest
            # A file written to while it was read is hashed again next time, not remembered.
            if after == identities[real]:
                stored[real] = {"identity": after, "sha256": digest.hex()}
        _save(cache_dir, stored)
    return digests  # type: ignore[return-value]


def hash_file(path: Path) -> bytes:
    """SHA-256 of the file's content, read in chunks (weights can be larger than memory)."""
    digest = hashlib.sha256()
    buffer = bytearray(CHUNK_BYTES)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as handle:
        while read := handle.readinto(buffer):
            digest.update(view[:read])
    return digest.digest()


def _hash_and_stat(path: Path) -> tuple[bytes, list[int]]:
    digest = hash_file(path)
    return digest, _identity(os.stat(path))


def _hub_blob_digest(path: Path) -> bytes | None:
    """The digest a hub snapshot file carries in its blob's name, or None."""
    if not path.is_symlink():
        return None
    blob = path.resolve()
    if blob.parent.name != "blobs" or not _SHA256_HEX.fullmatch(blob.name):
        return None
    # Only inside the hub's own layout: <repo>/snapshots/<revision>/... -> <repo>/blobs/<hash>.
    link = path.parent.resolve() / path.name
    if not link.is_relative_to(blob.parent.parent / "snapshots"):
        return None
    return bytes.fromhex(blob.name)


def _identity(stat: os.stat_result) -> list[int]:
    return [stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns]


def _load(cache_file: Path) -> dict[str, dict[str, Any]]:
    try:
        data = json.loads(cache_file.read_bytes())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning("file digest cache %s unreadable (%s); hashing model files anew", cache_file, exc)
        return {}
    if not isinstance(data, dict) or data.get("version") != _VERSION or not isinstance(data.get("files"), dict):
        return {}
    return {
        real: entry
        for real, entry in data["files"].items()
        if isinstance(entry, dict)
        and isinstance(entry.get("identity"), list)
        and _SHA256_HEX.fullmatch(str(entry.get("sha256")))
    }


def _save(cache_dir: Path, files: dict[str, dict[str, Any]]) -> None:
    """Atomically, dropping entries of files that are gone or changed; concurrent writers
    each leave a whole file (the loser's new digests are computed again next time)."""
    live = {}
    for real, entry in files.items():
        try:
            if _identity(os.stat(real)) == entry.get("identity"):
                live[real] = entry
        except OSError:
            pass
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=cache_dir, prefix=f".{CACHE_FILE}.")
        try:
            with os.fdopen(handle, "w") as out:
                json.dump({"version": _VERSION, "files": live}, out)
            os.replace(temporary, cache_dir / CACHE_FILE)
        except BaseException:
            os.unlink(temporary)
            raise
    except OSError as exc:
        log.warning("cannot write the file digest cache in %s (%s): every start hashes the model files", cache_dir, exc)

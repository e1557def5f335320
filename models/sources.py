"""Turn a card's `source` into a local folder holding the weights and tokenizer.

Forms:
  /abs/folder or relative/folder       a folder on disk
  pip://<distribution>/<path>          a folder or file inside an installed pip distribution
  hf://<org>/<name>                    a Hugging Face hub repository (needs network or a warm HF cache)
  {split_zip: [...], member: <folder>} a zip split over several files, joined and unpacked once
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

from models.card import SplitZipSource
from models.errors import SourceError


def default_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "embed-server"


def resolve_source(source: str | SplitZipSource, revision: str | None = None, cache_dir: Path | None = None) -> Path:
    if isinstance(source, SplitZipSource):
        return _unpack_split_zip(source, cache_dir or default_cache_dir())
    if source.startswith("pip://"):
        return _pip_location(source)
    if source.startswith("hf://"):
        return _hub_snapshot(source.removeprefix("hf://"), revision)
    path = Path(source).expanduser()
    if not path.exists():
        raise SourceError(f"model source {source!r} does not exist")
    return path.resolve()


def _pip_location(source: str) -> Path:
    distribution, _, inner = source.removeprefix("pip://").partition("/")
    try:
        dist = importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        raise SourceError(f"{source}: pip distribution {distribution!r} is not installed") from None
    path = Path(str(dist.locate_file(inner))).resolve()
    if not path.exists():
        raise SourceError(f"{source}: {inner!r} not found in distribution {distribution!r}")
    return path


def _hub_snapshot(repo_id: str, revision: str | None) -> Path:
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id, revision=revision))
    except Exception as exc:  # the hub client raises many unrelated types
        raise SourceError(
            f"hf://{repo_id}: cannot fetch from the Hugging Face hub ({type(exc).__name__}: {exc}); "
            "this needs network access or a local copy (give its folder as the source)"
        ) from None


def _unpack_split_zip(source: SplitZipSource, cache_dir: Path) -> Path:
    parts = [_pip_location(part) if part.startswith("pip://") else Path(part) for part in source.split_zip]
    for part in parts:
        if not part.is_file():
            raise SourceError(f"split zip part {part} is missing")
    digest = hashlib.sha256("\0".join(f"{p}:{p.stat().st_size}" for p in parts).encode()).hexdigest()[:16]
    target = cache_dir / f"{source.member.strip('/').replace('/', '_')}-{digest}"
    model_dir = target / source.member
    if model_dir.is_dir():
        return model_dir
    cache_dir.mkdir(parents=True, exist_ok=True)
    # Unpack into a private folder and rename, so concurrent starts never see half a model.
    staging = Path(tempfile.mkdtemp(dir=cache_dir, prefix=".unpack-"))
    try:
        joined = staging / "joined.zip"
        with joined.open("wb") as out:
            for part in parts:
                with part.open("rb") as chunk:
                    shutil.copyfileobj(chunk, out, length=16 << 20)
        with zipfile.ZipFile(joined) as archive:
            members = [m for m in archive.namelist() if m.startswith(source.member.rstrip("/") + "/")]
            if not members:
                raise SourceError(f"split zip has no folder {source.member!r}")
            archive.extractall(staging / "tree", members=members)
        joined.unlink()
        try:
            (staging / "tree").rename(target)
        except OSError:
            if not model_dir.is_dir():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return model_dir

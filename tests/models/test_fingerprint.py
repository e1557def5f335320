"""Model fingerprints: every byte of every file that shapes the vectors counts, digests are
remembered across restarts (and re-read when a file changes), hub snapshots are named by
their blobs, and a cache directory that cannot be used only costs time."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from safetensors.numpy import save_file

from models import file_digest
from models.card import card_from_mapping
from models.fingerprint import folder_identity, model_fingerprint

OLD_SAMPLES, OLD_SAMPLE_BYTES = 32, 64 << 10  # what the sampling fingerprint (FORMAT 1) read


@pytest.fixture(autouse=True)
def xdg_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The default cache directory of each test: its own, never the user's."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    return tmp_path / "xdg" / "embed-server"


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The files whose content is read to hash them, in order."""
    seen: list[Path] = []
    real = file_digest.hash_file

    def counting(path: Path) -> bytes:
        seen.append(path)
        return real(path)

    monkeypatch.setattr(file_digest, "hash_file", counting)
    return seen


def model_folder(folder: Path, weights: np.ndarray | None = None) -> Path:
    """A small model folder: config, tokenizer files and a > 3 MiB safetensors weight file."""
    folder.mkdir(parents=True)
    (folder / "config.json").write_text('{"hidden_size": 8}')
    (folder / "vocab.txt").write_text("[PAD]\n[CLS]\nhello\n")
    (folder / "README.md").write_text("not part of the computation")
    if weights is None:
        weights = np.arange(1 << 20, dtype=np.float32)
    save_file({"w": weights}, str(folder / "model.safetensors"))
    return folder


def unsampled_offset(size: int) -> int:
    """The middle of the largest gap between the old sampler's blocks."""
    starts = [max(0, size - OLD_SAMPLE_BYTES) * i // (OLD_SAMPLES - 1) for i in range(OLD_SAMPLES)]
    gaps = [(starts[i] + OLD_SAMPLE_BYTES, starts[i + 1]) for i in range(OLD_SAMPLES - 1)]
    low, high = max(gaps, key=lambda gap: gap[1] - gap[0])
    assert high - low > 1000, "the old sampler reads the whole file; make it larger"
    middle = (low + high) // 2
    assert not any(start <= middle < start + OLD_SAMPLE_BYTES for start in starts)
    return middle


def flip_byte(path: Path, offset: int) -> None:
    with path.open("r+b") as handle:
        handle.seek(offset)
        value = handle.read(1)[0]
        handle.seek(offset)
        handle.write(bytes([value ^ 0x01]))


def age(path: Path, seconds: int = 3600) -> None:
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns - seconds * 10**9))


def test_a_byte_the_old_sampler_never_read_changes_the_fingerprint(tmp_path: Path) -> None:
    base = model_folder(tmp_path / "base")
    tuned = tmp_path / "tuned"
    shutil.copytree(base, tuned)
    weights = tuned / "model.safetensors"
    assert weights.stat().st_size > 3 << 20
    flip_byte(weights, unsampled_offset(weights.stat().st_size))

    assert folder_identity(base) != folder_identity(tuned)
    card = card_from_mapping({"name": "m", "source": str(base), "pooling": "mean"}, "test")
    backbone = SimpleNamespace(attention="bidirectional", exit_layer=6)
    prints = [
        model_fingerprint(SimpleNamespace(card=card, backbone=backbone, dtype="float32", folder=folder))  # type: ignore[arg-type]
        for folder in (base, tuned)
    ]
    assert prints[0] != prints[1]


def test_only_files_of_the_computation_count(tmp_path: Path) -> None:
    folder = model_folder(tmp_path / "m")
    before = folder_identity(folder)
    (folder / "README.md").write_text("edited")
    (folder / ".gitattributes").write_text("*.safetensors filter=lfs")
    (folder / "onnx").mkdir()
    (folder / "onnx" / "model.onnx").write_bytes(b"an export for another runtime")
    (folder / "optimizer.pt").write_bytes(b"training state")
    assert folder_identity(folder) == before
    (folder / "vocab.txt").write_text("[PAD]\n[CLS]\nhello\nworld\n")
    assert folder_identity(folder) != before


def test_only_the_served_gguf_file_counts(tmp_path: Path) -> None:
    folder = tmp_path / "gguf"
    folder.mkdir()
    (folder / "model-q8.gguf").write_bytes(b"q8")
    (folder / "model-q4.gguf").write_bytes(b"q4")
    served = folder_identity(folder, gguf_file="model-q8.gguf")
    (folder / "model-q4.gguf").write_bytes(b"another q4")
    assert folder_identity(folder, gguf_file="model-q8.gguf") == served
    assert folder_identity(folder) != served


def test_digests_are_sha256_of_the_content(tmp_path: Path) -> None:
    path = tmp_path / "blob.bin"
    path.write_bytes(os.urandom(3 * file_digest.CHUNK_BYTES + 123))
    (digest,) = file_digest.file_digests([path], cache_dir=tmp_path / "cache")
    assert digest == hashlib.sha256(path.read_bytes()).digest()


def test_a_restart_reads_no_unchanged_file(tmp_path: Path, xdg_cache: Path, reads: list[Path]) -> None:
    folder = model_folder(tmp_path / "m")
    for path in folder.iterdir():
        age(path)
    first = folder_identity(folder)
    assert sorted(path.name for path in reads) == ["config.json", "model.safetensors", "vocab.txt"]
    assert (xdg_cache / file_digest.CACHE_FILE).is_file()

    reads.clear()
    assert folder_identity(folder) == first
    assert reads == []


def test_a_changed_mtime_or_size_is_hashed_again(tmp_path: Path, reads: list[Path]) -> None:
    folder = model_folder(tmp_path / "m")
    weights = folder / "model.safetensors"
    first = folder_identity(folder)

    age(weights)  # same bytes, other mtime: read again, same identity
    reads.clear()
    assert folder_identity(folder) == first
    assert reads == [weights]

    with weights.open("ab") as handle:  # other size
        handle.write(b"\0")
    reads.clear()
    assert folder_identity(folder) != first
    assert reads == [weights]


def test_a_replaced_file_with_the_same_size_and_mtime_is_hashed_again(tmp_path: Path, reads: list[Path]) -> None:
    folder = model_folder(tmp_path / "m")
    weights = folder / "model.safetensors"
    first = folder_identity(folder)
    mtime = weights.stat().st_mtime_ns
    replacement = tmp_path / "replacement"
    shutil.copyfile(weights, replacement)
    flip_byte(replacement, unsampled_offset(replacement.stat().st_size))
    os.utime(replacement, ns=(mtime, mtime))
    os.replace(replacement, weights)  # a new inode, as rsync or a download leaves it
    reads.clear()
    assert folder_identity(folder) != first
    assert reads == [weights]


def hub_snapshot(root: Path, files: dict[str, bytes], *, git_files: set[str]) -> Path:
    """A Hugging Face hub cache entry: snapshot files are symlinks into blobs/, named by the
    sha256 of LFS files and the git blob sha1 of the others."""
    repo = root / "models--org--name"
    snapshot = repo / "snapshots" / ("ab" * 20)
    (repo / "blobs").mkdir(parents=True)
    for name, content in files.items():
        if name in git_files:
            blob = hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()
        else:
            blob = hashlib.sha256(content).hexdigest()
        (repo / "blobs" / blob).write_bytes(content)
        link = snapshot / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(repo / "blobs" / blob, link.parent))
    return snapshot


def test_hub_snapshots_are_named_by_their_blobs(tmp_path: Path, reads: list[Path]) -> None:
    files = {
        "config.json": b'{"hidden_size": 8}',
        "model.safetensors": os.urandom(1 << 20),
        "2_Dense/model.safetensors": os.urandom(4096),
    }
    snapshot = hub_snapshot(tmp_path / "hub", files, git_files={"config.json"})
    identity = folder_identity(snapshot)
    assert reads == [snapshot / "config.json"]  # the git blob's sha1 is not a sha256: read it

    plain = tmp_path / "plain"  # the same files copied out of the hub (a --local-dir download)
    for name, content in files.items():
        (plain / name).parent.mkdir(parents=True, exist_ok=True)
        (plain / name).write_bytes(content)
    assert folder_identity(plain) == identity


def test_a_hub_blob_is_trusted_by_its_name(tmp_path: Path, reads: list[Path]) -> None:
    snapshot = hub_snapshot(tmp_path / "hub", {"model.safetensors": b"weights"}, git_files=set())
    blob = (snapshot / "model.safetensors").resolve()
    (digest,) = file_digest.file_digests([snapshot / "model.safetensors"])
    assert digest == bytes.fromhex(blob.name)
    assert reads == []


def test_a_hub_looking_symlink_elsewhere_is_read(tmp_path: Path, reads: list[Path]) -> None:
    blobs = tmp_path / "blobs"
    blobs.mkdir()
    target = blobs / ("0" * 64)
    target.write_bytes(b"not what the name says")
    link = tmp_path / "model" / "model.safetensors"
    link.parent.mkdir()
    link.symlink_to(target)
    (digest,) = file_digest.file_digests([link])
    assert digest == hashlib.sha256(b"not what the name says").digest()
    assert reads == [link]


@pytest.mark.parametrize("blocked", ["parent is a file", "cache file is a directory"])
def test_an_unusable_cache_dir_still_fingerprints(tmp_path: Path, blocked: str, reads: list[Path]) -> None:
    folder = model_folder(tmp_path / "m")
    if blocked == "parent is a file":
        (tmp_path / "file").write_text("")
        cache_dir = tmp_path / "file" / "embed-server"
    else:
        cache_dir = tmp_path / "cache"
        (cache_dir / file_digest.CACHE_FILE).mkdir(parents=True)
        (cache_dir / file_digest.CACHE_FILE / "x").write_text("")
    first = folder_identity(folder, cache_dir=cache_dir)
    assert folder_identity(folder, cache_dir=cache_dir) == first == folder_identity(folder)
    assert len(reads) == 3 * 2 + 3  # twice without a cache, once into the default one


def test_a_corrupt_cache_file_is_rebuilt(tmp_path: Path, reads: list[Path]) -> None:
    folder = model_folder(tmp_path / "m")
    for path in folder.iterdir():
        age(path)
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir()
    (cache_dir / file_digest.CACHE_FILE).write_text('{"truncated": ')
    first = folder_identity(folder, cache_dir=cache_dir)
    reads.clear()
    assert folder_identity(folder, cache_dir=cache_dir) == first
    assert reads == []


def test_malformed_cache_entries_are_ignored(tmp_path: Path, reads: list[Path]) -> None:
    path = tmp_path / "weights.bin"
    path.write_bytes(b"weights")
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir()
    real = os.path.realpath(path)
    for entry in ("not a dict", {"identity": 1, "sha256": "ab"}, {"identity": [], "sha256": "zz" * 32}):
        (cache_dir / file_digest.CACHE_FILE).write_text(json.dumps({"version": 1, "files": {real: entry}}))
        assert file_digest.file_digests([path], cache_dir) == [hashlib.sha256(b"weights").digest()]
    assert reads == [path] * 3


def test_a_file_written_while_it_is_read_is_not_remembered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "weights.bin"
    path.write_bytes(b"half")
    real = file_digest.hash_file
    calls = []

    def hash_while_writing(target: Path) -> bytes:
        calls.append(target)
        digest = real(target)
        if len(calls) == 1:
            with target.open("ab") as handle:
                handle.write(b" and the rest")
        return digest

    monkeypatch.setattr(file_digest, "hash_file", hash_while_writing)
    cache_dir = tmp_path / "cache"
    file_digest.file_digests([path], cache_dir)
    (digest,) = file_digest.file_digests([path], cache_dir)
    assert digest == hashlib.sha256(b"half and the rest").digest()
    assert len(calls) == 2

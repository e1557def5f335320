"""A model's fingerprint: identifies exactly what computes its vectors, for cache keys.

Two servers share cached vectors only when every input of the computation is the same: the
weights and tokenizer (every byte, by content, not by path, so replicas in different pods
agree), and every setting that changes the pooled vector (attention mode, pooling, exit
layer, dtype, padding side, EOS, prompt exclusion, heads). Settings applied after the cache
(Matryoshka size, normalisation) are left out, so one stored vector serves them all.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
from pathlib import Path

from models.file_digest import file_digests
from models.loader import LoadedModel

# Bumped whenever a code change alters the vectors a configuration produces, or the way
# fingerprints and cache keys are computed.
FORMAT = 2
# Weights, configs and tokenizer files; anything else (README, images, licences) is left out.
_COMPUTATION_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt", ".pth", ".json", ".txt", ".model", ".jinja",
                         ".yaml", ".tiktoken")  # fmt: skip
# Never read by this server, and often large: exports for other runtimes, training state.
_IGNORED_FOLDERS = ("onnx", "openvino")
_IGNORED_NAMES = ("optimizer.pt", "scheduler.pt", "rng_state*.pth", "training_args.bin")


def model_fingerprint(model: LoadedModel, *, engine_dtype: str | None = None) -> bytes:
    card = model.card
    settings = {
        "format": FORMAT,
        "attention": model.backbone.attention,
        "pooling": card.pooling,
        "exit_layer": model.backbone.exit_layer,
        "dtype": engine_dtype or str(model.dtype).removeprefix("torch."),
        "padding_side": card.padding_side,
        "append_eos": card.append_eos,
        "exclude_prompt_from_pooling": card.exclude_prompt_from_pooling,
        "latent_attention": card.latent_attention.model_dump() if card.latent_attention else None,
        "backbone": card.backbone.model_dump() if card.backbone else None,
        "gguf_file": card.gguf_file,
    }
    digest = hashlib.blake2b(digest_size=16, person=b"embed-model")
    digest.update(folder_identity(model.folder, gguf_file=card.gguf_file))  # fixed width, first
    digest.update(json.dumps(settings, sort_keys=True).encode())
    return digest.digest()


def folder_identity(folder: Path, *, gguf_file: str | None = None, cache_dir: Path | None = None) -> bytes:
    """Every file of the computation by name and the SHA-256 of its full content (digests
    cached on disk, hub blobs by name: models/file_digest.py). Of several GGUF files only
    `gguf_file`, the one loaded, counts."""
    names = computation_files(folder, gguf_file=gguf_file)
    digest = hashlib.blake2b(digest_size=16, person=b"embed-folder")
    for name, content in zip(names, file_digests([folder / name for name in names], cache_dir), strict=True):
        encoded = name.encode()
        digest.update(len(encoded).to_bytes(4, "little") + encoded + content)
    return digest.digest()


def computation_files(folder: Path, *, gguf_file: str | None = None) -> list[str]:
    """Relative names, sorted, of the files that can change what the model computes."""
    names = []
    for path in folder.rglob("*"):
        name = path.relative_to(folder).as_posix()
        if (
            path.suffix not in _COMPUTATION_SUFFIXES
            or not path.is_file()
            or name.startswith(".")
            or "/." in name
            or name.split("/", 1)[0] in _IGNORED_FOLDERS
            or any(fnmatch.fnmatch(path.name, pattern) for pattern in _IGNORED_NAMES)
            or (gguf_file is not None and path.suffix == ".gguf" and name != gguf_file)
        ):
            continue
        names.append(name)
    return sorted(names)

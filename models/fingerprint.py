"""A model's fingerprint: identifies exactly what computes its vectors, for cache keys.

Two servers share cached vectors only when every input of the computation is the same: the
weights and tokenizer (by content, not by path, so replicas in different pods agree), and
every setting that changes the pooled vector (attention mode, pooling, exit layer, dtype,
padding side, EOS, prompt exclusion, heads). Settings applied after the cache (Matryoshka
size, normalisation) are left out, so one stored vector serves them all.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from models.loader import LoadedModel

# Bumped whenever a code change alters the vectors a configuration produces.
FORMAT = 1
_SAMPLES_PER_FILE = 32
_SAMPLE_BYTES = 64 << 10
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt", ".pth")


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
    digest = hashlib.blake2b(digest_size=16)
    digest.update(json.dumps(settings, sort_keys=True).encode())
    digest.update(folder_identity(model.folder))
    return digest.digest()


def folder_identity(folder: Path) -> bytes:
    """Configs and tokenizer files by full content; weight files by size and 32 sampled
    blocks each (a fine-tune changes every block; hashing gigabytes at start-up would not pay)."""
    digest = hashlib.blake2b(digest_size=16)
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        name = str(path.relative_to(folder))
        if name.startswith(".") or "/." in name:
            continue
        digest.update(name.encode() + b"\0")
        if path.suffix in _WEIGHT_SUFFIXES:
            size = path.stat().st_size
            digest.update(str(size).encode())
            with path.open("rb") as handle:
                for index in range(_SAMPLES_PER_FILE):
                    handle.seek(max(0, size - _SAMPLE_BYTES) * index // (_SAMPLES_PER_FILE - 1))
                    digest.update(handle.read(_SAMPLE_BYTES))
        elif path.suffix in (".json", ".txt", ".model", ".jinja", ".yaml"):
            digest.update(path.read_bytes())
    return digest.digest()

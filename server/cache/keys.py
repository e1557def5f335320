"""Cache keys: the model's fingerprint plus the exact model input.

The input is the final token ids (prompt, special tokens and truncation applied), so text,
tiktoken ids and native ids that reach the model as the same ids share one entry, and
anything that changes the ids changes the key. Late-chunking keys add the chunk spans and
the window plan, since a chunk's vector depends on its whole document.

Every key is a 20-byte BLAKE2b keyed with the fingerprint. Its input is framed: each part has
a fixed-width encoding (little-endian int32 ids, int64 counts and offsets) and each sequence
its length first, so inputs whose parts would concatenate to the same bytes never share a key,
and each kind of key has its own personalisation string, so no two kinds can meet. Changing
this encoding changes every key: bump models.fingerprint.FORMAT with it.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence

import numpy as np

from models.engines.base import EngineInput
from models.late_chunking import Span

_KEY_BYTES = 20
# Lengths and scalars up front, fixed width; then the ids (int32) and spans (int64 pairs).
_INPUT_HEADER = struct.Struct("<qqq")  # ids, prompt tokens, spans (-1: a pooled vector, not span sums)
_DOCUMENT_HEADER = struct.Struct("<qqqq")  # ids, spans, window, overlap
_INDEX = struct.Struct("<q")


def input_key(fingerprint: bytes, payload: EngineInput) -> bytes:
    spans = payload.spans
    header = _INPUT_HEADER.pack(len(payload.ids), payload.prompt_tokens, -1 if spans is None else len(spans))
    digest = hashlib.blake2b(header, digest_size=_KEY_BYTES, key=fingerprint, person=b"embed-input")
    digest.update(np.asarray(payload.ids, dtype="<i4").tobytes())
    if spans:
        digest.update(_span_bytes(spans))
    return digest.digest()


def chunk_keys(fingerprint: bytes, ids: Sequence[int], spans: Sequence[Span], window: int, overlap: int) -> list[bytes]:
    header = _DOCUMENT_HEADER.pack(len(ids), len(spans), window, overlap)
    document = hashlib.blake2b(header, digest_size=_KEY_BYTES, key=fingerprint, person=b"embed-late-doc")
    document.update(np.asarray(ids, dtype="<i4").tobytes())
    document.update(_span_bytes(spans))
    prefix = document.digest()
    return [
        hashlib.blake2b(
            prefix + _INDEX.pack(index), digest_size=_KEY_BYTES, key=fingerprint, person=b"embed-late-chunk"
        ).digest()
        for index in range(len(spans))
    ]


def _span_bytes(spans: Sequence[Span]) -> bytes:
    return np.asarray(spans, dtype="<i8").reshape(len(spans), 2).tobytes()

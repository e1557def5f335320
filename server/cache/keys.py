"""Cache keys: the model's fingerprint plus the exact model input.

The input is the final token ids (prompt, special tokens and truncation applied), so text,
tiktoken ids and native ids that reach the model as the same ids share one entry, and
anything that changes the ids changes the key. Late-chunking keys add the chunk spans and
the window plan, since a chunk's vector depends on its whole document.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from models.engines.base import EngineInput
from models.late_chunking import Span


def input_key(fingerprint: bytes, payload: EngineInput) -> bytes:
    digest = hashlib.blake2b(digest_size=20, key=fingerprint, person=b"embed-input")
    digest.update(np.asarray(payload.ids, dtype=np.int32).tobytes())
    digest.update(payload.prompt_tokens.to_bytes(4, "little"))
    return digest.digest()


def chunk_keys(fingerprint: bytes, ids: Sequence[int], spans: Sequence[Span], window: int, overlap: int) -> list[bytes]:
    document = hashlib.blake2b(digest_size=20, key=fingerprint, person=b"embed-late")
    document.update(np.asarray(ids, dtype=np.int32).tobytes())
    document.update(np.asarray(spans, dtype=np.int64).tobytes())
    document.update(np.asarray([window, overlap], dtype=np.int64).tobytes())
    prefix = document.digest()
    return [
        hashlib.blake2b(prefix + index.to_bytes(4, "little"), digest_size=20).digest() for index in range(len(spans))
    ]

"""Stored form of one cached vector: a 16-byte header, then the little-endian values.

Redis is shared by every replica and deployment, so a stored value is never trusted: the
header (magic, format version, dtype code, dimension count, and a tag of the key it was
written for) is checked on every read, and anything that does not match is a miss. The tag
guards against a value read under the wrong key (a key-building bug, a desynchronised
connection), which the header fields alone cannot see.
"""

from __future__ import annotations

import hashlib
import struct
from typing import Literal

import numpy as np

Key = str | bytes
Storage = Literal["float32", "float16"]

MAGIC = b"EV"
VERSION = 1
# magic, version, dtype code, dimension count, key tag.
HEADER = struct.Struct("<2sBBI8s")
_DTYPES: dict[int, np.dtype] = {1: np.dtype("<f4"), 2: np.dtype("<f2")}
_CODES: dict[str, int] = {"float32": 1, "float16": 2}
_FLOAT32 = np.dtype(np.float32)  # "<f4" equals it on little-endian hosts: no copy there
_FLOAT16_MAX = float(np.finfo(np.float16).max)


def key_bytes(key: Key) -> bytes:
    return key.encode() if isinstance(key, str) else bytes(key)


def key_tag(key: Key) -> bytes:
    return hashlib.blake2b(key_bytes(key), digest_size=8).digest()


def encode(vector: np.ndarray, storage: Storage = "float32", *, key: Key = b"") -> bytes:
    """`vector`: 1-D floats. float16 falls back to float32 for values it cannot represent."""
    if vector.ndim != 1 or vector.size == 0:
        raise ValueError(f"a cached vector is 1-D and non-empty, got shape {vector.shape}")
    code = _CODES[storage]
    if code == 2 and not np.abs(vector).max() <= _FLOAT16_MAX:  # also true for NaN
        code = 1
    values = np.ascontiguousarray(vector, dtype=_DTYPES[code])
    return HEADER.pack(MAGIC, VERSION, code, values.size, key_tag(key)) + values.tobytes()


def decode(data: bytes, *, key: Key = b"") -> np.ndarray | None:
    """The float32 vector stored in `data` for `key`, read-only; None if `data` is not one."""
    if len(data) < HEADER.size:
        return None
    magic, version, code, dim, tag = HEADER.unpack_from(data)
    dtype = _DTYPES.get(code)
    if magic != MAGIC or version != VERSION or dtype is None or dim == 0:
        return None
    if len(data) != HEADER.size + dim * dtype.itemsize or tag != key_tag(key):
        return None
    values = np.frombuffer(data, dtype=dtype, offset=HEADER.size)
    if dtype == _FLOAT32:
        return values  # a view of immutable bytes: read-only for good
    widened = values.astype(np.float32)
    widened.flags.writeable = False
    return widened

"""Response bodies for embeddings, serialised straight to JSON bytes."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import orjson

EncodingFormat = Literal["float", "base64"]


@dataclass(frozen=True, slots=True)
class Reply:
    """A successful answer: the JSON body plus what the route reports about it."""

    model: str
    body: bytes
    cache_hits: int = 0
    inputs: int = 0
    tokens: int = 0


def encode_vector(vector: np.ndarray, encoding_format: EncodingFormat) -> Any:
    """float: a JSON array (float32 values, shortest repr); base64: little-endian float32 bytes."""
    if encoding_format == "base64":
        return base64.b64encode(vector.astype("<f4", copy=False).tobytes()).decode("ascii")
    return vector


def usage(tokens: int) -> dict[str, int]:
    return {"prompt_tokens": tokens, "total_tokens": tokens}


def embeddings_body(vectors: np.ndarray, *, model: str, encoding_format: EncodingFormat, tokens: int) -> bytes:
    data = [
        {"object": "embedding", "index": index, "embedding": encode_vector(vectors[index], encoding_format)}
        for index in range(vectors.shape[0])
    ]
    return dumps({"object": "list", "data": data, "model": model, "usage": usage(tokens)})


def dumps(payload: Any) -> bytes:
    return orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY)


def documents_body(
    documents: list[list[dict[str, Any]]],
    vectors: list[np.ndarray],
    *,
    model: str,
    encoding_format: EncodingFormat,
    tokens: int,
) -> bytes:
    """`documents[d]` holds each chunk's fields (index, text, start, end, tokens); `vectors[d]` its rows."""
    data = [
        {
            "object": "document",
            "index": index,
            "chunks": [
                {"object": "chunk", **chunk, "embedding": encode_vector(rows[position], encoding_format)}
                for position, chunk in enumerate(chunks)
            ],
        }
        for index, (chunks, rows) in enumerate(zip(documents, vectors, strict=True))
    ]
    return dumps({"object": "list", "data": data, "model": model, "usage": usage(tokens)})

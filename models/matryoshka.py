"""Final vector shaping: Matryoshka truncation, then L2 normalisation.

Engines return the full-dimension pooled vector; the request decides the rest, so one
stored vector serves every `dimensions` value.
"""

from __future__ import annotations

import numpy as np


def shape_vectors(vectors: np.ndarray, *, dimensions: int | None, normalize: bool) -> np.ndarray:
    """`vectors` [N, D] float32. Truncate to `dimensions`, then re-normalise if asked."""
    if dimensions is not None and dimensions < vectors.shape[1]:
        vectors = vectors[:, :dimensions]
    if normalize:
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        # A zero vector stays zero instead of becoming NaN.
        vectors = vectors / np.maximum(norms, np.float32(1e-12))
    return np.ascontiguousarray(vectors, dtype=np.float32)

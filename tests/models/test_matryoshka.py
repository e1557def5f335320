from __future__ import annotations

import numpy as np

from models.matryoshka import shape_vectors


def test_truncate_then_renormalise() -> None:
    vectors = np.array([[3.0, 4.0, 12.0], [0.0, 0.0, 0.0]], dtype=np.float32)
    out = shape_vectors(vectors, dimensions=2, normalize=True)
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.0, 0.0]])  # a zero vector stays zero, never NaN
    raw = shape_vectors(vectors, dimensions=2, normalize=False)
    np.testing.assert_allclose(raw, [[3.0, 4.0], [0.0, 0.0]])
    assert shape_vectors(vectors, dimensions=None, normalize=False).shape == (2, 3)
    assert out.dtype == np.float32 and out.flags.c_contiguous

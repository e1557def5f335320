"""codec: bit-exact float32 round trip, float16 error on real vectors, every corruption a miss."""

from __future__ import annotations

import numpy as np
import pytest

from server.cache.codec import HEADER, MAGIC, decode, encode, key_tag

KEY = "model-fp:sha256-of-input"


def vector(dim: int = 384, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(dim).astype(np.float32)


def test_float32_round_trip_is_bit_exact() -> None:
    v = vector()
    v[:5] = [0.0, -0.0, np.finfo(np.float32).tiny / 2, np.finfo(np.float32).max, np.nan]
    data = encode(v, "float32", key=KEY)
    assert len(data) == HEADER.size + 4 * v.size and data.startswith(MAGIC)
    out = decode(data, key=KEY)
    assert out is not None and out.dtype == np.float32 and out.shape == v.shape
    assert out.tobytes() == v.tobytes()


def test_decoded_vector_is_read_only_for_good() -> None:
    out = decode(encode(vector(), key=KEY), key=KEY)
    assert out is not None and not out.flags.writeable
    with pytest.raises(ValueError):
        out.flags.writeable = True


def test_str_and_bytes_keys_are_the_same_key() -> None:
    assert decode(encode(vector(), key=KEY), key=KEY.encode()) is not None


def test_float16_halves_the_size_and_rounds_to_nearest() -> None:
    v = vector()
    data = encode(v, "float16", key=KEY)
    assert len(data) == HEADER.size + 2 * v.size
    out = decode(data, key=KEY)
    assert out is not None and out.dtype == np.float32 and not out.flags.writeable
    np.testing.assert_array_equal(out, v.astype(np.float16).astype(np.float32))


def test_float16_falls_back_to_float32_when_a_value_does_not_fit() -> None:
    v = vector()
    v[3] = 1e6
    data = encode(v, "float16", key=KEY)
    assert len(data) == HEADER.size + 4 * v.size
    out = decode(data, key=KEY)
    assert out is not None and out.tobytes() == v.tobytes()


def test_float16_error_on_real_minilm_vectors(st_minilm, stsb_test) -> None:  # type: ignore[no-untyped-def]
    sentences = [a for a, _, _ in stsb_test[:32]]
    vectors = st_minilm.encode(sentences, convert_to_numpy=True, normalize_embeddings=True).astype(np.float32)
    decoded = np.stack([decode(encode(v, "float16", key=str(i)), key=str(i)) for i, v in enumerate(vectors)])
    # Unit vectors: every component is below 1, where float16 rounds to within 2^-12.
    assert float(np.abs(decoded - vectors).max()) <= 2.0**-12
    cosine = (decoded * vectors).sum(1) / np.linalg.norm(decoded, axis=1)
    assert float(cosine.min()) > 1 - 1e-6


def _corruptions(good: bytes) -> dict[str, bytes]:
    dim = (len(good) - HEADER.size) // 4
    return {
        "empty": b"",
        "shorter than the header": good[: HEADER.size - 1],
        "header only": good[: HEADER.size],
        "truncated values": good[:-1],
        "extra byte": good + b"\0",
        "wrong magic": b"XX" + good[2:],
        "unknown version": good[:2] + bytes([99]) + good[3:],
        "unknown dtype": good[:3] + bytes([7]) + good[4:],
        "dimension count off by one": HEADER.pack(MAGIC, 1, 1, dim + 1, key_tag(KEY)) + good[HEADER.size :],
        "zero dimensions": HEADER.pack(MAGIC, 1, 1, 0, key_tag(KEY)),
        "float16 code on float32 values": good[:3] + bytes([2]) + good[4:],
        "written for another key": encode(vector(), key="another key"),
        "plain text": b"hello world, not a vector at all",
    }


@pytest.mark.parametrize("case", list(_corruptions(encode(vector(), key=KEY)).keys()))
def test_corrupt_or_foreign_values_decode_to_none(case: str) -> None:
    good = encode(vector(), key=KEY)
    assert decode(good, key=KEY) is not None
    assert decode(_corruptions(good)[case], key=KEY) is None


@pytest.mark.parametrize("shape", [(0,), (2, 3), ()])
def test_encode_refuses_what_is_not_one_vector(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError):
        encode(np.zeros(shape, dtype=np.float32), key=KEY)

"""Cache keys: 20 bytes, stable, bound to the fingerprint, and framed, so inputs whose parts
concatenate to the same bytes but are split differently never share a key."""

from __future__ import annotations

import hashlib
import struct

import numpy as np

from models.engines.base import EngineInput
from server.cache.keys import chunk_keys, input_key

FINGERPRINT = bytes(range(16))
OTHER_FINGERPRINT = bytes(range(1, 17))


def words(*values: int) -> list[int]:
    """int64 values as the int32 token ids with the same little-endian bytes."""
    return np.asarray(values, dtype="<i8").view("<i4").tolist()


def test_keys_are_20_bytes() -> None:
    assert len(input_key(FINGERPRINT, EngineInput([1, 2, 3]))) == 20
    assert all(len(key) == 20 for key in chunk_keys(FINGERPRINT, [1, 2, 3, 4], [(0, 2), (2, 4)], 8, 2))


def test_the_same_input_gives_the_same_key() -> None:
    assert input_key(FINGERPRINT, EngineInput([101, 7592, 102], 1)) == input_key(
        FINGERPRINT, EngineInput([101, 7592, 102], 1)
    )
    assert chunk_keys(FINGERPRINT, [1, 2, 3, 4], [(0, 2), (2, 4)], 8, 2) == chunk_keys(
        FINGERPRINT, (1, 2, 3, 4), ((0, 2), (2, 4)), 8, 2
    )


def test_keys_follow_the_documented_encoding() -> None:
    """Keys are shared through Redis by servers of different versions: an encoding change must
    be deliberate (and bump models.fingerprint.FORMAT), never a side effect."""
    expected = hashlib.blake2b(
        struct.pack("<qqq", 3, 1, -1) + struct.pack("<3i", 101, 7592, 102),
        digest_size=20, key=FINGERPRINT, person=b"embed-input",
    ).digest()  # fmt: skip
    assert input_key(FINGERPRINT, EngineInput([101, 7592, 102], 1)) == expected
    assert expected.hex() == "8f27bb8620cf57f9ac87a4db9121242915cd9463"

    document = hashlib.blake2b(
        struct.pack("<qqqq", 4, 2, 8, 2) + struct.pack("<4i", 1, 2, 3, 4) + struct.pack("<4q", 0, 2, 2, 4),
        digest_size=20, key=FINGERPRINT, person=b"embed-late-doc",
    ).digest()  # fmt: skip
    second = hashlib.blake2b(
        document + struct.pack("<q", 1), digest_size=20, key=FINGERPRINT, person=b"embed-late-chunk"
    ).digest()
    assert chunk_keys(FINGERPRINT, [1, 2, 3, 4], [(0, 2), (2, 4)], 8, 2)[1] == second
    assert second.hex() == "44ca642ae4b3e530c8a9466969154ea8c475f68b"


def test_keys_change_with_the_fingerprint() -> None:
    payload = EngineInput([101, 7592, 102])
    assert input_key(FINGERPRINT, payload) != input_key(OTHER_FINGERPRINT, payload)
    ours = chunk_keys(FINGERPRINT, [1, 2, 3, 4], [(0, 2), (2, 4)], 8, 2)
    theirs = chunk_keys(OTHER_FINGERPRINT, [1, 2, 3, 4], [(0, 2), (2, 4)], 8, 2)
    assert not set(ours) & set(theirs)


def test_every_part_of_an_input_changes_its_key() -> None:
    base = EngineInput([101, 7592, 102], 1)
    variants = [
        base,
        EngineInput([101, 7592, 102], 0),
        EngineInput([101, 7592, 103], 1),
        EngineInput([101, 7592], 1),
        EngineInput([101, 7592, 102], 1, spans=()),
        EngineInput([101, 7592, 102], 1, spans=((0, 3),)),
        EngineInput([101, 7592, 102], 1, spans=((0, 2),)),
    ]
    assert len({input_key(FINGERPRINT, payload) for payload in variants}) == len(variants)


def test_inputs_that_concatenate_alike_get_different_keys() -> None:
    """Each pair has the same bytes when its parts are laid end to end."""
    pairs = [
        # a trailing id vs. the prompt-token count
        (EngineInput([5, 7]), EngineInput([5], prompt_tokens=7)),
        # ids running into the spans
        (EngineInput([1, 2, *words(0, 2)], spans=()), EngineInput([1, 2], spans=((0, 2),))),
        (EngineInput([]), EngineInput([], spans=())),
    ]
    for one, other in pairs:
        assert input_key(FINGERPRINT, one) != input_key(FINGERPRINT, other), (one, other)


def test_documents_that_concatenate_alike_get_different_chunk_keys() -> None:
    # ids, spans, window and overlap laid end to end: [1, 2, 3, 4] + [(0, 2), (2, 4)] has the
    # bytes of [1, 2, 3, 4, 0, 0, 2, 0] + [(2, 4)] (a span's int64s read as int32 ids).
    one = chunk_keys(FINGERPRINT, [1, 2, 3, 4], [(0, 2), (2, 4)], 8, 2)
    other = chunk_keys(FINGERPRINT, [1, 2, 3, 4, *words(0, 2)], [(2, 4)], 8, 2)
    assert one[0] != other[0]
    # the ids running into the spans: [1, 2, 3, 4] + [(0, 4)] has the bytes of [] + [(a, b), (0, 4)]
    # where a and b are the int64s with the bytes of ids 1, 2 and 3, 4.
    first, second = np.asarray([1, 2, 3, 4], dtype="<i4").view("<i8").tolist()
    three = chunk_keys(FINGERPRINT, [1, 2, 3, 4], [(0, 4)], 8, 2)
    four = chunk_keys(FINGERPRINT, [], [(first, second), (0, 4)], 8, 2)
    assert three[0] != four[0]


def test_chunk_keys_are_distinct_per_chunk_and_from_input_keys() -> None:
    keys = chunk_keys(FINGERPRINT, [1, 2, 3, 4], [(0, 1), (1, 2), (2, 3), (3, 4)], 8, 2)
    assert len(set(keys)) == 4
    assert input_key(FINGERPRINT, EngineInput([1, 2, 3, 4])) not in keys


def test_a_window_plan_changes_every_chunk_key() -> None:
    spans = [(0, 2), (2, 4)]
    base = chunk_keys(FINGERPRINT, [1, 2, 3, 4], spans, 8, 2)
    for window, overlap in [(8, 1), (9, 2), (2, 8)]:
        assert not set(base) & set(chunk_keys(FINGERPRINT, [1, 2, 3, 4], spans, window, overlap))

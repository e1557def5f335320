"""LocalCache: LRU order, eviction by bytes, immutable stored copies, thread safety."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from server.cache.local import LocalCache, entry_bytes


def vec(value: float, dim: int = 8) -> np.ndarray:
    return np.full(dim, value, dtype=np.float32)


def held(cache: LocalCache, keys: list[str]) -> list[str]:
    return [key for key, v in zip(keys, cache.get_many(keys)) if v is not None]


def test_round_trip_returns_float32_copies_nobody_can_change() -> None:
    cache = LocalCache(1 << 20)
    original = np.arange(8, dtype=np.float64)
    cache.put_many([("a", original)])
    original[:] = -1  # the caller reuses its buffer
    (out,) = cache.get_many(["a"])
    assert out is not None and out.dtype == np.float32
    np.testing.assert_array_equal(out, np.arange(8, dtype=np.float32))
    assert not out.flags.writeable
    with pytest.raises(ValueError):
        out[0] = 5
    with pytest.raises(ValueError):
        out.flags.writeable = True
    assert cache.get_many(["missing", "a"])[0] is None


def test_bytes_held_counts_each_entry_once() -> None:
    cache = LocalCache(1 << 20)
    cache.put_many([("a", vec(1)), ("b", vec(2, dim=16))])
    cache.put_many([("a", vec(3))])  # overwrite
    assert len(cache) == 2
    assert cache.bytes_held == entry_bytes("a", vec(3)) + entry_bytes("b", vec(2, dim=16))
    np.testing.assert_array_equal(cache.get_many(["a"])[0], vec(3))  # type: ignore[arg-type]
    cache.discard(["a", "never-there"])
    assert len(cache) == 1 and cache.bytes_held == entry_bytes("b", vec(2, dim=16))
    cache.clear()
    assert len(cache) == 0 and cache.bytes_held == 0


def test_evicts_least_recently_used_by_bytes() -> None:
    one = entry_bytes("k0", vec(0))
    cache = LocalCache(3 * one)
    cache.put_many([("k0", vec(0)), ("k1", vec(1)), ("k2", vec(2))])
    cache.get_many(["k0"])  # k0 becomes most recent, k1 is now the oldest
    cache.put_many([("k3", vec(3))])
    assert held(cache, ["k0", "k1", "k2", "k3"]) == ["k0", "k2", "k3"]
    assert cache.bytes_held == 3 * one


def test_a_large_vector_evicts_as_many_small_ones_as_its_bytes_need() -> None:
    small = entry_bytes("s0", vec(0))
    cache = LocalCache(4 * small)
    cache.put_many([(f"s{i}", vec(i)) for i in range(4)])
    big = vec(9, dim=8 + 2 * 8)  # 64 bytes more than a small entry: two small ones must go
    cache.put_many([("s9", big)])
    assert held(cache, ["s0", "s1", "s2", "s3", "s9"]) == ["s2", "s3", "s9"]
    assert cache.bytes_held <= cache.max_bytes


def test_an_entry_larger_than_the_cache_is_not_stored_and_evicts_nothing() -> None:
    cache = LocalCache(2 * entry_bytes("a", vec(0)))
    cache.put_many([("a", vec(0))])
    cache.put_many([("huge", vec(1, dim=10_000))])
    assert held(cache, ["a", "huge"]) == ["a"]


def test_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        LocalCache(0)
    with pytest.raises(ValueError):
        LocalCache(1 << 20).put_many([("a", np.zeros((2, 2), dtype=np.float32))])


def test_concurrent_threads_keep_accounting_exact() -> None:
    cache = LocalCache(50 * entry_bytes("k00", vec(0)))
    errors: list[BaseException] = []

    def work(seed: int) -> None:
        rng = np.random.default_rng(seed)
        try:
            for _ in range(2000):
                keys = [f"k{int(i):02d}" for i in rng.integers(0, 100, size=4)]
                if rng.random() < 0.5:
                    cache.put_many([(key, vec(float(key[1:]))) for key in keys])
                for key, v in zip(keys, cache.get_many(keys)):
                    assert v is None or v[0] == float(key[1:])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    keys = [f"k{i:02d}" for i in range(100)]
    stored = [(key, v) for key, v in zip(keys, cache.get_many(keys)) if v is not None]
    assert len(stored) == len(cache)
    assert cache.bytes_held == sum(entry_bytes(key, v) for key, v in stored) <= cache.max_bytes

"""The in-process tier: an LRU of vectors bounded in bytes, answering without a network hop.

Bounded in bytes rather than entries because vector sizes differ by model (384 to 4096
dimensions). Stored vectors are float32 views of immutable `bytes`, so no caller can change
a cached value in place, not even by setting `writeable` back. A lock makes it safe to use
from worker threads as well as from the event loop; every operation under it is O(1) per key.
"""

from __future__ import annotations

import sys
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence

import numpy as np

from server.cache.codec import Key

# CPython bytes per entry besides the key and the values: ndarray object, bytes header,
# OrderedDict node (measured with tracemalloc: about 211).
ENTRY_OVERHEAD = 224


def entry_bytes(key: Key, vector: np.ndarray) -> int:
    """What one entry is charged against `max_bytes`."""
    return sys.getsizeof(key) + vector.size * 4 + ENTRY_OVERHEAD


def _frozen(vector: np.ndarray) -> np.ndarray:
    if vector.ndim != 1 or vector.size == 0:
        raise ValueError(f"a cached vector is 1-D and non-empty, got shape {vector.shape}")
    return np.frombuffer(np.ascontiguousarray(vector, dtype=np.float32).tobytes(), dtype=np.float32)


class LocalCache:
    def __init__(self, max_bytes: int) -> None:
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be positive, got {max_bytes}")
        self.max_bytes = max_bytes
        self._entries: OrderedDict[Key, np.ndarray] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get_many(self, keys: Sequence[Key]) -> list[np.ndarray | None]:
        """One read-only float32 vector or None per key; hits become most recently used."""
        found: list[np.ndarray | None] = []
        with self._lock:
            for key in keys:
                vector = self._entries.get(key)
                if vector is not None:
                    self._entries.move_to_end(key)
                found.append(vector)
        return found

    def put_many(self, items: Iterable[tuple[Key, np.ndarray]]) -> None:
        """Store copies (replacing any value under the same key), then evict down to `max_bytes`."""
        frozen = [(key, _frozen(vector)) for key, vector in items]  # copies made outside the lock
        with self._lock:
            for key, vector in frozen:
                self._remove(key)
                size = entry_bytes(key, vector)
                if size > self.max_bytes:
                    continue  # would evict everything and still not fit
                self._entries[key] = vector
                self._bytes += size
            while self._bytes > self.max_bytes:
                key, vector = self._entries.popitem(last=False)
                self._bytes -= entry_bytes(key, vector)

    def discard(self, keys: Iterable[Key]) -> None:
        with self._lock:
            for key in keys:
                self._remove(key)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    @property
    def bytes_held(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    def _remove(self, key: Key) -> None:
        vector = self._entries.pop(key, None)
        if vector is not None:
            self._bytes -= entry_bytes(key, vector)

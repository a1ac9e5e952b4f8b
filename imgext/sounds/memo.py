"""An in-process cache bounded by bytes: built-in sounds and fitted tracks, shared by every session.

Values are immutable (``bytes``, read-only arrays), so one copy serves every
caller; the least recently used entries go first when the bound is reached.
"""

from __future__ import annotations

import hashlib
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

import numpy as np

__all__ = ["MemoryCache", "clear_memory_caches", "content_key", "frozen"]


def content_key(data: bytes) -> str:
    """A short digest of ``data`` (BLAKE2b, 128 bit): the cache key of a sound by its content."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def frozen(array: np.ndarray) -> np.ndarray:
    """``array`` made read-only, so a cached copy can be shared without anyone changing it in place."""
    array.setflags(write=False)
    return array


def _size(value: Any) -> int:
    if isinstance(value, (bytes, bytearray)):
        return len(value)
    if isinstance(value, np.ndarray):
        return int(value.nbytes)
    if isinstance(value, (tuple, list)):
        return sum(_size(v) for v in value) + 64
    return 64


_ALL: weakref.WeakSet = weakref.WeakSet()


def clear_memory_caches() -> int:
    """Empty every :class:`MemoryCache` of the process (a server nobody is using); returns the bytes let go."""
    freed = 0
    for cache in list(_ALL):
        freed += cache.nbytes
        cache.clear()
    return freed


class MemoryCache:
    """Least-recently-used cache holding at most ``max_bytes`` of values, safe across threads.

    Parameters
    ----------
    max_bytes : int
        Bound on the summed size of the values (``bytes`` length, array ``nbytes``).
        A single value larger than a quarter of the bound is computed but not kept
        (a long scene's sounds would push out everything else for one use).
    """

    def __init__(self, max_bytes: int) -> None:
        _ALL.add(self)
        self.max_bytes = int(max_bytes)
        self._items: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable, make: Callable[[], Any]) -> Any:
        """The value for ``key``, made by ``make()`` (outside the lock) when it is not cached."""
        with self._lock:
            item = self._items.get(key)
            if item is not None:
                self._items.move_to_end(key)
                self.hits += 1
                return item[0]
            self.misses += 1
        value = make()
        size = _size(value)
        if size <= self.max_bytes // 4:
            with self._lock:
                if key not in self._items:
                    self._items[key] = (value, size)
                    self._bytes += size
                while self._bytes > self.max_bytes and self._items:
                    _, (_, old) = self._items.popitem(last=False)
                    self._bytes -= old
        return value

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0

    @property
    def nbytes(self) -> int:
        """Bytes held now."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._items)

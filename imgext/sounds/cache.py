"""Disk cache for downloaded previews and search results (diskcache, bytes and text only).

diskcache pickles any value that is not ``bytes``/``str``/``int``/``float`` and
unpickles what it finds (CVE-2025-69872: whoever can write the folder can run
code).  :class:`SafeDisk` refuses both directions, keys are plain strings, and
the folder is created ``0700``.  A folder that is read-only, full or corrupt
never stops the work: :class:`DiskCache` reports it in :attr:`DiskCache.warnings`
and carries on without caching.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
from pathlib import Path

import diskcache

from imgext.errors import CacheError

__all__ = ["SafeDisk", "DiskCache", "cache_key"]

DEFAULT_SEARCH_TTL_S = 24 * 3600.0
"""Search results are reused for a day; previews never expire (only size evicts them)."""


class SafeDisk(diskcache.Disk):
    """A :class:`diskcache.Disk` that never pickles or unpickles."""

    def put(self, key):
        if type(key) is not str:
            raise CacheError(f"cache keys must be str, got {type(key).__name__}")
        return super().put(key)

    def get(self, key, raw):
        if not raw:
            raise CacheError("refusing a pickled cache key")
        return super().get(key, raw)

    def store(self, value, read, key=diskcache.core.UNKNOWN):
        if read or type(value) not in (bytes, str):
            raise CacheError(f"only bytes and str are cached, got {type(value).__name__}")
        return super().store(value, read, key=key)

    def fetch(self, mode, filename, value, read):
        if mode == diskcache.core.MODE_PICKLE:
            raise CacheError("refusing a pickled cache entry (possible tampering)")
        return super().fetch(mode, filename, value, read)


def cache_key(*parts: object) -> str:
    """A stable string key from JSON-able parts (hashed so any text is safe)."""
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode("ascii")).hexdigest()


_DB_ERRORS = (sqlite3.Error, OSError, CacheError, diskcache.Timeout)


class DiskCache:
    """A size-bounded cache of bytes and text in a folder.

    Parameters
    ----------
    directory : path or None
        ``None`` gives a cache that stores nothing (and says so).
    size_limit_bytes : int
        Least-recently-used entries are evicted above this size.

    Attributes
    ----------
    warnings : list of str
        Why caching is degraded or off; shown to the user.
    """

    def __init__(self, directory: str | os.PathLike | None, *, size_limit_bytes: int = 1024**3) -> None:
        self.directory = Path(directory) if directory is not None else None
        self.size_limit_bytes = int(size_limit_bytes)
        self.warnings: list[str] = []
        self._lock = threading.Lock()
        self._cache: diskcache.Cache | None = None
        if self.directory is None:
            self.warnings.append("no cache folder configured: nothing is cached")
            return
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._cache = diskcache.Cache(
                str(self.directory),
                disk=SafeDisk,
                size_limit=self.size_limit_bytes,
                eviction_policy="least-recently-used",
                cull_limit=2,  # evict a couple per write: the default 10 can empty a small cache at once
                timeout=5,
            )
        except _DB_ERRORS as exc:
            self._disable(f"cannot open the cache folder {self.directory}: {exc}")

    @property
    def enabled(self) -> bool:
        return self._cache is not None

    def _disable(self, why: str) -> None:
        with self._lock:
            if why not in self.warnings:
                self.warnings.append(f"{why}; continuing without the cache")
            cache, self._cache = self._cache, None
        if cache is not None:
            try:
                cache.close()
            except _DB_ERRORS:
                pass

    def _get(self, key: str, kind: type):
        cache = self._cache
        if cache is None:
            return None
        try:
            value = cache.get(key, default=None)
        except _DB_ERRORS as exc:
            self._disable(f"the cache folder {self.directory} cannot be read ({exc})")
            return None
        if value is not None and type(value) is not kind:
            self.delete(key)
            return None
        return value

    def _set(self, key: str, value, expire: float | None) -> bool:
        cache = self._cache
        if cache is None:
            return False
        try:
            return bool(cache.set(key, value, expire=expire))
        except _DB_ERRORS as exc:
            self._disable(f"the cache folder {self.directory} cannot be written ({exc})")
            return False

    def get_bytes(self, key: str) -> bytes | None:
        """Cached bytes for ``key``, or ``None``."""
        return self._get(key, bytes)

    def set_bytes(self, key: str, data: bytes, *, expire_s: float | None = None) -> bool:
        """Store bytes; returns False when the cache is off or failed."""
        return self._set(key, bytes(data), expire_s)

    def get_text(self, key: str) -> str | None:
        return self._get(key, str)

    def set_text(self, key: str, text: str, *, expire_s: float | None = DEFAULT_SEARCH_TTL_S) -> bool:
        return self._set(key, str(text), expire_s)

    def delete(self, key: str) -> None:
        cache = self._cache
        if cache is None:
            return
        try:
            cache.delete(key)
        except _DB_ERRORS as exc:
            self._disable(f"the cache folder {self.directory} cannot be written ({exc})")

    def clear(self) -> int:
        """Remove every entry; returns how many were removed."""
        cache = self._cache
        if cache is None:
            return 0
        try:
            return int(cache.clear())
        except _DB_ERRORS as exc:
            self._disable(f"the cache folder {self.directory} cannot be cleared ({exc})")
            return 0

    def stats(self) -> dict:
        """Entries and bytes used (for the UI)."""
        cache = self._cache
        if cache is None:
            return {"enabled": False, "entries": 0, "bytes": 0, "limit_bytes": self.size_limit_bytes}
        try:
            return {"enabled": True, "entries": len(cache), "bytes": int(cache.volume()), "limit_bytes": self.size_limit_bytes}
        except _DB_ERRORS as exc:
            self._disable(f"the cache folder {self.directory} cannot be read ({exc})")
            return {"enabled": False, "entries": 0, "bytes": 0, "limit_bytes": self.size_limit_bytes}

    def close(self) -> None:
        cache, self._cache = self._cache, None
        if cache is not None:
            cache.close()

"""Signals kept in temporary files instead of in memory: what a long scene holds between its stages.

An 8 x 600 s scene is 850 MB of float32 per copy of its tracks; its dry tracks, its processed
tracks, its reverb bus and the source files all live as long as the render, but each stage reads
only a row (or a stretch) at a time.  A *spilled* array is an ordinary NumPy array (a
:class:`numpy.memmap` of an unlinked temporary file, gone when the array is), so every function
takes it as it is; :func:`release` drops its pages from this process's memory once a stage has
read them (they stay in the file and the page cache, and are read back when touched again).
Used only beyond :data:`imgext.options.LONG_SCENE_S`; short scenes never meet one.
"""

from __future__ import annotations

import mmap
import os
import tempfile

import numpy as np

__all__ = ["SpilledBytes", "is_spilled", "release", "spill", "spilled_array"]


def spilled_array(shape, dtype=np.float32) -> np.memmap:
    """A zero-filled array of ``shape`` backed by an unlinked temporary file (``TMPDIR``), read-write."""
    shape = tuple(int(s) for s in np.atleast_1d(shape))
    size = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
    with tempfile.TemporaryFile(prefix="imgext-spill-") as f:  # the mapping keeps the file; closed here
        if size == 0:
            return np.zeros(shape, dtype)  # an empty file cannot be mapped
        f.truncate(size)
        return np.memmap(f, dtype=dtype, mode="r+", shape=shape)


def spill(array: np.ndarray) -> np.memmap:
    """A spilled copy of ``array`` (the same values, dtype and shape), its pages released."""
    a = np.asarray(array)
    out = spilled_array(a.shape, a.dtype)
    if a.size:
        if a.ndim >= 2:
            for k in range(a.shape[0]):  # a row at a time: the copy never holds the whole in memory
                out[k] = a[k]
                release(out)
        else:
            out[...] = a
    release(out)
    return out


def _mapping(array) -> mmap.mmap | None:
    base = array
    while base is not None:
        m = getattr(base, "_mmap", None)
        if isinstance(m, mmap.mmap):
            return m
        base = getattr(base, "base", None)
    return None


def is_spilled(array) -> bool:
    """Whether ``array`` is (a view of) a spilled array."""
    return _mapping(array) is not None


def release(array) -> None:
    """Drop the pages of a spilled array (or of a view of one) from this process's memory; else nothing.

    The values stay in the file: the array reads the same afterwards.
    """
    m = _mapping(array)
    if m is not None and not m.closed:
        m.madvise(mmap.MADV_DONTNEED)


class SpilledBytes:
    """Bytes kept in an unlinked temporary file: ``bytes(obj)`` or ``obj()`` reads them back.

    A long scene's source files (423 MB of 16-bit WAV for 8 x 600 s built-in sounds) are needed
    again only when the export writes ``sources/``; calling the object gives the bytes, so it can
    stand as an :class:`~imgext.output.export.OutputFile`'s ``data``.
    """

    def __init__(self, data: bytes) -> None:
        self._file = tempfile.TemporaryFile(prefix="imgext-spill-")
        self._file.write(memoryview(data))
        self._file.flush()
        self._size = len(data)

    def __len__(self) -> int:
        return self._size

    def __bytes__(self) -> bytes:
        return os.pread(self._file.fileno(), self._size, 0) if self._size else b""

    def __call__(self) -> bytes:
        return bytes(self)

    def __eq__(self, other) -> bool:
        if isinstance(other, SpilledBytes):
            return other is self or bytes(other) == bytes(self)
        if isinstance(other, (bytes, bytearray, memoryview)):
            return bytes(self) == bytes(other)
        return NotImplemented

    __hash__ = None

    def __repr__(self) -> str:
        return f"SpilledBytes({self._size} bytes)"

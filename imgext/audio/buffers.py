"""Large arrays written again and again (a render's tracks), their memory reused once nothing holds them.

A new render of 29 tracks x 30 s writes ~150 MB of processed tracks.  Taken fresh each time,
that memory is mapped, faulted in by the kernel and unmapped again on every slider move; with
transparent huge pages the kernel sometimes compacts memory first, in the faulting thread
(measured in the app server: 0.02-0.9 s of system time per duck render at 29 tracks, against
~0.45 s of the render's own work).  A :class:`BufferPool` hands out arrays over memory it keeps
and takes that memory back only when the array handed out, and every view of it, is gone.
"""

from __future__ import annotations

import mmap
import threading
import weakref

import numpy as np

from imgext.errors import ParameterError

__all__ = ["BufferPool"]


class BufferPool:
    """Arrays of a few recurring shapes over memory kept for reuse (bounded; safe between threads).

    :meth:`empty` returns a new array object each call, like :func:`numpy.empty`: its values
    are whatever the memory held (write every element).  The memory is handed out again only
    once that array is unreachable: the pool holds it weakly, and every view, slice or
    ``memoryview`` of it holds it (NumPy gives a view of an array that does not own its data
    that array as its base), so nothing that can still read the samples sees them change.

    Parameters
    ----------
    max_blocks : int
        Most blocks of memory kept, in use or free.  A request that finds none free takes new
        memory; past ``max_blocks`` the pool forgets its oldest free block (or, all being in
        use, its oldest: that memory then goes when its array does).
    min_bytes : int
        Smaller requests are plain :func:`numpy.empty` arrays (the heap serves them well).

    Notes
    -----
    The free blocks are memory held for the next request: up to ``max_blocks`` times the
    largest size asked for.  The :class:`~imgext.mix.mixer.Mixer` keeps four: the processed
    tracks and the duck's differences of the render being made and of the one still shown.
    """

    def __init__(self, *, max_blocks: int = 3, min_bytes: int = 32 << 20) -> None:
        if int(max_blocks) < 1:
            raise ParameterError(f"max_blocks={max_blocks}: need at least 1")
        self.max_blocks = int(max_blocks)
        self.min_bytes = int(min_bytes)
        self._blocks: list[tuple] = []  # (memory, weak reference to the array over it), oldest first
        self._lock = threading.Lock()
        self.reused = 0
        """How many requests were served from kept memory."""

    @property
    def nbytes(self) -> int:
        """Bytes of memory kept (in use or free)."""
        with self._lock:
            return sum(len(b[0]) for b in self._blocks)

    def empty(self, shape, dtype=np.float32) -> np.ndarray:
        """An uninitialised C-contiguous array of ``shape`` and ``dtype``, on reused memory when some is free.

        Parameters
        ----------
        shape : tuple of int
        dtype : numpy dtype

        Returns
        -------
        np.ndarray [shape=shape]
        """
        dtype = np.dtype(dtype)
        shape = tuple(int(s) for s in shape)
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if nbytes < self.min_bytes:
            return np.empty(shape, dtype)
        with self._lock:
            block = next((b for b in self._blocks if len(b[0]) == nbytes and b[1]() is None), None)
            if block is not None:
                self._blocks.remove(block)
                self.reused += 1
                memory = block[0]
            else:
                memory = mmap.mmap(-1, nbytes)
                if hasattr(mmap, "MADV_HUGEPAGE"):  # huge pages where the kernel has them, as NumPy asks for its own
                    memory.madvise(mmap.MADV_HUGEPAGE)
                while len(self._blocks) >= self.max_blocks:
                    free = [b for b in self._blocks if b[1]() is None]
                    self._blocks.remove(free[0] if free else self._blocks[0])
            array = np.ndarray(shape, dtype=dtype, buffer=memory)
            # (its base is the memory, not an array, so every view taken of it, and of those views, has
            # this array as its base: the weak reference dies with the last of them)
            self._blocks.append((memory, weakref.ref(array)))
        return array

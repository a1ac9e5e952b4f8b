"""The BufferPool: a render's large arrays on memory reused only once nothing can read the old samples."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from imgext.audio.buffers import BufferPool
from imgext.errors import ParameterError


def test_memory_is_handed_out_again_only_once_the_array_and_every_view_of_it_are_gone():
    pool = BufferPool(min_bytes=0, max_blocks=16)
    a = pool.empty((3, 1000))
    a[:] = 1.0
    views = [a[1], a[1][10:], a.T, a.reshape(-1), memoryview(a), np.asarray(a, dtype=np.float32)]
    del a
    others = []  # kept, so only the first array's block could be handed out again
    while views:
        b = pool.empty((3, 1000))  # a view still alive: new memory, the old samples untouched
        b[:] = 2.0
        others.append(b)
        assert pool.reused == 0
        assert np.all(np.asarray(views[-1]) == 1.0)
        views.pop()
    del b
    c = pool.empty((3, 1000))
    assert pool.reused == 1 and c.shape == (3, 1000) and c.dtype == np.float32 and c.flags.c_contiguous
    assert not any(np.may_share_memory(c, b) for b in others) and np.all(others[0] == 2.0)
    d = pool.empty((3, 1000))  # every block in use: another
    assert pool.reused == 1 and not np.may_share_memory(c, d)


def test_small_requests_are_plain_arrays_and_the_pool_keeps_a_bounded_number_of_blocks():
    pool = BufferPool(max_blocks=2, min_bytes=1 << 20)
    small = pool.empty((10,), np.float64)
    assert small.shape == (10,) and small.dtype == np.float64 and pool.nbytes == 0
    held = [pool.empty((1 << 20,)) for _ in range(4)]  # 4 MB each, all in use
    assert pool.nbytes == 2 * (4 << 20), "past max_blocks the oldest is forgotten (it goes with its array)"
    held[0][:] = 3.0
    assert np.all(held[0] == 3.0)
    del held
    again = pool.empty((1 << 20,))
    assert pool.reused == 1 and again.size == 1 << 20
    other = pool.empty((2, 1 << 20))  # another size: new memory, a free block forgotten for it
    assert pool.nbytes <= 2 * (8 << 20) and other.shape == (2, 1 << 20)
    with pytest.raises(ParameterError):
        BufferPool(max_blocks=0)


def test_threads_never_get_the_same_memory_at_once():
    pool = BufferPool(min_bytes=0, max_blocks=4)
    errors = []

    def work(value: float) -> None:
        for _ in range(200):
            a = pool.empty((64, 256))
            a[:] = value
            if not np.all(a == value):
                errors.append(value)
            del a

    threads = [threading.Thread(target=work, args=(float(v),)) for v in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and pool.reused > 0

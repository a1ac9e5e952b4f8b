"""glibc's allocator tuned for a process of ours: how many arenas, which arrays come from the heap, how much free heap stays.

The command line (:func:`imgext.cli.tune_malloc`) and the app server
(:func:`imgext.hosting.tune_server_malloc`) call :func:`tune` with their own values and say why.
"""

from __future__ import annotations

__all__ = ["tune"]

M_TRIM_THRESHOLD = -1
M_TOP_PAD = -2
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8


def tune(*, arenas: int, mmap_threshold_bytes: int, trim_threshold_bytes: int, top_pad_bytes: int | None = None) -> bool:
    """Set glibc's ``M_ARENA_MAX``, ``M_MMAP_THRESHOLD``, ``M_TRIM_THRESHOLD`` (and ``M_TOP_PAD``) for this process.

    Parameters
    ----------
    arenas : int
        Most malloc arenas the process's threads share.
    mmap_threshold_bytes : int
        Allocations at least this large are mapped on their own (and unmapped when freed);
        smaller ones come from the heap. glibc's upper bound is 32 MB.
    trim_threshold_bytes : int
        Free heap above this at the top of an arena goes back to the system when memory is freed.
    top_pad_bytes : int, optional
        Free heap left at the top of an arena when it is trimmed (and added to each request for more);
        glibc's default (128 KB) when None. ``malloc_trim(0)`` gives back the main arena's pad, not a
        thread arena's (it does not shrink their tops).

    Returns
    -------
    bool
        False when the C library is not glibc (nothing tuned).
    """
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(M_ARENA_MAX, int(arenas))
        libc.mallopt(M_MMAP_THRESHOLD, int(mmap_threshold_bytes))
        libc.mallopt(M_TRIM_THRESHOLD, int(trim_threshold_bytes))
        if top_pad_bytes is not None:
            libc.mallopt(M_TOP_PAD, int(top_pad_bytes))
    except (OSError, AttributeError):  # not glibc
        return False
    return True

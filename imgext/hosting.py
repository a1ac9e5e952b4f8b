"""A public demo: who may change what (hosted mode), visitors' own presets, and a fair queue for heavy work.

* :class:`Access` says what this visitor may do.  Outside hosted mode (a local
  run) everyone is the owner.  In hosted mode (``IMGEXT_HOSTED=1``, e.g. a root
  key in Streamlit secrets) the shared preset library is read-only and the
  shared sound cache cannot be cleared, unless the visitor typed the admin
  password (``IMGEXT_ADMIN_PASSWORD`` in secrets; compared in constant time).
* :class:`SessionPresets` keeps a visitor's own presets in their session only
  (bounded in number), with JSON download/upload; :class:`Presets` shows the
  shared library and the visitor's own as one list.
* :class:`HeavyPool` lets a few heavy steps (detection, finding sounds, mixing,
  the ZIP) run at once, first come first served, and tells everyone else how
  many are ahead of them, instead of every session slowing down together.
"""

from __future__ import annotations

import hmac
import itertools
import json
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from imgext.errors import ParameterError
from imgext.sounds.filters import BUILTIN_PRESETS, PresetStore, SearchFilter, _check_name

__all__ = ["Access", "HeavyPool", "LeftSessions", "Presets", "SessionPresets", "check_password", "describe_queue",
           "release_memory", "tune_server_malloc"]

MAX_PRESET_UPLOAD_BYTES = 64 * 1024
"""Largest presets JSON a visitor may upload, in bytes."""


def check_password(typed: str | None, secret: str | None) -> bool:
    """True when ``typed`` equals a configured, non-empty ``secret`` (constant-time comparison)."""
    if not secret or not typed:
        return False
    return hmac.compare_digest(typed.encode("utf-8"), str(secret).encode("utf-8"))


@dataclass(frozen=True)
class Access:
    """What the current visitor may do.

    Attributes
    ----------
    hosted : bool
        Public demo mode.
    admin : bool
        The visitor typed the admin password (always True outside hosted mode).
    """

    hosted: bool = False
    admin: bool = False

    @property
    def owner(self) -> bool:
        return self.admin or not self.hosted

    @property
    def can_write_shared_presets(self) -> bool:
        return self.owner

    @property
    def can_clear_cache(self) -> bool:
        return self.owner


@dataclass
class SessionPresets:
    """A visitor's own presets, in memory (their session), at most ``max_presets``.

    Attributes
    ----------
    presets : dict
        Name -> :class:`~imgext.sounds.filters.SearchFilter`.
    """

    max_presets: int = 20
    presets: dict = field(default_factory=dict)

    def save(self, name: str, flt: SearchFilter) -> None:
        name = _check_name(name)
        if name in BUILTIN_PRESETS:
            raise ParameterError(f"{name!r} is a built-in preset; save under another name")
        flt.to_solr()
        if name not in self.presets and len(self.presets) >= self.max_presets:
            raise ParameterError(f"you can keep at most {self.max_presets} presets in this session; delete one first")
        self.presets[name] = flt

    def delete(self, name: str) -> None:
        if self.presets.pop(name, None) is None:
            raise ParameterError(f"no preset of yours is named {name!r}")

    def to_json(self) -> bytes:
        """The presets as a JSON file (the same layout as the server's ``presets.json``)."""
        body = {"schema_version": 1, "presets": {n: f.to_dict() for n, f in sorted(self.presets.items())}}
        return (json.dumps(body, indent=2, ensure_ascii=False) + "\n").encode("utf-8")

    def load_json(self, data: bytes) -> int:
        """Add presets from an uploaded JSON file; returns how many were added.

        Raises
        ------
        ParameterError
            The file is too large, not a presets file, or would exceed ``max_presets``.
        """
        if len(data) > MAX_PRESET_UPLOAD_BYTES:
            raise ParameterError(f"a presets file may be at most {MAX_PRESET_UPLOAD_BYTES // 1024} KB")
        try:
            body = json.loads(data.decode("utf-8"))
            items = body["presets"] if isinstance(body, dict) else None
            if not isinstance(items, dict):
                raise ValueError("no 'presets' object")  # noqa: TRY004 - caught below, one message
            parsed = {_check_name(n): SearchFilter.from_dict(d) for n, d in items.items()}
        except (ValueError, KeyError, TypeError, RecursionError) as exc:
            raise ParameterError(f"this is not a presets file ({type(exc).__name__})") from None
        parsed = {n: f for n, f in parsed.items() if n not in BUILTIN_PRESETS}
        if len(set(self.presets) | set(parsed)) > self.max_presets:
            raise ParameterError(f"you can keep at most {self.max_presets} presets in this session")
        self.presets.update(parsed)
        return len(parsed)


@dataclass
class Presets:
    """The shared library and the visitor's own presets as one list, writing where the visitor may.

    Parameters
    ----------
    shared : PresetStore
        The server's library (built-ins + ``presets.json``).
    own : SessionPresets
    access : Access
    """

    shared: PresetStore
    own: SessionPresets
    access: Access

    @property
    def warnings(self) -> list[str]:
        return self.shared.warnings

    def names(self) -> list[str]:
        shared = self.shared.names()
        return shared + sorted(n for n in self.own.presets if n not in shared)

    def is_builtin(self, name: str) -> bool:
        return self.shared.is_builtin(name)

    def is_own(self, name: str) -> bool:
        return name in self.own.presets

    def can_delete(self, name: str) -> bool:
        if self.is_builtin(name):
            return False
        return self.is_own(name) or self.access.can_write_shared_presets

    def load(self, name: str) -> SearchFilter:
        if name in self.own.presets:
            return self.own.presets[name]
        return self.shared.load(name)

    def save(self, name: str, flt: SearchFilter) -> str:
        """Save; returns ``"shared"`` or ``"session"`` (where it went)."""
        if self.access.can_write_shared_presets:
            self.shared.save(name, flt)
            return "shared"
        if _check_name(name) in self.shared.names():
            raise ParameterError(f"{name!r} is a shared preset; save yours under another name")
        self.own.save(name, flt)
        return "session"

    def delete(self, name: str) -> None:
        if self.is_own(name):
            self.own.delete(name)
        elif self.access.can_write_shared_presets:
            self.shared.delete(name)
        else:
            raise ParameterError("shared presets can only be deleted by the administrator")


class HeavyPool:
    """At most ``workers`` heavy steps at once, served in arrival order, with the queue visible.

    Parameters
    ----------
    workers : int >= 1
        Heavy steps running at the same time (2 cores: 2).

    Examples
    --------
    >>> pool = HeavyPool(1)
    >>> with pool.slot("mix", on_wait=lambda ahead: print(describe_queue(ahead))):
    ...     pass
    """

    def __init__(self, workers: int = 2) -> None:
        if workers < 1:
            raise ParameterError(f"workers={workers} must be at least 1")
        self.workers = int(workers)
        self._cond = threading.Condition()
        self._queue: list[tuple[int, str]] = []  # waiting, in arrival order
        self._running: dict[int, str] = {}
        self._tickets = itertools.count()
        self.served = 0
        self.max_waiting = 0

    def status(self) -> tuple[int, int]:
        """``(running, waiting)`` now."""
        with self._cond:
            return len(self._running), len(self._queue)

    def _ahead(self, ticket: int) -> list[str]:
        """Kinds of the steps that must start or finish before ``ticket`` can start."""
        before = [k for t, k in self._queue if t < ticket]
        must_finish = max(0, len(self._running) + len(before) - self.workers + 1) - len(before)
        return before + sorted(self._running.values())[: max(0, must_finish)]

    @contextmanager
    def slot(self, kind: str, *, on_wait: Callable[[list[str]], None] | None = None,
             poll_s: float = 0.5) -> Iterator[float]:
        """Hold one of the pool's places while the block runs; yields the seconds waited.

        ``on_wait(kinds_ahead)`` is called (from the waiting thread) when the
        visitor has to queue and whenever the steps ahead change.
        """
        ticket = next(self._tickets)
        t0 = time.monotonic()
        last = None
        with self._cond:
            self._queue.append((ticket, kind))
            self.max_waiting = max(self.max_waiting, len(self._queue))
            try:
                while not (len(self._running) < self.workers and self._queue[0][0] == ticket):
                    ahead = self._ahead(ticket)
                    if on_wait is not None and ahead != last:
                        last = ahead
                        self._cond.release()
                        try:
                            on_wait(ahead)
                        finally:
                            self._cond.acquire()
                        continue
                    self._cond.wait(poll_s)
            except BaseException:
                self._queue = [q for q in self._queue if q[0] != ticket]
                self._cond.notify_all()
                raise
            self._queue.pop(0)
            self._running[ticket] = kind
        try:
            yield time.monotonic() - t0
        finally:
            with self._cond:
                del self._running[ticket]
                self.served += 1
                self._cond.notify_all()


_NOUNS = {"detection": ("detection", "detections"), "search": ("sound search", "sound searches"),
          "mix": ("mix", "mixes"), "zip": ("ZIP download", "ZIP downloads")}


def describe_queue(kinds_ahead: list[str]) -> str:
    """``"The server is busy: 2 mixes ahead of you. ..."`` (kinds are our own step names, never user text)."""
    n = len(kinds_ahead)
    kinds = set(kinds_ahead)
    one, many = _NOUNS.get(kinds.pop(), ("step", "steps")) if len(kinds) == 1 else ("step", "steps")
    return f"The server is busy: {n} {one if n == 1 else many} ahead of you. Yours starts as soon as a place is free."


class LeftSessions:
    """Close the sessions whose browser has been gone longer than a grace time, then give the memory back.

    A web server keeps a disconnected session for a while so a browser that lost its
    connection for a moment finds its work again.  Streamlit's own store forgets such a
    session only when another one disconnects after its time-to-live, and then without
    shutting it down (its media and uploads stay registered), so a demo whose visitors
    have left can hold gigabytes of their audio.  This tracker is told every session it
    sees; :meth:`sweep`, called every ``every_s`` by :meth:`start`'s daemon thread,
    closes each one that has not been connected for ``grace_s`` seconds and, on the
    next sweep (once the close has run), hands the freed pages back to the system
    (:func:`release_memory`).

    Parameters
    ----------
    is_connected : callable ``(session_id) -> bool``
        Whether a browser is connected to the session now (must be safe to call from any thread).
    close : callable ``(session_id) -> None``
        Shut the session down for good (must be safe to call from any thread).
    grace_s : float > 0
        Seconds a session may stay disconnected before it is closed (the server's reconnect window).
    release : callable ``() -> object``
        What gives memory back after closes: :func:`release_memory` by default.
    when_empty : callable ``() -> object`` or None
        Called (before ``release``) once the last known session has been closed: a server
        nobody uses empties its in-memory caches (:func:`imgext.sounds.memo.clear_memory_caches`).
    clock : callable ``() -> float``
        Monotonic seconds.
    """

    def __init__(self, is_connected: Callable[[str], bool], close: Callable[[str], None], *, grace_s: float,
                 release: Callable[[], object] | None = None, when_empty: Callable[[], object] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not grace_s > 0:
            raise ParameterError(f"grace_s={grace_s} must be positive")
        self.grace_s = float(grace_s)
        self._is_connected, self._close = is_connected, close
        self._release = release if release is not None else release_memory
        self._when_empty = when_empty
        self._clock = clock
        self._lock = threading.Lock()
        self._last_seen: dict[str, float] = {}  # session id -> when it was last seen connected
        self._release_pending = False
        self._empty_pending = False
        self.closed = 0  # sessions closed so far
        self.releases = 0  # times memory was handed back

    def seen(self, session_id: str) -> None:
        """Note that ``session_id`` is in use now (call it on every script run)."""
        with self._lock:
            self._last_seen[session_id] = self._clock()

    @property
    def tracked(self) -> int:
        """Sessions known and not yet closed."""
        with self._lock:
            return len(self._last_seen)

    def sweep(self) -> list[str]:
        """Close every session gone longer than ``grace_s``; release memory after the previous sweep's closes.

        Returns the ids closed by this sweep.
        """
        if self._release_pending:
            self._release_pending = False
            if self._empty_pending:
                self._empty_pending = False
                with self._lock:
                    empty = not self._last_seen  # nobody came meanwhile
                if empty and self._when_empty is not None:
                    self._when_empty()
            self._release()
            self.releases += 1
        now = self._clock()
        with self._lock:
            ids = list(self._last_seen)
        gone = []
        for sid in ids:
            if self._is_connected(sid):
                with self._lock:
                    self._last_seen[sid] = now
            elif now - self._last_seen.get(sid, now) >= self.grace_s:
                gone.append(sid)
        for sid in gone:
            with self._lock:
                self._last_seen.pop(sid, None)
            self._close(sid)
            self.closed += 1
        if gone:
            self._release_pending = True
            with self._lock:
                self._empty_pending = not self._last_seen
        return gone

    def start(self, every_s: float = 10.0) -> threading.Thread:
        """Sweep every ``every_s`` seconds on a daemon thread (for the life of the process); returns it."""
        if not every_s > 0:
            raise ParameterError(f"every_s={every_s} must be positive")

        def loop() -> None:
            while True:
                time.sleep(every_s)
                try:
                    self.sweep()
                except Exception:  # noqa: BLE001 - a failed sweep must not end the sweeper; the next one retries
                    traceback.print_exc()

        thread = threading.Thread(target=loop, name="imgext-left-sessions", daemon=True)
        thread.start()
        return thread


def tune_server_malloc() -> None:
    """Tune glibc's allocator for the app server: two arenas, arrays up to 32 MB from the heap, 16 MB kept at its top.

    Call once, early (the app does from its first script run).

    * ``M_ARENA_MAX`` 2: with glibc's default of one arena per thread (8 per core), the memory the
      script threads free stays in their arenas (measured: 3.0 GB after 8 sessions had left).
    * ``M_MMAP_THRESHOLD`` 32 MB (glibc's own upper bound for its sliding threshold): a render's
      arrays reuse the heap pages the last render freed.  At 128 KB every array was mapped,
      faulted in page by page and unmapped again: an EQ render at 8 tracks took ~67,000 page
      faults and 0.35 s of kernel time, more than the render's own 0.25 s (now ~0.06 s).
    * ``M_TRIM_THRESHOLD`` 128 KB: free heap above that goes back at once.  Keeping more
      (32 or 256 MB) saved another ~0.03 CPU-s a render but stayed allocated after everyone had
      left (``malloc_trim``, :func:`~imgext.hosting.release_memory`, does not shrink a thread
      arena's top): ``bench/load.py --sessions 1 4 --settle 60 --session-ttl 20`` left 497 MB
      behind with both thresholds at 128 KB, 671 MB with these, 895 / 1,066 MB with those.
    * ``M_TOP_PAD`` 16 MB: what a trim leaves at the top of an arena.  At glibc's 128 KB every
      few-MB temporary freed at the top (an encoded preview's samples, a duck block's frames) was
      given back and faulted in again by the next: at 29 tracks the stems player's FLAC encoding
      took 1.08 s of kernel time in 9 renders, 0.08 s with the pad, and the duck's design 0.07 -> 0.03
      (library replay of attenuation moves on a script thread).  It keeps at most 16 MB per arena, which
      ``malloc_trim`` gives back for the main arena only.

    Not glibc: nothing to tune.
    """
    from imgext.malloc import tune

    tune(arenas=2, mmap_threshold_bytes=32 << 20, trim_threshold_bytes=128 << 10, top_pad_bytes=16 << 20)


def _libc_trim() -> Callable[[int], int] | None:
    """The C library's ``malloc_trim`` (glibc), or None on another C library (musl, macOS, Windows)."""
    try:
        import ctypes
        import ctypes.util

        name = ctypes.util.find_library("c")
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        return None


def release_memory() -> bool:
    """Hand the allocator's free pages back to the system; True when glibc's ``malloc_trim`` did it.

    Collects cyclic garbage first (a closed web session is a cycle of objects that holds
    its audio until the cyclic collector runs, and an idle server allocates nothing that
    would trigger it), then ``malloc_trim(0)``: glibc keeps freed heap pages for reuse.
    """
    import gc

    gc.collect()
    trim = _libc_trim()
    if trim is None:
        return False
    trim(0)
    return True

"""Budgets: one deadline and one cancel flag for every network wait of a task.

A :class:`Budget` is made once per task (a render, one "Find sounds" in the
app) and handed to the stages that wait on the network
(:func:`~imgext.sounds.selection.choose_sounds`,
:func:`~imgext.composition.tracks.fetch_tracks`).  They make it *current*
(:meth:`Budget.scope`, a context variable, so every worker thread of the task
sees it) and the Freesound client reads it (:func:`current_budget`): no request
outlives the budget's deadline, and :meth:`Budget.cancel` interrupts the
requests in flight at once (their sockets are shut).

Downloads report their bytes here (:meth:`Budget.report`), so a caller can show
progress that moves while they run (:meth:`Budget.transfers`).
:meth:`Budget.run` runs a task on a worker thread and calls ``tick`` on the
caller's thread meanwhile: a UI redraws its progress there, and an exception
raised by ``tick`` (a Streamlit rerun after a Cancel click) cancels the task.

No Streamlit here: the app only calls :meth:`Budget.cancel` or :meth:`Budget.run`.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import threading
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

from imgext.errors import CancelledError, SourceTimeoutError

__all__ = ["Budget", "current_budget"]

T = TypeVar("T")

_CURRENT: contextvars.ContextVar[Budget | None] = contextvars.ContextVar("imgext_budget", default=None)


def current_budget() -> Budget | None:
    """The budget made current by :meth:`Budget.scope` in this thread (or context), if any."""
    return _CURRENT.get()


class _Shared:
    """What a budget and the budgets derived from it share: the cancel flag, callbacks, transfers."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.cancelled = threading.Event()
        self.reason = ""
        self.callbacks: dict[int, Callable[[], None]] = {}
        self.next_id = 0
        self.transfers: dict[object, tuple[int, int | None]] = {}
        self.received_done = 0


class Budget:
    """A deadline (seconds from now, or none) and a cancel flag.

    Parameters
    ----------
    seconds : float or None
        Time allowed from now, in seconds; ``None`` = no deadline (cancel only).
    what : str
        How messages name the budget ("the render's 90 s budget").
    """

    def __init__(self, seconds: float | None = None, *, what: str | None = None,
                 _shared: _Shared | None = None, _deadline: float | None = None) -> None:
        if seconds is not None and not seconds > 0:
            raise ValueError(f"a budget of {seconds!r} s must be positive")
        self.seconds = seconds
        self.what = what or (f"the {seconds:g} s time budget" if seconds is not None else "the task")
        self._shared = _shared or _Shared()
        self.deadline = _deadline if _deadline is not None else (
            time.monotonic() + seconds if seconds is not None else math.inf)

    def __repr__(self) -> str:
        return f"Budget(remaining={self.remaining():.1f} s, cancelled={self.cancelled})"

    # -- time
    def remaining(self) -> float:
        """Seconds left (``inf`` without a deadline, 0 once cancelled)."""
        if self.cancelled:
            return 0.0
        return max(0.0, self.deadline - time.monotonic())

    def expired(self) -> bool:
        """True once cancelled or past the deadline."""
        return self.cancelled or time.monotonic() >= self.deadline

    def until(self, seconds_before_end: float) -> Budget:
        """A budget that ends ``seconds_before_end`` earlier and shares this one's cancel flag and transfers."""
        return Budget(what=self.what, _shared=self._shared, _deadline=self.deadline - max(0.0, seconds_before_end))

    def check(self, what: str = "") -> None:
        """Raise when the budget is spent.

        Raises
        ------
        CancelledError
            After :meth:`cancel`.
        SourceTimeoutError
            Past the deadline.
        """
        during = f" while {what}" if what else ""
        if self.cancelled:
            raise CancelledError(f"{self._shared.reason or 'cancelled'}{during}")
        if time.monotonic() >= self.deadline:
            raise SourceTimeoutError(f"{self.what} ran out{during}")

    def sleep(self, seconds: float) -> None:
        """Sleep ``seconds``, but no longer than the budget lasts; wakes at once on cancel."""
        wait = min(float(seconds), max(0.0, self.deadline - time.monotonic()))
        if wait > 0:
            self._shared.cancelled.wait(wait)

    # -- cancel
    @property
    def cancelled(self) -> bool:
        return self._shared.cancelled.is_set()

    def cancel(self, reason: str = "cancelled") -> None:
        """Stop the task: every request in flight is interrupted, every later one refused (thread-safe)."""
        with self._shared.lock:
            if self._shared.cancelled.is_set():
                return
            self._shared.reason = reason
            self._shared.cancelled.set()
            callbacks = list(self._shared.callbacks.values())
        for fn in callbacks:
            with contextlib.suppress(Exception):
                fn()

    def on_cancel(self, fn: Callable[[], None]) -> int:
        """Call ``fn`` (once, from the cancelling thread) when cancelled; at once if already. Returns a handle."""
        with self._shared.lock:
            if not self._shared.cancelled.is_set():
                self._shared.next_id += 1
                self._shared.callbacks[self._shared.next_id] = fn
                return self._shared.next_id
        fn()
        return 0

    def forget(self, handle: int) -> None:
        """Drop a callback registered with :meth:`on_cancel`."""
        with self._shared.lock:
            self._shared.callbacks.pop(handle, None)

    # -- transfers
    def report(self, key: object, received: int, expected: int | None = None) -> None:
        """Bytes received so far by one transfer (``expected`` from Content-Length, if known)."""
        with self._shared.lock:
            self._shared.transfers[key] = (int(received), expected)

    def finished(self, key: object) -> None:
        """A transfer ended (whole or not)."""
        with self._shared.lock:
            received, _ = self._shared.transfers.pop(key, (0, None))
            self._shared.received_done += received

    def transfers(self) -> tuple[int, float, int]:
        """``(bytes received in all, summed fraction done of the running transfers, running transfers)``."""
        with self._shared.lock:
            running = list(self._shared.transfers.values())
            total = self._shared.received_done + sum(r for r, _ in running)
        fraction = sum(min(1.0, r / e) if e else 0.0 for r, e in running)
        return total, fraction, len(running)

    # -- use
    @contextlib.contextmanager
    def scope(self) -> Iterator[Budget]:
        """Make this the :func:`current_budget` inside the ``with`` block."""
        token = _CURRENT.set(self)
        try:
            yield self
        finally:
            _CURRENT.reset(token)

    def run(self, fn: Callable[[], T], *, tick: Callable[[], None] | None = None, interval_s: float = 0.25) -> T:
        """``fn()`` on a worker thread with this budget current; ``tick()`` every ``interval_s`` meanwhile.

        Whatever ``tick`` raises (a UI's interruption) cancels the budget and
        propagates; so does ``KeyboardInterrupt``.  The worker then ends
        promptly: its requests are interrupted and later ones refused.
        """
        box: dict[str, object] = {}
        ctx = contextvars.copy_context()

        def work() -> None:
            try:
                with self.scope():
                    box["value"] = fn()
            except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
                box["error"] = exc

        worker = threading.Thread(target=ctx.run, args=(work,), name="imgext-budget-task", daemon=True)
        worker.start()
        try:
            while worker.is_alive():
                worker.join(interval_s)
                if tick is not None and worker.is_alive():
                    tick()
        except BaseException:
            self.cancel()
            raise
        if "error" in box:
            raise box["error"]  # type: ignore[misc]
        return box["value"]  # type: ignore[return-value]

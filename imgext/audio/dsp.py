"""``scipy.signal``, imported without ``scipy.stats`` (half a CPU-second of every cold start).

Every module of the package that filters, convolves or designs filters takes
``signal`` from here (``from imgext.audio.dsp import signal``), the same
``scipy.signal`` module, so whichever imports it first pays the least.

Why: ``scipy.signal`` imports ``scipy.stats`` for one name,
``scoreatpercentile`` (used by ``find_peaks_cwt`` only), and ``scipy.stats``
builds its hundreds of distributions at import: ~0.5 CPU-s and ~20 MB, a
tenth of ``python -m imgext render``.  While ``scipy.signal`` is imported, a
stand-in ``scipy.stats`` offering that one name (a function that imports the
real ``scipy.stats`` when called) sits in ``sys.modules``; it is removed right
after, so any later ``import scipy.stats`` gets the real module.  Nothing of
``scipy.signal`` changes: its functions are the same objects.

The stand-in is visible to other threads only during that one import (a fraction of a
second, once per process); nothing in this package or its app imports ``scipy.stats``.
When ``scipy.stats`` is already imported, or the stand-in is not enough (a
SciPy that imports more of ``scipy.stats`` from ``scipy.signal``), ``scipy.signal``
is imported the ordinary way.
"""

from __future__ import annotations

import importlib
import sys
import threading
import types

__all__ = ["signal"]

_LOCK = threading.Lock()


def _scoreatpercentile(*args, **kwargs):
    """``scipy.stats.scoreatpercentile``, imported when first called."""
    return importlib.import_module("scipy.stats").scoreatpercentile(*args, **kwargs)


def import_signal() -> types.ModuleType:
    """``scipy.signal``, imported without importing ``scipy.stats`` (see the module's docstring)."""
    if "scipy.signal" in sys.modules or "scipy.stats" in sys.modules:
        return importlib.import_module("scipy.signal")
    with _LOCK:
        if "scipy.signal" not in sys.modules and "scipy.stats" not in sys.modules:
            stand_in = types.ModuleType("scipy.stats", "stand-in while scipy.signal is imported (imgext.audio.dsp)")
            stand_in.scoreatpercentile = _scoreatpercentile
            sys.modules["scipy.stats"] = stand_in
            try:
                importlib.import_module("scipy.signal")
            except ImportError:  # this SciPy wants more of scipy.stats: import it properly below
                pass
            finally:
                if sys.modules.get("scipy.stats") is stand_in:
                    del sys.modules["scipy.stats"]
                scipy = sys.modules.get("scipy")
                if scipy is not None and scipy.__dict__.get("stats") is stand_in:
                    del scipy.stats
    return importlib.import_module("scipy.signal")


signal = import_signal()

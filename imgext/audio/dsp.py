"""``scipy.signal``, imported without ``scipy.stats``, ``scipy.interpolate``, ``scipy.optimize``, ``scipy.spatial`` and SciPy's docstring rewriting (~1.5 CPU-s of a cold start).

Every module of the package that filters, convolves or designs filters takes
``signal`` from here (``from imgext.audio.dsp import signal``), the same
``scipy.signal`` module, so whichever imports it first pays the least; ``fft``
is ``scipy.fft``, taken from here for the same reason (imported before
``scipy.signal``, it would load SciPy's array-API layer the ordinary way).

Why: ``scipy.signal`` imports ``scipy.stats`` for one name,
``scoreatpercentile`` (used by ``find_peaks_cwt`` only), and ``scipy.stats``
builds its hundreds of distributions at import: ~0.5 CPU-s and ~20 MB, a
tenth of ``python -m imgext render``.  While ``scipy.signal`` is imported, a
stand-in ``scipy.stats`` offering that one name (a function that imports the
real ``scipy.stats`` when called) sits in ``sys.modules``; it is removed right
after, so any later ``import scipy.stats`` gets the real module.

And: SciPy 1.17 decorates every public function of ``scipy.signal``,
``scipy.special``, ``scipy.ndimage`` and ``scipy.fft`` at import with
``xp_capabilities``, which records the function's array-API support (kept) and
parses and rewrites its whole docstring to append a support table (~0.3 CPU-s).
During the same import the decorator is given each function without its
docstring, and the docstring put back afterwards: the functions, their
capabilities and their own docstrings are SciPy's; only the appended table is
missing from ``help()``.

And: SciPy's array-API layer (``scipy._lib.array_api_compat.numpy``, imported by
every SciPy submodule) clones NumPy's namespace with ``from numpy import *``
and ``getattr`` over ``dir(numpy)``, which imports every lazily loaded NumPy
submodule: ``numpy.testing`` (and with it ``importlib.metadata``, ``email``,
``socket``), ``numpy.f2py``, ``numpy.ma``, ``numpy.polynomial`` ... (~0.25 CPU-s,
none of them used by a render).  During that one import NumPy's ``__all__`` and
``__dir__`` list only the submodules already loaded, and afterwards the clone
gets a module ``__getattr__`` that hands out any other NumPy name on first use:
the same objects, only ``dir()`` of the clone is shorter (:func:`_lean_array_api`).

And: ``scipy.signal`` imports ``scipy.interpolate`` (and with it ``scipy.optimize``),
``scipy.spatial`` (and ``scipy.sparse``) for a few names its module bodies bind
but only some of its functions call: ``BSpline`` and ``make_interp_spline``
(B-spline filters, ``lsim``), ``cKDTree`` (``resample``'s ``unique_roots``),
``optimize`` (the ``*ord`` order estimators): ~0.55 CPU-s, none of it used
by a render.  During the import, stand-ins for those three packages hand out
lazy names (:class:`_Lazy`: the real object, imported on first call or
attribute access) and afterwards, as modules bound inside ``scipy.signal``,
the real package's attributes; the stand-ins leave ``sys.modules`` right
after, so ``import scipy.optimize`` anywhere gets the real module.

All last for that one import (a fraction of a second, once per process); the
stand-in is visible to other threads only then, and nothing in this package or
its app imports ``scipy.stats``.  When ``scipy.stats`` or ``scipy.signal`` is
already imported, or the stand-in is not enough (a SciPy that imports more of
``scipy.stats`` from ``scipy.signal``), ``scipy.signal`` is imported the
ordinary way.
"""

from __future__ import annotations

import functools
import importlib
import sys
import threading
import types

__all__ = ["fft", "signal"]

_LOCK = threading.Lock()


def _scoreatpercentile(*args, **kwargs):
    """``scipy.stats.scoreatpercentile``, imported when first called."""
    return importlib.import_module("scipy.stats").scoreatpercentile(*args, **kwargs)


_LAZY_PACKAGES = ("scipy.interpolate", "scipy.optimize", "scipy.spatial")
_importing = threading.local()


def _real(package: str) -> types.ModuleType:
    """The real ``package``, imported now if only its stand-in (or nothing) is in ``sys.modules``."""
    module = sys.modules.get(package)
    if module is None or getattr(module, "_imgext_stand_in", False):
        if module is not None:
            del sys.modules[package]
        module = importlib.import_module(package)
    return module


class _Lazy:
    """A name of ``package`` bound while ``scipy.signal`` is imported: the real object on first use."""

    def __init__(self, package: str, name: str) -> None:
        self._where = (package, name)

    def _target(self):
        package, name = self._where
        return getattr(_real(package), name)

    def __call__(self, *args, **kwargs):
        return self._target()(*args, **kwargs)

    def __getattr__(self, attr: str):
        if attr.startswith("__"):
            raise AttributeError(attr)
        return getattr(self._target(), attr)

    def __repr__(self) -> str:
        return f"<lazy {'.'.join(self._where)} (imgext.audio.dsp)>"


def _stand_in(package: str) -> types.ModuleType:
    """A module standing in for ``package`` in ``sys.modules`` while ``scipy.signal`` is imported."""
    module = types.ModuleType(package, f"stand-in for {package} while scipy.signal is imported (imgext.audio.dsp)")
    module._imgext_stand_in = True

    def __getattr__(name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        if getattr(_importing, "active", False):
            return _Lazy(package, name)  # bound by a module body of scipy.signal: resolved when used
        return getattr(_real(package), name)  # used later through a module bound then: the real thing

    module.__getattr__ = __getattr__
    return module


def _keeping_docstrings(xp_capabilities):
    """SciPy's ``xp_capabilities`` decorator factory, applied to each function without its docstring."""

    @functools.wraps(xp_capabilities)
    def factory(*args, **kwargs):
        decorate = xp_capabilities(*args, **kwargs)

        def decorator(f):
            doc = f.__doc__
            try:
                f.__doc__ = None
            except (AttributeError, TypeError):  # a ufunc's docstring is read-only: SciPy's own way
                return decorate(f)
            try:
                return decorate(f)
            finally:
                f.__doc__ = doc

        return decorator

    return factory


def _lean_array_api() -> types.ModuleType:
    """``scipy._lib._array_api``, imported without importing NumPy's unused lazy submodules (module docstring)."""
    if "scipy._lib._array_api" in sys.modules:
        return sys.modules["scipy._lib._array_api"]
    import numpy

    public, listing = numpy.__dict__.get("__all__"), numpy.__dict__.get("__dir__")
    loaded = set(numpy.__dict__)
    if public is not None:
        numpy.__all__ = [name for name in public if name in loaded]
    if listing is not None:
        numpy.__dir__ = lambda: [name for name in listing() if name in loaded]
    try:
        api = importlib.import_module("scipy._lib._array_api")
    finally:
        if public is not None:
            numpy.__all__ = public
        if listing is not None:
            numpy.__dir__ = listing
        else:
            numpy.__dict__.pop("__dir__", None)
    clone = sys.modules.get("scipy._lib.array_api_compat.numpy")
    if clone is not None and "__getattr__" not in clone.__dict__:
        def __getattr__(name: str):  # what the clone left out: NumPy's own, imported on first use
            if name.startswith("__"):
                raise AttributeError(name)
            return getattr(numpy, name)

        clone.__getattr__ = __getattr__
    return api


def import_signal() -> types.ModuleType:
    """``scipy.signal``, imported without ``scipy.stats``, ``scipy.interpolate``, ``scipy.optimize`` and ``scipy.spatial``.

    See the module's docstring.
    """
    if "scipy.signal" in sys.modules or "scipy.stats" in sys.modules:
        return importlib.import_module("scipy.signal")
    with _LOCK:
        if "scipy.signal" not in sys.modules and "scipy.stats" not in sys.modules:
            try:
                api = _lean_array_api()
                original = api.xp_capabilities
            except (ImportError, AttributeError):  # another SciPy: no decorator to spare
                api = original = None
            stand_in = types.ModuleType("scipy.stats", "stand-in while scipy.signal is imported (imgext.audio.dsp)")
            stand_in.scoreatpercentile = _scoreatpercentile
            stand_ins = {"scipy.stats": stand_in}
            stand_ins.update({p: _stand_in(p) for p in _LAZY_PACKAGES if p not in sys.modules})
            sys.modules.update(stand_ins)
            if original is not None:
                api.xp_capabilities = _keeping_docstrings(original)
            _importing.active = True
            try:
                importlib.import_module("scipy.signal")
            except ImportError:  # this SciPy wants more of scipy.stats: import it properly below
                for name in [m for m in sys.modules if m == "scipy.signal" or m.startswith("scipy.signal.")]:
                    del sys.modules[name]  # a half-imported scipy.signal holding stand-ins: start again below
            finally:
                _importing.active = False
                if original is not None:
                    api.xp_capabilities = original
                scipy = sys.modules.get("scipy")
                for package, module in stand_ins.items():
                    if sys.modules.get(package) is module:
                        del sys.modules[package]
                    leaf = package.rpartition(".")[2]
                    if scipy is not None and scipy.__dict__.get(leaf) is module:
                        delattr(scipy, leaf)
    return importlib.import_module("scipy.signal")


signal = import_signal()
fft = importlib.import_module("scipy.fft")  # imported by scipy.signal above: the same module, after its lean import

"""``imgext.audio.dsp``: scipy.signal imported without scipy.stats, and nothing else about it changed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(code: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120,
                         check=False, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def test_signal_without_stats_then_the_real_stats():
    out = _run(
        "import sys\n"
        "import numpy as np\n"
        "from imgext.audio.dsp import signal\n"
        "import scipy.signal\n"
        "assert signal is scipy.signal\n"
        "assert 'scipy.stats' not in sys.modules, 'scipy.stats was imported'\n"
        "import scipy._lib._array_api as api, scipy.ndimage\n"
        "assert not hasattr(api.xp_capabilities, '__wrapped__')\n"  # SciPy's decorator is back
        "assert signal.sosfilt in api.xp_capabilities_table and scipy.ndimage.gaussian_filter1d in api.xp_capabilities_table\n"
        "assert 'Filter data along one dimension' in signal.sosfilt.__doc__\n"  # its own docstring
        "x = np.abs(np.sin(np.linspace(0.0, 20.0, 1000)))\n"
        "peaks = signal.find_peaks_cwt(x, np.arange(1, 10))\n"  # the one user of scoreatpercentile
        "import scipy.stats\n"
        "assert hasattr(scipy.stats, 'norm') and scipy.stats.norm.cdf(0.0) == 0.5\n"
        "assert 'stand-in' not in (scipy.stats.__doc__ or '')\n"
        "print([int(p) for p in peaks])\n"
    )
    assert out.strip() == "[79, 236, 393, 550, 707, 864, 996]"


def test_signal_without_interpolate_optimize_spatial_whose_names_still_work():
    out = _run(
        "import sys\n"
        "import numpy as np\n"
        "from imgext.audio.dsp import signal\n"
        "lazy = ('scipy.interpolate', 'scipy.optimize', 'scipy.spatial', 'scipy.sparse')\n"
        "print(sorted(m for m in lazy if m in sys.modules))\n"
        "print(signal.unique_roots([1.0, 1.0000001, 2.0])[1].tolist())\n"  # cKDTree, imported on first call
        "print(np.round(signal.cspline1d(np.arange(6.0)), 6).tolist())\n"  # BSpline's class method
        "print(signal.buttord(0.2, 0.3, 3, 40, analog=False)[0], signal.ellipord(0.2, 0.3, 3, 40)[0])\n"
        "import scipy.optimize, scipy.interpolate, scipy.spatial\n"
        "assert not getattr(scipy.optimize, '_imgext_stand_in', False) and hasattr(scipy.optimize, 'minimize')\n"
        "assert not getattr(scipy.interpolate, '_imgext_stand_in', False) and hasattr(scipy.interpolate, 'BSpline')\n"
        "import scipy.signal._filter_design as fd\n"
        "assert fd.optimize.fminbound is scipy.optimize.fminbound\n"  # the module bound then hands out the real names
        "print(signal.buttord([0.1, 0.6], [0.2, 0.5], 3, 40)[0])\n"  # band-stop: its order search runs fminbound
    )
    lines = out.split("\n")
    assert lines[:4] == ["[]", "[2, 1]", "[-0.210832, 1.057503, 1.98082, 3.019217, 3.942311, 5.211538]", "11 4"], lines
    assert lines[4] == "9"  # as SciPy imported the ordinary way


def test_the_cold_cli_path_imports_neither_stats_nor_pyloudnorm_nor_wordllama():
    out = _run(
        "import sys\n"
        "import imgext.cli, imgext.pipeline\n"
        "print(sorted(m for m in ('scipy.stats', 'pyloudnorm', 'wordllama', 'torch', 'ultralytics', 'scipy.optimize',\n"
        "                         'scipy.interpolate', 'scipy.spatial', 'numpy.testing') if m in sys.modules))\n"
    )
    assert out.strip() == "[]"


def test_scipy_array_api_layer_without_numpys_unused_submodules_and_still_complete():
    out = _run(
        "import sys\n"
        "import numpy as np\n"
        "all_before, dir_before = list(np.__all__), np.__dir__\n"
        "from imgext.audio.dsp import signal\n"
        "print(sorted(m for m in ('numpy.testing', 'numpy.f2py', 'numpy.ma', 'importlib.metadata') if m in sys.modules))\n"
        "assert np.__all__ == all_before and np.__dir__ is dir_before\n"  # NumPy's own listing is back
        "import scipy._lib.array_api_compat.numpy as clone\n"
        "assert clone.testing is sys.modules['numpy.testing'] and clone.ma is np.ma\n"  # handed out on first use
        "assert clone.float32 is np.float32 and clone.linalg.__name__.startswith('scipy._lib')\n"
        "import pytest\n"
        "with pytest.raises(AttributeError):\n"
        "    clone.no_such_name\n"
        "print(float(signal.sosfilt(signal.butter(2, 0.2, output='sos'), np.ones(50))[-1].round(6)))\n"
    )
    assert out.split() == ["[]", "1.0"]


def test_stats_imported_first_is_left_alone():
    out = _run(
        "import scipy.stats\n"
        "from imgext.audio.dsp import signal\n"
        "import scipy.signal._peak_finding as pf\n"
        "print(pf.scoreatpercentile is scipy.stats.scoreatpercentile)\n"
    )
    assert out.strip() == "True"

"""The test signals themselves: band noise has the slope, band and level it is asked for."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal

from tests.stimuli import SR, band_noise


def _slope_db_per_octave(x: np.ndarray, lo_hz: float, hi_hz: float) -> float:
    f, psd = scipy.signal.welch(x, fs=SR, nperseg=8192)
    band = (f >= lo_hz) & (f <= hi_hz)
    return float(np.polyfit(np.log2(f[band]), 10 * np.log10(psd[band]), 1)[0])


@pytest.mark.parametrize("tilt", [-6.0, -3.0, 0.0, 3.0])
def test_band_noise_has_the_requested_slope(rng, tilt):
    """Bug: the exponent was halved, so -6 dB/oct measured -2.9."""
    x = band_noise(rng, 100.0, 12000.0, seconds=8.0, tilt_db_per_oct=tilt)
    assert _slope_db_per_octave(x, 200.0, 6400.0) == pytest.approx(tilt, abs=0.3)


def test_band_noise_is_band_limited_at_the_requested_level(rng):
    x = band_noise(rng, 1000.0, 2000.0, seconds=4.0, rms_db=-20.0)
    f, psd = scipy.signal.welch(x, fs=SR, nperseg=4096)
    inside = psd[(f > 1100) & (f < 1900)].mean()
    outside = psd[(f < 800) | (f > 2300)].max()
    assert 10 * np.log10(inside / outside) > 30  # Welch leakage and the fades limit the measurable depth
    fade = int(0.02 * SR)
    assert 20 * np.log10(np.sqrt(np.mean(x[fade:-fade] ** 2))) == pytest.approx(-20.0, abs=0.3)

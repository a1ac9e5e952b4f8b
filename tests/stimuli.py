"""Synthetic test signals shared by the masking and EQ tests."""

from __future__ import annotations

import numpy as np

SR = 44100


def band_noise(rng, lo_hz, hi_hz, *, seconds=4.0, rms_db=-20.0, sample_rate=SR, tilt_db_per_oct=0.0):
    """Brick-wall band-limited Gaussian noise at a given RMS (dBFS), optionally tilted, with 20 ms fades.

    ``tilt_db_per_oct`` is the slope of the power spectral density in dB per octave
    (-3 = pink, -6 = brown within the band).

    The fades matter: a hard start is a broadband click that other tracks would mask.
    """
    n = int(seconds * sample_rate)
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1.0 / sample_rate)
    # Power spectral density falls by tilt_db_per_oct per octave: amplitude ~ f ** (tilt / (20 log10 2)).
    tilt = (np.maximum(f, 1.0) / lo_hz) ** (tilt_db_per_oct / (20 * np.log10(2))) if tilt_db_per_oct else 1.0
    spec *= np.where((f >= lo_hz) & (f <= hi_hz), tilt, 0.0)
    x = np.fft.irfft(spec, n)
    x *= 10 ** (rms_db / 20) / np.sqrt(np.mean(x**2))
    fade = int(0.02 * sample_rate)
    ramp = np.sin(0.5 * np.pi * np.arange(fade) / fade) ** 2
    x[:fade] *= ramp
    x[-fade:] *= ramp[::-1]
    return x.astype(np.float32)

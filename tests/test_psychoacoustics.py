"""Psychoacoustic building blocks: scales, weightings, spreading, forward masking, activity."""

from __future__ import annotations

import numpy as np
import pyloudnorm
import pytest
import scipy.signal

from imgext.masking import psychoacoustics as pa

SR = 44100


def test_bark_scale_round_trip_and_known_value():
    f = np.array([50.0, 500.0, 1000.0, 4000.0, 15000.0])
    np.testing.assert_allclose(pa.bark_to_hz(pa.hz_to_bark(f)), f, rtol=1e-12)
    assert pa.hz_to_bark(1000.0) == pytest.approx(7.0 * np.arcsinh(1000.0 / 650.0))
    assert np.all(np.diff(pa.hz_to_bark(f)) > 0)


@pytest.mark.parametrize(("sample_rate", "n_bands", "top_hz"), [(44100, 24, 15500.0), (48000, 24, 15500.0),
                                                                 (22050, 23, 11025.0), (16000, 22, 8000.0)])
def test_band_edges_close_at_nyquist_or_15_5_khz(sample_rate, n_bands, top_hz):
    edges = pa.band_edges_hz(sample_rate)
    assert len(edges) == n_bands + 1 and edges[0] == 0.0 and edges[-1] == top_hz
    centres = pa.band_centres_hz(edges)
    assert np.all((centres > edges[:-1]) & (centres < edges[1:]))


def test_ear_weighting_shape():
    w = pa.ear_weighting_db(np.array([50.0, 1000.0, 3500.0, 15000.0]))
    assert w[0] < -10.0  # sub-bass counts little
    assert w[2] == w.max() and w[2] > 3.0  # ear-canal resonance
    assert w[3] < w[1]


def test_hearing_floor_falls_with_frequency_at_the_low_end():
    f = np.array([50.0, 100.0, 500.0, 2000.0])
    assert np.all(np.diff(pa.hearing_floor_db(f)) < 0)
    terhardt_1khz = 3.64 - 6.5 * np.exp(-0.6 * 2.3**2) + 1e-3
    assert pa.hearing_floor_db(1000.0, ear_weighted=False) == pytest.approx(terhardt_1khz, abs=1e-9)


def test_k_weighting_matches_pyloudnorm_filters():
    """The analog prototype agrees with the BS.1770 biquads pyloudnorm measures with (0.3 dB, 60 Hz - 15 kHz)."""
    meter = pyloudnorm.Meter(SR)
    f = np.geomspace(60.0, 15000.0, 40)
    h = np.ones(len(f), dtype=complex)
    for stage in meter._filters.values():
        h *= scipy.signal.freqz(stage.b, stage.a, worN=f, fs=SR)[1] * stage.passband_gain
    np.testing.assert_allclose(pa.k_weighting_db(f), 20 * np.log10(np.abs(h)), atol=0.3)


def test_spreading_matrix_columns_and_slopes():
    centres = pa.band_centres_hz(pa.band_edges_hz(SR))
    s = pa.spreading_matrix(centres)
    np.testing.assert_allclose(s.sum(axis=0), 1.0, rtol=1e-12)
    b = 10  # about 1.2 kHz: a band casts more upwards than downwards (Terhardt)
    assert s[b, b + 2] > s[b, b - 2]


def test_masking_offset_is_peaq():
    centres = np.array([500.0, 1000.0, 5000.0, 12000.0])
    z = pa.hz_to_bark(centres)
    np.testing.assert_allclose(pa.masking_offset_db(centres), np.where(z <= 12, 3.0, 0.25 * z))


def test_forward_masking_decays_with_the_band_time_constant():
    centres = np.array([100.0, 4000.0])
    hop_s = 0.01
    e = np.zeros((1, 2, 20))
    e[0, :, 2] = 1.0
    out = pa.forward_masking(e, centres, hop_s)
    assert np.all(out >= e)
    tau = 0.008 + (100.0 / centres) * 0.022
    a = np.exp(-hop_s / tau)
    np.testing.assert_allclose(out[0, :, 3] / out[0, :, 4], 1.0 / a, rtol=1e-9)
    assert out[0, 0, 5] > out[0, 1, 5]  # low bands hold their masking longer


def test_power_spectrogram_full_scale_sine_is_unit_power():
    t = np.arange(SR) / SR
    x = np.sin(2 * np.pi * 1000.0 * t).astype(np.float32)
    window = scipy.signal.get_window("hann", 2048).astype(np.float32)
    p = pa.power_spectrogram(x, 2048, 1024, window)
    assert p.shape == (1 + SR // 1024, 1025)
    assert p[5:-5].sum(axis=1).mean() == pytest.approx(1.0, rel=0.01)


def test_power_mean_pool_keeps_the_mean_power():
    x = np.arange(10, dtype=np.float32)[None]
    np.testing.assert_allclose(pa.power_mean_pool(x, 4), [[1.5, 5.5, 8.5]])


def test_activity_mask_rules():
    level = np.array([[[0.0, -20.0, -29.0, -31.0, -50.0]]])  # dB re full scale, one track, one band
    floor = np.array([-40.0])
    np.testing.assert_array_equal(pa.activity_mask(level, floor), [[[True, True, True, False, False]]])
    np.testing.assert_array_equal(pa.activity_mask(level, floor, activity_range_db=60.0),
                                  [[[True, True, True, True, False]]])  # the hearing floor still applies
    # The reference is the track's own peak: a quieter track keeps its own range.
    quiet = level - 40.0
    np.testing.assert_array_equal(pa.activity_mask(quiet, np.array([-100.0])), [[[True, True, True, False, False]]])


def test_band_loudness_change_of_a_gain_is_the_gain():
    kp = np.array([[1.0, 3.0, 0.5]])
    assert pa.band_loudness_change_lu(kp, np.full((1, 3), -2.5))[0] == pytest.approx(-2.5)
    cut_empty_band = pa.band_loudness_change_lu(np.array([[1.0, 0.0]]), np.array([[0.0, -6.0]]))
    assert cut_empty_band[0] == pytest.approx(0.0)

"""The master's true-peak limiter: ceiling, loudness target, stems that still sum to the mix (issue 10)."""

from __future__ import annotations

import numpy as np
import pyloudnorm
import pytest
import scipy.signal

from imgext.audio.loudness import integrated_loudness
from imgext.mix.limiter import limiter_gain, sample_true_peaks, true_peak_dbtp
from imgext.mix.render import render_mix
from imgext.sounds.synth import synthesize

SR = 44100


def reference_true_peak_dbtp(audio: np.ndarray) -> float:
    """BS.1770-4 Annex 2 measured independently: 4x oversampling with scipy's polyphase resampler."""
    return float(20 * np.log10(np.max(np.abs(scipy.signal.resample_poly(audio, 4, 1, axis=-1)))))


def lufs(audio: np.ndarray) -> float:
    return float(pyloudnorm.Meter(SR).integrated_loudness(audio.T.astype(np.float64)))


def test_true_peak_meter_sees_the_peak_between_samples():
    t = np.arange(SR) / SR
    x = 0.5 * np.sin(2 * np.pi * (SR / 4) * t + np.pi / 4)[None, :]  # samples at +-0.354, the wave peaks at 0.5
    assert 20 * np.log10(np.abs(x).max()) == pytest.approx(-9.03, abs=0.01)
    assert true_peak_dbtp(x) == pytest.approx(reference_true_peak_dbtp(x), abs=0.01)
    assert true_peak_dbtp(x) > -6.1
    assert true_peak_dbtp(np.zeros((2, 100))) == -np.inf


def test_sparse_meter_agrees_with_the_full_one():
    rng = np.random.default_rng(3)
    x = (0.05 * rng.standard_normal((2, SR))).astype(np.float32)
    x[:, rng.integers(0, SR, 20)] += 0.8
    full = sample_true_peaks(x, threshold=0.0)
    sparse = sample_true_peaks(x, threshold=0.7)
    above = full > 0.7
    assert np.array_equal(full[above], sparse[above]) and np.all(sparse[~above] <= 0.7 + 1e-6) or np.any(above)
    assert sparse.max() == full.max()


@pytest.mark.parametrize("n_spikes", [5, 4000])  # a few candidates (gathered) or many (one correlation per phase)
def test_both_interpolation_paths_agree_with_resample_poly(n_spikes):
    rng = np.random.default_rng(n_spikes)
    x = (0.05 * rng.standard_normal((2, SR))).astype(np.float32)
    x[:, rng.integers(0, SR, n_spikes)] += 0.8
    reference = np.abs(scipy.signal.resample_poly(x, 4, 1, axis=-1)).reshape(2, SR, 4).max(axis=(0, 2))
    ours = sample_true_peaks(x, threshold=0.3)
    checked = ours > 0.3
    assert checked.sum() >= n_spikes
    np.testing.assert_allclose(ours[checked], np.maximum(reference, np.abs(x).max(axis=0))[checked], rtol=2e-3)
    assert true_peak_dbtp(x) == pytest.approx(reference_true_peak_dbtp(x), abs=0.01)


def test_meter_finds_a_peak_right_of_its_loudest_sample():
    """A few loud samples with their peak between them: the candidate bound weighs the sample to the right
    of a point by 0.90 and the one to the left by 0.20 (the points n + k/4 lie right of n); a bound made
    symmetric (0.55 either side) under-read such peaks by up to 1.2 dB (found by the 2-3 sample bursts here)."""
    rng = np.random.default_rng(13)
    worst = 0.0
    for _ in range(300):
        x = np.zeros((1, 64), np.float32)
        k = int(rng.integers(1, 4))
        x[0, 30 : 30 + k] = rng.uniform(0.5, 1.0, k) * rng.choice([-1.0, 1.0], k)
        x[0, 27 : 33 + k] += rng.normal(0.0, 0.2, k + 6).astype(np.float32)
        worst = max(worst, reference_true_peak_dbtp(x) - true_peak_dbtp(x))
        ours = sample_true_peaks(x, threshold=0.9 * 10 ** (reference_true_peak_dbtp(x) / 20))
        assert 20 * np.log10(ours.max()) == pytest.approx(reference_true_peak_dbtp(x), abs=0.01)
    assert worst < 0.01


@pytest.mark.parametrize("sample_rate", [16000, 44100, 48000])
@pytest.mark.parametrize("seconds", [0.3, 2.05, 7.0])
def test_vectorised_loudness_meter_is_pyloudnorm(sample_rate, seconds):
    rng = np.random.default_rng(int(seconds * 100))
    n = int(seconds * sample_rate)
    x = rng.standard_normal((2, n)) * np.linspace(0.0, 0.3, n) ** 2
    x[:, : n // 3] *= 1e-4  # quiet blocks under both gates
    ours = integrated_loudness(x, sample_rate)
    tiled = np.tile(x, (1, 2)) if n < 0.4 * sample_rate + 1 else x
    assert ours == pytest.approx(pyloudnorm.Meter(sample_rate).integrated_loudness(tiled.T), abs=1e-9)


@pytest.mark.parametrize("ceiling", [-1.0, -3.0])
def test_limiter_envelope_holds_the_ceiling_without_clipping(ceiling):
    rng = np.random.default_rng(1)
    x = synthesize("dog_bark", duration_s=6.0, rng=1)[None, :].repeat(2, axis=0) * 4.0  # peaks at +6 dBFS
    x[1] *= 0.5
    env = limiter_gain(x, sample_rate=SR, ceiling_dbtp=ceiling)
    y = x * env[None, :]
    assert reference_true_peak_dbtp(y) <= ceiling + 0.01
    assert env.min() < 0.5 and np.all(env <= 1.0) and np.all(env > 0)
    # Look-ahead and release: the gain moves smoothly (no step larger than 1 dB from one sample to the next).
    assert np.max(np.abs(np.diff(20 * np.log10(env)))) < 1.0
    quiet = np.abs(x).max(axis=0) < 0.05 * np.abs(x).max()
    assert np.mean(env[quiet] > 0.99) > 0.3  # away from the peaks the gain comes back to 1
    del rng


@pytest.mark.parametrize("target", [-16.0, -23.0])
@pytest.mark.parametrize("kinds", [("dog_bark",), ("dog_bark", "bus"), ("phone_ring", "birds", "clock_tick"),
                                   ("ball_bounce",), ("bells", "wind")])
def test_peaky_mixes_meet_loudness_and_true_peak(kinds, target):
    tracks = np.stack([synthesize(k, duration_s=10.0, rng=i) for i, k in enumerate(kinds)])
    n = len(kinds)
    mix = render_mix(tracks, pans=np.linspace(-0.6, 0.6, n), gains_db=np.linspace(0, -6, n), sample_rate=SR,
                     loudness_lufs=target, peak_dbfs=-1.0)
    assert abs(lufs(mix.audio) - target) <= 0.5, mix.loudness_lufs
    assert reference_true_peak_dbtp(mix.audio) <= -1.0
    assert mix.true_peak_dbtp <= -1.0 and not mix.limited_by_peak
    stems = sum(mix.stem(tracks, k).astype(np.float64) for k in range(n))
    assert np.max(np.abs(stems - mix.audio)) <= 1e-6


def test_same_mix_same_bytes():
    tracks = np.stack([synthesize("dog_bark", duration_s=5.0, rng=2), synthesize("rain", duration_s=5.0, rng=2)])
    a = render_mix(tracks, pans=[-0.5, 0.5], gains_db=[0, -3], sample_rate=SR)
    b = render_mix(tracks, pans=[-0.5, 0.5], gains_db=[0, -3], sample_rate=SR)
    assert a.audio.tobytes() == b.audio.tobytes() and a.gain_reduction_db == b.gain_reduction_db

"""Mixing: pan law, loudness target, the peak ceiling, silence and determinism."""

from __future__ import annotations

import numpy as np
import pytest

from imgext.audio.loudness import integrated_loudness
from imgext.errors import ParameterError
from imgext.mix.render import pan_gains, render_mix

SR = 44100


def _noise(rng, seconds=3.0, level=0.1):
    return (level * rng.standard_normal(int(seconds * SR))).astype(np.float32)


def test_pan_law_is_constant_power():
    p = np.linspace(-1, 1, 21)
    g = pan_gains(p)
    np.testing.assert_allclose(g[0] ** 2 + g[1] ** 2, 1.0, atol=1e-12)
    np.testing.assert_allclose(pan_gains(-1.0), [1.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(pan_gains(1.0), [0.0, 1.0], atol=1e-12)
    np.testing.assert_allclose(pan_gains(0.0), [2**-0.5, 2**-0.5], atol=1e-12)
    with pytest.raises(ParameterError):
        pan_gains(1.5)


def test_left_object_is_louder_left_in_stem_and_mix(rng):
    tracks = np.stack([_noise(rng), _noise(rng)])
    mix = render_mix(tracks, pans=[-0.8, 0.0], gains_db=[0.0, -20.0], sample_rate=SR)
    stem = mix.stem(tracks, 0)
    rms = lambda x: float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))  # noqa: E731
    assert rms(stem[0]) > 4 * rms(stem[1])
    assert rms(mix.audio[0]) > 2 * rms(mix.audio[1])
    centre = mix.stem(tracks, 1)
    assert rms(centre[0]) == pytest.approx(rms(centre[1]), rel=1e-6)
    # the stems sum to the mix
    np.testing.assert_allclose(stem + centre, mix.audio, atol=1e-6)


def test_loudness_hits_target(rng):
    tracks = np.stack([_noise(rng, level=0.01), _noise(rng, level=0.02)])
    for target in (-16.0, -23.0):
        mix = render_mix(tracks, pans=[-0.5, 0.5], gains_db=[0, 0], sample_rate=SR, loudness_lufs=target)
        assert not mix.limited_by_peak
        assert mix.loudness_lufs == pytest.approx(target, abs=0.1)
        assert integrated_loudness(mix.audio, SR) == pytest.approx(target, abs=0.1)


def test_ten_loud_sources_never_clip(rng):
    t = np.arange(3 * SR) / SR
    tracks = np.stack([np.sign(np.sin(2 * np.pi * (50 + 7 * k) * t)).astype(np.float32) for k in range(10)])
    mix = render_mix(tracks, pans=np.zeros(10), gains_db=np.full(10, 12.0), sample_rate=SR, loudness_lufs=-6.0)
    assert np.max(np.abs(mix.audio)) <= 10 ** (-1 / 20)
    assert mix.peak_dbfs <= -1.0 and mix.true_peak_dbtp <= -1.0
    # -6 LUFS of square waves under -1 dBTP is out of reach even with deep limiting: missed, and said so.
    assert mix.limited_by_peak and mix.loudness_lufs < -6.0 and mix.gain_reduction_db > 6.0


def test_silence_in_silence_out():
    tracks = np.zeros((3, SR), dtype=np.float32)
    mix = render_mix(tracks, pans=[-1, 0, 1], gains_db=[0, -6, -12], sample_rate=SR)
    assert not np.any(mix.audio) and np.isfinite(mix.audio).all()
    assert mix.loudness_lufs is None and mix.peak_dbfs is None


def test_no_tracks_is_silence():
    mix = render_mix(np.zeros((0, SR), dtype=np.float32), pans=[], gains_db=[], sample_rate=SR)
    assert mix.audio.shape == (2, SR) and not np.any(mix.audio)


def test_short_clip_loudness_is_measured():
    x = (0.1 * np.sin(2 * np.pi * 1000 * np.arange(int(0.2 * SR)) / SR)).astype(np.float32)
    assert np.isfinite(integrated_loudness(x, SR))


def test_same_input_same_bits(rng):
    tracks = np.stack([_noise(rng), _noise(rng)])
    a = render_mix(tracks, pans=[-0.3, 0.7], gains_db=[0, -3], sample_rate=SR)
    b = render_mix(tracks.copy(), pans=[-0.3, 0.7], gains_db=[0, -3], sample_rate=SR)
    assert np.array_equal(a.audio, b.audio)


def test_bad_parameters_are_named(rng):
    tracks = np.stack([_noise(rng)])
    with pytest.raises(ParameterError, match="one pan and one gain"):
        render_mix(tracks, pans=[0, 0], gains_db=[0], sample_rate=SR)
    with pytest.raises(ParameterError, match="loudness_lufs"):
        render_mix(tracks, pans=[0], gains_db=[0], sample_rate=SR, loudness_lufs=5)


@pytest.mark.parametrize("level", [1e-4, 0.01, 0.5])
def test_reported_loudness_equals_a_fresh_measurement(rng, level):
    """The shortcut L + gain is only taken when BS.1770's gating provably does not change."""
    x = _noise(rng, seconds=4.0, level=level)
    x[: SR // 2] *= np.linspace(0, 1, SR // 2, dtype=np.float32) ** 4  # a fade through every level
    mix = render_mix(np.stack([x]), pans=[0.0], gains_db=[0.0], sample_rate=SR, loudness_lufs=-20.0)
    assert mix.loudness_lufs == pytest.approx(integrated_loudness(mix.audio, SR), abs=0.002)
    assert mix.loudness_lufs == pytest.approx(-20.0, abs=0.1)  # even a -80 dBFS source is brought up


def test_sources_are_levelled_before_importance_gains(rng):
    from imgext.audio.loudness import TRACK_REFERENCE_LUFS, level_track

    loud, quiet = _noise(rng, level=0.3), _noise(rng, level=0.003)
    a, la = level_track(loud, SR)
    b, lb = level_track(quiet, SR)
    assert la - lb == pytest.approx(40.0, abs=0.2)  # the sources' own loudness is reported
    assert integrated_loudness(a, SR) == pytest.approx(TRACK_REFERENCE_LUFS, abs=0.05)
    assert integrated_loudness(b, SR) == pytest.approx(TRACK_REFERENCE_LUFS, abs=0.05)
    silent, l0 = level_track(np.zeros(SR, dtype=np.float32), SR)
    assert l0 is None and not np.any(silent)

"""Tests for :mod:`imgext.sounds.synth`, the built-in procedural sound source.

Contract tests run over every kind; physical tests check that a few kinds
sound like what they claim (spectral centroid, noise-likeness, level swells,
walking tempo).  Renders are short and cached per module, so the file stays fast.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import ndimage, signal

from imgext.errors import ParameterError
from imgext.sounds.synth import SYNTH_KINDS, describe, synthesize
from tests.quick import QUICK

SR = 44100
KINDS = SYNTH_KINDS[::4] if QUICK else SYNTH_KINDS
"""The kinds the per-kind tests render: every one in the full suite, every fourth in the fast loop."""
DURATION_S = 2.0  # several events of most kinds, and fast

EXPECTED_KINDS = {
    "engine_idle", "car_passing", "motorcycle", "truck", "bus", "train", "airplane", "boat", "bicycle", "birds",
    "footsteps", "voices", "water", "ocean", "wind", "rain", "bells", "clock_tick", "keyboard_typing", "mouse_clicks",
    "phone_ring", "tv", "dog_bark", "cat_meow", "horse_neigh", "sheep_bleat", "cow_moo", "elephant_trumpet",
    "bear_growl", "zebra_bark", "giraffe_hum", "animal_call", "crockery", "pouring", "ball_bounce", "racket_hit",
    "skateboard", "whoosh", "appliance_hum", "beeps", "toaster", "sink", "toilet_flush", "hair_drier", "toothbrush",
    "scissors", "ambience", "amb_street", "amb_park", "amb_countryside", "amb_room", "amb_cafe", "amb_harbour",
    "amb_open_air",
}  # fmt: skip


@pytest.fixture(scope="module")
def render():
    """``render(kind, seed, duration_s)`` with a per-module cache: most tests reuse the same clips."""
    cache: dict[tuple, np.ndarray] = {}

    def get(kind: str, seed: int = 0, duration_s: float = DURATION_S) -> np.ndarray:
        key = (kind, seed, duration_s)
        if key not in cache:
            cache[key] = synthesize(kind, duration_s=duration_s, rng=seed)
        return cache[key]

    return get


def rms(y: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(y, dtype=np.float64))))


def psd(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Welch power spectrum, 4096-point frames (10.8 Hz bins at 44.1 kHz)."""
    return signal.welch(y.astype(np.float64), SR, nperseg=4096)


def centroid_hz(y: np.ndarray) -> float:
    f, p = psd(y)
    return float(np.sum(f * p) / np.sum(p))


def local_flatness(y: np.ndarray, low_hz: float = 100.0, high_hz: float = 5000.0) -> float:
    """Spectral flatness (geometric / arithmetic mean) of the spectrum relative to its own ~1/3-octave median.

    Dividing by the smoothed spectrum removes the overall tilt, so low-passed noise (wind) still
    scores near 1, while partials and harmonics (bells, rings) stand far above their neighbours
    and pull the score towards 0.
    """
    f, p = psd(y)
    ratio = (p / ndimage.median_filter(p, size=31, mode="nearest"))[(f >= low_hz) & (f <= high_hz)]
    return float(np.exp(np.mean(np.log(ratio + 1e-30))) / np.mean(ratio))


def band_profile_db(y: np.ndarray) -> np.ndarray:
    """Share of power in third-octave bands from 100 Hz to 12.7 kHz, dB, floored at -60."""
    f, p = psd(y)
    edges = 100.0 * 2.0 ** (np.arange(22) / 3)
    bands = np.array([p[(f >= a) & (f < b)].sum() for a, b in itertools.pairwise(edges)])
    return np.clip(10 * np.log10(bands / bands.sum() + 1e-12), -60.0, 0.0)


def frame_db(y: np.ndarray, frame_s: float = 0.05) -> np.ndarray:
    """Level of consecutive frames in dB re full scale, floored at -100."""
    m = int(frame_s * SR)
    frames = y[: len(y) // m * m].astype(np.float64).reshape(-1, m)
    return 10 * np.log10(np.mean(frames**2, axis=1) + 1e-10)


# ---------------------------------------------------------------- the catalogue


def test_kinds_are_sorted_unique_and_complete():
    assert SYNTH_KINDS == tuple(sorted(set(SYNTH_KINDS)))
    assert set(SYNTH_KINDS) == EXPECTED_KINDS


@pytest.mark.parametrize("kind", SYNTH_KINDS)
def test_describe_is_one_short_sentence(kind):
    text = describe(kind)
    assert text.startswith("synthetic ") and text.endswith(" (built-in, procedural)")
    assert "\n" not in text and len(text) < 100


def test_describe_example():
    assert describe("car_passing") == "synthetic car engine passing by (built-in, procedural)"


# ---------------------------------------------------------------- output contract


@pytest.mark.parametrize("kind", KINDS)
def test_output_contract(kind, render):
    y = render(kind)
    assert y.shape == (round(DURATION_S * SR),)
    assert y.dtype == np.float32
    assert np.isfinite(y).all()
    assert abs(float(np.max(np.abs(y))) - 0.5) <= 1e-6
    assert rms(y) > 1e-3


@pytest.mark.parametrize("kind", KINDS)
def test_same_seed_is_bit_identical(kind, render):
    again = synthesize(kind, duration_s=DURATION_S, rng=0)
    assert np.array_equal(render(kind), again)
    assert np.array_equal(again, synthesize(kind, duration_s=DURATION_S, rng=np.random.default_rng(0)))


@pytest.mark.parametrize("kind", KINDS)
def test_seeds_give_different_variants(kind, render):
    """Every pair of seeds 0..3 differs in timbre (band profile) or in timing (level envelope)."""
    assert not np.array_equal(render(kind, 0), render(kind, 1))
    for a, b in itertools.combinations(range(4), 2):
        ya, yb = render(kind, a), render(kind, b)
        timbre_db = np.mean(np.abs(band_profile_db(ya) - band_profile_db(yb)))
        ea, eb = np.maximum(frame_db(ya), -60.0), np.maximum(frame_db(yb), -60.0)
        same_timing = np.std(ea) > 0 and np.std(eb) > 0 and np.corrcoef(ea, eb)[0, 1] > 0.8
        assert timbre_db > 0.3 or not same_timing, (a, b, timbre_db)


@pytest.mark.parametrize("kind", KINDS)
def test_short_clip_is_not_silent(kind):
    for seed in range(3):
        y = synthesize(kind, duration_s=0.3, rng=seed)
        assert y.shape == (round(0.3 * SR),)
        assert abs(float(np.max(np.abs(y))) - 0.5) <= 1e-6
        assert rms(y) > 1e-3, seed


@pytest.mark.parametrize("sample_rate", [8000, 22050, 48000])
@pytest.mark.parametrize("kind", ["birds", "voices", "rain", "car_passing", "crockery", "cow_moo"])
def test_other_sample_rates(kind, sample_rate):
    y = synthesize(kind, duration_s=1.0, sample_rate=sample_rate, rng=2)
    assert y.shape == (sample_rate,) and y.dtype == np.float32
    assert np.isfinite(y).all() and abs(float(np.max(np.abs(y))) - 0.5) <= 1e-6


def test_longest_duration_is_accepted():
    y = synthesize("beeps", duration_s=600, sample_rate=8000, rng=0)
    assert y.shape == (600 * 8000,)


# ---------------------------------------------------------------- errors


def test_unknown_kind_suggests_close_names():
    with pytest.raises(ParameterError, match=r"unknown synth kind 'brids'.*'birds'"):
        synthesize("brids", duration_s=1.0)
    with pytest.raises(ParameterError, match="'car_passing'"):
        describe("car_pasing")


def test_unknown_kind_without_close_match_lists_kinds():
    with pytest.raises(ParameterError, match="known kinds: airplane, amb_cafe"):
        synthesize("xylophone", duration_s=1.0)


def test_parameter_error_is_a_value_error():
    with pytest.raises(ValueError):
        synthesize("nope", duration_s=1.0)


@pytest.mark.parametrize("duration_s", [0, -1.0, 600.001, float("nan"), float("inf"), "3", None, True])
def test_bad_durations_raise(duration_s):
    with pytest.raises(ParameterError, match="duration_s"):
        synthesize("rain", duration_s=duration_s)


@pytest.mark.parametrize("sample_rate", [0, 7999, 44100.0, True])
def test_bad_sample_rates_raise(sample_rate):
    with pytest.raises(ParameterError, match="sample_rate"):
        synthesize("rain", duration_s=1.0, sample_rate=sample_rate)


# ---------------------------------------------------------------- physics


def test_low_sources_have_low_centroids(render):
    """Engines and cows sit in the low mids; birdsong and clinking crockery are bright."""
    low = {kind: np.mean([centroid_hz(render(kind, s, 5.0)) for s in range(3)]) for kind in ("engine_idle", "cow_moo")}
    high = {kind: np.mean([centroid_hz(render(kind, s, 5.0)) for s in range(3)]) for kind in ("birds", "crockery")}
    assert max(low.values()) < 800.0
    assert min(high.values()) > 2000.0
    assert 3 * max(low.values()) < min(high.values()), (low, high)


@pytest.mark.parametrize("kind", ["rain", "wind", "ocean", "water"])
def test_noises_are_noise_like(kind, render):
    for seed in range(3):
        assert local_flatness(render(kind, seed, 5.0)) > 0.8, seed


@pytest.mark.parametrize("kind", ["bells", "phone_ring", "beeps", "crockery"])
def test_tonal_sources_are_peaky(kind, render):
    for seed in range(3):
        assert local_flatness(render(kind, seed, 5.0)) < 0.45, seed


def test_car_passes_rise_and_fall(render):
    """Passing cars: the level swells by well over 10 dB as each car comes close and recedes."""
    for seed in range(3):
        level = frame_db(render("car_passing", seed, 20.0), frame_s=0.5)
        assert level.max() - level.min() > 12.0, seed


def pitch_ratio_through_pass(y: np.ndarray) -> float:
    """Frequency ratio (after / before) of the spectrum 0.7-2.5 s either side of the loudest moment.

    Found as the shift that best aligns the two log-spectra on a log-frequency axis (40-500 Hz, where
    the engine harmonics are): below 1 when the pitch falls.
    """
    level = ndimage.uniform_filter1d(y.astype(np.float64) ** 2, 4410)[::441]
    i = (int(np.argmax(level[250:-250])) + 250) * 441  # at least 2.5 s from either edge
    f, before = signal.welch(y[i - int(2.5 * SR) : i - int(0.7 * SR)].astype(np.float64), SR, nperseg=32768)
    _, after = signal.welch(y[i + int(0.7 * SR) : i + int(2.5 * SR)].astype(np.float64), SR, nperseg=32768)
    grid = np.geomspace(40.0, 500.0, 800)
    lb, la = np.log(np.interp(grid, f, before)), np.log(np.interp(grid, f, after))
    lb, la = lb - lb.mean(), la - la.mean()
    shifts = np.arange(-60, 61)
    score = [np.mean(lb[max(0, -d) : len(lb) - max(0, d)] * la[max(0, d) : len(la) - max(0, -d)]) for d in shifts]
    return float((grid[1] / grid[0]) ** shifts[int(np.argmax(score))])


def test_car_pass_glides_down_in_pitch(render):
    """Doppler: a car at 12-28 m/s sounds 7-17 % higher coming than going; an idling engine does not glide."""
    for seed in range(3):
        assert pitch_ratio_through_pass(render("car_passing", seed, 20.0)) < 0.96, seed
        assert 0.95 < pitch_ratio_through_pass(render("engine_idle", seed, 20.0)) < 1.05, seed


def test_footsteps_walk_at_walking_tempo(render):
    """The level envelope repeats every step: 0.45-0.65 s, about 90-130 steps a minute."""
    for seed in range(3):
        env = 10 ** (frame_db(render("footsteps", seed, 10.0), frame_s=0.01) / 20)
        env = env - env.mean()
        ac = np.correlate(env, env, "full")[len(env) - 1 :]
        lag_s = (30 + np.argmax(ac[30:100])) * 0.01  # search 0.3-1.0 s
        assert 0.4 <= lag_s <= 0.7, (seed, lag_s)


def test_phone_ring_has_a_cadence(render):
    """Rings alternate with pauses: at least a fifth of the time is 30 dB below the peak."""
    for seed in range(6):
        level = frame_db(render("phone_ring", seed, 10.0))
        assert np.mean(level < level.max() - 30.0) > 0.2, seed


def test_voices_sit_in_the_speech_band(render):
    f, p = psd(render("voices", 0, 5.0))
    assert p[(f >= 100) & (f <= 4000)].sum() > 0.9 * p.sum()

"""Masking analysis: units, directionality, silence, gain caching, role swaps, JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest

from imgext.errors import ParameterError
from imgext.masking import analysis as masking
from tests.stimuli import band_noise

SR = 44100


def test_band_energies_shapes_and_dtype(rng):
    tracks = np.stack([band_noise(rng, 300, 600), band_noise(rng, 2000, 4000)])
    bands = masking.band_energies(tracks, SR, pool_s=0.25)
    assert bands.energy.shape == (2, 24, bands.energy.shape[2])
    assert bands.energy.dtype == np.float32 and bands.masker_energy.dtype == np.float32
    assert bands.band_edges_hz.shape == (25,) and bands.band_centres_hz.shape == (24,)
    assert bands.frame_s == pytest.approx(0.25, abs=0.03)
    assert bands.energy.shape[2] == pytest.approx(4.0 / bands.frame_s, abs=1.5)
    assert np.all(bands.masker_energy >= bands.energy * 0.999)  # forward masking only adds


@pytest.mark.parametrize("sample_rate", [22050, 44100, 48000])
def test_full_scale_sine_is_unit_band_power(sample_rate):
    t = np.arange(2 * sample_rate) / sample_rate
    sine = np.sin(2 * np.pi * 1000.0 * t).astype(np.float32)
    bands = masking.band_energies(sine[None], sample_rate, ear_weighting=False)
    level_db = 10 * np.log10(bands.energy[0, :, 2:-2].sum(axis=0).mean())
    assert level_db == pytest.approx(0.0, abs=0.2)
    assert bands.band_edges_hz[-1] <= sample_rate / 2


def test_directional_masking_same_band(rng):
    loud, quiet = band_noise(rng, 300, 600, rms_db=-10), band_noise(rng, 300, 600, rms_db=-30)
    bands = masking.band_energies(np.stack([loud, quiet]), SR)
    report = masking.masking_report(bands, gains_db=np.zeros(2), importance=np.array([0.5, 0.5]))
    assert report.matrix_db[0, 1] > 12.0  # 20 dB below, minus the 3 dB PEAQ offset, minus edges
    # ~0: only the loud noise's window-leakage skirt (-44 dB, just above its cutoff) sits
    # under the quiet one's upward spread, with little loudness weight.
    assert report.matrix_db[1, 0] < 0.5
    assert report.worst_pair[:2] == (0, 1)
    assert report.masked_fraction[1] > 0.9 and report.masked_fraction[0] < 0.05
    np.testing.assert_array_equal(np.diag(report.matrix_db), 0.0)


def test_distant_bands_do_not_mask(rng):
    tracks = np.stack([band_noise(rng, 200, 400), band_noise(rng, 5000, 7000)])
    report = masking.masking_report(masking.band_energies(tracks, SR), gains_db=np.zeros(2), importance=np.ones(2))
    assert report.matrix_db.max() < 0.5


def test_upward_spread_is_stronger_than_downward(rng):
    low, high = band_noise(rng, 800, 1000, rms_db=-10), band_noise(rng, 1480, 1720, rms_db=-40)
    bands = masking.band_energies(np.stack([low, high]), SR)
    up = masking.masking_report(bands, gains_db=np.zeros(2), importance=np.ones(2)).matrix_db[0, 1]
    bands_rev = masking.band_energies(np.stack([band_noise(rng, 1480, 1720, rms_db=-10),
                                                band_noise(rng, 800, 1000, rms_db=-40)]), SR)
    down = masking.masking_report(bands_rev, gains_db=np.zeros(2), importance=np.ones(2)).matrix_db[0, 1]
    assert up > down


@pytest.mark.parametrize("n_tracks", [1, 2, 3])
def test_silence_gives_zeros_not_nan(n_tracks):
    bands = masking.band_energies(np.zeros((n_tracks, SR), dtype=np.float32), SR)
    report = masking.masking_report(bands, gains_db=np.zeros(n_tracks), importance=np.ones(n_tracks))
    for arr in (report.matrix_db, report.by_rest_db, report.masked_fraction, report.role_swap_rate):
        assert np.all(np.isfinite(arr)) and np.all(arr == 0)
    assert report.worst_pair is None and report.total_db == 0.0 and report.imbalance_db == 0.0


def test_one_silent_track_among_others(rng):
    tracks = np.stack([band_noise(rng, 300, 600), np.zeros(4 * SR, np.float32)])
    report = masking.masking_report(masking.band_energies(tracks, SR), gains_db=np.zeros(2), importance=np.ones(2))
    assert np.all(np.isfinite(report.matrix_db)) and report.by_rest_db[1] == 0.0


def test_gains_on_cached_analysis_equal_gained_audio(rng):
    tracks = np.stack([band_noise(rng, 300, 1500, rms_db=-15), band_noise(rng, 600, 3000, rms_db=-15)])
    gains = np.array([0.0, -9.0])
    cached = masking.masking_report(masking.band_energies(tracks, SR), gains_db=gains, importance=np.ones(2))
    gained = tracks * (10 ** (gains / 20))[:, None].astype(np.float32)
    direct = masking.masking_report(masking.band_energies(gained, SR), gains_db=np.zeros(2), importance=np.ones(2))
    np.testing.assert_allclose(cached.matrix_db, direct.matrix_db, atol=1e-3)
    np.testing.assert_allclose(cached.masked_fraction, direct.masked_fraction, atol=1e-3)


def test_eq_db_lowers_a_masker_in_band_domain(rng):
    tracks = np.stack([band_noise(rng, 300, 600, rms_db=-10), band_noise(rng, 300, 600, rms_db=-25)])
    bands = masking.band_energies(tracks, SR)
    eq_db = np.zeros((2, bands.n_bands))
    eq_db[0] = -6.0
    before = masking.masking_report(bands, gains_db=np.zeros(2), importance=np.ones(2))
    after = masking.masking_report(bands, gains_db=np.zeros(2), importance=np.ones(2), eq_db=eq_db)
    assert before.matrix_db[0, 1] - after.matrix_db[0, 1] == pytest.approx(6.0, abs=0.3)


def test_role_swap_alternating_pair(rng):
    n = 12 * SR
    a, b = band_noise(rng, 400, 1200, seconds=12), band_noise(rng, 400, 1200, seconds=12)
    slow = (np.arange(n) // (2 * SR)) % 2  # 2 s turns
    env_a = np.where(slow == 0, 1.0, 0.1).astype(np.float32)
    env_b = np.where(slow == 0, 0.1, 1.0).astype(np.float32)
    bands = masking.band_energies(np.stack([a * env_a, b * env_b]), SR)
    rate = masking.masking_report(bands, gains_db=np.zeros(2), importance=np.ones(2)).role_swap_rate
    assert rate[0, 1] == rate[1, 0]
    assert rate[0, 1] > 0.3
    steady = masking.band_energies(np.stack([a, b * 0.1]), SR)
    assert masking.masking_report(steady, gains_db=np.zeros(2), importance=np.ones(2)).role_swap_rate[0, 1] == 0.0


def test_report_to_dict_is_json_ready(rng):
    tracks = np.stack([band_noise(rng, 300, 600, rms_db=-10), band_noise(rng, 300, 600, rms_db=-30)])
    report = masking.masking_report(masking.band_energies(tracks, SR), gains_db=np.zeros(2), importance=np.ones(2))
    d = json.loads(json.dumps(report.to_dict(["dog", "cat"])))
    assert d["matrix_db"]["maskers"] == ["dog", "cat"] and d["matrix_db"]["maskees"] == ["dog", "cat"]
    assert d["worst_pair"]["masker"] == "dog" and d["worst_pair"]["maskee"] == "cat"
    with pytest.raises(ParameterError, match="names"):
        report.to_dict(["only one"])


def test_loudness_change_of_a_gain_is_the_gain(rng):
    bands = masking.band_energies(band_noise(rng, 100, 8000)[None], SR)
    shift = np.full((1, bands.n_bands), -3.0)
    assert masking.loudness_change_lu(bands, shift)[0] == pytest.approx(-3.0, abs=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"gains_db": np.zeros(3), "importance": np.ones(2)}, "gains_db"),
     ({"gains_db": np.zeros(2), "importance": np.array([0.5, 1.5])}, "importance"),
     ({"gains_db": np.zeros(2), "importance": np.ones(2), "eq_db": np.zeros((2, 3))}, "eq_db")],
)
def test_bad_parameters_raise(rng, kwargs, match):
    bands = masking.band_energies(np.stack([band_noise(rng, 300, 600, seconds=1)] * 2), SR)
    with pytest.raises(ParameterError, match=match):
        masking.masking_report(bands, **kwargs)


@pytest.mark.parametrize("bad", [np.full((2, 100), np.nan, np.float32), np.zeros((2, 2, 2), np.float32)])
def test_bad_audio_raises(bad):
    with pytest.raises(ParameterError):
        masking.band_energies(bad, SR)


def tone_over_noise_floor(rng, *, seconds=4.0, floor_db=-40.0):
    """A 1 kHz tone at -10 dBFS over white hiss ``floor_db`` below it in all: -45 to -52 dB per critical band."""
    n = int(seconds * SR)
    tone = 10 ** (-10 / 20) * np.sqrt(2) * np.sin(2 * np.pi * 1000.0 * np.arange(n) / SR)
    hiss = rng.standard_normal(n) * 10 ** ((-10 + floor_db) / 20)
    return (tone + hiss).astype(np.float32)


def test_noise_floor_under_a_loud_tone_is_not_active(rng):
    """A noise floor 45-52 dB under the tone's band is not "the track" (beyond the 40 dB global guard)."""
    x = tone_over_noise_floor(rng, floor_db=-50.0)
    bands = masking.band_energies(x[None], SR)
    d = masking.masking_detail(bands, gains_db=np.zeros(1))
    tone_band = int(np.searchsorted(bands.band_edges_hz, 1000.0) - 1)
    assert d.active[0, tone_band, 2:-2].all()
    others = np.abs(np.arange(bands.n_bands) - tone_band) > 1  # the window's skirt reaches the neighbours
    assert not d.active[0, others, 2:-2].any()  # (the first and last frames hold the tone's unfaded onset click)


def test_quiet_real_band_is_active_per_band(rng):
    """Activity is per band (SII): a second partial 35 dB under the loudest one still counts while it sounds.

    Changed deliberately (issue 13): the former rule (30 dB under the track's single loudest band-frame)
    dropped it, so only the loudest band's masking was measured.
    """
    n = int(4.0 * SR)
    t = np.arange(n) / SR
    x = (0.3 * np.sin(2 * np.pi * 500.0 * t) + 0.3 * 10 ** (-35 / 20) * np.sin(2 * np.pi * 4000.0 * t)).astype(np.float32)
    bands = masking.band_energies(x[None], SR)
    d = masking.masking_detail(bands, gains_db=np.zeros(1))
    high = int(np.searchsorted(bands.band_edges_hz, 4000.0) - 1)
    assert d.active[0, high, 2:-2].all()


def test_noise_floor_does_not_inflate_the_masked_fraction(rng):
    """A broadband bed 30 dB under the tone covers only the hiss, which is outside the tone's activity."""
    x = tone_over_noise_floor(rng, floor_db=-50.0)
    bed = band_noise(rng, 50, 15000, rms_db=-40.0)
    bands = masking.band_energies(np.stack([x, bed]), SR)
    kw = {"gains_db": np.zeros(2), "importance": np.array([1.0, 0.5])}
    report = masking.masking_report(bands, **kw)
    assert report.masked_fraction[0] < 0.02
    assert report.core_masked_fraction[0] < 0.02


def test_activity_follows_the_mix_gain():
    """Activity is relative to the track's own peak, so a gain moves nothing in or out of it."""
    rng = np.random.default_rng(3)
    bands = masking.band_energies(band_noise(rng, 200, 8000, rms_db=-20.0)[None], SR)
    a = masking.masking_detail(bands, gains_db=np.zeros(1)).active
    np.testing.assert_array_equal(a, masking.masking_detail(bands, gains_db=np.full(1, -12.0)).active)


@pytest.mark.parametrize(("importance", "expected"), [
    ([1.0, 0.5, 0.4], [[0, 0, 0], [1, 0, 1], [1, 1, 0]]),
    ([1.0, 0.95, 0.5], [[0, 1, 0], [1, 0, 0], [1, 1, 0]]),
])
def test_problem_pairs(importance, expected):
    """Masker i -> maskee j is problematic when p_i <= p_j + 0.1 (rows maskers, columns maskees)."""
    np.testing.assert_array_equal(masking.problem_pairs(np.array(importance)), np.array(expected, bool))


def three_track_scene(rng):
    """A loud important foreground over a minor track (intended masking), and a quieter minor track over it too."""
    return np.stack([band_noise(rng, 300, 600, rms_db=-10), band_noise(rng, 300, 1200, rms_db=-30),
                     band_noise(rng, 700, 1200, rms_db=-20)])


def test_worst_problem_pair_excludes_intended_masking(rng):
    bands = masking.band_energies(three_track_scene(rng), SR)
    report = masking.masking_report(bands, gains_db=np.zeros(3), importance=np.array([1.0, 0.5, 0.4]))
    assert report.worst_pair[:2] == (0, 1)  # the foreground covers the minor track most: intended
    assert report.worst_problem_pair[:2] == (2, 1)  # a masker no more important than its maskee
    assert report.worst_problem_pair[2] == pytest.approx(report.matrix_db[2, 1])
    assert 0 < report.worst_problem_pair[2] < report.worst_pair[2]
    assert report.problematic[2, 1] and not report.problematic[0, 1]
    d = json.loads(json.dumps(report.to_dict(["dog", "cat", "frog"])))
    expected = {"masker": "frog", "maskee": "cat", "masking_db": pytest.approx(report.matrix_db[2, 1])}
    assert d["worst_problem_pair"] == expected
    assert d["worst_pair"]["masker"] == "dog" and d["problematic"]["values"][2][1] is True
    assert d["activity_range_db"] == masking.ACTIVITY_RANGE_DB


def test_no_problematic_masking_gives_none(rng):
    loud, quiet = band_noise(rng, 300, 600, rms_db=-10), band_noise(rng, 300, 600, rms_db=-30)
    bands = masking.band_energies(np.stack([loud, quiet]), SR)
    report = masking.masking_report(bands, gains_db=np.zeros(2), importance=np.array([1.0, 0.3]))
    assert report.worst_pair[:2] == (0, 1) and report.worst_problem_pair is None
    assert report.to_dict(["a", "b"])["worst_problem_pair"] is None

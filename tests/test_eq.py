"""Adaptive EQ: RBJ physics, known answers, never a boost, estimate vs rendered audio."""

from __future__ import annotations

import numpy as np
import pyloudnorm
import pytest
import scipy.signal

from imgext.engine import eq
from imgext.errors import ParameterError
from imgext.masking import analysis as masking
from tests.stimuli import band_noise

SR = 44100


def response_db(sos, freqs_hz, sample_rate):
    _, h = scipy.signal.sosfreqz(sos, worN=np.atleast_1d(freqs_hz), fs=sample_rate)
    return 20 * np.log10(np.abs(h))


@pytest.mark.parametrize("sample_rate", [22050, 44100, 48000])
@pytest.mark.parametrize("gain_db", [-12.0, -6.0, -1.0, 3.0, 6.0])
@pytest.mark.parametrize("frequency_hz", [100.0, 1000.0, 5000.0])
def test_peak_filter_physics(sample_rate, gain_db, frequency_hz):
    sos = eq.rbj_sos("peak", frequency_hz=frequency_hz, gain_db=gain_db, q=2.0, sample_rate=sample_rate)
    assert sos.shape == (1, 6)
    assert response_db(sos, frequency_hz, sample_rate)[0] == pytest.approx(gain_db, abs=0.1)
    far = [frequency_hz / 20, min(frequency_hz * 20, 0.45 * sample_rate)]
    if far[1] > frequency_hz * 4:
        assert np.all(np.abs(response_db(sos, far, sample_rate)) < 0.2)


@pytest.mark.parametrize("sample_rate", [22050, 44100, 48000])
@pytest.mark.parametrize("gain_db", [-12.0, -6.0, -1.0, 6.0])
@pytest.mark.parametrize("kind", ["low_shelf", "high_shelf"])
def test_shelf_filter_physics(sample_rate, gain_db, kind):
    f0 = 1000.0
    sos = eq.rbj_sos(kind, frequency_hz=f0, gain_db=gain_db, q=eq.SHELF_Q, sample_rate=sample_rate)
    assert response_db(sos, f0, sample_rate)[0] == pytest.approx(gain_db / 2, abs=0.1)
    low, high = response_db(sos, [f0 / 30, min(f0 * 8, 0.4 * sample_rate)], sample_rate)
    shelf, flat = (low, high) if kind == "low_shelf" else (high, low)
    assert shelf == pytest.approx(gain_db, abs=0.3)
    assert flat == pytest.approx(0.0, abs=0.3)


def test_eq_filter_rejects_boosts_and_bad_kinds():
    with pytest.raises(ParameterError, match="never boosts"):
        eq.EqFilter("peak", 1000.0, 3.0, 1.0, 0, 1)
    with pytest.raises(ParameterError, match="kind"):
        eq.EqFilter("notch", 1000.0, -3.0, 1.0, 0, 1)
    with pytest.raises(ParameterError, match="frequency_hz"):
        eq.rbj_sos("peak", frequency_hz=30000.0, gain_db=-3.0, q=1.0, sample_rate=SR)
    f = eq.EqFilter("low_shelf", 120.0, -4.0, eq.SHELF_Q, 0, 1)
    assert f.kind is eq.FilterKind.LOW_SHELF
    assert f.to_dict(["rumble", "dog"]) == {"kind": "low_shelf", "frequency_hz": 120.0, "gain_db": -4.0,
                                            "q": pytest.approx(eq.SHELF_Q), "masker": "rumble", "maskee": "dog"}


def overlap_scene(rng):
    """Important target 1080-2000 Hz under a louder, tilted masker 300-1270 Hz: they share band 1080-1270."""
    target = band_noise(rng, 1080, 2000, rms_db=-30)
    # -6 dB/oct: the slope this scene was designed with (stimuli.band_noise gave half the asked slope until it was fixed)
    masker = band_noise(rng, 300, 1270, rms_db=-12, tilt_db_per_oct=-6.0)  # loudest (essential) bands low
    return np.stack([target, masker])


def test_cut_lands_in_the_overlap_band_on_the_less_important_track(rng):
    tracks = overlap_scene(rng)
    bands = masking.band_energies(tracks, SR)
    filters = eq.design_eq(bands, gains_db=np.zeros(2), importance=np.array([1.0, 0.3]))
    assert filters[0] == []  # the important track is never cut for a less important one
    assert len(filters[1]) >= 1
    for f in filters[1]:
        # The overlap band, the band below it whose upward spread reaches the target, or the band above it
        # (1270-1480 Hz) where the masker's band-limit skirt still lies on the target (the curve asks ~4.5 dB).
        assert 700.0 <= f.frequency_hz <= 1480.0 and f.gain_db < -0.5
        assert (f.masker, f.maskee) == (1, 0)
    h = eq.band_response_db(filters[1], bands)
    overlap = int(np.searchsorted(bands.band_edges_hz, 1150.0) - 1)
    assert h[overlap] < -3.0
    assert np.argmin(h) in (overlap - 2, overlap - 1, overlap)
    centres = bands.band_centres_hz
    assert np.all(h[(centres < 400) | (centres > 3000)] > -0.5)  # the masker's lows and the highs are spared


def test_reversed_importance_moves_no_cut_onto_the_important_masker(rng):
    bands = masking.band_energies(overlap_scene(rng), SR)
    filters = eq.design_eq(bands, gains_db=np.zeros(2), importance=np.array([0.3, 1.0]))
    assert filters[1] == []


def test_no_overlap_no_filter(rng):
    tracks = np.stack([band_noise(rng, 200, 400), band_noise(rng, 4000, 6000)])
    bands = masking.band_energies(tracks, SR)
    assert eq.design_eq(bands, gains_db=np.zeros(2), importance=np.array([1.0, 0.2])) == [[], []]


def test_strength_zero_is_identity(rng):
    tracks = overlap_scene(rng)
    bands = masking.band_energies(tracks, SR)
    filters = eq.design_eq(bands, gains_db=np.zeros(2), importance=np.array([1.0, 0.3]), strength=0.0)
    assert filters == [[], []]
    np.testing.assert_array_equal(eq.apply_eq(tracks, filters, SR), tracks)


def test_tracks_without_filters_are_unchanged(rng):
    tracks = overlap_scene(rng)
    filters = [[], [eq.EqFilter("peak", 1150.0, -6.0, 4.0, 1, 0)]]
    out = eq.apply_eq(tracks, filters, SR)
    np.testing.assert_array_equal(out[0], tracks[0])
    assert not np.array_equal(out[1], tracks[1])


@pytest.mark.parametrize("strength", [0.25, 0.5, 1.0])
@pytest.mark.parametrize("max_cut_db", [3.0, 6.0])
def test_never_a_boost_and_cuts_bounded(rng, strength, max_cut_db):
    tracks = np.stack([band_noise(rng, 300, 3000, rms_db=-15), band_noise(rng, 500, 5000, rms_db=-12),
                       band_noise(rng, 150, 1500, rms_db=-10, tilt_db_per_oct=-3.0)])
    bands = masking.band_energies(tracks, SR)
    imp = np.array([1.0, 0.5, 0.5])
    filters = eq.design_eq(bands, gains_db=np.array([0.0, -4.0, -4.0]), importance=imp, strength=strength,
                           max_cut_db=max_cut_db)
    gains = [f.gain_db for track in filters for f in track]
    assert gains and all(-max_cut_db - 1e-9 <= g < 0 for g in gains)
    assert eq.eq_response_db(filters, bands).max() <= 1e-6


@pytest.mark.parametrize("fraction", [0.0, 0.5])
def test_essential_bands_are_cut_at_most_the_allowed_fraction(rng, fraction):
    tracks = np.stack([band_noise(rng, 300, 3000, rms_db=-20), band_noise(rng, 150, 2500, rms_db=-8)])
    bands = masking.band_energies(tracks, SR)
    kw = {"gains_db": np.zeros(2), "importance": np.array([1.0, 0.2]), "essential_cut_fraction": fraction}
    curve = eq.cut_curve_db(bands, **kw)
    assert curve.essential[1].sum() == 3
    assert curve.cut_db[curve.essential].max() <= fraction * eq.DEFAULT_MAX_CUT_DB + 1e-9
    assert curve.cut_db[0].max() == 0.0 and curve.cut_db[1].max() > 1.0
    h = eq.band_response_db(eq.design_eq(bands, **kw)[1], bands)
    assert h[curve.essential[1]].min() > -(fraction * eq.DEFAULT_MAX_CUT_DB + 1.5)  # filter skirts spill a little


def test_cut_curve_gradient_is_exact(rng):
    """The design cost's analytic gradient matches central differences (float32 cost, 3e-3 dB steps)."""
    tracks = np.stack([band_noise(rng, 800, 2500, rms_db=-22, seconds=2.0),
                       band_noise(rng, 300, 1500, rms_db=-12, seconds=2.0),
                       band_noise(rng, 2000, 6000, rms_db=-18, seconds=2.0)])
    bands = masking.band_energies(tracks, SR)
    imp = np.array([1.0, 0.4, 0.9])
    problem = eq._CutProblem(bands, -12.0 * (1 - imp), imp, tolerance=0.1, n_essential=3, max_loss_lu=1.0)
    x = np.random.default_rng(1).uniform(0.0, 4.0, problem.shape[0] * problem.shape[1])
    _, grad = problem(x)
    step, numeric = 3e-3, np.zeros_like(x)
    for k in range(x.size):
        up, down = x.copy(), x.copy()
        up[k] += step
        down[k] -= step
        numeric[k] = (problem(up)[0] - problem(down)[0]) / (2 * step)
    np.testing.assert_allclose(grad, numeric, atol=2e-3 * max(1.0, np.abs(grad).max()))


def test_equally_important_tracks_share_the_fix(rng):
    """a (1.0) and b (0.95) count as equal: a covers b at 1.1 kHz, b covers a at 7 kHz; each is cut where it covers."""
    a = (band_noise(rng, 300, 600, rms_db=-12) + band_noise(rng, 1080, 1270, rms_db=-20)
         + band_noise(rng, 6400, 7700, rms_db=-34))
    b = (band_noise(rng, 3150, 4400, rms_db=-12) + band_noise(rng, 1080, 1270, rms_db=-34)
         + band_noise(rng, 6400, 7700, rms_db=-20))
    rumble = band_noise(rng, 100, 200, rms_db=-20)
    bands = masking.band_energies(np.stack([rumble, a, b]), SR)
    filters = eq.design_eq(bands, gains_db=np.zeros(3), importance=np.array([0.3, 1.0, 0.95]))
    assert any(900 <= f.frequency_hz <= 1400 and f.maskee == 2 for f in filters[1])
    # 5.3-8 kHz: with per-band activity (issue 13) the cut sits on the 5.8 kHz band centre, next to 6.4-7.7 kHz.
    assert any(5300 <= f.frequency_hz <= 8000 and f.maskee == 1 for f in filters[2])


def test_the_most_important_track_is_never_left_more_masked(rng):
    """Top and runner-up within the tolerance: the top may be cut for the runner-up only if it stays as free."""
    top = band_noise(rng, 500, 4000, rms_db=-14)
    runner = band_noise(rng, 100, 1500, rms_db=-14, tilt_db_per_oct=-6.0)
    bands = masking.band_energies(np.stack([top, runner]), SR)
    kw = {"gains_db": np.array([0.0, -1.2]), "importance": np.array([1.0, 0.95])}
    before = masking.masking_report(bands, **kw)
    after = masking.masking_report(bands, eq_db=eq.eq_response_db(eq.design_eq(bands, **kw), bands), **kw)
    assert after.masked_fraction[0] <= before.masked_fraction[0] + 1e-9
    assert after.by_rest_db[0] <= before.by_rest_db[0] + 1e-9


def test_tracks_tied_at_the_top_do_not_depend_on_their_order(rng, monkeypatch):
    """Two equally important tracks (importance 1, 1): the design is the same whichever is listed first.

    The rule "the most important track may not end up more masked" used argmax, i.e. the first of the tied
    tracks: listed first, the broadband track was protected and the fix moved onto the narrow one.
    """
    narrow = band_noise(rng, 1480, 1720, rms_db=-14)
    broad = band_noise(rng, 200, 4000, rms_db=-14, tilt_db_per_oct=-3.0)
    kw = {"gains_db": np.zeros(2), "importance": np.array([1.0, 1.0])}
    b01 = masking.band_energies(np.stack([narrow, broad]), SR)
    b10 = masking.band_energies(np.stack([broad, narrow]), SR)

    def designs():
        c01, c10 = (eq.cut_curve_db(b, **kw).cut_db for b in (b01, b10))
        f01, f10 = (eq.design_eq(b, **kw) for b in (b01, b10))
        freqs = [[[round(f.frequency_hz) for f in t] for t in fs] for fs in (f01, f10)]
        same = freqs[0] == freqs[1][::-1]
        return c01, c10, f01, same

    c01, c10, f01, same = designs()
    assert f01[0] and f01[1]  # both tracks share the fix
    np.testing.assert_allclose(c01, c10[::-1], atol=0.05)
    assert same
    monkeypatch.setattr(eq, "top_tracks", lambda p: np.array([int(np.argmax(p))]))  # the former rule
    c01, c10, _, same = designs()
    assert not np.allclose(c01, c10[::-1], atol=0.05) and not same


def test_filter_fit_follows_a_comb_shaped_curve(rng):
    """Cuts wanted in alternate regions (a TV resonance between a phone's masked skirts): the fit keeps the bands
    between them flat and reaches the upper region, instead of a broad peak whose skirts spend the loudness budget.

    The curve is the EQ's own for the TV in the bench's phone_tv scene. Plain matching pursuit picked a Q 0.7 peak
    at 2.15 kHz first (2.4 dB off in the uncut 2.15/2.5 kHz bands, 1.6 of 3 dB at 3.4 kHz).
    """
    bands = masking.band_energies(band_noise(rng, 50, 16000, seconds=1.0)[None, :], SR)
    cut = np.zeros(bands.n_bands)
    cut[[6, 7, 9, 10, 11, 15, 16]] = [5.5, 6.0, 0.36, 5.0, 6.0, 3.3, 3.0]
    weight = np.zeros(bands.n_bands)
    weight[[6, 7, 8, 9, 10, 11, 15, 16]] = [0.02, 0.75, 0.04, 0.06, 0.04, 0.22, 0.04, 1.0]
    protect = np.isin(np.arange(bands.n_bands), [8, 9, 16])  # the TV's loudest bands
    h = eq.band_response_db(eq.fit_filters(cut, weight, np.zeros(bands.n_bands, int), bands, masker=0,
                                           protect=protect), bands)
    assert bands.band_centres_hz[[13, 16]] == pytest.approx([2155, 3414], abs=5)
    assert np.all(h[[13, 14]] > -1.0)  # 2.15 and 2.5 kHz want no cut
    assert h[16] < -2.5  # 3.4 kHz wants 3 dB
    assert h[7] < -4.5 and h[11] < -4.5  # the two deep regions


def test_demand_in_two_regions_gets_two_filters(rng):
    """A masker covering the target in two separate regions gets a cut in each (more filters when demand spreads)."""
    target = band_noise(rng, 400, 600, rms_db=-26) + band_noise(rng, 3000, 4000, rms_db=-26)
    masker = band_noise(rng, 60, 8000, rms_db=-12, tilt_db_per_oct=-3.0)
    bands = masking.band_energies(np.stack([target, masker]), SR)
    filters = eq.design_eq(bands, gains_db=np.zeros(2), importance=np.array([1.0, 0.5]))[1]
    assert any(300 <= f.frequency_hz <= 800 for f in filters)
    assert any(2500 <= f.frequency_hz <= 4500 for f in filters)
    assert len(eq.design_eq(bands, gains_db=np.zeros(2), importance=np.array([1.0, 0.5]), max_filters=1)[1]) == 1


def test_band_estimate_matches_rendered_audio(rng):
    tracks = overlap_scene(rng)
    bands = masking.band_energies(tracks, SR)
    imp = np.array([1.0, 0.3])
    filters = eq.design_eq(bands, gains_db=np.zeros(2), importance=imp)
    estimate = masking.masking_report(bands, gains_db=np.zeros(2), importance=imp, eq_db=eq.eq_response_db(filters, bands))
    rendered = masking.band_energies(eq.apply_eq(tracks, filters, SR), SR)
    measured = masking.masking_report(rendered, gains_db=np.zeros(2), importance=imp)
    np.testing.assert_allclose(estimate.matrix_db, measured.matrix_db, atol=0.2)
    before = masking.masking_report(bands, gains_db=np.zeros(2), importance=imp)
    assert measured.matrix_db[1, 0] < before.matrix_db[1, 0] - 1.0


def test_loudness_estimate_and_guard(rng):
    tracks = overlap_scene(rng)
    bands = masking.band_energies(tracks, SR)
    filters = eq.design_eq(bands, gains_db=np.zeros(2), importance=np.array([1.0, 0.3]), max_loudness_loss_lu=1.0)
    est = eq.filters_loudness_change_lu(filters, bands)
    meter = pyloudnorm.Meter(SR)
    out = eq.apply_eq(tracks, filters, SR)
    measured = [meter.integrated_loudness(out[i].astype(np.float64)) - meter.integrated_loudness(tracks[i].astype(np.float64))
                for i in range(2)]
    np.testing.assert_allclose(est, measured, atol=0.1)  # bin-exact, only the gating differs
    assert -1.0 - 1e-6 <= est.min() < -0.5  # the guard holds and the budget is used


@pytest.mark.parametrize("n_threads", [1, 2])
def test_threaded_render_is_identical(rng, n_threads):
    tracks = np.stack([band_noise(rng, 100, 8000, seconds=2.0) for _ in range(3)])
    filters = [[eq.EqFilter("peak", 1000.0, -6.0, 2.0, 0, 1)], [],
               [eq.EqFilter("low_shelf", 200.0, -3.0, eq.SHELF_Q, 2, 0), eq.EqFilter("peak", 3000.0, -2.0, 4.0, 2, 0)]]
    serial = np.stack([tracks[0], tracks[1], tracks[2]])
    for i, f in enumerate(filters):
        if f:
            sos = np.concatenate([eq.biquad_sos(x, SR) for x in f])
            serial[i] = scipy.signal.sosfilt(sos, tracks[i].astype(np.float64))
    np.testing.assert_array_equal(eq.apply_eq(tracks, filters, SR, n_threads=n_threads), serial)


def test_design_is_deterministic(rng):
    bands = masking.band_energies(overlap_scene(rng), SR)
    kw = {"gains_db": np.zeros(2), "importance": np.array([1.0, 0.3])}
    assert eq.design_eq(bands, **kw) == eq.design_eq(bands, **kw)


@pytest.mark.parametrize("strength", [-0.1, 1.5])
def test_bad_strength_raises(rng, strength):
    bands = masking.band_energies(overlap_scene(rng), SR)
    with pytest.raises(ParameterError, match="strength"):
        eq.design_eq(bands, gains_db=np.zeros(2), importance=np.ones(2), strength=strength)


def test_combined_response_never_exceeds_the_maximum_cut(rng):
    """Stacked cuts are scaled so that the cascade stays within max_cut_db (issue 13: -7.85 dB for a 6 dB max)."""
    low = band_noise(rng, 300, 3000, rms_db=-12)
    top = band_noise(rng, 800, 1600, rms_db=-22)
    bands = masking.band_energies(np.stack([top, low]), SR)
    for filters in eq.design_eq(bands, gains_db=np.zeros(2), importance=np.array([1.0, 0.3]), max_cut_db=3.0):
        assert eq.combined_response_db(filters, SR)[1].min(initial=0.0) >= -3.0 - 2e-3
    two = [eq.EqFilter("peak", 1000.0, -6.0, 2.0, 0, 1), eq.EqFilter("peak", 1260.0, -6.0, 2.0, 0, 1)]
    assert eq.combined_response_db(two, SR)[1].min() < -7.0  # the problem: stacked bells add in dB
    fixed = eq._limit_depth(two, SR, 6.0, 0.5)
    assert -6.0 - 2e-3 <= eq.combined_response_db(fixed, SR)[1].min() < -5.5

"""Time-aware ducking (imgext.engine.duck) and the shared masking model (imgext.masking.model)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from imgext.audio import loudness
from imgext.engine import duck
from imgext.errors import ParameterError
from imgext.masking import analysis as masking
from imgext.masking import model
from tests.stimuli import SR, band_noise


def call_over_bed(rng, *, seconds, period_s, on_s, call_db, bed_hz, bed_db):
    """A 1-2 kHz call (``on_s`` every ``period_s``, 10 ms edges) over a steady band-noise bed ``bed_hz``.

    Returns the (2, n) tracks and the call's gate sampled every 1024 samples.
    """
    n = int(seconds * SR)
    t = np.arange(n) / SR
    gate = ((t % period_s) < on_s).astype(np.float64)
    k = int(0.01 * SR)
    gate = np.convolve(gate, np.ones(k) / k, mode="same")
    call = band_noise(rng, 1000, 2000, seconds=seconds, rms_db=call_db) * gate.astype(np.float32)
    bed = band_noise(rng, *bed_hz, seconds=seconds, rms_db=bed_db)
    return np.stack([call, bed]).astype(np.float32), gate[:: 1024][: n // 1024 + 1]


def barks_over_bed(rng, *, seconds=6.0):
    """A 1-2 kHz 'bark' (0.3 s every 1.5 s) under a louder, steady 200-4000 Hz bed."""
    return call_over_bed(rng, seconds=seconds, period_s=1.5, on_s=0.3, call_db=-14.0, bed_hz=(200, 4000), bed_db=-20.0)


@pytest.fixture(scope="module")
def scene():
    tracks, gate = barks_over_bed(np.random.default_rng(5))
    bands = masking.band_energies(tracks, SR)
    gains, importance = np.zeros(2), np.array([1.0, 0.5])
    plan = duck.design_ducking(bands, gains_db=gains, importance=importance)
    return tracks, gate, bands, gains, importance, plan


def test_the_bed_is_ducked_only_while_the_bark_sounds(scene):
    _, gate, bands, _, _, plan = scene
    assert not plan.active[0] and plan.active[1]  # the important track is never processed
    bark_band = int(np.searchsorted(bands.band_centres_hz, 1400.0))
    lane = plan.cut_db[1, bark_band]
    on, off = gate[: lane.size] > 0.99, np.convolve(gate, np.ones(31), "same")[: lane.size] == 0  # far from any bark
    assert lane[on].mean() > 3.0
    assert lane[off].max(initial=0.0) < 0.5
    assert plan.cut_db.max() <= 6.0 + 1e-6  # one gain per band, never a cascade past the maximum cut


def test_duck_raises_the_core_smr_within_the_loudness_budget(scene):
    tracks, _, bands, gains, importance, plan = scene
    wet = duck.apply_ducking(tracks, plan, SR)
    dry = masking.masking_report(bands, gains_db=gains, importance=importance)
    after = masking.masking_report(masking.band_energies(wet, SR), gains_db=gains, importance=importance, core=dry.core)
    assert after.core_smr_db[0] - dry.core_smr_db[0] > 2.0
    assert -plan.loudness_change_lu[1] <= duck.DEFAULT_DUCK_LOUDNESS_LU + 1e-6
    estimate = masking.masking_report(duck.ducked_bands(bands, plan), gains_db=gains, importance=importance,
                                      core=dry.core)
    assert estimate.core_smr_db[0] == pytest.approx(after.core_smr_db[0], abs=0.5)


def test_duck_does_not_pump(scene):
    """Gain changes slowly: at most ~1.5 dB per 23 ms frame (about 65 dB/s)."""
    plan = scene[-1]
    assert np.abs(np.diff(plan.cut_db, axis=-1)).max() < 1.5


def test_zero_cut_renders_the_input_unchanged(scene):
    tracks, _, _, _, _, plan = scene
    flat = dataclasses.replace(plan, cut_db=np.full_like(plan.cut_db, 6.0))
    out = duck.apply_ducking(tracks, flat, SR)
    np.testing.assert_allclose(out, tracks * np.float32(10 ** (-6 / 20)), atol=2e-5)
    np.testing.assert_array_equal(duck.apply_ducking(tracks, plan.scaled(0.0), SR), tracks)


def test_near_top_tracks_are_never_ducked():
    rng = np.random.default_rng(2)
    a, b = band_noise(rng, 500, 2000), band_noise(rng, 500, 2000, rms_db=-14.0)
    bands = masking.band_energies(np.stack([a, b]), SR)
    plan = duck.design_ducking(bands, gains_db=np.zeros(2), importance=np.array([1.0, 0.95]))
    assert not plan.active.any()


def test_design_is_deterministic(scene):
    _, _, bands, gains, importance, plan = scene
    again = duck.design_ducking(bands, gains_db=gains, importance=importance)
    np.testing.assert_array_equal(plan.cut_db, again.cut_db)


def test_bad_arguments(scene):
    _, _, bands, gains, importance, plan = scene
    with pytest.raises(ParameterError, match="strength"):
        duck.design_ducking(bands, gains_db=gains, importance=importance, strength=1.5)
    with pytest.raises(ParameterError, match="factor"):
        plan.scaled(-0.1)


def test_core_bands_hold_the_share():
    weight = np.array([[[5.0], [3.0], [1.0], [1.0]]])
    np.testing.assert_array_equal(model.core_bands(weight), [[True, True, False, False]])  # 8 of 10 = 80 %
    np.testing.assert_array_equal(model.core_bands(weight, share=0.81), [[True, True, True, False]])


def test_core_smr_clips_and_weights():
    level = np.array([[[10.0, -40.0]]])
    rest = np.zeros_like(level)
    out = model.core_smr(level, rest, np.ones_like(level), np.array([[True]]))
    assert out.smr_db[0] == pytest.approx((10.0 - 20.0) / 2)  # -40 dB clipped to -20
    assert out.masked_fraction[0] == pytest.approx(0.5)


def test_curves_for_drawing(scene):
    plan = scene[-1]
    curves = plan.frequency_response_db()
    assert curves["deepest"].shape == (2, plan.cut_db.shape[1]) and curves["deepest"].max() <= 0.0
    t, lane = plan.gain_lane_db(max_points=50)
    assert lane.shape == (2, t.size) and t.size <= 50 and lane[1].min() < -3.0
    d = plan.to_dict(["bark", "bed"])
    assert list(d["tracks"]) == ["bed"]


def test_a_silent_track_beside_the_duck_is_left_alone(scene):
    """A silent, less important track (an event that falls outside a short scene) is not ducked, no error.

    Found by bench/batch.py: its loudness loss was 0/0, so it "did not fit" with no cell to give up.
    """
    tracks, _, _, _, _, _ = scene
    three = np.concatenate([tracks, np.zeros((1, tracks.shape[1]), np.float32)])
    bands = masking.band_energies(three, SR)
    plan = duck.design_ducking(bands, gains_db=np.zeros(3), importance=np.array([1.0, 0.5, 0.2]))
    assert not plan.active[2] and plan.active[1]


def _reference_ducking(tracks: np.ndarray, plan: duck.DuckPlan, sample_rate: int) -> np.ndarray:
    """The duck rendered the plain way: every frame and every bin through the STFT, float64, overlap-added."""
    hop = plan.hop_length
    n_fft, n = 2 * hop, tracks.shape[1]
    n_frames = plan.cut_db.shape[2]
    lo, hi, w = duck._bin_interpolation(n_fft, sample_rate, plan.band_centres_hz)
    window = np.sqrt(np.hanning(n_fft + 1)[:-1])
    out = np.zeros(tracks.shape)
    full = plan.at_full_strength  # a plan at partial strength blends its full duck with the dry track
    for i in range(plan.n_tracks):
        padded = np.zeros((n_frames + 2) * hop)
        padded[hop: hop + n] = tracks[i]
        acc = np.zeros_like(padded)
        for t in range(n_frames + 1):
            cut = full.cut_db[i][:, min(t, n_frames - 1)]
            gain = 1.0 + plan.strength * (10.0 ** (-(cut[lo] * (1.0 - w) + cut[hi] * w) / 20.0) - 1.0)
            frame = np.fft.irfft(np.fft.rfft(padded[t * hop: t * hop + n_fft] * window) * gain, n_fft) * window
            acc[t * hop: t * hop + n_fft] += frame
        out[i] = acc[hop: hop + n]
    return out


def test_the_fast_render_equals_the_plain_stft(scene):
    """Only frames with a cut, and only the bins next to a cut band, are processed: nothing else differs."""
    tracks, _, _, _, _, plan = scene
    narrow = np.zeros_like(plan.cut_db)
    narrow[1, 10:13, 40:90] = plan.cut_db[1].max() + 1.0  # three bands, 50 frames: a small part of the spectrum
    narrow[1, 11, 200:] = 2.0  # and a cut to the very end (the frame past the end repeats the last)
    makeup = narrow.copy()
    makeup[1, :, 120:180] = -2.0  # a makeup gain is a negative cut, rendered the same way
    for p in (plan, plan.scaled(0.4), dataclasses.replace(plan, cut_db=narrow), dataclasses.replace(plan, cut_db=makeup)):
        got = duck.apply_ducking(tracks, p, SR)
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got[~p.active], tracks[~p.active])
        np.testing.assert_allclose(got, _reference_ducking(tracks, p, SR), atol=3e-6)


def long_call_over_bed(rng, *, seconds=8.0):
    """A 1-2 kHz call sounding 60 % of the time under a bed that holds most of its loudness in the same bands.

    Ducking the bed wherever the call sounds takes more loudness than the budget: makeup is needed.
    """
    return call_over_bed(rng, seconds=seconds, period_s=2.0, on_s=1.2, call_db=-16.0, bed_hz=(800, 2500), bed_db=-14.0)


@pytest.fixture(scope="module")
def busy():
    tracks, gate = long_call_over_bed(np.random.default_rng(11))
    bands = masking.band_energies(tracks, SR)
    gains, importance = np.zeros(2), np.array([1.0, 0.5])
    with_makeup = duck.design_ducking(bands, gains_db=gains, importance=importance)
    without = duck.design_ducking(bands, gains_db=gains, importance=importance, max_makeup_db=0.0)
    return tracks, gate, bands, gains, importance, with_makeup, without


def test_makeup_only_far_from_the_call_and_only_when_the_budget_needs_it(busy, scene):
    tracks, gate, bands, gains, importance, with_makeup, without = busy
    assert without.cut_db.min() >= 0.0  # no makeup allowed: never a gain
    assert scene[-1].cut_db.min() >= 0.0  # the short barks: the budget holds without makeup
    boost = with_makeup.cut_db[1] < -0.05
    assert boost.any() and with_makeup.cut_db.min() >= -duck.DEFAULT_MAKEUP_DB - 1e-4
    near = np.convolve(gate, np.ones(9), "same")[: boost.shape[1]] > 0  # within ~100 ms of the call
    assert not boost[:, near].any()


def test_makeup_buys_core_smr_within_the_loudness_rule(busy):
    tracks, _, bands, gains, importance, with_makeup, without = busy
    dry = masking.masking_report(bands, gains_db=gains, importance=importance)
    smr = {}
    for label, plan in (("with", with_makeup), ("without", without)):
        wet = duck.apply_ducking(tracks, plan, SR)
        change = loudness.integrated_loudness(wet[1], SR) - loudness.integrated_loudness(tracks[1], SR)
        assert abs(change) <= 1.0, label
        assert change == pytest.approx(plan.loudness_change_lu[1], abs=0.15), label  # the estimate follows the meter
        after = masking.masking_report(masking.band_energies(wet, SR), gains_db=gains, importance=importance,
                                       core=dry.core)
        smr[label] = after.core_smr_db[0] - dry.core_smr_db[0]
    assert smr["without"] > 0.5 and smr["with"] > smr["without"] + 0.3


def test_the_duck_stays_within_its_damage_budget(busy, scene):
    for plan, bands in ((busy[5], busy[2]), (scene[-1], scene[2])):
        e_db = model.db(bands.fine_energy)
        active = model.band_activity(e_db, model.db(bands.floor_power.astype(np.float32)))
        for k in np.flatnonzero(plan.active):
            rms = np.sqrt((plan.cut_db[k] ** 2)[active[k]].sum() / active[k].sum())
            assert rms <= duck.MAX_DAMAGE_DB + 0.05


def test_render_map_rows_are_weights(scene):
    """Each band's effective cut is a power-weighted mix of its own and its neighbours' cuts (the render's interpolation)."""
    bands = scene[2]
    m = duck._render_map(bands, round(bands.hop_s * SR))
    assert m.shape == (2, len(bands.band_centres_hz), len(bands.band_centres_hz))
    np.testing.assert_allclose(m.sum(axis=-1), 1.0, atol=1e-5)  # a flat cut maps to itself
    assert m.min() >= 0.0 and (np.abs(np.arange(m.shape[1])[:, None] - np.arange(m.shape[2])[None]) * (m[0] > 0)).max() <= 1


def test_gated_loudness_ignores_silence():
    hop = 1024 / SR
    loud = np.ones(400)
    with_gap = np.concatenate([loud, np.zeros(400)])
    # the meter's relative gate drops the silent half (ungated, the mean would be 3 dB lower); only the
    # blocks straddling the edge pull it down a little
    assert duck._gated_lufs(with_gap, hop) == pytest.approx(duck._gated_lufs(loud, hop), abs=0.1)


def test_a_re_render_from_the_spectrum_cache_is_the_same_render(scene):
    """The cache keeps each track's forward STFT: a re-render with new gains only inverts, and changes nothing."""
    tracks, _, bands, gains, importance, plan = scene
    cache = duck.SpectrumCache()
    other = duck.design_ducking(bands, gains_db=gains + np.array([0.0, 4.0]), importance=importance)  # a slider move
    wide = np.zeros_like(plan.cut_db)
    wide[1, 2:20, 30:60] = 3.0  # more bands than held: the held range grows
    boost = wide.copy()
    boost[1, 2:20, 100:140] = -2.0  # a makeup gain (negative cut)
    for p in (plan, plan.scaled(0.3), other, dataclasses.replace(plan, cut_db=wide),
              dataclasses.replace(plan, cut_db=boost), plan):
        np.testing.assert_array_equal(duck.apply_ducking(tracks, p, SR, cache=cache), duck.apply_ducking(tracks, p, SR))
    assert cache.transforms == 2, "taken once, and once more for the wider range"
    held = cache.nbytes
    assert 0 < held < 0.5 * tracks[1].size * 8, "only the bins next to cut bands are held"
    small = duck.SpectrumCache(max_bytes=1)
    np.testing.assert_array_equal(duck.apply_ducking(tracks, plan, SR, cache=small), duck.apply_ducking(tracks, plan, SR))
    assert small.nbytes == 0 and small.transforms == 0, "over the bound: rendered as without a cache"
    copy = tracks.copy()
    np.testing.assert_array_equal(duck.apply_ducking(copy, plan, SR, cache=cache), duck.apply_ducking(copy, plan, SR))
    assert cache.transforms == 3, "another array is another set of tracks"


def bark_and_bed_tracks(pans=(0.0, 0.0)):
    """:func:`barks_over_bed` (3 s) as the Mixer's tracks: the bark important, the bed ducked under it."""
    from imgext.composition.tracks import Tracks

    audio, _ = barks_over_bed(np.random.default_rng(5), seconds=3.0)
    return Tracks(audio=audio, names=["bark", "bed"], object_indices=[0, 1], pans=np.asarray(pans, dtype=float),
                  importance=np.array([1.0, 0.5]), volume_db=np.zeros(2), sample_rate=SR)


def test_the_mixer_keeps_the_duck_spectra_once_it_renders_again():
    """A one-off render (the command line, an export) holds no spectra; a second render (a slider) keeps them."""
    from dataclasses import replace

    from imgext.mix.mixer import Mixer
    from imgext.options import MixSettings

    tracks = bark_and_bed_tracks()
    settings = MixSettings(duration_s=3.0, sample_rate=SR, seed=0, compose=False, reverb_amount=0.0)
    mixer = Mixer(tracks)
    first = mixer.render(settings, measure_after=False)
    assert first.ducking.active[1] and mixer._duck_spectra is None
    outs = [mixer.render(replace(settings, eq_strength=s), measure_after=False) for s in (0.5, 0.8)]
    assert mixer._duck_spectra is not None and mixer._duck_spectra.transforms == 1
    for s, out in zip((0.5, 0.8), outs):
        np.testing.assert_array_equal(out.processed, Mixer(tracks).render(replace(settings, eq_strength=s),
                                                                          measure_after=False).processed)


def test_eq_strength_moves_blend_the_kept_differences_with_the_same_bits(monkeypatch):
    """Once the duck renders again, the Mixer keeps its full-strength differences: an EQ-strength move blends
    them (no STFT), bit-identical to a fresh Mixer's filtering; a new design (attenuation) filters again."""
    from dataclasses import replace

    from imgext.mix import mixer as mixer_module
    from imgext.mix.mixer import Mixer
    from imgext.options import MixSettings

    tracks = bark_and_bed_tracks()
    settings = MixSettings(duration_s=3.0, sample_rate=SR, seed=0, compose=False, reverb_amount=0.0)
    mixer = Mixer(tracks)
    calls = []
    real = duck.apply_ducking
    monkeypatch.setattr(duck, "apply_ducking", lambda *a, **k: calls.append(1) or real(*a, **k))
    mixer.render(settings, measure_after=False)
    assert mixer._duck_differences is None, "a one-off render keeps nothing"
    mixer.render(replace(settings, eq_strength=0.9), measure_after=False)
    assert mixer._duck_differences is not None and len(calls) == 2
    for s in (0.3, 0.55, 1.0):
        out = mixer.render(replace(settings, eq_strength=s), measure_after=False)
        fresh = Mixer(tracks).render(replace(settings, eq_strength=s), measure_after=False)
        np.testing.assert_array_equal(out.processed, fresh.processed)
        np.testing.assert_array_equal(out.mix.audio, fresh.mix.audio)
    assert len(calls) == 2 + 3, "the moves blended (each fresh Mixer filtered once)"
    mixer.render(replace(settings, attenuation_db=9.0), measure_after=False)  # a new design: filtered, nothing kept
    assert len(calls) == 6 and mixer._duck_differences is None
    mixer.render(replace(settings, attenuation_db=9.0, eq_strength=0.6), measure_after=False)  # its second strength
    assert len(calls) == 7 and mixer._duck_differences is not None
    mixer.render(replace(settings, attenuation_db=9.0, eq_strength=0.4), measure_after=False)
    assert len(calls) == 7, "and the moves after it blend"
    interactive = Mixer(tracks, interactive=True)
    interactive.render(settings, measure_after=False)
    assert interactive._duck_differences is not None, "the app's Mixer keeps its first design's differences"
    monkeypatch.setattr(mixer_module, "DUCK_DIFFERENCES_MAX_BYTES", 1)
    small = Mixer(tracks)
    for s in (1.0, 0.5, 0.7):
        np.testing.assert_array_equal(small.render(replace(settings, eq_strength=s), measure_after=False).processed,
                                      Mixer(tracks).render(replace(settings, eq_strength=s),
                                                           measure_after=False).processed)
    assert small._duck_differences is None, "over the bound: filtered on every move"


def test_a_reverb_or_loudness_render_reuses_the_after_report_and_an_eq_move_does_not():
    """The "after" masking depends on the processing alone: a render that changes only the reverb or the loudness
    target returns the same report object (the Mix page keeps its heatmaps), equal to a fresh Mixer's."""
    from dataclasses import replace

    from imgext.mix.mixer import Mixer
    from imgext.options import MixSettings

    tracks = bark_and_bed_tracks()
    settings = MixSettings(duration_s=3.0, sample_rate=SR, seed=0, compose=False, reverb_amount=0.2)
    mixer = Mixer(tracks)
    first = mixer.render(settings, measure_after=False)
    for change in ({"reverb_amount": 0.6}, {"loudness_lufs": -20.0}):
        moved = mixer.render(replace(settings, **change), measure_after=False)
        assert moved is not first and moved.masking_after is first.masking_after, change
        assert moved.ducking is first.ducking and moved.masking_before is first.masking_before
    fresh = Mixer(tracks).render(replace(settings, reverb_amount=0.6), measure_after=False)
    np.testing.assert_array_equal(fresh.masking_after.matrix_db, first.masking_after.matrix_db)
    eq = mixer.render(replace(settings, eq_strength=0.5), measure_after=False)
    assert eq.masking_after is not first.masking_after and eq.ducking is not first.ducking
    exact = mixer.render(settings, measure_after=True)  # measured on the audio: a report of its own
    assert exact.masking_after is not first.masking_after


def test_eq_strength_blends_the_full_duck_with_the_dry_track(scene):
    """At strength s the track is dry + s * (full duck - dry): linear in s (a wet/dry mix of a zero-phase filter),
    made bit-identically from the full duck's difference (:func:`duck.blend`), and its dB cut at most s times."""
    tracks, _, _, _, _, plan = scene
    full = duck.apply_ducking(tracks, plan, SR)
    differences: dict = {}
    assert np.array_equal(duck.apply_ducking(tracks, plan, SR, differences=differences), full)
    assert set(differences) == set(np.flatnonzero(plan.active).tolist())
    for s in (0.25, 0.5, 0.8):
        scaled = plan.scaled(s)
        got = duck.apply_ducking(tracks, scaled, SR)
        np.testing.assert_array_equal(scaled.active, plan.active)
        np.testing.assert_allclose(got - tracks, s * (full - tracks), atol=2e-6)
        for k, diff in differences.items():
            np.testing.assert_array_equal(duck.blend(tracks[k], diff, s), got[k])
        assert np.all(scaled.cut_db <= s * plan.cut_db + 1e-4) and np.all(scaled.cut_db * plan.cut_db >= 0.0)
    np.testing.assert_array_equal(plan.scaled(1.0).cut_db, plan.cut_db)
    assert not plan.scaled(0.0).active.any()
    twice = plan.scaled(0.5).scaled(0.5)
    assert twice.strength == 0.25 and twice.full is plan
    np.testing.assert_array_equal(twice.cut_db, plan.scaled(0.25).cut_db)
    makeup = duck.blended_cut_db(np.array([-3.0, 0.0, 6.0]), 0.5)  # a makeup gain (negative cut) blends the same way
    np.testing.assert_allclose(makeup, -20 * np.log10(1 + 0.5 * (10 ** (np.array([3.0, 0.0, -6.0]) / 20) - 1)),
                               rtol=1e-5)
    row = plan.scaled(0.5).row(1)
    np.testing.assert_array_equal(duck.apply_ducking(tracks[1:2], row, SR)[0],
                                  duck.apply_ducking(tracks, plan.scaled(0.5), SR)[1])


def test_apply_ducking_writes_every_sample_of_out_and_of_the_differences(scene):
    """``out=`` and given difference rows may hold anything (reused memory): every sample is written."""
    tracks, _, _, _, _, plan = scene
    full = dataclasses.replace(plan, cut_db=np.where(np.arange(plan.cut_db.shape[0])[:, None, None] == 0, 0.0,
                                                      plan.cut_db))  # track 0 not cut, track 1 as designed
    for p in (plan, plan.scaled(0.4), full):
        want_diff: dict = {}
        want = duck.apply_ducking(tracks, p, SR, differences=want_diff)
        out = np.full(tracks.shape, np.nan, np.float32)
        got_diff = {int(k): np.full(tracks.shape[1], np.nan, np.float32) for k in np.flatnonzero(p.active)}
        got = duck.apply_ducking(tracks, p, SR, differences=got_diff, out=out)
        assert got is out
        np.testing.assert_array_equal(got, want)
        assert got_diff.keys() == want_diff.keys()
        for k in want_diff:
            np.testing.assert_array_equal(got_diff[k], want_diff[k])
    with pytest.raises(ParameterError):
        duck.apply_ducking(tracks, plan, SR, out=np.empty(tracks.shape, np.float64))
    with pytest.raises(ParameterError):
        duck.apply_ducking(tracks, plan, SR, out=tracks)


def test_a_retuned_mixer_shares_the_spectra_and_memory_and_old_outcomes_stay_as_they_were():
    """An attenuation move retunes the tracks (same audio array, new levels): the new Mixer takes the old one's duck
    spectra and track memory, renders the bits a fresh Mixer renders, and never writes over a live outcome."""
    from dataclasses import replace

    from imgext.mix.mixer import Mixer
    from imgext.options import MixSettings

    tracks = bark_and_bed_tracks()
    settings = MixSettings(duration_s=3.0, sample_rate=SR, seed=0, compose=False, reverb_amount=0.0)
    mixer = Mixer(tracks, interactive=True)
    mixer._buffers.min_bytes = 0  # (these tracks are small: pool them anyway)
    first = mixer.render(settings, measure_after=False)
    kept = [(first, first.processed.copy(), first.mix.audio.copy())]
    spectra = mixer._duck_spectra
    assert spectra is not None and spectra.transforms == 1
    for k, attenuation in enumerate((9.0, 9.5, 10.0, 9.0, 10.5)):
        moved = replace(tracks, pans=np.array([0.1 * k, -0.1 * k]))  # a retune: a new Tracks on the same array
        assert moved.audio is tracks.audio
        mixer = Mixer(moved, reuse=mixer, interactive=True)
        assert mixer._duck_spectra is spectra
        s = replace(settings, attenuation_db=attenuation, eq_strength=1.0 - 0.1 * k)
        out = mixer.render(s, measure_after=False)
        fresh = Mixer(moved).render(s, measure_after=False)
        np.testing.assert_array_equal(out.processed, fresh.processed)
        np.testing.assert_array_equal(out.mix.audio, fresh.mix.audio)
        kept.append((out, out.processed.copy(), out.mix.audio.copy()))
    assert spectra.transforms == 1, "the forward STFT taken once for every Mixer of these tracks"
    assert mixer._buffers.reused > 0, "the memory of let-go renders was written again"
    for outcome, processed, audio in kept:
        np.testing.assert_array_equal(outcome.processed, processed)
        np.testing.assert_array_equal(outcome.mix.audio, audio)


def test_a_mixer_without_renders_keeps_the_analysis_and_lets_the_rendered_tracks_go():
    """The app's deferred download holds ``Mixer.without_renders()``: it renders the same bits from the same analysis
    and designs, and holding it does not keep the first Mixer's rendered tracks (~150 MB at 29 tracks) alive."""
    import gc
    import weakref

    from imgext.mix.mixer import Mixer
    from imgext.options import MixSettings

    tracks = bark_and_bed_tracks()
    settings = MixSettings(duration_s=3.0, sample_rate=SR, seed=0, compose=False, reverb_amount=0.0)
    mixer = Mixer(tracks, interactive=True)
    outcome = mixer.render(settings, measure_after=False)
    assert outcome.ducking is not None and outcome.ducking.active.any()
    processed, audio = weakref.ref(outcome.processed), outcome.mix.audio.copy()
    light = mixer.without_renders()
    assert light.tracks is tracks and light._bands is mixer._bands, "the analysis is shared, not taken again"
    assert light._rendered == [] and light._processed == [] and light._duck_differences is None
    del mixer, outcome
    gc.collect()
    assert processed() is None, "nothing of the first Mixer's render is held by the one without renders"
    again = Mixer(tracks, reuse=light).render(settings, measure_after=False)  # as the download renders
    assert light._bands is not None and again.timings_s.get("analysis") == light._analysis_s
    np.testing.assert_array_equal(again.mix.audio, audio)


def test_mixers_sharing_a_pool_render_a_new_arrangement_into_the_memory_the_last_let_go():
    """A session's Mixers share one pool: new tracks (a new arrangement) reuse the freed render's memory, same bits."""
    import gc

    from imgext.audio.buffers import BufferPool
    from imgext.composition.tracks import Tracks
    from imgext.mix.mixer import Mixer
    from imgext.options import MixSettings

    tracks = bark_and_bed_tracks()
    rearranged = Tracks(**{**tracks.__dict__, "audio": np.ascontiguousarray(np.roll(tracks.audio, SR // 3, axis=1))})
    settings = MixSettings(duration_s=3.0, sample_rate=SR, seed=0, compose=False, reverb_amount=0.0)
    pool = BufferPool(max_blocks=4, min_bytes=0)
    first = Mixer(tracks, interactive=True, buffers=pool).render(settings, measure_after=False)
    assert first.ducking.active[1]
    del first
    gc.collect()
    reused = pool.reused
    second = Mixer(rearranged, interactive=True, buffers=pool).render(settings, measure_after=False)
    assert pool.reused > reused, "written into the memory the first render let go"
    alone = Mixer(rearranged, interactive=True).render(settings, measure_after=False)
    np.testing.assert_array_equal(second.processed, alone.processed)
    np.testing.assert_array_equal(second.mix.audio, alone.mix.audio)

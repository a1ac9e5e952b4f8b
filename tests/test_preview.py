"""The mix taken apart for the browser's stems player (imgext/mix/preview.py) and the placement picture."""

from __future__ import annotations

import io
from dataclasses import replace

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from imgext.audio.io import db_to_gain
from imgext.errors import ParameterError
from imgext.mix.preview import (
    SPAN_BLOCK_SAMPLES,
    PreviewEncoder,
    encode_preview,
    encode_sparse,
    nonzero_spans,
    pcm16,
    preview_mix,
    signal_id,
)
from imgext.options import MixSettings, SoundSettings
from imgext.project import Project
from imgext.sounds.builtin import BuiltinSource
from imgext.vision.detection import Detection
from imgext.vision.overlay import ROLE_COLOURS, Placed, draw_placement

SR = 16000
SETTINGS = MixSettings(duration_s=2.0, sample_rate=SR, seed=1)  # composed: an area ambience (wide) and the reverb


class TwoBoxes:
    """A stand-in detector: a dog on the left and a car on the right (the model is not what is tested)."""

    def detect(self, picture, *, conf: float = 0.25):
        return [Detection("dog", 0.9, (0.0, 0.2, 0.3, 0.9)), Detection("car", 0.8, (0.5, 0.3, 1.0, 0.8))]


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (90, 90, 90)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def project() -> Project:
    p = Project(settings=SETTINGS)
    p.detect(_png(), TwoBoxes(), name="grey.png")
    p.find_sounds(BuiltinSource(), sounds=SoundSettings(n_candidates=3))
    return p


def _parts(project, settings, **kw):
    outcome = project.mixer().render(settings, measure_after=False)
    t = project.tracks
    return outcome, preview_mix(outcome, t.names, t.pans, sample_rate=settings.sample_rate,
                                preview_rate=settings.sample_rate, **kw)


def test_the_parts_sum_to_the_mix_with_wide_tracks_and_reverb(project):
    outcome, pm = _parts(project, SETTINGS)
    assert any(t.side is not None for t in pm.tracks), "the ambience is an area track with a companion"
    assert pm.reverb is not None and pm.n_samples == outcome.mix.audio.shape[1] and pm.duration_s == 2.0
    np.testing.assert_allclose(pm.render(), outcome.mix.audio, atol=2e-6)


def test_the_parts_sum_to_a_limited_mix(project):
    loud = replace(SETTINGS, loudness_lufs=-6.0)
    outcome, pm = _parts(project, loud)
    assert outcome.mix.envelope is not None and pm.envelope is not None, "-6 LUFS needs the limiter"
    np.testing.assert_allclose(pm.render(), outcome.mix.audio, atol=2e-6)


def test_mute_and_level_are_the_stems_of_the_mix(project):
    outcome, pm = _parts(project, replace(SETTINGS, reverb_amount=0.0))
    tracks = project.tracks
    k = 0
    stem = outcome.mix.stem(outcome.processed, k)  # the track exactly as it sits in the mix
    audible = np.ones(len(pm.tracks), dtype=bool)
    audible[k] = False
    np.testing.assert_allclose(pm.render(audible=audible), outcome.mix.audio - stem, atol=2e-6)
    levels = np.zeros(len(pm.tracks))
    levels[k] = 6.0
    np.testing.assert_allclose(pm.render(levels_db=levels), outcome.mix.audio + (db_to_gain(6.0) - 1) * stem, atol=2e-6)
    pans = np.asarray(tracks.pans, dtype=float).copy()
    pans[k] = -1.0  # hard left: the right channel loses the track
    moved = pm.render(pans=pans, audible=None)
    assert np.abs(moved[1] - (outcome.mix.audio[1] - stem[1])).max() < 2e-6
    with pytest.raises(ParameterError, match="one level, pan"):
        pm.render(levels_db=[0.0])


def test_untouched_signals_keep_their_ids_and_are_not_prepared_again(project):
    eq_on = replace(SETTINGS, eq_strength=1.0)
    before = project.mixer().render(replace(eq_on, eq_strength=0.0), measure_after=False)
    after = project.mixer().render(eq_on, measure_after=False)
    t = project.tracks
    a = preview_mix(before, t.names, t.pans, sample_rate=SR)
    b = preview_mix(after, t.names, t.pans, sample_rate=SR)
    changed = [k for k in range(t.n_tracks) if not np.array_equal(after.processed[k], before.processed[k])]
    assert 0 < len(changed) < t.n_tracks, "the EQ cuts some tracks and leaves others"
    for k, (ta, tb) in enumerate(zip(a.tracks, b.tracks)):
        assert (ta.signal == tb.signal) == (k not in changed), (k, changed)
    memo: dict = {}
    first = preview_mix(after, t.names, t.pans, sample_rate=SR, preview_rate=8000, memo=memo)
    again = preview_mix(after, t.names, t.pans, sample_rate=SR, preview_rate=8000, memo=memo)
    assert first.sample_rate == 8000 and first.n_samples == 16000
    assert [x.signal for x in again.tracks] == [x.signal for x in first.tracks]
    assert all(again.signals[s] is first.signals[s] for s in first.signals), "met again: reused, not resampled"
    fresh = preview_mix(after, t.names, t.pans, sample_rate=SR, preview_rate=8000)
    assert [x.signal for x in fresh.tracks] == [x.signal for x in first.tracks]
    assert set(signal_id(x, 8000) for x in first.signals.values()) == set(first.signals)


def test_a_loudness_match_scales_every_level_not_the_signals(project):
    outcome, pm = _parts(project, SETTINGS)
    t = project.tracks
    louder = preview_mix(outcome, t.names, t.pans, sample_rate=SR, preview_rate=SR, match_db=3.0)
    assert [x.signal for x in louder.tracks] == [x.signal for x in pm.tracks]
    np.testing.assert_allclose(louder.render(), pm.render() * db_to_gain(3.0), rtol=1e-5, atol=1e-6)


def test_encoding_is_compact_decodes_to_the_signal_and_is_cached(rng):
    n = 24000 * 4
    noise = (0.2 * rng.standard_normal(n)).astype(np.float32)  # the hardest case for a codec: a noise bed
    enc = PreviewEncoder(max_bytes=10**9)
    got = enc.get("a", noise, 24000)
    data = got.data
    assert data[:4] == b"OggS" and len(data) < 0.5 * n * 2, "well under the 16-bit WAV size"
    assert got.spans is None and got.n_samples == n, "a lossy signal goes whole"
    decoded, sr = sf.read(io.BytesIO(data), dtype="float32")
    assert sr == 24000 and decoded.shape == (n,)
    assert enc.get("a", noise, 24000) is got and enc.encoded == 1
    envelope = np.linspace(1.0, 0.5, n).astype(np.float32)
    flac = encode_preview(envelope, 24000, lossless=True)
    assert flac[:4] == b"fLaC"
    back, _ = sf.read(io.BytesIO(flac), dtype="float32")
    assert np.abs(back - envelope).max() < 1e-4
    stereo = encode_preview(np.stack([noise, -noise]), 24000)
    assert sf.info(io.BytesIO(stereo)).channels == 2


def test_flac_previews_are_the_bytes_libsndfile_makes_from_the_floats(rng):
    """The preview quantises to 16 bits itself (cheaper): the FLAC must not change by a bit."""
    x = np.clip(0.4 * rng.standard_normal((2, 30000)), -1.0, 1.0).astype(np.float32)
    x[0, :6] = [1.0, -1.0, 0.5 / 32768, 1.5 / 32768, -0.5 / 32768, 32767.5 / 32768]  # the edges and ties of rounding
    for signal in (x, x[1], 3.0 * x[0]):  # stereo, mono, and clipped
        clipped = np.clip(signal, -1.0, 1.0)
        buf = io.BytesIO()
        sf.write(buf, clipped.T if clipped.ndim == 2 else clipped, 22050, format="FLAC", subtype="PCM_16")
        assert encode_preview(signal, 22050, lossless=True) == buf.getvalue()
        back, _ = sf.read(io.BytesIO(buf.getvalue()), dtype="int16")
        np.testing.assert_array_equal(pcm16(clipped), back.T)


def test_nonzero_spans_are_the_runs_of_blocks_with_a_sample_in_them():
    b = 4
    x = np.zeros(23, np.int16)
    assert nonzero_spans(x, block=b) == () and nonzero_spans(x[:0], block=b) == ()
    x[[1, 5, 6, 17, 22]] = [3, -1, 2, 7, 1]  # blocks 0, 1, 4 and the short last one (20..23), merged where they touch
    assert nonzero_spans(x, block=b) == ((0, 8), (16, 7))
    x[17] = 0
    assert nonzero_spans(x, block=b) == ((0, 8), (20, 3))
    assert nonzero_spans(np.ones(9, np.int16), block=b) == ((0, 9),)
    stereo = np.zeros((2, 12), np.int16)
    stereo[1, 9] = -4  # one channel is enough
    assert nonzero_spans(stereo, block=b) == ((8, 4),)
    with pytest.raises(ParameterError, match="block"):
        nonzero_spans(x, block=0)


def _unpack(encoded, channels: int) -> np.ndarray:
    """What the stems player makes of an encoded signal (player.js ``placeSpans``): 16-bit samples in place."""
    out = np.zeros((channels, encoded.n_samples), np.int16)
    if encoded.data:
        q, _ = sf.read(io.BytesIO(encoded.data), dtype="int16", always_2d=True)
        if encoded.spans is None:
            return q.T
        start = 0
        for a, length in encoded.spans:
            out[:, a:a + length] = q.T[:, start:start + length]
            start += length
        assert start == q.shape[0], "the spans are all the bytes hold"
    return out


def test_a_sparse_signal_goes_as_its_spans_and_comes_back_to_the_bit(rng):
    """An event track or a duck's wet part is silent most of the time: only its nonzero spans are encoded."""
    n = 22050 * 6
    events = np.zeros(n, np.float32)
    for start in (1000, 40000, 41000, n - 300):  # two that share a block run, one at the very end
        events[start:start + 250] = 0.3 * rng.standard_normal(min(250, n - start))
    events[70000] = 0.2 / 32768  # rounds to a 16-bit zero: silent to the player
    wet = np.zeros((2, n), np.float32)
    wet[1, 9000:9500] = 0.01 * rng.standard_normal(500)
    enc = PreviewEncoder(max_bytes=10**9, codec="flac")
    for sid, x in (("events", events), ("wet", wet)):
        got = enc.get(sid, x, 22050)
        assert got.spans and got.n_samples == n
        assert all(a % SPAN_BLOCK_SAMPLES == 0 for a, _ in got.spans)
        covered = sum(length for _, length in got.spans)
        assert covered < 0.1 * n
        channels = 1 if x.ndim == 1 else 2
        np.testing.assert_array_equal(_unpack(got, channels), pcm16(x).reshape(channels, n))
        whole = encode_preview(x, 22050, lossless=True)
        assert len(got.data) < len(whole), "fewer bytes than the whole signal"
    assert not any(a <= 70000 < a + length for a, length in enc.get("events", events, 22050).spans)
    silent = encode_sparse(np.zeros(n, np.float32), 22050)
    assert silent.data == b"" and silent.spans == () and silent.n_samples == n
    np.testing.assert_array_equal(_unpack(silent, 1), np.zeros((1, n), np.int16))
    dense = (0.1 * rng.standard_normal(n)).astype(np.float32)
    dense[:2 * SPAN_BLOCK_SAMPLES] = 0.0  # a little silence is not worth spans
    got = encode_sparse(dense, 22050)
    assert got.spans is None and got.data == encode_preview(dense, 22050, lossless=True)


def test_the_encoder_cache_is_bounded(rng):
    enc = PreviewEncoder(max_bytes=1)
    for k in range(3):
        enc.get(str(k), (0.1 * rng.standard_normal(4000)).astype(np.float32), 8000)
    assert enc.encoded == 3 and len(enc._cache) == 1 and "2" in enc._cache


def test_pan_is_an_object_edit_the_mix_follows(project):
    p = Project(settings=replace(SETTINGS, compose=False))
    p.detect(_png(), TwoBoxes(), name="grey.png")
    p.find_sounds(BuiltinSource(), sounds=SoundSettings(n_candidates=3))
    first = p.mix().mix.audio
    assert p.objects[0].pan < 0
    assert p.edit_object(0, pan=0.8)
    assert p.objects[0].pan == 0.8 and p.objects[0].azimuth_deg is None, "the headphone mix follows the new pan"
    assert p.tracks.pans[0] == 0.8
    assert not np.array_equal(p.mix().mix.audio, first)
    assert not p.edit_object(0, pan=0.8)
    with pytest.raises(ParameterError, match="pan"):
        p.edit_object(0, pan=1.5)


def test_the_placement_picture_marks_pan_level_and_role():
    photo = Image.new("RGB", (320, 240), (40, 40, 40))
    placed = [Placed("dog", (0.0, 0.3, 0.3, 0.9), pan=-1.0, level_db=-6.0, role="event"),
              Placed("car", (0.5, 0.3, 1.0, 0.8), pan=1.0, level_db=-12.0, role="bed", muted=True)]
    out = draw_placement(photo, placed)
    assert out.size[0] == 320 and out.size[1] > 240, "a ruler strip under the photo"
    px = np.asarray(out)
    size = max(12, round(240 / 34))
    ruler = px[240 + 3 * size // 2]
    assert (ruler[size - 2 : size + 3] == ROLE_COLOURS["event"]).all(axis=-1).any(), "the dog is heard hard left"
    assert (ruler[320 - size - 2 : 320 - size + 3] == (130, 130, 130)).all(axis=-1).any(), "the muted car, grey, right"
    dog_edge = px[150, 0:12]
    assert (dog_edge == ROLE_COLOURS["event"]).all(axis=-1).sum() > (px[150, 160:172] == (130, 130, 130)).all(axis=-1).sum(), \
        "the louder sound has the wider outline"


def test_the_mixer_keeps_both_sides_of_an_a_b_cached(project):
    """The Mix page renders the processed mix and the unprocessed one each run: neither evicts the other."""
    from imgext.mix.mixer import Mixer

    mixer = Mixer(project.tracks)
    after_settings = replace(SETTINGS, eq_strength=1.0)
    first = mixer.render(after_settings, measure_after=False)
    before = mixer.render(replace(after_settings, eq_strength=0.0), measure_after=False)
    again = mixer.render(after_settings, measure_after=False)
    assert again.processed is first.processed, "the EQ'd tracks and their reverb were not recomputed"
    assert mixer.render(replace(after_settings, eq_strength=0.0), measure_after=False).processed is before.processed
    np.testing.assert_array_equal(again.mix.audio, first.mix.audio)
    assert mixer.render(after_settings, measure_after=False) is again, "a rerun that changed nothing renders nothing"
    mixer.render(replace(after_settings, eq_strength=0.5), measure_after=False)  # a third: the oldest goes
    assert mixer.render(after_settings, measure_after=False).processed is not first.processed


def test_row_keys_name_equal_rows_and_spare_the_preview_and_the_air_absorption(monkeypatch):
    """A slider move re-renders the mix: rows it did not change keep their keys, their air absorption and their ids."""
    import imgext.mix.mixer as mixer_module
    from imgext.composition.tracks import Tracks
    from imgext.mix.mixer import Mixer
    from tests.stimuli import band_noise

    rng = np.random.default_rng(3)
    n = 3 * SR
    t = np.arange(n) / SR
    gate = ((t % 1.0) < 0.25).astype(np.float32)
    audio = np.stack([band_noise(rng, 1000, 2000, seconds=3.0, sample_rate=SR, rms_db=-14.0) * gate,
                      band_noise(rng, 200, 4000, seconds=3.0, sample_rate=SR, rms_db=-12.0),
                      band_noise(rng, 3000, 6000, seconds=3.0, sample_rate=SR, rms_db=-30.0)]).astype(np.float32)
    tracks = Tracks(audio=audio, names=["bark", "bed", "far"], object_indices=[0, 1, 2], pans=np.array([-0.5, 0.0, 0.5]),
                    importance=np.array([1.0, 0.5, 0.2]), volume_db=np.zeros(3), sample_rate=SR,
                    distance_m=np.array([55.0, 60.0, 300.0]))  # all far enough for air absorption
    settings = MixSettings(duration_s=3.0, sample_rate=SR, seed=1, compose=False)
    absorbed = []
    real = mixer_module.apply_air_absorption
    monkeypatch.setattr(mixer_module, "apply_air_absorption", lambda x, d, sr: absorbed.append(d) or real(x, d, sr))
    mixer = Mixer(tracks)
    after = mixer.render(settings, measure_after=False)
    before = mixer.render(replace(settings, eq_strength=0.0), measure_after=False)
    assert after.ducking is not None and after.ducking.active[1], "the bed is ducked under the bark"
    assert not after.ducking.active[2] and not after.ducking.active[0]
    assert sorted(absorbed) == [55.0, 60.0, 60.0, 300.0], "the dry tracks are filtered once, the bed dry and ducked"
    assert after.row_keys[0] == before.row_keys[0] and after.row_keys[2] == before.row_keys[2]
    assert after.row_keys[1] != before.row_keys[1]
    for k in (0, 2):  # same key, same samples (whatever array holds them)
        np.testing.assert_array_equal(after.processed[k], before.processed[k])
    fresh = Mixer(tracks).render(settings, measure_after=False)  # without any reuse
    np.testing.assert_array_equal(after.processed, fresh.processed)
    np.testing.assert_array_equal(after.mix.audio, fresh.mix.audio)
    assert fresh.row_keys[0] != after.row_keys[0], "keys belong to their Mixer"

    absorbed.clear()
    moved_settings = replace(settings, attenuation_db=settings.attenuation_db + 3.0)  # the attenuation slider
    moved = mixer.render(moved_settings, measure_after=False)
    assert absorbed == [60.0], "a new duck design: only the ducked bed is filtered again"
    np.testing.assert_array_equal(moved.processed, Mixer(tracks).render(moved_settings, measure_after=False).processed)

    memo: dict = {}
    first = preview_mix(after, tracks.names, tracks.pans, sample_rate=SR, preview_rate=8000, memo=memo)
    again = preview_mix(moved, tracks.names, tracks.pans, sample_rate=SR, preview_rate=8000, memo=memo)
    for k in (0, 2):
        assert again.tracks[k].signal == first.tracks[k].signal
        assert again.signals[again.tracks[k].signal] is first.signals[first.tracks[k].signal], "met again: not resampled"
    assert again.tracks[1].signal != first.tracks[1].signal
    plain = preview_mix(moved, tracks.names, tracks.pans, sample_rate=SR, preview_rate=8000)  # no memo
    assert [x.signal for x in plain.tracks] == [x.signal for x in again.tracks]


def test_the_before_mix_is_one_render_whatever_only_shapes_the_processing(project):
    """EQ strength, maximum cut, time-aware and the optimiser change nothing in the A of A/B: one cached render."""
    from imgext.mix.mixer import Mixer
    from pages._player import before_settings

    moved = [replace(SETTINGS, eq_strength=0.4, max_cut_db=9.0), replace(SETTINGS, time_aware=False, optimise=True),
             replace(SETTINGS, max_cut_db=3.0)]
    assert {before_settings(s) for s in moved} == {before_settings(SETTINGS)}
    assert before_settings(replace(SETTINGS, attenuation_db=20.0)) != before_settings(SETTINGS), "the levels do count"
    for s in moved:  # the same audio as the unprocessed mix under the moved settings themselves
        plain = Mixer(project.tracks).render(replace(s, eq_strength=0.0, optimise=False), measure_after=False)
        np.testing.assert_array_equal(plain.mix.audio,
                                      project.mixer().render(before_settings(s), measure_after=False).mix.audio)


def test_the_flac_codec_is_exact_to_16_bits_for_tracks_and_reverb(rng):
    """The app's transport: every signal as 16-bit FLAC (cheap to encode on each slider move), mono and stereo."""
    n = 24000 * 2
    bed = (0.05 * rng.standard_normal(n)).astype(np.float32)
    reverb = (0.01 * rng.standard_normal((2, n))).astype(np.float32)
    enc = PreviewEncoder(max_bytes=10**9, codec="flac")
    for sid, x in (("bed", bed), ("reverb", reverb)):
        got = enc.get(sid, x, 24000)
        data = got.data
        assert got.spans is None, "a dense signal goes whole"
        assert data[:4] == b"fLaC" and len(data) < x.size * 2, "under the 16-bit PCM size"
        back, sr = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
        assert sr == 24000
        assert np.abs(back.T.reshape(x.shape) - x).max() <= 1.0 / 32768 + 1e-7
    assert enc.encoded == 2 and enc.get("bed", bed, 24000) is enc.get("bed", bed, 24000) and enc.encoded == 2
    with pytest.raises(ParameterError, match="codec"):
        PreviewEncoder(codec="mp3")


def test_a_level_change_is_found_only_when_nothing_but_levels_changed(project):
    from imgext.mix.preview import level_change
    from imgext.mix.space import level_gains_db

    t = project.tracks
    moved = replace(SETTINGS, attenuation_db=SETTINGS.attenuation_db + 4.0, loudness_lufs=-20.0)
    deltas = level_change(SETTINGS, t, moved, t)
    want = (level_gains_db(t.gains_db(moved.attenuation_db), t.distances_m(), distance=moved.distance)
            - level_gains_db(t.gains_db(SETTINGS.attenuation_db), t.distances_m(), distance=SETTINGS.distance))
    np.testing.assert_allclose(deltas, want)
    assert deltas.any() and not np.all(deltas == deltas[0]), "attenuation moves the less important tracks"
    assert not level_change(SETTINGS, t, replace(SETTINGS, loudness_lufs=-20.0), t).any()
    assert not level_change(SETTINGS, t, replace(SETTINGS, reverb_amount=0.1), t).any(), "the reverb is a bus level"
    for other in (replace(SETTINGS, eq_strength=0.3), replace(SETTINGS, max_cut_db=3.0), replace(SETTINGS, seed=2),
                  replace(SETTINGS, fov_deg=90.0), replace(SETTINGS, distance=False)):
        assert level_change(SETTINGS, t, other, t) is None, other
    no_reverb = replace(SETTINGS, reverb_amount=0.0)
    assert level_change(no_reverb, t, SETTINGS, t) is None, "no bus was rendered: none to bring up"
    assert not level_change(SETTINGS, t, no_reverb, t).any(), "a bus brought down to nothing is a level"
    panned = replace(t, pans=np.asarray(t.pans) * 0.5)
    assert level_change(SETTINGS, t, moved, panned) is None, "a new pan is more than a level"
    louder = replace(t, volume_db=np.asarray(t.volume_db) + np.arange(t.n_tracks))
    np.testing.assert_allclose(level_change(SETTINGS, t, SETTINGS, louder), np.arange(t.n_tracks))


def test_a_level_preview_keeps_the_signals_and_sounds_like_the_render_it_stands_for(project):
    """Without EQ, reverb or limiter, a level preview is the new render up to its master gain (an estimate)."""
    from imgext.mix.preview import level_change, releveled

    plain = replace(SETTINGS, eq_strength=0.0, reverb_amount=0.0, loudness_lufs=-30.0)
    moved = replace(plain, attenuation_db=plain.attenuation_db + 6.0, loudness_lufs=-28.0)
    t = project.tracks
    old, pm = _parts(project, plain)
    new, exact = _parts(project, moved)
    assert old.mix.envelope is None and new.mix.envelope is None and pm.reverb is None
    powers: dict = {}
    quick = releveled(pm, level_change(plain, t, moved, t), loudness_db=2.0, powers=powers)
    assert not quick.exact and pm.exact and quick.describe()["exact"] is False
    assert [x.signal for x in quick.tracks] == [x.signal for x in pm.tracks] == [x.signal for x in exact.tracks]
    assert quick.signals is pm.signals and set(powers) == {x.signal for x in pm.tracks} | {
        x.side for x in pm.tracks if x.side}
    a, b = quick.render().astype(np.float64), exact.render().astype(np.float64)
    c = float(np.sum(a * b) / np.sum(a * a))  # the one scalar between them: the master gain's estimate
    np.testing.assert_allclose(a * c, b, atol=2e-5 * np.abs(b).max())
    assert abs(20 * np.log10(c)) < 1.0, "the loudness is held to within 1 dB by the power estimate"
    same = releveled(pm, np.zeros(len(pm.tracks)))
    np.testing.assert_allclose(same.render(), pm.render(), rtol=1e-6, atol=1e-7)
    _, full = _parts(project, SETTINGS)  # reverb, a wide ambience: held as they are, nothing new made
    assert full.reverb is not None and any(x.side for x in full.tracks)
    np.testing.assert_allclose(releveled(full, np.zeros(len(full.tracks))).render(), full.render(), rtol=1e-5, atol=1e-7)
    up = releveled(full, np.full(len(full.tracks), 6.0), loudness_db=-3.0)
    master = up.reverb_level / full.reverb_level  # the reverb takes the master gain only
    assert all(u.level == pytest.approx(f.level * db_to_gain(6.0) * master) for u, f in zip(up.tracks, full.tracks))
    assert db_to_gain(-3.0 - 6.0) < master < db_to_gain(-3.0), "the master gain takes back part of the +6 dB"
    with pytest.raises(ParameterError):
        releveled(pm, [0.0])


def _similar(a: np.ndarray, b: np.ndarray) -> float:
    """The one scalar ``c`` with ``a * c`` nearest ``b``, after checking that it makes them equal (up to 2e-5 of peak)."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    c = float(np.sum(a * b) / np.sum(a * a))
    np.testing.assert_allclose(a * c, b, atol=2e-5 * np.abs(b).max())
    return c


@pytest.mark.parametrize("amount", [0.0, 0.1, 0.5, 1.0])
def test_a_reverb_move_is_the_bus_level_of_the_render_it_stands_for(project, amount):
    """The reverb's sends are linear in the amount: the preview is the render up to the master gain (no limiter here)."""
    from imgext.mix.preview import level_move, releveled

    plain = replace(SETTINGS, loudness_lufs=-30.0)  # a wide ambience, the reverb, no limiter
    moved = replace(plain, reverb_amount=amount)
    t = project.tracks
    old, pm = _parts(project, plain)
    new, exact = _parts(project, moved)
    assert old.mix.envelope is None and new.mix.envelope is None and pm.reverb is not None
    move = level_move(plain, t, moved, t)
    assert not move.gains_db.any() and move.loudness_db == 0.0 and not move.deferred and move.heard
    assert move.reverb_gain == pytest.approx(amount / plain.reverb_amount)
    quick = releveled(pm, move.gains_db, reverb_gain=move.reverb_gain)
    assert quick.signals is pm.signals and quick.reverb == pm.reverb, "nothing new to make or send"
    c = _similar(quick.render(), exact.render())  # the one scalar between them: the master gain's estimate
    assert abs(20 * np.log10(c)) < (1.0 if amount <= 0.5 else 1.5), "the loudness is held by the power estimate"
    reverb_only = quick.render() - quick.render(reverb=False)
    np.testing.assert_allclose(reverb_only * c, exact.render() - exact.render(reverb=False),
                               atol=2e-5 * max(np.abs(exact.render()).max(), 1e-9))
    with pytest.raises(ParameterError, match="reverb_gain"):
        releveled(pm, move.gains_db, reverb_gain=-1.0)


def test_an_ambience_level_move_is_the_ambience_tracks_level():
    """The ambience level is the ambience object's volume: a track level, previewed like the attenuation (no EQ here)."""
    from imgext.mix.preview import level_move, releveled

    p = Project(settings=replace(SETTINGS, loudness_lufs=-30.0, reverb_amount=0.0, eq_strength=0.0))  # no EQ redesign
    p.detect(_png(), TwoBoxes(), name="grey.png")
    p.find_sounds(BuiltinSource(), sounds=SoundSettings(n_candidates=3))
    old_settings, t0 = p.settings, p.tracks
    old, pm = _parts(p, old_settings)
    k = next(k for k, n in enumerate(t0.names) if n.startswith("ambience"))
    p.set_settings(replace(old_settings, ambience_db=old_settings.ambience_db - 6.0))
    t1 = p.tracks
    move = level_move(old_settings, t0, p.settings, t1)
    want = np.zeros(t0.n_tracks)
    want[k] = -6.0
    np.testing.assert_allclose(move.gains_db, want)
    new, exact = _parts(p, p.settings)
    quick = releveled(pm, move.gains_db)
    _similar(quick.render(), exact.render())


def test_an_eq_move_is_deferred_and_said_so(project):
    """EQ strength and maximum cut change the processed signals: not previewed, the render follows."""
    from imgext.mix.preview import DEFERRED_FIELDS, level_move

    t = project.tracks
    moved = replace(SETTINGS, eq_strength=0.4, max_cut_db=3.0, attenuation_db=SETTINGS.attenuation_db + 2.0)
    move = level_move(SETTINGS, t, moved, t)
    assert move.deferred == ("eq_strength", "max_cut_db") == DEFERRED_FIELDS[:2] and move.heard and not move.exact
    only_eq = level_move(SETTINGS, t, replace(SETTINGS, eq_strength=0.4), t)
    assert only_eq.deferred == ("eq_strength",) and not only_eq.heard and not only_eq.exact
    assert level_move(SETTINGS, t, replace(SETTINGS, eq_strength=0.4), t, defer=()) is None
    assert level_move(SETTINGS, t, SETTINGS, t).exact
    assert level_move(SETTINGS, t, replace(SETTINGS, eq_strength=0.4, seed=3), t) is None, "the seed is not deferred"
    recomposed = level_move(SETTINGS, t, replace(SETTINGS, eq_strength=0.4, activity=2.0), None)
    assert recomposed.deferred == ("eq_strength", "activity") and not recomposed.heard, "new tracks: none needed"


@pytest.mark.parametrize(("rate", "want"), [(44100, 22050), (48000, 24000), (96000, 24000), (32000, 24000),
                                            (16000, 16000), (22050, 22050)])
def test_the_preview_rate_halves_a_cd_or_dvd_rate_exactly(rate, want):
    from imgext.mix.preview import preview_rate_for

    assert preview_rate_for(rate) == want


def test_a_44k_mix_previews_at_22k_and_sums_to_the_mix_resampled():
    """The default preview of a 44.1 kHz mix is at 22.05 kHz and is the mix at that rate (the parts, resampled)."""
    from imgext.audio.io import resample
    from imgext.mix.mixer import Mixer

    p = Project(settings=replace(SETTINGS, sample_rate=44100, reverb_amount=0.0, loudness_lufs=-30.0))
    p.detect(_png(), TwoBoxes(), name="grey.png")
    p.find_sounds(BuiltinSource(), sounds=SoundSettings(n_candidates=3))
    outcome = Mixer(p.tracks).render(p.settings, measure_after=False)
    pm = preview_mix(outcome, p.tracks.names, p.tracks.pans, sample_rate=44100)
    assert pm.sample_rate == 22050 and pm.n_samples == outcome.mix.audio.shape[1] // 2
    want = resample(outcome.mix.audio, 44100, 22050)
    np.testing.assert_allclose(pm.render(), want, atol=2e-4 * np.abs(want).max())


def test_a_field_of_view_move_is_deferred_whole():
    """A new field of view moves the objects (pans, distances): the last render plays as it was until the render."""
    from imgext.mix.preview import level_move

    p = Project(settings=SETTINGS)
    p.detect(_png(), TwoBoxes(), name="grey.png")
    p.find_sounds(BuiltinSource(), sounds=SoundSettings(n_candidates=3))
    s0, t0 = p.settings, p.tracks
    p.set_settings(replace(s0, fov_deg=110.0, attenuation_db=s0.attenuation_db + 3.0))
    t1 = p.tracks
    assert t1.audio is t0.audio and not (np.array_equal(t0.pans, t1.pans) and np.array_equal(
        t0.distances_m(), t1.distances_m())), "the same sounds, placed anew"
    move = level_move(s0, t0, p.settings, t1)
    assert move.deferred == ("attenuation_db", "fov_deg") and not move.heard and not move.gains_db.any()
    assert level_move(s0, t0, p.settings, t1, defer=()) is None
    assert level_move(s0, t0, replace(s0, fov_deg=110.0, seed=5), t1) is None, "more than a placing field"


def test_an_eq_strength_move_is_heard_as_the_wet_parts_level_and_is_the_render_up_to_the_master_gain():
    """A ducked track reaches the player as dry + strength x wet (Mixer.blend_parts): another strength of the same duck
    is a level (releveled(strength=)), the same sum as the exact render at that strength but for the master gain
    (held by estimate: within 0.3 dB of the render's loudness here)."""
    from imgext.audio.loudness import integrated_loudness
    from imgext.mix.mixer import Mixer
    from imgext.mix.preview import level_move, releveled
    from tests.test_duck import SR as DUCK_SR
    from tests.test_duck import bark_and_bed_tracks

    tracks = bark_and_bed_tracks(pans=(-0.3, 0.4))
    settings = MixSettings(duration_s=3.0, sample_rate=DUCK_SR, seed=0, compose=False, reverb_amount=0.0,
                           loudness_lufs=-30.0)  # far under the ceiling: no limiter, the master gain is all
    mixer = Mixer(tracks, interactive=True)
    first = mixer.render(settings, measure_after=False)
    parts = mixer.blend_parts(first, settings)
    assert parts is not None and parts[0] == 1.0 and set(parts[1]) == {1}, "the bed is ducked: dry and wet parts"
    dry, wet = parts[1][1]
    np.testing.assert_allclose(dry + wet, first.processed[1], atol=1e-6)
    pm = preview_mix(first, tracks.names, tracks.pans, sample_rate=DUCK_SR, preview_rate=DUCK_SR, parts=parts)
    assert pm.strength == 1.0 and pm.tracks[1].wet is not None and pm.tracks[0].wet is None
    np.testing.assert_allclose(pm.render(), first.mix.audio, atol=2e-5)
    new = replace(settings, eq_strength=0.4)
    assert level_move(settings, tracks, new, tracks).deferred == ("eq_strength",), "without parts: deferred"
    move = level_move(settings, tracks, new, tracks, blended=True)
    assert move.strength == 0.4 and not move.deferred and move.heard and not move.exact
    heard = releveled(pm, move.gains_db, strength=move.strength, powers={})
    exact = mixer.render(new, measure_after=False)
    assert mixer.blend_parts(exact, new)[1][1][1] is wet, "the same wet part: nothing new to send"
    got, want = heard.render(), exact.mix.audio
    gain = float(np.dot(got.ravel(), want.ravel()) / np.dot(got.ravel(), got.ravel()))
    np.testing.assert_allclose(gain * got, want, atol=1e-4 * float(np.abs(want).max()))
    assert abs(integrated_loudness(got, DUCK_SR) - integrated_loudness(want, DUCK_SR)) < 0.3
    with pytest.raises(ParameterError, match="strength"):
        releveled(replace(pm, strength=None), move.gains_db, strength=0.5)


def test_a_retuned_mixer_hands_the_player_the_same_dry_rows_so_the_memo_knows_them(monkeypatch):
    """An attenuation move makes a new Mixer on the same audio: its blend parts' dry rows are the old Mixer's own
    objects, so the player's memo finds their resampled, hashed signals (only the new wet parts are prepared)."""
    from imgext.mix import preview as preview_module
    from imgext.mix.mixer import Mixer
    from tests.test_duck import SR as DUCK_SR
    from tests.test_duck import bark_and_bed_tracks

    tracks = bark_and_bed_tracks(pans=(-0.3, 0.4))
    settings = MixSettings(duration_s=3.0, sample_rate=DUCK_SR, seed=0, compose=False, reverb_amount=0.0)
    mixer = Mixer(tracks, interactive=True)
    first = mixer.render(settings, measure_after=False)
    dry, _ = mixer.blend_parts(first, settings)[1][1]
    memo: dict = {}
    preview_mix(first, tracks.names, tracks.pans, sample_rate=DUCK_SR, memo=memo,
                parts=mixer.blend_parts(first, settings))
    moved = replace(tracks, pans=np.array([-0.2, 0.3]))  # a retune: a new Tracks on the same array
    again = Mixer(moved, reuse=mixer, interactive=True)
    new = replace(settings, attenuation_db=settings.attenuation_db + 3.0)
    out = again.render(new, measure_after=False)
    parts = again.blend_parts(out, new)
    assert parts is not None and parts[1][1][0] is dry, "the same dry row object"
    fresh = Mixer(moved, interactive=True)
    want = fresh.blend_parts(fresh.render(new, measure_after=False), new)
    np.testing.assert_array_equal(parts[1][1][0], want[1][1][0])
    np.testing.assert_array_equal(parts[1][1][1], want[1][1][1])
    calls = []
    real = preview_module.resample_sparse
    monkeypatch.setattr(preview_module, "resample_sparse", lambda x, *a, **k: calls.append(x) or real(x, *a, **k))
    pm = preview_mix(out, moved.names, moved.pans, sample_rate=DUCK_SR, memo=memo, parts=parts)
    assert pm.tracks[1].wet is not None and any(x is parts[1][1][1] for x in calls), "the new wet part is prepared"
    assert not any(x is dry for x in calls), "the dry bed came from the memo, not resampled and hashed again"

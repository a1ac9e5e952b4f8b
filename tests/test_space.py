"""Distance, room and headphones: the pure parts (imgext.vision.distance, imgext.mix.space, imgext.mix.binaural)."""

from __future__ import annotations

import os

import numpy as np
import pytest

from imgext.errors import ParameterError
from imgext.mix import binaural, space
from imgext.vision import distance as dist

SR = 44100


def _hrtf():
    try:
        return binaural.load_hrtf(SR)
    except binaural.HrtfUnavailable as exc:
        if os.environ.get("CI"):
            raise  # CI installs libmysofa1: a missing HRTF there is a failure, not a skip
        pytest.skip(str(exc))


def _lag_ms(stereo: np.ndarray, max_lag: int = 60) -> float:
    """Lag (ms) of the right ear behind the left from the cross-correlation; > 0 = left leads."""
    c = np.fft.irfft(np.fft.rfft(stereo[1]) * np.conj(np.fft.rfft(stereo[0])), n=stereo.shape[1])
    window = np.r_[c[-max_lag:], c[: max_lag + 1]]
    return (int(np.argmax(window)) - max_lag) / SR * 1e3


# -- distance from the picture ------------------------------------------------------------------------


def test_a_box_half_as_tall_is_twice_as_far():
    near = dist.estimate_distance_m("person", (0.40, 0.10, 0.50, 0.90), aspect=16 / 9)
    far = dist.estimate_distance_m("person", (0.40, 0.30, 0.45, 0.70), aspect=16 / 9)
    assert far == pytest.approx(2 * near, rel=0.01)


def test_pinhole_distance_matches_the_formula():
    # 60 degrees horizontal, 16:9: vertical fov = 2 atan(tan 30 / (16/9)) = 36.0 degrees; a 1.7 m person
    # filling half the height stands at 0.5/tan(18 deg) * 1.7 / 0.5 = 5.23 m.
    assert dist.vertical_fov_deg(60, 16 / 9) == pytest.approx(35.98, abs=0.01)
    assert dist.estimate_distance_m("person", (0.4, 0.25, 0.5, 0.75), aspect=16 / 9) == pytest.approx(5.23, abs=0.01)


def test_a_wider_field_of_view_brings_objects_nearer():
    box = (0.4, 0.25, 0.5, 0.75)
    assert dist.estimate_distance_m("dog", box, aspect=1.5, fov_deg=90) < dist.estimate_distance_m("dog", box, aspect=1.5)


def test_a_box_cut_by_the_top_or_bottom_uses_its_width():
    # a bus filling the frame's height (cut top and bottom) but not its width: estimate from the 12 m length
    d = dist.estimate_distance_m("bus", (0.2, 0.0, 0.8, 1.0), aspect=16 / 9)
    f_w = 0.5 / np.tan(np.radians(30))
    assert d == pytest.approx(f_w * 12.0 / 0.6, abs=0.01)


def test_unknown_labels_get_a_default_size_and_distances_are_clamped():
    assert dist.typical_size_m("zorblax") == (0.5, 0.5)
    assert dist.estimate_distance_m("person", (0.3, 0.45, 0.3001, 0.4501), aspect=1) == dist.MAX_DISTANCE_M
    with pytest.raises(ParameterError):
        dist.estimate_distance_m("person", (0, 0, 1, 1), aspect=1, fov_deg=5)


def test_direction_left_is_positive_azimuth_and_up_is_positive_elevation():
    az, el = dist.direction_deg((0.0, 0.0, 0.2, 0.2), aspect=16 / 9)
    assert az > 0 and el > 0
    az, el = dist.direction_deg((0.45, 0.45, 0.55, 0.55), aspect=16 / 9)
    assert az == 0 and el == 0
    az, _ = dist.direction_deg((0.999, 0.4, 1.0, 0.6), aspect=16 / 9)
    assert az == pytest.approx(-30, abs=0.1)  # the right edge of a 60-degree picture


# -- level and direct-to-reverberant ratio ---------------------------------------------------------------


def test_direct_level_falls_6_db_per_doubling_from_the_nearest():
    g = space.distance_gain_db([2.0, 4.0, 8.0, 1e6])
    assert g[:3] == pytest.approx([0.0, -6.0206, -12.0412], abs=1e-3)
    assert g[3] == -space.MAX_DISTANCE_LOSS_DB


def test_reverb_send_makes_drr_fall_3_db_per_doubling():
    d = np.array([2.0, 4.0, 8.0])
    direct = space.distance_gain_db(d)
    send = 20 * np.log10(space.reverb_sends(d, 0.3))
    drr = direct - send
    assert drr[0] == pytest.approx(-20 * np.log10(0.3), abs=1e-6)
    assert np.diff(drr) == pytest.approx([-3.0103, -3.0103], abs=1e-3)
    with pytest.raises(ParameterError):
        space.reverb_sends(d, 1.5)


def test_air_absorption_rolls_off_highs_only_for_far_sources():
    rng = np.random.default_rng(3)
    x = rng.standard_normal(SR).astype(np.float32)
    np.testing.assert_array_equal(space.apply_air_absorption(x, 30.0, SR), x)
    y = space.apply_air_absorption(x, 300.0, SR)
    spec_x, spec_y = np.abs(np.fft.rfft(x)) ** 2, np.abs(np.fft.rfft(y)) ** 2
    f = np.fft.rfftfreq(x.size, 1 / SR)

    def band_db(lo, hi):
        m = (f >= lo) & (f < hi)
        return 10 * np.log10(spec_y[m].sum() / spec_x[m].sum())

    assert band_db(100, 400) > -0.5  # lows untouched
    assert band_db(7000, 9000) == pytest.approx(-3 * 5.9, abs=3)  # about 5.9 dB per 100 m at 8 kHz
    assert y.shape == x.shape and np.argmax(np.correlate(y[:2000], x[:2000], "full")) == 1999  # no delay


# -- the reverb bus -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("room", sorted(space.ROOMS))
def test_impulse_response_is_seeded_stereo_and_unit_energy(room):
    a, b, c = space.reverb_ir(room, SR, 0), space.reverb_ir(room, SR, 0), space.reverb_ir(room, SR, 1)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.shape[0] == 2 and float(np.sum(a.astype(np.float64) ** 2)) == pytest.approx(1.0, rel=1e-4)
    corr = np.corrcoef(a[0], a[1])[0, 1]
    assert abs(corr) < 0.2  # decorrelated ears: a diffuse field, not a point


def test_outdoors_is_shorter_and_sparser_than_a_room():
    def decay_time(ir):
        e = np.cumsum((ir.astype(np.float64) ** 2).sum(0)[::-1])[::-1]
        edc = 10 * np.log10(e / e[0])
        return np.argmax(edc < -20) / SR

    def early_density(ir, window_s=0.05):
        head = np.abs(ir[0, : int(window_s * SR)])
        return int(np.sum(head > 0.1 * head.max()))

    room, outdoor = space.reverb_ir("room", SR), space.reverb_ir("outdoor", SR)
    assert decay_time(outdoor) < decay_time(room)
    assert early_density(outdoor) < early_density(room)
    assert space.room_for_ambience("kitchen / cafe") == "room" and space.room_for_ambience("street") == "outdoor"


def test_reverb_keeps_the_whole_tail_by_wrapping_it():
    bus = np.zeros(SR // 4, dtype=np.float32)  # shorter than the room's tail
    bus[-10] = 1.0
    wet = space.render_reverb(bus, room="room", sample_rate=SR)
    assert wet.shape == (2, bus.size)
    assert float(np.sum(wet.astype(np.float64) ** 2)) == pytest.approx(1.0, rel=1e-3)  # all of the unit-energy IR


def _reverb_by_oaconvolve(bus: np.ndarray, room: str, seed: int = 0) -> np.ndarray:
    """The reverb as it was rendered before the overlap-add: ``oaconvolve`` in full, then the tail wrapped."""
    import scipy.signal

    x = np.asarray(bus, dtype=np.float32)
    n = x.size
    out = np.zeros((2, n), np.float32)
    full = scipy.signal.oaconvolve(x[None, :], space.reverb_ir(room, SR, seed), mode="full", axes=-1)
    out += full[:, :n]
    tail = full[:, n:]
    while tail.shape[1] > 0:
        k = min(n, tail.shape[1])
        out[:, :k] += tail[:, :k]
        tail = tail[:, k:]
    return out


def _reverb_circular_f64(bus: np.ndarray, room: str, seed: int = 0) -> np.ndarray:
    """The definition in float64: the circular convolution of length n with the response folded to n."""
    ir = space.reverb_ir(room, SR, seed).astype(np.float64)
    n = bus.size
    folded = np.zeros((2, n))
    for s0 in range(0, ir.shape[1], n):
        piece = ir[:, s0 : s0 + n]
        folded[:, : piece.shape[1]] += piece
    return np.fft.irfft(np.fft.rfft(bus.astype(np.float64)) * np.fft.rfft(folded, axis=-1), n, axis=-1)


def _reverb_case(room: str, n: int) -> np.ndarray:
    rng = np.random.default_rng(n % 1009)
    bus = (rng.standard_normal(n) * np.linspace(0.02, 0.3, n)).astype(np.float32)
    bus[: n // 5] *= np.float32(0.01)  # a quiet start: the wrapped tail dominates there
    return bus


_HOP = {room: space._reverb_spectrum(room, SR, 0)[1] for room in space.ROOMS}


@pytest.mark.parametrize("room", sorted(space.ROOMS))
@pytest.mark.parametrize("n", [1, 17, 1000, 22357, "hop-1", "hop", "hop+1", "3hop+7", 44100 * 5 + 3])
def test_reverb_is_the_wrapped_convolution_to_float32_rounding(room, n):
    # The overlap-add with the cached spectrum against the previous rendering (oaconvolve + wrap) and
    # against the float64 definition: scenes shorter than the response (it wraps several times),
    # block-edge and odd lengths.
    hop = _HOP[room]
    n = {"hop-1": hop - 1, "hop": hop, "hop+1": hop + 1, "3hop+7": 3 * hop + 7}.get(n, n)
    bus = _reverb_case(room, n)
    wet = space.render_reverb(bus, room=room, sample_rate=SR)
    exact = _reverb_circular_f64(bus, room)
    scale = float(np.abs(exact).max())
    assert wet.shape == (2, n) and wet.dtype == np.float32
    assert float(np.abs(wet - exact).max()) <= 2e-6 * scale
    before = _reverb_by_oaconvolve(bus, room)
    assert float(np.abs(wet - before).max()) <= 2e-6 * scale

    def rms_error(y):
        return float(np.sqrt(np.mean((y - exact) ** 2) / np.mean(exact**2)))

    # ~3e-7 of the signal; a scene of a few samples folds the whole response onto them (a sum of 20-35 k
    # taps), where both renderings are off by ~1-2e-6: no further than the previous one
    assert rms_error(wet) <= max(1e-6, 1.25 * rms_error(before))


@pytest.mark.parametrize("blocks_per_batch", [1, 2, 3])
def test_reverb_in_batches_of_blocks_is_the_same_signal(monkeypatch, blocks_per_batch):
    # A long scene's bus goes through in batches (REVERB_BLOCK_BYTES): the same samples whatever the batch,
    # including a batch ending past the end (its heads wrap) and a spilled (memory-mapped) bus.
    from imgext.audio.spill import spill

    n_fft, hop, _ = space._reverb_spectrum("outdoor", SR, 0)
    bus = _reverb_case("outdoor", 7 * hop + 12345)
    whole = space.render_reverb(bus, room="outdoor", sample_rate=SR)
    monkeypatch.setattr(space, "REVERB_BLOCK_BYTES", 8 * n_fft * blocks_per_batch)
    batched = space.render_reverb(spill(bus), room="outdoor", sample_rate=SR)
    np.testing.assert_allclose(batched, whole, rtol=0, atol=1e-6 * float(np.abs(whole).max()))
    exact = _reverb_circular_f64(bus, "outdoor")
    assert float(np.abs(batched - exact).max()) <= 2e-6 * float(np.abs(exact).max())


def test_reverb_of_silence_is_silence_and_the_spectrum_is_cached_read_only():
    assert not np.any(space.render_reverb(np.zeros(5000, np.float32), room="room", sample_rate=SR))
    assert space.render_reverb(np.zeros(0, np.float32), room="room", sample_rate=SR).shape == (2, 0)
    n_fft, hop, spectrum = space._reverb_spectrum("room", SR, 0)
    taps = space.reverb_ir("room", SR, 0).shape[1]
    assert space._reverb_spectrum("room", SR, 0)[2] is spectrum and not spectrum.flags.writeable
    assert n_fft >= 2 * taps - 1 and hop == n_fft - taps + 1 and spectrum.shape == (2, n_fft // 2 + 1)


# -- headphones --------------------------------------------------------------------------------------------------


def test_left_source_leads_and_is_louder_in_the_left_ear():
    hrtf = _hrtf()
    x = np.random.default_rng(0).standard_normal((1, SR)).astype(np.float32)
    az, _ = dist.direction_deg((0.05, 0.4, 0.15, 0.6), aspect=16 / 9)
    y = binaural.render_binaural(x, [1.0], [az], [0.0], hrtf)
    lag = _lag_ms(y)
    ild = 10 * np.log10(np.sum(y[0] ** 2) / np.sum(y[1] ** 2))
    assert 0.1 <= lag <= 0.8 and ild > 3
    centre = binaural.render_binaural(x, [1.0], [0.0], [0.0], hrtf)
    assert abs(_lag_ms(centre)) < 0.05
    assert abs(10 * np.log10(np.sum(centre[0] ** 2) / np.sum(centre[1] ** 2))) < 1.0


def test_missing_hrtf_file_is_reported_not_raised_as_a_traceback(tmp_path):
    with pytest.raises(binaural.HrtfUnavailable, match="not written"):
        binaural.load_hrtf(SR, tmp_path / "missing.sofa")
    bad = tmp_path / "bad.sofa"
    bad.write_bytes(b"not a sofa file")
    with pytest.raises(binaural.HrtfUnavailable, match="cannot be read"):
        binaural.load_hrtf(SR, bad)


def test_hrtf_is_resampled_to_the_mix_rate():
    _hrtf()
    h48 = binaural.load_hrtf(48000)
    assert h48.sample_rate == 48000 and h48.irs.shape[-1] == pytest.approx(512 * 48000 / 44100, abs=1)


def test_placement_gives_each_object_a_distance_and_direction():
    from imgext.vision.detection import Detection
    from imgext.vision.placement import place_objects, with_depth

    dets = [Detection("person", 0.9, (0.05, 0.1, 0.2, 0.9)), Detection("person", 0.8, (0.7, 0.4, 0.75, 0.6))]
    near, far = place_objects(dets, aspect=16 / 9)
    assert far.distance_m == pytest.approx(4 * near.distance_m, rel=0.02)
    assert near.azimuth_deg > 0 > far.azimuth_deg  # left of the picture is positive azimuth
    assert place_objects(dets)[0].distance_m is None  # no image shape, no estimate
    wider = with_depth([near, far], aspect=16 / 9, fov_deg=90)
    assert wider[0].distance_m < near.distance_m


# -- in the mix ---------------------------------------------------------------------------------------------------


def _click_tracks(n_tracks: int, seconds: float = 3.0, period_s: float = 0.75) -> np.ndarray:
    """Mono tracks of short broadband clicks every ``period_s`` (onsets are easy to find)."""
    n = int(seconds * SR)
    x = np.zeros((n_tracks, n), dtype=np.float32)
    rng = np.random.default_rng(11)
    for start in range(int(0.1 * SR), n - SR // 4, int(period_s * SR)):
        x[:, start : start + 32] = rng.standard_normal((n_tracks, 32)).astype(np.float32)
    return x


def _tracks(audio, *, pans, distances, azimuths=None):
    from imgext.composition.tracks import Tracks

    k = audio.shape[0]
    return Tracks(audio=audio, names=[f"t{i}" for i in range(k)], object_indices=list(range(k)),
                  pans=np.asarray(pans, float), importance=np.ones(k), volume_db=np.zeros(k), sample_rate=SR,
                  distance_m=np.asarray(distances, float),
                  azimuth_deg=None if azimuths is None else np.asarray(azimuths, float))


def _drr_db(stem: np.ndarray, mono_clicks: np.ndarray) -> float:
    """Energy in the first 2.5 ms after each onset against the rest (both ears)."""
    onsets = np.flatnonzero(np.diff((np.abs(mono_clicks) > 0).astype(int)) == 1) + 1
    e = (stem.astype(np.float64) ** 2).sum(0)
    head = np.zeros(e.size, bool)
    for o in onsets:
        head[o : o + int(0.0025 * SR) + 32] = True
    return 10 * np.log10(e[head].sum() / e[~head].sum())


def test_twice_as_far_is_6_db_quieter_and_less_direct():
    from imgext.mix.mixer import Mixer
    from imgext.options import MixSettings

    clicks = _click_tracks(1)
    settings = MixSettings(duration_s=3, eq_strength=0, reverb_amount=0.5, loudness_lufs=-45)  # no limiting
    outs = {}
    for d in (4.0, 8.0):
        # a near reference object (silent) fixes d_ref at 2 m for both renders
        audio = np.concatenate([clicks, np.zeros_like(clicks)])
        mixer = Mixer(_tracks(audio, pans=[0.0, 0.0], distances=[d, 2.0]))
        outs[d] = mixer.render(settings, measure_after=False)
    near, far = outs[4.0], outs[8.0]
    assert near.mix.envelope is None and far.mix.envelope is None  # the limiter would blur the measure
    assert far.gains_db[0] - near.gains_db[0] == pytest.approx(-6.02, abs=0.01)
    # master gains differ (loudness normalisation): compare direct and reverberant energy as rendered
    direct = lambda o: o.mix.stem(o.processed, 0)  # noqa: E731
    ratio = lambda o: _drr_db(direct(o) + o.mix.reverb, clicks[0])  # noqa: E731
    assert ratio(near) - ratio(far) >= 2.0


def test_distance_and_reverb_off_is_the_plain_stereo_mix():
    from imgext.mix.mixer import Mixer
    from imgext.mix.render import render_mix
    from imgext.options import MixSettings

    audio = _click_tracks(2)
    tracks = _tracks(audio, pans=[-0.5, 0.5], distances=[3.0, 300.0])
    settings = MixSettings(duration_s=3, distance=False, reverb_amount=0.0)
    out = Mixer(tracks).render(settings)
    plain = render_mix(out.processed, pans=tracks.pans, gains_db=tracks.gains_db(settings.attenuation_db),
                       sample_rate=SR, loudness_lufs=settings.loudness_lufs, peak_dbfs=settings.peak_dbfs)
    assert out.mix.reverb is None
    np.testing.assert_array_equal(out.mix.audio, plain.audio)
    np.testing.assert_array_equal(out.gains_db, tracks.gains_db(settings.attenuation_db))


def test_the_headphone_toggle_does_not_render_the_stereo_mix_again():
    """The binaural mix is made from the stereo render's outcome: toggling it reuses the render (not redone)."""
    from dataclasses import replace

    from imgext.mix.mixer import Mixer
    from imgext.options import MixSettings

    mixer = Mixer(_tracks(_click_tracks(2), pans=[-0.5, 0.5], distances=[3.0, 30.0]))
    settings = MixSettings(duration_s=3, seed=1)
    stereo = mixer.render(settings)
    assert mixer.render(replace(settings, binaural=True)) is stereo
    assert mixer.render(replace(settings, binaural=True, reverb_amount=0.5)) is not stereo  # anything else renders


def test_far_tracks_lose_highs_and_stems_plus_reverb_sum_to_the_mix():
    from imgext.mix.mixer import Mixer
    from imgext.options import MixSettings

    audio = np.random.default_rng(5).standard_normal((2, 3 * SR)).astype(np.float32) * 0.1
    tracks = _tracks(audio, pans=[-0.5, 0.5], distances=[5.0, 400.0])
    out = Mixer(tracks).render(MixSettings(duration_s=3, eq_strength=0))
    hf = lambda x: np.sum(np.abs(np.fft.rfft(x)[int(6000 * 3) :]) ** 2) / np.sum(np.abs(np.fft.rfft(x)) ** 2)  # noqa: E731
    assert hf(out.processed[1]) < 0.7 * hf(audio[1]) and hf(out.processed[0]) == pytest.approx(hf(audio[0]), rel=1e-3)
    total = out.mix.stem(out.processed, 0) + out.mix.stem(out.processed, 1) + out.mix.reverb
    assert np.max(np.abs(total - out.mix.audio)) < 1e-5


def test_binaural_render_places_a_left_object_on_the_left(tmp_path, sounds_dir):
    _hrtf()
    import soundfile as sf

    from imgext.options import MixSettings
    from imgext.pipeline import render_files

    settings = MixSettings(duration_s=3, binaural=True, seed=3)
    result = render_files([str(sounds_dir / "dog.mp3")], str(tmp_path / "o"), pans=[-0.8], settings=settings)
    out = tmp_path / "o"
    y, sr = sf.read(out / "mix_binaural.wav", always_2d=True)
    y = y.T
    assert result.scene["binaural"]["file"] == "mix_binaural.wav"
    assert 0.1 <= _lag_ms(y) <= 0.8 and 10 * np.log10(np.sum(y[0] ** 2) / np.sum(y[1] ** 2)) > 2
    assert "MIT KEMAR" in (out / "ATTRIBUTION.txt").read_text()
    again = render_files([str(sounds_dir / "dog.mp3")], str(tmp_path / "p"), pans=[-0.8], settings=settings)
    assert again.scene["binaural"]["loudness_lufs"] == result.scene["binaural"]["loudness_lufs"]
    assert (tmp_path / "p" / "mix_binaural.wav").read_bytes() == (out / "mix_binaural.wav").read_bytes()
    assert (tmp_path / "p" / "mix.wav").read_bytes() == (out / "mix.wav").read_bytes()


def test_missing_hrtf_falls_back_to_stereo_with_a_note(tmp_path, sounds_dir, monkeypatch):
    from imgext.mix import binaural as b
    from imgext.options import MixSettings
    from imgext.pipeline import render_files

    monkeypatch.setenv("IMGEXT_HRTF_SOFA", str(tmp_path / "none.sofa"))
    b._cache.clear()
    result = render_files([str(sounds_dir / "dog.mp3")], str(tmp_path / "o"), pans=[0.0],
                          settings=MixSettings(duration_s=2, binaural=True))
    assert (tmp_path / "o" / "mix.wav").is_file() and not (tmp_path / "o" / "mix_binaural.wav").exists()
    assert result.scene["binaural"] is None and any("HRTF" in n for n in result.scene["notes"])


@pytest.mark.slow
def test_cli_render_records_distances_and_writes_the_headphone_mix(tmp_path):
    import json
    import subprocess
    import sys
    from pathlib import Path

    _hrtf()
    root = Path(__file__).resolve().parents[1]
    photo = root.parent / "shared" / "images" / "wilddog.jpg"
    if not photo.is_file():
        photo = sorted((root.parent / "shared" / "images").glob("wild*.jpg"))[0]
    out = tmp_path / "o"
    done = subprocess.run([sys.executable, "-m", "imgext", "render", str(photo), "--out", str(out), "--source", "builtin",
                           "--duration", "4", "--binaural", "--no-zip"], cwd=root, capture_output=True, text=True,
                          timeout=600, check=False)
    assert done.returncode == 0, done.stderr
    scene = json.loads((out / "scene.json").read_text())
    detected = [o for o in scene["objects"] if o.get("origin") == "detected"]
    assert detected and all(o["distance_m"] and o["distance_m"] > 0 for o in detected)
    assert all(o["azimuth_deg"] is not None for o in detected)
    assert scene["binaural"]["file"] == "mix_binaural.wav" and (out / "mix_binaural.wav").is_file()
    assert scene["mix"]["reverb_stem"] == "stems/reverb.wav" and (out / "stems" / "reverb.wav").is_file()
    assert "MIT KEMAR" in (out / "ATTRIBUTION.txt").read_text()

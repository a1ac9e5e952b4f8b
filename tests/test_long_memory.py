"""Long scenes: the loudness measurements run a chunk at a time, bit-identical to the whole-signal passes.

Issue 15's 8 x 600 s render must stay within 2 GB; these pin that the BS.1770 measures and the
limiter's loudness search hold about one float64 copy (the per-sample power they return), not
several, and that chunking changes no bit.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import scipy.signal

from imgext.audio import loudness
from imgext.audio.loudness import (
    CHUNK_SAMPLES,
    _k_sos,
    _loudness_blocks_power,
    block_bounds,
    gated_loudness,
    integrated_loudness,
    k_weighted_power,
)
from imgext.mix import limiter

SR = 44100


def _reference(x: np.ndarray, sr: int) -> tuple[float, np.ndarray, np.ndarray]:
    """The whole-signal formulation (one sosfilt, one cumsum), as it was before chunking."""
    x = np.asarray(x, dtype=np.float64)
    x = x[None, :] if x.ndim == 1 else x
    y = scipy.signal.sosfilt(_k_sos(sr), x, axis=-1)
    sq = np.square(y)
    c = np.zeros((x.shape[0], x.shape[1] + 1))
    np.cumsum(sq, axis=-1, out=c[:, 1:])
    lo, hi = block_bounds(x.shape[1], sr)
    z = (c[:, hi] - c[:, lo]) / (loudness.BLOCK_S * sr)
    power = (np.asarray(loudness._CHANNEL_WEIGHTS[: x.shape[0]])[:, None] * z).sum(axis=0)
    with np.errstate(divide="ignore"):
        blocks = -0.691 + 10.0 * np.log10(power)
    return gated_loudness(power), blocks, sq.sum(axis=0)


@pytest.mark.parametrize("shape", [(3 * CHUNK_SAMPLES + 17,), (2, 2 * CHUNK_SAMPLES), (2, 2 * CHUNK_SAMPLES + 1),
                                   (2, 30000), (3, CHUNK_SAMPLES + 999)])
def test_chunked_loudness_is_bit_identical(shape):
    rng = np.random.default_rng(len(shape) * 1000 + shape[-1] % 997)
    x = (rng.standard_normal(shape) * 0.1).astype(np.float32)
    x[..., : shape[-1] // 3] *= np.float32(0.001)  # quiet stretch: exercises the gates
    loud, blocks, power = _loudness_blocks_power(x, SR)
    ref_loud, ref_blocks, ref_power = _reference(x, SR)
    assert loud == ref_loud
    np.testing.assert_array_equal(blocks, ref_blocks)
    if x.ndim == 2 and x.shape[0] <= 2:
        np.testing.assert_array_equal(power, ref_power)
        np.testing.assert_array_equal(k_weighted_power(x, SR), ref_power)


def test_limiter_loudness_search_sum_is_bit_identical():
    rng = np.random.default_rng(5)
    n = 2 * CHUNK_SAMPLES + 4321
    power = rng.random(n) ** 4
    env = np.minimum(1.0, 0.5 + rng.random(n)).astype(np.float32)
    lo, hi = block_bounds(n, SR)
    c = np.concatenate([[0.0], np.cumsum(power * np.square(env, dtype=np.float64), dtype=np.float64)])
    expected = gated_loudness((c[hi] - c[lo]) / (0.4 * SR))
    assert limiter._gated_loudness(power, lo, hi, SR, envelope=env) == expected
    c = np.concatenate([[0.0], np.cumsum(power)])
    assert limiter._gated_loudness(power, lo, hi, SR) == gated_loudness((c[hi] - c[lo]) / (0.4 * SR))


def _peak_traced(fn) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_loudness_of_a_long_stereo_mix_holds_one_float64_copy():
    """60 s of stereo float32 (21 MB): the measure holds the returned power (21 MB) and a few chunks.

    The whole-signal passes held the float64 signal, its filtered copy and its running sum (~150 MB).
    """
    rng = np.random.default_rng(7)
    n = 60 * SR
    x = (rng.standard_normal((2, n)) * 0.1).astype(np.float32)
    one_copy = n * 8  # the per-sample power, float64
    assert _peak_traced(lambda: _loudness_blocks_power(x, SR)) < one_copy + 12 * 2**20
    assert _peak_traced(lambda: integrated_loudness(x, SR)) < 12 * 2**20  # the power is not kept
    power = k_weighted_power(x, SR)
    env = np.ones(n, np.float32)
    lo, hi = block_bounds(n, SR)
    assert _peak_traced(lambda: limiter._gated_loudness(power, lo, hi, SR, envelope=env)) < 12 * 2**20


def _interpolated_whole(x: np.ndarray) -> np.ndarray:
    """The true-peak oversampler as one pass over the whole signal (before chunking)."""
    from scipy.ndimage import correlate1d

    n = x.shape[-1]
    inter = np.float32(limiter._PHASES[0, limiter._HALF]) * np.max(np.abs(x), axis=0)
    y = correlate1d(x, limiter._PHASES[2].astype(np.float32), axis=-1, mode="constant")
    np.maximum(inter, np.max(np.abs(y), axis=0), out=inter)
    xp = np.pad(x, ((0, 0), (0, 1)))
    e = correlate1d(xp, limiter._EVEN, axis=-1, mode="constant")
    o = correlate1d(xp, limiter._ODD, axis=-1, mode="constant")
    np.maximum(inter, np.max(np.abs(e[:, :n] + o[:, :n]), axis=0), out=inter)
    np.maximum(inter, np.max(np.abs(e[:, 1:] - o[:, 1:]), axis=0), out=inter)
    return inter


@pytest.mark.parametrize("n", [30, limiter._CHUNK + 1, 2 * limiter._CHUNK + limiter._HALF])
def test_chunked_oversampling_is_bit_identical(n):
    rng = np.random.default_rng(n)
    x = (rng.standard_normal((2, n)) * 0.4).astype(np.float32)
    np.testing.assert_array_equal(limiter._interpolated_all(x), _interpolated_whole(x))
    peaks = np.max(np.abs(x), axis=0)
    bound = limiter._bound(peaks, 0, n)  # the whole signal at once
    level = np.float32(1.2)
    idx, values = limiter._dense_candidates(peaks, level)  # a chunk at a time: the same values
    np.testing.assert_array_equal(idx, np.flatnonzero(bound > level))
    np.testing.assert_array_equal(values, bound[idx].astype(np.float64))
    # The float32 sum is the float64 bound to ~1e-6, inside the 1e-5 slack: no point that can reach
    # the level is ruled out.
    exact = limiter.correlate1d(peaks.astype(np.float64), limiter._BOUND_TAPS.astype(np.float64), mode="constant")
    np.testing.assert_allclose(bound, exact, rtol=2e-6, atol=0)
    assert set(np.flatnonzero(exact > float(level) * (1 + 2e-6))) <= set(idx.tolist())


def test_the_bound_where_asked_is_the_whole_bound_there():
    rng = np.random.default_rng(11)
    n = 3 * limiter._CHUNK + 777
    peaks = np.abs(rng.standard_normal(n)).astype(np.float32)
    where = np.zeros(n, dtype=bool)
    where[[5, limiter._PIECE * 3 + 1, limiter._PIECE * 4, n - 1]] = True  # runs of one and two pieces, the ends
    where[limiter._CHUNK - 10 : 2 * limiter._CHUNK + 10] = True  # a run longer than a chunk
    whole = limiter._bound(peaks, 0, n)
    covered = np.zeros(n, dtype=bool)
    for start, bound in limiter._dense_bound(peaks, where=where):
        assert bound.size <= limiter._CHUNK
        np.testing.assert_array_equal(bound, whole[start : start + bound.size])
        covered[start : start + bound.size] = True
    assert covered[where].all()


def test_oversampling_a_long_mix_holds_no_signal_length_copies():
    """60 s of stereo float32 (21 MB): the whole-signal passes held ~8 copies, the chunks hold the result."""
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((2, 60 * SR)) * 0.4).astype(np.float32)
    assert _peak_traced(lambda: limiter._interpolated_all(x)) < x.nbytes / 2 + 12 * 2**20


def test_stacking_fetched_tracks_lets_each_fetched_copy_go_at_once():
    """assemble_tracks(views=True): every fetched track becomes a view of its row as the row is filled,
    so the fetched copies are released while stacking (the scene is held once, not twice)."""
    import weakref

    from imgext.composition.tracks import Fetched, assemble_tracks
    from imgext.options import MixSettings
    from imgext.sounds.base import Candidate
    from imgext.vision.placement import manual_object

    settings = MixSettings(duration_s=1.0, seed=0)
    rng = np.random.default_rng(11)
    objects = [manual_object(label, x) for label, x in (("dog", 0.2), ("cat", 0.5), ("bird", 0.8))]
    cand = Candidate(id="x", name="x", source="test")
    originals = [(rng.standard_normal(SR) * 0.1).astype(np.float32) for _ in objects]
    expected = np.stack(originals)
    fetched = {i: Fetched(i, cand, b"", t, ()) for i, t in enumerate(originals)}
    refs = [weakref.ref(t) for t in originals]
    del originals
    tracks = assemble_tracks(objects, fetched, settings=settings, views=True)
    np.testing.assert_array_equal(tracks.audio, expected)
    assert tracks.audio.dtype == np.float32
    assert all(ref() is None for ref in refs)  # no fetched copy is left
    assert all(np.shares_memory(fetched[i].track, tracks.audio) for i in fetched)
    again = assemble_tracks(objects, fetched, settings=settings)  # re-assembling from the views still works
    np.testing.assert_array_equal(again.audio, expected)


def test_true_peaks_of_a_loud_long_mix_use_a_mask_not_indices():
    """Most samples of a limited mix are candidates: a byte a sample for them, not int64 indices and float64 bounds."""
    rng = np.random.default_rng(9)
    n = 60 * SR
    x = (rng.standard_normal((2, n)) * 0.4).astype(np.float32)
    where = rng.random(n) < 0.5
    peaks = limiter.sample_true_peaks(x, threshold=0.5, where=where)
    inter = limiter._interpolated_all(x)
    expected = np.max(np.abs(x), axis=0)
    mask = limiter._candidate_mask(expected, 0.5) & where
    assert mask.mean() > 0.4  # dense: the case that held 12 bytes a sample
    np.testing.assert_array_equal(peaks, np.where(mask, np.maximum(expected, inter), expected))
    assert _peak_traced(lambda: limiter.sample_true_peaks(x, threshold=0.5, where=where)) < 18 * n + 8 * 2**20


@pytest.fixture(scope="module")
def small_scene():
    """Four built-in sounds, 3 s: rendered both ways below."""
    from imgext.composition.tracks import fetch_tracks
    from imgext.options import MixSettings
    from imgext.sounds.builtin import BuiltinSource
    from imgext.sounds.selection import choose_sounds
    from imgext.vision.placement import manual_object

    settings = MixSettings(duration_s=3.0, seed=0)
    objects = [manual_object(label, x, importance=i) for label, x, i in
               (("dog", 0.2, 0.9), ("car", 0.5, 0.4), ("bird", 0.8, 0.6), ("train", 0.4, 0.3))]
    source = BuiltinSource()
    tracks, _, _ = fetch_tracks(objects, choose_sounds(objects, source, rng=0), source, settings=settings)
    return tracks, settings


@pytest.mark.parametrize("variant", ["duck", "eq", "air", "spilled", "spilled_air", "dry"])
def test_a_long_scene_mix_drops_its_processed_tracks_and_is_bit_identical(small_scene, monkeypatch, variant):
    """Beyond LONG_SCENE_S the processed tracks are made a row at a time into temporary files, summed
    from there and never held: the same mix, envelope, reverb, masking and stems.  ``spilled``: the
    dry tracks are in a temporary file too (as fetch_tracks leaves a long scene's), and the sums run
    a stretch at a time."""
    from dataclasses import replace

    from imgext.audio.spill import is_spilled, spill
    from imgext.mix import mixer as mixer_module
    from imgext.mix import space
    from imgext.mix.mixer import Mixer, ProcessedRows

    tracks, settings = small_scene
    if variant == "eq":
        settings = replace(settings, time_aware=False)
    if variant == "dry":  # nothing processed, nothing far: the dry tracks are summed as they are
        settings = replace(settings, eq_strength=0.0)
    if variant.endswith("air"):
        tracks = replace(tracks, distance_m=np.array([5.0, 80.0, 20.0, 140.0]))
    normal = Mixer(tracks).render(settings)
    normal_audio = tracks.audio
    if variant.startswith("spilled") or variant == "dry":
        tracks = replace(tracks, audio=spill(tracks.audio))
        assert is_spilled(tracks.audio)
        monkeypatch.setattr(space, "SPILL_CHUNK", 1 << 14)  # 3 s in 9 stretches
    if variant == "duck":
        assert normal.ducking is not None and normal.ducking.active.any()
    if variant == "eq":
        assert any(normal.filters)
    monkeypatch.setattr(mixer_module, "LONG_SCENE_S", 0.0)
    mixer = Mixer(tracks)
    long = mixer.render(settings)
    if variant == "dry":
        assert long.processed is tracks.audio and normal.processed is normal_audio
    else:
        assert isinstance(long.processed, ProcessedRows) and not isinstance(normal.processed, ProcessedRows)
    assert not mixer._processed and not mixer._spatial  # nothing of signal length kept by the Mixer
    np.testing.assert_array_equal(long.mix.audio, normal.mix.audio)
    assert (long.mix.envelope is None) == (normal.mix.envelope is None)
    if normal.mix.envelope is not None:
        np.testing.assert_array_equal(long.mix.envelope, normal.mix.envelope)
    assert long.mix.has_reverb and normal.mix.has_reverb and is_spilled(long.mix.reverb_bus)
    np.testing.assert_array_equal(long.mix.reverb, normal.mix.reverb)
    assert long.mix.loudness_lufs == normal.mix.loudness_lufs and long.mix.true_peak_dbtp == normal.mix.true_peak_dbtp
    np.testing.assert_array_equal(long.masking_after.core_smr_db, normal.masking_after.core_smr_db)
    np.testing.assert_array_equal(np.asarray(long.processed), normal.processed)
    for k in range(tracks.n_tracks):
        np.testing.assert_array_equal(long.mix.stem(long.processed, k), normal.mix.stem(normal.processed, k))
    assert list(long.timings_s) == list(normal.timings_s)
    assert long.row_keys is not None and len(long.row_keys) == tracks.n_tracks


def test_chunked_envelope_interpolation_and_window_check_are_bit_identical():
    from scipy.ndimage import minimum_filter1d

    rng = np.random.default_rng(13)
    n = 2 * limiter._CHUNK + 777
    need = np.minimum(1.0, 0.6 + rng.random(n)).astype(np.float32)
    need[rng.random(n) < 0.001] = np.float32(0.3)
    env = limiter._smooth_gain(need, n, SR, 2.0, 25.0)
    # the whole-signal formulation: block minima interpolated at every sample, then capped by the need
    m = -(-n // limiter._BLOCK)
    blocks = np.pad(need, (0, m * limiter._BLOCK - n), constant_values=1.0).reshape(m, limiter._BLOCK).min(axis=1)
    blocks = minimum_filter1d(blocks, size=3, mode="nearest")
    rate = SR / limiter._BLOCK
    g = limiter._running_min_mean(limiter._running_min_mean(blocks, round(2.0e-3 * rate)), round(25.0e-3 * rate))
    centres = (np.arange(m) + 0.5) * limiter._BLOCK - 0.5
    whole = np.minimum(np.interp(np.arange(n, dtype=np.float64), centres, g).astype(np.float32), need)
    np.testing.assert_array_equal(env, whole)
    np.testing.assert_array_equal(limiter._touched(env), minimum_filter1d(env, size=2 * limiter._HALF + 1,
                                                                          mode="nearest") < 1.0)


def _ducked_whole(tracks: np.ndarray, plan, sr: int) -> np.ndarray:
    """The duck's render as one overlap-add over each whole track (before the block render)."""
    import scipy.fft

    from imgext.engine import duck

    x = np.asarray(tracks, dtype=np.float32)
    hop = plan.hop_length
    n_fft, n, n_frames = 2 * hop, x.shape[1], plan.cut_db.shape[2]
    out = x.copy()
    lo, hi, w = duck._bin_interpolation(n_fft, sr, plan.band_centres_hz)
    w_lo = (np.float32(-np.log(10.0) / 20.0) * (1.0 - w)).astype(np.float32)
    w_hi = (np.float32(-np.log(10.0) / 20.0) * w).astype(np.float32)
    window = np.sqrt(np.hanning(n_fft + 1)[:-1]).astype(np.float32)
    padded = np.zeros((n_frames + 2) * hop, np.float32)
    for i in np.flatnonzero(plan.active):
        padded[hop: hop + n] = x[i]
        frame_max = np.abs(plan.cut_db[i]).max(axis=0)
        busy = np.flatnonzero(np.append(frame_max, frame_max[-1:]) > 1e-3)
        cut_bands = np.abs(plan.cut_db[i]).max(axis=1) > 0.0
        bins = np.flatnonzero(cut_bands[lo] | cut_bands[hi])
        b0, b1 = int(bins[0]), int(bins[-1]) + 1
        blocks = padded.reshape(-1, hop)
        frames = np.empty((busy.size, n_fft), np.float32)
        np.multiply(blocks[busy], window[:hop], out=frames[:, :hop])
        np.multiply(blocks[busy + 1], window[hop:], out=frames[:, hop:])
        spec = scipy.fft.rfft(frames, axis=1)
        cut_t = plan.cut_db[i][:, np.minimum(busy, n_frames - 1)].T
        gain = cut_t[:, lo[b0:b1]] * w_lo[b0:b1]
        gain += cut_t[:, hi[b0:b1]] * w_hi[b0:b1]
        np.exp(gain, out=gain)
        gain -= np.float32(1.0)
        spec[:, :b0] = 0.0
        spec[:, b1:] = 0.0
        spec[:, b0:b1] *= gain
        diff = scipy.fft.irfft(spec, n_fft, axis=1).astype(np.float32, copy=False)
        diff *= window
        ola = np.zeros((n_frames + 2, hop), np.float32)
        ola[busy] = diff[:, :hop]
        ola[busy + 1] += diff[:, hop:]
        np.add(x[i], ola.reshape(-1)[hop: hop + n], out=out[i])
    return out


def _duck_plan(n_samples: int, seed: int, hop: int = 1024):
    """Two tracks, the second ducked in bursts (some frames untouched, a makeup stretch), on a 1024-sample hop."""
    from imgext.engine import duck
    from imgext.masking.analysis import band_energies

    rng = np.random.default_rng(seed)
    n_frames = n_samples // hop + 1
    centres = band_energies(np.zeros((1, 4 * hop), np.float32), SR).band_centres_hz
    cut = np.zeros((2, centres.size, n_frames), np.float32)
    on = np.convolve(rng.random(n_frames) < 0.05, np.ones(9), "same") > 0
    cut[1, 3:15, on] = (rng.random((on.sum(), 12)) * 6.0).astype(np.float32)
    cut[1, 20:24, n_frames // 3: n_frames // 3 + 40] = -2.0
    cut[1, :, -1] = 1.0  # the last (partial-hop) frame is cut too
    return duck.DuckPlan(cut, np.zeros((2, centres.size)), hop / SR, hop, centres, np.zeros(2),
                         np.array([True, False]))


@pytest.mark.parametrize("block_rows", [2, 3, 7, 64])
def test_block_rendered_duck_is_bit_identical(monkeypatch, block_rows):
    from imgext.engine import duck

    n = 200 * 1024 + 333
    rng = np.random.default_rng(block_rows)
    tracks = (rng.standard_normal((2, n)) * 0.2).astype(np.float32)
    tracks[1, :5000] = -0.0  # a signed zero stays what the whole-signal sum makes of it
    plan = _duck_plan(n, block_rows)
    expected = _ducked_whole(tracks, plan, SR)
    monkeypatch.setattr(duck, "RENDER_BLOCK_SAMPLES", block_rows * plan.hop_length)
    np.testing.assert_array_equal(duck.apply_ducking(tracks, plan, SR), expected)
    cache = duck.SpectrumCache()
    np.testing.assert_array_equal(duck.apply_ducking(tracks, plan, SR, cache=cache), expected)
    np.testing.assert_array_equal(duck.apply_ducking(tracks, plan, SR, cache=cache), expected)  # from the spectra
    assert cache.transforms == 1


def test_ducking_a_long_track_holds_blocks_not_whole_frames():
    """60 s: the whole-signal render held frames, spectra, differences and the overlap-add (~4.5 x the track)."""
    from imgext.engine import duck

    n = 60 * SR
    rng = np.random.default_rng(17)
    track = (rng.standard_normal((1, n)) * 0.2).astype(np.float32)
    plan = _duck_plan(n, 3)
    plan = duck.DuckPlan(plan.cut_db[1:], plan.static_db[1:], plan.hop_s, plan.hop_length, plan.band_centres_hz,
                         plan.loudness_change_lu[1:], plan.maskees[1:])
    plan.cut_db[0, 3:15] = 2.0  # every frame busy
    assert _peak_traced(lambda: duck.apply_ducking(track, plan, SR)) < track.nbytes + 6 * duck.RENDER_BLOCK_SAMPLES * 8


def test_a_long_scene_is_fetched_into_temporary_files_and_exported_the_same(monkeypatch, tmp_path):
    """Beyond LONG_SCENE_S the fetched source bytes and the stacked tracks live in temporary files:
    the same tracks, and the same files on disk (mix, stems, sources, scene.json) as without."""
    from pathlib import Path

    from imgext.audio.spill import SpilledBytes, is_spilled
    from imgext.composition import tracks as tracks_module
    from imgext.composition.tracks import fetch_tracks
    from imgext.mix import mixer as mixer_module
    from imgext.mix.mixer import Mixer
    from imgext.options import MixSettings
    from imgext.output.export import build_outputs, write_outputs
    from imgext.sounds.builtin import BuiltinSource
    from imgext.sounds.selection import choose_sounds
    from imgext.vision.placement import manual_object

    settings = MixSettings(duration_s=2.0, seed=0)
    objects = [manual_object(label, x, importance=i) for label, x, i in
               (("dog", 0.2, 0.9), ("car", 0.5, 0.4), ("bird", 0.8, 0.6))]

    def render(out: Path):
        source = BuiltinSource()
        tracks, assignments, fetched = fetch_tracks(objects, choose_sounds(objects, source, rng=0), source,
                                                    settings=settings)
        outcome = Mixer(tracks).render(settings)
        files, _ = build_outputs(image=None, objects=objects, assignments=assignments, fetched=fetched,
                                 tracks=tracks, outcome=outcome, settings=settings, source_description="test",
                                 timings_s={})
        write_outputs(out, files)
        return tracks, fetched

    short_tracks, short_fetched = render(tmp_path / "short")
    monkeypatch.setattr(tracks_module, "LONG_SCENE_S", 1.0)
    monkeypatch.setattr(mixer_module, "LONG_SCENE_S", 1.0)
    long_tracks, long_fetched = render(tmp_path / "long")
    assert is_spilled(long_tracks.audio) and not is_spilled(short_tracks.audio)
    np.testing.assert_array_equal(long_tracks.audio, short_tracks.audio)
    for i, f in long_fetched.items():
        assert isinstance(f.data, SpilledBytes) and f.data == short_fetched[i].data
        assert is_spilled(f.track)
    names = sorted(p.relative_to(tmp_path / "short").as_posix() for p in (tmp_path / "short").rglob("*") if p.is_file())
    assert any(n.startswith("sources/") for n in names) and any(n.startswith("stems/") for n in names)
    assert names == sorted(p.relative_to(tmp_path / "long").as_posix() for p in (tmp_path / "long").rglob("*")
                           if p.is_file())
    for name in names:
        if name.endswith((".wav", ".flac")) or name.startswith("sources/"):
            assert (tmp_path / "long" / name).read_bytes() == (tmp_path / "short" / name).read_bytes(), name


def test_released_spilled_arrays_read_the_same(tmp_path):
    from imgext.audio.spill import SpilledBytes, is_spilled, release, spill, spilled_array

    rng = np.random.default_rng(21)
    x = rng.standard_normal((3, 100_000)).astype(np.float32)
    s = spill(x)
    assert is_spilled(s) and is_spilled(s[1]) and is_spilled(np.asarray(s)) and not is_spilled(x)
    np.testing.assert_array_equal(s, x)
    s[2, :10] = 1.0
    release(s)
    assert (s[2, :10] == 1.0).all() and np.array_equal(s[:2], x[:2])
    assert spilled_array((0, 5)).shape == (0, 5)
    b = SpilledBytes(b"abc" * 1000)
    assert bytes(b) == b() == b"abc" * 1000 and len(b) == 3000 and b == b"abc" * 1000
    from imgext.audio.io import decode, encode_wav

    wav = encode_wav(x[0] * np.float32(0.1), SR, subtype="PCM_16")  # a spilled source decodes as its bytes do
    np.testing.assert_array_equal(decode(SpilledBytes(wav), name="x").audio, decode(wav, name="x").audio)


@pytest.mark.parametrize("n", [limiter._SCAN * 7, limiter._SCAN * 7 + 3, 5])
def test_near_blocks_need_no_padded_copy_and_are_the_same(n):
    rng = np.random.default_rng(n)
    peaks = np.abs(rng.standard_normal(n)).astype(np.float32)
    m = -(-n // limiter._SCAN)
    block_max = np.pad(peaks, (0, m * limiter._SCAN - n)).reshape(m, limiter._SCAN).max(axis=1)
    near = limiter.maximum_filter1d(block_max, size=3, mode="constant") * limiter._BOUND_SUM > 1.5
    blocks, count = limiter._near_blocks(peaks, 1.5)
    assert count == m
    np.testing.assert_array_equal(blocks, np.flatnonzero(near))

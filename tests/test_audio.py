"""Audio I/O: decoding real and broken files, resampling, fitting to the scene."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf

from imgext.audio.io import (
    decode,
    encode_wav,
    fit_duration,
    nonzero_spans,
    prepare_source,
    resample,
    resample_sparse,
    to_mono,
    write_atomic,
)
from imgext.errors import AudioError


def _wav(x: np.ndarray, sr: int, subtype: str = "PCM_16") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, x.T if x.ndim == 2 else x, sr, format="WAV", subtype=subtype)
    return buf.getvalue()


@pytest.mark.parametrize("name", ["cat", "cow", "dog", "duck", "frog", "horse", "owl", "pig", "rooster", "sheep"])
def test_every_shared_mp3_decodes_from_path_and_bytes(sounds_dir, name):
    path = sounds_dir / f"{name}.mp3"
    a = decode(path, name=name)
    b = decode(path.read_bytes(), name=name)
    assert a.sample_rate in (44100, 48000)
    assert a.audio.dtype == np.float32 and a.audio.ndim == 2 and a.audio.shape[0] in (1, 2)
    assert np.array_equal(a.audio, b.audio)
    assert 0.5 < a.audio.shape[1] / a.sample_rate < 10
    assert np.isfinite(a.audio).all() and np.abs(a.audio).max() > 0.01


@pytest.mark.parametrize("fmt,subtype", [("WAV", "PCM_24"), ("FLAC", "PCM_16"), ("OGG", "VORBIS")])
def test_formats_round_trip(rng, fmt, subtype):
    x = (0.3 * rng.standard_normal((2, 22050))).astype(np.float32)
    buf = io.BytesIO()
    sf.write(buf, x.T, 22050, format=fmt, subtype=subtype)
    d = decode(buf.getvalue(), name=f"noise.{fmt.lower()}")
    assert d.audio.shape == (2, 22050) and d.sample_rate == 22050


def test_corrupt_bytes_name_the_sound(rng):
    with pytest.raises(AudioError, match="'barking dog' could not be decoded"):
        decode(rng.bytes(5000), name="barking dog")


def test_truncated_mp3_header_only(sounds_dir):
    with pytest.raises(AudioError, match="owl"):
        decode((sounds_dir / "owl.mp3").read_bytes()[:200], name="owl")


def test_empty_file_and_no_samples():
    with pytest.raises(AudioError, match="empty file"):
        decode(b"", name="nothing")
    with pytest.raises(AudioError, match="no audio samples"):
        decode(_wav(np.zeros(0, dtype=np.float32), 44100), name="zero frames")


def test_one_sample_is_too_short_but_a_short_click_works():
    with pytest.raises(AudioError, match="too short"):
        decode(_wav(np.ones(1, dtype=np.float32) * 0.5, 44100), name="blip")
    click = np.zeros(int(0.3 * 44100), dtype=np.float32)
    click[:200] = 0.8
    track, notes = prepare_source(_wav(click, 44100), name="click", duration_s=5.0)
    assert track.shape == (5 * 44100,)
    # the click repeats through the scene, attack intact, instead of playing once
    period = len(click) - int(min(0.25 * 44100, len(click) // 4))
    peaks = [np.max(np.abs(track[k * period : (k + 1) * period])) for k in range(5 * 44100 // period - 1)]
    assert len(peaks) >= 14 and min(peaks[1:]) > 0.75  # the first one sits under the 5 ms scene fade-in


def test_silent_sound_is_a_silent_track_not_an_error():
    track, _ = prepare_source(_wav(np.zeros(44100, dtype=np.float32), 44100), name="silence", duration_s=3.0)
    assert track.shape == (3 * 44100,) and not np.any(track)


def test_nan_and_inf_samples_become_silence_with_a_note():
    x = np.full(8000, 0.25, dtype=np.float32)
    x[100:110] = np.nan
    x[200] = np.inf
    d = decode(_wav(x, 8000, subtype="FLOAT"), name="broken float")
    assert np.isfinite(d.audio).all()
    assert any("11 NaN/infinite" in n for n in d.notes)


def test_long_file_is_capped_with_a_note():
    x = np.zeros(8000 * 20, dtype=np.float32)
    d = decode(_wav(x, 8000), name="long", max_seconds=5)
    assert d.audio.shape[1] == 5 * 8000
    assert any("only the first 5 s" in n for n in d.notes)


def test_multichannel_folds_to_mono():
    x = np.stack([np.full(4800, v, dtype=np.float32) for v in (0.6, 0.0, 0.0, 0.0, 0.0, 0.6)])
    d = decode(_wav(x, 48000), name="5.1")
    assert d.audio.shape[0] == 6
    np.testing.assert_allclose(to_mono(d.audio), 0.2, atol=1e-4)


@pytest.mark.parametrize("sr_in", [8000, 22050, 48000, 192000])
def test_resample_keeps_a_tone(sr_in):
    t = np.arange(sr_in) / sr_in
    x = np.sin(2 * np.pi * 440 * t).astype(np.float32)
    y = resample(x, sr_in, 44100)
    assert abs(len(y) - 44100) <= 2
    spectrum = np.abs(np.fft.rfft(y[2000:42000] * np.hanning(40000)))
    peak_hz = np.argmax(spectrum) * 44100 / 40000
    assert abs(peak_hz - 440) < 3


@pytest.mark.parametrize(("sr_in", "sr_out"), [(44100, 22050), (48000, 24000), (44100, 24000), (22050, 44100)])
def test_resampling_only_where_a_signal_sounds_is_resampling_it_whole(sr_in, sr_out):
    """An event track is silent between events: resample_sparse resamples the events alone, to the same samples."""
    rng = np.random.default_rng(sr_in + sr_out)
    n = 12 * sr_in + 5  # (not a whole number of the rates' period)
    mono = np.zeros(n, np.float32)
    for start in (0, 3 * sr_in, 3 * sr_in + 4000, 7 * sr_in + 1, n - 700):  # at both ends, two close together
        mono[start:start + 900] = (0.5 * rng.standard_normal(len(mono[start:start + 900]))).astype(np.float32)
    stereo = np.zeros((2, n), np.float32)
    stereo[1, 5 * sr_in:5 * sr_in + 3000] = 0.3  # a step: the filter rings on both sides of it
    for x in (mono, stereo, np.zeros(n, np.float32)):
        whole, sparse = resample(x, sr_in, sr_out), resample_sparse(x, sr_in, sr_out)
        assert sparse.shape == whole.shape and sparse.dtype == np.float32
        np.testing.assert_allclose(sparse, whole, rtol=0, atol=1e-6)
        far = np.ones(n, bool)  # more than 0.1 s from any nonzero input sample: exactly silent
        for a, length in nonzero_spans(x, block=1):
            far[max(0, a - sr_in // 10):a + length + sr_in // 10] = False
        keep = far[np.minimum((np.arange(whole.shape[-1]) * sr_in) // sr_out, n - 1)]
        assert not np.any(sparse[..., keep])
    dense = (0.1 * rng.standard_normal(n)).astype(np.float32)
    np.testing.assert_array_equal(resample_sparse(dense, sr_in, sr_out), resample(dense, sr_in, sr_out))


def test_fit_duration_loop_is_seamless_and_faded():
    sr = 8000
    t = np.arange(sr) / sr
    x = (0.5 * np.sin(2 * np.pi * 100 * t)).astype(np.float32)  # 1 s, an integer number of cycles
    y = fit_duration(x, 5 * sr, sr, crossfade_s=0.05, fade_in_s=0.01, fade_out_s=0.1)
    assert y.shape == (5 * sr,)
    assert y[0] == 0.0 and abs(y[-1]) < 1e-6  # faded in and out
    middle = y[int(0.2 * sr) : int(4.8 * sr)]
    assert np.max(np.abs(np.diff(middle))) < 0.05  # no click at the seams (a 100 Hz sine steps <= 0.04)
    assert np.sqrt(np.mean(middle**2)) == pytest.approx(0.5 / np.sqrt(2), rel=0.05)


def test_fit_duration_trims_long_sounds(rng):
    x = rng.standard_normal(10000).astype(np.float32)
    y = fit_duration(x, 4000, 8000, fade_in_s=0, fade_out_s=0)
    assert np.array_equal(y, x[:4000])


def test_encode_and_atomic_write(tmp_path, rng):
    x = (0.1 * rng.standard_normal((2, 1000))).astype(np.float32)
    data = encode_wav(x, 44100)
    path = write_atomic(tmp_path / "sub" / "a.wav", data)
    assert path.read_bytes() == data
    assert not list((tmp_path / "sub").glob("*.part"))
    back, sr = sf.read(path, dtype="float32", always_2d=True)
    assert sr == 44100 and back.shape == (1000, 2)


@pytest.mark.parametrize("subtype", ["PCM_16", "PCM_24"])
@pytest.mark.parametrize("shape", [(2, 150001), (70001,), (1, 999), (2, 0), (0,)])
def test_encode_wav_writes_the_bytes_soundfile_writes(shape, subtype, rng):
    """The NumPy encoder is libsndfile's, byte for byte: header, rounding (ties to even), clipping, odd sizes."""
    x = (0.7 * rng.standard_normal(shape)).astype(np.float32)
    flat = x.reshape(-1)
    edges = [1.0, -1.0, 0.99999994, -1.0000001, 3.0, -2e-10, 2e-10, 0.5 / 2**23, 1.5 / 2**23, -0.5 / 2**15, np.inf,
             -np.inf, 2**-24, 1.5 / 2**15, -1.5 / 2**15]
    flat[: min(len(edges), flat.size)] = edges[: flat.size]
    flat[len(edges): len(edges) + 2000] = rng.integers(-2**23, 2**23, flat[len(edges): len(edges) + 2000].size) / 2**23
    assert encode_wav(x, 44100, subtype=subtype) == _wav(x, 44100, subtype)
    assert encode_wav(x.astype(np.float64), 22050, subtype=subtype) == _wav(x, 22050, subtype)


def test_encode_wav_float_and_many_channels_stay_soundfiles(rng):
    x = (0.3 * rng.standard_normal((3, 500))).astype(np.float32)
    assert encode_wav(x, 8000) == _wav(x, 8000, "PCM_24")
    assert encode_wav(x[:2], 8000, subtype="FLOAT") == _wav(x[:2], 8000, "FLOAT")

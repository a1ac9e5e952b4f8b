"""Audio I/O: decode, resample, fold to mono, fit to a duration, encode.

Array convention everywhere in :mod:`imgext`: ``float32``, multichannel audio
has shape ``(n_channels, n_samples)``, mono audio ``(n_samples,)``.  The
samples-first layout of soundfile and soxr is converted here and nowhere else.
"""

from __future__ import annotations

import functools
import io
import math
import numbers
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from imgext.audio.spill import SpilledBytes
from imgext.errors import AudioError, ParameterError
from imgext.options import DEFAULT_SAMPLE_RATE
from imgext.untrusted import scrub

__all__ = [
    "DEFAULT_SAMPLE_RATE",
    "MAX_SOURCE_SECONDS",
    "MIN_SOURCE_SECONDS",
    "MAX_SOURCE_PEAK",
    "MAX_SAMPLE_RATE",
    "MAX_CHANNELS",
    "MAX_DECODE_SAMPLES",
    "MAX_SOURCE_BYTES",
    "read_bounded",
    "Decoded",
    "decode",
    "to_mono",
    "nonzero_spans",
    "resampler_reach",
    "resample_sparse",
    "resample",
    "fit_duration",
    "prepare_source",
    "encode_wav",
    "encode_flac",
    "write_atomic",
    "write_atomic_with",
    "db_to_gain",
    "gain_to_db",
    "peak_dbfs",
]


MAX_SOURCE_SECONDS = 600.0
"""Longest stretch of a source file that is decoded, in seconds; longer files are cut with a note."""

MIN_SOURCE_SECONDS = 0.02
"""Shortest usable sound in seconds (20 ms: below that a loop is a buzz, not a sound)."""

MAX_SOURCE_PEAK = 16.0
"""Highest sample peak kept as it is (+24 dBFS); a float file peaking above is scaled down to full scale.

Such files are broken (integer samples stored as float ...), and samples near the float32 limit
would overflow to infinity when resampled or summed.
"""


MAX_SAMPLE_RATE = 192_000
"""Highest sample rate accepted, in Hz; a header claiming more is refused (655 350 Hz files are bombs)."""

MAX_CHANNELS = 8
"""Most channels accepted (7.1); a header claiming more is refused."""

MAX_DECODE_SAMPLES = 2**25
"""Most samples (frames x channels, ~33.5 M) read from one file, whatever its length in seconds."""

MAX_SOURCE_BYTES = 100 * 2**20
"""Largest encoded sound accepted, in bytes (a 2 GB sparse WAV costs 4 KB on disk, not in memory)."""

_BLOCK_FRAMES = 65536


@dataclass(frozen=True)
class Decoded:
    """A decoded sound.

    Attributes
    ----------
    audio : np.ndarray [shape=(n_channels, n_samples), dtype=float32]
    sample_rate : int
        In Hz.
    notes : tuple of str
        Things the user should know (file cut to a maximum length, bad samples zeroed).
    """

    audio: np.ndarray
    sample_rate: int
    notes: tuple[str, ...] = ()


def db_to_gain(gain_db):
    """Convert decibels to a linear amplitude factor (``10 ** (dB / 20)``)."""
    return np.power(10.0, np.asarray(gain_db, dtype=np.float64) / 20.0)


def gain_to_db(gain, floor_db: float = -200.0):
    """Convert a linear amplitude factor to decibels, clamped below at ``floor_db``."""
    g = np.maximum(np.abs(np.asarray(gain, dtype=np.float64)), 10.0 ** (floor_db / 20.0))
    return 20.0 * np.log10(g)


def peak_dbfs(audio: np.ndarray) -> float:
    """Sample peak of ``audio`` in dBFS (``-inf`` for digital silence)."""
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    return float("-inf") if peak == 0.0 else 20.0 * np.log10(peak)


def decode(
    data: bytes | str | os.PathLike,
    *,
    name: str = "sound",
    max_seconds: float = MAX_SOURCE_SECONDS,
    mono: bool = False,
) -> Decoded:
    """Decode WAV, FLAC, OGG or MP3 from bytes or a path, with bounded memory.

    Parameters
    ----------
    data : bytes or path
        The encoded file (at most :data:`MAX_SOURCE_BYTES`).
    name : str
        Shown in error messages so the user knows which sound failed (never a file path).
    max_seconds : float > 0
        Only this many seconds are decoded; a note says when a file was cut.
    mono : bool
        Fold channels to one while reading, block by block (memory: one channel, not all).

    Returns
    -------
    Decoded
        ``audio`` has shape ``(1, n_samples)`` when ``mono``.

    Raises
    ------
    AudioError
        If the data is not audio, is corrupt, holds no samples, is shorter than
        :data:`MIN_SOURCE_SECONDS`, is larger than :data:`MAX_SOURCE_BYTES`, or claims
        more than :data:`MAX_SAMPLE_RATE` Hz or :data:`MAX_CHANNELS` channels.
    ParameterError
        If ``max_seconds`` is not a positive, finite number.
    """
    if not (isinstance(max_seconds, numbers.Real) and 0 < max_seconds < math.inf):
        raise ParameterError(f"max_seconds={max_seconds!r} must be a positive number of seconds")
    if isinstance(data, SpilledBytes):  # a long scene's source, kept in a temporary file
        data = bytes(data)
    if not isinstance(data, (bytes, bytearray, memoryview)):
        return _decode(os.fspath(data), name, max_seconds, mono)  # libsndfile reads only the frames asked for
    data = bytes(data)
    if not data:
        raise AudioError(f"sound {name!r} is an empty file (0 bytes)")
    if len(data) > MAX_SOURCE_BYTES:
        raise AudioError(f"sound {name!r} is {len(data) / 2**20:.0f} MB; the limit is {MAX_SOURCE_BYTES // 2**20} MB")
    try:
        return _decode(io.BytesIO(data), name, max_seconds, mono)
    except AudioError as exc:
        suffix = _sniff_suffix(data)
        if suffix is None or getattr(exc, "final", False):
            raise
        # libsndfile finds some valid MP3s (odd ID3 headers) only with the file extension as a hint.
        with tempfile.NamedTemporaryFile(suffix=suffix) as tmp:
            tmp.write(data)
            tmp.flush()
            return _decode(tmp.name, name, max_seconds, mono)


def read_bounded(path: str | os.PathLike, *, name: str = "sound", max_bytes: int = MAX_SOURCE_BYTES) -> bytes:
    """The bytes of the file at ``path``, refusing more than ``max_bytes`` (read is bounded, not just checked).

    Errors name the sound (``name``), never the path.
    """
    try:
        with open(path, "rb") as f:
            data = f.read(max_bytes + 1)
    except (OSError, ValueError) as exc:
        raise AudioError(f"cannot read sound {name!r}: {getattr(exc, 'strerror', None) or 'unreadable'}") from None
    if len(data) > max_bytes:
        raise AudioError(f"sound {name!r} is larger than the limit of {max_bytes // 2**20} MB")
    return data


def _sniff_suffix(data: bytes) -> str | None:
    """File extension from magic bytes (for libsndfile's format detection)."""
    if data[:3] == b"ID3" or (len(data) > 1 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0):
        return ".mp3"
    return {b"OggS": ".ogg", b"fLaC": ".flac", b"RIFF": ".wav", b"FORM": ".aiff"}.get(data[:4])


def _refuse(message: str) -> AudioError:
    exc = AudioError(message)
    exc.final = True  # retrying with a file-name hint cannot help
    return exc


def _read_blocks(f: sf.SoundFile, limit: int, mono: bool) -> tuple[np.ndarray, bool]:
    """Up to ``limit`` frames as ``(n, channels)`` (or ``(n, 1)`` if ``mono``) and whether more follow."""
    ch = f.channels
    known = f.frames if 0 < f.frames < 2**62 else None
    width = 1 if mono else ch
    n_alloc = min(limit, known) if known is not None else min(limit, _BLOCK_FRAMES * 16)
    out = np.empty((n_alloc, width), dtype=np.float32)
    n = 0
    while n < limit:
        block = f.read(frames=min(_BLOCK_FRAMES, limit - n), dtype="float32", always_2d=True)
        k = block.shape[0]
        if k == 0:
            break
        if n + k > out.shape[0]:  # length unknown (or wrong) in the header: grow geometrically
            grown = np.empty((min(limit, max(2 * out.shape[0], n + k)), width), dtype=np.float32)
            grown[:n] = out[:n]
            out = grown
        if mono and ch > 1:
            np.mean(block, axis=1, keepdims=True, out=out[n : n + k])
        else:
            out[n : n + k] = block
        n += k
    more = n >= limit and f.read(frames=1, dtype="float32", always_2d=True).shape[0] > 0
    return out[:n], more


def _decode(src, name: str, max_seconds: float, mono: bool = False) -> Decoded:
    notes: list[str] = []
    try:
        with sf.SoundFile(src) as f:
            sr = int(f.samplerate)
            if sr <= 0 or f.channels <= 0:
                raise _refuse(f"sound {name!r} has an invalid header ({f.channels} channels at {sr} Hz)")
            if sr > MAX_SAMPLE_RATE:
                raise _refuse(f"sound {name!r} claims {sr} Hz; at most {MAX_SAMPLE_RATE} Hz is accepted")
            if f.channels > MAX_CHANNELS:
                raise _refuse(f"sound {name!r} has {f.channels} channels; at most {MAX_CHANNELS} are accepted")
            by_samples = MAX_DECODE_SAMPLES // f.channels
            limit = max(1, min(int(max_seconds * sr), by_samples))
            cut_s = limit / sr
            total = f.frames
            frames, more = _read_blocks(f, limit, mono)
    except AudioError:
        raise
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError, OSError, EOFError, MemoryError) as exc:
        raise AudioError(f"sound {name!r} could not be decoded: {_first_line(exc)}") from None
    if more:
        length = f"{total / sr:.0f} s" if 0 < total < 2**62 else "longer"
        notes.append(f"sound {name!r} is {length}; only the first {cut_s:g} s are used")
    if frames.shape[0] == 0:
        raise AudioError(f"sound {name!r} holds no audio samples")
    if frames.shape[0] < MIN_SOURCE_SECONDS * sr:
        raise AudioError(
            f"sound {name!r} is too short to use ({frames.shape[0]} samples, "
            f"{frames.shape[0] / sr * 1000:.1f} ms; at least {MIN_SOURCE_SECONDS * 1000:.0f} ms needed)"
        )
    audio = np.ascontiguousarray(frames.T)
    bad = ~np.isfinite(audio)
    if bad.any():
        count = int(bad.sum())
        audio[bad] = 0.0
        notes.append(f"sound {name!r} had {count} NaN/infinite samples; they were set to silence")
    # Float files may exceed full scale; keep them (the mix normalises) but never let inf through.
    peak = float(np.max(np.abs(audio)))
    if peak > MAX_SOURCE_PEAK:
        audio /= np.float32(peak)
        notes.append(f"sound {name!r} peaked at {20 * np.log10(peak):+.0f} dBFS; it was scaled down to full scale")
    return Decoded(audio=audio, sample_rate=sr, notes=tuple(notes))


def _first_line(exc: BaseException) -> str:
    """The first line of an error, without temp-file paths or object reprs (they mean nothing to a user)."""
    text = str(exc).strip().splitlines()
    return scrub(text[0]) if text else type(exc).__name__


def to_mono(audio: np.ndarray) -> np.ndarray:
    """Fold ``(n_channels, n_samples)`` to mono ``(n_samples,)`` by averaging channels.

    A point source panned in the mix must be mono: a stereo recording at one
    emitter adds nothing and can comb-filter.
    """
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 1:
        return audio
    if audio.ndim != 2:
        raise ParameterError(f"audio must have shape (n_channels, n_samples), got {audio.shape}")
    return audio.mean(axis=0, dtype=np.float32) if audio.shape[0] > 1 else audio[0]


def resample(audio: np.ndarray, sr_in: int, sr_out: int, *, quality: str = "HQ") -> np.ndarray:
    """Resample with soxr.

    Parameters
    ----------
    audio : np.ndarray [shape=(n_samples,) or (n_channels, n_samples)]
    sr_in, sr_out : int > 0
        Sample rates in Hz.
    quality : {"QQ", "LQ", "MQ", "HQ", "VHQ"}
        soxr quality preset.
    """
    if sr_in <= 0 or sr_out <= 0:
        raise ParameterError(f"sample rates must be positive, got {sr_in} -> {sr_out}")
    if sr_in == sr_out:
        return np.asarray(audio, dtype=np.float32)
    x = np.asarray(audio, dtype=np.float32)
    y = soxr.resample(x.T if x.ndim == 2 else x, sr_in, sr_out, quality=quality)
    return np.ascontiguousarray(y.T if x.ndim == 2 else y, dtype=np.float32)


def nonzero_spans(q: np.ndarray, *, block: int = 1024) -> tuple[tuple[int, int], ...]:
    """Where a signal is not silent: runs of ``block``-sample blocks holding a nonzero sample.

    Parameters
    ----------
    q : np.ndarray [shape=(n,) or (n_channels, n)]
        Samples; a block is silent when every channel is exactly zero in it.
    block : int > 0
        Block length in samples.

    Returns
    -------
    tuple of (start, length)
        In samples, ascending and disjoint, adjacent blocks merged; the last may end short at ``n``.
        Empty for an all-zero signal.
    """
    if block <= 0:
        raise ParameterError(f"block={block} must be a positive number of samples")
    x = np.asarray(q)
    n = int(x.shape[-1])
    n_blocks = -(-n // block)
    if n_blocks == 0:
        return ()
    x = x.reshape(-1, n)
    whole = n // block
    busy = np.empty(n_blocks, dtype=bool)
    busy[:whole] = np.any(x[:, :whole * block].reshape(x.shape[0], whole, block), axis=(0, 2))  # (no copy)
    if n_blocks > whole:
        busy[whole] = np.any(x[:, whole * block:])
    edges = np.diff(np.concatenate([[0], busy.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1) * block, np.minimum(np.flatnonzero(edges == -1) * block, n)
    return tuple((int(a), int(b - a)) for a, b in zip(starts, ends))


@functools.lru_cache(maxsize=16)
def resampler_reach(sr_in: int, sr_out: int, quality: str = "HQ") -> int:
    """How far (input samples, each way) one input sample reaches in :func:`resample`'s output: its filter's half length.

    Measured once per rates and quality, on an impulse: every output sample further than this
    from the nearest nonzero input sample is exactly zero.
    """
    n = 1 << 16
    x = np.zeros(n, np.float32)
    x[n // 2] = 1.0
    y = np.asarray(resample(x, sr_in, sr_out, quality=quality))
    nz = np.flatnonzero(y)
    if not nz.size:
        return 0
    centre = (n // 2) * sr_out / sr_in
    return int(math.ceil(max(centre - nz[0], nz[-1] - centre) * sr_in / sr_out)) + 2


def resample_sparse(audio: np.ndarray, sr_in: int, sr_out: int, *, quality: str = "HQ",
                    block: int = 2048, max_share: float = 0.9) -> np.ndarray:
    """:func:`resample` that spends nothing on silence: only the stretches around nonzero samples are resampled.

    A signal that is exactly zero in long stretches (an event track between its events, a duck's
    wet part where it does not cut) is resampled a stretch at a time (:func:`nonzero_spans` of
    ``block`` samples, widened by the filter's reach, :func:`resampler_reach`, and aligned to the
    rates' common period), and the output is zero elsewhere: the same samples as :func:`resample`
    up to float rounding (~1e-7 of full scale; the filter sees the same input, in pieces).  Spans
    covering more than ``max_share`` of the signal: it is resampled whole.

    Parameters
    ----------
    audio : np.ndarray [shape=(n_samples,) or (n_channels, n_samples)]
    sr_in, sr_out : int > 0
        Sample rates in Hz.
    quality : str
        soxr quality preset (:func:`resample`).
    block : int > 0
        Granularity of the silence looked for, in input samples.
    max_share : float in [0, 1]
        Above this share of nonzero blocks the signal is resampled whole.

    Returns
    -------
    np.ndarray [shape=(n_out,) or (n_channels, n_out), dtype=float32]
        ``n_out`` as :func:`resample` makes it.
    """
    x = np.asarray(audio, dtype=np.float32)
    if sr_in <= 0 or sr_out <= 0:
        raise ParameterError(f"sample rates must be positive, got {sr_in} -> {sr_out}")
    if sr_in == sr_out:
        return x
    n = int(x.shape[-1])
    spans = nonzero_spans(x, block=block)
    if sum(length for _, length in spans) > max_share * n:
        return resample(x, sr_in, sr_out, quality=quality)
    g = math.gcd(int(sr_in), int(sr_out))
    period_in, period_out = sr_in // g, sr_out // g  # input samples per whole number of output samples
    reach = resampler_reach(int(sr_in), int(sr_out), quality)
    stretches: list[list[int]] = []
    for a, length in spans:  # widened by the reach, started on the period, merged where they meet
        lo = max(0, a - reach) // period_in * period_in
        hi = min(n, a + length + reach)
        if stretches and lo <= stretches[-1][1]:
            stretches[-1][1] = hi
        else:
            stretches.append([lo, hi])
    # The stretches end to end, each from a whole period (their content stays 2 reaches apart), in one call
    # (soxr's set-up costs ~0.5 ms a call: as much as resampling 5 s).
    starts = np.cumsum([0] + [-(-(hi - lo) // period_in) * period_in for lo, hi in stretches])
    packed = np.zeros(x.shape[:-1] + (int(starts[-1]),), np.float32)
    for (lo, hi), at in zip(stretches, starts):
        packed[..., at:at + hi - lo] = x[..., lo:hi]
    y = resample(packed, sr_in, sr_out, quality=quality)
    n_out = (2 * n * sr_out + sr_in) // (2 * sr_in)  # soxr's length: n * sr_out / sr_in rounded half up
    out = np.zeros(x.shape[:-1] + (n_out,), np.float32)
    for (lo, _hi), at, end in zip(stretches, starts[:-1], starts[1:]):
        src, dst = at // period_in * period_out, lo // period_in * period_out
        m = min(end // period_in * period_out, y.shape[-1]) - src
        m = min(m, n_out - dst)
        out[..., dst:dst + m] = y[..., src:src + m]  # (a later stretch overwrites the zeros an earlier one ends in)
    return out


def _loop_fades(head: np.ndarray, tail: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """Fade-in for the head and fade-out for the tail at a loop seam.

    * One-shot sounds (tail more than 12 dB below the head: a bark, a click)
      keep their attack: the head gets only a 2 ms fade-in, the quiet tail
      fades out under it.
    * Continuous sounds get a crossfade whose law follows the correlation of
      head and tail: equal-power for uncorrelated material (noise, crowds),
      linear for in-phase material (steady tones), so the level stays flat.
    """
    n = head.shape[0]
    t = (np.arange(n, dtype=np.float64) + 0.5) / n
    fade_out = np.cos(0.5 * np.pi * t)
    h_rms = float(np.sqrt(np.mean(np.square(head, dtype=np.float64))))
    t_rms = float(np.sqrt(np.mean(np.square(tail, dtype=np.float64))))
    if t_rms < 0.25 * h_rms:
        short = max(1, min(n, int(0.002 * sample_rate)))
        fade_in = np.ones(n)
        fade_in[:short] = np.sin(0.5 * np.pi * (np.arange(short) + 0.5) / short)
        return fade_in.astype(np.float32), fade_out.astype(np.float32)
    denom = h_rms * t_rms * n
    r = float(np.clip(np.dot(head.astype(np.float64), tail.astype(np.float64)) / denom, 0.0, 1.0)) if denom > 0 else 0.0
    fade_in = (1.0 - r) * np.sin(0.5 * np.pi * t) + r * t
    fade_out = (1.0 - r) * fade_out + r * (1.0 - t)
    return fade_in.astype(np.float32), fade_out.astype(np.float32)


def fit_duration(
    audio: np.ndarray,
    n_samples: int,
    sample_rate: int,
    *,
    crossfade_s: float = 0.25,
    fade_in_s: float = 0.005,
    fade_out_s: float = 0.5,
) -> np.ndarray:
    """Loop (with an equal-power crossfade) or trim mono audio to ``n_samples``.

    Parameters
    ----------
    audio : np.ndarray [shape=(n,), dtype=float32]
        Mono source.
    n_samples : int > 0
        Length of the scene in samples.
    sample_rate : int
        In Hz; used for the fade lengths.
    crossfade_s : float >= 0
        Loop crossfade in seconds (at most a quarter of the sound is used).
    fade_in_s, fade_out_s : float >= 0
        Fades at the very start and end of the result, in seconds, so no
        sound starts or stops with a click.

    Returns
    -------
    np.ndarray [shape=(n_samples,), dtype=float32]
    """
    x = np.asarray(audio, dtype=np.float32)
    if x.ndim != 1:
        raise ParameterError(f"fit_duration expects mono audio (n_samples,), got shape {x.shape}")
    if n_samples <= 0:
        raise ParameterError(f"n_samples={n_samples} must be positive")
    length = x.shape[0]
    if length >= n_samples:
        out = x[:n_samples].copy()
    else:
        c = int(min(crossfade_s * sample_rate, length // 4))
        if c > 0:
            fade_in, fade_out = _loop_fades(x[:c], x[length - c :], sample_rate)
            unit = x[: length - c].copy()
            unit[:c] = x[:c] * fade_in + x[length - c :] * fade_out
        else:
            unit = x
        out = np.resize(unit, n_samples).astype(np.float32, copy=False)
        out[:c] = x[:c]  # the real beginning of the sound, not the crossfaded seam
    fi = min(int(fade_in_s * sample_rate), n_samples // 4)
    fo = min(int(fade_out_s * sample_rate), n_samples // 4)
    if fi > 0:
        out[:fi] *= np.linspace(0.0, 1.0, fi, endpoint=False, dtype=np.float32)
    if fo > 0:
        out[n_samples - fo :] *= np.linspace(1.0, 0.0, fo, endpoint=True, dtype=np.float32)
    return out


def prepare_source(
    data: bytes | str | os.PathLike,
    *,
    name: str,
    sample_rate: int = DEFAULT_SAMPLE_RATE,
    duration_s: float,
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Decode, fold to mono, resample and fit one source to the scene.

    Returns
    -------
    track : np.ndarray [shape=(round(duration_s * sample_rate),), dtype=float32]
    notes : tuple of str

    Raises
    ------
    AudioError
        As :func:`decode`.
    ParameterError
        If ``duration_s`` or ``sample_rate`` is not a positive, finite number.
    """
    if not (isinstance(duration_s, numbers.Real) and 0 < duration_s < math.inf):
        raise ParameterError(f"duration_s={duration_s!r} must be a positive number of seconds")
    if not (isinstance(sample_rate, numbers.Integral) and sample_rate > 0):
        raise ParameterError(f"sample_rate={sample_rate!r} must be a positive whole number of Hz")
    n = int(round(duration_s * sample_rate))
    # Decode only what the scene can use (plus room for a crossfade), so an hour-long file costs little.
    decoded = decode(data, name=name, max_seconds=min(MAX_SOURCE_SECONDS, duration_s + 5.0), mono=True)
    notes = tuple(n_ for n_ in decoded.notes if "only the first" not in n_)
    mono = to_mono(decoded.audio)
    mono = resample(mono, decoded.sample_rate, sample_rate)
    return fit_duration(mono, n, sample_rate), notes


def encode_wav(audio: np.ndarray, sample_rate: int, *, subtype: str = "PCM_24") -> bytes:
    """Encode ``(n_channels, n_samples)`` or mono audio as WAV bytes.

    Parameters
    ----------
    subtype : str
        soundfile subtype: ``"PCM_16"``, ``"PCM_24"`` (default) or ``"FLOAT"``.
    """
    x = np.asarray(audio, dtype=np.float32)
    bits = _PCM_BITS.get(subtype)
    channels = x.shape[0] if x.ndim == 2 else 1
    if bits is not None and x.ndim in (1, 2) and 1 <= channels <= 2 and isinstance(sample_rate, numbers.Integral) \
            and 0 < sample_rate < 2**31:
        return _encode_pcm_wav(x, int(sample_rate), bits)
    buf = io.BytesIO()
    sf.write(buf, x.T if x.ndim == 2 else x, sample_rate, format="WAV", subtype=subtype)
    return buf.getvalue()


_PCM_BITS = {"PCM_16": 16, "PCM_24": 24}
_WAV_BLOCK = 1 << 16  # frames converted at a time: a long scene's stem needs no full-length temporaries


def _encode_pcm_wav(x: np.ndarray, sample_rate: int, bits: int) -> bytes:
    """The bytes libsndfile writes for a 16- or 24-bit PCM WAV of float32 ``x`` (1 or 2 channels), made in NumPy.

    libsndfile (``pcm.c``, clipping on, as soundfile sets it) scales each float by 2^31, clips, rounds to
    the nearest integer (ties to even) and keeps the top ``bits`` of that 32-bit integer; its header is
    the plain 44-byte RIFF/WAVE one (with a zero pad byte after odd-sized data, as RIFF wants).  In float32 the scaling and the rounding are exact, so these are the
    same bytes (``tests/test_audio.py`` checks them against soundfile's) for about a quarter of the CPU: each channel
    is converted where it lies and written straight into its interleaved slots (no transposed copy).
    """
    rows = x.reshape(1, -1) if x.ndim == 1 else x  # (channels, n_frames)
    channels, n = rows.shape
    width = bits // 8
    n_data = n * channels * width
    header = b"".join((
        b"RIFF", (36 + n_data + n_data % 2).to_bytes(4, "little"), b"WAVEfmt ", (16).to_bytes(4, "little"),
        (1).to_bytes(2, "little"), channels.to_bytes(2, "little"), sample_rate.to_bytes(4, "little"),
        (sample_rate * channels * width).to_bytes(4, "little"), (channels * width).to_bytes(2, "little"),
        bits.to_bytes(2, "little"), b"data", n_data.to_bytes(4, "little"),
    ))
    out = np.empty(len(header) + n_data + 1, dtype=np.uint8)  # + RIFF's pad byte (odd data) or a spare one
    out[: len(header)] = np.frombuffer(header, dtype=np.uint8)
    out[-1] = 0
    frame = channels * width
    scaled = np.empty(min(_WAV_BLOCK, n), dtype=np.float32)
    ints = np.empty(min(_WAV_BLOCK, n), dtype=np.int32)
    with np.errstate(invalid="ignore"):
        for c in range(channels if n else 0):
            # the samples of channel c, as views on the output at a stride of one frame: the low 16 bits of
            # each sample's top bits (unaligned little-endian 2-byte words) and, for 24 bits, the high byte
            at = len(header) + c * width
            low = np.ndarray((n,), dtype="<u2", buffer=out, offset=at, strides=(frame,))
            high = np.ndarray((n,), dtype=np.uint8, buffer=out, offset=at + 2, strides=(frame,)) if width == 3 else None
            for start in range(0, n, _WAV_BLOCK):
                block = rows[c, start:start + _WAV_BLOCK]
                y, i = scaled[: len(block)], ints[: len(block)]
                np.multiply(block, np.float32(2.0**31), out=y)
                np.rint(y, out=y)
                np.clip(y, np.float32(-(2.0**31)), np.float32(2.0**31 - 128.0), out=y)  # float32's last below 2^31
                i[...] = y
                np.right_shift(i, 32 - bits, out=i)
                low[start:start + len(block)] = i  # the low 16 bits (a cast to uint16 wraps)
                if high is not None:
                    np.right_shift(i, 16, out=i)
                    high[start:start + len(block)] = i
    return (out if n_data % 2 else out[:-1]).tobytes()


def encode_flac(audio: np.ndarray, sample_rate: int, *, subtype: str = "PCM_16") -> bytes:
    """Encode ``(n_channels, n_samples)`` or mono audio as FLAC bytes.

    The very samples :func:`encode_wav` writes with ``subtype`` (``"PCM_16"`` or ``"PCM_24"``),
    losslessly compressed (typically half the size).  libsndfile quantises floats differently
    for WAV and FLAC (by one step now and then), so the integers are made here as the WAV writer makes them.
    """
    bits = {"PCM_16": 16, "PCM_24": 24}.get(subtype)
    if bits is None:
        raise ParameterError(f"FLAC subtype {subtype!r}: use PCM_16 or PCM_24")
    x = np.asarray(audio, dtype=np.float32).astype(np.float64)
    # libsndfile's WAV writer (pcm.c, clipping): lrint(x * 2^31) as a 32-bit integer, clipped, then its top bits
    top = np.clip(np.rint(x * 2147483648.0), -2147483648.0, 2147483647.0).astype(np.int32)
    ints = (top >> 16).astype(np.int16) if bits == 16 else (top >> 8) << 8  # 24-bit: the top bits of an int32
    buf = io.BytesIO()
    sf.write(buf, ints.T if ints.ndim == 2 else ints, sample_rate, format="FLAC", subtype=subtype)
    return buf.getvalue()


def _read_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _read_umask()  # read once at import: toggling the umask later would race other threads


def write_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file and ``os.replace``.

    A process killed midway leaves either the old file or none, never a
    half-written file under the final name.
    """
    return write_atomic_with(path, lambda f: f.write(data))


def write_atomic_with(path: str | os.PathLike, fill) -> Path:
    """As :func:`write_atomic`, but ``fill(file)`` writes the content into the open binary file (streaming)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o666 & ~_UMASK)  # mkstemp makes 0600; give the usual permissions
            fill(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path

"""Procedural sounds for the built-in offline sound source.

Each *kind* (``"birds"``, ``"car_passing"`` ...) is a short recipe over a few
vectorised building blocks: filtered noise, harmonic tones on a pitch contour,
cascade formant filters, resonators (decaying partials of struck objects),
smooth random contours, and an event scheduler that overlap-adds events at
random times.  Every choice (pitch, rhythm, timing, timbre) is drawn from one
:class:`numpy.random.Generator`, so a seed selects one reproducible variant.

Contours and envelopes are computed at a control rate of about 1 kHz
(``clip.ctrl``) and interpolated to audio rate with :func:`_up`: cheaper, and
far fewer full-length temporaries.  Output is mono ``float32`` of shape
``(n_samples,)``, peak-normalised to 0.5 (-6 dBFS).  The recipes are
placeholders a sound designer would accept, not physical models.

To add a kind, decorate a function ``recipe(clip) -> [shape=(clip.n,)]`` with
``@_kind(name, what, top_hz=...)`` (``top_hz``: render decimated when the sound
has nothing above it); an animal is one row of ``_ANIMALS``.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache, partial

import numpy as np
import soxr

from imgext.audio.dsp import signal
from imgext.errors import ParameterError

__all__ = ["SYNTH_KINDS", "describe", "synthesize"]

_MAX_DURATION_S = 600.0  # the longest source the mixer decodes
_MIN_SAMPLE_RATE = 8000
_PEAK = 0.5  # output sample peak, -6 dBFS: headroom for the mix
_CONTROL_HZ = 1000.0  # rate of contours and envelopes
_SOUND_MPS = 343.0  # speed of sound in air at 20 °C, for doppler
_TAU = 2.0 * np.pi
_TONE_TABLE = 8192  # points per period of a harmonic tone's waveform (:func:`_tone`)
_VOWELS = {  # formants in Hz, adult male: F1-F3 of Peterson & Barney (1952), F4-F5 typical; "m" a nasal murmur
    "a": (730.0, 1090.0, 2440.0, 3400.0, 4200.0),
    "e": (530.0, 1840.0, 2480.0, 3400.0, 4200.0),
    "i": (270.0, 2290.0, 3010.0, 3500.0, 4300.0),
    "o": (570.0, 840.0, 2410.0, 3300.0, 4100.0),
    "u": (300.0, 870.0, 2240.0, 3300.0, 4100.0),
    "m": (250.0, 1000.0, 2200.0, 3300.0, 4100.0),
}


@dataclass(frozen=True)
class _Clip:
    """What a recipe renders: ``n`` samples at ``sr`` Hz, every random draw from ``rng``."""

    n: int
    sr: float
    rng: np.random.Generator

    @property
    def duration_s(self) -> float:
        return self.n / self.sr

    @cached_property
    def ctrl(self) -> _Clip:
        """The same span at the control rate (about 1 kHz, an integer fraction of ``sr``), same ``rng``."""
        hop = max(1, int(self.sr // _CONTROL_HZ))
        return _Clip(self.n // hop + 2, self.sr / hop, self.rng)


@dataclass(frozen=True)
class _Kind:
    render: Callable[[_Clip], np.ndarray]
    what: str  # completes "synthetic ..."
    top_hz: float | None  # highest frequency the recipe makes, if well below Nyquist: render it decimated
    dc_free: bool = False  # every layer is high- or band-passed already: no 12 Hz high-pass over the whole


_KINDS: dict[str, _Kind] = {}


def _kind(name: str, what: str, *, top_hz: float | None = None, dc_free: bool = False) -> Callable:
    """Register a recipe ``render(clip) -> [shape=(clip.n,)]`` under ``name``; see :func:`_decimated` for ``top_hz``.

    ``dc_free``: the recipe high- or band-passes every layer itself, so :func:`synthesize` need not.
    """

    def register(render: Callable[[_Clip], np.ndarray]) -> Callable[[_Clip], np.ndarray]:
        _KINDS[name] = _Kind(render, what, top_hz, dc_free)
        return render

    return register


# ---------------------------------------------------------------- signals (audio rate)


def _white(c: _Clip, n: int | None = None) -> np.ndarray:
    """White noise, uniform in [-1, 1) [shape=(n,)]."""
    x = c.rng.random(c.n if n is None else n)
    x *= 2.0
    x -= 1.0
    return x


@lru_cache(maxsize=512)
def _butter(order: int, low_hz: float | None, high_hz: float | None, sr: float) -> np.ndarray:
    if low_hz and high_hz:
        return signal.butter(order, [low_hz, high_hz], "bandpass", fs=sr, output="sos")
    if low_hz:
        return signal.butter(order, low_hz, "highpass", fs=sr, output="sos")
    return signal.butter(order, high_hz, "lowpass", fs=sr, output="sos")


def _filt(x: np.ndarray, sr: float, low_hz=None, high_hz=None, *, order: int = 2) -> np.ndarray:
    """Butterworth high-pass (``low_hz``), low-pass (``high_hz``) or band-pass (both), edges in Hz.

    An edge that is None, or too close to Nyquist for ``sr``, is left open.
    """
    lo = low_hz if low_hz and low_hz < 0.4 * sr else None
    hi = high_hz if high_hz and high_hz < 0.45 * sr and not (lo and high_hz < 1.2 * lo) else None
    if not (lo or hi):
        return np.array(x, dtype=np.float64)
    return signal.sosfilt(_butter(order, lo, hi, sr), x)


def _unit(x: np.ndarray) -> np.ndarray:
    """``x`` scaled to unit RMS (silence stays silent)."""
    rms = np.sqrt(np.einsum("i,i->", x, x) / max(len(x), 1))
    return x * (1.0 / rms) if rms > 0 else x


def _peak1(x: np.ndarray) -> np.ndarray:
    """``x`` scaled to unit sample peak (silence stays silent)."""
    peak = np.max(np.abs(x)) if len(x) else 0.0
    return x * (1.0 / peak) if peak > 0 else x


def _noise(c: _Clip, low_hz=None, high_hz=None, *, n: int | None = None, order: int = 2) -> np.ndarray:
    """Band-limited noise at unit RMS [shape=(n,)]; edges in Hz as in :func:`_filt`."""
    x = _filt(_white(c, n), c.sr, low_hz, high_hz, order=order)
    x *= 1.0 / max(np.sqrt(np.einsum("i,i->", x, x) / len(x)), 1e-12)
    return x


def _phase(c: _Clip, f_hz: np.ndarray) -> np.ndarray:
    """Integrate a frequency contour ``f_hz`` (Hz) to a wrapped phase in radians [shape=(m,), float32], random start."""
    cycles = np.cumsum(f_hz) / c.sr + c.rng.random()
    cycles -= np.floor(cycles)
    cycles *= _TAU
    return cycles.astype(np.float32)


def _tone(c: _Clip, f0_hz, *, tilt: float = 1.0, jitter: float = 0.0, n_harm: int = 40, odd: bool = False):
    """Harmonic tone on a pitch contour ``f0_hz`` [shape=(m,), Hz], harmonic k at amplitude ``k**-tilt``.

    The phase is the running sum of f0, so glides never click; harmonics that would pass 0.45·sr are
    dropped (no aliasing); ``jitter`` scales each harmonic by a random factor in [1 - jitter,
    1 + jitter] (the timbre of a variant); ``odd`` keeps odd harmonics only (square-ish).
    Returns float32 [shape=(m,)].
    """
    f0_hz = np.asarray(f0_hz, dtype=np.float64)
    ks = np.arange(1, int(min(n_harm, 0.45 * c.sr / max(f0_hz.max(), 1.0))) + 1, 2 if odd else 1)
    amps = ks ** -float(tilt) * (1.0 + jitter * c.rng.uniform(-1.0, 1.0, ks.size))
    phase = _phase(c, f0_hz)
    # The harmonics keep their amplitudes while f0 glides, so the tone is one fixed waveform of the phase:
    # a period of it is tabulated (_TONE_TABLE points) and read at every sample's phase, linearly
    # interpolated (within ~1e-5 of summing the sines: -94 dB at the 16th harmonic), instead of one sine
    # per harmonic and sample.
    grid = np.arange(_TONE_TABLE + 2) * (_TAU / _TONE_TABLE)
    table = (amps[:, None] * np.sin(ks[:, None] * grid)).sum(axis=0).astype(np.float32)
    step = np.diff(table)
    pos = phase * np.float32(_TONE_TABLE / _TAU)
    i = np.minimum(pos.astype(np.intp), _TONE_TABLE)  # a phase rounded up to 2 pi reads the period's end
    pos -= i
    out = step[i]
    out *= pos
    out += table[i]
    return out


def _formants(x: np.ndarray, sr: float, freqs_hz, bws_hz) -> np.ndarray:
    """Cascade of two-pole resonators at ``freqs_hz`` with bandwidths ``bws_hz`` (Hz), unity gain at DC.

    The cascade formant synthesiser of Klatt (1980, JASA 67(3)); resonances at or above 0.45·sr are skipped.
    """
    rows = []
    for f, bw in zip(freqs_hz, np.broadcast_to(bws_hz, np.shape(freqs_hz))):
        if f < 0.45 * sr:
            r = np.exp(-np.pi * bw / sr)
            b, c2 = 2.0 * r * np.cos(_TAU * f / sr), -r * r
            rows.append([1.0 - b - c2, 0.0, 0.0, 1.0, -b, -c2])
    return signal.sosfilt(np.array(rows), x) if rows else np.array(x, dtype=np.float64)


def _resonate(x: np.ndarray, sr: float, freqs_hz, decays_s, amps=1.0) -> np.ndarray:
    """Ring decaying partials with ``x`` [shape=(m,)]: every impulse in ``x`` strikes every partial.

    Partial k is a two-pole resonator with impulse response ``amps[k]·exp(-t/decays_s[k])·sin(2π·freqs_hz[k]·t)``;
    partials at or above 0.45·sr are dropped.
    """
    freqs = np.atleast_1d(np.asarray(freqs_hz, dtype=np.float64))
    out = np.zeros(len(x))
    for f, d, a in zip(freqs, np.broadcast_to(decays_s, freqs.shape), np.broadcast_to(amps, freqs.shape)):
        if f < 0.45 * sr:
            w, r = _TAU * f / sr, np.exp(-1.0 / (d * sr))
            out += signal.sosfilt([[a * np.sin(w), 0.0, 0.0, 1.0, -2.0 * r * np.cos(w), r * r]], x)
    return out


def _ping(c: _Clip, freqs_hz, decays_s, amps=1.0, *, duration_s: float | None = None) -> np.ndarray:
    """One strike of an object with decaying partials [shape=(m,)], lasting 4 of the longest decays by default."""
    duration_s = 4.0 * float(np.max(decays_s)) if duration_s is None else duration_s
    impulse = np.zeros(max(min(int(duration_s * c.sr), c.n), 1))
    impulse[0] = 1.0
    return _resonate(impulse, c.sr, freqs_hz, decays_s, amps)


def _burst(c: _Clip, duration_s: float, low_hz, high_hz, *, decay_s: float, attack_s: float = 0.0005):
    """Make a filtered noise burst, fast attack and exponential decay, unit peak [shape=(m,)]: click, step, hiss."""
    return _bursts(c, _white(c, _burst_len(c, duration_s))[None], low_hz, high_hz, decay_s=decay_s, attack_s=attack_s)[0]


def _burst_len(c: _Clip, duration_s: float) -> int:
    """Samples of a :func:`_burst` of ``duration_s`` seconds."""
    return max(min(int(duration_s * c.sr), c.n), 16)


def _bursts(c: _Clip, white: np.ndarray, low_hz, high_hz, *, decay_s: float, attack_s: float = 0.0005) -> np.ndarray:
    """:func:`_burst` of each row of ``white`` [shape=(k, m)], the noise drawn already: one filter call for all."""
    t = _time(c, white.shape[-1])
    burst = white * np.minimum(t / attack_s, 1.0) * np.exp(-t / decay_s)  # the same order of products as one burst
    y = _filt(burst, c.sr, low_hz, high_hz)
    peak = np.max(np.abs(y), axis=-1, keepdims=True)
    return y * (1.0 / np.where(peak > 0, peak, 1.0))


def _mix(*parts: np.ndarray) -> np.ndarray:
    """Sum waveforms of different lengths, zero-padding the shorter ones [shape=(max m,)]."""
    out = np.zeros(max(len(p) for p in parts))
    for p in parts:
        out[: len(p)] += p
    return out


def _bands(c: _Clip, centres_hz: Sequence[float], *, width_oct: float = 1.0) -> list[np.ndarray]:
    """Independent unit-RMS noise bands ``width_oct`` octaves wide around ``centres_hz`` [k × shape=(n,)]."""
    edge = 2.0 ** (0.5 * width_oct)
    return [_noise(c, f / edge, f * edge) for f in centres_hz]


def _sweep(c: _Clip, bands: list[np.ndarray], centres_hz, centre_ctrl: np.ndarray, *, width_oct=1.0):
    """Mix :func:`_bands` by closeness to a control-rate centre frequency (Hz): a moving band-pass [shape=(n,)]."""
    log_c = np.log2(centre_ctrl)
    out = np.zeros(c.n)
    for band, f in zip(bands, centres_hz):
        out += _up(c, np.exp(-0.5 * np.square((log_c - np.log2(f)) / width_oct))) * band
    return out


def _room(c: _Clip, x: np.ndarray, *, rt60_s: float, wet: float) -> np.ndarray:
    """``x`` plus a diffuse reverb tail: convolution with exponentially decaying noise (RT60 in s)."""
    m = max(min(int(rt60_s * c.sr), c.n), 2)
    ir = _filt(_white(c, m) * np.exp(-6.9 * np.arange(m) / m), c.sr, 200, 5000)
    tail = signal.oaconvolve(x, ir)[: len(x)]
    return x + wet * np.sqrt(np.mean(np.square(x))) * _unit(tail)


def _decimated(c: _Clip, render: Callable[[_Clip], np.ndarray], *, top_hz: float) -> np.ndarray:
    """Render at the lowest integer fraction of ``c.sr`` that holds ``top_hz``, then resample up (last axis)."""
    q = _factor(c.sr, top_hz)
    if q == 1:
        return render(c)
    return _upsampled(render(_Clip(-(-c.n // q), c.sr / q, c.rng)), c.sr / q, c.sr, c.n)


def _factor(sr: float, top_hz: float) -> int:
    """The decimation factor of :func:`_decimated`: the largest integer whose rate holds ``top_hz`` with 10 % to spare."""
    return max(1, int(sr // (2.2 * top_hz)))


def _upsampled(low: np.ndarray, low_sr: float, sr: float, n: int) -> np.ndarray:
    """``low`` [shape=(m,) or (k, m)] at ``low_sr`` Hz resampled to ``sr`` (an integer multiple), cut to ``n`` samples.

    soxr's "HQ" resampler: passband flat to 91 % of ``low_sr / 2`` (what :func:`_factor` leaves room for) and
    a third of the CPU of ``scipy.signal.resample_poly``'s Kaiser filter, the costliest step of most
    recipes before.
    """
    if low.ndim == 2:
        return np.ascontiguousarray(soxr.resample(np.ascontiguousarray(low.T), low_sr, sr, quality="HQ")[:n].T)
    return soxr.resample(low, low_sr, sr, quality="HQ")[:n]


# ---------------------------------------------------------------- contours and timing


def _time(c: _Clip, m: int | None = None) -> np.ndarray:
    """Sample times in seconds [shape=(m,)]."""
    return np.arange(c.n if m is None else m) / c.sr


def _up(c: _Clip, x_ctrl: np.ndarray) -> np.ndarray:
    """Interpolate a control-rate signal [shape=(c.ctrl.n,)] linearly to audio rate [shape=(c.n,)]."""
    return _up_to(c, x_ctrl, c.ctrl.sr)


def _up_to(c: _Clip, x_ctrl: np.ndarray, ctrl_sr: float) -> np.ndarray:
    """As :func:`_up` for a contour made at ``ctrl_sr`` Hz (another clip's control rate) [shape=(c.n,)]."""
    pos = np.arange(c.n, dtype=np.float64)
    pos *= ctrl_sr / c.sr
    return np.interp(pos, np.arange(len(x_ctrl)), x_ctrl)


def _wander(c: _Clip, rate_hz: float, *, n: int | None = None) -> np.ndarray:
    """Smooth random contour in [-1, 1] through a random knot every ``1/rate_hz`` s [shape=(n,)]."""
    pos = np.arange(c.n if n is None else n) * (rate_hz / c.sr) + c.rng.random()
    i = pos.astype(np.intp)
    w = pos - i
    w *= w * (3.0 - 2.0 * w)  # smoothstep: no corners at the knots
    knots = c.rng.uniform(-1.0, 1.0, i[-1] + 2)
    return knots[i] + w * (knots[i + 1] - knots[i])


def _ar(m: int, sr: float, attack_s: float, release_s: float) -> np.ndarray:
    """Attack-release envelope [shape=(m,)]: linear ramps up over ``attack_s`` and down over ``release_s``."""
    t = np.arange(m) / sr
    return np.clip(t / attack_s, 0.0, 1.0) * np.clip((m / sr - t) / release_s, 0.0, 1.0)


def _segments(c: _Clip, mean_s: float, *, spread: float = 0.5, opening: float | None = None):
    """Cut the clip into back-to-back segments of random length ``mean_s·(1 ± spread)`` seconds.

    Returns ``index`` [shape=(n,), int] of each sample's segment, ``phase`` [shape=(n,)] in [0, 1) within
    it, and the segment ``lengths_s`` [shape=(k,)].  The clip opens at phase ``opening`` of segment 0
    (random by default).
    """
    lo, hi = mean_s * (1.0 - spread), mean_s * (1.0 + spread)
    lengths = c.rng.uniform(lo, hi, int((c.duration_s + 2.0 * hi) / lo) + 1)
    opening = c.rng.random() if opening is None else opening
    starts = np.round((np.cumsum(lengths) - lengths - opening * lengths[0]) * c.sr).astype(np.intp)
    counts = np.diff(np.clip(np.append(starts, c.n), 0, c.n))
    counts[0] += c.n - counts.sum()
    index = np.repeat(np.arange(len(lengths)), counts)
    phase = (np.arange(c.n) - starts[index]) / (lengths[index] * c.sr)
    return index, np.clip(phase, 0.0, 1.0 - 1e-9), lengths


def _from_gaps(c: _Clip, gaps_s: np.ndarray, *, first_s: float) -> np.ndarray:
    """Event times in seconds inside the clip: ``first_s``, then after each of ``gaps_s`` [shape=(k,)]."""
    times = first_s + np.concatenate(([0.0], np.cumsum(gaps_s)))
    return times[times < c.duration_s]


def _onsets(c: _Clip, rate_hz: float, *, regularity: float = 1.0) -> np.ndarray:
    """Event times in seconds from a gamma renewal process of mean rate ``rate_hz`` [shape=(k,)].

    ``regularity`` >= 0.5 is the gamma shape: 1 is a Poisson process, 30 is nearly periodic.  The
    first event falls within one mean interval and the first half of the clip, so no clip is empty.
    """
    mean = 1.0 / rate_hz
    gaps = c.rng.gamma(regularity, mean / regularity, int(3 * c.duration_s * rate_hz) + 20)
    return _from_gaps(c, gaps, first_s=c.rng.uniform(0.0, min(mean, 0.5 * c.duration_s)))


def _grouped(c: _Clip, rate_hz: float, size: tuple[int, int], spacing_s: tuple[float, float], **kw):
    """Schedule volleys of events (barks, the chirps of a song).

    Volleys start at ``rate_hz`` (see :func:`_onsets`) and hold ``size`` (lo, hi) events ``spacing_s``
    (lo, hi) seconds apart.  Returns the times in seconds and the position in the volley [shape=(k,)].
    """
    times, pos = [np.zeros(0)], [np.zeros(0, dtype=int)]
    for start in _onsets(c, rate_hz, **kw):
        m = int(c.rng.integers(size[0], size[1] + 1))
        times.append(start + np.concatenate(([0.0], np.cumsum(c.rng.uniform(*spacing_s, m - 1)))))
        pos.append(np.arange(m))
    times, pos = np.concatenate(times), np.concatenate(pos)
    return times[times < c.duration_s], pos[times < c.duration_s]


def _at(c: _Clip, x: np.ndarray, times_s) -> np.ndarray:
    """Values of a signal of ``c`` at ``times_s`` (s) [shape=(k,)]."""
    return x[np.clip((np.asarray(times_s) * c.sr).astype(np.intp), 0, len(x) - 1)]


def _place(c: _Clip, times_s, events, gains=1.0) -> np.ndarray:
    """Overlap-add event waveforms at ``times_s`` (s) [shape=(n,)].

    ``events`` is one waveform [shape=(m,)] used at every time, or a sequence with one per time.
    """
    times_s = np.asarray(times_s, dtype=np.float64)
    gains = np.broadcast_to(np.asarray(gains, dtype=np.float64), times_s.shape)
    shared = isinstance(events, np.ndarray) and events.ndim == 1
    out = np.zeros(c.n)
    for i, t in enumerate(times_s):  # a loop over events; each add is vectorised
        e = events if shared else events[i]
        a = round(t * c.sr)
        lo, hi = max(a, 0), min(a + len(e), c.n)
        if hi > lo:
            out[lo:hi] += gains[i] * e[lo - a : hi - a]
    return out


def _impulses(c: _Clip, times_s, gains=1.0) -> np.ndarray:
    """Impulse train [shape=(n,)] with ``gains`` at ``times_s`` (s): excitation for :func:`_resonate`."""
    out = np.zeros(c.n)
    times_s = np.asarray(times_s, dtype=np.float64)
    np.add.at(out, np.clip((times_s * c.sr).astype(np.intp), 0, c.n - 1), np.broadcast_to(gains, times_s.shape))
    return out


def _bubbles(c: _Clip, times_s, freqs_hz, *, decay_s: float, rise: float = 0.5, gains=1.0) -> np.ndarray:
    """Bubble pings overlap-added at ``times_s`` (s) [shape=(n,)].

    A bubble is a decaying sine whose frequency rises from ``freqs_hz`` by the factor ``1 + rise`` over
    its life (Minnaert 1933; van den Doel 2005, ACM TAP 2(1)); rendered 256 bubbles at a time as rows.
    """
    order = np.argsort(times_s)
    times_s = np.asarray(times_s, dtype=np.float64)[order]
    freqs = np.broadcast_to(freqs_hz, times_s.shape)[order]
    gains = np.broadcast_to(gains, times_s.shape)[order] * (freqs * (1.0 + rise) < 0.45 * c.sr)
    t = _time(c, max(int(5.0 * decay_s * c.sr), 2))
    warp = t + rise * t * t / (2.0 * t[-1] + 2.0 / c.sr)  # integral of 1 + rise·t/T
    env = np.exp(-t / decay_s) * np.minimum(t / 5e-4, 1.0)
    starts = np.round(times_s * c.sr).astype(np.intp)
    out = np.zeros(c.n + len(t))
    for s in range(0, len(starts), 256):
        cycles = freqs[s : s + 256, None] * warp
        rows = np.sin(_TAU * (cycles - np.floor(cycles))) * env * gains[s : s + 256, None]
        summed = np.bincount(((starts[s : s + 256] - starts[s])[:, None] + np.arange(len(t))).ravel(), rows.ravel())
        out[starts[s] : starts[s] + len(summed)] += summed
    return out[: c.n]


def _pulse_times(c: _Clip, f0_ctrl: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One pulse per period of a control-rate pitch contour (Hz, below the control rate).

    Returns the pulse positions in (fractional) samples of ``c`` and the control step of each [shape=(p,)].
    """
    cycles = np.cumsum(f0_ctrl) / c.ctrl.sr + c.rng.random()
    step = np.flatnonzero(np.floor(cycles[1:]) > np.floor(cycles[:-1]))
    frac = (np.floor(cycles[step + 1]) - cycles[step]) / (cycles[step + 1] - cycles[step])
    return (step + frac) * (c.sr / c.ctrl.sr), step


def _passes(c: _Clip, *, mean_s: float, speed_mps: tuple, distance_m: tuple):
    """Move sources past the listener one after another along a straight line, on clip ``c`` (usually ``ctrl``).

    Each pass lasts about ``mean_s`` s with the closest approach in its middle; speed (m/s) and closest
    distance (m) are drawn per pass from (lo, hi).  Returns the doppler frequency ratio ``343/(343 + v_r)``,
    the level ``d_min/r`` (faded to 0 at the pass edges), the pass index and the phase [each shape=(n,)].
    """
    index, phase, lengths = _segments(c, mean_s, spread=0.35)
    speed = c.rng.uniform(*speed_mps, len(lengths))[index]
    dist = c.rng.uniform(*distance_m, len(lengths))[index]
    x = speed * (phase - 0.5) * lengths[index]
    r = np.hypot(x, dist)
    ratio = _SOUND_MPS / (_SOUND_MPS + speed * x / r)
    return ratio, distance_m[0] / r * np.sqrt(np.sin(np.pi * phase)), index, phase


def _distance(c: _Clip, x: np.ndarray, near: np.ndarray, *, far_hz: float = 900.0) -> np.ndarray:
    """Air absorption: ``x`` low-passed at ``far_hz`` where ``near`` [0..1, shape=(n,)] is 0, full band at 1."""
    dull = _filt(x, c.sr, high_hz=far_hz)
    return dull + np.clip(near, 0.0, 1.0) * (x - dull)


def _loguniform(c: _Clip, lo: float, hi: float, size=None):
    """Log-uniform draw in [lo, hi) (pitches, rates)."""
    return np.exp(c.rng.uniform(np.log(lo), np.log(hi), size))


def _vary(c: _Clip, *values: float, spread: float = 1.5) -> tuple[float, ...]:
    """Each value times its own random factor in [1/spread, spread]: band edges and decays of a variant."""
    return tuple(v * _loguniform(c, 1.0 / spread, spread) for v in values)


# ---------------------------------------------------------------- shared sub-recipes


def _engine(c: _Clip, f0_hz: np.ndarray, *, tilt=1.0, rough=0.4, band=(80.0, 1500.0)) -> np.ndarray:
    """Combustion engine [shape=(m,)]: harmonics of the firing rate ``f0_hz`` (Hz) plus noise pulsed per firing."""
    pulse = np.cos(_phase(c, f0_hz))
    pulse += 1.0
    pulse **= 6  # a sharp bump once per firing
    pulse *= _noise(c, *band, n=len(f0_hz))
    return _unit(_tone(c, f0_hz, tilt=tilt, jitter=0.6, n_harm=16)) + rough * _unit(pulse)


def _vehicle(c: _Clip, *, firing_hz, mean_s, speed_mps, distance_m, tilt, rough, band, tyres, gears=(0, 0), far_hz=900):
    """Vehicles passing one by one [shape=(n,)]: engine on a doppler glide + tyre noise, 1/r level, air absorption."""
    k = c.ctrl
    ratio, level, index, phase = _passes(k, mean_s=c.rng.uniform(*mean_s), speed_mps=speed_mps, distance_m=distance_m)
    f0 = c.rng.uniform(*firing_hz, index[-1] + 1)[index] * ratio * (1 + 0.01 * _wander(k, 0.5))
    gears = c.rng.uniform(*gears)  # gear changes per pass: the revs climb, then drop at each shift
    if gears:
        f0 *= 0.65 + 0.5 * ((phase * gears) % 1.0) ** 0.7
    body = _engine(c, _up(c, f0), tilt=c.rng.uniform(*tilt), rough=rough, band=band)
    body += c.rng.uniform(0.6, 1.4) * tyres * _noise(c, c.rng.uniform(200, 500), c.rng.uniform(1500, 4000))
    near, rumble = _up(c, level), _noise(c, 30, 250)  # road rumble, and distant traffic between passes
    return _distance(c, near * body, near, far_hz=far_hz) + (0.03 + 0.3 * tyres * near) * rumble


def _speech(c: _Clip, n_voices: int, *, dialog: bool = False, rt60_s: float = 0.0) -> np.ndarray:
    """Make unintelligible speech [shape=(n,)].

    Glottal pulse trains on random pitch contours, with syllabic envelopes, through the formants of a
    random vowel per syllable.  Crowd voices talk independently; dialog voices take turns.
    """

    def render(low: _Clip) -> np.ndarray:
        k = low.ctrl
        buses = np.zeros((2, 5, low.n + 2))  # (male/female, vowel, sample): pulses meeting one vowel's formants
        hiss = np.zeros(k.n)  # fricative envelope
        turn, _, turns = _segments(k, 2.5, spread=0.6)
        owner = c.rng.integers(n_voices, size=len(turns))[turn]
        for v in range(n_voices):
            female = int(c.rng.random() < 0.5)
            syl, ph, lengths = _segments(k, c.rng.uniform(0.16, 0.26), spread=0.6)
            env = (c.rng.uniform(0.3, 1.0, len(lengths)) * (c.rng.random(len(lengths)) > 0.12))[syl]
            env *= np.sin(np.pi * ph) ** 1.5
            phrase, _, phrases = _segments(k, c.rng.uniform(1.5, 3.5))
            env *= (owner == v) if dialog else (c.rng.random(len(phrases)) < 0.7)[phrase]
            f0 = c.rng.uniform(*((170, 250) if female else (95, 140))) * (1 + 0.12 * _wander(k, 2.5) - 0.08 * ph)
            pos, step = _pulse_times(low, f0)
            pos, step = pos[pos < low.n], step[pos < low.n]
            vowel = c.rng.integers(5, size=len(lengths))[syl][step]
            i, w = pos.astype(np.intp), pos % 1.0
            flat, at = buses[female].reshape(-1), vowel * buses.shape[-1] + i  # 1-D: NumPy's fast np.add.at
            np.add.at(flat, at, env[step] * (1 - w))  # split between two samples: exact timing
            np.add.at(flat, at + 1, env[step] * w)
            hiss += env * (c.rng.random(len(lengths)) < 0.35)[syl] * np.exp(-ph * lengths[syl] / 0.06)
        out = np.zeros(low.n)
        for female, scale in ((0, 1.0), (1, 1.17)):
            for bus, v in zip(buses[female, :, : low.n], "aeiou"):
                f = np.array(_VOWELS[v]) * scale
                out += _formants(bus, low.sr, f, 60.0 + 0.08 * f)
        out = _filt(out, low.sr, high_hz=300.0, order=1)  # glottal pulse shape (-12 dB/oct) with lip radiation (+6)
        out = _room(low, _unit(out), rt60_s=rt60_s, wet=0.5) if rt60_s else _unit(out)
        return np.stack([out, _up(low, hiss)])

    voiced, hiss = _decimated(c, render, top_hz=4500.0)
    return voiced + 0.25 * np.maximum(hiss, 0.0) * _noise(c, 2500.0, 7000.0)


def _music(c: _Clip) -> np.ndarray:
    """Play a soft chord-pad bed [shape=(n,)]: triads and bass on a random progression in a random key."""
    k = c.ctrl
    key = _loguniform(c, 110.0, 220.0)
    index, phase, lengths = _segments(k, c.rng.uniform(1.5, 3.0), spread=0.05)
    roots = c.rng.choice([0, 2, 5, 7, 9], size=len(lengths))[index]
    held = phase * lengths[index]
    env = _up(c, (1.0 - np.exp(-held / 0.08)) * (0.6 + 0.4 * np.exp(-held / 0.7)))
    out = _tone(c, _up(c, key / 2 * 2.0 ** (roots / 12)), tilt=1.5, n_harm=8)
    for step in (0, 3 + (c.rng.random() < 0.5), 7):  # minor or major triad
        out += 0.6 * _tone(c, _up(c, key * 2.0 ** ((roots + step) / 12)), tilt=2.0, n_harm=6)
    return out * env


@dataclass(frozen=True)
class _Voice:
    """How an animal calls.

    (lo, hi) pairs are drawn per animal (``f0_hz`` and ``scale`` together, so bigger animals are lower in
    pitch and formants) or per call (``duration_s``).
    """

    f0_hz: tuple[float, float]  # for ``breath`` calls: the flutter rate of the nostrils
    duration_s: tuple[float, float]
    glide: tuple[tuple[float, ...], tuple[float, ...]] = ((0.0, 1.0), (1.0, 1.0))  # (times 0..1, f0 ratios)
    vowels: str = "a"  # formant sets glided through, keys of _VOWELS
    scale: tuple[float, float] = (1.0, 1.0)  # formant scale: short vocal tracts (small animals) > 1
    tilt: float = 1.0
    noise: float = 0.1
    attack_s: float = 0.03
    release_s: float = 0.1
    vibrato: tuple[float, float] = (0.0, 0.0)  # (rate Hz, depth as a fraction of f0)
    tremolo: float = 0.0  # amplitude dip at the vibrato rate, 0..1
    rough: float = 0.0  # random pitch and amplitude jitter (growl, rasp)
    rate_hz: tuple[float, float] = (0.15, 0.4)  # volleys per second
    volley: tuple[int, int] = (1, 1)  # calls per volley
    spacing_s: tuple[float, float] = (0.3, 0.5)  # between calls of a volley
    alternate: float = 1.0  # f0 ratio of every other call in a volley (in- and out-breath)
    herd: tuple[int, int] = (1, 1)
    breath: bool = False  # unvoiced: a snort
    gain: float = 1.0
    spread: float = 0.15  # per call: pitch drawn log-normal around the animal's, this standard deviation (log units)
    variety: float = 1.0  # per call: how far contour, formants, tilt and breathiness stray from the animal's own
    jitter: float = 0.01  # period-to-period pitch perturbation (fraction of f0): real voices are never exactly periodic
    shimmer: float = 0.1  # period-to-period amplitude perturbation (fraction)


def _utter(c: _Clip, v: _Voice, f_hz: float, scale: float) -> np.ndarray:
    """Make one call of voice ``v`` at pitch ``f_hz`` (Hz), unit peak [shape=(m,)].

    Harmonics plus breath noise, gliding through the formants of ``v.vowels``.  No two calls
    are alike, as in real animals (measured in bench/synth.py): each draws its own pitch
    (log-normal, ``v.spread``), its own glide contour, formant scale, spectral tilt and
    breathiness (``v.variety``), and every period wavers in pitch and level (``v.jitter``,
    ``v.shimmer``), so the harmonics-to-noise ratio is a voice's, not an oscillator's.
    """
    r, var = c.rng, v.variety
    t = _time(c, max(int(r.uniform(*v.duration_s) * c.sr), 32))
    wobble = np.sin(_TAU * v.vibrato[0] * t * r.uniform(1 - 0.15 * var, 1 + 0.15 * var))
    glide = np.asarray(v.glide[1]) * np.exp(0.08 * var * r.standard_normal(len(v.glide[1])))
    f0 = f_hz * np.interp(t / t[-1], v.glide[0], glide) * (1 + v.vibrato[1] * wobble)
    f0 *= np.exp(v.spread * float(np.clip(r.standard_normal(), -2.5, 2.5)))
    scale *= np.exp(0.1 * var * r.standard_normal())  # a mouth opened wider or narrower
    noise = v.noise * np.exp(0.6 * var * r.standard_normal())
    vowels = v.vowels[::-1] if r.random() < 0.3 * var else v.vowels  # some calls glide the other way
    if v.breath:
        src = _white(c, len(t)) * (1 + 0.8 * np.sin(_TAU * f_hz * t))
    else:
        waver = _wander(c, min(f_hz, 0.2 * c.sr), n=len(t))  # about one knot per period; shimmer reads it backwards
        f0 *= 1 + 0.2 * v.rough * _wander(c, 25, n=len(t)) + v.jitter * waver
        tilt = max(0.3, v.tilt + 0.35 * var * r.standard_normal())  # effort: a louder call is brighter
        src = _unit(_tone(c, f0, tilt=tilt, jitter=0.3)) * (1 + v.shimmer * waver[::-1])
        src += 1.7 * noise * _white(c, len(t))
    src *= _ar(len(t), c.sr, v.attack_s, v.release_s) * (1 - v.tremolo * (0.5 + 0.5 * wobble))
    if v.rough:
        src *= 1 + v.rough * _wander(c, 35, n=len(t))
    u = np.linspace(0.0, len(vowels) - 1.0, len(t))
    out = np.zeros(len(t))
    for j, vowel in enumerate(vowels):
        f = np.array(_VOWELS[vowel]) * scale
        out += np.clip(1.0 - np.abs(u - j), 0.0, 1.0) * _formants(src, c.sr, f, 60.0 + 0.08 * f)
    out = np.diff(out, prepend=0.0)  # radiation from the mouth: +6 dB/octave
    if r.random() < 0.4 * var:  # the head turned away: the highs radiate forwards (directivity)
        out = _filt(out, c.sr, high_hz=_loguniform(c, 700.0, 5000.0), order=1)
    return _peak1(out)


def _herd(c: _Clip, voices: Sequence[_Voice]) -> np.ndarray:
    """Animals calling [shape=(n,)]: for each voice a herd, each animal with its own pitch and timing."""
    out = np.zeros(c.n)
    for v in voices:
        for _ in range(int(c.rng.integers(v.herd[0], v.herd[1] + 1))):
            size = c.rng.random()
            f_hz, scale = np.interp(size, (0, 1), v.f0_hz), np.interp(size, (0, 1), v.scale)
            times, pos = _grouped(c, c.rng.uniform(*v.rate_hz), v.volley, v.spacing_s, regularity=2.0)
            calls = [_utter(c, v, f_hz * v.alternate ** (p % 2), scale) for p in pos]
            gains = 0.9**pos * np.exp(0.35 * v.variety * c.rng.standard_normal(len(pos)))  # +-3 dB call to call
            out += v.gain * c.rng.uniform(0.5, 1.0) ** (v.herd[1] > 1) * _place(c, times, calls, gains)
    return out


_ANIMAL_FLOOR = 0.004  # the recording's own noise floor under the calls, about -45 dB under their peaks
_SNORT = _Voice((25, 40), (0.3, 0.5), vowels="o", scale=(0.6, 0.6), attack_s=0.02, release_s=0.2, breath=True, gain=0.5)
_ANIMALS = {
    "dog_bark": ("dog barking", _Voice(
        (200, 900), (0.12, 0.3), ((0, 0.2, 1), (0.8, 1.15, 0.7)), "oa", (0.9, 1.5), tilt=0.7, noise=1.4,
        attack_s=0.008, rate_hz=(0.2, 0.5), volley=(1, 5), spacing_s=(0.25, 0.5), variety=2.0)),
    "cat_meow": ("cat meowing", _Voice(
        (450, 750), (0.5, 1.2), ((0, 0.3, 0.7, 1), (0.85, 1.1, 1.0, 0.75)), "meau", (1.3, 1.5), noise=1.0,
        attack_s=0.05, release_s=0.15, volley=(1, 2), spacing_s=(0.8, 1.5), variety=1.0)),
    "horse_neigh": ("horse neighing and snorting", _Voice(
        (1000, 1500), (1.0, 1.8), ((0, 0.1, 0.5, 1), (0.8, 1.0, 0.75, 0.5)), "ea", (1.0, 1.2), tilt=1.1,
        noise=0.8, attack_s=0.05, release_s=0.3, vibrato=(13, 0.12), tremolo=0.5, rate_hz=(0.1, 0.25), variety=0.5),
        _SNORT),
    "sheep_bleat": ("sheep bleating", _Voice(
        (180, 450), (0.5, 1.2), ((0, 0.2, 1), (0.9, 1.0, 0.92)), "mea", (1.1, 1.3), tilt=0.9, noise=0.8,
        attack_s=0.04, release_s=0.15, vibrato=(8, 0.04), tremolo=0.6, rate_hz=(0.1, 0.3), herd=(1, 4))),
    "cow_moo": ("cow mooing", _Voice(
        (90, 150), (1.2, 2.8), ((0, 0.15, 0.7, 1), (0.85, 1.1, 1.0, 0.8)), "muoau", (0.7, 0.8), tilt=1.1,
        noise=0.35, attack_s=0.25, release_s=0.4, rate_hz=(0.12, 0.3), herd=(1, 2), variety=1.5)),
    "elephant_trumpet": ("elephant trumpeting and rumbling", _Voice(
        (300, 500), (1.0, 2.5), ((0, 0.1, 0.8, 1), (0.7, 1.0, 1.05, 0.6)), "ae", (1.3, 1.5), tilt=0.45, noise=0.35,
        attack_s=0.05, release_s=0.2, rough=0.4, rate_hz=(0.08, 0.2)), _Voice(
        (15, 25), (2.0, 4.0), ((0, 0.5, 1), (1.0, 1.1, 0.9)), "u", (0.5, 0.5), tilt=0.8, noise=0.05,
        attack_s=0.3, release_s=0.5, rate_hz=(0.1, 0.25), gain=0.3)),
    "bear_growl": ("bear growling", _Voice(
        (60, 110), (1.0, 3.0), vowels="oao", scale=(0.55, 0.9), tilt=0.8, noise=0.6, attack_s=0.2,
        release_s=0.3, rough=0.7, rate_hz=(0.15, 0.3), volley=(2, 3), spacing_s=(1.5, 3.5), alternate=0.8,
        variety=2.5)),
    "zebra_bark": ("zebra barking", _Voice(
        (500, 900), (0.1, 0.18), ((0, 0.3, 1), (0.95, 1.05, 0.8)), "ea", (1.1, 1.1), tilt=0.8, noise=0.4,
        attack_s=0.01, release_s=0.05, rate_hz=(0.1, 0.25), volley=(4, 10), spacing_s=(0.18, 0.3), alternate=0.45)),
    "giraffe_hum": ("giraffe humming and snorting", _Voice(
        (85, 100), (1.5, 5.0), ((0, 0.5, 1), (1.0, 1.02, 0.97)), "mu", (0.8, 0.8), tilt=1.6, noise=0.02,
        attack_s=0.4, release_s=0.6, rate_hz=(0.15, 0.3)), _SNORT),
}
def _animal(c: _Clip, voices: Sequence[_Voice], top_hz: float | None = None) -> np.ndarray:
    """:func:`_herd` (rendered decimated up to ``top_hz`` when given) over the recording's own full-band floor.

    A microphone never records digital zero, and its floor reaches the highs even when the calls do not.
    """
    calls = _decimated(c, partial(_herd, voices=voices), top_hz=top_hz) if top_hz else _herd(c, voices)
    return calls + _ANIMAL_FLOOR * _noise(c, 30.0, 12000.0, order=1)


for _name, (_what, *_voices) in _ANIMALS.items():
    _kind(_name, _what)(partial(_animal, voices=tuple(_voices),
                                top_hz=5000.0 if _name in ("bear_growl", "giraffe_hum") else None))
del _name, _what, _voices


@_kind("animal_call", "animal calls")
def _animal_call(c: _Clip) -> np.ndarray:
    r, f_hz, d, scale = c.rng, _loguniform(c, 150, 900), c.rng.uniform(0.2, 1.2), c.rng.uniform(0.7, 1.5)
    voice = _Voice(  # any pitch, length, contour and timbre
        (f_hz, f_hz), (0.8 * d, 1.2 * d), ((0, 0.3, 0.7, 1), tuple(r.uniform(0.7, 1.2, 4))),
        vowels="".join(r.choice(list("aeiou"), 2)), scale=(scale, scale), tilt=r.uniform(0.6, 1.5),
        noise=r.uniform(0, 0.4), vibrato=(r.uniform(4, 12), r.uniform(0, 0.1)), rate_hz=(0.2, 0.5), volley=(1, 4),
        spacing_s=(0.3, 0.3 + d))
    return _animal(c, (voice,))


# ---------------------------------------------------------------- vehicles


@_kind("engine_idle", "car engine idling", top_hz=5000)
def _engine_idle(c: _Clip) -> np.ndarray:
    f0 = c.rng.uniform(22.0, 42.0) * (1.0 + 0.015 * _wander(c.ctrl, 2.0) + 0.03 * _wander(c.ctrl, 0.2))
    valves = _impulses(c, _onsets(c, f0.mean() / 2, regularity=50.0))  # tappets tick at half the firing rate
    ticks = _resonate(valves, c.sr, [c.rng.uniform(2e3, 5e3)], 0.002)
    return _engine(c, _up(c, f0), tilt=c.rng.uniform(0.9, 1.4), rough=c.rng.uniform(0.3, 0.7)) + 0.1 * _unit(ticks)


_kind("car_passing", "car engine passing by", top_hz=9000)(partial(
    _vehicle, firing_hz=(35, 80), mean_s=(5, 9), speed_mps=(12, 28), distance_m=(3, 15), tilt=(0.8, 1.3), rough=0.5,
    band=(80, 2500), tyres=1.0))
_kind("motorcycle", "motorcycle passing by, changing gear", top_hz=9000)(partial(
    _vehicle, firing_hz=(55, 110), mean_s=(6, 10), speed_mps=(15, 35), distance_m=(3, 12), tilt=(0.6, 0.9), rough=0.8,
    band=(200, 3000), tyres=0.4, gears=(1.5, 3.5)))
_kind("truck", "diesel truck passing by", top_hz=5000)(partial(
    _vehicle, firing_hz=(30, 55), mean_s=(9, 14), speed_mps=(8, 18), distance_m=(4, 15), tilt=(1.1, 1.5), rough=0.9,
    band=(400, 3500), tyres=0.8, far_hz=600))


@_kind("bus", "diesel bus with air-brake hiss", top_hz=9000)
def _bus(c: _Clip) -> np.ndarray:
    f0 = c.rng.uniform(28.0, 45.0) * (1.25 + 0.25 * _wander(c.ctrl, 0.1))  # idles and pulls away

    def engine_at(low: _Clip) -> np.ndarray:  # the engine ends at ~3 kHz: made at its own rate, not the hiss's
        return _filt(_engine(low, _up_to(low, f0, c.ctrl.sr), tilt=1.3, rough=0.7, band=(300, 3000)), low.sr, high_hz=2500)

    engine = _decimated(c, engine_at, top_hz=3000.0)
    times = _onsets(c, c.rng.uniform(1 / 12, 1 / 5), regularity=2.0)
    hiss = [_burst(c, d, 1500, 9000, decay_s=0.4 * d, attack_s=0.02) for d in c.rng.uniform(0.5, 1.8, len(times))]
    return _unit(engine) + _place(c, times, hiss, c.rng.uniform(1.0, 2.5, len(times)))


@_kind("train", "train on jointed rails (wheel clack and rumble)", top_hz=5000)
def _train(c: _Clip) -> np.ndarray:
    speed, car_m = c.rng.uniform(12, 30), c.rng.uniform(18, 26)  # m/s, m
    bogie_m, axle_m = c.rng.uniform(12, 18), c.rng.uniform(2.2, 2.8)
    cars = np.arange(-1, int(c.duration_s * speed / car_m) + 2) * car_m / speed + c.rng.uniform(0, car_m / speed)
    axles = np.array([0.0, axle_m, bogie_m, bogie_m + axle_m]) / speed  # two bogies of two axles per car
    times = (cars[:, None] + axles).ravel() + c.rng.normal(0, 0.004, 4 * len(cars))
    low, high, decay = _vary(c, 250, 3500, 0.02)
    clack = [_mix(_burst(c, 0.1, low, high, decay_s=decay), _ping(c, [c.rng.uniform(80, 160)], 0.03)) for _ in range(4)]
    events = [clack[i] for i in c.rng.integers(4, size=len(times))]
    rails = _place(c, times, events, c.rng.uniform(0.6, 1.0, len(times)))
    rumble = _noise(c, 25, 180) * _up(c, 1 + 0.3 * _wander(c.ctrl, 0.5))
    rumble += c.rng.uniform(0.2, 0.8) * _noise(c, 200, 1500)
    return rails + c.rng.uniform(0.3, 1.0) * rumble


@_kind("airplane", "jet airplane flying over", top_hz=9000)
def _airplane(c: _Clip) -> np.ndarray:
    ratio, level, _, _ = _passes(c.ctrl, mean_s=c.rng.uniform(20, 35), speed_mps=(60, 100), distance_m=(150, 400))
    near = _up(c, np.clip(level, 0.0, 1.0))
    roar = _noise(c, 30, c.rng.uniform(400, 900), order=1) * (0.15 + near) + 0.6 * near**1.5 * _noise(c, 800, 5000)
    roar += 0.05 * near**2 * _unit(_tone(c, _up(c, c.rng.uniform(1500, 3500) * ratio), n_harm=2))  # fan whine
    pos = np.arange(c.n) - 0.008 * c.sr * near  # ground reflection: a comb sweeping as the plane comes overhead
    return roar + 0.7 * np.interp(pos, np.arange(c.n), roar)


@_kind("boat", "motor boat with water slapping the hull", top_hz=5000)
def _boat(c: _Clip) -> np.ndarray:
    k = c.ctrl
    f0 = c.rng.uniform(18.0, 35.0) * (1 + 0.05 * _wander(k, 0.3))
    motor = _filt(_engine(c, _up(c, f0), tilt=1.2, rough=0.6, band=(60, 600)), c.sr, high_hz=600)
    motor *= _up(c, 1 + 0.4 * _wander(k, 6))  # exhaust burbling under water
    times = _onsets(c, c.rng.uniform(0.6, 1.8))
    slaps = [_mix(_burst(c, 0.3, 100, 1200, decay_s=d), 0.3 * _burst(c, 0.2, 1000, 5000, decay_s=0.03))
             for d in c.rng.uniform(0.04, 0.12, len(times))]
    wash = c.rng.uniform(0.2, 0.8) * _noise(c, *_vary(c, 150, 1500)) * _up(c, 0.6 + 0.4 * _wander(k, 0.4))
    return c.rng.uniform(0.5, 1.0) * _unit(motor) + wash + _place(c, times, slaps, c.rng.uniform(0.5, 2, len(times)))


@_kind("bicycle", "bicycle freewheel ticking with an occasional bell")
def _bicycle(c: _Clip) -> np.ndarray:
    k = c.ctrl
    index, phase, _ = _segments(k, c.rng.uniform(3.0, 6.0), spread=0.6)
    coast = (index + c.rng.integers(2)) % 2 == 0
    pawls = np.cumsum(c.rng.uniform(40.0, 90.0) * (1 - 0.4 * phase) * coast) / k.sr  # clicks while coasting
    clicks = np.flatnonzero(np.diff(np.floor(pawls))) / k.sr
    ticks = _impulses(c, clicks, c.rng.uniform(0.6, 1.0, len(clicks)))
    ticks = _resonate(ticks, c.sr, c.rng.uniform(2500, 6000, 2), [0.002, 0.0015])
    bell_hz = c.rng.uniform(2000, 3500) * np.array([1.0, 1.47, 2.09, 2.56])
    ring = _ping(c, bell_hz, [0.6, 0.4, 0.25, 0.2], [1.0, 0.5, 0.4, 0.2])
    times = _onsets(c, 1 / 12, regularity=2.0)
    bell = _place(c, np.concatenate([times, times + c.rng.uniform(0.1, 0.16)]), ring)  # ring-ring
    roll = 0.3 * _noise(c, 100, 1000) + 0.15 * _noise(c, 800, 4000) * _up(c, ~coast * 1.0)  # tyres, chain
    return 0.5 * _unit(ticks) + roll + 4 * bell


# ---------------------------------------------------------------- nature


def _birdsong(c: _Clip) -> np.ndarray:
    """One bird [shape=(n,)]: songs of FM chirps (rising, falling or arched sweeps, maybe trilled)."""
    f_hz, depth = _loguniform(c, 1800.0, 5500.0), c.rng.uniform(0.2, 0.8) * c.rng.choice([-1, 1])
    shape, chirp_s = c.rng.integers(3), c.rng.uniform(0.04, 0.15)
    trill_hz = c.rng.uniform(20, 60) * (c.rng.random() < 0.4)
    times, _ = _grouped(c, c.rng.uniform(0.15, 0.5), (2, 9), (chirp_s * 1.3, chirp_s * 2.5))

    def chirp() -> np.ndarray:
        t = _time(c, int(chirp_s * c.rng.uniform(0.8, 1.2) * c.sr))
        u = t / t[-1]
        f = f_hz * c.rng.uniform(0.95, 1.05) * (1 + depth * (u, 1 - u, np.sin(np.pi * u))[shape])
        return _tone(c, f * (1 + 0.08 * np.sin(_TAU * trill_hz * t)), tilt=1.8, n_harm=3) * np.hanning(len(t))

    return _place(c, times, [chirp() for _ in times], c.rng.uniform(0.5, 1.0, len(times)))


@_kind("birds", "birds chirping")
def _birds(c: _Clip) -> np.ndarray:
    birds = sum(c.rng.uniform(0.2, 1.0) * _birdsong(c) for _ in range(c.rng.integers(2, 6)))
    return birds + 0.01 * _noise(c, 200, 2000)


@_kind("footsteps", "footsteps walking")
def _footsteps(c: _Clip) -> np.ndarray:
    surface = [(300, 6000, 0.012), (120, 2500, 0.03), (600, 8000, 0.05), (300, 4000, 0.04)][c.rng.integers(4)]
    low, high, decay = _vary(c, *surface, spread=1.3)  # hard floor, wood, gravel, grass
    times = _onsets(c, 1 / c.rng.uniform(0.45, 0.65), regularity=30.0)
    toe_s = c.rng.uniform(0.05, 0.12)
    # every step: a heel strike with a body thump, then the toe; the noise of all steps drawn in one go,
    # in the order one step after another would draw it, and each kind of burst filtered in one call
    m_heel, m_thump, m_toe = _burst_len(c, 0.15), _burst_len(c, 0.06), _burst_len(c, 0.15)
    noise = _white(c, len(times) * (m_heel + m_thump + m_toe)).reshape(len(times), -1)
    heel = _bursts(c, noise[:, :m_heel], low, high, decay_s=decay)
    heel[:, :m_thump] += 0.5 * _bursts(c, noise[:, m_heel : m_heel + m_thump], 40, 200, decay_s=0.02)
    toe = 0.5 * _bursts(c, noise[:, m_heel + m_thump :], 1.3 * low, high, decay_s=1.3 * decay)
    at = int(toe_s * c.sr)
    steps = np.zeros((len(times), max(m_heel, at + m_toe)))
    steps[:, :m_heel] = heel
    steps[:, at : at + m_toe] += toe
    left_right = 1 - 0.2 * (np.arange(len(times)) % 2)
    return _place(c, times, list(steps), left_right * c.rng.uniform(0.7, 1, len(times)))


@_kind("voices", "crowd murmur (unintelligible voices)", top_hz=8000)
def _voices(c: _Clip) -> np.ndarray:
    return _speech(c, int(c.rng.integers(4, 9)), rt60_s=c.rng.uniform(0.3, 0.9))


@_kind("water", "stream of running water", top_hz=6000)
def _water(c: _Clip) -> np.ndarray:
    bed = _noise(c, *_vary(c, 300, 3000)) * _up(c, 0.7 + 0.3 * _wander(c.ctrl, 5))
    bed += c.rng.uniform(0.2, 1) * _noise(c, 80, 500)
    times = _onsets(c, _loguniform(c, 40, 150))
    pops = _bubbles(c, times, _loguniform(c, 400, 2500, len(times)), decay_s=c.rng.uniform(0.004, 0.01),
                    rise=c.rng.uniform(0.3, 1), gains=c.rng.random(len(times)) ** 2)
    return c.rng.uniform(0.3, 0.7) * bed + _unit(pops)


@_kind("ocean", "ocean surf waves", top_hz=9000)
def _ocean(c: _Clip) -> np.ndarray:
    k = c.ctrl
    _, phase, _ = _segments(k, c.rng.uniform(6.0, 12.0), spread=0.4)
    crest = c.rng.uniform(0.15, 0.35)
    crash = np.where(phase < crest, (phase / crest) ** 2, np.exp(-(phase - crest) * c.rng.uniform(3, 7)))
    fizz = np.sqrt(np.clip(phase - crest, 0, None)) * np.exp(-(phase - crest) * 4)  # foam as the wave retreats
    bed = c.rng.uniform(0.1, 0.4) * _noise(c, 60, *_vary(c, 1500), order=1) * _up(c, 1 + 0.3 * _wander(k, 0.2))
    surf = _up(c, crash) * _noise(c, 40, *_vary(c, 700, spread=2.0), order=1)
    return surf + c.rng.uniform(0.7, 2.0) * _up(c, fizz) * _noise(c, *_vary(c, 1500, 7000)) + bed


@_kind("wind", "wind with gusts", top_hz=4000)
def _wind(c: _Clip) -> np.ndarray:
    k = c.ctrl
    gust = (0.5 + 0.5 * _wander(k, c.rng.uniform(0.15, 0.4))) ** 2 + 0.1
    centres = (120.0, 250.0, 500.0, 1000.0, 2000.0)
    cutoff = c.rng.uniform(150, 400) * 2.0 ** (3 * gust + 0.5 * _wander(k, 0.1))  # brighter in the gusts
    air = _sweep(c, _bands(c, centres), centres, cutoff, width_oct=1.2) + 0.5 * _noise(c, 20, 100)
    howl = _unit(_formants(_white(c), c.sr, [c.rng.uniform(400, 1200)], [c.rng.uniform(60, 150)]))
    return _up(c, gust) * air + 0.05 * _up(c, gust**2) * howl


@_kind("rain", "rain", top_hz=10000)
def _rain(c: _Clip) -> np.ndarray:
    def drops(rate_hz: float) -> np.ndarray:
        k = c.rng.poisson(rate_hz * c.duration_s) + 1
        return _impulses(c, c.rng.uniform(0, c.duration_s, k), c.rng.uniform(-1, 1, k) ** 3)

    low = c.rng.uniform(1000, 3000)
    clicks = _filt(drops(_loguniform(c, 300, 3000)), c.sr, low, 4 * low)  # drops on leaves and ground
    clicks += _filt(drops(c.rng.uniform(20, 100)), c.sr, 300, 1500)  # a few heavy ones
    return _unit(clicks) + c.rng.uniform(0.3, 1.0) * _noise(c, c.rng.uniform(400, 1000), c.rng.uniform(6000, 10000))


@_kind("bells", "church or clock bell strikes")
def _bells(c: _Clip) -> np.ndarray:
    ratios = np.array([0.5, 1.0, 1.2, 1.5, 2.0, 2.006, 2.5, 2.67, 3.0, 4.0])  # hum, prime, tierce, quint, nominal ...
    amps = np.array([0.6, 0.5, 0.6, 0.3, 1.0, 0.5, 0.4, 0.3, 0.25, 0.2])  # ... (a beating pair), upper partials
    prime, n_bells = _loguniform(c, 180.0, 700.0), int(c.rng.integers(1, 4))
    kernels = []
    for step in c.rng.choice([0, 2, 4, 5, 7, 9], n_bells, replace=False):
        f = prime * 2 ** (-step / 12) * ratios * (1 + 0.01 * c.rng.standard_normal(len(ratios)))
        decays = c.rng.uniform(1.0, 3.0) * (300.0 / f[1]) ** 0.5 * ratios**-0.7
        kernels.append(_ping(c, f, decays, amps * c.rng.uniform(0.7, 1.3, len(amps)), duration_s=3 * decays.max()))
    times = _onsets(c, n_bells / c.rng.uniform(1.2, 3.0), regularity=8.0)
    order = np.concatenate([c.rng.permutation(n_bells) for _ in range(len(times) // n_bells + 1)])  # rounds
    return _place(c, times, [kernels[i] for i in order], c.rng.uniform(0.6, 1.0, len(times)))


@_kind("ambience", "soft outdoor ambience (room tone)", top_hz=8000)
def _ambience(c: _Clip) -> np.ndarray:
    k = c.ctrl
    air = _noise(c, 30, _loguniform(c, 300, 2500), order=1) * _up(c, 1 + 0.3 * _wander(k, 0.15))
    rumble = _noise(c, 20, *_vary(c, 200)) * _up(c, _loguniform(c, 0.2, 1.5) * (1 + 0.5 * _wander(k, 0.05)))
    leaves = _noise(c, *_vary(c, 2000, 6000)) * _up(c, _loguniform(c, 0.02, 0.5) * np.clip(_wander(k, 0.3), 0, 1) ** 2)
    return air + rumble + leaves + 0.03 * _birdsong(c)


# ---------------------------------------------------------------- ambiences (one bed for a whole picture)


def _part(c: _Clip, kind: str, *, far_hz: float | None = None) -> np.ndarray:
    """Another kind rendered on the same clip at full rate, unit RMS [shape=(n,)].

    ``far_hz``: a distant layer of a bed, whose highs the air and the buildings on the way have
    taken (above ~4-6 kHz at the distances of a street's passers-by and traffic): rendered
    decimated up to ``far_hz`` (below the kind's own ``top_hz``), for a fraction of the CPU.
    """
    recipe = _KINDS[kind]
    top = min(filter(None, (recipe.top_hz, far_hz)), default=None)
    return _unit(_decimated(c, recipe.render, top_hz=top) if top else recipe.render(c))


def _distant(c: _Clip, layers: Sequence[tuple[str, float, float]]) -> np.ndarray:
    """The distant layers of a bed, ``(kind, far_hz, gain)`` each, summed at one reduced rate [shape=(n,)].

    As ``sum(gain * _part(c, kind, far_hz=far_hz))``, but every layer is rendered at the rate of the
    lowest ``far_hz``'s factor (:func:`_factor`), scaled to unit RMS there and summed before one
    resampling up: one resampler and one full-rate sum instead of one per layer.
    """
    q = min(_factor(c.sr, min(filter(None, (_KINDS[kind].top_hz, far)))) for kind, far, _ in layers)
    low = c if q == 1 else _Clip(-(-c.n // q), c.sr / q, c.rng)
    mix = np.zeros(low.n)
    for kind, _, gain in layers:  # in the given order: each draws from the clip's generator in turn
        mix += gain * _unit(_KINDS[kind].render(low))
    mix = _filt(mix, low.sr, low_hz=12.0, order=1)  # no DC (as synthesize does it for a whole sound)
    return mix if q == 1 else _upsampled(mix, low.sr, c.sr, c.n)


def _floor(c: _Clip, level: float = 0.05) -> np.ndarray:
    """A recording's noise floor [shape=(n,)]: pink-ish air and mains-free hiss at ``level`` of unit RMS.

    A microphone never records digital zero: without this, synthetic beds are
    exact zeros between their events.
    """
    return level * (_noise(c, 20, 800, order=1) + 0.3 * _noise(c, 800, 0.45 * c.sr))


@_kind("amb_street", "city street ambience (distant traffic, footsteps, voices)", dc_free=True)
def _amb_street(c: _Clip) -> np.ndarray:
    k = c.ctrl
    rumble = _noise(c, 25, c.rng.uniform(300, 600), order=1) * _up(c, 1 + 0.4 * _wander(k, 0.08))
    # distant traffic, passers-by and voices, their highs (above ~5 kHz) lost on the way: rendered at a quarter
    # of the rate and resampled up together
    far = _distant(c, [("car_passing", 5000.0, 0.35 * 0.5), ("footsteps", 5000.0, 0.12), ("voices", 4500.0, 0.15)])
    hiss = 0.05 * 0.3 * _noise(c, 800, 0.45 * c.sr, order=1)  # the noise floor's highs (its lows lie under the rumble)
    return rumble + far + hiss


@_kind("amb_park", "park ambience (birds, leaves, distant voices)")
def _amb_park(c: _Clip) -> np.ndarray:
    return 0.5 * _part(c, "wind") + 0.35 * _part(c, "birds") + 0.08 * _part(c, "voices", far_hz=4500.0) + _floor(c, 0.1)


@_kind("amb_countryside", "countryside ambience (wind in grass, birds, insects)")
def _amb_countryside(c: _Clip) -> np.ndarray:
    insects = _noise(c, 4000, 7000) * _up(c, 0.5 + 0.5 * np.abs(np.sin(_TAU * c.rng.uniform(8, 20) * _time(c.ctrl))))
    return 0.6 * _part(c, "wind") + 0.25 * _part(c, "birds") + 0.05 * insects + _floor(c, 0.1)


@_kind("amb_room", "indoor room tone (air handling, faint hum)", top_hz=6000)
def _amb_room(c: _Clip) -> np.ndarray:
    hum_hz = c.rng.choice([50.0, 60.0])
    hum = _tone(c, np.full(c.n, hum_hz), tilt=1.5, n_harm=4)
    air = _noise(c, 40, c.rng.uniform(400, 1200), order=1) * _up(c, 1 + 0.1 * _wander(c.ctrl, 0.05))
    return air + 0.05 * _unit(hum) + _floor(c, 0.2)


@_kind("amb_cafe", "café ambience (murmur, cups and cutlery)")
def _amb_cafe(c: _Clip) -> np.ndarray:
    return 0.8 * _part(c, "voices") + 0.25 * _part(c, "crockery") + 0.2 * _part(c, "amb_room")


@_kind("amb_harbour", "harbour or beach ambience (waves, wind)")
def _amb_harbour(c: _Clip) -> np.ndarray:
    return 0.8 * _part(c, "ocean") + 0.3 * _part(c, "wind") + _floor(c, 0.1)


@_kind("amb_open_air", "open-air ambience (soft wind, far-off birds)")
def _amb_open_air(c: _Clip) -> np.ndarray:
    return 0.7 * _part(c, "wind") + 0.4 * _part(c, "ambience") + 0.05 * _part(c, "birds") + _floor(c, 0.15)


# ---------------------------------------------------------------- household and objects


@_kind("clock_tick", "clock ticking")
def _clock_tick(c: _Clip) -> np.ndarray:
    f, body = c.rng.uniform(2000, 4500) * np.array([1.0, 1.52, 2.31]), c.rng.uniform(400, 900)
    tick, tock = (_ping(c, [*(f * s), body], [0.004, 0.003, 0.002, 0.02], [1, 0.7, 0.5, 0.4]) for s in (1.0, 0.85))
    times = _onsets(c, c.rng.choice([1.0, 2.0, 2.5, 4.0]), regularity=400.0)
    return _place(c, times, [(tick, tock)[i % 2] for i in range(len(times))]) + 0.002 * _white(c)


@_kind("keyboard_typing", "typing on a computer keyboard")
def _keyboard_typing(c: _Clip) -> np.ndarray:
    k = int(c.duration_s * 15) + 20
    word = c.rng.random(k) < 0.18
    gaps = c.rng.gamma(3.0, c.rng.uniform(0.04, 0.07), k) + word * c.rng.uniform(0.1, 0.35, k)
    gaps += (c.rng.random(k) < 0.02) * c.rng.uniform(0.8, 2.5, k)  # thinking
    times = _from_gaps(c, gaps, first_s=c.rng.uniform(0, min(0.2, c.duration_s / 2)))

    def key(low_hz: float) -> np.ndarray:  # click and thock going down, a softer click coming up
        down = _mix(_burst(c, 0.03, 1500, 8000, decay_s=0.003), 0.6 * _ping(c, [c.rng.uniform(2000, 5000)], 0.008),
                    0.7 * _burst(c, 0.03, low_hz, 1200, decay_s=0.01))
        return _mix(down, np.concatenate((np.zeros(int(c.rng.uniform(0.06, 0.12) * c.sr)), 0.3 * down)))

    keys, space = [key(c.rng.uniform(150, 400)) for _ in range(5)], key(80)
    events = [space if word[i - 1] else keys[c.rng.integers(5)] for i in range(len(times))]
    return _place(c, times, events, c.rng.uniform(0.5, 1.0, len(times)))


@_kind("mouse_clicks", "computer mouse clicking and scrolling")
def _mouse_clicks(c: _Clip) -> np.ndarray:
    f = c.rng.uniform(2500, 5000)
    press = [_mix(_burst(c, 0.02, 1500, 9000, decay_s=0.002), 0.5 * _ping(c, [f, 1.7 * f], [0.01, 0.006]))
             for _ in range(3)]
    times, events, gains = [], [], []
    for t in _onsets(c, c.rng.uniform(0.4, 1.0), regularity=1.5):
        if c.rng.random() < 0.15:  # a burst of scroll-wheel ticks
            ticks = list(t + np.arange(c.rng.integers(5, 15)) / c.rng.uniform(15, 25))
            times, events, gains = times + ticks, events + [press[0]] * len(ticks), gains + [0.25] * len(ticks)
            continue
        for start in [t, t + c.rng.uniform(0.12, 0.2)][: 1 + (c.rng.random() < 0.3)]:  # single or double click
            times += [start, start + c.rng.uniform(0.06, 0.1)]  # press, release
            events += [press[c.rng.integers(3)], press[c.rng.integers(3)]]
            gains += [1.0, 0.5]
    return _place(c, times, events, gains)


@_kind("phone_ring", "telephone ringing")
def _phone_ring(c: _Clip) -> np.ndarray:
    cadence = np.cumsum([(2.0, 4.0), (0.4, 0.2, 0.4, 2.0), (1.0, 3.0), (1.5, 1.5)][c.rng.integers(4)])  # on, off ...
    t = _time(c.ctrl) + c.rng.uniform(0.0, 0.5 * cadence[0])
    gate = _up(c, np.searchsorted(cadence, t % cadence[-1], side="right") % 2 == 0)
    style, f = c.rng.integers(3), c.rng.uniform(600, 1200)
    if style == 0:  # electromechanical: a 20 Hz hammer on two bells
        strikes = _impulses(c, np.arange(0, c.duration_s, 1 / c.rng.uniform(18, 25))) * gate
        return _resonate(strikes, c.sr, f * np.array([1, 2.76, 1.19, 3.3]), [0.15, 0.08, 0.15, 0.08])
    if style == 1:  # electronic trill: two square-ish tones alternating
        trill = _up(c, np.where(np.sin(_TAU * c.rng.uniform(12, 25) * t) > 0, f, 1.25 * f))
        return gate * _tone(c, trill, odd=True, n_harm=9)
    f_pair = ((440.0, 480.0), (400.0, 450.0))[c.rng.integers(2)]  # North American, British
    return gate * (_tone(c, np.full(c.n, f_pair[0]), n_harm=1) + _tone(c, np.full(c.n, f_pair[1]), n_harm=1))


@_kind("tv", "television in a room (muffled voices and music)", top_hz=5000)
def _tv(c: _Clip) -> np.ndarray:
    voices = _speech(c, int(c.rng.integers(1, 3)), dialog=True, rt60_s=0.4)
    sound = _unit(voices) + c.rng.uniform(0.1, 0.6) * _unit(_music(c))
    return _filt(sound, c.sr, c.rng.uniform(150, 300), c.rng.uniform(2500, 5000))  # a small loudspeaker


@_kind("crockery", "cups, glasses and cutlery clinking")
def _crockery(c: _Clip) -> np.ndarray:
    materials = [((1200, 3000), (1, 2.32, 4.25, 6.63), (0.2, 0.8)),  # glass: (fundamental Hz, partial ratios, decay s)
                 ((1500, 4000), (1, 1.6, 2.9, 4.1), (0.05, 0.2)),  # cup
                 ((2500, 6000), (1, 2.76, 5.4, 8.93), (0.05, 0.3))]  # cutlery, a free bar
    objects = []
    for j in c.rng.integers(3, size=int(c.rng.integers(2, 5))):
        f_range, ratios, decay = materials[j]
        f, d = c.rng.uniform(*f_range) * np.array(ratios), c.rng.uniform(*decay) / np.arange(1, 5) ** 0.5
        objects += [_mix(_ping(c, f, d, c.rng.uniform(0.2, 1.0, 4)), 0.3 * _burst(c, 0.01, 2000, 10000, decay_s=0.001))
                    for _ in range(2)]  # struck at two places
    times, _ = _grouped(c, c.rng.uniform(0.4, 1.5), (1, 3), (0.08, 0.4))
    events = [objects[i] for i in c.rng.integers(len(objects), size=len(times))]
    return _place(c, times, events, c.rng.uniform(0.3, 1, len(times)))


@_kind("pouring", "liquid pouring into a glass or glugging from a bottle", top_hz=6000)
def _pouring(c: _Clip) -> np.ndarray:
    k, glug = c.ctrl, c.rng.random() < 0.4
    full = c.rng.uniform(0.7, 0.9)
    _, phase, _ = _segments(k, c.rng.uniform(3.0, 6.0), spread=0.4, opening=c.rng.uniform(0, full))  # pour, pause
    pouring = phase < full
    times = _onsets(c, c.rng.uniform(5, 9) if glug else c.rng.uniform(80, 200), regularity=4.0 if glug else 1.0)
    times = times[_at(k, pouring, times)]
    rising = c.rng.uniform(150, 400) * 3.0 ** (_at(k, phase, times) / full)  # the air column shortens as it fills
    pops = _bubbles(c, times, rising * _loguniform(c, 0.8, 1.25, len(times)), decay_s=0.03 if glug else 0.006,
                    rise=0.6, gains=c.rng.uniform(0.3, 1.0, len(times)))
    stream = _noise(c, 500, 5000) * _up(c, (1 + 0.5 * _wander(k, 20)) * _filt(pouring * 1.0, k.sr, high_hz=20))
    return _unit(pops) + (0.2 if glug else 0.6) * stream


@_kind("ball_bounce", "ball bouncing")
def _ball_bounce(c: _Clip) -> np.ndarray:
    ball = c.rng.integers(3)  # basketball, tennis ball, ping-pong ball
    f = (c.rng.uniform(100, 250), c.rng.uniform(150, 400), c.rng.uniform(1500, 4000))[ball]
    decays = np.array([0.06, 0.03, 0.04]) * (1.0, 0.5, 0.4)[ball]
    hit = _mix(_ping(c, [f, 2.3 * f, 4 * f], decays, [1, 0.5, 0.3]), 0.3 * _burst(c, 0.02, 1000, 8000, decay_s=0.002))
    if ball == 0 and c.rng.random() < 0.5:  # dribbling
        times = _onsets(c, c.rng.uniform(1.5, 2.5), regularity=30.0)
        return _place(c, times, hit, c.rng.uniform(0.8, 1.0, len(times)))
    times, gains = [], []
    for drop in _onsets(c, c.rng.uniform(0.2, 0.4), regularity=3.0):
        e = c.rng.uniform(0.6, 0.85)  # coefficient of restitution: each flight e times shorter, each hit softer
        bounce = np.arange(int(np.log(0.02) / np.log(e)))
        times += list(drop + np.concatenate(([0], np.cumsum(c.rng.uniform(0.4, 0.9) * e ** bounce[1:]))))
        gains += list(e**bounce)
    return _place(c, times, hit, gains)


@_kind("racket_hit", "tennis rally (racket hits and bounces)")
def _racket_hit(c: _Clip) -> np.ndarray:
    pock = _mix(_ping(c, [c.rng.uniform(500, 700), c.rng.uniform(140, 180)], [0.015, 0.03]),
                0.5 * _burst(c, 0.01, 1000, 8000, decay_s=0.002))  # string bed, frame, contact click
    far, thud = _filt(pock, c.sr, high_hz=1500), _burst(c, 0.05, 100, 1000, decay_s=0.01)
    times, events, gains = [], [], []
    for start in _onsets(c, c.rng.uniform(0.08, 0.15), regularity=2.0):  # rallies
        beat = c.rng.uniform(1.0, 1.6)
        for i in range(int(c.rng.integers(3, 12))):
            t = start + i * beat * c.rng.uniform(0.97, 1.03)
            times += [t, t + c.rng.uniform(0.5, 0.7) * beat]  # hit, then the bounce on the court
            events += [far if i % 2 else pock, thud]
            gains += [0.3, 0.15] if i % 2 else [1.0, 0.3]
    return _place(c, times, events, gains)


@_kind("skateboard", "skateboard rolling over pavement joints", top_hz=8000)
def _skateboard(c: _Clip) -> np.ndarray:
    k = c.ctrl
    index, phase, lengths = _segments(k, c.rng.uniform(4, 8), spread=0.4)
    speed = (0.4 + 0.6 * np.exp(-phase * lengths[index] / 6)) * (1 + 0.3 * _wander(k, 15))  # push, then coast
    roll = (_noise(c, 80, c.rng.uniform(1200, 5000)) + c.rng.uniform(0.3, 1.2) * _noise(c, 40, 300)) * _up(c, speed)
    joints = _onsets(c, 1 / c.rng.uniform(0.8, 1.6), regularity=10.0)
    clack = _mix(_burst(c, 0.05, 300, 4000, decay_s=0.01), 0.6 * _ping(c, [c.rng.uniform(150, 300)], 0.04))
    pushes = np.cumsum(lengths) - lengths[0] * phase[0]
    kick = _burst(c, 0.25, 200, 3000, decay_s=0.08, attack_s=0.03)  # the foot scuffing the ground
    front_back = np.concatenate([joints, joints + c.rng.uniform(0.06, 0.12)])  # two trucks over each joint
    return roll + 3 * _place(c, front_back, clack) + 1.5 * _place(c, pushes[pushes < c.duration_s], kick)


@_kind("whoosh", "swishes through the air (frisbee, kite, skis)", top_hz=8000)
def _whoosh(c: _Clip) -> np.ndarray:
    k, centres = c.ctrl, (300.0, 600.0, 1200.0, 2400.0, 4800.0)
    centre, level = np.full(k.n, 1000.0), np.zeros(k.n)
    for t in _onsets(c, c.rng.uniform(0.3, 1.0), regularity=2.0):
        a, m = int(t * k.sr), int(c.rng.uniform(0.3, 1.2) * k.sr)
        u = np.linspace(0, 1, m)[: k.n - a]
        lo, hi = _loguniform(c, 300, 800), _loguniform(c, 1500, 5000)
        centre[a : a + m] = lo + (hi - lo) * np.sin(np.pi * u**0.8)  # the passband rises and falls (doppler)
        level[a : a + m] = np.maximum(level[a : a + m], c.rng.uniform(0.4, 1.0) * np.sin(np.pi * u) ** 3)
    return _up(c, level) * _sweep(c, _bands(c, centres), centres, centre, width_oct=0.8)


@_kind("appliance_hum", "kitchen appliance hum (fridge, microwave, oven)", top_hz=5000)
def _appliance_hum(c: _Clip) -> np.ndarray:
    mains = _tone(c, np.full(c.n, c.rng.choice([50.0, 60.0])), tilt=c.rng.uniform(0.5, 1.5), jitter=0.9, n_harm=12)
    blades = _tone(c, np.full(c.n, c.rng.uniform(20, 40) * c.rng.integers(3, 8)), tilt=1.5, n_harm=4)
    fan = _noise(c, 50, c.rng.uniform(800, 3000), order=1) + 0.3 * _unit(blades)
    hum = _unit(mains) * _up(c, 1 + 0.05 * _wander(c.ctrl, 0.5))
    return c.rng.uniform(0.2, 1.0) * hum + c.rng.uniform(0.3, 1.0) * fan


@_kind("beeps", "appliance beeps")
def _beeps(c: _Clip) -> np.ndarray:
    out = np.zeros(c.n)
    for _ in range(c.rng.integers(1, 4)):  # each appliance has its own pitch and pattern
        f, beep_s, gap_s = c.rng.uniform(1000, 4000), c.rng.uniform(0.08, 0.4), c.rng.uniform(0.1, 0.3)
        m = int(beep_s * c.sr)
        beep = _tone(c, np.full(m, f), odd=True, n_harm=1 + 4 * int(c.rng.random() < 0.5)) * _ar(m, c.sr, 0.005, 0.005)
        times, _ = _grouped(c, c.rng.uniform(0.1, 0.4), (1, 4), (beep_s + gap_s, beep_s + gap_s))
        out += c.rng.uniform(0.4, 1.0) * _place(c, times, beep)
    return out


@_kind("toaster", "toaster timer ticking, then popping up")
def _toaster(c: _Clip) -> np.ndarray:
    toast_s = c.rng.uniform(8, 14)
    cycle_s = toast_s + c.rng.uniform(2, 5)
    downs = np.arange(-1, c.duration_s / cycle_s + 1) * cycle_s - c.rng.uniform(0, 0.8 * toast_s)  # lever pushed
    ticks = _onsets(c, c.rng.uniform(6, 12), regularity=40.0)
    ticks = ticks[(ticks - downs[0]) % cycle_s < toast_s]  # while the bread is down
    tick = _mix(_ping(c, [c.rng.uniform(2500, 4000)], 0.003), 0.5 * _burst(c, 0.01, 1000, 6000, decay_s=0.002))
    pop = _mix(_burst(c, 0.1, 100, 2000, decay_s=0.03), 0.5 * _ping(c, c.rng.uniform(800, 3000, 3), [0.3, 0.2, 0.15]))
    lever = _burst(c, 0.15, 80, 1500, decay_s=0.04)
    return 0.3 * _place(c, ticks, tick) + _place(c, downs + toast_s, pop) + 0.8 * _place(c, downs, lever)


@_kind("sink", "tap running into a sink", top_hz=9000)
def _sink(c: _Clip) -> np.ndarray:
    splash = (1 + 0.4 * _wander(c.ctrl, 20)) * (0.8 + 0.2 * _wander(c.ctrl, 0.3))
    flow = _noise(c, *_vary(c, 300, 6000, spread=2.0)) * _up(c, splash)
    basin = _formants(flow, c.sr, c.rng.uniform(300, 1500, 2), [150, 150])
    times = _onsets(c, c.rng.uniform(100, 300))
    pops = _bubbles(c, times, _loguniform(c, 500, 3000, len(times)), decay_s=0.005, rise=0.8,
                    gains=c.rng.random(len(times)) ** 2)
    return flow + c.rng.uniform(0.1, 0.8) * _unit(basin) + c.rng.uniform(0.3, 1.0) * _unit(pops)


@_kind("toilet_flush", "toilet flushing and the cistern refilling", top_hz=7000)
def _toilet_flush(c: _Clip) -> np.ndarray:
    k = c.ctrl
    index, phase, lengths = _segments(k, c.rng.uniform(15, 30), spread=0.3)
    t, rush_s = phase * lengths[index], c.rng.uniform(3, 6)  # seconds since the flush
    rush = np.clip(t / 0.2, 0, 1) * np.clip(rush_s - t, 0, 1)
    refill = np.clip(t - rush_s + 1, 0, 1) * np.exp(-np.clip(t - rush_s, 0, None) / c.rng.uniform(10, 20))
    swirl = _noise(c, *_vary(c, 200, 4000)) * _up(c, rush * (1 + 0.4 * _wander(k, 4)))
    gurgle = _onsets(c, 60.0)
    gurgle = gurgle[_at(k, rush, gurgle) > 0.3]
    pops = _bubbles(c, gurgle, _loguniform(c, 150, 600, len(gurgle)), decay_s=0.02, rise=0.5)
    whistle = _unit(_formants(_white(c), c.sr, [c.rng.uniform(1000, 3000)], [40]))  # the filling valve
    hiss = _noise(c, *_vary(c, 1000, 4000)) + c.rng.uniform(0, 0.6) * whistle
    return swirl + c.rng.uniform(0.2, 0.8) * _unit(pops) + c.rng.uniform(0.1, 0.5) * _up(c, refill) * hiss


@_kind("hair_drier", "hair drier blowing", top_hz=10000)
def _hair_drier(c: _Clip) -> np.ndarray:
    k = c.ctrl
    index, _, lengths = _segments(k, c.rng.uniform(5, 15), spread=0.5)
    speed = _filt(c.rng.choice([0.85, 1.0], len(lengths))[index], k.sr, high_hz=2.0)  # setting switches
    rot_hz = _up(c, c.rng.uniform(250, 450) * speed)
    whine = _tone(c, rot_hz, tilt=1.2, n_harm=6) + 0.3 * _tone(c, rot_hz * c.rng.integers(5, 10), tilt=2, n_harm=2)
    sway = 1 + 0.3 * _wander(k, c.rng.uniform(0.5, 1.5))  # the drier is waved about
    air = _up(c, sway * speed) * _noise(c, c.rng.uniform(200, 600), c.rng.uniform(4000, 10000))
    return air + c.rng.uniform(0.05, 0.2) * _up(c, sway) * _unit(whine)


@_kind("toothbrush", "electric toothbrush buzzing", top_hz=8000)
def _toothbrush(c: _Clip) -> np.ndarray:
    sonic = c.rng.random() < 0.5
    f = (c.rng.uniform(230, 280) if sonic else c.rng.uniform(100, 150)) * (1 + 0.01 * _wander(c.ctrl, 3))
    buzz = _unit(_tone(c, _up(c, f), tilt=0.7 if sonic else 1.2, odd=sonic, n_harm=30))
    if not sonic:  # oscillating-rotating head: gear noise pulsed by the motor
        buzz += 0.5 * _noise(c, 1000, 5000) * ((1 + _tone(c, _up(c, f), n_harm=1)) ** 4)
    strokes = _up(c, 0.5 + 0.5 * np.sin(_TAU * c.rng.uniform(1.5, 3.0) * _time(c.ctrl)))  # brushing damps the head
    return buzz * (1 - 0.4 * strokes) + 0.3 * strokes * _filt(buzz, c.sr, high_hz=800)


@_kind("scissors", "scissors snipping")
def _scissors(c: _Clip) -> np.ndarray:
    times, _ = _grouped(c, c.rng.uniform(0.2, 0.5), (3, 8), (0.25, 0.6))
    f = c.rng.uniform(3000, 7000) * np.array([1.0, 1.53, 2.41])

    def snip() -> np.ndarray:  # blades sliding, then the metallic click as they close
        m = int(c.rng.uniform(0.08, 0.15) * c.sr)
        slide = 0.3 * _noise(c, 2000, 8000, n=m) * np.linspace(0, 1, m) ** 2
        return np.concatenate((slide, _mix(_ping(c, f, [0.02, 0.015, 0.01]), _burst(c, 0.02, 2e3, 1e4, decay_s=0.002))))

    return _place(c, times, [snip() for _ in times], c.rng.uniform(0.6, 1.0, len(times)))


SYNTH_KINDS: tuple[str, ...] = tuple(sorted(_KINDS))
"""Every kind :func:`synthesize` knows, sorted."""


# ---------------------------------------------------------------- public API


def _check_kind(kind: str) -> _Kind:
    if isinstance(kind, str) and kind in _KINDS:
        return _KINDS[kind]
    close = difflib.get_close_matches(str(kind), SYNTH_KINDS, n=3, cutoff=0.6)
    hint = f"did you mean {', '.join(map(repr, close))}?" if close else f"known kinds: {', '.join(SYNTH_KINDS)}"
    raise ParameterError(f"unknown synth kind {kind!r}; {hint}")


def _n_samples(duration_s: float, sample_rate: int) -> int:
    integer = isinstance(sample_rate, (int, np.integer)) and not isinstance(sample_rate, bool)
    if not integer or sample_rate < _MIN_SAMPLE_RATE:
        raise ParameterError(f"sample_rate={sample_rate!r} must be an integer >= {_MIN_SAMPLE_RATE} Hz")
    if isinstance(duration_s, bool) or not isinstance(duration_s, (int, float, np.integer, np.floating)):
        raise ParameterError(f"duration_s={duration_s!r} must be a number of seconds")
    if not 0.0 < duration_s <= _MAX_DURATION_S:  # also rejects NaN
        raise ParameterError(f"duration_s={duration_s!r} must be > 0 and <= {_MAX_DURATION_S:g} seconds")
    n = round(duration_s * sample_rate)
    if n < 1:
        raise ParameterError(f"duration_s={duration_s!r} is shorter than one sample at {sample_rate} Hz")
    return n


def synthesize(
    kind: str,
    *,
    duration_s: float,
    sample_rate: int = 44100,
    rng: int | np.random.Generator | None = None,
) -> np.ndarray:
    """Render a procedural placeholder sound of one kind.

    Parameters
    ----------
    kind : str
        One of :data:`SYNTH_KINDS`, e.g. ``"birds"`` or ``"car_passing"``.
    duration_s : float in (0, 600]
        Length in seconds.  Sounds are continuous: events recur at random
        times over the whole duration, and the first comes early, so even a
        0.3 s clip is not silent.
    sample_rate : int >= 8000
        In Hz; 44.1 kHz is the mix rate.  Content above 0.45·sample_rate is
        left out rather than aliased.
    rng : int, np.random.Generator or None
        Seed or generator for :func:`numpy.random.default_rng` (a generator is
        used, and advanced, as is).  The seed picks the variant: pitch, rhythm,
        timing and timbre are all drawn from it, so the same seed gives
        bit-identical audio and seeds 0..9 give ten different-sounding variants.

    Returns
    -------
    y : np.ndarray [shape=(round(duration_s * sample_rate),), dtype=float32]
        Mono and finite, sample peak exactly 0.5 (-6 dBFS); all zeros only for
        a clip too short to hold any sound (a few samples).

    Raises
    ------
    ParameterError
        For an unknown ``kind`` (the message suggests close names), a
        ``duration_s`` outside (0, 600] or a ``sample_rate`` below 8000 Hz.

    Notes
    -----
    Kinds whose content lies well below Nyquist (wind, engines, voices, water
    ...) are rendered at an integer fraction of ``sample_rate`` that still
    holds their top frequency (4-10 kHz), then resampled up: the same sound
    for a fraction of the cost.  30 s of any kind takes well under 0.3 s.

    Examples
    --------
    >>> y = synthesize("rain", duration_s=2.0, rng=3)
    >>> y.shape, y.dtype, float(abs(y).max())
    ((88200,), dtype('float32'), 0.5)
    """
    recipe = _check_kind(kind)
    clip = _Clip(_n_samples(duration_s, sample_rate), float(sample_rate), np.random.default_rng(rng))

    def dc_free(c: _Clip) -> np.ndarray:  # no DC or sub-audio drift (at the recipe's own rate: fewer samples)
        return recipe.render(c) if recipe.dc_free else _filt(recipe.render(c), c.sr, low_hz=12.0, order=1)

    y = _decimated(clip, dc_free, top_hz=recipe.top_hz) if recipe.top_hz else dc_free(clip)
    peak = max(float(np.max(y)), -float(np.min(y)))
    if peak > 0:
        y *= _PEAK / peak
    return y.astype(np.float32)


def describe(kind: str) -> str:
    """One short human sentence for a kind, e.g. for credits.

    Raises
    ------
    ParameterError
        For an unknown ``kind``.

    Examples
    --------
    >>> describe("car_passing")
    'synthetic car engine passing by (built-in, procedural)'
    """
    return f"synthetic {_check_kind(kind).what} (built-in, procedural)"

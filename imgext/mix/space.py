"""Space: distance cues (level, air absorption, direct-to-reverberant ratio) and one shared reverb bus.

The formulas, with ``d`` an object's distance and ``d_ref`` the nearest
sounding object's distance (so the nearest object keeps its level):

* direct level: ``-20 log10(d / d_ref)`` dB (1/r, -6 dB per doubling), clamped at
  ``-MAX_DISTANCE_LOSS_DB``; it adds to the importance gain and the user's volume
  (:func:`object_gain_db` ... see :func:`distance_gain_db`).
* reverb send: ``amount * sqrt(d_ref / d)`` of the object's gain *before* the
  distance loss, so the direct-to-reverberant ratio is ``-20 log10(amount)`` at
  ``d_ref`` and falls 3 dB per doubling of distance (above its 2-3 dB
  just-noticeable difference, Larsen et al. 2008).
* air absorption beyond ``AIR_ABSORPTION_FROM_M``: ISO 9613-1-style losses of
  about 0.4 / 0.7 / 1.8 / 5.9 dB per 100 m at 1 / 2 / 4 / 8 kHz, applied as a
  linear-phase FIR.

The reverb is a convolution (an overlap-add FFT convolution, :func:`render_reverb`) with a
stereo impulse response generated here from seeded noise: dense and exponentially
decaying for a room, a few sparse early reflections and a short tail outdoors.
The scene is a loop (beds loop seamlessly), so the tail that would run past the
end wraps round to the start, as it does when the scene plays on repeat: no
tail is cut.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from imgext.audio.dsp import fft, signal
from imgext.audio.spill import is_spilled, release
from imgext.errors import ParameterError

__all__ = [
    "MAX_DISTANCE_LOSS_DB",
    "AIR_ABSORPTION_FROM_M",
    "ROOMS",
    "resolve_room",
    "room_for_ambience",
    "distance_gain_db",
    "reverb_sends",
    "air_absorption_db",
    "apply_air_absorption",
    "ReverbRoom",
    "Spatial",
    "level_gains_db",
    "spatialise",
    "reverb_ir",
    "render_reverb",
]

MAX_DISTANCE_LOSS_DB = 30.0
"""The furthest object is at most this much quieter than the nearest from distance alone."""

AIR_ABSORPTION_FROM_M = 50.0
"""Air absorption is applied to objects further than this (it is below 0.5 dB at 4 kHz nearer)."""

# Air absorption, dB per 100 m (pyroomacoustics' table, 20 C, 50-70 % RH); 16 kHz extrapolated.
_AIR_HZ = np.array([0.0, 125.0, 250.0, 500.0, 1000.0, 2000.0, 4000.0, 8000.0, 16000.0])
_AIR_DB_PER_100M = np.array([0.0, 0.02, 0.06, 0.19, 0.4, 0.7, 1.8, 5.9, 20.0])


@dataclass(frozen=True)
class ReverbRoom:
    """A generated acoustic space.

    Attributes
    ----------
    name : str
    rt60_s : tuple of 3 float
        Decay time (-60 dB) in seconds of the low (< 500 Hz), mid and high (> 4 kHz) bands.
    predelay_s : float
        Gap between the direct sound and the first reflection.
    reflections : int
        Number of discrete early reflections.
    early_window_s : float
        They arrive within this window after the pre-delay.
    diffuse_db : float
        Level of the diffuse tail relative to the early reflections (dB).
    """

    name: str
    rt60_s: tuple[float, float, float]
    predelay_s: float
    reflections: int
    early_window_s: float
    diffuse_db: float


ROOMS = {
    "room": ReverbRoom("room", (0.7, 0.55, 0.35), 0.006, 24, 0.04, 0.0),
    "outdoor": ReverbRoom("outdoor", (0.45, 0.35, 0.2), 0.012, 5, 0.09, -9.0),
}
"""The rooms the reverb bus knows: an indoor room, and outdoors (short, sparse reflections)."""

_INDOOR_WORDS = ("indoor", "room", "kitchen", "cafe", "café", "office", "hall", "home", "living")


def resolve_room(room: str, ambience: str | None = None) -> str:
    """``room`` itself, or for ``"auto"`` the room that fits the ambience (outdoors when none is known)."""
    if room == "auto":
        return room_for_ambience(ambience)
    if room not in ROOMS:
        raise ParameterError(f"unknown room {room!r}; use auto or one of {sorted(ROOMS)}")
    return room


def room_for_ambience(ambience: str | None) -> str:
    """The reverb room that fits an ambience name: ``"room"`` for indoor ones, else ``"outdoor"``."""
    name = (ambience or "").lower()
    return "room" if any(w in name for w in _INDOOR_WORDS) else "outdoor"


def _check_distances(distances_m) -> np.ndarray:
    d = np.asarray(distances_m, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(d)) or np.any(d <= 0):
        raise ParameterError(f"distances must be positive metres, got {d.tolist()}")
    return d


def _reference(d: np.ndarray, reference_m: float | None) -> float:
    if reference_m is not None:
        if not (reference_m > 0 and math.isfinite(reference_m)):
            raise ParameterError(f"reference_m={reference_m} must be positive")
        return float(reference_m)
    return float(d.min()) if d.size else 1.0


def distance_gain_db(distances_m, *, reference_m: float | None = None) -> np.ndarray:
    """Direct-sound level change from distance, dB: ``-20 log10(d / d_ref)``.

    Parameters
    ----------
    distances_m : array-like [shape=(n,)]
        Metres, > 0.
    reference_m : float, optional
        Distance that keeps its level; default the nearest of ``distances_m``.
        Nearer objects are not boosted (the result is <= 0).

    Returns
    -------
    np.ndarray [shape=(n,)]
        In [-MAX_DISTANCE_LOSS_DB, 0].
    """
    d = _check_distances(distances_m)
    ref = _reference(d, reference_m)
    return np.clip(-20.0 * np.log10(np.maximum(d, ref) / ref), -MAX_DISTANCE_LOSS_DB, 0.0)


def reverb_sends(distances_m, amount: float, *, reference_m: float | None = None) -> np.ndarray:
    """Linear reverb send per track, relative to the track's gain before the distance loss.

    ``amount * sqrt(d_ref / d)``: with the direct sound at ``d_ref / d`` the
    direct-to-reverberant ratio is ``-20 log10(amount) - 10 log10(d / d_ref)`` dB.
    """
    if not (0.0 <= amount <= 1.0):
        raise ParameterError(f"reverb amount={amount} must lie between 0 and 1")
    d = _check_distances(distances_m)
    ref = _reference(d, reference_m)
    loss = -distance_gain_db(d, reference_m=ref)  # clamped like the direct sound
    return amount * 10.0 ** (-loss / 40.0)


def air_absorption_db(freqs_hz, distance_m: float) -> np.ndarray:
    """Loss in dB (>= 0) at ``freqs_hz`` after ``distance_m`` metres of air."""
    f = np.asarray(freqs_hz, dtype=np.float64)
    return np.interp(f, _AIR_HZ, _AIR_DB_PER_100M) * (max(float(distance_m), 0.0) / 100.0)


@lru_cache(maxsize=64)
def _air_fir(distance_m: float, sample_rate: int, numtaps: int = 129) -> np.ndarray:
    freqs = np.linspace(0.0, sample_rate / 2.0, 64)
    gains = 10.0 ** (-air_absorption_db(freqs, distance_m) / 20.0)
    return signal.firwin2(numtaps, freqs, gains, fs=sample_rate).astype(np.float32)


def apply_air_absorption(track: np.ndarray, distance_m: float, sample_rate: int) -> np.ndarray:
    """High-frequency roll-off of a mono track heard from ``distance_m`` (unchanged within 50 m).

    A linear-phase FIR (129 taps), delay-compensated, so the track stays aligned.

    Parameters
    ----------
    track : np.ndarray [shape=(n_samples,)]
    distance_m : float
    sample_rate : int
        In Hz.

    Returns
    -------
    np.ndarray [shape=(n_samples,), dtype=float32]
    """
    x = np.asarray(track, dtype=np.float32)
    if distance_m <= AIR_ABSORPTION_FROM_M or x.size == 0:
        return x
    h = _air_fir(round(float(distance_m), 1), int(sample_rate))
    y = signal.oaconvolve(x, h, mode="full")
    delay = (h.size - 1) // 2
    return y[delay : delay + x.size].astype(np.float32)


@lru_cache(maxsize=8)
def reverb_ir(room: str, sample_rate: int, seed: int = 0) -> np.ndarray:
    """Stereo impulse response of ``room`` (a key of :data:`ROOMS`), seeded.

    Parameters
    ----------
    room : str
    sample_rate : int
        In Hz.
    seed : int
        Same seed, same response (the noise is drawn from ``numpy.random.default_rng(seed)``).

    Returns
    -------
    np.ndarray [shape=(2, n_taps), dtype=float32]
        Left and right decorrelated (independent noise), total energy 1
        (``sum(ir**2) == 1``), so a send of 1 puts as much energy in the reverb as in
        a centre-panned direct sound.
    """
    if room not in ROOMS:
        raise ParameterError(f"unknown room {room!r}; use one of {sorted(ROOMS)}")
    spec = ROOMS[room]
    rng = np.random.default_rng([int(seed), 7919])
    sr = int(sample_rate)
    n = int(math.ceil((spec.predelay_s + max(spec.rt60_s) * 1.1) * sr))
    t = np.arange(n, dtype=np.float64) / sr
    noise = rng.standard_normal((2, n))
    bands = [
        signal.butter(4, 500.0, "lowpass", fs=sr, output="sos"),
        signal.butter(4, [500.0, min(4000.0, 0.45 * sr)], "bandpass", fs=sr, output="sos"),
        signal.butter(4, min(4000.0, 0.45 * sr), "highpass", fs=sr, output="sos"),
    ]
    diffuse = np.zeros((2, n))
    for sos, rt60 in zip(bands, spec.rt60_s):
        diffuse += signal.sosfilt(sos, noise, axis=-1) * np.exp(-6.907755 * t / rt60)[None, :]
    onset = int(spec.predelay_s * sr)
    ramp = np.clip((t - spec.predelay_s) / 0.01, 0.0, 1.0)  # the diffuse field builds up over 10 ms
    diffuse *= ramp[None, :]
    diffuse[:, :onset] = 0.0
    diffuse /= math.sqrt(np.sum(diffuse**2) / 2.0) or 1.0
    early = np.zeros((2, n))
    times = np.sort(rng.uniform(spec.predelay_s, spec.predelay_s + spec.early_window_s, (2, spec.reflections)), axis=1)
    amps = rng.uniform(0.4, 1.0, (2, spec.reflections)) * np.exp(-3.0 * (times - spec.predelay_s) / spec.early_window_s)
    amps *= rng.choice([-1.0, 1.0], size=amps.shape)
    idx = np.minimum((times * sr).astype(np.int64), n - 1)
    for ch in range(2):
        np.add.at(early[ch], idx[ch], amps[ch])
    early /= math.sqrt(np.sum(early**2) / 2.0) or 1.0
    ir = early + diffuse * 10.0 ** (spec.diffuse_db / 20.0)
    ir /= math.sqrt(np.sum(ir**2)) or 1.0
    return ir.astype(np.float32)


REVERB_MIN_FFT = 1 << 17
"""Smallest FFT of :func:`render_reverb`: with the outdoor response (22359 taps at 44.1 kHz) 131072 takes
~20 % less CPU than 65536 (fewer, longer blocks: 1.2 instead of 1.5 transformed samples per sample)."""
REVERB_BLOCK_BYTES = 1 << 22
"""Bytes of each working array of :func:`render_reverb` (4 MB: four 131072-point blocks per batch, in cache:
~30 % less CPU than batches of 16 blocks, and enough rows for the FFT to run several at a time)."""


@lru_cache(maxsize=8)
def _reverb_spectrum(room: str, sample_rate: int, seed: int) -> tuple[int, int, np.ndarray]:
    """The FFT size, the block hop and the spectrum of :func:`reverb_ir` at that size (cached, read-only).

    The FFT size is the smallest power of two ``>= 2 taps - 1`` and at least :data:`REVERB_MIN_FFT`
    (131072 for both rooms at 44.1 kHz), so a block of ``hop = n_fft - taps + 1`` samples convolved
    with the response fits one transform and each output sample gets the tail of at most one earlier
    block.  The spectrum is complex64 [shape=(2, n_fft // 2 + 1)] (1 MB at 131072).
    """
    ir = reverb_ir(room, sample_rate, seed)
    taps = ir.shape[1]
    n_fft = max(REVERB_MIN_FFT, 1 << int(math.ceil(math.log2(2 * taps - 1))))
    spectrum = fft.rfft(ir, n_fft, axis=-1)
    spectrum.setflags(write=False)
    return n_fft, n_fft - taps + 1, spectrum


def _add_wrapped(out: np.ndarray, part: np.ndarray, start: int) -> None:
    """``out[:, (start + i) % n] += part[:, i]`` for every ``i`` (in slices: the scene is a loop)."""
    n = out.shape[1]
    i, pos = 0, start % n
    while i < part.shape[1]:
        k = min(n - pos, part.shape[1] - i)
        out[:, pos : pos + k] += part[:, i : i + k]
        i, pos = i + k, 0


def render_reverb(bus: np.ndarray, *, room: str, sample_rate: int, seed: int = 0) -> np.ndarray:
    """The shared reverb: the mono send bus convolved with the room's stereo response.

    Parameters
    ----------
    bus : np.ndarray [shape=(n_samples,)]
        Sum of every track times its send.
    room : str
        A key of :data:`ROOMS`.
    sample_rate : int
        In Hz.
    seed : int
        Seeds the impulse response.

    Returns
    -------
    np.ndarray [shape=(2, n_samples), dtype=float32]
        Same length as ``bus``: the tail past the end wraps round to the start
        (the scene is a loop), so nothing of it is lost: the circular convolution
        of length ``n_samples`` with the response folded to that length.

    Notes
    -----
    Overlap-add in float32 with the response's spectrum cached per room, rate and seed
    (:func:`_reverb_spectrum`): the bus is cut into blocks of ``hop`` samples, each
    transformed with zero padding to ``n_fft`` (a batch of rows, which the FFT runs
    several at a time), multiplied by the spectrum, transformed back and overlap-added,
    the part past the end added at the start.  The same signal as
    ``scipy.signal.oaconvolve`` followed by the wrap (to float32 rounding, ~4e-7 of the
    peak: ``tests/test_space.py``), in ~40 % of its time and with working arrays of
    :data:`REVERB_BLOCK_BYTES` instead of several copies of the whole signal.
    """
    x = np.asarray(bus, dtype=np.float32).reshape(-1)
    n = x.size
    out = np.zeros((2, n), dtype=np.float32)
    if n == 0 or not np.any(x):
        return out
    n_fft, hop, spectrum = _reverb_spectrum(room, int(sample_rate), int(seed))
    tail = n_fft - hop  # taps - 1 <= hop: a block's tail reaches into the next block only
    n_blocks = -(-n // hop)
    group = max(1, REVERB_BLOCK_BYTES // (8 * n_fft))  # blocks per batch: (2, group, n_fft) float32 ~ the bound
    carry = None  # the previous batch's last tail
    for b0 in range(0, n_blocks, group):
        b1 = min(n_blocks, b0 + group)
        g = b1 - b0
        rows = np.zeros((g, n_fft), np.float32)  # each block zero-padded to the transform
        part = x[b0 * hop : b1 * hop]
        full = part.size // hop
        rows[:full, :hop] = part[: full * hop].reshape(full, hop)
        if full < g:
            rows[full, : part.size - full * hop] = part[full * hop :]
        spec = fft.rfft(rows, axis=-1)
        del rows
        wet_spec = np.empty((2, *spec.shape), spec.dtype)
        np.multiply(spec[None, :, :], spectrum[:, None, :], out=wet_spec)
        del spec
        wet = fft.irfft(wet_spec, n_fft, axis=-1)  # (2, g, n_fft) float32: block j's convolution from (b0 + j) hop
        del wet_spec
        heads = wet[:, :, :hop]
        heads[:, 1:, :tail] += wet[:, :-1, hop:]
        if carry is not None:
            heads[:, 0, :tail] += carry
        carry = wet[:, -1, hop:].copy()
        start, stop = b0 * hop, b1 * hop
        if stop <= n:
            into = out[:, start:stop].reshape(2, g, hop)  # a view (rows of out split into blocks)
            np.add(into, heads, out=into)
        else:
            _add_wrapped(out, heads.reshape(2, -1), start)
        del wet, heads
    _add_wrapped(out, carry, n_blocks * hop)
    return out


@dataclass(frozen=True)
class Spatial:
    """What space adds to one mix.

    Attributes
    ----------
    tracks : np.ndarray [shape=(n_tracks, n_samples), dtype=float32]
        The tracks after air absorption (the input itself where nothing is far).
    reverb : np.ndarray [shape=(2, n_samples), dtype=float32] or None
        The shared reverb bus at unit master gain; None without reverb.
    sends : np.ndarray [shape=(n_tracks,)]
        Linear send of each track (relative to its gain before the distance loss).
    room : str
    """

    tracks: np.ndarray
    reverb: np.ndarray | None
    sends: np.ndarray
    room: str


def level_gains_db(base_gains_db, distances_m, *, distance: bool) -> np.ndarray:
    """The one formula for an object's level, dB.

    ``gain = -attenuation * (1 - importance) + volume`` (``base_gains_db``, see
    :func:`imgext.vision.placement.object_gain_db`) ``+ distance_gain_db(d)`` when
    ``distance`` is on (1/r from the nearest object, at most ``MAX_DISTANCE_LOSS_DB``).
    """
    base = np.asarray(base_gains_db, dtype=np.float64)
    if not distance or base.size == 0:
        return base
    return base + distance_gain_db(distances_m)


SPILL_CHUNK = 1 << 18
"""Samples per stretch when a spilled (long-scene) signal is summed: a multiple of every BLAS kernel's
width, so each column meets the same kernel as in one product over the whole signal (the same bits)."""


def weighted_sum(weights: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``weights @ x`` in float32 [shape=(..., n_samples)]; a spilled ``x`` a stretch at a time, released after.

    The stretches are :data:`SPILL_CHUNK` samples, so with one BLAS thread the result is bit for bit the
    product over the whole signal (``tests/test_long_memory.py``) without touching all of ``x`` at once.
    """
    if not is_spilled(x):
        return (weights @ x).astype(np.float32)
    n = x.shape[-1]
    out = np.empty(np.shape(weights)[:-1] + (n,), np.float32)
    for s0 in range(0, n, SPILL_CHUNK):
        out[..., s0: s0 + SPILL_CHUNK] = weights @ x[:, s0: s0 + SPILL_CHUNK]
        release(x)
    return out


def spatialise(audio: np.ndarray, gains_db, distances_m, *, distance: bool, reverb_amount: float, room: str,
               sample_rate: int, seed: int = 0, absorbed: np.ndarray | None = None) -> Spatial:
    """Air absorption and the reverb bus for mono tracks at ``gains_db`` (distance loss included).

    Parameters
    ----------
    audio : np.ndarray [shape=(n_tracks, n_samples)]
        Mono tracks after EQ.
    gains_db : array-like [shape=(n_tracks,)]
        Each track's gain in the mix, distance loss included (:func:`level_gains_db`).
    distances_m : array-like [shape=(n_tracks,)]
    distance : bool
        Distance cues on: air absorption beyond 50 m and sends falling with distance.
        Off: every track counts as at the nearest distance.
    reverb_amount : float in [0, 1]
    room : str
        A key of :data:`ROOMS`.
    sample_rate : int
        In Hz.
    seed : int
        Seeds the room's impulse response.
    absorbed : np.ndarray [shape=(n_tracks, n_samples)], optional
        ``audio`` after air absorption, when the caller has it (rows kept from an earlier call:
        :meth:`imgext.mix.mixer.Mixer.spatial`); it must equal what this function computes.
    """
    x = np.asarray(audio, dtype=np.float32)
    d = _check_distances(distances_m) if x.shape[0] else np.zeros(0)
    if absorbed is not None:
        if np.shape(absorbed) != x.shape:
            raise ParameterError(f"absorbed must have the shape of audio {x.shape}, got {np.shape(absorbed)}")
        x = np.asarray(absorbed, dtype=np.float32)
    elif distance and np.any(d > AIR_ABSORPTION_FROM_M):
        x = np.stack([apply_air_absorption(t, float(di), sample_rate) for t, di in zip(x, d)]) if x.shape[0] else x
    eff = d if distance else np.ones_like(d)
    sends = reverb_sends(eff, reverb_amount) if d.size else np.zeros(0)
    if reverb_amount <= 0 or x.shape[0] == 0:
        return Spatial(x, None, sends, room)
    g = 10.0 ** (np.asarray(gains_db, dtype=np.float64) / 20.0)
    undo_distance = 10.0 ** (-distance_gain_db(d) / 20.0) if distance else np.ones_like(d)
    weights = (g * undo_distance * sends).astype(np.float32)  # send from the gain before the distance loss
    bus = weighted_sum(weights, x)
    return Spatial(x, render_reverb(bus, room=room, sample_rate=sample_rate, seed=seed), sends, room)

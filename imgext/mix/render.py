"""Mixing: constant-power panning, per-object gain, loudness normalisation, a true-peak limiter.

Tracks are mono ``(n_tracks, n_samples)``; the mix is stereo ``(2, n_samples)``.
Stems are never all held at once: :meth:`Mix.stem` renders one on demand, with
the same master gain and the same limiter envelope as the mix, so the stems sum
to the mix.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from imgext.audio.io import db_to_gain, gain_to_db
from imgext.audio.loudness import (
    _gates_unchanged,
    _loudness_and_blocks,
    _loudness_blocks_power,
    integrated_loudness,
    k_weighted_power,
)
from imgext.audio.spill import release
from imgext.errors import ParameterError
from imgext.mix.limiter import _abs_max, limit_to_loudness, true_peak_dbtp
from imgext.mix.space import weighted_sum
from imgext.options import DEFAULT_LOUDNESS_LUFS, DEFAULT_PEAK_DBFS


def pan_gains(pan) -> np.ndarray:
    """Constant-power pan law.

    Parameters
    ----------
    pan : float or np.ndarray [shape=(n,)]
        Positions in [-1, 1], -1 hard left, 0 centre, 1 hard right.

    Returns
    -------
    np.ndarray [shape=(2,) or (2, n)]
        Left and right amplitude factors, ``cos`` and ``sin`` of
        ``(pan + 1) * pi / 4``; at the centre both are 1/sqrt(2) (-3 dB), and
        ``L**2 + R**2 == 1`` everywhere.
    """
    p = np.asarray(pan, dtype=np.float64)
    if not np.all(np.isfinite(p)) or np.any(np.abs(p) > 1.0 + 1e-9):
        raise ParameterError(f"pan must lie in [-1, 1], got {pan!r}")
    theta = (np.clip(p, -1.0, 1.0) + 1.0) * (np.pi / 4.0)
    return np.stack([np.cos(theta), np.sin(theta)])


@dataclass(frozen=True)
class Mix:
    """A rendered mix and what it took.

    Attributes
    ----------
    audio : np.ndarray [shape=(2, n_samples), dtype=float32]
        The stereo mix after loudness normalisation and the true-peak limiter.
    sample_rate : int
    coefficients : np.ndarray [shape=(2, n_tracks)]
        Linear factor of each mono track in each channel, master gain included.
    master_gain_db : float
        Gain applied to the summed mix to reach the target.
    loudness_lufs : float or None
        Integrated loudness of ``audio``; ``None`` for silence.
    peak_dbfs : float or None
        Sample peak of ``audio``; ``None`` for silence.
    target_lufs : float
    limited_by_peak : bool
        True when the ceiling stopped the mix more than 0.5 LU short of the target
        (the limiter would have had to crush it).
    envelope : np.ndarray [shape=(n_samples,), dtype=float32] or None
        The limiter's gain, applied to the mix and to every stem; ``None`` when
        the mix needed no limiting.
    true_peak_dbtp : float or None
        True peak of ``audio`` (BS.1770-4, 4x oversampling); ``None`` for silence.
    gain_reduction_db : float
        Deepest gain reduction of the limiter in dB (0 when it did nothing).
    limited_s : float
        Seconds during which the limiter reduced more than 0.1 dB.
    reverb : np.ndarray [shape=(2, n_samples), dtype=float32] or None
        (property) The shared reverb bus as it sits in the mix (master gain and limiter included), its
        own stem: the track stems plus this sum to ``audio``.  Made from :attr:`reverb_bus` when read
        (not kept: a long scene's copy is 212 MB); :attr:`has_reverb` says whether there is one.
    reverb_bus : np.ndarray [shape=(2, n_samples), dtype=float32] or None
        The reverb bus at unit gain as it was given to :func:`render_mix` (the same array, not a copy; a long
        scene's is a spilled copy, :mod:`imgext.audio.spill`, added by the Mixer before the limiter).
    reverb_gain : float
        The master gain applied to it (a float32 value).
    """

    audio: np.ndarray
    sample_rate: int
    coefficients: np.ndarray
    master_gain_db: float
    loudness_lufs: float | None
    peak_dbfs: float | None
    target_lufs: float
    limited_by_peak: bool
    envelope: np.ndarray | None = None
    true_peak_dbtp: float | None = None
    gain_reduction_db: float = 0.0
    limited_s: float = 0.0
    reverb_bus: np.ndarray | None = field(default=None, repr=False)
    reverb_gain: float = 1.0

    sides: dict = field(default_factory=dict, repr=False)
    """Track index -> (side coefficients [shape=(2,)], companion [shape=(n_samples,)]) of wide (area) tracks."""

    @property
    def has_reverb(self) -> bool:
        """Whether the mix has a reverb bus (without making :attr:`reverb`)."""
        return self.reverb_bus is not None

    @property
    def reverb(self) -> np.ndarray | None:
        """The reverb stem: the bus times the master gain and the limiter's envelope, float32 (made now)."""
        if self.reverb_bus is None:
            return None
        out = self.reverb_bus * np.float32(self.reverb_gain)
        release(self.reverb_bus)  # a long scene's bus is read from its temporary file
        if self.envelope is not None:
            out *= self.envelope[None, :]
        return out

    def stem(self, tracks: np.ndarray, index: int, *, limiter: bool = True) -> np.ndarray:
        """Stereo stem ``(2, n_samples)`` of track ``index`` exactly as it sits in the mix (limiter included).

        ``limiter=False`` leaves the limiter's envelope out (the stem before the master limiter).
        """
        stem = (self.coefficients[:, index : index + 1] * tracks[index][None, :]).astype(np.float32)
        release(tracks)  # a long scene's spilled tracks: the row read is not kept in memory
        if index in self.sides:
            side_coeffs, side = self.sides[index]
            stem += (side_coeffs[:, None] * side[None, :]).astype(np.float32)
        if limiter and self.envelope is not None:
            stem *= self.envelope[None, :]
        return stem


def _coefficients(pans, gains_db, n_tracks: int, sides: dict | None) -> tuple[np.ndarray, dict]:
    """Each track's factor in L and R ``(2, n_tracks)`` and the area tracks' side factors (checked inputs)."""
    pans = np.asarray(pans, dtype=np.float64).reshape(-1)
    gains = np.asarray(gains_db, dtype=np.float64).reshape(-1)
    if pans.shape[0] != n_tracks or gains.shape[0] != n_tracks:
        raise ParameterError(f"need one pan and one gain per track ({n_tracks}), got {pans.shape[0]} and {gains.shape[0]}")
    if not np.all(np.isfinite(gains)):
        raise ParameterError(f"gains_db must be finite, got {gains.tolist()}")
    coeffs = pan_gains(pans) * db_to_gain(gains)[None, :]  # (2, n_tracks)
    side_coeffs: dict[int, np.ndarray] = {}
    for k, (width, _) in (sides or {}).items():
        a = float(np.clip(width, 0.0, 1.0)) * np.pi / 4.0
        side_coeffs[k] = coeffs[:, k] * np.sin(a) * np.array([1.0, -1.0])
        coeffs[:, k] *= np.cos(a)
    return coeffs, side_coeffs


def panned_sum(tracks: np.ndarray, *, pans, gains_db, sides: dict | None = None) -> np.ndarray:
    """The panned, gained sum of ``tracks`` (and the area tracks' sides) [shape=(2, n_samples), float32].

    Exactly the sum :func:`render_mix` starts from: give it back as ``premixed`` and the tracks
    need not be held while the mix is normalised and limited (a long scene's processed tracks).
    """
    tracks = np.asarray(tracks, dtype=np.float32)
    if tracks.ndim != 2:
        raise ParameterError(f"tracks must have shape (n_tracks, n_samples), got {tracks.shape}")
    coeffs, side_coeffs = _coefficients(pans, gains_db, tracks.shape[0], sides)
    return _sum(tracks, coeffs, side_coeffs, sides)


def _sum(tracks: np.ndarray, coeffs: np.ndarray, side_coeffs: dict, sides: dict | None) -> np.ndarray:
    n_tracks, n_samples = tracks.shape
    if n_tracks == 0 or n_samples == 0:
        return np.zeros((2, n_samples), dtype=np.float32)
    summed = weighted_sum(coeffs.astype(np.float32), tracks)  # a spilled (long-scene) array a stretch at a time
    if sides:
        scratch = np.empty(n_samples, np.float32)  # one channel's product at a time, in float32 (no (2, n) float64)
        for k, (_, side) in sides.items():
            s = np.asarray(side, dtype=np.float32)
            for c in range(2):
                summed[c] += np.multiply(s, np.float32(side_coeffs[k][c]), out=scratch)
    return summed


def render_mix(
    tracks: np.ndarray,
    *,
    pans,
    gains_db,
    sample_rate: int,
    loudness_lufs: float = DEFAULT_LOUDNESS_LUFS,
    peak_dbfs: float = DEFAULT_PEAK_DBFS,
    reverb: np.ndarray | None = None,
    sides: dict | None = None,
    premixed: np.ndarray | None = None,
) -> Mix:
    """Pan, gain, sum, normalise to ``loudness_lufs`` and hold the true peak under the ceiling.

    Parameters
    ----------
    tracks : np.ndarray [shape=(n_tracks, n_samples), dtype=float32]
        Mono sources, already fitted to the scene.
    pans : array-like [shape=(n_tracks,)]
        In [-1, 1].
    gains_db : array-like [shape=(n_tracks,)]
        Per-track gain in dB.
    sample_rate : int
        In Hz.
    loudness_lufs : float
        Target integrated loudness (BS.1770), e.g. -16 (streaming) or -23 (EBU R128 broadcast).
    peak_dbfs : float <= 0
        True-peak ceiling in dBTP: a look-ahead limiter (:mod:`imgext.mix.limiter`)
        holds the mix under it at the loudness target, its envelope applied to
        every stem (:meth:`Mix.stem`).
    reverb : np.ndarray [shape=(2, n_samples)], optional
        A stereo bus (the shared reverb, :mod:`imgext.mix.space`) added to the
        panned tracks before normalisation; it gets the same master gain and limiter.
    sides : dict of int -> (float, np.ndarray [shape=(n_samples,)]), optional
        Wide (area) tracks: track index -> (width in [0, 1], a companion
        uncorrelated with the track, e.g. the same bed from another offset).
        Mid/side: ``L = cL (cos(a) x + sin(a) s)``, ``R = cR (cos(a) x - sin(a) s)``
        with ``a = width * pi / 4``: the power is that of the point source, the
        left/right correlation ``cos(2a)`` (0 at width 1), and the companion
        cancels in a mono fold-down.
    premixed : np.ndarray [shape=(2, n_samples), dtype=float32], optional
        :func:`panned_sum` of these tracks, pans, gains and sides, made by the caller (then
        ``tracks`` is not read: it only needs ``len``); this array is used and changed in place.

    Returns
    -------
    Mix
        Same inputs give bit-identical output.
    """
    if premixed is None:
        tracks = np.asarray(tracks, dtype=np.float32)
        if tracks.ndim != 2:
            raise ParameterError(f"tracks must have shape (n_tracks, n_samples), got {tracks.shape}")
    if not (-70.0 <= loudness_lufs <= 0.0):
        raise ParameterError(f"loudness_lufs={loudness_lufs} must lie between -70 and 0 LUFS")
    if not (-60.0 <= peak_dbfs <= 0.0):
        raise ParameterError(f"peak_dbfs={peak_dbfs} must lie between -60 and 0 dBFS")
    n_tracks = len(tracks)
    coeffs, side_coeffs = _coefficients(pans, gains_db, n_tracks, sides)
    if premixed is None:
        summed = _sum(tracks, coeffs, side_coeffs, sides)
    else:
        summed = np.asarray(premixed)
        if summed.dtype != np.float32 or summed.ndim != 2 or summed.shape[0] != 2:
            raise ParameterError(f"premixed must be float32 of shape (2, n_samples), got {summed.dtype} {summed.shape}")
    n_samples = summed.shape[1]
    if reverb is not None:
        reverb = np.asarray(reverb, dtype=np.float32)
        if reverb.shape != (2, n_samples):
            raise ParameterError(f"the reverb bus must have shape (2, {n_samples}), got {reverb.shape}")
        summed += reverb  # summed is this function's own array
    loud, blocks, summed_power = _loudness_blocks_power(summed, sample_rate)
    sample_peaks = _abs_max(summed)  # (no |summed| copy) read again by the true-peak meter
    peak = float(sample_peaks.max()) if summed.size else 0.0
    if peak == 0.0:  # digital silence stays silence: no gain can be derived, none is applied
        return Mix(summed, sample_rate, coeffs * 0.0, 0.0, None, None, loudness_lufs, False)
    if not math.isfinite(loud):
        # Below BS.1770's -70 LUFS gate the loudness is undefined: measure a copy raised to the peak
        # ceiling and refer the result back (a quiet recording is brought up, not silenced).
        lift_db = float(gain_to_db(db_to_gain(peak_dbfs) / peak))
        loud, blocks = _loudness_and_blocks(summed * np.float32(db_to_gain(lift_db)), sample_rate)
        loud, blocks = loud - lift_db, blocks - lift_db
        summed_power = None
    envelope = in_tp = probe_loud = None
    reduction_db = limited_s = 0.0
    limited = False
    if math.isfinite(loud):
        ceiling_dbtp = peak_dbfs - 0.02  # a hair under, so 24-bit rounding cannot cross it
        k_power = None

        def power() -> np.ndarray:  # the K-weighted power measured above, else measured now
            if summed_power is not None:
                return summed_power
            return k_weighted_power(summed, sample_rate)

        if peak * db_to_gain(loudness_lufs - loud) > db_to_gain(ceiling_dbtp):  # the limiter will work
            k_power = power()  # (it measures its own peaks)
        else:
            in_tp = 10.0 ** (true_peak_dbtp(summed, sample_peaks=sample_peaks) / 20.0)
            if in_tp * db_to_gain(loudness_lufs - loud) > db_to_gain(ceiling_dbtp):
                k_power = power()
        sample_peaks = None  # (a long scene's is ~100 MB: not held while the limiter makes its own)
        result = limit_to_loudness(summed, sample_rate=sample_rate, loudness_lufs=loudness_lufs, measured_lufs=loud,
                                   ceiling_dbtp=ceiling_dbtp, input_true_peak=in_tp, k_power=k_power)
        if result.envelope is not None:
            # The limiter's loudness estimate weights before the gain envelope: check it exactly, correct once.
            probe = summed * np.float32(db_to_gain(result.gain_db)) * result.envelope[None, :]
            probe_loud = integrated_loudness(probe, sample_rate)
            error = loudness_lufs - probe_loud
            if math.isfinite(error) and abs(error) > 0.05:
                result = limit_to_loudness(summed, sample_rate=sample_rate, loudness_lufs=loudness_lufs + error,
                                           measured_lufs=loud, ceiling_dbtp=ceiling_dbtp, input_true_peak=in_tp,
                                           k_power=k_power, true_peaks=result.true_peaks)
                probe_loud = None
        gain_db, envelope = result.gain_db, result.envelope
        reduction_db, limited_s = result.gain_reduction_db, result.limited_s
        limited = result.gain_db < loudness_lufs - loud - 0.5
    else:  # still unmeasurable: up to the ceiling
        gain_db = float(gain_to_db(db_to_gain(peak_dbfs - 1e-3) / peak))
        limited = True
    g = np.float32(db_to_gain(gain_db))
    audio = summed  # render_mix's own array: scaled in place (the same values as summed * g, one copy less)
    audio *= g
    coeffs = coeffs * float(g)
    placed_sides = {k: (side_coeffs[k] * float(g), np.asarray(side, dtype=np.float32)) for k, (_, side) in (sides or {}).items()}
    if envelope is not None:
        audio *= envelope[None, :]
    if envelope is None:
        # max |fl(g x)| = fl(g max |x|): rounding is monotonic, so the scaled peak is the peak scaled (exact)
        out_peak = float(np.float32(peak) * g)
    else:
        out_peak = float(_abs_max(audio).max())
    applied_db = float(gain_to_db(float(g)))
    if envelope is None and math.isfinite(loud) and _gates_unchanged(blocks, applied_db):
        out_loud = loud + applied_db  # exact (see _gates_unchanged); saves a second pass over the mix
    elif envelope is not None and probe_loud is not None:
        out_loud = probe_loud  # the probe was this very audio (same float32 operations)
    else:
        out_loud = integrated_loudness(audio, sample_rate)
    if envelope is None and in_tp is not None:
        tp = float(gain_to_db(in_tp * float(g))) if in_tp > 0 else -math.inf  # the interpolator is linear: TP(g x) = g TP(x)
    else:
        tp = true_peak_dbtp(audio)
    limited = limited or (math.isfinite(out_loud) and out_loud < loudness_lufs - 0.5)
    return Mix(
        audio=audio,
        sample_rate=sample_rate,
        coefficients=coeffs,
        master_gain_db=round(float(gain_db), 6),
        loudness_lufs=round(out_loud, 3) if math.isfinite(out_loud) else None,
        peak_dbfs=round(float(gain_to_db(out_peak)), 3),
        target_lufs=loudness_lufs,
        limited_by_peak=bool(limited),
        envelope=envelope,
        true_peak_dbtp=round(tp, 3) if math.isfinite(tp) else None,
        gain_reduction_db=float(reduction_db),
        limited_s=float(limited_s),
        reverb_bus=reverb,
        reverb_gain=float(g),
        sides=placed_sides,
    )


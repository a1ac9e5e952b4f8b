"""Mixing: constant-power panning, per-object gain, loudness normalisation, a hard peak ceiling.

Tracks are mono ``(n_tracks, n_samples)``; the mix is stereo ``(2, n_samples)``.
Stems are never all held at once: :meth:`Mix.stem` renders one on demand, with
the same master gain as the mix, so the stems sum to the mix.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

import numpy as np
import pyloudnorm

from .audio import DEFAULT_SAMPLE_RATE, db_to_gain, gain_to_db
from .errors import ParameterError
from .scene import DEFAULT_ATTENUATION_DB

__all__ = [
    "DEFAULT_LOUDNESS_LUFS",
    "DEFAULT_PEAK_DBFS",
    "pan_gains",
    "integrated_loudness",
    "Mix",
    "render_mix",
    "level_track",
    "TRACK_REFERENCE_LUFS",
    "MixSettings",
    "MixOutcome",
    "Mixer",
]

DEFAULT_LOUDNESS_LUFS = -16.0
"""Target integrated loudness (BS.1770), the usual level for streamed stereo content."""

DEFAULT_PEAK_DBFS = -1.0
"""Sample-peak ceiling in dBFS after normalisation (1 dB of headroom for lossy encoders)."""

SILENCE_LUFS = -70.0
"""BS.1770's absolute gate: anything quieter counts as silence."""


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


def integrated_loudness(audio: np.ndarray, sample_rate: int) -> float:
    """Integrated loudness in LUFS (ITU-R BS.1770-4, via pyloudnorm).

    Parameters
    ----------
    audio : np.ndarray [shape=(n_channels, n_samples)] or [shape=(n_samples,)]
    sample_rate : int
        In Hz.

    Returns
    -------
    float
        LUFS; ``-inf`` for silence (everything below the -70 LUFS gate).
        Clips shorter than one 400 ms gating block are tiled up to it (as Scaper does).
    """
    return _loudness_and_blocks(audio, sample_rate)[0]


TRACK_REFERENCE_LUFS = -23.0
"""Every source is levelled to this loudness (EBU R128's reference) before its importance gain."""


def level_track(track: np.ndarray, sample_rate: int, *, target_lufs: float = TRACK_REFERENCE_LUFS) -> tuple[np.ndarray, float | None]:
    """Level one mono source to ``target_lufs`` so that importance alone sets its place in the mix.

    Without this, a recording made at -12 LUFS and one at -26 LUFS would sit
    14 dB apart at the same importance.

    Parameters
    ----------
    track : np.ndarray [shape=(n_samples,), dtype=float32]
    sample_rate : int
        In Hz.
    target_lufs : float
        Reference loudness (BS.1770) of every levelled source.

    Returns
    -------
    levelled : np.ndarray [shape=(n_samples,), dtype=float32]
        Silence stays silence; a source below the -70 LUFS gate is levelled by
        a copy raised to full scale (as in :func:`render_mix`).
    source_lufs : float or None
        The source's own loudness before levelling (``None`` for silence).
    """
    x = np.asarray(track, dtype=np.float32)
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    if peak == 0.0:
        return x, None
    loud = integrated_loudness(x, sample_rate)
    if not math.isfinite(loud):
        lift = 1.0 / peak
        loud = integrated_loudness(x * np.float32(lift), sample_rate) - 20.0 * math.log10(lift)
        if not math.isfinite(loud):
            return (x * np.float32(db_to_gain(-6.0) / peak)).astype(np.float32), None
    return (x * np.float32(db_to_gain(target_lufs - loud))).astype(np.float32), round(loud, 3)


def _loudness_and_blocks(audio: np.ndarray, sample_rate: int) -> tuple[float, np.ndarray]:
    """Integrated loudness and the loudness of each 400 ms gating block (LUFS)."""
    x = np.asarray(audio, dtype=np.float64)
    x = x[None, :] if x.ndim == 1 else x
    if x.shape[-1] == 0 or not np.any(x):
        return float("-inf"), np.zeros(0)
    block = int(math.ceil(0.4 * sample_rate)) + 1
    if x.shape[-1] < block:
        x = np.tile(x, (1, int(math.ceil(block / x.shape[-1]))))
    meter = pyloudnorm.Meter(sample_rate)  # a fresh meter per call: Meter keeps per-call state
    value = float(meter.integrated_loudness(x.T))
    blocks = np.asarray(meter.blockwise_loudness, dtype=np.float64)
    return (value if math.isfinite(value) and value > SILENCE_LUFS else float("-inf")), blocks


def _gates_unchanged(blocks: np.ndarray, gain_db: float) -> bool:
    """True when shifting every block by ``gain_db`` moves none across BS.1770's -70 LUFS absolute gate.

    Then the gated block set is the same and the relative gate moves with the
    gain, so the integrated loudness after the gain is exactly L + gain.
    """
    lo, hi = sorted((SILENCE_LUFS, SILENCE_LUFS - gain_db))
    return not np.any((blocks >= lo) & (blocks < hi))


@dataclass(frozen=True)
class Mix:
    """A rendered mix and what it took.

    Attributes
    ----------
    audio : np.ndarray [shape=(2, n_samples), dtype=float32]
        The stereo mix after loudness normalisation and the peak ceiling.
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
        True when the peak ceiling stopped the mix short of the target.
    """

    audio: np.ndarray
    sample_rate: int
    coefficients: np.ndarray
    master_gain_db: float
    loudness_lufs: float | None
    peak_dbfs: float | None
    target_lufs: float
    limited_by_peak: bool

    def stem(self, tracks: np.ndarray, index: int) -> np.ndarray:
        """Stereo stem ``(2, n_samples)`` of track ``index`` exactly as it sits in the mix."""
        return (self.coefficients[:, index : index + 1] * tracks[index][None, :]).astype(np.float32)


def render_mix(
    tracks: np.ndarray,
    *,
    pans,
    gains_db,
    sample_rate: int,
    loudness_lufs: float = DEFAULT_LOUDNESS_LUFS,
    peak_dbfs: float = DEFAULT_PEAK_DBFS,
) -> Mix:
    """Pan, gain, sum, normalise to ``loudness_lufs`` and guarantee the peak ceiling.

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
        Sample-peak ceiling; the mix is turned down further if it would exceed it.

    Returns
    -------
    Mix
        Same inputs give bit-identical output.
    """
    tracks = np.asarray(tracks, dtype=np.float32)
    if tracks.ndim != 2:
        raise ParameterError(f"tracks must have shape (n_tracks, n_samples), got {tracks.shape}")
    n_tracks, n_samples = tracks.shape
    pans = np.asarray(pans, dtype=np.float64).reshape(-1)
    gains = np.asarray(gains_db, dtype=np.float64).reshape(-1)
    if pans.shape[0] != n_tracks or gains.shape[0] != n_tracks:
        raise ParameterError(f"need one pan and one gain per track ({n_tracks}), got {pans.shape[0]} and {gains.shape[0]}")
    if not np.all(np.isfinite(gains)):
        raise ParameterError(f"gains_db must be finite, got {gains.tolist()}")
    if not (-70.0 <= loudness_lufs <= 0.0):
        raise ParameterError(f"loudness_lufs={loudness_lufs} must lie between -70 and 0 LUFS")
    if not (-60.0 <= peak_dbfs <= 0.0):
        raise ParameterError(f"peak_dbfs={peak_dbfs} must lie between -60 and 0 dBFS")
    coeffs = pan_gains(pans) * db_to_gain(gains)[None, :]  # (2, n_tracks)
    if n_tracks == 0 or n_samples == 0:
        summed = np.zeros((2, n_samples), dtype=np.float32)
    else:
        summed = (coeffs.astype(np.float32) @ tracks).astype(np.float32)
    loud, blocks = _loudness_and_blocks(summed, sample_rate)
    peak = float(np.max(np.abs(summed))) if summed.size else 0.0
    if peak == 0.0:  # digital silence stays silence: no gain can be derived, none is applied
        return Mix(summed, sample_rate, coeffs * 0.0, 0.0, None, None, loudness_lufs, False)
    if not math.isfinite(loud):
        # Below BS.1770's -70 LUFS gate the loudness is undefined: measure a copy raised to the peak
        # ceiling and refer the result back (a quiet recording is brought up, not silenced).
        lift_db = float(gain_to_db(db_to_gain(peak_dbfs) / peak))
        loud, blocks = _loudness_and_blocks(summed * np.float32(db_to_gain(lift_db)), sample_rate)
        loud, blocks = loud - lift_db, blocks - lift_db
    gain_db = loudness_lufs - loud if math.isfinite(loud) else math.inf  # still unmeasurable: up to the ceiling
    ceiling = float(db_to_gain(peak_dbfs - 1e-3))  # a hair under, so 24-bit rounding cannot cross it
    limited = peak * float(db_to_gain(gain_db)) > ceiling
    if limited:
        gain_db = float(gain_to_db(ceiling / peak))
    g = np.float32(db_to_gain(gain_db))
    audio = summed * g
    coeffs = coeffs * float(g)
    out_peak = float(np.max(np.abs(audio)))
    applied_db = float(gain_to_db(float(g)))
    if math.isfinite(loud) and _gates_unchanged(blocks, applied_db):
        out_loud = loud + applied_db  # exact (see _gates_unchanged); saves a second pass over the mix
    else:
        out_loud = integrated_loudness(audio, sample_rate)
    return Mix(
        audio=audio,
        sample_rate=sample_rate,
        coefficients=coeffs,
        master_gain_db=round(float(gain_db), 6),
        loudness_lufs=round(out_loud, 3) if math.isfinite(out_loud) else None,
        peak_dbfs=round(float(gain_to_db(out_peak)), 3),
        target_lufs=loudness_lufs,
        limited_by_peak=bool(limited),
    )


@dataclass(frozen=True)
class MixSettings:
    """Everything that shapes the mix, with sensible defaults.

    Attributes
    ----------
    duration_s : float
        Scene length in seconds (1 .. 600).
    sample_rate : int
        Mix rate in Hz.
    attenuation_db : float >= 0
        How far an object of importance 0 sits below the most important one.
    loudness_lufs : float
        Target integrated loudness of the mix (BS.1770).
    peak_dbfs : float
        Sample-peak ceiling of the mix.
    eq_strength : float in [0, 1]
        Depth of the masking-driven EQ (0 = off).
    max_cut_db : float >= 0
        Deepest cut any EQ filter may make.
    optimize : bool
        Run the differential-evolution refinement of gains and EQ depth.
    seed : int
        Seeds every random choice; same inputs + same seed = same output.
    """

    duration_s: float = 30.0
    sample_rate: int = DEFAULT_SAMPLE_RATE
    attenuation_db: float = DEFAULT_ATTENUATION_DB
    loudness_lufs: float = DEFAULT_LOUDNESS_LUFS
    peak_dbfs: float = DEFAULT_PEAK_DBFS
    eq_strength: float = 1.0
    max_cut_db: float = 6.0
    optimize: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        checks = [
            (1.0 <= self.duration_s <= 600.0, f"duration_s={self.duration_s} must lie between 1 and 600 seconds"),
            (8000 <= self.sample_rate <= 192000, f"sample_rate={self.sample_rate} must lie between 8000 and 192000 Hz"),
            (0.0 <= self.attenuation_db <= 60.0, f"attenuation_db={self.attenuation_db} must lie between 0 and 60 dB"),
            (-70.0 <= self.loudness_lufs <= 0.0, f"loudness_lufs={self.loudness_lufs} must lie between -70 and 0 LUFS"),
            (-60.0 <= self.peak_dbfs <= 0.0, f"peak_dbfs={self.peak_dbfs} must lie between -60 and 0 dBFS"),
            (0.0 <= self.eq_strength <= 1.0, f"eq_strength={self.eq_strength} must lie between 0 and 1"),
            (0.0 <= self.max_cut_db <= 24.0, f"max_cut_db={self.max_cut_db} must lie between 0 and 24 dB"),
        ]
        for ok, message in checks:
            if not ok:  # also catches NaN, for which every comparison is False
                raise ParameterError(message)

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


_MIN_CUT_DB = 0.5  # design_eq's min_cut_db: shallower cuts are not worth a filter


@dataclass(frozen=True)
class MixOutcome:
    """A rendered mix with its analysis.

    Attributes
    ----------
    mix : Mix
    processed : np.ndarray [shape=(n_tracks, n_samples)]
        Mono tracks after EQ (before pan and gain).
    gains_db : np.ndarray [shape=(n_tracks,)]
        Final per-track gains (importance gain + optimiser offset).
    requested_gains_db : np.ndarray [shape=(n_tracks,)]
        Gains from importance and attenuation alone.
    filters : list of list
        EQ filters per track (:class:`imgext.eq.EqFilter`).
    masking_before, masking_after : MaskingReport or None
    optimisation : OptimisationResult or None
    timings_s : dict
    """

    mix: Mix
    processed: np.ndarray
    gains_db: np.ndarray
    requested_gains_db: np.ndarray
    filters: list
    masking_before: object | None
    masking_after: object | None
    optimisation: object | None
    timings_s: dict


class Mixer:
    """Mixes one set of tracks under changing settings, caching the expensive analysis.

    The masking analysis (STFT and Bark bands) is computed once per track set;
    a new attenuation, EQ strength or loudness target only redesigns the EQ,
    refilters and re-sums.
    """

    def __init__(self, tracks, *, reuse: Mixer | None = None) -> None:
        self.tracks = tracks
        self._bands = None
        self._analysis_s = 0.0
        self._processed = None
        self._designs: dict = {}  # full-strength EQ designs by (gains, importance, max cut), most recent last
        self._lock = threading.Lock()  # guards _designs: the app's ZIP download copies it from another thread
        if reuse is not None and reuse._bands is not None and reuse.tracks.audio is tracks.audio:
            self._bands, self._analysis_s = reuse._bands, reuse._analysis_s  # same audio: keep the analysis
            with reuse._lock:
                self._designs.update(reuse._designs)  # and the EQ designs (a copy: each Mixer owns its cache)

    def bands(self):
        """Cached unit-gain Bark-band energies of the dry tracks."""
        if self._bands is None and self.tracks.n_tracks > 0:
            from .masking import band_energies

            t0 = time.perf_counter()
            self._bands = band_energies(self.tracks.audio, self.tracks.sample_rate)
            self._analysis_s = time.perf_counter() - t0
        return self._bands

    def _process(self, settings: MixSettings):
        """EQ design, optional optimisation and filtering: cached for the last settings that shape them."""
        from .eq import apply_eq, band_response_db, design_eq, filters_loudness_change_lu
        from .masking import masking_report
        from .optimise import optimise_mix, scale_filters

        tracks = self.tracks
        requested = tracks.gains_db(settings.attenuation_db)
        key = (tuple(requested), tuple(tracks.importance), settings.eq_strength, settings.max_cut_db,
               settings.optimize, settings.seed)
        if self._processed is not None and self._processed[0] == key:
            return self._processed[1]
        design_key = (tuple(requested), tuple(tracks.importance), settings.max_cut_db)
        timings: dict[str, float] = {}
        gains = requested.copy()
        filters: list = [[] for _ in range(tracks.n_tracks)]
        before = opt = None
        processed = tracks.audio
        if tracks.n_tracks > 0:
            bands = self.bands()
            timings["analysis"] = self._analysis_s
            t0 = time.perf_counter()
            before = masking_report(bands, gains_db=gains, importance=tracks.importance)
            if settings.eq_strength > 0 and settings.max_cut_db > 0 and tracks.n_tracks > 1:
                # EQ strength scales the depth of the full-strength design, so moving that slider
                # reuses the design and only refilters (the design depends on gains, importance, max cut).
                with self._lock:
                    full = self._designs.pop(design_key, None)
                if full is None:
                    full = design_eq(bands, gains_db=gains, importance=tracks.importance, strength=1.0,
                                     max_cut_db=settings.max_cut_db)
                with self._lock:
                    self._designs[design_key] = full  # designs are deterministic: a slider moved back reuses one
                    while len(self._designs) > 32:
                        self._designs.pop(next(iter(self._designs)))
                filters = scale_filters(full, np.full(tracks.n_tracks, settings.eq_strength))
                filters = [[f for f in track if f.gain_db <= -_MIN_CUT_DB] for track in filters]
            timings["eq"] = time.perf_counter() - t0
            if settings.optimize and tracks.n_tracks > 1:
                t0 = time.perf_counter()
                eq_db = np.stack([band_response_db(f, bands) for f in filters])
                opt = optimise_mix(bands, gains_db=gains, importance=tracks.importance, eq_db=eq_db, seed=settings.seed,
                                   eq_loudness_lu=filters_loudness_change_lu(filters, bands))
                gains = gains + opt.gain_offsets_db
                filters = scale_filters(filters, opt.eq_depth)
                timings["optimise"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            processed = apply_eq(tracks.audio, filters, tracks.sample_rate) if any(filters) else tracks.audio
            timings["filter"] = time.perf_counter() - t0
        result = (requested, gains, filters, processed, before, opt, timings)
        self._processed = (key, result)
        return result

    def render(self, settings: MixSettings, *, measure_after: bool = True) -> MixOutcome:
        """Render the mix for ``settings``.

        Parameters
        ----------
        measure_after : bool
            Re-analyse the processed audio for the "after" masking report (exact);
            when False it is estimated in the band domain from the cached analysis
            (faster, for interactive use).

        Notes
        -----
        The analysis is computed once per track set; EQ and filtering are reused
        while only the loudness target or peak ceiling changes.
        """
        from .eq import band_response_db
        from .masking import band_energies, masking_report

        tracks = self.tracks
        requested, gains, filters, processed, before, opt, stage_timings = self._process(settings)
        timings = dict(stage_timings)
        after = None
        t0 = time.perf_counter()
        mix = render_mix(
            processed, pans=tracks.pans, gains_db=gains, sample_rate=tracks.sample_rate,
            loudness_lufs=settings.loudness_lufs, peak_dbfs=settings.peak_dbfs,
        )
        timings["render"] = time.perf_counter() - t0
        if tracks.n_tracks > 0:
            t0 = time.perf_counter()
            if measure_after and processed is not tracks.audio:
                after = masking_report(band_energies(processed, tracks.sample_rate), gains_db=gains, importance=tracks.importance)
            else:
                eq_db = np.stack([band_response_db(f, self.bands()) for f in filters])
                after = masking_report(self.bands(), gains_db=gains, importance=tracks.importance, eq_db=eq_db)
            timings["analysis_after"] = time.perf_counter() - t0
        return MixOutcome(mix, processed, gains, requested, filters, before, after, opt, timings)

"""Directional multitrack masking analysis in Bark bands (``shared/design/masking.md`` section 5).

1. :func:`band_energies` - per track, once, at **unit gain**: the PEAQ FFT ear model of
   :mod:`imgext.masking.psychoacoustics` (float32 STFT, ear weighting, Zwicker bands, forward
   masking, power-mean pooling). Everything after it is band-domain only.
2. :func:`masking_detail` - for gains (and an EQ band response) the masking of every
   maskee by every masker per band and frame (Terhardt spreading, PEAQ offset).
3. :func:`masking_report` - the summaries: N x N matrix, masking by the rest of the mix,
   masked fraction, worst pair, worst problematic pair, role-swap rate, imbalance.

**Activity.** A maskee's band-frame counts only if above the hearing floor and within
:data:`ACTIVITY_RANGE_DB` (30 dB) of the track's own loudest band-frame
(:func:`imgext.masking.psychoacoustics.activity_mask` says why): recording noise floors and reverb
tails are not "the track" and do not inflate its masked fraction.

**Problematic vs intended masking** (iZotope Neutron's "problematic vs encouraged"): masking
of j by i is *problematic* when ``p_i <= p_j + 0.1`` (:func:`problem_pairs`), a masker no more
important than its maskee: the clash the EQ is allowed to fix. A more important foreground
covering a background is *intended*. Reports keep ``worst_pair`` (all pairs) beside
``worst_problem_pair``; the project's worst-pair target (>= 3 dB lower at EQ strength 1) is
judged on ``worst_problem_pair``.

Energies are powers relative to a full-scale sine (1.0 = 0 dBFS = 96 dB SPL).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from imgext.audio.dsp import signal
from imgext.audio.spill import release
from imgext.errors import ParameterError
from imgext.masking import model
from imgext.masking.psychoacoustics import (
    ACTIVITY_RANGE_DB,
    FULL_SCALE_SPL_DB,
    band_centres_hz,
    band_edges_hz,
    band_loudness_change_lu,
    ear_weighting_db,
    forward_masking,
    hearing_floor_db,
    k_weighting_db,
    power_mean_pool,
    power_spectrogram,
)

__all__ = [
    "ACTIVITY_RANGE_DB",
    "DEFAULT_POOL_S",
    "PROBLEM_TOLERANCE",
    "BandEnergies",
    "MaskingDetail",
    "MaskingReport",
    "band_energies",
    "level_shift_db",
    "loudness_change_lu",
    "masking_detail",
    "masking_report",
    "normalised_importance",
    "problem_pairs",
    "relative_activity",
    "repool",
    "role_swap_rate",
]

DEFAULT_POOL_S = 0.25
"""Pooling length in seconds: long enough for a stable ratio, short enough for a bark (~0.3 s)."""
PROBLEM_TOLERANCE = 0.1
"""Masking of j by i is problematic when ``p_i <= p_j + PROBLEM_TOLERANCE`` (importances this close count as equal)."""
ROLE_DEADBAND_DB = 1.0
"""Masker/maskee roles are only assigned when the two directions differ by more than this."""
_TINY = np.float32(1e-30)


@dataclass(frozen=True)
class BandEnergies:
    """Per-track band analysis at unit gain (cache it; gains and EQ are applied later).

    Attributes
    ----------
    energy : np.ndarray [shape=(n_tracks, n_bands, n_frames), dtype=float32]
        Ear-weighted band power per pooled frame (power mean), full-scale sine = 1.
    masker_energy : np.ndarray [shape=(n_tracks, n_bands, n_frames), dtype=float32]
        Same after PEAQ forward masking (computed at the STFT hop, then pooled): what a
        track casts as a masker, before spreading.
    loudness_power : np.ndarray [shape=(n_tracks, n_bands), dtype=float32]
        Mean K-weighted (BS.1770) band power; drives :func:`loudness_change_lu`.
    band_edges_hz : np.ndarray [shape=(n_bands + 1,)]
    band_centres_hz : np.ndarray [shape=(n_bands,)]
        Bark midpoints of the bands.
    floor_power : np.ndarray [shape=(n_bands,)]
        Hearing floor in the units of ``energy``.
    frame_s : float
        Seconds per frame of ``energy``.
    sample_rate : int
        In Hz.
    n_fft : int
        STFT size used, in samples (fixes the bin grid of :func:`imgext.engine.eq.band_response_db`).
    loudness_spectrum : np.ndarray [shape=(n_tracks, n_fft // 2 + 1), dtype=float32] or None
        Mean K-weighted power per STFT bin: the loudness change of a filter follows from it
        exactly (up to gating), without the band averaging of :func:`loudness_change_lu`.
    fine_energy, fine_masker_energy : np.ndarray [shape=(n_tracks, n_bands, n_fine_frames)] or None
        ``energy`` and ``masker_energy`` at the STFT hop (before pooling): what the time-aware
        ducking (:mod:`imgext.engine.duck`) is designed on.
    hop_s : float
        Seconds per fine frame (the STFT hop).
    """

    energy: np.ndarray
    masker_energy: np.ndarray
    loudness_power: np.ndarray
    band_edges_hz: np.ndarray
    band_centres_hz: np.ndarray
    floor_power: np.ndarray
    frame_s: float
    sample_rate: int
    n_fft: int
    loudness_spectrum: np.ndarray | None = None
    fine_energy: np.ndarray | None = None
    fine_masker_energy: np.ndarray | None = None
    hop_s: float = 0.0

    @property
    def n_tracks(self) -> int:
        """Number of tracks."""
        return int(self.energy.shape[0])

    @property
    def n_bands(self) -> int:
        """Number of bands."""
        return int(self.energy.shape[1])


def _all_finite(x: np.ndarray) -> bool:
    """Every sample finite, checked a row at a time (no whole-array mask; a spilled row is released after)."""
    for row in x:
        ok = bool(np.isfinite(row).all())
        release(x)
        if not ok:
            return False
    return True


def band_energies(
    tracks: np.ndarray,
    sample_rate: int,
    *,
    n_fft: int = 2048,
    hop_length: int = 1024,
    pool_s: float = DEFAULT_POOL_S,
    ear_weighting: bool = True,
) -> BandEnergies:
    """Bark-band energies of each track at unit gain.

    Parameters
    ----------
    tracks : np.ndarray [shape=(n_tracks, n_samples)], real, finite
        Mono tracks, full scale = 1.0.
    sample_rate : int > 0
        In Hz.
    n_fft : int > 0
        STFT size; 2048 samples = 46 ms at 44.1 kHz (PEAQ frame).
    hop_length : int > 0
        STFT hop; 1024 = 23 ms at 44.1 kHz. Forward masking runs at this rate.
    pool_s : float > 0
        Frames are pooled (power mean) to about this length in seconds.
    ear_weighting : bool
        Apply the PEAQ outer/middle-ear weighting (the floor is then PEAQ's internal
        noise instead of the absolute threshold of hearing).

    Returns
    -------
    BandEnergies
    """
    x = np.atleast_2d(np.asarray(tracks))
    if x.ndim != 2 or x.shape[1] == 0:
        raise ParameterError(f"tracks must have shape (n_tracks, n_samples), got {x.shape}")
    if not np.issubdtype(x.dtype, np.floating) or not _all_finite(x):
        raise ParameterError("tracks must be finite floating-point audio")
    if min(sample_rate, n_fft, hop_length, pool_s) <= 0:
        raise ParameterError(f"sample_rate={sample_rate}, n_fft={n_fft}, hop_length={hop_length}, "
                             f"pool_s={pool_s} must be positive")
    x = x.astype(np.float32, copy=False)
    edges = band_edges_hz(sample_rate)
    centres = band_centres_hz(edges)
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    ear = (10.0 ** (ear_weighting_db(freqs) / 10.0) if ear_weighting else np.ones(len(freqs))).astype(np.float32)
    k_lin = (10.0 ** (k_weighting_db(freqs) / 10.0)).astype(np.float32)
    # Bands are contiguous runs of bins (DC excluded): sum them with reduceat, no dense (bins x bands) product.
    starts = np.maximum(np.searchsorted(freqs, edges[:-1], side="left"), 1)
    stop = np.searchsorted(freqs, edges[-1], side="left")
    offsets = starts - starts[0]
    empty = np.append(starts[1:], stop) <= starts
    window = signal.get_window("hann", n_fft).astype(np.float32)
    hop_s = hop_length / sample_rate
    n_frames = 1 + x.shape[1] // hop_length
    e = np.empty((x.shape[0], len(centres), n_frames), np.float32)
    k_power = np.empty((x.shape[0], len(freqs)), np.float32)
    for i, track in enumerate(x):  # one vectorised STFT per track keeps the working set ~30 MB
        p = power_spectrogram(track, n_fft, hop_length, window)
        k_power[i] = p.mean(axis=0) * k_lin
        p *= ear
        e[i] = np.add.reduceat(p[:, starts[0]:stop], offsets, axis=1).T
        release(x)  # a long scene's spilled tracks: only the row being analysed stays in memory
    if empty.any():
        e[:, empty] = 0.0
    fm = forward_masking(e, centres, hop_s)
    factor = max(1, int(round(pool_s / hop_s)))
    floor_db = hearing_floor_db(centres, ear_weighted=ear_weighting)
    loud_bands = np.add.reduceat(k_power[:, starts[0]:stop], offsets, axis=1)
    if empty.any():
        loud_bands[:, empty] = 0.0
    return BandEnergies(
        energy=power_mean_pool(e, factor), masker_energy=power_mean_pool(fm, factor),
        loudness_power=loud_bands.astype(np.float32), band_edges_hz=edges, band_centres_hz=centres,
        floor_power=(10.0 ** ((floor_db - FULL_SCALE_SPL_DB) / 10.0)).astype(np.float32), frame_s=factor * hop_s,
        sample_rate=int(sample_rate), n_fft=int(n_fft), loudness_spectrum=k_power,
        fine_energy=e, fine_masker_energy=fm, hop_s=hop_s,
    )


def repool(bands: BandEnergies, factor: int) -> BandEnergies:
    """Pool ``bands`` further by an integer ``factor`` (power mean; exact, pooling is linear)."""
    if factor <= 1:
        return bands
    return replace(bands, energy=power_mean_pool(bands.energy, factor), frame_s=bands.frame_s * factor,
                   masker_energy=power_mean_pool(bands.masker_energy, factor))


def level_shift_db(bands: BandEnergies, gains_db, eq_db=None) -> np.ndarray:
    """Per-track, per-band level change in dB, shape (n_tracks, n_bands): gain plus EQ response."""
    n, b = bands.n_tracks, bands.n_bands
    g = np.asarray(gains_db, dtype=np.float64)
    if g.shape != (n,) or not np.all(np.isfinite(g)):
        raise ParameterError(f"gains_db must be {n} finite values in dB, got shape {g.shape}")
    shift = np.repeat(g[:, None], b, axis=1)
    if eq_db is not None:
        h = np.asarray(eq_db, dtype=np.float64)
        if h.shape != (n, b) or not np.all(np.isfinite(h)):
            raise ParameterError(f"eq_db must have shape ({n}, {b}), got {h.shape}")
        shift = shift + h
    return shift


def loudness_change_lu(bands: BandEnergies, shift_db: np.ndarray) -> np.ndarray:
    """BS.1770 loudness change (LU) of each track under per-band level shifts ``shift_db`` [shape=(..., N, B)], dB.

    :func:`imgext.masking.psychoacoustics.band_loudness_change_lu` on the track's mean K-weighted band power.
    """
    return band_loudness_change_lu(bands.loudness_power, shift_db)


@dataclass(frozen=True)
class MaskingDetail:
    """Masking per band and frame (heatmap material).

    Attributes
    ----------
    pair_db : np.ndarray [shape=(n_tracks, n_tracks, n_bands, n_frames), dtype=float32]
        ``pair_db[i, j]``: how far maskee j sits below masker i's threshold, dB >= 0
        (0 where j is inactive or audible); diagonal zero.
    by_rest_db : np.ndarray [shape=(n_tracks, n_bands, n_frames), dtype=float32]
        Masking of each track by the summed thresholds of all others, dB >= 0.
    weight : np.ndarray [shape=(n_tracks, n_bands, n_frames), dtype=float32]
        Maskee loudness weight ``A_j (E_j / E_floor)^0.23`` (0 where inactive).
    active : np.ndarray [shape=(n_tracks, n_bands, n_frames), dtype=bool]
    threshold_db : np.ndarray [shape=(n_tracks, n_bands, n_frames), dtype=float32]
        Masking threshold each track casts, dB re full scale (for contribution shares).
    frame_s : float
    """

    pair_db: np.ndarray
    by_rest_db: np.ndarray
    weight: np.ndarray
    active: np.ndarray
    threshold_db: np.ndarray
    frame_s: float
    level_db: np.ndarray | None = None
    rest_db: np.ndarray | None = None


def _spread(masker: np.ndarray, bands: BandEnergies) -> np.ndarray:
    """Masking threshold (..., N, B, T) from forward-masked energies (:func:`imgext.masking.model.thresholds`)."""
    return model.thresholds(masker, bands.band_centres_hz)


def _db(x: np.ndarray) -> np.ndarray:
    return np.float32(10.0) * np.log10(np.maximum(x, _TINY))


def relative_activity(bands: BandEnergies, *, activity_range_db: float = ACTIVITY_RANGE_DB) -> np.ndarray:
    """(N, B, T) bool: unit-gain band-frames within ``activity_range_db`` of the track's own maximum."""
    e = bands.energy
    peak = e.reshape(e.shape[0], -1).max(axis=1) if e.size else np.zeros(e.shape[0], np.float32)
    return e > (peak * np.float32(10.0 ** (-activity_range_db / 10.0)))[:, None, None]


def problem_pairs(importance, *, tolerance: float = PROBLEM_TOLERANCE) -> np.ndarray:
    """(n_tracks, n_tracks) bool: masking of j by i is problematic (``p_i <= p_j + tolerance``, i != j).

    Problematic masking is the clash the EQ may fix: a masker no more important than its
    maskee. The rest (a more important foreground over a background) is intended.
    """
    p = np.asarray(importance, dtype=np.float64)
    out = p[:, None] <= p[None, :] + tolerance + 1e-12
    np.fill_diagonal(out, False)
    return out


def masking_detail(bands: BandEnergies, *, gains_db, eq_db=None,
                   activity_range_db: float = ACTIVITY_RANGE_DB) -> MaskingDetail:
    """Directional masking per band and frame.

    Parameters
    ----------
    bands : BandEnergies
        Unit-gain analysis from :func:`band_energies`.
    gains_db : np.ndarray [shape=(n_tracks,)]
        Mix gain of each track in dB.
    eq_db : np.ndarray [shape=(n_tracks, n_bands)] or None
        Band response of each track's EQ in dB (:func:`imgext.engine.eq.band_response_db`); None = flat.
    activity_range_db : float > 0
        Relevant dynamic range of each maskee, dB (:func:`activity_mask`).

    Returns
    -------
    MaskingDetail

    Notes
    -----
    ``T_i = g_m * S^T (F_i * 10^(shift_i/10))`` with ``F`` the forward-masked energy,
    ``S`` Terhardt spreading and ``g_m`` the PEAQ offset; ``M_ij = A_j max(0, T_i/E_j in dB)``.
    """
    shift = level_shift_db(bands, gains_db, eq_db).astype(np.float32)[:, :, None]
    lin = np.power(np.float32(10.0), shift / np.float32(10.0))
    thr = _spread(bands.masker_energy * lin, bands)
    e_db = _db(bands.energy) + shift
    floor_db = _db(bands.floor_power.astype(np.float32))
    active = model.band_activity(e_db, floor_db, activity_range_db=activity_range_db)
    weight = model.maskee_weight(e_db, active, floor_db)
    t_db = _db(thr)
    pair = np.maximum(t_db[:, None] - e_db[None, :], 0.0) * active[None, :]
    n = bands.n_tracks
    pair[np.arange(n), np.arange(n)] = 0.0
    rest = thr.sum(axis=0, dtype=np.float64)[None] - thr  # float64: no cancellation noise
    rest_db = _db(rest.astype(np.float32))
    by_rest = np.maximum(rest_db - e_db, 0.0) * active
    return MaskingDetail(
        pair_db=pair.astype(np.float32),
        by_rest_db=by_rest.astype(np.float32),
        weight=weight,
        active=active,
        threshold_db=t_db.astype(np.float32),
        frame_s=bands.frame_s,
        level_db=e_db.astype(np.float32),
        rest_db=rest_db,
    )


@dataclass(frozen=True)
class MaskingReport:
    """Summary of a mix's masking (band-domain, cheap enough for every slider move).

    Attributes
    ----------
    matrix_db : np.ndarray [shape=(n_tracks, n_tracks)]
        Masker rows, maskee columns; loudness-weighted mean masking in dB; diagonal 0.
    by_rest_db : np.ndarray [shape=(n_tracks,)]
        Loudness-weighted mean masking of each track by the rest of the mix, dB.
    masked_fraction : np.ndarray [shape=(n_tracks,)]
        Loudness-weighted share of each track's active band-frames that are masked, in [0, 1].
    total_db : float
        Importance-weighted mean of ``by_rest_db``.
    worst_pair : tuple (masker, maskee, dB) or None
        Largest entry of ``matrix_db`` over all pairs, intended masking included; None
        when nothing is masked.
    role_swap_rate : np.ndarray [shape=(n_tracks, n_tracks)]
        Symmetric, in [0, 1]: role changes per segment where both tracks sound.
    imbalance_db : float
        Standard deviation of ``by_rest_db`` over the tracks that sound at all.
    worst_problem_pair : tuple (masker, maskee, dB) or None
        Largest entry of ``matrix_db`` over the *problematic* pairs only (masker no more
        important than the maskee, :func:`problem_pairs`): the clash the EQ is allowed to
        fix, on which the worst-pair target is judged. None when none is masked.
    problematic : np.ndarray [shape=(n_tracks, n_tracks), dtype=bool] or None
        Which (masker, maskee) pairs are problematic.
    activity_range_db : float
        Dynamic range used for the maskees' activity (:func:`activity_mask`), dB.
    core_smr_db : np.ndarray [shape=(n_tracks,)] or None
        Signal-to-mask ratio in each track's core bands (:func:`imgext.masking.model.core_smr`), dB.
    core_masked_fraction : np.ndarray [shape=(n_tracks,)] or None
        Loudness-weighted share of the core band-frames under the threshold.
    core : np.ndarray [shape=(n_tracks, n_bands), dtype=bool] or None
        The core bands used (the dry mix's unless passed in).
    """

    matrix_db: np.ndarray
    by_rest_db: np.ndarray
    masked_fraction: np.ndarray
    total_db: float
    worst_pair: tuple[int, int, float] | None
    role_swap_rate: np.ndarray
    imbalance_db: float
    worst_problem_pair: tuple[int, int, float] | None = None
    problematic: np.ndarray | None = None
    activity_range_db: float = ACTIVITY_RANGE_DB
    core_smr_db: np.ndarray | None = None
    core_masked_fraction: np.ndarray | None = None
    core: np.ndarray | None = None

    def to_dict(self, names: list[str]) -> dict:
        """JSON-ready dict: plain lists and floats, track names on both matrix axes."""
        names = [str(n) for n in names]
        if len(names) != len(self.by_rest_db):
            raise ParameterError(f"need {len(self.by_rest_db)} names, got {len(names)}")

        def pair(wp):
            return None if wp is None else {"masker": names[wp[0]], "maskee": names[wp[1]], "masking_db": float(wp[2])}

        problematic = np.zeros((len(names),) * 2, bool) if self.problematic is None else self.problematic
        return {
            "names": names,
            "matrix_db": {"maskers": names, "maskees": names, "values": self.matrix_db.astype(float).tolist()},
            "by_rest_db": dict(zip(names, self.by_rest_db.astype(float).tolist())),
            "masked_fraction": dict(zip(names, self.masked_fraction.astype(float).tolist())),
            "total_db": float(self.total_db),
            "worst_pair": pair(self.worst_pair),
            "worst_problem_pair": pair(self.worst_problem_pair),
            "problematic": {"maskers": names, "maskees": names, "values": problematic.astype(bool).tolist()},
            "role_swap_rate": {"tracks": names, "values": self.role_swap_rate.astype(float).tolist()},
            "imbalance_db": float(self.imbalance_db),
            "activity_range_db": float(self.activity_range_db),
            "core_smr_db": None if self.core_smr_db is None else dict(
                zip(names, [None if not np.isfinite(v) else round(float(v), 3) for v in self.core_smr_db])),
            "core_masked_fraction": None if self.core_masked_fraction is None else dict(
                zip(names, self.core_masked_fraction.astype(float).round(4).tolist())),
        }


def _worst(matrix: np.ndarray) -> tuple[int, int, float] | None:
    """(masker, maskee, dB) of the largest entry, or None when nothing is masked."""
    if not matrix.size or matrix.max() <= 0:
        return None
    i, j = np.unravel_index(int(np.argmax(matrix)), matrix.shape)
    return int(i), int(j), float(matrix[i, j])


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    return np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)


def normalised_importance(importance, n_tracks: int) -> np.ndarray:
    """Validate importance (n_tracks,) in [0, 1]; return it as weights summing to 1."""
    p = np.asarray(importance, dtype=np.float64)
    if p.shape != (n_tracks,) or not np.all((p >= 0) & (p <= 1)):
        raise ParameterError(f"importance must be {n_tracks} values in [0, 1], got {np.round(p, 3).tolist()}")
    return p / p.sum() if p.sum() > 0 else np.full(n_tracks, 1.0 / max(n_tracks, 1))


def role_swap_rate(detail: MaskingDetail, *, segment_s: float = 1.0) -> np.ndarray:
    """Temporal interchangeability: how often the masker/maskee roles of a pair swap.

    Per segment of ``segment_s`` the loudness-weighted pair masking ``M_ij[s]`` is
    compared with ``M_ji[s]``; the role is the sign of the difference (0 within
    :data:`ROLE_DEADBAND_DB`). Rate = sign changes / (segments where both sound - 1).

    Returns
    -------
    np.ndarray [shape=(n_tracks, n_tracks)], symmetric, in [0, 1]
    """
    n, _, _, t = detail.pair_db.shape
    per = max(1, int(round(segment_s / detail.frame_s)))
    n_seg = -(-t // per)
    num = np.einsum("ijbt,jbt->ijt", detail.pair_db, detail.weight)
    den = detail.weight.sum(axis=1)
    pad = n_seg * per - t
    num = np.pad(num, ((0, 0), (0, 0), (0, pad))).reshape(n, n, n_seg, per).sum(-1)
    den = np.pad(den, ((0, 0), (0, pad))).reshape(n, n_seg, per).sum(-1)
    seg = _safe_div(num, den[None, :, :])
    sounding = den > 0
    both = sounding[:, None, :] & sounding[None, :, :]
    diff = seg - np.swapaxes(seg, 0, 1)
    role = np.where(both & (np.abs(diff) > ROLE_DEADBAND_DB), np.sign(diff), 0.0)
    # Forward-fill the last assigned role so that undecided segments do not count as swaps.
    idx = np.where(role != 0, np.arange(n_seg), 0)
    np.maximum.accumulate(idx, axis=-1, out=idx)
    filled = np.take_along_axis(role, idx, axis=-1)
    changes = ((filled[..., 1:] * filled[..., :-1]) < 0).sum(-1)
    rate = changes / np.maximum(both.sum(-1) - 1, 1)
    np.fill_diagonal(rate, 0.0)
    return rate


def masking_report(
    bands: BandEnergies,
    *,
    gains_db,
    importance,
    eq_db=None,
    segment_s: float = 1.0,
    activity_range_db: float = ACTIVITY_RANGE_DB,
    problem_tolerance: float = PROBLEM_TOLERANCE,
    core=None,
) -> MaskingReport:
    """Summarise the masking of a mix (band-domain only; milliseconds).

    Parameters
    ----------
    bands : BandEnergies
    gains_db : np.ndarray [shape=(n_tracks,)]
        Mix gains in dB.
    importance : np.ndarray [shape=(n_tracks,)]
        In [0, 1]; weights ``total_db`` and decides which pairs are problematic.
    eq_db : np.ndarray [shape=(n_tracks, n_bands)] or None
        EQ band responses in dB; None = flat.
    segment_s : float > 0
        Segment length for the role-swap rate, in seconds.
    activity_range_db : float > 0
        Relevant dynamic range of each maskee, dB (:func:`activity_mask`).
    problem_tolerance : float >= 0
        Importance difference treated as equal when deciding which pairs are problematic.
    core : np.ndarray [shape=(n_tracks, n_bands), dtype=bool] or None
        Core bands for the core SMR; None: this mix's own (pass the dry mix's to compare).

    Returns
    -------
    MaskingReport
    """
    p_hat = normalised_importance(importance, bands.n_tracks)
    d = masking_detail(bands, gains_db=gains_db, eq_db=eq_db, activity_range_db=activity_range_db)
    w_tot = d.weight.sum(axis=(1, 2), dtype=np.float64)  # (N,)
    matrix = _safe_div(np.einsum("ijbt,jbt->ij", d.pair_db, d.weight, dtype=np.float64), w_tot[None, :])
    by_rest = _safe_div(np.einsum("jbt,jbt->j", d.by_rest_db, d.weight, dtype=np.float64), w_tot)
    masked_cells = (d.by_rest_db > 0).astype(np.float32)
    masked = _safe_div(np.einsum("jbt,jbt->j", masked_cells, d.weight, dtype=np.float64), w_tot)
    sounding = w_tot > 0
    problematic = problem_pairs(importance, tolerance=problem_tolerance)
    core = model.core_bands(d.weight) if core is None else np.asarray(core, bool)
    smr = model.core_smr(d.level_db, d.rest_db, d.weight, core)
    return MaskingReport(
        matrix_db=matrix,
        by_rest_db=by_rest,
        masked_fraction=masked,
        total_db=float(np.dot(p_hat, by_rest)),
        worst_pair=_worst(matrix),
        role_swap_rate=role_swap_rate(d, segment_s=segment_s),
        imbalance_db=float(np.std(by_rest[sounding])) if sounding.any() else 0.0,
        worst_problem_pair=_worst(np.where(problematic, matrix, 0.0)),
        problematic=problematic,
        activity_range_db=float(activity_range_db),
        core_smr_db=smr.smr_db,
        core_masked_fraction=smr.masked_fraction,
        core=core,
    )

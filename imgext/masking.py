"""Directional multitrack masking analysis in Bark bands.

Pipeline (see ``shared/design/masking.md`` section 5):

1. :func:`band_energies` — float32 STFT per track, PEAQ ear weighting, Zwicker critical
   bands, PEAQ forward masking (per band, at the STFT hop), power-mean pooling. Cached
   per track at **unit gain**; everything after it is band-domain only.
2. :func:`masking_detail` — for gains (and optionally an EQ band response) the per band
   and frame masking of every maskee by every masker (Terhardt spreading, PEAQ offset).
   This is what heatmaps show.
3. :func:`masking_report` — the summaries: the directional N x N matrix, masking by the
   rest of the mix, masked fraction, worst pair, role-swap rate (Zhao & Perez-Cota's
   temporal interchangeability), imbalance.

Energies are powers relative to a full-scale sine (1.0 = 0 dBFS = 96 dB SPL).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.fft
import scipy.signal

from .errors import ParameterError

__all__ = [
    "BandEnergies",
    "MaskingDetail",
    "MaskingReport",
    "band_energies",
    "masking_detail",
    "masking_report",
    "loudness_change_lu",
    "repool",
    "level_shift_db",
    "relative_activity",
    "role_swap_rate",
    "normalised_importance",
    "hz_to_bark",
    "ear_weighting_db",
    "hearing_floor_db",
    "k_weighting_db",
    "band_edges_hz",
    "band_centres_hz",
    "spreading_matrix",
    "masking_offset_db",
    "ZWICKER_BAND_EDGES_HZ",
    "DEFAULT_POOL_S",
    "ACTIVITY_RANGE_DB",
]

# --- psychoacoustic building blocks (PEAQ, ITU-R BS.1387; Terhardt 1979; BS.1770) -------------

ZWICKER_BAND_EDGES_HZ = np.array(
    [0, 100, 200, 300, 400, 510, 630, 770, 920, 1080, 1270, 1480, 1720, 2000, 2320, 2700,
     3150, 3700, 4400, 5300, 6400, 7700, 9500, 12000, 15500], dtype=np.float64)
"""Edges of Zwicker's 24 critical bands in Hz."""
FULL_SCALE_SPL_DB = 96.0
"""A full-scale sine is taken as 96 dB SPL (masking.md 5.0)."""


def hz_to_bark(frequency_hz):
    """PEAQ Bark scale ``z = 7 asinh(f / 650)``."""
    return 7.0 * np.arcsinh(np.asarray(frequency_hz, dtype=np.float64) / 650.0)


def bark_to_hz(bark):
    """Inverse of :func:`hz_to_bark`."""
    return 650.0 * np.sinh(np.asarray(bark, dtype=np.float64) / 7.0)


def _khz(frequency_hz):
    return np.maximum(np.asarray(frequency_hz, dtype=np.float64), 1.0) / 1000.0


def ear_weighting_db(frequency_hz):
    """PEAQ outer/middle-ear power weighting in dB (BS.1387 FFT model)."""
    f = _khz(frequency_hz)
    return -2.184 * f**-0.8 + 6.5 * np.exp(-0.6 * (f - 3.3) ** 2) - 0.001 * f**3.6


def hearing_floor_db(frequency_hz, *, ear_weighted: bool = True):
    """Hearing floor in dB SPL: PEAQ internal noise after ear weighting, else Terhardt's ATH."""
    f = _khz(frequency_hz)
    if ear_weighted:
        return 1.456 * f**-0.8
    return 3.64 * f**-0.8 - 6.5 * np.exp(-0.6 * (f - 3.3) ** 2) + 1e-3 * f**4


def k_weighting_db(frequency_hz):
    """Magnitude of the BS.1770 K-weighting (analog prototype of pyloudnorm's two stages), dB.

    High shelf +4 dB at 1500 Hz (Q 0.707) times a 2nd-order high-pass at 38 Hz (Q 0.5).
    """
    f = np.maximum(np.asarray(frequency_hz, dtype=np.float64), 1e-3)
    a, q = 10.0 ** (4.0 / 40.0), 1.0 / np.sqrt(2.0)
    w = f / 1500.0
    shelf = a**2 * ((1 - a * w**2) ** 2 + (a / q**2) * w**2) / ((a - w**2) ** 2 + (a / q**2) * w**2)
    v = f / 38.0
    hp = v**4 / ((1 - v**2) ** 2 + (v / 0.5) ** 2)
    return 10.0 * np.log10(shelf * hp)


def band_edges_hz(sample_rate: int) -> np.ndarray:
    """Zwicker edges below Nyquist, closed by Nyquist (or 15.5 kHz), shape (n_bands + 1,)."""
    nyquist = sample_rate / 2.0
    edges = ZWICKER_BAND_EDGES_HZ[ZWICKER_BAND_EDGES_HZ < nyquist]
    if edges[-1] < min(nyquist, ZWICKER_BAND_EDGES_HZ[-1]):
        edges = np.append(edges, min(nyquist, ZWICKER_BAND_EDGES_HZ[-1]))
    return edges


def band_centres_hz(edges_hz: np.ndarray) -> np.ndarray:
    """Bark midpoint of each band, shape (n_bands,)."""
    z = hz_to_bark(edges_hz)
    return bark_to_hz(0.5 * (z[:-1] + z[1:]))


def spreading_matrix(centres_hz: np.ndarray, *, reference_spl_db: float = 60.0) -> np.ndarray:
    """Power spreading ``S[b, c]`` from masker band b to band c, shape (n_bands, n_bands).

    Terhardt slopes: -27 dB/Bark downwards, -(24 + 230/f_b - 0.2 L) dB/Bark upwards with
    the level L fixed at ``reference_spl_db`` so that thresholds scale linearly with gain.
    Columns are normalised so that a flat excitation pattern is left unchanged (PEAQ).
    """
    z = hz_to_bark(centres_hz)
    dz = z[None, :] - z[:, None]  # c - b
    upper = 24.0 + 230.0 / np.asarray(centres_hz)[:, None] - 0.2 * reference_spl_db
    slope_db = np.where(dz >= 0, -upper * dz, 27.0 * dz)
    s = 10.0 ** (slope_db / 10.0)
    return s / s.sum(axis=0, keepdims=True)


def masking_offset_db(centres_hz: np.ndarray) -> np.ndarray:
    """PEAQ threshold offset: 3 dB up to 12 Bark, 0.25 z dB above."""
    z = hz_to_bark(centres_hz)
    return np.where(z <= 12.0, 3.0, 0.25 * z)


DEFAULT_POOL_S = 0.25
"""Pooling length in seconds: long enough for a stable ratio, short enough for a bark (~0.3 s)."""
ACTIVITY_RANGE_DB = 60.0
"""A band-frame counts as active if within this many dB of the track's own loudest band-frame."""
LOUDNESS_EXPONENT = 0.23
"""Zwicker/PEAQ specific-loudness exponent used for the maskee weights."""
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
        STFT size used, in samples (fixes the bin grid of :func:`imgext.eq.band_response_db`).
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

    @property
    def n_tracks(self) -> int:
        return int(self.energy.shape[0])

    @property
    def n_bands(self) -> int:
        return int(self.energy.shape[1])


def _band_matrix(sample_rate: int, n_fft: int, edges_hz: np.ndarray, weight_db: np.ndarray | None) -> np.ndarray:
    """(n_bins, n_bands) float32 membership, optionally times a per-bin power weight."""
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    idx = np.searchsorted(edges_hz, freqs, side="right") - 1
    inside = (freqs > 0) & (idx >= 0) & (idx < len(edges_hz) - 1)
    u = np.zeros((len(freqs), len(edges_hz) - 1), dtype=np.float64)
    u[np.flatnonzero(inside), idx[inside]] = 1.0
    if weight_db is not None:
        u *= 10.0 ** (weight_db[:, None] / 10.0)
    return u.astype(np.float32)


def _frames_power(x: np.ndarray, n_fft: int, hop_length: int, window: np.ndarray) -> np.ndarray:
    """Power spectrogram (n_frames, n_bins) float32 of one mono track, full-scale sine = 1."""
    padded = np.pad(x, (n_fft // 2, n_fft // 2))
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop_length]
    spec = scipy.fft.rfft(frames * window, axis=-1)
    power = spec.real**2 + spec.imag**2
    # Parseval: 4 |X|^2 / (n_fft * sum w^2) sums to twice the mean square, i.e. 1 for a full-scale sine.
    power *= np.float32(4.0 / (n_fft * float(np.sum(window.astype(np.float64) ** 2))))
    return power


def _forward_masking(e: np.ndarray, centres_hz: np.ndarray, hop_s: float) -> np.ndarray:
    """PEAQ forward masking along the last axis: one-pole smoothing per band, max with the input.

    ``e`` has shape (n_tracks, n_bands, n_frames); tau = 8 ms + (100 Hz / f_c) * 22 ms.
    """
    tau_s = 0.008 + (100.0 / centres_hz) * 0.022
    a = np.exp(-hop_s / tau_s)
    out = np.empty_like(e)
    for b, a_b in enumerate(a):  # one vectorised IIR per band (24 calls), never per sample
        out[:, b] = scipy.signal.lfilter([1.0 - a_b], [1.0, -a_b], e[:, b], axis=-1)
    return np.maximum(out, e)


def _pool(x: np.ndarray, factor: int) -> np.ndarray:
    """Power mean of ``factor`` consecutive frames along the last axis (last group may be short)."""
    if factor <= 1:
        return x
    n = x.shape[-1]
    n_out = -(-n // factor)
    pad = n_out * factor - n
    xp = np.concatenate([x, np.zeros(x.shape[:-1] + (pad,), x.dtype)], axis=-1) if pad else x
    sums = xp.reshape(x.shape[:-1] + (n_out, factor)).sum(-1)
    counts = np.full(n_out, factor, dtype=np.float32)
    counts[-1] = factor - pad
    return (sums / counts).astype(np.float32)


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
    x = np.asarray(tracks)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2 or x.shape[1] == 0:
        raise ParameterError(f"tracks must have shape (n_tracks, n_samples), got {x.shape}")
    if not np.issubdtype(x.dtype, np.floating) or not np.all(np.isfinite(x)):
        raise ParameterError("tracks must be finite floating-point audio")
    if sample_rate <= 0 or n_fft <= 0 or hop_length <= 0 or pool_s <= 0:
        raise ParameterError(
            f"sample_rate={sample_rate}, n_fft={n_fft}, hop_length={hop_length}, pool_s={pool_s} must be positive"
        )
    x = x.astype(np.float32, copy=False)
    edges = band_edges_hz(sample_rate)
    centres = band_centres_hz(edges)
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    w_db = ear_weighting_db(freqs) if ear_weighting else None
    u_ear = _band_matrix(sample_rate, n_fft, edges, w_db)
    u_k = _band_matrix(sample_rate, n_fft, edges, k_weighting_db(freqs))
    window = scipy.signal.get_window("hann", n_fft).astype(np.float32)
    per_frame, k_power = [], []
    for track in x:  # one vectorised STFT per track keeps the working set ~30 MB
        p = _frames_power(track, n_fft, hop_length, window)
        per_frame.append((p @ u_ear).T)
        k_power.append(p.mean(axis=0) @ u_k)
    e = np.ascontiguousarray(np.stack(per_frame), dtype=np.float32)  # (N, B, T)
    hop_s = hop_length / sample_rate
    fm = _forward_masking(e, centres, hop_s)
    factor = max(1, int(round(pool_s / hop_s)))
    floor_db = hearing_floor_db(centres, ear_weighted=ear_weighting)
    return BandEnergies(
        energy=_pool(e, factor),
        masker_energy=_pool(fm, factor),
        loudness_power=np.stack(k_power).astype(np.float32),
        band_edges_hz=edges,
        band_centres_hz=centres,
        floor_power=(10.0 ** ((floor_db - FULL_SCALE_SPL_DB) / 10.0)).astype(np.float32),
        frame_s=factor * hop_s,
        sample_rate=int(sample_rate),
        n_fft=int(n_fft),
    )


def repool(bands: BandEnergies, factor: int) -> BandEnergies:
    """Pool ``bands`` further by an integer ``factor`` (power mean; exact, pooling is linear)."""
    if factor <= 1:
        return bands
    return BandEnergies(
        energy=_pool(bands.energy, factor),
        masker_energy=_pool(bands.masker_energy, factor),
        loudness_power=bands.loudness_power,
        band_edges_hz=bands.band_edges_hz,
        band_centres_hz=bands.band_centres_hz,
        floor_power=bands.floor_power,
        frame_s=bands.frame_s * factor,
        sample_rate=bands.sample_rate,
        n_fft=bands.n_fft,
    )


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
    """BS.1770 loudness change (LU) of each track under per-band level shifts.

    Parameters
    ----------
    bands : BandEnergies
    shift_db : np.ndarray [shape=(..., n_tracks, n_bands)]
        Level change per band in dB (gain + EQ response).

    Returns
    -------
    np.ndarray [shape=(..., n_tracks)]
        ``10 log10(sum_b K_b 10^(shift_b/10) / sum_b K_b)`` with ``K_b`` the track's mean
        K-weighted band power. Ignores the gating change (small for linear filters).
    """
    kp = bands.loudness_power.astype(np.float64)
    total = np.maximum(kp.sum(-1), 1e-30)
    ratio = (kp * 10.0 ** (np.asarray(shift_db, dtype=np.float64) / 10.0)).sum(-1) / total
    return 10.0 * np.log10(np.maximum(ratio, 1e-30))


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


def _spread(masker: np.ndarray, bands: BandEnergies) -> np.ndarray:
    """Masking threshold (..., N, B, T) from forward-masked energies: spreading then PEAQ offset."""
    s = spreading_matrix(bands.band_centres_hz) * (10.0 ** (-masking_offset_db(bands.band_centres_hz) / 10.0))[None, :]
    return np.einsum("...bt,bc->...ct", masker, s.astype(np.float32), optimize=True)


def _activity_and_weight(e_db: np.ndarray, rel_ok: np.ndarray, floor_db: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Active mask and loudness weight from band levels in dB (..., N, B, T)."""
    above = e_db - floor_db[:, None]
    active = rel_ok & (above > 0.0)
    weight = np.where(active, np.power(np.float32(10.0), np.float32(LOUDNESS_EXPONENT / 10.0) * above), 0.0)
    return active, weight.astype(np.float32)


def _db(x: np.ndarray) -> np.ndarray:
    return np.float32(10.0) * np.log10(np.maximum(x, _TINY))


def relative_activity(bands: BandEnergies) -> np.ndarray:
    """(N, B, T) bool: band-frames within :data:`ACTIVITY_RANGE_DB` of the track's own maximum."""
    e = bands.energy
    peak = e.reshape(e.shape[0], -1).max(axis=1) if e.size else np.zeros(e.shape[0], np.float32)
    return e > (peak * np.float32(10.0 ** (-ACTIVITY_RANGE_DB / 10.0)))[:, None, None]


def masking_detail(bands: BandEnergies, *, gains_db, eq_db=None) -> MaskingDetail:
    """Directional masking per band and frame.

    Parameters
    ----------
    bands : BandEnergies
        Unit-gain analysis from :func:`band_energies`.
    gains_db : np.ndarray [shape=(n_tracks,)]
        Mix gain of each track in dB.
    eq_db : np.ndarray [shape=(n_tracks, n_bands)] or None
        Band response of each track's EQ in dB (:func:`imgext.eq.band_response_db`); None = flat.

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
    active, weight = _activity_and_weight(e_db, relative_activity(bands), floor_db)
    t_db = _db(thr)
    pair = np.maximum(t_db[:, None] - e_db[None, :], 0.0) * active[None, :]
    n = bands.n_tracks
    pair[np.arange(n), np.arange(n)] = 0.0
    rest = thr.sum(axis=0, dtype=np.float64)[None] - thr  # float64: no cancellation noise
    by_rest = np.maximum(_db(rest.astype(np.float32)) - e_db, 0.0) * active
    return MaskingDetail(
        pair_db=pair.astype(np.float32),
        by_rest_db=by_rest.astype(np.float32),
        weight=weight,
        active=active,
        threshold_db=t_db.astype(np.float32),
        frame_s=bands.frame_s,
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
        None when nothing is masked.
    role_swap_rate : np.ndarray [shape=(n_tracks, n_tracks)]
        Symmetric, in [0, 1]: role changes per segment where both tracks sound.
    imbalance_db : float
        Standard deviation of ``by_rest_db`` over the tracks that sound at all.
    """

    matrix_db: np.ndarray
    by_rest_db: np.ndarray
    masked_fraction: np.ndarray
    total_db: float
    worst_pair: tuple[int, int, float] | None
    role_swap_rate: np.ndarray
    imbalance_db: float

    def to_dict(self, names: list[str]) -> dict:
        """JSON-ready dict: plain lists and floats, track names on both matrix axes."""
        names = [str(n) for n in names]
        if len(names) != len(self.by_rest_db):
            raise ParameterError(f"need {len(self.by_rest_db)} names, got {len(names)}")
        worst = None
        if self.worst_pair is not None:
            i, j, v = self.worst_pair
            worst = {"masker": names[i], "maskee": names[j], "masking_db": float(v)}
        return {
            "names": names,
            "matrix_db": {"maskers": names, "maskees": names, "values": self.matrix_db.astype(float).tolist()},
            "by_rest_db": dict(zip(names, self.by_rest_db.astype(float).tolist())),
            "masked_fraction": dict(zip(names, self.masked_fraction.astype(float).tolist())),
            "total_db": float(self.total_db),
            "worst_pair": worst,
            "role_swap_rate": {"tracks": names, "values": self.role_swap_rate.astype(float).tolist()},
            "imbalance_db": float(self.imbalance_db),
        }


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
) -> MaskingReport:
    """Summarise the masking of a mix (band-domain only; milliseconds).

    Parameters
    ----------
    bands : BandEnergies
    gains_db : np.ndarray [shape=(n_tracks,)]
        Mix gains in dB.
    importance : np.ndarray [shape=(n_tracks,)]
        In [0, 1]; weights ``total_db``.
    eq_db : np.ndarray [shape=(n_tracks, n_bands)] or None
        EQ band responses in dB; None = flat.
    segment_s : float > 0
        Segment length for the role-swap rate, in seconds.

    Returns
    -------
    MaskingReport
    """
    p_hat = normalised_importance(importance, bands.n_tracks)
    d = masking_detail(bands, gains_db=gains_db, eq_db=eq_db)
    w_tot = d.weight.sum(axis=(1, 2), dtype=np.float64)  # (N,)
    matrix = _safe_div(np.einsum("ijbt,jbt->ij", d.pair_db, d.weight, dtype=np.float64), w_tot[None, :])
    by_rest = _safe_div(np.einsum("jbt,jbt->j", d.by_rest_db, d.weight, dtype=np.float64), w_tot)
    masked = _safe_div(np.einsum("jbt,jbt->j", (d.by_rest_db > 0).astype(np.float32), d.weight, dtype=np.float64), w_tot)
    sounding = w_tot > 0
    worst = None
    if matrix.size and matrix.max() > 0:
        i, j = np.unravel_index(int(np.argmax(matrix)), matrix.shape)
        worst = (int(i), int(j), float(matrix[i, j]))
    return MaskingReport(
        matrix_db=matrix,
        by_rest_db=by_rest,
        masked_fraction=masked,
        total_db=float(np.dot(p_hat, by_rest)),
        worst_pair=worst,
        role_swap_rate=role_swap_rate(d, segment_s=segment_s),
        imbalance_db=float(np.std(by_rest[sounding])) if sounding.any() else 0.0,
    )

"""Psychoacoustic building blocks of the masking engine (PEAQ, ITU-R BS.1387; Terhardt 1979; BS.1770).

Pure functions of frequency, shared by :mod:`imgext.masking`, :mod:`imgext.engine.eq` and
:mod:`imgext.engine.optimise`:

- the FFT ear model's front end: :func:`power_spectrogram`, :func:`power_mean_pool`;
- scales: :func:`hz_to_bark`, :func:`bark_to_hz`;
- levels: :func:`ear_weighting_db` (outer/middle ear), :func:`hearing_floor_db`,
  :func:`k_weighting_db` (the loudness meter's weighting), :func:`band_loudness_change_lu`;
- bands: :data:`ZWICKER_BAND_EDGES_HZ`, :func:`band_edges_hz`, :func:`band_centres_hz`;
- masking: :func:`spreading_matrix` (Terhardt slopes), :func:`masking_offset_db` (PEAQ offset),
  :func:`forward_masking` (PEAQ);
- the maskee side: :func:`activity_mask` (what belongs to a track), :func:`loudness_weight`.

Levels are in dB; :data:`FULL_SCALE_SPL_DB` ties dB re full scale to dB SPL.
"""

from __future__ import annotations

import numpy as np
import scipy.fft

from imgext.audio.dsp import signal

__all__ = [
    "ACTIVITY_RANGE_DB",
    "FULL_SCALE_SPL_DB",
    "GLOBAL_RANGE_DB",
    "LOUDNESS_EXPONENT",
    "ZWICKER_BAND_EDGES_HZ",
    "activity_mask",
    "active_given_peaks",
    "band_centres_hz",
    "band_edges_hz",
    "band_loudness_change_lu",
    "band_membership",
    "bark_to_hz",
    "ear_weighting_db",
    "forward_masking",
    "hearing_floor_db",
    "hz_to_bark",
    "k_weighting_db",
    "loudness_weight",
    "masking_offset_db",
    "power_mean_pool",
    "power_spectrogram",
    "spreading_matrix",
]

ZWICKER_BAND_EDGES_HZ = np.array(
    [0, 100, 200, 300, 400, 510, 630, 770, 920, 1080, 1270, 1480, 1720, 2000, 2320, 2700,
     3150, 3700, 4400, 5300, 6400, 7700, 9500, 12000, 15500], dtype=np.float64)
"""Edges of Zwicker's 24 critical bands in Hz."""
FULL_SCALE_SPL_DB = 96.0
"""A full-scale sine is taken as 96 dB SPL (masking.md 5.0)."""
ACTIVITY_RANGE_DB = 30.0
"""A band-frame belongs to the track within this many dB of its band's loudest frame (:func:`activity_mask`, SII)."""
GLOBAL_RANGE_DB = 40.0
"""...and within this many dB of the track's loudest band-frame (:func:`activity_mask`)."""
LOUDNESS_EXPONENT = 0.23
"""Zwicker/PEAQ specific-loudness exponent used for the maskee weights."""


def hz_to_bark(frequency_hz):
    """PEAQ Bark scale ``z = 7 asinh(f / 650)``.

    Parameters
    ----------
    frequency_hz : float or np.ndarray, Hz

    Returns
    -------
    float or np.ndarray, Bark
    """
    return 7.0 * np.arcsinh(np.asarray(frequency_hz, dtype=np.float64) / 650.0)


def bark_to_hz(bark):
    """Inverse of :func:`hz_to_bark`: Bark to Hz."""
    return 650.0 * np.sinh(np.asarray(bark, dtype=np.float64) / 7.0)


def _khz(frequency_hz):
    return np.maximum(np.asarray(frequency_hz, dtype=np.float64), 1.0) / 1000.0


def ear_weighting_db(frequency_hz):
    """PEAQ outer/middle-ear power weighting in dB (BS.1387 FFT model).

    ``W(f) = -2.184 f^-0.8 + 6.5 exp(-0.6 (f - 3.3)^2) - 0.001 f^3.6`` with f in kHz:
    sub-bass and > 10 kHz are attenuated, the 3-4 kHz ear-canal resonance is raised.
    """
    f = _khz(frequency_hz)
    return -2.184 * f**-0.8 + 6.5 * np.exp(-0.6 * (f - 3.3) ** 2) - 0.001 * f**3.6


def hearing_floor_db(frequency_hz, *, ear_weighted: bool = True):
    """Hearing floor in dB SPL.

    Parameters
    ----------
    frequency_hz : float or np.ndarray, Hz
    ear_weighted : bool
        True: PEAQ's internal noise ``1.456 f^-0.8`` (to compare with ear-weighted
        energies); False: Terhardt's absolute threshold of hearing.
    """
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


def band_loudness_change_lu(loudness_power: np.ndarray, shift_db: np.ndarray) -> np.ndarray:
    """BS.1770 loudness change (LU) of tracks under per-band level shifts.

    Parameters
    ----------
    loudness_power : np.ndarray [shape=(n_tracks, n_bands)]
        Mean K-weighted band power of each track.
    shift_db : np.ndarray [shape=(..., n_tracks, n_bands)]
        Level change per band in dB (gain + EQ response).

    Returns
    -------
    np.ndarray [shape=(..., n_tracks)]
        ``10 log10(sum_b K_b 10^(shift_b/10) / sum_b K_b)``. Ignores the change of the gating
        and the spectral shape inside a band (within 0.15 LU for the bench's EQ).
    """
    kp = np.asarray(loudness_power, dtype=np.float64)
    total = np.maximum(kp.sum(-1), 1e-30)
    ratio = (kp * 10.0 ** (np.asarray(shift_db, dtype=np.float64) / 10.0)).sum(-1) / total
    return 10.0 * np.log10(np.maximum(ratio, 1e-30))


def band_edges_hz(sample_rate: int) -> np.ndarray:
    """Zwicker edges below Nyquist, closed by Nyquist (or 15.5 kHz), shape (n_bands + 1,), Hz."""
    nyquist = sample_rate / 2.0
    edges = ZWICKER_BAND_EDGES_HZ[ZWICKER_BAND_EDGES_HZ < nyquist]
    if edges[-1] < min(nyquist, ZWICKER_BAND_EDGES_HZ[-1]):
        edges = np.append(edges, min(nyquist, ZWICKER_BAND_EDGES_HZ[-1]))
    return edges


def band_centres_hz(edges_hz: np.ndarray) -> np.ndarray:
    """Bark midpoint of each band, shape (n_bands,), Hz."""
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
    """PEAQ threshold offset in dB: 3 dB up to 12 Bark, 0.25 z dB above."""
    z = hz_to_bark(centres_hz)
    return np.where(z <= 12.0, 3.0, 0.25 * z)


def band_membership(frequencies_hz: np.ndarray, edges_hz: np.ndarray) -> np.ndarray:
    """(n_frequencies, n_bands) 0/1 float64 matrix: which band each frequency falls in (DC excluded)."""
    f = np.asarray(frequencies_hz, dtype=np.float64)
    idx = np.searchsorted(edges_hz, f, side="right") - 1
    inside = (f > 0) & (idx >= 0) & (idx < len(edges_hz) - 1)
    u = np.zeros((len(f), len(edges_hz) - 1))
    u[np.flatnonzero(inside), idx[inside]] = 1.0
    return u


def power_spectrogram(x: np.ndarray, n_fft: int, hop_length: int, window: np.ndarray) -> np.ndarray:
    """Power spectrogram [shape=(n_frames, n_fft // 2 + 1), float32] of one mono track, full-scale sine = 1.

    Frames are centred (``n_fft // 2`` zeros padded at both ends), as in librosa.
    """
    padded = np.pad(x, (n_fft // 2, n_fft // 2))
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop_length]
    spec = scipy.fft.rfft(frames * window, axis=-1)
    power = spec.real**2 + spec.imag**2
    # Parseval: 4 |X|^2 / (n_fft * sum w^2) sums to twice the mean square, i.e. 1 for a full-scale sine.
    power *= np.float32(4.0 / (n_fft * float(np.sum(window.astype(np.float64) ** 2))))
    return power


def power_mean_pool(x: np.ndarray, factor: int) -> np.ndarray:
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


def forward_masking(e: np.ndarray, centres_hz: np.ndarray, hop_s: float) -> np.ndarray:
    """PEAQ forward masking along the last axis: one-pole smoothing per band, max with the input.

    Parameters
    ----------
    e : np.ndarray [shape=(..., n_bands, n_frames)]
        Band powers at the STFT hop.
    centres_hz : np.ndarray [shape=(n_bands,)]
    hop_s : float > 0
        Frame hop in seconds.

    Returns
    -------
    np.ndarray, like ``e``: ``max(F_t, E_t)`` with ``F_t = a F_{t-1} + (1 - a) E_t``,
    ``a = exp(-hop / tau)``, ``tau = 8 ms + (100 Hz / f_c) 22 ms``.
    """
    tau_s = 0.008 + (100.0 / centres_hz) * 0.022
    a = np.exp(-hop_s / tau_s)
    out = np.empty_like(e)
    for b, a_b in enumerate(a):  # one vectorised IIR per band (24 calls), never per sample
        out[..., b, :] = signal.lfilter([1.0 - a_b], [1.0, -a_b], e[..., b, :], axis=-1)
    return np.maximum(out, e)


def activity_mask(level_db: np.ndarray, floor_db: np.ndarray, *,
                  activity_range_db: float = ACTIVITY_RANGE_DB,
                  global_range_db: float = GLOBAL_RANGE_DB) -> np.ndarray:
    """Which band-frames belong to the track: per band, as the Speech Intelligibility Index counts them.

    Parameters
    ----------
    level_db : np.ndarray [shape=(..., n_tracks, n_bands, n_frames)]
        Ear-weighted band levels in dB re full scale, as mixed (gain and EQ included).
    floor_db : np.ndarray [shape=(n_bands,)]
        Hearing floor in the same units.
    activity_range_db : float > 0
        Useful range below each band's own loudest frame, dB (default 30, SII).
    global_range_db : float > 0
        A band-frame further than this below the track's loudest band-frame never counts, dB
        (default 40): guards bands that hold nothing but the recording's noise floor.

    Returns
    -------
    np.ndarray [shape=level_db.shape, dtype=bool]

    Notes
    -----
    *Per band (ANSI S3.5-1997).* The SII counts 30 dB of a source's level range in *each*
    band (band audibility ``(SNR + 15) / 30``). The former rule (30 dB under the track's one
    loudest band-frame) dropped whole quiet but real bands, an owl's upper harmonics or a
    bark's high formants 35 dB under its fundamental, so the masking it measured was the
    masking of the loudest band only. Per band, a one-shot call still counts only while it
    sounds (its own band's gaps lie far below its peak), and the noise floor between calls
    stays out. The reference follows the mix (gain and EQ included).
    """
    if not level_db.shape[-1]:
        return np.zeros(level_db.shape, bool)
    band_peak = level_db.max(axis=-1, keepdims=True)
    return active_given_peaks(level_db, floor_db[:, None], band_peak, band_peak.max(axis=-2, keepdims=True),
                              activity_range_db=activity_range_db, global_range_db=global_range_db)


def active_given_peaks(level_db, floor_db, band_peak_db, peak_db, *, activity_range_db: float = ACTIVITY_RANGE_DB,
                       global_range_db: float = GLOBAL_RANGE_DB) -> np.ndarray:
    """The rule of :func:`activity_mask` with the peaks given (any layout; the arrays broadcast).

    ``level > floor`` and ``level > band_peak - activity_range_db`` and ``level > peak - global_range_db``.
    """
    return ((level_db > floor_db) & (level_db > band_peak_db - np.float32(activity_range_db))
            & (level_db > peak_db - np.float32(global_range_db)))


def loudness_weight(level_db: np.ndarray, active: np.ndarray, floor_db: np.ndarray) -> np.ndarray:
    """Maskee weight ``A (E / E_floor)^0.23`` (Zwicker specific-loudness exponent), float32."""
    above = level_db - floor_db[:, None]
    return np.where(active, np.power(np.float32(10.0), np.float32(LOUDNESS_EXPONENT / 10.0) * above),
                    np.float32(0.0)).astype(np.float32)

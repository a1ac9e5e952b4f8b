"""An independent masking model for scoring: roex auditory filters on the ERB-number scale (Moore & Glasberg).

Written apart from :mod:`imgext.masking` and never optimised by the engine, so a gain that shows up
here is not the engine grading its own homework. What differs from the engine's model:

===========================  ====================================  ==========================================
                             engine (``imgext.masking.model``)     this model
===========================  ====================================  ==========================================
frequency scale / channels   24 Zwicker critical bands             ERB-number, a channel every 0.5 ERB
                                                                   (50 Hz - 15 kHz, ~77 channels)
spectral spreading           Terhardt slopes on band powers        roex(p) filters on the power spectrum,
                                                                   lower skirt p_l = 0.8 p (upward spread)
outer / middle ear           PEAQ weighting                        band-pass -10 log(1 + (300/f)^2)
                                                                   - 10 log(1 + (f/12 kHz)^4)
threshold offset             PEAQ 3 dB / 0.25 z dB                 detection efficiency K(f) = -3 + 16
                                                                   exp(-f / 100 Hz) dB (Moore 1997 shape)
time                         2048 Hann / 1024 hop, forward         1024 Hamming / 512 hop (11.6 ms), no
                             masking                               forward masking
activity of the target       per band, 30 dB, SII                  above Terhardt's threshold in quiet and
                                                                   within 35 dB of the channel's 99th
                                                                   percentile
loudness weight              (E / floor)^0.23                      (E / threshold)^0.2 - 1 (Moore)
===========================  ====================================  ==========================================

Scores (:func:`score`): per track, the *core* (channels holding 80 % of its loudness in the dry mix), the
loudness-weighted mean SMR over the active core cells, each cell's SMR clipped to [-20, 20] dB, and the
masked share (SMR < 0). Stereo: the better ear per cell.
"""

from __future__ import annotations

import functools

import numpy as np
import scipy.fft
import scipy.signal

FULL_SCALE_SPL_DB = 96.0
N_FFT, HOP = 1024, 512
CORE_SHARE = 0.8
SMR_CLIP_DB = 20.0


def erb_number(f_hz):
    """ERB-number (Cams) of frequency f in Hz (Glasberg & Moore 1990)."""
    return 21.4 * np.log10(4.37e-3 * np.asarray(f_hz, dtype=np.float64) + 1.0)


def erb_hz(f_hz):
    """Equivalent rectangular bandwidth at f, Hz."""
    return 24.7 * (4.37e-3 * np.asarray(f_hz, dtype=np.float64) + 1.0)


@functools.lru_cache(maxsize=4)
def _filters(sample_rate: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Roex weights (n_channels, n_bins) including the ear transfer, channel centres, K and threshold in quiet."""
    f = np.fft.rfftfreq(N_FFT, 1.0 / sample_rate)
    top = min(15000.0, 0.45 * sample_rate)
    cams = np.arange(erb_number(50.0), erb_number(top), 0.5)
    fc = (10.0 ** (cams / 21.4) - 1.0) / 4.37e-3
    p = 4.0 * fc / erb_hz(fc)
    g = (f[None, :] - fc[:, None]) / fc[:, None]
    pg = np.where(g < 0, 0.8 * p[:, None], p[:, None]) * np.abs(g)
    w = (1.0 + pg) * np.exp(-pg)
    fk = np.maximum(f, 1.0)
    ear_db = -10.0 * np.log10(1.0 + (300.0 / fk) ** 2) - 10.0 * np.log10(1.0 + (fk / 12000.0) ** 4)
    w = w * 10.0 ** (ear_db / 10.0)[None, :]
    w[:, 0] = 0.0
    k_db = -3.0 + 16.0 * np.exp(-fc / 100.0)
    khz = fc / 1000.0
    ath = 3.64 * khz**-0.8 - 6.5 * np.exp(-0.6 * (khz - 3.3) ** 2) + 1e-3 * khz**4 - FULL_SCALE_SPL_DB
    return w.astype(np.float32), fc, k_db, ath


def excitation_db(x: np.ndarray, sample_rate: int) -> np.ndarray:
    """Excitation pattern in dB re full scale, shape (..., n_channels, n_frames), of signals (..., n)."""
    w, _, _, _ = _filters(sample_rate)
    x = np.asarray(x, dtype=np.float32)
    lead = x.shape[:-1]
    flat = x.reshape(-1, x.shape[-1])
    win = scipy.signal.get_window("hamming", N_FFT).astype(np.float32)
    norm = np.float32(4.0 / (N_FFT * float(np.sum(win.astype(np.float64) ** 2))))
    out = []
    for row in flat:
        padded = np.pad(row, (N_FFT // 2, N_FFT // 2))
        frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP]
        spec = scipy.fft.rfft(frames * win, axis=-1)
        power = (spec.real**2 + spec.imag**2) * norm
        out.append(10.0 * np.log10(np.maximum(power @ w.T, 1e-20)).T)
    return np.stack(out).reshape(lead + out[0].shape).astype(np.float32)


def _activity_weight(e_db: np.ndarray, ath: np.ndarray) -> np.ndarray:
    """(N, C, T) specific-loudness weight on the active cells, 0 elsewhere."""
    ref = np.percentile(e_db, 99, axis=-1, keepdims=True)
    active = (e_db > ath[:, None]) & (e_db > ref - 35.0)
    return np.where(active, np.power(10.0, 0.02 * (e_db - ath[:, None])) - 1.0, 0.0)


def core_channels(stems: np.ndarray, sample_rate: int) -> np.ndarray:
    """(N, C) bool: the channels holding 80 % of each track's loudness, from mono stems (N, n) of the dry mix."""
    _, _, _, ath = _filters(sample_rate)
    loud = _activity_weight(excitation_db(stems, sample_rate), ath).sum(axis=-1)
    order = np.argsort(-loud, axis=-1, kind="stable")
    s = np.take_along_axis(loud, order, axis=-1)
    before = (np.cumsum(s, axis=-1) - s) / np.maximum(s.sum(axis=-1, keepdims=True), 1e-300)
    out = np.zeros(loud.shape, bool)
    np.put_along_axis(out, order, (before < CORE_SHARE) & (s > 0), axis=-1)
    return out


def score(stems: np.ndarray, sample_rate: int, core: np.ndarray) -> dict[str, np.ndarray]:
    """Core SMR and masked share of every track of a mix.

    Parameters
    ----------
    stems : np.ndarray [shape=(N, 2, n)] or [shape=(N, n)]
        Each track as it sits in the mix (stereo: per ear; mono: one ear).
    core : np.ndarray [shape=(N, C), dtype=bool]
        :func:`core_channels` of the dry mix.

    Returns
    -------
    dict with ``smr_db`` (N,) and ``masked`` (N,) and ``excitation_db`` (N, ears, C, T).
    """
    x = np.asarray(stems, dtype=np.float32)
    if x.ndim == 2:
        x = x[:, None]
    _, _, k_db, ath = _filters(sample_rate)
    e_db = excitation_db(x, sample_rate)  # (N, E, C, T)
    lin = 10.0 ** (e_db.astype(np.float64) / 10.0)
    rest = np.maximum(lin.sum(axis=0, keepdims=True) - lin, 1e-20)
    smr = np.clip(e_db - 10.0 * np.log10(rest) - k_db[:, None], -SMR_CLIP_DB, SMR_CLIP_DB)
    best = smr.max(axis=1)  # better ear per cell
    level = e_db.max(axis=1)
    w = _activity_weight(level, ath) * core[:, :, None]
    den = np.maximum(w.sum(axis=(1, 2)), 1e-300)
    return {"smr_db": (w * best).sum(axis=(1, 2)) / den, "masked": (w * (best < 0)).sum(axis=(1, 2)) / den,
            "excitation_db": e_db}


def log_spectral_damage_db(dry_db: np.ndarray, wet_db: np.ndarray, sample_rate: int) -> np.ndarray:
    """RMS of each track's excitation change (dB) over its active cells, shape (N,): 0 = untouched.

    ``dry_db`` and ``wet_db`` are :func:`score`'s ``excitation_db`` of the dry and processed stems.
    """
    _, _, _, ath = _filters(sample_rate)
    d, wv = dry_db.max(axis=1), wet_db.max(axis=1)
    active = _activity_weight(d, ath) > 0
    diff = np.where(active, wv - d, 0.0)
    return np.sqrt((diff**2).sum(axis=(1, 2)) / np.maximum(active.sum(axis=(1, 2)), 1))

"""The one masking model of the engine: spreading, offset, activity, weights, core bands, core SMR.

Analysis (:mod:`imgext.masking.analysis`), the static EQ design (:mod:`imgext.engine.eq`), the
optimiser (:mod:`imgext.engine.optimise`) and the time-aware ducking (:mod:`imgext.engine.duck`)
all build their thresholds and maskee weights here, so they optimise and report the same figure.

- :func:`threshold_matrix` - power spreading ``S[b, c]`` (Terhardt slopes) times the PEAQ offset;
  ``T_i = S^T F_i`` is the masking threshold track i casts.
- :func:`band_activity` - which band-frames belong to a maskee (per band, as the SII counts them,
  :func:`imgext.masking.psychoacoustics.activity_mask`).
- :func:`maskee_weight` - ``A (E / E_floor)^0.23`` (Zwicker specific-loudness exponent).
- :func:`core_bands` - the critical bands holding :data:`CORE_SHARE` (80 %) of a track's loudness.
- :func:`core_smr` - the signal-to-mask ratio in those bands, the engine's objective.

Energies are powers relative to a full-scale sine, laid out ``(..., n_tracks, n_bands, n_frames)``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from imgext.masking.psychoacoustics import (
    ACTIVITY_RANGE_DB,
    GLOBAL_RANGE_DB,
    activity_mask,
    loudness_weight,
    masking_offset_db,
    spreading_matrix,
)

__all__ = [
    "ACTIVITY_RANGE_DB",
    "CORE_SHARE",
    "GLOBAL_RANGE_DB",
    "SMR_RANGE_DB",
    "CoreSmr",
    "band_activity",
    "core_bands",
    "core_smr",
    "maskee_weight",
    "rest_thresholds",
    "threshold_matrix",
    "thresholds",
]

CORE_SHARE = 0.8
"""A track's core: the fewest critical bands holding this share of its (specific) loudness."""
SMR_RANGE_DB = (-20.0, 20.0)
"""Per-cell SMR is clipped to this range before averaging: deeper than -20 dB is inaudible either way,
above +20 dB fully audible; without it one loud cell would outweigh many masked ones."""
_TINY = np.float32(1e-30)


@functools.lru_cache(maxsize=16)
def _threshold_matrix(centres: tuple[float, ...]) -> np.ndarray:
    c = np.asarray(centres)
    s = spreading_matrix(c) * (10.0 ** (-masking_offset_db(c) / 10.0))[None, :]
    out = s.astype(np.float32)
    out.flags.writeable = False
    return out


def threshold_matrix(centres_hz: np.ndarray) -> np.ndarray:
    """Spreading with the PEAQ offset, ``S[b, c]`` from masker band b to band c, shape (B, B), float32 (cached)."""
    return _threshold_matrix(tuple(np.asarray(centres_hz, dtype=np.float64).tolist()))


def thresholds(masker_energy: np.ndarray, centres_hz: np.ndarray) -> np.ndarray:
    """Masking threshold each track casts, like ``masker_energy`` [shape=(..., B, T)], float32."""
    s = threshold_matrix(centres_hz)
    m = np.asarray(masker_energy, dtype=np.float32)
    return np.einsum("...bt,bc->...ct", m, s, optimize=True)


def rest_thresholds(thr: np.ndarray) -> np.ndarray:
    """Summed threshold of all other tracks on each track, shape like ``thr`` (..., N, B, T), float32.

    Summed in float64 so that subtracting a track's own threshold leaves no cancellation noise.
    """
    total = thr.sum(axis=-3, dtype=np.float64, keepdims=True)
    return np.maximum(total - thr, 0.0).astype(np.float32)


def band_activity(level_db: np.ndarray, floor_db: np.ndarray, *, activity_range_db: float = ACTIVITY_RANGE_DB,
                  global_range_db: float = GLOBAL_RANGE_DB) -> np.ndarray:
    """(..., N, B, T) bool: the maskee's band-frames that count (:func:`activity_mask`)."""
    return activity_mask(level_db, floor_db, activity_range_db=activity_range_db, global_range_db=global_range_db)


def maskee_weight(level_db: np.ndarray, active: np.ndarray, floor_db: np.ndarray) -> np.ndarray:
    """Loudness weight ``A (E / E_floor)^0.23`` of each band-frame, float32 (0 where inactive)."""
    return loudness_weight(level_db, active, floor_db)


def core_bands(weight: np.ndarray, *, share: float = CORE_SHARE) -> np.ndarray:
    """The fewest bands holding ``share`` of each track's loudness weight.

    Parameters
    ----------
    weight : np.ndarray [shape=(N, B, T)]
        :func:`maskee_weight`.
    share : float in (0, 1]

    Returns
    -------
    np.ndarray [shape=(N, B), dtype=bool]
        Empty rows for silent tracks.
    """
    loud = np.asarray(weight, dtype=np.float64).sum(axis=-1)
    order = np.argsort(-loud, axis=-1, kind="stable")
    sorted_loud = np.take_along_axis(loud, order, axis=-1)
    total = np.maximum(sorted_loud.sum(axis=-1, keepdims=True), 1e-300)
    before = (np.cumsum(sorted_loud, axis=-1) - sorted_loud) / total  # share held by the louder bands
    keep_sorted = (before < share - 1e-9) & (sorted_loud > 0)
    out = np.zeros(loud.shape, bool)
    np.put_along_axis(out, order, keep_sorted, axis=-1)
    return out


@dataclass(frozen=True)
class CoreSmr:
    """Core signal-to-mask ratio of every track.

    Attributes
    ----------
    smr_db : np.ndarray [shape=(N,)]
        Loudness-weighted mean over the track's active core band-frames of
        ``clip(10 log10(E_j / sum_{i != j} T_i), -20, 20)``, dB (NaN for a silent track).
    masked_fraction : np.ndarray [shape=(N,)]
        Loudness-weighted share of those band-frames below the threshold (SMR < 0 dB).
    core : np.ndarray [shape=(N, B), dtype=bool]
    """

    smr_db: np.ndarray
    masked_fraction: np.ndarray
    core: np.ndarray


def core_smr(level_db: np.ndarray, rest_db: np.ndarray, weight: np.ndarray, core: np.ndarray) -> CoreSmr:
    """Core SMR (:class:`CoreSmr`) from maskee levels and the rest of the mix's thresholds.

    Parameters
    ----------
    level_db, rest_db, weight : np.ndarray [shape=(..., N, B, T)]
        Maskee level, summed threshold of the others (dB re full scale), :func:`maskee_weight`.
    core : np.ndarray [shape=(N, B), dtype=bool]
        Fixed core bands (take them from the dry mix so before and after compare alike).
    """
    w = np.asarray(weight, dtype=np.float32) * core[..., None]
    smr = np.clip(level_db - rest_db, *SMR_RANGE_DB)
    den = w.sum(axis=(-2, -1), dtype=np.float64)
    ok = den > 0
    safe = np.where(ok, den, 1.0)
    mean = np.where(ok, (w * smr).sum(axis=(-2, -1), dtype=np.float64) / safe, np.nan)
    masked = np.where(ok, (w * (smr < 0)).sum(axis=(-2, -1), dtype=np.float64) / safe, 0.0)
    return CoreSmr(mean, masked, np.asarray(core, bool))


def db(x: np.ndarray) -> np.ndarray:
    """``10 log10`` with a floor of 1e-30, float32."""
    return np.float32(10.0) * np.log10(np.maximum(x, _TINY))

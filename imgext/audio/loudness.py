"""Loudness: BS.1770 integrated loudness (pyloudnorm) and the levelling of sources to a reference."""

from __future__ import annotations

import math

import numpy as np
import pyloudnorm

from imgext.audio.io import db_to_gain

SILENCE_LUFS = -70.0
"""BS.1770's absolute gate: anything quieter counts as silence."""


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



"""Loudness: BS.1770 integrated loudness (pyloudnorm) and the levelling of sources to a reference."""

from __future__ import annotations

import functools
import math

import numpy as np

from imgext.audio.dsp import signal
from imgext.audio.io import db_to_gain
from imgext.errors import ParameterError

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


_CHANNEL_WEIGHTS = (1.0, 1.0, 1.0, 1.41, 1.41)
"""BS.1770 channel weights G_i (L, R, C, Ls, Rs), as pyloudnorm orders them."""
BLOCK_S, BLOCK_OVERLAP = 0.4, 0.75
"""BS.1770 gating blocks: 400 ms with 75 % overlap."""


@functools.lru_cache(maxsize=8)
def _k_stages(sample_rate: int) -> tuple[tuple[np.ndarray, np.ndarray, float], ...]:
    """The K-weighting stages of pyloudnorm's Meter at ``sample_rate``: ``(b, a, passband_gain)`` each (cached).

    pyloudnorm is imported here, not with the module: only its filter design is used (the block sums
    and gating are ours), and the design is needed once per sample rate.
    """
    import pyloudnorm

    meter = pyloudnorm.Meter(sample_rate)
    return tuple((np.asarray(f.b, np.float64), np.asarray(f.a, np.float64), float(f.passband_gain))
                 for f in meter._filters.values())


@functools.lru_cache(maxsize=8)
def _k_sos(sample_rate: int) -> np.ndarray:
    """:func:`_k_stages` as second-order sections, the passband gains folded into the numerators (cached)."""
    rows = []
    for b, a, gain in _k_stages(sample_rate):
        b = np.pad(np.asarray(b, np.float64), (0, 3 - len(b))) * gain
        a = np.pad(np.asarray(a, np.float64), (0, 3 - len(a)))
        rows.append(np.concatenate([b / a[0], a / a[0]]))
    return np.array(rows)


def k_weighted(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """K-weighted signal (BS.1770 pre-filter and RLB high-pass), float64, shape like ``audio`` (..., n).

    Both stages in one ``sosfilt`` pass (the same filters as a cascade of ``lfilter``, to float rounding).
    """
    y = np.asarray(audio, dtype=np.float64)
    if y.shape[-1] == 0:
        return y.copy()
    return signal.sosfilt(_k_sos(sample_rate), y, axis=-1)


CHUNK_SAMPLES = 1 << 17
"""Long signals are K-weighted and summed this many samples at a time (the filter state and the running sum
carried over), so a measurement holds a few MB of float64 instead of several copies of the whole signal."""


def k_weighted_chunks(audio: np.ndarray, sample_rate: int, *, chunk: int = CHUNK_SAMPLES):
    """The K-weighted signal of ``audio`` (..., n) in consecutive pieces: yields ``(start, y)``, ``y`` float64.

    The filter state is carried from piece to piece, so the pieces laid end to end are
    :func:`k_weighted` of the whole signal, bit for bit (``sosfilt`` runs the same recursion).
    """
    x = np.asarray(audio)
    n = x.shape[-1]
    sos = _k_sos(sample_rate)
    zi = np.zeros((sos.shape[0], *x.shape[:-1], 2))
    for start in range(0, n, chunk):
        y, zi = signal.sosfilt(sos, np.asarray(x[..., start : start + chunk], dtype=np.float64), axis=-1, zi=zi)
        yield start, y


def k_weighted_power(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """K-weighted power summed over channels (unit weights) [shape=(n_samples,), float64], a chunk at a time.

    ``np.sum(np.square(k_weighted(audio, sample_rate)), axis=0)`` bit for bit, without the
    whole-signal float64 copies.
    """
    x = np.asarray(audio)
    x = x[None, :] if x.ndim == 1 else x
    out = np.empty(x.shape[-1])
    for start, y in k_weighted_chunks(x, sample_rate):
        np.sum(np.square(y, out=y), axis=0, out=out[start : start + y.shape[-1]])
    return out


def cumulative_at(pieces, points: np.ndarray, lead_shape: tuple = ()) -> np.ndarray:
    """``c[..., points]`` of ``c = [0, cumsum(signal)]`` (float64), the signal given as consecutive pieces.

    ``pieces`` yields ``(start, s)`` with ``s`` float64 of shape ``lead_shape + (m,)`` (overwritten);
    ``points`` are sorted sample indices in ``[0, n]``.  The running sum is carried by adding it to each
    piece's first sample before its ``cumsum``: the same sequential additions as one ``cumsum`` of the
    whole signal, so the result is bit-identical while only one piece is held at a time.
    """
    points = np.asarray(points, dtype=np.int64)
    out = np.zeros((*lead_shape, points.size))
    carry = np.zeros(lead_shape)
    for start, s in pieces:
        m = s.shape[-1]
        if m == 0:
            continue
        s[..., 0] += carry
        np.cumsum(s, axis=-1, out=s)
        i0, i1 = np.searchsorted(points, [start + 1, start + m + 1])
        out[..., i0:i1] = s[..., points[i0:i1] - start - 1]
        carry = s[..., -1].copy()
    return out


def block_bounds(n_samples: int, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """Sample bounds ``[lo, hi)`` of the BS.1770 gating blocks, cut exactly as pyloudnorm cuts them."""
    step = 1.0 - BLOCK_OVERLAP
    count = int(np.round((n_samples / sample_rate - BLOCK_S) / (BLOCK_S * step))) + 1
    j = np.arange(max(count, 0), dtype=np.float64)
    lo = (BLOCK_S * (j * step) * sample_rate).astype(np.int64)
    hi = np.minimum((BLOCK_S * (j * step + 1) * sample_rate).astype(np.int64), n_samples)
    return lo, hi


def gated_loudness(block_power: np.ndarray) -> float:
    """Integrated loudness (LUFS) from each block's weighted mean-square power (BS.1770-4 eqs. 4-7).

    ``block_power`` [shape=(n_blocks,)] is ``sum_i G_i z_ij``; ``-inf`` when every block is gated out.
    """
    with np.errstate(divide="ignore"):
        blk = -0.691 + 10.0 * np.log10(block_power)
    keep = blk >= SILENCE_LUFS
    if not np.any(keep):
        return -math.inf
    gamma_r = -0.691 + 10.0 * math.log10(float(block_power[keep].mean())) - 10.0
    keep = (blk > gamma_r) & (blk > SILENCE_LUFS)
    return -0.691 + 10.0 * math.log10(float(block_power[keep].mean())) if np.any(keep) else -math.inf


def _loudness_and_blocks(audio: np.ndarray, sample_rate: int) -> tuple[float, np.ndarray]:
    """Integrated loudness and the loudness of each 400 ms gating block (LUFS).

    pyloudnorm's ``Meter.integrated_loudness`` (same filters, blocks and gates; agrees to 1e-9 LU),
    vectorised: the block sums come from one cumulative sum instead of a Python loop over blocks.
    """
    return _loudness_blocks_power(audio, sample_rate, power=False)[:2]


def _loudness_blocks_power(audio: np.ndarray, sample_rate: int, *,
                           power: bool = True) -> tuple[float, np.ndarray, np.ndarray | None]:
    """:func:`_loudness_and_blocks` and the K-weighted power summed over channels [shape=(n_samples,)].

    The power (unit channel weights, as the limiter measures L and R) is ``None`` for silence, for
    more than two channels, for clips shorter than one gating block (they are measured tiled) and
    when ``power`` is False (then nothing of the signal's length is held).
    """
    x = np.asarray(audio)
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)
    x = x[None, :] if x.ndim == 1 else x
    if x.shape[-1] == 0 or not np.any(x):
        return float("-inf"), np.zeros(0), None
    if x.shape[0] > len(_CHANNEL_WEIGHTS):
        raise ParameterError(f"at most {len(_CHANNEL_WEIGHTS)} channels are supported, got {x.shape[0]}")
    block = int(math.ceil(BLOCK_S * sample_rate)) + 1
    tiled = x.shape[-1] < block
    if tiled:
        x = np.tile(x, (1, int(math.ceil(block / x.shape[-1]))))
    n, n_ch = x.shape[-1], x.shape[0]
    lo, hi = block_bounds(n, sample_rate)
    # Filtered, squared and summed a chunk at a time (bit-identical to the whole-signal passes):
    # 8 x 600 s stereo held ~1.3 GB of float64 copies here, now a few MB beside the per-sample power.
    summed = None if tiled or n_ch > 2 or not power else np.empty(n)

    def squares():
        for start, y in k_weighted_chunks(x, sample_rate):
            sq = np.square(y, out=y)
            if summed is not None:
                if n_ch == 2:
                    np.add(sq[0], sq[1], out=summed[start : start + sq.shape[-1]])
                else:
                    summed[start : start + sq.shape[-1]] = sq[0]
            yield start, sq

    points, inverse = np.unique(np.concatenate([lo, hi]), return_inverse=True)
    c = cumulative_at(squares(), points, (n_ch,))
    c_lo, c_hi = c[:, inverse[: lo.size]], c[:, inverse[lo.size :]]
    z = (c_hi - c_lo) / (BLOCK_S * sample_rate)  # (channels, blocks)
    weighted = (np.asarray(_CHANNEL_WEIGHTS[:n_ch])[:, None] * z).sum(axis=0)
    with np.errstate(divide="ignore"):
        blocks = -0.691 + 10.0 * np.log10(weighted)
    value = gated_loudness(weighted)
    return (value if math.isfinite(value) and value > SILENCE_LUFS else float("-inf")), blocks, summed


def _gates_unchanged(blocks: np.ndarray, gain_db: float) -> bool:
    """True when shifting every block by ``gain_db`` moves none across BS.1770's -70 LUFS absolute gate.

    Then the gated block set is the same and the relative gate moves with the
    gain, so the integrated loudness after the gain is exactly L + gain.
    """
    lo, hi = sorted((SILENCE_LUFS, SILENCE_LUFS - gain_db))
    return not np.any((blocks >= lo) & (blocks < hi))



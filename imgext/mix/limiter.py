"""A look-ahead true-peak limiter for the master, and the BS.1770-4 true-peak meter it is checked with.

``pedalboard.Limiter`` is a fixed 4:1 compressor with make-up gain and a hard
clip, not a true-peak limiter (measured to clip 68-85 samples on our photos).
This one computes the whole gain envelope offline, vectorised:

1. The true peak around every sample is estimated by 4x oversampling
   (BS.1770-4 Annex 2: the 81-tap, 4-phase interpolator of ``resample_poly``), only where the
   sample peak comes close enough to the ceiling for an inter-sample peak to
   cross it.
2. The gain each sample needs, ``min(1, ceiling / peak)``, is spread by a
   running minimum and smoothed by a running mean of the same width, twice
   (a short attack stage and a longer release stage).  Every mean is taken over
   values that are each at most the gain needed at its centre, so the
   envelope never exceeds it: no overshoot, no clipping.
3. :func:`limit_to_loudness` finds the make-up gain that puts the limited mix
   at the loudness target (a few Newton steps on a fast K-weighted block
   measure that reuses one filtering pass).

The envelope is returned, not just the limited audio, so that the same gain can
be applied to every stem and the stems still sum to the mix.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy.ndimage import correlate1d, maximum_filter1d, minimum_filter1d, uniform_filter1d

from imgext.audio.dsp import signal
from imgext.audio.loudness import CHUNK_SAMPLES, block_bounds, cumulative_at, gated_loudness, k_weighted_power
from imgext.errors import ParameterError

__all__ = [
    "DEFAULT_ATTACK_MS",
    "DEFAULT_RELEASE_MS",
    "OVERSAMPLE",
    "LimitResult",
    "limit_to_loudness",
    "limiter_gain",
    "sample_true_peaks",
    "true_peak_dbtp",
]

OVERSAMPLE = 4
"""Oversampling factor of the true-peak meter (BS.1770-4 Annex 2)."""

DEFAULT_ATTACK_MS = 2.0
"""Half-width of the fast stage: gain reduction starts this long before a peak (the look-ahead)."""

DEFAULT_RELEASE_MS = 25.0
"""Half-width of the slow stage: how long the gain takes to come back after a peak."""

_HALF = 10  # each interpolated point uses the 2 * 10 + 1 samples around it (81 taps over 4 phases)
_SCAN = 64  # candidate search: blocks of this many samples are skipped when their neighbourhood stays low
_CHUNK = 1 << 17  # long signals are oversampled this many samples at a time
_PIECE = 4096  # the limiter's check bounds the signal only in pieces of this many samples where its envelope acts
_BOUND_STEP = 1 << 16  # the candidate bound is summed over stretches of this many samples (256 KB each: in cache)
_BLOCK = 16  # the envelope is computed on the per-16-sample minimum (0.36 ms at 44.1 kHz), then interpolated


def _phase_filters() -> np.ndarray:
    """Polyphase interpolator [shape=(OVERSAMPLE, 2 * _HALF + 1)]: row ``k`` gives the point ``n + k/4``.

    The same 81-tap Kaiser (beta 5) low-pass as ``scipy.signal.resample_poly(x, 4, 1)``,
    split into its four phases, so the meter agrees with that reference; tap
    ``j`` multiplies sample ``n + j - _HALF``.
    """
    h = signal.firwin(2 * _HALF * OVERSAMPLE + 1, 1.0 / OVERSAMPLE, window=("kaiser", 5.0)) * OVERSAMPLE
    rows = np.zeros((OVERSAMPLE, 2 * _HALF + 1))
    for k in range(OVERSAMPLE):
        for j in range(2 * _HALF + 1):
            tap = k + _HALF * OVERSAMPLE - OVERSAMPLE * (j - _HALF)  # y[4n + k] = sum_m x[m] h[4(n - m) + k + 40]
            if 0 <= tap < h.size:
                rows[k, j] = h[tap]
    return rows


_PHASES = _phase_filters()
_OFFSETS = np.arange(2 * _HALF + 1) - _HALF
_BOUND_TAPS = np.abs(_PHASES).max(axis=0).astype(np.float32)
"""The candidate bound's taps (:func:`_bound`).  They are not symmetric (the points ``n + k/4`` lie right of
``n``: tap +1 is 0.90, tap -1 0.20), so they are not folded: a symmetrised bound (their mean with their mirror
image) was under the true peak of sparse peaks by up to 1.2 dB."""
_BOUND_SUM = float(_BOUND_TAPS.astype(np.float64).sum())
"""Largest value of the candidate bound per unit of the largest sample it reaches."""
_HEADROOM = float(np.abs(_PHASES).sum(axis=1).max())
"""Bound of the interpolator: no point between samples exceeds this times the largest sample in its window."""
_LATE = np.concatenate([_PHASES[3][1:], [0.0]])
"""Phase 3/4 one sample earlier: the point ``n - 1/4``, the mirror image of phase 1/4 (``n + 1/4``) about ``n``."""
_EVEN = (_PHASES[1] + _LATE) / 2.0
"""The even part of those two (exactly symmetric) ..."""
_ODD = (_PHASES[1] - _LATE) / 2.0
"""... and their odd part (exactly antisymmetric): ``y(n + 1/4) = e + o``, ``y(n - 1/4) = e - o``; ``correlate1d``
folds symmetric and antisymmetric taps (half the multiplications)."""


def _as_channels(audio: np.ndarray) -> np.ndarray:
    x = np.asarray(audio)
    x = x[None, :] if x.ndim == 1 else x
    if x.ndim != 2:
        raise ParameterError(f"audio must have shape (n_channels, n_samples), got {np.shape(audio)}")
    return x


def sample_true_peaks(audio: np.ndarray, *, threshold: float = 0.0, where: np.ndarray | None = None) -> np.ndarray:
    """True peak (linear) between each sample and the next, over all channels.

    Parameters
    ----------
    audio : np.ndarray [shape=(n_channels, n_samples)] or [shape=(n_samples,)]
    threshold : float >= 0
        Only where an inter-sample peak could exceed this (the sum of the
        interpolator's absolute taps times the samples they reach exceeds it) is
        the signal oversampled; elsewhere the sample peak is returned (exact for
        the result's maximum).  0 oversamples everywhere.
    where : np.ndarray [shape=(n_samples,), dtype=bool], optional
        Oversample only these samples (the sample peak elsewhere).

    Returns
    -------
    np.ndarray [shape=(n_samples,), dtype=float32]
        ``max(|x[n]|, |x(n + 1/4)|, |x(n + 1/2)|, |x(n + 3/4)|)`` over channels,
        the points between samples interpolated as ``resample_poly(x, 4, 1)`` does.
    """
    x = _as_channels(audio).astype(np.float32, copy=False)
    n = x.shape[-1]
    peaks = _abs_max(x)
    if n == 0:
        return peaks
    # The points to oversample as a boolean mask, not an index array: when most samples are candidates
    # (a loud, limited mix) int64 indices and float64 bounds were 12 bytes a sample (8 x 600 s: ~640 MB).
    mask = _candidate_mask(peaks, threshold, where=where) if threshold > 0 else np.ones(n, dtype=bool)
    if where is not None:
        mask &= where
    count = int(np.count_nonzero(mask))
    if count == 0:
        return peaks
    out = peaks  # this function's own array: raised in place
    if count * 16 > n:  # as _interpolated decides: one pass over everything (chunked), read where asked
        _interpolated_all(x, into=out, where=mask)
    else:
        idx = np.flatnonzero(mask)
        out[idx] = np.maximum(out[idx], _interpolated(x, idx, sample_peaks=peaks))
    return out


def _abs_max(x: np.ndarray) -> np.ndarray:
    """``np.max(np.abs(x), axis=0)`` of ``x`` [shape=(n_channels, n_samples)], a chunk at a time (no ``|x|`` copy)."""
    n = x.shape[-1]
    out = np.empty(n, dtype=np.result_type(x.dtype, np.float32) if x.dtype.kind != "f" else x.dtype)
    for start in range(0, n, _CHUNK):
        np.max(np.abs(x[:, start : start + _CHUNK]), axis=0, out=out[start : start + _CHUNK])
    return out


def _interpolated(x: np.ndarray, idx: np.ndarray, *, sample_peaks: np.ndarray | None = None,
                  gather: bool = False) -> np.ndarray:
    """Largest ``|x(n + k/4)|`` over channels and the four phases at the sample indices ``idx``, float32.

    Few points: gather each point's 21 samples and apply the four phases as one small matrix product.
    Many (over a sixteenth of the samples): one correlation per phase over the whole signal (far cheaper
    than gathering), read at ``idx``; ``gather=True`` always gathers.  The two ways differ in the last bits
    (another order of additions).  ``sample_peaks`` [shape=(n_samples,), float32], when given, is
    ``max |x|`` over channels (:func:`_abs_max`): read instead of gathering the samples again (the same values).
    """
    n = x.shape[-1]
    if idx.size * 16 > n and not gather:
        return _interpolated_all(x)[idx]
    phases = np.ascontiguousarray(_PHASES[1:].T, dtype=np.float32)  # phase 0 is the sample itself
    taps = 2 * _HALF + 1
    # Each channel's 21-sample windows as one 84-byte record per start sample (overlapping, a view):
    # gathering records copies each window in one piece, about 4x faster than fancy-indexing a
    # sliding_window_view (the same values).
    records = [np.ndarray(shape=(n - 2 * _HALF,), dtype=np.dtype((np.void, 4 * taps)), buffer=row, strides=(4,))
               for row in (np.ascontiguousarray(c, dtype=np.float32) for c in x)] if n > 2 * _HALF else None
    out = np.empty(idx.size, np.float32)
    centre = np.float32(_PHASES[0, _HALF])  # phase 0: the other taps are < 1e-16
    # 4096 points at a time: bounded memory, and a product small enough that a multi-threaded BLAS runs it
    # on one thread (one (2, 60000, 21) product took ~10x the CPU on two busy-waiting threads); every row's
    # values are the same whatever the number of rows.
    for start in range(0, idx.size, 1 << 12):
        chunk = idx[start : start + (1 << 12)]
        if records is None or chunk[0] < _HALF or chunk[-1] >= n - _HALF:  # (idx is sorted) beyond the ends x is 0
            at = chunk[:, None] + _OFFSETS[None, :]
            windows = np.where((at >= 0) & (at < n), x[:, np.clip(at, 0, n - 1)], np.float32(0.0))
        else:
            windows = np.empty((x.shape[0], chunk.size, taps), np.float32)  # (ch, k, taps)
            for c, rec in enumerate(records):
                windows[c] = rec[chunk - _HALF].view(np.float32).reshape(chunk.size, taps)
        inter = windows @ phases  # (ch, k, 3)
        np.abs(inter, out=inter)
        # The largest over phases, then channels (a maximum in any order is the same value; elementwise
        # maxima of the columns are ~10x faster than a reduction along a length-3 axis).
        inter = np.maximum(np.maximum(inter[..., 0], inter[..., 1]), inter[..., 2])
        for c in range(1, inter.shape[0]):
            np.maximum(inter[0], inter[c], out=inter[0])
        level = sample_peaks[chunk] if sample_peaks is not None else np.abs(x[:, chunk]).max(axis=0)
        np.maximum(inter[0], centre * level, out=out[start : start + chunk.size])
    return out


def _interpolated_all(x: np.ndarray, *, into: np.ndarray | None = None, where: np.ndarray | None = None) -> np.ndarray:
    """Largest ``|x(n + k/4)|`` over channels and the four phases at every sample [shape=(n_samples,), float32].

    Three correlations: the half-sample phase, and the even and odd parts of the quarter
    phases (folded) (``y(n + 1/4) = e[n] + o[n]``, ``y(n + 3/4) = e[n + 1] - o[n + 1]``).
    With ``into`` (float32 [shape=(n_samples,)]) the result is not made whole: ``into`` is raised to
    it in place (where ``where`` is True) and returned.
    """
    n = x.shape[-1]
    inter = np.empty(n, np.float32) if into is None else None
    margin = _HALF + 1  # an output reads 10 samples either side, the late phase one more
    for start in range(0, n, _CHUNK):
        # A chunk and its margin: every output reads the same samples as in one pass over the whole
        # signal (zeros beyond its ends, as mode="constant" pads), so the result is the same, bit for
        # bit, while the working set is a few chunks instead of ~8 signal-length copies (8 x 600 s: 1.3 GB).
        stop = min(n, start + _CHUNK)
        lo, hi = max(0, start - margin), min(n, stop + margin)
        xs = x[:, lo:hi]
        a, b = start - lo, stop - lo
        part = np.float32(_PHASES[0, _HALF]) * np.max(np.abs(xs[:, a:b]), axis=0)  # phase 0: other taps < 1e-16
        y = correlate1d(xs, _PHASES[2].astype(np.float32), axis=-1, mode="constant")[:, a:b]
        np.maximum(part, np.max(np.abs(y, out=y), axis=0), out=part)
        xp = np.pad(xs, ((0, 0), (0, 1))) if hi == n else xs  # y(n + 3/4) of the last sample is read one sample on
        e = correlate1d(xp, _EVEN, axis=-1, mode="constant")
        o = correlate1d(xp, _ODD, axis=-1, mode="constant")
        early = np.abs(e[:, a:b] + o[:, a:b])
        late = np.abs(e[:, a + 1 : b + 1] - o[:, a + 1 : b + 1])
        np.maximum(part, np.max(early, axis=0), out=part)
        if into is None:
            np.maximum(part, np.max(late, axis=0), out=inter[start:stop])
        else:
            np.maximum(part, np.max(late, axis=0), out=part)
            np.maximum(into[start:stop], part, out=into[start:stop],
                       where=True if where is None else where[start:stop])
    return inter if into is None else into


def _block_reduce(x: np.ndarray, width: int, ufunc, fill: float) -> np.ndarray:
    """``ufunc.reduce`` over consecutive blocks of ``width`` samples [shape=(ceil(n / width),)].

    ``ufunc`` is ``np.maximum`` or ``np.minimum``; the last, partial block counts as padded with ``fill``.

    The same values as padding, reshaping and reducing along the rows (a maximum or minimum is exact),
    without the padded copy of the signal (about half the time).
    """
    n = x.size
    full = n // width
    out = np.empty(-(-n // width), dtype=x.dtype)
    if full:
        ufunc.reduce(x[: full * width].reshape(full, width), axis=1, out=out[:full])
    if full * width < n:
        out[full] = ufunc(ufunc.reduce(x[full * width :]), x.dtype.type(fill))
    return out


def _near_blocks(peaks: np.ndarray, threshold: float) -> tuple[np.ndarray, int]:
    """The :data:`_SCAN`-sample blocks whose neighbourhood could reach ``threshold``, and the block count."""
    n = peaks.size
    m = -(-n // _SCAN)
    block_max = _block_reduce(peaks, _SCAN, np.maximum, 0.0)
    near = maximum_filter1d(block_max, size=3, mode="constant") * _BOUND_SUM > threshold  # reach 10 < _SCAN
    return np.flatnonzero(near), m


def _candidate_mask(peaks: np.ndarray, threshold: float, *, where: np.ndarray | None = None) -> np.ndarray:
    """:func:`_candidates`' points as a boolean mask [shape=(n_samples,)] (the same set, a byte a sample).

    With ``where`` (bool [shape=(n_samples,)]) the mask is only needed where it is True: pieces of the
    signal with no such point are left False (the limiter's check reads only where its envelope acts).
    """
    blocks, m = _near_blocks(peaks, threshold)
    mask = np.zeros(peaks.size, dtype=bool)
    if blocks.size * 8 > m:  # dense: the chunked bound, compared chunk by chunk
        level = np.float32(threshold * (1.0 - 1e-5))
        for start, bound in _dense_bound(peaks.astype(np.float32, copy=False), where=where):
            np.greater(bound, level, out=mask[start : start + bound.size])
    elif blocks.size:
        mask[_candidates(peaks, threshold)[0]] = True
    return mask


def _candidates(peaks: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Sample indices where an inter-sample peak could exceed ``threshold`` (sorted, int64), and that bound.

    ``|x(n + k/4)| <= sum_j |h_kj| |x[n + j - 10]|``: this mono bound picks the points worth
    interpolating. It is evaluated only inside blocks of :data:`_SCAN` samples whose neighbourhood
    could reach the threshold at all (the block maxima times the interpolator's headroom), so a mix
    that stays under the ceiling costs one pass of block maxima.
    """
    n = peaks.size
    blocks, m = _near_blocks(peaks, threshold)
    if blocks.size == 0:
        return np.zeros(0, np.int64), np.zeros(0)
    if blocks.size * 8 > m:  # dense: one correlation over everything is cheaper than gathers
        # float32: a hair of slack covers its rounding, the bound only picks points
        return _dense_candidates(peaks.astype(np.float32, copy=False), np.float32(threshold * (1.0 - 1e-5)))
    idx = (blocks[:, None] * _SCAN + np.arange(_SCAN)[None, :]).reshape(-1)
    idx = idx[idx < n]
    padded = np.pad(peaks.astype(np.float64), (_HALF, _HALF))
    bound = np.zeros(idx.size)
    for j, tap in enumerate(_BOUND_TAPS.astype(np.float64)):  # 21 taps: a gather per tap, not per sample
        bound += tap * padded[idx + j]
    keep = bound > threshold
    return idx[keep], bound[keep]


def _dense_candidates(peaks: np.ndarray, level: np.float32) -> tuple[np.ndarray, np.ndarray]:
    """Indices where the float32 bound of ``peaks`` exceeds ``level``, and the bound there (float64).

    Chunk by chunk with a margin of the filter's reach: the same values as one correlation of the
    whole signal, without a signal-length bound array.
    """
    idx, values = [], []
    for start, bound in _dense_bound(peaks):
        hit = np.flatnonzero(bound > level)
        idx.append(hit + start)
        values.append(bound[hit].astype(np.float64))
    return np.concatenate(idx), np.concatenate(values)


def _bound(peaks: np.ndarray, start: int, stop: int) -> np.ndarray:
    """The candidate bound ``sum_j t_j peaks[i + j - 10]`` at ``i`` in ``start:stop`` (zeros beyond the ends), float32.

    Summed in float32, tap by tap over stretches of :data:`_BOUND_STEP` samples (held in cache): ~3x
    faster than ``correlate1d``, which sums in float64.  21 positive terms: the sum is within
    ~1.3e-6 of the exact bound, well inside the 1e-5 slack every comparison with it allows, so
    it still rules out only points that cannot reach the level (the meter's result is unchanged).
    """
    n = peaks.size
    m = stop - start
    seg = np.zeros(m + 2 * _HALF, np.float32)  # peaks[start - 10 : stop + 10], zero-padded
    lo, hi = max(0, start - _HALF), min(n, stop + _HALF)
    seg[lo - start + _HALF : hi - start + _HALF] = peaks[lo:hi]
    out = np.empty(m, np.float32)
    term = np.empty(min(m, _BOUND_STEP), np.float32)
    for s0 in range(0, m, _BOUND_STEP):
        s1 = min(m, s0 + _BOUND_STEP)
        acc, t = out[s0:s1], term[: s1 - s0]
        np.multiply(seg[s0:s1], _BOUND_TAPS[0], out=acc)
        for j in range(1, 2 * _HALF + 1):
            np.multiply(seg[s0 + j : s1 + j], _BOUND_TAPS[j], out=t)
            acc += t
    return out


def _dense_bound(peaks: np.ndarray, *, where: np.ndarray | None = None):
    """The float32 candidate bound of ``peaks`` (:func:`_bound`) in consecutive pieces: yields ``(start, bound)``.

    With ``where`` (bool [shape=(n_samples,)]) only the pieces (of :data:`_PIECE` samples) holding a True
    point are yielded (consecutive ones together, up to :data:`_CHUNK` samples).  Each value reads the 21
    samples around it (zeros beyond the ends), whatever the piece.
    """
    n = peaks.size
    if where is None:
        spans = ((start, min(n, start + _CHUNK)) for start in range(0, n, _CHUNK))
    else:
        m = -(-n // _PIECE)
        wanted = np.pad(where, (0, m * _PIECE - n)).reshape(m, _PIECE).any(axis=1)
        edges = np.flatnonzero(np.diff(np.concatenate([[False], wanted, [False]]).astype(np.int8)))
        per = _CHUNK // _PIECE

        def runs():
            for k0, k1 in zip(edges[0::2], edges[1::2]):  # runs of wanted pieces, at most _CHUNK samples each
                for a in range(int(k0), int(k1), per):
                    yield a * _PIECE, min(n, min(int(k1), a + per) * _PIECE)

        spans = runs()
    for start, stop in spans:
        yield start, _bound(peaks, start, stop)


def true_peak_dbtp(audio: np.ndarray, *, sample_peaks: np.ndarray | None = None) -> float:
    """True peak in dBTP (BS.1770-4 Annex 2, 4x oversampling); ``-inf`` for silence.

    Only points whose bound (:func:`_candidates`) exceeds the sample peak are interpolated:
    nothing else can hold the maximum.  ``sample_peaks`` [shape=(n_samples,), float32], when the
    caller has it, is ``max |audio|`` over channels (``_abs_max`` of the float32 audio): not taken again.
    """
    top = _true_peak(_as_channels(audio).astype(np.float32, copy=False), sample_peaks=sample_peaks)
    return 20.0 * math.log10(top) if top > 0.0 else -math.inf


def _true_peak(x: np.ndarray, *, sample_peaks: np.ndarray | None = None) -> float:
    """:func:`true_peak_dbtp` of float32 ``x`` [shape=(n_channels, n_samples)], linear (0 for silence)."""
    peaks = _abs_max(x) if sample_peaks is None else sample_peaks
    top = float(peaks.max()) if peaks.size else 0.0
    if top == 0.0:
        return 0.0
    idx, bound = _candidates(peaks, top)
    first = 4096
    if x.shape[-1] < 16 * first:  # short: in chunks of 4096 by bound, as always (some interpolated whole)
        if idx.size > first:
            order = np.argsort(-bound, kind="stable")
            idx, bound = idx[order], bound[order]
        start = 0
        while start < idx.size:
            chunk = np.sort(idx[start : start + first])
            top = max(top, float(_interpolated(x, chunk, sample_peaks=peaks).max()))
            rest = idx[start + first :]
            keep = bound[start + first :] > top * (1.0 - 1e-5)  # (a hair of slack for the float32 bound's rounding)
            idx, bound, start = rest[keep], bound[start + first :][keep], 0
        return top
    # Longer (every 4096 points gathered, as before): the most promising points first (an O(n)
    # partition, not a sort); the maximum they give rules out every point whose bound is under it,
    # and the rest are interpolated in one pass.  A point holding the true peak has a bound at least
    # that high, so it is never ruled out: the result is the maximum over all candidates.
    if idx.size > first:
        best = np.zeros(idx.size, dtype=bool)
        best[np.argpartition(bound, idx.size - first)[idx.size - first :]] = True
        top = max(top, float(_interpolated(x, idx[best], sample_peaks=peaks, gather=True).max()))
        idx = idx[~best & (bound > top * (1.0 - 1e-5))]  # (a hair of slack for the float32 bound's rounding)
    if idx.size:
        top = max(top, float(_interpolated(x, idx, sample_peaks=peaks, gather=True).max()))
    return top


def _running_min_mean(r: np.ndarray, half: int) -> np.ndarray:
    """Running minimum then running mean, both ``2 * half + 1`` wide: the result never exceeds ``r``."""
    if half <= 0:
        return r
    size = 2 * half + 1
    return uniform_filter1d(minimum_filter1d(r, size=size, mode="nearest"), size=size, mode="nearest")


def limiter_gain(
    audio: np.ndarray,
    *,
    sample_rate: int,
    ceiling_dbtp: float = -1.0,
    attack_ms: float = DEFAULT_ATTACK_MS,
    release_ms: float = DEFAULT_RELEASE_MS,
) -> np.ndarray:
    """Gain envelope that keeps ``audio`` at or below ``ceiling_dbtp`` true peak.

    Parameters
    ----------
    audio : np.ndarray [shape=(n_channels, n_samples)]
        Channels are linked: one envelope for all, so the image does not shift.
    sample_rate : int
        In Hz.
    ceiling_dbtp : float <= 0
        True-peak ceiling in dBTP.
    attack_ms, release_ms : float >= 0
        Half-widths of the fast and slow smoothing stages in milliseconds.

    Returns
    -------
    np.ndarray [shape=(n_samples,), dtype=float32]
        In (0, 1]; ``audio * gain`` has every sample true peak at or below the
        ceiling (up to the interpolator's accuracy, about 0.05 dB).
    """
    x = _as_channels(audio)
    ceiling = 10.0 ** (ceiling_dbtp / 20.0)
    if x.shape[-1] == 0 or _true_peak(x.astype(np.float32, copy=False)) <= ceiling:
        return np.ones(x.shape[-1], dtype=np.float32)  # under the ceiling already (found pruned: cheap)
    tp = sample_true_peaks(x, threshold=ceiling)
    return _envelope(x, tp, ceiling, sample_rate, attack_ms, release_ms)


def _envelope(x: np.ndarray, tp: np.ndarray, ceiling: float, sample_rate: int, attack_ms: float,
              release_ms: float, *, gain: np.float32 | None = None) -> np.ndarray:
    """:func:`limiter_gain` given the true peaks ``tp`` of ``x`` (exact wherever they exceed ``ceiling``).

    With ``gain`` the signal is ``x * gain`` and its true peaks ``tp * gain`` (neither made whole: the
    signal goes into one scratch buffer with the envelope, the peaks into the gain each sample needs).
    """
    n = x.shape[-1]
    scratch = None
    top = tp.max() if n else 0.0
    if n == 0 or float(top if gain is None else top * gain) <= ceiling:  # max(tp * g) == max(tp) * g exactly
        return np.ones(n, dtype=np.float32)
    need = np.empty(n, np.float32)
    for start in range(0, n, _CHUNK):
        t = tp[start : start + _CHUNK] if gain is None else tp[start : start + _CHUNK] * gain
        need[start : start + _CHUNK] = np.minimum(1.0, ceiling / np.maximum(t, 1e-30))
    env = _smooth_gain(need, n, sample_rate, attack_ms, release_ms)
    for _ in range(4):
        # A steep envelope changes the waveform between samples too: measure the result and tighten
        # the need where a peak still crosses (rare, and only by a fraction of a dB).
        # Where the envelope is 1 over a point's whole interpolation window, the audio there is unchanged
        # and already under the ceiling (the envelope never exceeds the need): check only the rest.
        touched = _touched(env)
        if scratch is None:
            scratch = np.empty(x.shape, np.result_type(x, env) if gain is None else np.result_type(x, gain, env))
        if gain is None:
            np.multiply(x, env[None, :], out=scratch)
        else:
            np.multiply(x, gain, out=scratch)  # (x * gain) * env, in that order: the same values
            scratch *= env[None, :]
        after = sample_true_peaks(scratch, threshold=ceiling, where=touched)
        over = after > ceiling
        if not np.any(over):
            break
        need[over] *= (ceiling / after[over]) ** 1.5
        env = _smooth_gain(need, n, sample_rate, attack_ms, release_ms)
    return env


def _touched(env: np.ndarray) -> np.ndarray:
    """Where the envelope is under 1 anywhere in a point's interpolation window [shape=(n,), bool].

    ``minimum_filter1d(env, 2 * _HALF + 1, mode="nearest") < 1`` a chunk at a time with the window's
    margin (a minimum is exact, so the chunks give the same answer).
    """
    n = env.size
    out = np.empty(n, dtype=bool)
    for start in range(0, n, _CHUNK):
        stop = min(n, start + _CHUNK)
        lo, hi = max(0, start - _HALF), min(n, stop + _HALF)
        low = minimum_filter1d(env[lo:hi], size=2 * _HALF + 1, mode="nearest")[start - lo : stop - lo]
        np.less(low, 1.0, out=out[start:stop])
    return out


def _smooth_gain(need: np.ndarray, n: int, sample_rate: int, attack_ms: float, release_ms: float) -> np.ndarray:
    """The limiter's envelope [shape=(n,)] from the gain each sample needs: never above it, smooth."""
    # Work on the per-block minimum (and its neighbours, so linear interpolation between block
    # centres stays under every sample's need), then interpolate back to the sample rate.
    m = -(-n // _BLOCK)
    blocks = _block_reduce(need, _BLOCK, np.minimum, 1.0)
    blocks = minimum_filter1d(blocks, size=3, mode="nearest")
    block_rate = sample_rate / _BLOCK
    g = _running_min_mean(blocks, round(attack_ms * 1e-3 * block_rate))
    g = _running_min_mean(g, round(release_ms * 1e-3 * block_rate))
    env = np.empty(n, np.float32)
    # Linear interpolation between the block centres c_j = 16 j + 7.5: the samples between c_j and c_j+1
    # are 16 j + 8 + k (k = 0..15), at k + 0.5 past c_j, so each block's 16 values are one row of a
    # (blocks, 16) product: ``np.interp(samples, centres, g)`` bit for bit (the same slope (g_j+1 - g_j) / 16,
    # the same slope * (x - c_j) + g_j), without its search per sample.  Before c_0 and after the last
    # centre the end values hold.  A block range at a time (no float64 curve of the signal's length).
    half = _BLOCK // 2
    head = min(n, half)
    np.minimum(np.float32(g[0]), need[:head], out=env[:head])
    offsets = np.arange(_BLOCK, dtype=np.float64) + 0.5
    per = _CHUNK // _BLOCK
    for j0 in range(0, m - 1, per):
        j1 = min(m - 1, j0 + per)
        slope = (g[j0 + 1 : j1 + 1] - g[j0:j1]) / float(_BLOCK)
        part = (slope[:, None] * offsets[None, :] + g[j0:j1, None]).astype(np.float32).reshape(-1)
        a = half + j0 * _BLOCK
        b = min(n, half + j1 * _BLOCK)
        if b > a:
            np.minimum(part[: b - a], need[a:b], out=env[a:b])  # exact at the samples, whatever the interpolation did
    tail = half + (m - 1) * _BLOCK
    if tail < n:
        np.minimum(np.float32(g[-1]), need[tail:], out=env[tail:])
    return env


@dataclass(frozen=True)
class LimitResult:
    """The master gain and limiter envelope that put a mix at its loudness target under its ceiling.

    Attributes
    ----------
    gain_db : float
        Make-up gain applied before the limiter, in dB.
    envelope : np.ndarray [shape=(n_samples,), dtype=float32] or None
        The limiter's gain (linear, <= 1); ``None`` when no limiting was needed.
    gain_reduction_db : float >= 0
        Deepest reduction the limiter made, in dB.
    limited_s : float
        Time during which the limiter reduced the gain by more than 0.1 dB, in seconds.
    true_peaks : object or None
        The input's true peaks at unit gain as far as they were oversampled (opaque), for a second
        search on the same audio (``true_peaks=``); ``None`` when not limited.
    """

    gain_db: float
    envelope: np.ndarray | None
    gain_reduction_db: float
    limited_s: float
    true_peaks: object | None = field(default=None, repr=False, compare=False)


class _LazyPeaks:
    """True peaks (linear) of one signal, oversampled only where asked: exact wherever the bound exceeds ``floor``.

    ``peaks`` [shape=(n_samples,), dtype=float32] starts as the sample peaks; :meth:`exact_above`
    interpolates the points whose candidate bound (:func:`_candidates`) exceeds a level not asked before.
    The result at any point is the same whatever the order of the requests.
    """

    def __init__(self, x: np.ndarray) -> None:
        self.x = x.astype(np.float32, copy=False)
        self.peaks = _abs_max(self.x)
        self.bound = _bound(self.peaks, 0, self.peaks.size)  # float32: see _candidates
        self.floor = math.inf
        self.top = 0.0
        if self.peaks.size:
            self.exact_above(float(self.peaks.max()))  # every point that could exceed the sample peak
            self.top = float(self.peaks.max())

    def exact_above(self, level: float) -> None:
        """Oversample every point whose bound exceeds ``level`` (linear) and that was not yet."""
        if level >= self.floor or self.peaks.size == 0:
            return
        slack = 1.0 - 1e-5  # the float32 bound's rounding
        sel = self.bound > np.float32(level * slack)
        if math.isfinite(self.floor):
            sel &= self.bound <= np.float32(self.floor * slack)
        idx = np.flatnonzero(sel)
        if idx.size:
            self.peaks[idx] = np.maximum(self.peaks[idx], _interpolated(self.x, idx))
        self.floor = level


def _k_weighted_power(x: np.ndarray, sample_rate: int) -> np.ndarray:
    """K-weighted power summed over channels (BS.1770: unit weight for L and R) [shape=(n_samples,)]."""
    return k_weighted_power(x, sample_rate)


def _block_bounds(n: int, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """Sample bounds of BS.1770's 400 ms blocks with 75 % overlap, as pyloudnorm cuts them."""
    return block_bounds(n, sample_rate)


def _gated_loudness(power: np.ndarray, lo: np.ndarray, hi: np.ndarray, sample_rate: int,
                    envelope: np.ndarray | None = None) -> float:
    """Integrated loudness (LUFS) from per-sample K-weighted power, gated as BS.1770-4 eqs. 4-7.

    With ``envelope`` (linear gain [shape=(n_samples,)]) the power is ``power * envelope**2``.  The running
    sum goes a chunk at a time (:func:`~imgext.audio.loudness.cumulative_at`: the same float64 additions
    as one ``cumsum``), so no whole-signal float64 temporaries are made (8 x 600 s: ~850 MB per step).
    """
    n = power.shape[-1]

    def pieces():
        for start in range(0, n, CHUNK_SAMPLES):
            p = np.array(power[start : start + CHUNK_SAMPLES], dtype=np.float64)
            if envelope is not None:
                p *= np.square(envelope[start : start + CHUNK_SAMPLES], dtype=np.float64)
            yield start, p

    points, inverse = np.unique(np.concatenate([lo, hi]), return_inverse=True)
    c = cumulative_at(pieces(), points)
    return gated_loudness((c[inverse[lo.size :]] - c[inverse[: lo.size]]) / (0.4 * sample_rate))


def limit_to_loudness(
    audio: np.ndarray,
    *,
    sample_rate: int,
    loudness_lufs: float,
    measured_lufs: float,
    ceiling_dbtp: float = -1.0,
    max_reduction_db: float = 24.0,
    tolerance_lu: float = 0.05,
    max_iterations: int = 8,
    input_true_peak: float | None = None,
    k_power: np.ndarray | None = None,
    true_peaks: np.ndarray | None = None,
) -> LimitResult:
    """Make-up gain and limiter envelope that bring ``audio`` to ``loudness_lufs`` under ``ceiling_dbtp``.

    Parameters
    ----------
    audio : np.ndarray [shape=(n_channels, n_samples)]
        The summed mix before any master gain.
    sample_rate : int
        In Hz.
    loudness_lufs : float
        Target integrated loudness (BS.1770).
    measured_lufs : float
        Integrated loudness of ``audio`` (finite).
    ceiling_dbtp : float
        True-peak ceiling in dBTP.
    max_reduction_db : float
        The make-up gain stops where the limiter would have to reduce more than
        this (a target out of reach is missed rather than the mix crushed).
    tolerance_lu : float
        Stop when the fast measure is this close to the target.
    max_iterations : int
    input_true_peak : float, optional
        True peak of ``audio`` (linear, :func:`true_peak_dbtp`) when the caller has it already.
    k_power : np.ndarray [shape=(n_samples,)], optional
        K-weighted power of ``audio`` summed over channels, when the caller has it already.
    true_peaks : object, optional
        :attr:`LimitResult.true_peaks` of an earlier call on the same ``audio``.

    Returns
    -------
    LimitResult
        The same input always gives the same result (no randomness).
    """
    x = _as_channels(audio)
    n = x.shape[-1]
    gain_db = loudness_lufs - measured_lufs
    ceiling = 10.0 ** (ceiling_dbtp / 20.0)
    tp0 = true_peaks
    if tp0 is not None:
        input_true_peak = tp0.top
    elif input_true_peak is None:
        sample_peak = float(_abs_max(x).max()) if n else 0.0
        if sample_peak * 10.0 ** (gain_db / 20.0) > ceiling and sample_peak > 0:
            # The limiter will work: its true peaks at unit gain, exact (so far) where they could exceed the sample peak.
            tp0 = _LazyPeaks(x)
            input_true_peak = tp0.top
        else:
            input_true_peak = 10.0 ** (true_peak_dbtp(x) / 20.0) if n else 0.0
    top = float(input_true_peak)
    if top * 10.0 ** (gain_db / 20.0) <= ceiling:
        return LimitResult(float(gain_db), None, 0.0, 0.0)
    power = _k_weighted_power(x, sample_rate) if k_power is None else np.asarray(k_power, dtype=np.float64)
    lo, hi = _block_bounds(n, sample_rate)
    # The gain that puts the loudest peak at the ceiling bounds how much is left to the limiter.
    peak_gain_db = 20.0 * math.log10(ceiling / top)
    if tp0 is None:
        tp0 = _LazyPeaks(x)
    env = None
    best = None  # (error, gain, envelope) closest to the target, never above it by more than the tolerance
    for _ in range(max_iterations):
        gain_db = min(gain_db, peak_gain_db + max_reduction_db)
        g = np.float32(10.0 ** (gain_db / 20.0))
        # Interpolation is linear, so the true peaks at gain g are g times those at unit gain; where a
        # point's bound stays under ceiling / g it needs no gain reduction, exact or not: only the
        # points above are oversampled (once: later steps reuse them).
        tp0.exact_above(ceiling / float(g))
        env = _envelope(x, tp0.peaks, ceiling, sample_rate, DEFAULT_ATTACK_MS, DEFAULT_RELEASE_MS, gain=g)
        loud = _gated_loudness(power, lo, hi, sample_rate, envelope=env) + gain_db
        error = loudness_lufs - loud
        if best is None or abs(error) < abs(best[0]):
            best = (error, gain_db, env)
        if abs(error) <= tolerance_lu or (error > 0 and gain_db >= peak_gain_db + max_reduction_db):
            break
        # dL/dG <= 1 (the limiter takes back part of any gain), so a full step rarely overshoots;
        # past a few steps, step further to speed up the approach.
        gain_db += error * (1.0 if _ < 2 else 1.5)
    _, gain_db, env = best
    reduction = -20.0 * np.log10(np.maximum(env, 1e-12))
    return LimitResult(
        gain_db=float(gain_db),
        envelope=env,
        gain_reduction_db=round(float(reduction.max()), 3),
        limited_s=round(float(np.count_nonzero(reduction > 0.1)) / sample_rate, 4),
        true_peaks=tp0,
    )

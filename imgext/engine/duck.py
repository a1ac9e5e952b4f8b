"""Time-aware unmasking: a per-band sidechain duck (dynamic EQ) on the maskers, driven by the important tracks.

After Zhao & Perez-Cota (2024): masking is detected per band *and frame*, and the filter acts only
where and when a more important track is masked. Static EQ cuts a bed's bands for the whole scene; a
bark, a hoot or a sentence over a bed sounds for a fraction of it, so a duck that follows it buys far
more signal-to-mask ratio per LU of the bed's loudness (measured in ``bench/quality.py``).

Design (:func:`design_ducking`, all in the band domain of :mod:`imgext.masking.model`, at the STFT hop):

1. Each important maskee j (priority ``p^8`` share >= 2 %) has a *need* per core band and frame:
   ``clip(target - SMR_j, 0, max_cut)`` in its core bands (80 % of its loudness) where it is active.
2. Each masker i strictly less important than j (``p_i < p_j - 0.1``) takes that need on the bands
   that cast the threshold: a band contributing half the rest threshold or more takes all of it,
   less in proportion. Three passes, re-measuring the need after each (a shared threshold is
   shared out).
3. Smoothing so nothing pumps: over time a hold from 70 ms before to 185 ms after each need
   (lookahead, as a mastering duck), then a Gaussian of 46 ms (slew <= ~50 dB/s); over frequency
   a third of the cut spills to each neighbour band, so the cut is broad around the maskee's core.
4. Static where constant: the part of a band's cut that is on all the time (its 10th percentile)
   is reported as the static cut; a band whose cut hardly varies (< 1 dB) is made static.
5. Budget: each masker's estimated BS.1770 loss stays within ``max_loudness_loss_lu`` and its RMS cut
   over its own active band-frames within :data:`MAX_DAMAGE_DB`: it first gives up its least efficient
   cells (SMR gained x need per unit of K-weighted power), then all its cuts are scaled down. The response never goes below ``-max_cut_db``: the gains are one
   per band, not a cascade.

Tracks of near-top importance are never ducked (no eligible maskee), so their core SMR cannot fall.
Rendering (:func:`apply_ducking`) is a zero-phase STFT gain (sqrt-Hann, 50 % overlap: unit gain
reconstructs exactly) on the analysis' own frame grid, the band gains interpolated over bins on the
Bark scale.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.fft
import scipy.ndimage

from imgext.errors import ParameterError
from imgext.masking import model
from imgext.masking.analysis import BandEnergies, normalised_importance
from imgext.masking.psychoacoustics import hz_to_bark, power_mean_pool

__all__ = [
    "DEFAULT_DUCK_LOUDNESS_LU",
    "DEFAULT_TARGET_SMR_DB",
    "ELIGIBLE_MARGIN",
    "DuckPlan",
    "apply_ducking",
    "design_ducking",
    "ducked_bands",
]

DEFAULT_TARGET_SMR_DB = 20.0
"""The SMR an important track's core band-frames are ducked towards, dB (the ceiling of the SMR score: the budget goes to the most masked cells first)."""
DEFAULT_DUCK_LOUDNESS_LU = 0.9
"""Estimated BS.1770 loudness a masker may lose to ducking, LU (0.1 LU under the 1 LU rule; measured within 0.05 LU)."""
ELIGIBLE_MARGIN = 0.1
"""A masker is ducked for a maskee only when ``p_masker < p_maskee - ELIGIBLE_MARGIN``."""
LOOKAHEAD_S, HOLD_S, SMOOTH_S = 0.07, 0.185, 0.046
"""The duck starts 70 ms before the need, holds 185 ms after it, and is smoothed by a 46 ms Gaussian."""
MIN_PRIORITY = 0.02
"""Maskees with less than this share of the ``p^8`` priority are not protected."""
_PASSES = 3
_REACH = 3
"""Bands either side whose threshold share is considered when assigning a need to a masker band."""
SPILL = 0.35
"""Share of a band's cut spilled onto each neighbour band (a smooth, broad curve)."""
_NEG_LN10_10 = np.float32(-np.log(10.0) / 10.0)
"""``10 ** (-x / 10) = exp(x * _NEG_LN10_10)`` (exp is about twice as fast as a float power)."""
MAX_DAMAGE_DB = 3.0
"""RMS cut over a ducked track's own active band-frames may not exceed this, dB (spectral damage)."""


@dataclass(frozen=True)
class DuckPlan:
    """Per-band gain over time for every track (0 dB for tracks left alone).

    Attributes
    ----------
    cut_db : np.ndarray [shape=(n_tracks, n_bands, n_frames), dtype=float32], >= 0
        Cut per band and analysis frame, dB (the gain is ``-cut_db``).
    static_db : np.ndarray [shape=(n_tracks, n_bands)], >= 0
        The part of the cut that is on all the time (10th percentile over time), dB.
    hop_s : float
        Seconds per frame (the analysis' STFT hop).
    hop_length : int
        The same in samples.
    band_centres_hz : np.ndarray [shape=(n_bands,)]
    loudness_change_lu : np.ndarray [shape=(n_tracks,)]
        Estimated BS.1770 change of each track (<= 0).
    maskees : np.ndarray [shape=(n_tracks,), dtype=bool]
        The important tracks the duck serves.
    """

    cut_db: np.ndarray
    static_db: np.ndarray
    hop_s: float
    hop_length: int
    band_centres_hz: np.ndarray
    loudness_change_lu: np.ndarray
    maskees: np.ndarray

    @property
    def n_tracks(self) -> int:
        """Number of tracks."""
        return int(self.cut_db.shape[0])

    @property
    def active(self) -> np.ndarray:
        """(n_tracks,) bool: tracks with any cut of at least 0.5 dB."""
        return self.cut_db.reshape(self.n_tracks, -1).max(axis=1, initial=0.0) >= 0.5

    def scaled(self, factor: float) -> DuckPlan:
        """The same plan with every cut scaled by ``factor`` in [0, 1] (the EQ-strength slider)."""
        if not 0.0 <= factor <= 1.0:
            raise ParameterError(f"factor={factor} must lie in [0, 1]")
        f = np.float32(factor)
        return DuckPlan(self.cut_db * f, self.static_db * float(factor), self.hop_s, self.hop_length,
                        self.band_centres_hz, self.loudness_change_lu * float(factor), self.maskees)

    def frequency_response_db(self) -> dict[str, np.ndarray]:
        """Curves to draw: ``static`` (always on) and ``deepest`` (the most the duck takes), (N, B) dB <= 0."""
        return {"static": -self.static_db, "deepest": -self.cut_db.max(axis=2, initial=0.0)}

    def gain_lane_db(self, *, max_points: int = 400) -> tuple[np.ndarray, np.ndarray]:
        """Gain over time of each track's deepest band: ``(time_s [T'], gain_db [N, T'])``, decimated by max."""
        deepest = self.cut_db.max(axis=1, initial=0.0) if self.cut_db.size else np.zeros((self.n_tracks, 0))
        t = deepest.shape[-1]
        step = max(1, -(-t // max_points))
        n_out = -(-t // step)
        pad = n_out * step - t
        lane = np.pad(deepest, ((0, 0), (0, pad))).reshape(self.n_tracks, n_out, step).max(axis=2)
        return (np.arange(n_out) * step * self.hop_s).astype(np.float64), -lane.astype(np.float64)

    def to_dict(self, names: list[str]) -> dict:
        """JSON-ready summary (curves, not the full band-frame array)."""
        curves = self.frequency_response_db()
        time_s, lane = self.gain_lane_db(max_points=200)
        return {
            "band_centres_hz": np.round(self.band_centres_hz, 1).tolist(),
            "tracks": {
                str(name): {
                    "static_db": np.round(curves["static"][k], 2).tolist(),
                    "deepest_db": np.round(curves["deepest"][k], 2).tolist(),
                    "loudness_change_lu": round(float(self.loudness_change_lu[k]), 3),
                    "gain_lane_db": np.round(lane[k], 2).tolist(),
                } for k, name in enumerate(names) if self.active[k]
            },
            "gain_lane_time_s": np.round(time_s, 3).tolist(),
        }


def _eligible(importance: np.ndarray) -> np.ndarray:
    """(N, N) bool: masker i may be ducked for maskee j (strictly less important by the margin)."""
    p = np.asarray(importance, dtype=np.float64)
    return p[:, None] < p[None, :] - ELIGIBLE_MARGIN - 1e-12


def _smooth(cut: np.ndarray, hop_s: float) -> np.ndarray:
    """Hold with lookahead, then a Gaussian over time; :data:`SPILL` of the cut spills to the neighbour bands."""
    ahead = round(LOOKAHEAD_S / hop_s)
    hold = round(HOLD_S / hop_s)
    out = cut.copy()
    t = cut.shape[-1]
    for k in range(1, ahead + 1):  # y[t] = max x[t - hold .. t + ahead]: a few shifted maxima, not a loop over frames
        np.maximum(out[..., : t - k], cut[..., k:], out=out[..., : t - k])
    for k in range(1, hold + 1):
        np.maximum(out[..., k:], cut[..., : t - k], out=out[..., k:])
    out = scipy.ndimage.gaussian_filter1d(out, SMOOTH_S / hop_s, axis=-1, mode="nearest")
    spill = np.float32(SPILL) * out
    wide = out.copy()
    np.maximum(wide[..., 1:, :], spill[..., :-1, :], out=wide[..., 1:, :])
    np.maximum(wide[..., :-1, :], spill[..., 1:, :], out=wide[..., :-1, :])
    return wide


def _loudness_loss(k_energy: np.ndarray, cut: np.ndarray) -> np.ndarray:
    """Estimated BS.1770 loss (LU >= 0) per track from K-weighted band-frame power under ``cut`` dB."""
    total = np.maximum(k_energy.sum(axis=(-2, -1), dtype=np.float64), 1e-300)
    kept = (k_energy * np.exp(cut * _NEG_LN10_10)).sum(axis=(-2, -1), dtype=np.float64)
    return -10.0 * np.log10(np.maximum(kept / total, 1e-300))


def design_ducking(
    bands: BandEnergies,
    *,
    gains_db,
    importance,
    strength: float = 1.0,
    max_cut_db: float = 6.0,
    target_smr_db: float = DEFAULT_TARGET_SMR_DB,
    max_loudness_loss_lu: float = DEFAULT_DUCK_LOUDNESS_LU,
) -> DuckPlan:
    """Design the time-aware duck of every masker (see the module docstring).

    Parameters
    ----------
    bands : BandEnergies
        Unit-gain analysis with its fine frames (:func:`imgext.masking.band_energies`).
    gains_db : np.ndarray [shape=(n_tracks,)]
        Mix gains in dB.
    importance : np.ndarray [shape=(n_tracks,)], in [0, 1]
    strength : float in [0, 1]
        Scales every cut (0: nothing is ducked).
    max_cut_db : float > 0
        Deepest cut in any band at any time, dB.
    target_smr_db : float
        Core SMR the important tracks are ducked towards, dB.
    max_loudness_loss_lu : float > 0
        Estimated BS.1770 loss allowed per ducked track, LU.

    Returns
    -------
    DuckPlan
        Deterministic: no random choice, no iteration count that depends on timing.
    """
    if bands.fine_energy is None:
        raise ParameterError("bands has no fine frames: analyse with imgext.masking.band_energies")
    if not 0.0 <= strength <= 1.0:
        raise ParameterError(f"strength={strength} must lie in [0, 1]")
    if not max_cut_db > 0 or not max_loudness_loss_lu > 0:
        raise ParameterError(f"max_cut_db={max_cut_db} and max_loudness_loss_lu={max_loudness_loss_lu} must be positive")
    n, b, t = bands.fine_energy.shape
    p = np.asarray(importance, dtype=np.float64)
    normalised_importance(p, n)
    g = np.asarray(gains_db, dtype=np.float64)
    if g.shape != (n,) or not np.all(np.isfinite(g)):
        raise ParameterError(f"gains_db must be {n} finite values in dB, got shape {g.shape}")
    pw = p**8
    priority = pw / pw.sum() if pw.sum() > 0 else np.full(n, 1.0 / max(n, 1))
    eligible = _eligible(p)
    maskees = (priority >= MIN_PRIORITY) & eligible.any(axis=0)
    cut = np.zeros((n, b, t), np.float32)
    empty = DuckPlan(cut, np.zeros((n, b)), bands.hop_s, round(bands.hop_s * bands.sample_rate),
                     bands.band_centres_hz, np.zeros(n), maskees)
    if strength == 0.0 or not maskees.any() or t == 0:
        return empty
    lin = np.power(np.float32(10.0), (g / 10.0).astype(np.float32))[:, None, None]
    e = bands.fine_energy * lin
    f = bands.fine_masker_energy * lin
    e_db = model.db(e)
    floor_db = model.db(bands.floor_power.astype(np.float32))
    active = model.band_activity(e_db, floor_db)
    weight = model.maskee_weight(e_db, active, floor_db)
    core = model.core_bands(weight)
    s = model.threshold_matrix(bands.band_centres_hz)  # (B, C)
    cap = np.float32(max_cut_db * strength)
    maskers = np.flatnonzero(eligible[:, maskees].any(axis=1))
    value = np.zeros_like(cut)
    for _ in range(_PASSES):
        fc = f * np.exp(cut * _NEG_LN10_10)
        thr = np.einsum("nbt,bc->nct", fc, s, optimize=True)
        total = thr.sum(axis=0, dtype=np.float64)
        step = np.zeros_like(cut)
        value[:] = 0.0
        for j in np.flatnonzero(maskees):
            rest = np.maximum(total - thr[j], 1e-30).astype(np.float32)  # (C, T)
            need = np.clip(np.float32(target_smr_db) - (e_db[j] - model.db(rest)), 0.0, cap)
            need *= (core[j][:, None] & active[j]).astype(np.float32)
            if not need.any():
                continue
            w_need = (weight[j] * need).astype(np.float32) * np.float32(priority[j])
            w_over_rest = w_need / rest
            m = maskers[eligible[maskers, j]]
            cols = np.flatnonzero(need.any(axis=0))  # only the frames where j needs anything
            need_c, rest_c, fc_c = need[:, cols], rest[:, cols], fc[m][:, :, cols]
            # Share of masker i's band b in the rest threshold at band c = b + d (all maskers i at once);
            # spreading is negligible beyond 3 bands. A band casting half the rest threshold or more takes
            # the full need.
            take = np.zeros(fc_c.shape, np.float32)
            for d in range(-_REACH, _REACH + 1):
                lo, hi = max(0, -d), min(b, b - d)
                share = fc_c[:, lo:hi] * (s[lo:hi, lo + d:hi + d].diagonal()[:, None] / rest_c[lo + d:hi + d])[None]
                np.maximum(take[:, lo:hi], np.minimum(share * np.float32(2.0), 1.0) * need_c[None, lo + d:hi + d],
                           out=take[:, lo:hi])
            step[np.ix_(m, np.arange(b), cols)] = np.maximum(step[np.ix_(m, np.arange(b), cols)], take)
            value[np.ix_(m, np.arange(b), cols)] += fc_c * (s @ w_over_rest[:, cols])[None]  # SMR x need x weight / dB
        cut = np.minimum(cut + step, cap)
    # Loudness budget: each ducked track first gives up its least efficient cells (SMR gained per unit of
    # K-weighted power), then, if smoothing still overshoots, all its cuts are scaled down.
    mean_e = np.maximum(bands.fine_energy.mean(axis=-1, keepdims=True), 1e-30)
    k_energy = (bands.fine_energy / mean_e * bands.loudness_power[:, :, None]).astype(np.float32)
    smooth = np.minimum(_smooth(cut, bands.hop_s), cap)
    own = active.astype(np.float32)
    n_own = np.maximum(own.sum(axis=(-2, -1)), 1.0)

    def fits(k, trial: np.ndarray) -> np.ndarray:
        damage = np.sqrt((own[k] * trial**2).sum(axis=(-2, -1)) / n_own[k])
        return (_loudness_loss(k_energy[k], trial) <= max_loudness_loss_lu) & (damage <= MAX_DAMAGE_DB)

    for i in np.flatnonzero(~fits(np.arange(n), smooth)):
        if not np.any(cut[i] > 0):  # nothing to give up (a silent track's loss is 0/0): no duck at all
            smooth[i] = 0.0
            continue
        ratio = np.where(cut[i] > 0, value[i] / np.maximum(k_energy[i], 1e-30), 0.0)
        levels = np.quantile(ratio[cut[i] > 0], np.linspace(0.0, 1.0, 65))
        lo, hi = 0, len(levels) - 1  # bisection on the share of cells kept (fewer cells: less loss, less damage)

        def trial_at(k, i=i, ratio=ratio, levels=levels):
            return np.minimum(_smooth(cut[i] * (ratio >= levels[k]), bands.hop_s), cap)

        best = trial_at(hi)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            trial = trial_at(mid)
            if fits(i, trial):
                hi, best = mid, trial
            else:
                lo = mid
        smooth[i] = best
    cut = smooth.astype(np.float32)
    static = np.percentile(cut, 10, axis=-1)
    flat = (cut.max(axis=-1) - static) < 1.0
    cut = np.where(flat[..., None], static[..., None], cut).astype(np.float32)
    over = np.flatnonzero(~fits(np.arange(n), cut))
    if len(over):
        lo, hi = np.zeros(len(over)), np.ones(len(over))
        for _ in range(14):
            mid = 0.5 * (lo + hi)
            ok = fits(over, cut[over] * mid[:, None, None].astype(np.float32))
            lo, hi = np.where(ok, mid, lo), np.where(ok, hi, mid)
        cut[over] *= lo[:, None, None].astype(np.float32)
    cut[cut < 0.05] = 0.0
    return DuckPlan(cut.astype(np.float32), np.percentile(cut, 10, axis=-1), bands.hop_s,
                    round(bands.hop_s * bands.sample_rate), bands.band_centres_hz,
                    -_loudness_loss(k_energy, cut), maskees)


def ducked_bands(bands: BandEnergies, plan: DuckPlan) -> BandEnergies:
    """The analysis of the ducked tracks, estimated in the band domain (exact up to the band averaging).

    The fine energies are scaled by the plan's gains and pooled again like :func:`band_energies`.
    """
    if bands.fine_energy is None or plan.cut_db.shape != bands.fine_energy.shape:
        raise ParameterError("plan and bands do not match (design the plan on these bands)")
    from dataclasses import replace

    g = np.power(np.float32(10.0), -plan.cut_db / np.float32(10.0))
    e, fm = bands.fine_energy * g, bands.fine_masker_energy * g
    factor = max(1, round(bands.frame_s / bands.hop_s))
    return replace(bands, energy=power_mean_pool(e, factor), masker_energy=power_mean_pool(fm, factor),
                   fine_energy=e, fine_masker_energy=fm)


def _bin_interpolation(n_fft: int, sample_rate: int, centres_hz: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each rfft bin: lower band index, upper band index and the weight of the upper one (linear in Bark)."""
    z_bins = hz_to_bark(np.fft.rfftfreq(n_fft, 1.0 / sample_rate))
    z_c = hz_to_bark(centres_hz)
    hi = np.clip(np.searchsorted(z_c, z_bins), 1, len(z_c) - 1)
    lo = hi - 1
    w = np.clip((z_bins - z_c[lo]) / (z_c[hi] - z_c[lo]), 0.0, 1.0)
    return lo, hi, w.astype(np.float32)


def apply_ducking(tracks: np.ndarray, plan: DuckPlan, sample_rate: int) -> np.ndarray:
    """Render the duck: a zero-phase STFT gain per bin and frame.

    Parameters
    ----------
    tracks : np.ndarray [shape=(n_tracks, n_samples)]
        The tracks the plan was designed on (unit gain).
    plan : DuckPlan
    sample_rate : int
        In Hz.

    Returns
    -------
    np.ndarray [shape=(n_tracks, n_samples), dtype=float32]
        Tracks without cuts are copied unchanged; with zero cut the output equals the input
        to float32 rounding (sqrt-Hann analysis and synthesis at 50 % overlap sum to one).
    """
    x = np.asarray(tracks, dtype=np.float32)
    if x.ndim != 2 or x.shape[0] != plan.n_tracks:
        raise ParameterError(f"need {plan.n_tracks} tracks of shape (n_tracks, n_samples), got {x.shape}")
    hop = plan.hop_length
    n_fft = 2 * hop
    n = x.shape[1]
    n_frames = plan.cut_db.shape[2]
    active = plan.active
    out = np.empty_like(x)
    out[~active] = x[~active]  # tracks without cuts: copied unchanged (the rest is written once, below)
    lo, hi, w = _bin_interpolation(n_fft, sample_rate, plan.band_centres_hz)
    w_lo = (np.float32(-np.log(10.0) / 20.0) * (1.0 - w)).astype(np.float32)  # dB -> amplitude exponent
    w_hi = (np.float32(-np.log(10.0) / 20.0) * w).astype(np.float32)
    window = np.sqrt(np.hanning(n_fft + 1)[:-1]).astype(np.float32)  # periodic Hann, square root
    padded = np.zeros((n_frames + 2) * hop, np.float32)
    for i in np.flatnonzero(active):
        # One frame past the analysis' last, so that the final partial hop also gets both window halves.
        padded[hop: hop + n] = x[i]  # n_frames = n // hop + 1 analysis frames; frame t is centred at t * hop
        frame_max = plan.cut_db[i].max(axis=0)  # (T,); frame T (past the end) repeats frame T - 1
        # Only frames with a cut are transformed: the output is the input plus the overlap-add of
        # (processed - unprocessed) frames, which is zero wherever nothing is cut.
        busy = np.flatnonzero(np.append(frame_max, frame_max[-1:]) > 1e-3)
        if not busy.size:
            out[i] = x[i]
            continue
        # Only bins between band centres with a cut get a gain other than 1: elsewhere
        # exp(0) - 1 == 0 exactly, so those bins of the difference are zero and left so.
        cut_bands = plan.cut_db[i].max(axis=1) > 0.0
        bins = np.flatnonzero(cut_bands[lo] | cut_bands[hi])
        if not bins.size:
            out[i] = x[i]
            continue
        b0, b1 = int(bins[0]), int(bins[-1]) + 1
        blocks = padded.reshape(-1, hop)
        frames = np.empty((busy.size, n_fft), np.float32)  # (n_busy, n_fft), windowed
        np.multiply(blocks[busy], window[:hop], out=frames[:, :hop])
        np.multiply(blocks[busy + 1], window[hop:], out=frames[:, hop:])
        spec = scipy.fft.rfft(frames, axis=1)
        cut_t = plan.cut_db[i][:, np.minimum(busy, n_frames - 1)].T  # (n_busy, B)
        gain = cut_t[:, lo[b0:b1]] * w_lo[b0:b1]  # interpolated linearly in Bark between band centres (no BLAS: thread-free)
        gain += cut_t[:, hi[b0:b1]] * w_hi[b0:b1]
        np.exp(gain, out=gain)
        gain -= np.float32(1.0)
        spec[:, :b0] = 0.0
        spec[:, b1:] = 0.0
        spec[:, b0:b1] *= gain
        diff = scipy.fft.irfft(spec, n_fft, axis=1).astype(np.float32, copy=False)
        diff *= window
        ola = np.zeros((n_frames + 2, hop), np.float32)
        ola[busy] = diff[:, :hop]  # indices are unique within each line, so fancy assignment and += are exact
        ola[busy + 1] += diff[:, hop:]
        np.add(x[i], ola.reshape(-1)[hop: hop + n], out=out[i])
    return out

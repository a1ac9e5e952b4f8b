"""Time-aware unmasking: a per-band sidechain duck (dynamic EQ) on the maskers, driven by the important tracks.

After Zhao & Perez-Cota (2024): masking is detected per band *and frame*, and the filter acts only
where and when a more important track is masked. Static EQ cuts a bed's bands for the whole scene; a
bark, a hoot or a sentence over a bed sounds for a fraction of it, so a duck that follows it buys far
more signal-to-mask ratio per LU of the bed's loudness (measured in ``bench/quality.py``).

Design (:func:`design_ducking`, all in the band domain of :mod:`imgext.masking.model`, at the STFT hop):

1. *Value* of a cut (:func:`_cut_value`): for each important maskee j (priority ``p^8`` share >= 2 %)
   and each masker i strictly less important (``p_i < p_j - 0.1``), the core SMR (dB) j gains per dB
   cut in each of i's band-frames: i's share of j's rest threshold in j's active core cells whose
   SMR is still under the target, weighted by j's loudness. Cuts go where (bands) and when
   (frames) the maskee is masked, to each masker in proportion to how much it masks.
2. Held over time, 50 ms before to 130 ms after (lookahead and release, as a broadcast ducker), and
   a third spilled to each neighbour band.
3. *Spending the budgets* (:func:`_spend_budget`), one masker at a time: the cut is
   ``clip(lam (V - nu K), 0, max_cut)``, V the held value, K the cell's K-weighted power. A cut in
   proportion to its value is the optimum of a linear gain under the RMS-damage (quadratic) cost:
   broad, shallow cuts rather than a few deep ones; the price ``nu`` spares the masker's loud cells
   when loudness (a linear cost) is what binds. For a few prices, ``lam`` is the largest that fits
   (bisection), and the one the maskees' core SMR (this model, each masker seeing the cuts already
   chosen) rates best is kept. Smoothed by a 46 ms Gaussian so nothing pumps (<= ~1.5 dB a frame).
4. Static where constant: a band whose cut hardly varies (< 1 dB) is made static at its 10th
   percentile, reported as the static cut.
5. Budgets per ducked track: estimated BS.1770 loss (gated like the meter, on the cut the render
   really applies, :func:`_render_map`) within ``max_loudness_loss_lu``; RMS cut over its own active
   band-frames within :data:`MAX_DAMAGE_DB`. Where the cuts would take more loudness than that,
   the track gets it back as *makeup*: a broadband gain of up to ``max_makeup_db`` in the frames
   where no maskee needs anything (fading in and out well away from every duck), the least that
   brings it within the budget; the makeup counts in the damage. Otherwise no gain is ever added.
   The response never goes below ``-max_cut_db``: one gain per band, not a cascade.

Tracks of near-top importance are never ducked (no eligible maskee), so their core SMR cannot fall.
Rendering (:func:`apply_ducking`) is a zero-phase STFT gain (sqrt-Hann, 50 % overlap: unit gain
reconstructs exactly) on the analysis' own frame grid, the band gains interpolated over bins on the
Bark scale.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np
import scipy.fft
import scipy.ndimage

from imgext.errors import ParameterError
from imgext.masking import model
from imgext.masking.analysis import BandEnergies, normalised_importance
from imgext.masking.psychoacoustics import hz_to_bark, power_mean_pool

__all__ = [
    "DEFAULT_DUCK_LOUDNESS_LU",
    "DEFAULT_MAKEUP_DB",
    "DEFAULT_TARGET_SMR_DB",
    "ELIGIBLE_MARGIN",
    "DuckPlan",
    "SpectrumCache",
    "apply_ducking",
    "blend",
    "blended_cut_db",
    "design_ducking",
    "ducked_bands",
]

DEFAULT_TARGET_SMR_DB = 20.0
"""Core cells of a maskee at or above this SMR gain nothing from a cut, dB (the ceiling of the SMR score)."""
DEFAULT_DUCK_LOUDNESS_LU = 0.9
"""Estimated BS.1770 loudness a masker may lose to ducking, after makeup, LU (0.1 LU under the 1 LU rule;
the estimate is within 0.07 LU of the meter on the quality bench's scenes)."""
ELIGIBLE_MARGIN = 0.1
"""A masker is ducked for a maskee only when ``p_masker < p_maskee - ELIGIBLE_MARGIN``."""
LOOKAHEAD_S, HOLD_S, SMOOTH_S = 0.05, 0.13, 0.046
"""The duck starts 50 ms before the need, holds 130 ms after it (release), and is smoothed by a 46 ms Gaussian."""
MIN_PRIORITY = 0.02
"""Maskees with less than this share of the ``p^8`` priority are not protected."""
DEFAULT_MAKEUP_DB = 3.0
"""Most makeup gain a ducked track gets where no maskee is active, dB (only when its loudness budget needs it)."""
_PRICE_QUANTILES = (0.75, 0.95)
"""Loudness prices tried per masker: quantiles of its held value per unit of power (and no price)."""
_BISECTION_STEPS = 8
"""Bisection steps on the scale ``lam`` of each price's cut (the range spans the value's dynamic range)."""
SPILL = 0.35
"""Share of a band's cut spilled onto each neighbour band (a smooth, broad curve)."""
_NEG_LN10_10 = np.float32(-np.log(10.0) / 10.0)
"""``10 ** (-x / 10) = exp(x * _NEG_LN10_10)`` (exp is about twice as fast as a float power)."""
MAX_DAMAGE_DB = 3.0
"""RMS cut over a ducked track's own active band-frames may not exceed this, dB (spectral damage)."""


def blended_cut_db(cut_db, strength: float) -> np.ndarray:
    """The cut in dB of a duck at ``strength``: the gain ``1 + strength * (10 ** (-cut_db / 20) - 1)``.

    The EQ-strength slider blends the full-strength duck with the dry track (a wet/dry mix of a
    zero-phase filter: no phase, no comb), so the rendered track is ``dry + strength * (ducked - dry)``,
    linear in the strength. In dB this is at most ``strength * cut_db`` (the log is concave), equal at 0 and 1.

    Parameters
    ----------
    cut_db : array-like
        Full-strength cuts, dB (negative: makeup gain).
    strength : float in [0, 1]

    Returns
    -------
    np.ndarray [same shape, dtype=float32]
    """
    c = np.asarray(cut_db, dtype=np.float32)
    s = np.float32(strength)
    if s == 1.0:
        return c.copy()
    return (np.float32(-20.0) * np.log10(np.float32(1.0) + s * (np.power(np.float32(10.0), -c / np.float32(20.0))
                                                                 - np.float32(1.0)))).astype(np.float32)


@dataclass(frozen=True)
class DuckPlan:
    """Per-band gain over time for every track (0 dB for tracks left alone).

    Attributes
    ----------
    cut_db : np.ndarray [shape=(n_tracks, n_bands, n_frames), dtype=float32], <= max cut
        Cut per band and analysis frame, dB (the gain is ``-cut_db``); negative where a track gets
        makeup gain back (only where no maskee needs anything, see the module docstring).  For a
        plan at partial strength (:meth:`scaled`), the cut its blend makes (:func:`blended_cut_db`).
    static_db : np.ndarray [shape=(n_tracks, n_bands)], >= 0
        The part of the cut that is on all the time (10th percentile over time, makeup left out), dB.
    hop_s : float
        Seconds per frame (the analysis' STFT hop).
    hop_length : int
        The same in samples.
    band_centres_hz : np.ndarray [shape=(n_bands,)]
    loudness_change_lu : np.ndarray [shape=(n_tracks,)]
        Estimated BS.1770 change of each track (<= 0); at partial strength the full plan's times the
        strength (a bound: the blend cuts less than that in dB).
    maskees : np.ndarray [shape=(n_tracks,), dtype=bool]
        The important tracks the duck serves.
    strength : float in [0, 1]
        The EQ strength: the rendered track is ``dry + strength * (full duck - dry)``.
    full : DuckPlan or None
        The full-strength plan this one blends (None: this plan is at full strength).
    """

    cut_db: np.ndarray
    static_db: np.ndarray
    hop_s: float
    hop_length: int
    band_centres_hz: np.ndarray
    loudness_change_lu: np.ndarray
    maskees: np.ndarray
    strength: float = 1.0
    full: DuckPlan | None = field(default=None, repr=False, compare=False)

    @property
    def n_tracks(self) -> int:
        """Number of tracks."""
        return int(self.cut_db.shape[0])

    @property
    def at_full_strength(self) -> DuckPlan:
        """The full-strength plan (this one, or the one :meth:`scaled` blends)."""
        return self if self.full is None else self.full

    @property
    def active(self) -> np.ndarray:
        """(n_tracks,) bool: tracks the full plan cuts (or gives makeup) by at least 0.5 dB; none at strength 0.

        At any strength above 0 the same tracks are processed (the blend of their full duck).
        """
        if self.strength == 0.0:
            return np.zeros(self.n_tracks, dtype=bool)
        full = self.at_full_strength.cut_db
        return np.abs(full).reshape(self.n_tracks, -1).max(axis=1, initial=0.0) >= 0.5

    def scaled(self, factor: float) -> DuckPlan:
        """The plan at ``factor`` in [0, 1] times this one's strength (the EQ-strength slider).

        The track is blended with its full duck (:func:`blended_cut_db`): ``dry + s * (ducked - dry)``.
        """
        if not 0.0 <= factor <= 1.0:
            raise ParameterError(f"factor={factor} must lie in [0, 1]")
        full = self.at_full_strength
        s = float(self.strength) * float(factor)
        return DuckPlan(blended_cut_db(full.cut_db, s), blended_cut_db(full.static_db, s), self.hop_s,
                        self.hop_length, self.band_centres_hz, full.loudness_change_lu * s, self.maskees,
                        strength=s, full=full if full.strength == 1.0 else full.full)

    def row(self, k: int) -> DuckPlan:
        """The plan of track ``k`` alone (one track, the same strength): it renders that track's samples."""
        full = None if self.full is None else self.full.row(k)
        return DuckPlan(self.cut_db[k: k + 1], self.static_db[k: k + 1], self.hop_s, self.hop_length,
                        self.band_centres_hz, self.loudness_change_lu[k: k + 1], self.maskees[k: k + 1],
                        strength=self.strength, full=full)

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


def _gated_lufs(frame_power: np.ndarray, hop_s: float) -> np.ndarray:
    """BS.1770 integrated loudness (LUFS, up to a constant) of K-weighted frame powers (..., T), with its gates.

    400 ms blocks every 100 ms (rounded to whole frames), the -70 LUFS absolute gate and the
    relative gate 10 LU under the loudness of the blocks that pass it, as the meter does: a cut that
    falls where the track is quiet changes the gated loudness less than its share of the energy.
    """
    x = np.asarray(frame_power, dtype=np.float64)
    t = x.shape[-1]
    size = max(1, min(t, round(0.4 / hop_s)))
    step = max(1, round(0.1 / hop_s))
    c = np.zeros(x.shape[:-1] + (t + 1,))
    np.cumsum(x, axis=-1, out=c[..., 1:])
    z = (c[..., size: t + 1: step] - c[..., 0: t - size + 1: step]) / size  # blocks starting every step frames
    gated = z > 10.0 ** ((-70.0 + 0.691) / 10.0)
    mean_abs = (z * gated).sum(axis=-1) / np.maximum(gated.sum(axis=-1), 1)
    keep = gated & (z > mean_abs[..., None] * 0.1)
    mean = (z * keep).sum(axis=-1) / np.maximum(keep.sum(axis=-1), 1)
    return -0.691 + 10.0 * np.log10(np.maximum(mean, 1e-300))


def _spread(x: np.ndarray, s_t: np.ndarray) -> np.ndarray:
    """``einsum("...bt,bc->...ct", x, s)`` as a matrix product (``s_t = s.T``, C-contiguous; float32 BLAS, one thread)."""
    return np.matmul(s_t, x)


def _kept_power(k_energy: np.ndarray, cut: np.ndarray) -> np.ndarray:
    """(..., T) float64: the K-weighted power each frame keeps under ``cut`` dB, summed over the bands."""
    kept = np.multiply(cut, _NEG_LN10_10)  # (one temporary, worked in place)
    np.exp(kept, out=kept)
    np.multiply(kept, k_energy, out=kept)
    return kept.sum(axis=-2, dtype=np.float64)


def _loudness_loss(k_energy: np.ndarray, cut: np.ndarray, hop_s: float, before=None, *, kept=None) -> np.ndarray:
    """Estimated BS.1770 loss (LU >= 0) per track from K-weighted band-frame power under ``cut`` dB (gated).

    ``before``: the uncut tracks' :func:`_gated_lufs`, when the caller has it; ``kept``: :func:`_kept_power`
    of ``cut``, when the caller has it.
    """
    if before is None:
        before = _gated_lufs(k_energy.sum(axis=-2, dtype=np.float64), hop_s)
    after = _gated_lufs(_kept_power(k_energy, cut) if kept is None else kept, hop_s)
    return np.maximum(before - after, 0.0)


def _cut_value(e_db, f, cut, s, core, active, weight, priority, eligible, maskees, maskers, cap,
               target_db: float = DEFAULT_TARGET_SMR_DB) -> np.ndarray:
    """(N, B, T) marginal value of a cut: priority-weighted core SMR (dB) gained per dB cut in each masker cell.

    For maskee j, a dB cut of masker i's band b lowers j's rest threshold at band c by the share
    ``F_i[b] S[b, c] / R_j[c]`` dB; that counts with j's loudness weight in its active core cells whose
    SMR is under ``target_db`` (a cell above it gains nothing) and not hopelessly masked, normalised
    by j's core weight so that the value is in dB of j's core SMR.
    """
    n, b, t = f.shape
    fc = f * np.exp(cut * _NEG_LN10_10)
    thr = _spread(fc, np.ascontiguousarray(s.T))
    total = thr.sum(axis=0, dtype=np.float64)
    value = np.zeros((n, b, t), np.float32)
    lo_db = model.SMR_RANGE_DB[0]
    for j in np.flatnonzero(maskees):
        rest = np.maximum(total - thr[j], 1e-30).astype(np.float32)  # (C, T)
        smr = e_db[j] - model.db(rest)
        counted = core[j][:, None] & active[j]
        w = weight[j] * counted
        den = float(w.sum(dtype=np.float64))
        if den <= 0:
            continue
        live = (smr < target_db) & (smr > lo_db - cap)
        g = (w * live / rest).astype(np.float32) * np.float32(priority[j] / den)
        cols = np.flatnonzero(g.any(axis=0))
        if not cols.size:
            continue
        m = maskers[eligible[maskers, j]]
        value[np.ix_(m, np.arange(b), cols)] += fc[m][:, :, cols] * (s @ g[:, cols])[None]
    return value


def _render_map(bands: BandEnergies, hop_length: int) -> np.ndarray:
    """(N, B, B): the cut each band's energy really gets from :func:`apply_ducking`, as a map of the band cuts.

    The render interpolates the band gains over bins (linear in Bark between band centres), so a
    band's bins also take part of its neighbours' cuts. Row b holds, for each band c, the K-weighted
    power share of band b's bins times their interpolation weight on c (the cut averaged in dB over
    the band's power): ``effective = M @ cut``. Identity when the analysis has no mean spectrum.
    """
    n, b = bands.loudness_power.shape
    n_fft = 2 * hop_length
    eye = np.broadcast_to(np.eye(b, dtype=np.float32), (n, b, b)).copy()
    spectrum = bands.loudness_spectrum
    if spectrum is None or spectrum.shape[-1] != n_fft // 2 + 1:
        return eye
    freqs = np.fft.rfftfreq(n_fft, 1.0 / bands.sample_rate)
    lo, hi, w = _bin_interpolation(n_fft, bands.sample_rate, bands.band_centres_hz)
    band = np.searchsorted(bands.band_edges_hz, freqs, side="right") - 1
    ok = (freqs > 0) & (band >= 0) & (band < b)
    band, lo, hi, w, power = band[ok], lo[ok], hi[ok], w[ok], np.asarray(spectrum, np.float64)[:, ok]
    out = np.zeros((n, b, b))
    rows = np.arange(n)[:, None]
    np.add.at(out, (rows, band[None], lo[None]), power * (1.0 - w))
    np.add.at(out, (rows, band[None], hi[None]), power * w)
    total = out.sum(axis=-1, keepdims=True)
    return np.where(total > 0, out / np.maximum(total, 1e-300), eye).astype(np.float32)


def _free_frames(value: np.ndarray, hop_s: float) -> np.ndarray:
    """(T,) in [0, 1]: where a masker may get makeup gain, 1 far from any frame whose cut has value.

    The frames with no value at all (after the hold), shrunk by three smoothing widths each side and
    smoothed, so that the makeup fades in and out away from every duck.
    """
    sigma = SMOOTH_S / hop_s
    reach = int(np.ceil(3.0 * sigma))
    free = ~(_hold(value, hop_s) > 0).any(axis=0)
    free = scipy.ndimage.minimum_filter1d(free.astype(np.float32), 2 * reach + 1, mode="nearest")
    return np.clip(scipy.ndimage.gaussian_filter1d(free, sigma, mode="nearest"), 0.0, 1.0).astype(np.float32)


def _hold(x: np.ndarray, hop_s: float) -> np.ndarray:
    """Max over ``[t - HOLD_S, t + LOOKAHEAD_S]`` along the last axis, and :data:`SPILL` onto neighbour bands."""
    ahead = round(LOOKAHEAD_S / hop_s)
    hold = round(HOLD_S / hop_s)
    out = x.copy()
    t = x.shape[-1]
    for k in range(1, ahead + 1):  # a few shifted maxima, not a loop over frames
        np.maximum(out[..., : t - k], x[..., k:], out=out[..., : t - k])
    for k in range(1, hold + 1):
        np.maximum(out[..., k:], x[..., : t - k], out=out[..., k:])
    spill = np.float32(SPILL) * out
    wide = out.copy()
    np.maximum(wide[..., 1:, :], spill[..., :-1, :], out=wide[..., 1:, :])
    np.maximum(wide[..., :-1, :], spill[..., 1:, :], out=wide[..., :-1, :])
    return wide


def _spend_budget(value: np.ndarray, k_energy: np.ndarray, fits, score, cap: float, hop_s: float) -> np.ndarray:
    """One masker's cut (B, T), spending its loudness and damage budgets where the cut pays most.

    The cut is ``clip(lam (V - nu K), 0, cap)``: V is the held value (:func:`_cut_value`, held over
    the lookahead and release), K the cell's K-weighted power. This is the optimum of a linear gain
    under a quadratic cost (RMS damage: a cut in proportion to its value, broad and shallow) plus a
    linear one (loudness: a price per unit of power, so loud cells of the masker that buy little are
    spared). For each price ``nu`` on a short grid, ``lam`` is the largest that fits both budgets
    (bisection, the prices' bisections side by side: ``fits`` takes a stack of trial cuts (P, B, T) and
    answers for each); the one that ``score`` (the maskees' core SMR) rates best is kept. Smoothed over time.
    """
    held = _hold(value, hop_s)
    if not np.any(held > 0):
        return np.zeros_like(value)
    k = np.maximum(k_energy, 1e-30)
    ratio = held / k
    prices = np.concatenate([[0.0], np.quantile(ratio[held > 0], _PRICE_QUANTILES)])
    best = np.zeros_like(value)
    best_gain = score(best)
    shapes, lo, hi = [], [], []
    for nu in prices:
        x = held - np.float32(nu) * k
        top = float(x.max())
        if top <= 0:
            continue
        pos = x[x > top * 1e-6]
        low = float(np.quantile(pos, 0.01))
        if not cap / 1e30 < low:  # values near the float floor (a near-silent masker): no scale to search for
            continue
        shapes.append(np.maximum(x, 0.0))
        lo.append(np.log(cap / top) - np.log(4.0))
        hi.append(np.log(cap / low) + np.log(4.0))
    if not shapes:
        return best
    shape = np.stack(shapes)  # (P, B, T)
    lo, hi = np.array(lo), np.array(hi)
    found: list = [None] * len(shapes)
    for _ in range(_BISECTION_STEPS):
        mid = 0.5 * (lo + hi)
        trial = np.minimum(shape * np.exp(mid).astype(np.float32)[:, None, None], np.float32(cap))
        ok = np.asarray(fits(trial), dtype=bool)
        for q in np.flatnonzero(ok):
            found[q] = trial[q]
        lo, hi = np.where(ok, mid, lo), np.where(ok, hi, mid)
    for cand in found:  # in the order of the prices: the first of equal scores is kept
        if cand is None:
            continue
        cand = np.minimum(scipy.ndimage.gaussian_filter1d(cand, SMOOTH_S / hop_s, axis=-1, mode="nearest"), cap)
        gain = score(cand)
        if gain > best_gain:
            best, best_gain = cand, gain
    return best


def design_ducking(
    bands: BandEnergies,
    *,
    gains_db,
    importance,
    strength: float = 1.0,
    max_cut_db: float = 6.0,
    target_smr_db: float = DEFAULT_TARGET_SMR_DB,
    max_loudness_loss_lu: float = DEFAULT_DUCK_LOUDNESS_LU,
    max_makeup_db: float = DEFAULT_MAKEUP_DB,
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
        Core SMR the important tracks are ducked towards, dB: cells above it gain nothing.
    max_loudness_loss_lu : float > 0
        Estimated BS.1770 loss allowed per ducked track, LU (after makeup).
    max_makeup_db : float >= 0
        Broadband gain a ducked track may get back where no maskee needs anything, dB, used only when
        its cuts would otherwise take more than ``max_loudness_loss_lu`` (0: no makeup).

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
    if not max_makeup_db >= 0:
        raise ParameterError(f"max_makeup_db={max_makeup_db} must be >= 0")
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
    mean_e = np.maximum(bands.fine_energy.mean(axis=-1, keepdims=True), 1e-30)
    k_energy = (bands.fine_energy / mean_e * bands.loudness_power[:, :, None] * lin).astype(np.float32)
    lufs = _gated_lufs(k_energy.sum(axis=-2, dtype=np.float64), bands.hop_s)
    own = active.astype(np.float32)
    n_own = np.maximum(own.sum(axis=(-2, -1)), 1.0)

    def fits_with_makeup(i, trials: np.ndarray, free: np.ndarray) -> np.ndarray:
        """(P,) bool: whether each of masker i's ``trials`` (P, B, T) fits, with makeup gain on its free frames.

        ``free``: (T,) in [0, 1], where makeup may go (:func:`_free_frames`).
        """
        powers = _kept_power(k_energy[i], trials)  # (P, T): the loss and the makeup both read it
        losses = _loudness_loss(k_energy[i], trials, bands.hop_s, lufs[i], kept=powers)
        out = np.zeros(len(trials), dtype=bool)
        for q, trial in enumerate(trials):
            loss = float(losses[q])
            if loss > max_loudness_loss_lu:
                kept = powers[q]
                on_free = float((kept * free).sum())
                if on_free <= 0:
                    continue
                # the (ungated) makeup that restores the lost energy on the free frames alone
                factor = 1.0 + (10.0 ** ((loss - max_loudness_loss_lu) / 10.0) - 1.0) * float(kept.sum()) / on_free
                up = 10.0 * np.log10(factor)
                if up > max_makeup_db:
                    continue
                trial = trial - np.float32(up) * free
            damage = np.sqrt(float((own[i] * trial**2).sum(dtype=np.float64)) / n_own[i])
            out[q] = damage <= MAX_DAMAGE_DB
        return out

    s_t = np.ascontiguousarray(s.T)
    thr = _spread(f, s_t)
    total = thr.sum(axis=0, dtype=np.float64)
    counted = core[:, :, None] & active
    w_core = weight * counted
    den = np.maximum(w_core.sum(axis=(-2, -1), dtype=np.float64), 1e-300)
    lo_db, hi_db = model.SMR_RANGE_DB[0], min(float(target_smr_db), model.SMR_RANGE_DB[1])

    served = {int(i): np.flatnonzero(maskees & eligible[i]) for i in maskers}
    frames = {int(i): np.flatnonzero(w_core[served[int(i)]].any(axis=(0, 1))) for i in maskers}

    def scorer(i):
        """Priority-weighted core SMR of the maskees masker i serves, as a function of i's cut ``trial``.

        Only the frames where one of them is active in its core count (elsewhere the weight is 0). What
        does not depend on the trial (the other maskers' thresholds, the maskees' levels and weights on
        those frames) is taken once per masker; the maskees are scored side by side.
        """
        cols, js = frames[int(i)], served[int(i)]
        f_i = f[i][:, cols]
        rest_of = total[:, cols] - thr[i][:, cols]  # (C, n): everyone else's threshold on those frames
        thr_js = thr[js][:, :, cols]  # (J, C, n)
        e_js, w_js = e_db[js][:, :, cols], w_core[js][:, :, cols]
        weights = [(priority[j], den[j]) for j in js]

        def score(trial):
            thr_i = _spread(f_i * np.exp(trial[:, cols] * _NEG_LN10_10), s_t)
            rest = np.maximum((rest_of + thr_i)[None] - thr_js, 1e-30).astype(np.float32)
            smr = np.clip(e_js - model.db(rest), lo_db, hi_db)
            cells = w_js * smr
            out = 0.0
            for q, (pj, dj) in enumerate(weights):
                out += pj * float(cells[q].sum(dtype=np.float64)) / dj
            return out

        return score

    smooth = np.zeros_like(cut)
    free = np.zeros((n, t), np.float32)
    value = _cut_value(e_db, f, smooth, s, core, active, weight, priority, eligible, maskees, maskers, cap,
                       target_smr_db)
    for i in maskers:  # one masker at a time, each scored with the cuts already chosen (coordinate ascent)
        free[i] = _free_frames(value[i], bands.hop_s) if max_makeup_db > 0 else 0.0
        smooth[i] = _spend_budget(value[i], k_energy[i], lambda trials, i=i: fits_with_makeup(i, trials, free[i]),
                                  scorer(i), cap, bands.hop_s)
        new = _spread(f[i] * np.exp(smooth[i] * _NEG_LN10_10), s_t)
        total = total - thr[i] + new
        thr[i] = new
    cut = smooth
    static = np.percentile(cut, 10, axis=-1)
    flat = (cut.max(axis=-1) - static) < 1.0
    cut = np.where(flat[..., None], static[..., None], cut).astype(np.float32)
    # Makeup: a masker whose cuts take more loudness than its budget gets it back, broadband, in the
    # frames where no maskee needs anything (the least makeup that brings it within the budget).
    # From here on the loudness is estimated on the cut the render really applies (``_render_map``).
    render = _render_map(bands, round(bands.hop_s * bands.sample_rate))

    def rendered_loss(k, trial):
        return _loudness_loss(k_energy[k], np.matmul(render[k], trial), bands.hop_s, lufs[k])

    def fits_rendered(k, trial):
        damage = np.sqrt((own[k] * trial**2).sum(axis=(-2, -1)) / n_own[k])
        return (rendered_loss(k, trial) <= max_loudness_loss_lu + 1e-6) & (damage <= MAX_DAMAGE_DB)

    short = np.flatnonzero(rendered_loss(np.arange(n), cut) > max_loudness_loss_lu)
    if len(short) and max_makeup_db > 0:
        lo, hi = np.zeros(len(short)), np.full(len(short), float(max_makeup_db))
        for _ in range(12):
            mid = 0.5 * (lo + hi)
            trial = cut[short] - (mid[:, None] * free[short])[:, None, :].astype(np.float32)
            ok = rendered_loss(short, trial) <= max_loudness_loss_lu
            lo, hi = np.where(ok, lo, mid), np.where(ok, mid, hi)
        cut[short] -= (hi[:, None] * free[short])[:, None, :].astype(np.float32)
    over = np.flatnonzero(~fits_rendered(np.arange(n), cut))
    if len(over):
        lo, hi = np.zeros(len(over)), np.ones(len(over))
        for _ in range(14):
            mid = 0.5 * (lo + hi)
            ok = fits_rendered(over, cut[over] * mid[:, None, None].astype(np.float32))
            lo, hi = np.where(ok, mid, lo), np.where(ok, hi, mid)
        cut[over] *= lo[:, None, None].astype(np.float32)
    cut[np.abs(cut) < 0.05] = 0.0
    return DuckPlan(cut.astype(np.float32), np.maximum(np.percentile(cut, 10, axis=-1), 0.0), bands.hop_s,
                    round(bands.hop_s * bands.sample_rate), bands.band_centres_hz,
                    -rendered_loss(np.arange(n), cut), maskees)


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


class SpectrumCache:
    """The windowed spectra :func:`apply_ducking` takes of one set of tracks, kept for its next render.

    A slider move re-renders the duck of the same tracks with new gains: with a cache the
    forward STFT is taken once per track (every frame, only the bins next to the bands it
    cuts), and a re-render only multiplies the new gains and inverts the frames with a cut.
    Bounded: past ``max_bytes`` a track's spectrum is not kept (rendered as without a cache).
    Use one cache per set of tracks (the :class:`~imgext.mix.mixer.Mixer` of a set owns one, and hands it to
    the next Mixer of the same tracks); safe between threads.

    Parameters
    ----------
    max_bytes : int
        Bound on the spectra held (complex64: 8 bytes per frame and bin).
    """

    def __init__(self, *, max_bytes: int = 96 << 20) -> None:
        self.max_bytes = int(max_bytes)
        self._spectra: dict = {}  # track index -> (tracks array, first bin, spectrum [shape=(T + 1, bins)])
        self._lock = threading.Lock()  # guards _spectra: Mixers of the same tracks share one cache
        self.transforms = 0
        """How many tracks' spectra were computed (not found)."""

    @property
    def nbytes(self) -> int:
        """Bytes of the spectra held."""
        with self._lock:
            return sum(v[2].nbytes for v in self._spectra.values())

    def bins(self, x: np.ndarray, i: int, b0: int, b1: int, hop: int, n_frames: int, window: np.ndarray):
        """Spectrum of the ``n_frames + 1`` frames of track ``i`` of ``x``, bins ``b0:b1`` (or None when it would not fit).

        Frame ``t`` spans ``x[i, (t - 1) hop : (t + 1) hop]`` (zeros outside the track), windowed by ``window``.
        """
        with self._lock:
            hit = self._spectra.get(i)
            if hit is not None and hit[0] is x and hit[1] <= b0 and b1 <= hit[1] + hit[2].shape[1]:
                return hit[2][:, b0 - hit[1]: b1 - hit[1]]
            lo, hi = b0, b1
            if hit is not None and hit[0] is x:  # a wider range than held: the union, so no bin is taken twice
                lo, hi = min(b0, hit[1]), max(b1, hit[1] + hit[2].shape[1])
            n_frames = n_frames + 1  # one frame past the analysis' last: the final partial hop gets both halves
            held = sum(v[2].nbytes for k, v in self._spectra.items() if k != i)
            if held + n_frames * (hi - lo) * 8 > self.max_bytes:
                self._spectra.pop(i, None)
                return None
        padded = np.zeros((n_frames + 1) * hop, np.float32)
        padded[hop: hop + x.shape[1]] = x[i]  # frame t is centred at t * hop
        blocks = padded.reshape(-1, hop)
        frames = np.empty((n_frames, 2 * hop), np.float32)  # every frame, windowed
        np.multiply(blocks[:-1], window[:hop], out=frames[:, :hop])
        np.multiply(blocks[1:], window[hop:], out=frames[:, hop:])
        spec = np.ascontiguousarray(scipy.fft.rfft(frames, axis=1)[:, lo:hi])
        with self._lock:
            self._spectra[i] = (x, lo, spec)
            self.transforms += 1
        return spec[:, b0 - lo: b1 - lo]


RENDER_BLOCK_SAMPLES = 1 << 17
""":func:`apply_ducking` overlap-adds this many samples of a track at a time (128 frames at a 1024-sample
hop: their spectra, gains and samples, ~1 MB each, stay in cache; ~15 % less CPU than a 30 s track in one
block, and a 600 s track holds ~1 MB per array instead of ~200 MB). The samples do not depend on it."""


def _duck_frames(xi: np.ndarray, sel: np.ndarray, hop: int, n: int, window: np.ndarray, gains: np.ndarray,
                 first: int, n_frames: int, b0: int, b1: int, held: np.ndarray | None,
                 buffer: np.ndarray | None) -> np.ndarray:
    """(processed - unprocessed) of frames ``sel`` of one track, windowed for the overlap-add [shape=(len(sel), 2 hop)].

    Frame ``t`` spans ``xi[(t - 1) hop : (t + 1) hop]`` (zeros outside the track); ``gains`` is the gain
    minus one on bins ``b0:b1`` of analysis frames ``first, first + 1, ...`` [shape=(frames, b1 - b0)]
    (:func:`_bin_gains`; frame ``n_frames`` takes the last analysis frame's); ``held`` is the spectrum of
    every frame, bins ``b0:b1``, when a :class:`SpectrumCache` has them, gathered into ``buffer``
    (complex64 [shape=(>= len(sel), hop + 1)], zero outside ``b0:b1``: the inverse transform does not
    write its input).
    """
    n_fft = 2 * hop
    rows = np.minimum(sel, n_frames - 1) - first
    if held is not None:
        spec = buffer[: sel.size]
        source = spec[:, b0:b1]
        np.take(held, sel, axis=0, out=source, mode="clip")  # (sel is in range) gathered straight into place
    else:
        first = int(sel[0])
        span = np.zeros((int(sel[-1]) + 2 - first) * hop, np.float32)  # rows first .. last + 1 of the padded track
        a, b = max(0, (first - 1) * hop), min(n, (int(sel[-1]) + 1) * hop)
        span[a - (first - 1) * hop: b - (first - 1) * hop] = xi[a:b]
        blocks = span.reshape(-1, hop)
        local = sel - first
        frames = np.empty((sel.size, n_fft), np.float32)  # (n_sel, n_fft), windowed
        np.multiply(blocks[local], window[:hop], out=frames[:, :hop])
        np.multiply(blocks[local + 1], window[hop:], out=frames[:, hop:])
        del span, blocks
        spec = scipy.fft.rfft(frames, axis=1)
        del frames
        spec[:, :b0] = 0.0
        spec[:, b1:] = 0.0
        source = spec[:, b0:b1]
    np.multiply(source, gains[rows], out=source)
    diff = scipy.fft.irfft(spec, n_fft, axis=1).astype(np.float32, copy=False)
    diff *= window
    return diff


def _bin_gains(cut_db: np.ndarray, lo: np.ndarray, hi: np.ndarray, w_lo: np.ndarray, w_hi: np.ndarray) -> np.ndarray:
    """Each frame's gain minus one on the given bins [shape=(n_frames, n_bins), float32] from one track's cut (B, T) dB.

    The band cuts interpolated linearly in Bark between band centres (``w_lo``, ``w_hi``: the weights
    of bands ``lo`` and ``hi`` times ``-ln(10) / 20``), as amplitude: ``exp(...) - 1`` (no BLAS: thread-free).
    """
    cut_t = np.ascontiguousarray(cut_db.T)  # (T, B)
    gain = cut_t[:, lo] * w_lo
    gain += cut_t[:, hi] * w_hi
    np.exp(gain, out=gain)
    gain -= np.float32(1.0)
    return gain


def blend(dry: np.ndarray, difference: np.ndarray, strength: float, *, out: np.ndarray | None = None) -> np.ndarray:
    """``dry + strength * difference`` in float32, as :func:`apply_ducking` makes each block of a ducked track.

    Parameters
    ----------
    dry : np.ndarray [shape=(n,), dtype=float32]
    difference : np.ndarray [shape=(n,), dtype=float32]
        The full-strength duck minus the dry track (``differences=`` of :func:`apply_ducking`).
    strength : float in [0, 1]
    out : np.ndarray [shape=(n,), dtype=float32], optional

    Returns
    -------
    np.ndarray [shape=(n,), dtype=float32]
        Bit-identical to the track :func:`apply_ducking` renders at ``strength``.
    """
    s = np.float32(strength)
    if s == 1.0:
        return np.add(dry, difference, out=out)
    if out is None:
        out = np.empty(np.shape(difference), np.float32)
    # s * difference straight into ``out``, then the dry added (IEEE addition commutes: the bits of
    # dry + s * difference), with no temporary: a freed 5 MB block goes back to the system and the
    # next one is faulted in again, which in the app server cost more than the arithmetic.
    np.multiply(difference, s, out=out)
    return np.add(out, dry, out=out)


def apply_ducking(tracks: np.ndarray, plan: DuckPlan, sample_rate: int, *,
                  cache: SpectrumCache | None = None, differences: dict | None = None,
                  out: np.ndarray | None = None) -> np.ndarray:
    """Render the duck: a zero-phase STFT gain per bin and frame, blended with the dry track by the plan's strength.

    Parameters
    ----------
    tracks : np.ndarray [shape=(n_tracks, n_samples)]
        The tracks the plan was designed on (unit gain).
    plan : DuckPlan
        At full strength, or :meth:`DuckPlan.scaled` (the track is then ``dry + s * (full duck - dry)``).
    sample_rate : int
        In Hz.
    cache : SpectrumCache, optional
        Keeps the tracks' spectra for the next render of the same ``tracks`` array (the same
        output, without the forward transforms).
    differences : dict, optional
        Filled with track index -> the full-strength duck minus the dry track [shape=(n_samples,),
        dtype=float32] for every active track: :func:`blend` makes the track at any strength from it,
        bit-identical to this function.  A row already there (e.g. a view of one block) is written into,
        every sample of it.
    out : np.ndarray [shape=(n_tracks, n_samples), dtype=float32], optional
        Where to write the result (every sample is written; it must not overlap ``tracks``); returned.

    Returns
    -------
    np.ndarray [shape=(n_tracks, n_samples), dtype=float32]
        Tracks without cuts are copied unchanged; with zero cut the output equals the input
        to float32 rounding (sqrt-Hann analysis and synthesis at 50 % overlap sum to one).
    """
    x = np.asarray(tracks, dtype=np.float32)
    if x.ndim != 2 or x.shape[0] != plan.n_tracks:
        raise ParameterError(f"need {plan.n_tracks} tracks of shape (n_tracks, n_samples), got {x.shape}")
    strength = np.float32(plan.strength)
    active = plan.active
    plan = plan.at_full_strength  # the frames, bins and gains of the full duck; the strength scales its difference
    hop = plan.hop_length
    n_fft = 2 * hop
    n = x.shape[1]
    n_frames = plan.cut_db.shape[2]
    if out is None:
        out = np.empty_like(x)
    elif out.shape != x.shape or out.dtype != np.float32 or np.may_share_memory(out, x):
        raise ParameterError(f"out must be a float32 array of shape {x.shape} apart from the tracks, got "
                             f"{out.dtype} {out.shape}")
    for k in np.flatnonzero(~active):  # tracks without cuts: copied unchanged (the rest is written once, below)
        out[k] = x[k]
    lo, hi, w = _bin_interpolation(n_fft, sample_rate, plan.band_centres_hz)
    w_lo = (np.float32(-np.log(10.0) / 20.0) * (1.0 - w)).astype(np.float32)  # dB -> amplitude exponent
    w_hi = (np.float32(-np.log(10.0) / 20.0) * w).astype(np.float32)
    window = np.sqrt(np.hanning(n_fft + 1)[:-1]).astype(np.float32)  # periodic Hann, square root
    block_rows = max(2, RENDER_BLOCK_SAMPLES // hop)
    for i in np.flatnonzero(active):
        frame_max = np.abs(plan.cut_db[i]).max(axis=0)  # (T,), a makeup gain is a negative cut; frame T repeats T - 1
        # Only frames with a cut are transformed: the output is the input plus the overlap-add of
        # (processed - unprocessed) frames, which is zero wherever nothing is cut.
        busy = np.flatnonzero(np.append(frame_max, frame_max[-1:]) > 1e-3)
        diff_row = None if differences is None else differences.setdefault(int(i), np.empty(n, np.float32))
        # Only bins between band centres with a cut get a gain other than 1: elsewhere
        # exp(0) - 1 == 0 exactly, so those bins of the difference are zero and left so.
        cut_bands = np.abs(plan.cut_db[i]).max(axis=1) > 0.0
        bins = np.flatnonzero(cut_bands[lo] | cut_bands[hi]) if busy.size else busy
        if not bins.size:  # nothing cut: the track as it is, no difference
            out[i] = x[i]
            if diff_row is not None:
                diff_row[:] = 0.0
            continue
        b0, b1 = int(bins[0]), int(bins[-1]) + 1
        held = None
        if cache is not None:  # (n_frames = n // hop + 1 analysis frames)
            held = cache.bins(x, int(i), b0, b1, hop, n_frames, window)
        buffer = np.zeros((block_rows + 1, hop + 1), np.complex64) if held is not None else None
        # The overlap-add a block of output rows at a time (row r = padded samples [r hop, (r + 1) hop), the
        # output's [(r - 1) hop, r hop)): row r takes the first half of frame r and the second half of frame
        # r - 1, so a block needs the busy frames from one before it; every frame is transformed on its
        # own, so the samples are those of the whole-signal overlap-add, whatever the block (~1 MB of
        # frames and spectra per block instead of ~200 MB each for a 600 s track).
        for r0 in range(0, n_frames + 2, block_rows):
            r1 = min(r0 + block_rows, n_frames + 2)
            j0, j1 = int(np.searchsorted(busy, r0 - 1)), int(np.searchsorted(busy, r1))
            ola = np.zeros((r1 - r0, hop), np.float32)
            if j1 > j0:
                sel = busy[j0:j1]
                f0, f1 = min(int(sel[0]), n_frames - 1), min(int(sel[-1]), n_frames - 1) + 1  # analysis frames read
                gains = _bin_gains(plan.cut_db[i][:, f0:f1], lo[b0:b1], hi[b0:b1], w_lo[b0:b1], w_hi[b0:b1])
                diff = _duck_frames(x[i], sel, hop, n, window, gains, f0, n_frames, b0, b1, held, buffer)
                # Run by run of consecutive busy frames (slices, not fancy indexing): within a run frame t
                # gets its first half, then the second half of frame t - 1 is added; the frame after a run
                # is not busy, so it only receives the run's last second half.
                breaks = np.flatnonzero(np.diff(sel) != 1) + 1
                for a, b in zip(np.concatenate([[0], breaks]), np.concatenate([breaks, [sel.size]])):
                    t0, t1 = int(sel[a]), int(sel[a]) + int(b - a)  # frames t0 .. t1 - 1, rows of diff a .. b - 1
                    fa, fb = max(t0, r0), min(t1, r1)  # first halves land on rows t
                    if fb > fa:
                        ola[fa - r0: fb - r0] = diff[a + fa - t0: a + fb - t0, :hop]
                    sa, sb = max(t0, r0 - 1), min(t1, r1 - 1)  # second halves land on rows t + 1
                    if sb > sa:
                        ola[sa + 1 - r0: sb + 1 - r0] += diff[a + sa - t0: a + sb - t0, hop:]
            s0, s1 = max(0, (r0 - 1) * hop), min(n, (r1 - 1) * hop)
            if s1 > s0:
                part = ola.reshape(-1)[s0 - (r0 - 1) * hop: s1 - (r0 - 1) * hop]
                if diff_row is not None:
                    diff_row[s0:s1] = part
                blend(x[i, s0:s1], part, strength, out=out[i, s0:s1])
    return out

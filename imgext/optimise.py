"""Refinement of track gains and EQ depth by differential evolution (after Liu et al. 2024).

The cost (``shared/design/masking.md`` 5c) is evaluated on cached band energies only:
a gain offset ``g_i`` and an EQ depth ``s_i`` shift track i's band levels by
``g_i + s_i H_i[b]`` dB, with ``H`` the band response of the designed EQ. The whole
population is scored at once (``vectorized=True``, ``updating='deferred'``).

Gain bounds: offsets are searched in [-2, 0] dB (never a boost, so no headroom is used) and the estimated
BS.1770 loudness change of every track (gain + EQ loss, see
:func:`imgext.masking.loudness_change_lu`) is held within ``max_loudness_change_lu``
(1.5 LU) by a steep penalty; this keeps the measured change within the project's 2 LU
rule with 0.5 LU left for estimation error (gating, spectral shape inside a band).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import scipy.optimize

from .eq import IMPORTANCE_TOLERANCE, EqFilter, importance_share
from .errors import ParameterError
from .masking import (
    LOUDNESS_EXPONENT,
    BandEnergies,
    loudness_change_lu,
    masking_offset_db,
    masking_report,
    normalised_importance,
    relative_activity,
    repool,
    spreading_matrix,
)

__all__ = [
    "CostWeights",
    "OptimisationResult",
    "MixObjective",
    "optimise_mix",
    "mix_cost",
    "scale_filters",
    "DEFAULT_MAX_GAIN_CHANGE_DB",
    "DEFAULT_MAX_LOUDNESS_CHANGE_LU",
]

DEFAULT_MAX_GAIN_CHANGE_DB = 2.0
"""Deepest gain offset searched, dB (offsets lie in [-2, 0] dB by default)."""
DEFAULT_MAX_LOUDNESS_CHANGE_LU = 1.5
"""Estimated loudness change allowed per track (gain + EQ), LU; 0.5 LU below the 2 LU rule."""
_PENALTY = 1000.0


@dataclass(frozen=True)
class CostWeights:
    """Weights of the refinement cost (masking.md 5c; lambda1..lambda4 are the spec's).

    Attributes
    ----------
    masking : float
        Importance-weighted mean masking by the rest of the mix (dB), counting only maskers
        no more important than the maskee (the pairs the EQ rules act on).
    imbalance : float
        Standard deviation of that masking across tracks (Liu's balance term).
    worst_pair : float
        Largest pairwise masking (dB), over the (eligible) pairs that mask before refinement.
    loudness : float
        Mean squared loudness deviation from the target, in units of 2 LU.
    eq_use : float
        Mean EQ depth x mean |cut| / 6 dB: prefer less processing at equal masking.
    masked_fraction : float
        Importance-weighted masked fraction x 10 (so 0.1 of fraction weighs like 1 dB).
    """

    masking: float = 1.0
    imbalance: float = 0.5
    worst_pair: float = 0.25
    loudness: float = 1.0
    eq_use: float = 0.1
    masked_fraction: float = 1.0


@dataclass(frozen=True)
class OptimisationResult:
    """Outcome of :func:`optimise_mix`.

    Attributes
    ----------
    gain_offsets_db : np.ndarray [shape=(n_tracks,)]
        Add to the mix gains, dB.
    eq_depth : np.ndarray [shape=(n_tracks,)], in [0, 1]
        Scale of each track's EQ cuts (:func:`scale_filters`).
    cost_before, cost_after : float
        Cost at (0 dB, depth 1) and at the optimum, same resolution.
    n_evaluations : int
        Cost evaluations (population members scored).
    time_s : float
        Wall time in seconds.
    """

    gain_offsets_db: np.ndarray
    eq_depth: np.ndarray
    cost_before: float
    cost_after: float
    n_evaluations: int
    time_s: float


class MixObjective:
    """Vectorised refinement cost on band energies.

    Parameters are as for :func:`optimise_mix`. Call with ``offsets_db`` and ``depth`` of
    shape (n_members, n_tracks) via :meth:`terms` or :meth:`cost`.
    """

    def __init__(self, bands: BandEnergies, *, gains_db, importance, eq_db, weights: CostWeights,
                 max_loudness_change_lu: float, n_pairs: int = 6) -> None:
        g = np.asarray(gains_db, dtype=np.float64)
        h = np.asarray(eq_db, dtype=np.float64)
        if g.shape != (bands.n_tracks,) or h.shape != (bands.n_tracks, bands.n_bands):
            raise ParameterError(f"gains_db {g.shape} / eq_db {h.shape} do not match {bands.n_tracks} tracks x {bands.n_bands} bands")
        self.bands, self.weights, self.limit_lu = bands, weights, max_loudness_change_lu
        self.p_hat = normalised_importance(importance, bands.n_tracks).astype(np.float32)
        self.eq_db = h.astype(np.float32)
        lin = (10.0 ** (g / 10.0)).astype(np.float32)[:, None, None]
        # (N, T, B) layout so that spreading is one matmul over the last axis.
        self.masker = np.ascontiguousarray((bands.masker_energy * lin).transpose(0, 2, 1))
        self.e_db = np.ascontiguousarray((10.0 * np.log10(np.maximum(bands.energy * lin, 1e-30))).transpose(0, 2, 1))
        self.rel_ok = np.ascontiguousarray(relative_activity(bands).transpose(0, 2, 1))
        self.floor_db = (10.0 * np.log10(bands.floor_power)).astype(np.float32)
        offset = 10.0 ** (-masking_offset_db(bands.band_centres_hz) / 10.0)
        self.spread = (spreading_matrix(bands.band_centres_hz) * offset[None, :]).astype(np.float32)
        # Only masking the EQ rules act on counts: by a masker no more important than the
        # maskee. Masking of minor tracks by the important one is what the gains intend.
        self.eligible = (importance_share(importance, tolerance=IMPORTANCE_TOLERANCE) > 0).astype(np.float32)
        base = masking_report(bands, gains_db=g, importance=importance, eq_db=h)
        m = base.matrix_db * self.eligible
        order = np.argsort(-m, axis=None)[:n_pairs]
        keep = m.ravel()[order] > 0
        self.pairs = np.array(np.unravel_index(order[keep], m.shape)).T  # (P, 2) masker, maskee

    def terms(self, offsets_db: np.ndarray, depth: np.ndarray) -> dict[str, np.ndarray]:
        """Cost terms, each of shape (n_members,)."""
        shift = (offsets_db[:, :, None] + depth[:, :, None] * self.eq_db[None]).astype(np.float32)  # (S, N, B)
        lin = np.power(np.float32(10.0), shift / np.float32(10.0))[:, :, None, :]
        thr = np.matmul(self.masker[None] * lin, self.spread)  # (S, N, T, B)
        e_db = self.e_db[None] + shift[:, :, None, :]
        above = e_db - self.floor_db
        active = self.rel_ok[None] & (above > 0)
        weight = np.where(active, np.power(np.float32(10.0), np.float32(LOUDNESS_EXPONENT / 10.0) * above), np.float32(0.0))
        rest = np.maximum(np.einsum("ij,sitb->sjtb", self.eligible, thr, optimize=True), np.float32(1e-30))
        masked = np.maximum(np.float32(10.0) * np.log10(rest) - e_db, np.float32(0.0))
        w_sum = weight.sum(axis=(2, 3))
        by_rest = np.where(w_sum > 0, (weight * masked).sum(axis=(2, 3)) / np.maximum(w_sum, 1e-30), 0.0)
        fraction = np.where(w_sum > 0, (weight * (masked > 0)).sum(axis=(2, 3)) / np.maximum(w_sum, 1e-30), 0.0)
        sounding = w_sum > 0
        n_sound = np.maximum(sounding.sum(1), 1)
        mean = (by_rest * sounding).sum(1) / n_sound
        imbalance = np.sqrt((((by_rest - mean[:, None]) ** 2) * sounding).sum(1) / n_sound)
        worst = np.zeros(len(shift), dtype=np.float32)
        if len(self.pairs):
            i, j = self.pairs[:, 0], self.pairs[:, 1]
            t_db = np.float32(10.0) * np.log10(np.maximum(thr[:, i], np.float32(1e-30)))
            pm = np.maximum(t_db - e_db[:, j], np.float32(0.0)) * weight[:, j]
            worst = (pm.sum(axis=(2, 3)) / np.maximum(w_sum[:, j], 1e-30)).max(axis=1)
        d_lu = loudness_change_lu(self.bands, shift)
        eq_use = (depth * np.abs(self.eq_db).mean(axis=1)[None, :]).mean(axis=1) / 6.0
        return {
            "masking": by_rest.astype(np.float64) @ self.p_hat,
            "imbalance": imbalance,
            "worst_pair": worst,
            "loudness": ((d_lu / 2.0) ** 2).mean(axis=1),
            "eq_use": eq_use,
            "masked_fraction": 10.0 * (fraction.astype(np.float64) @ self.p_hat),
            "penalty": _PENALTY * (np.maximum(np.abs(d_lu) - self.limit_lu, 0.0) ** 2).sum(axis=1),
        }

    def cost(self, offsets_db: np.ndarray, depth: np.ndarray) -> np.ndarray:
        """Total cost per member, shape (n_members,)."""
        t = self.terms(np.atleast_2d(offsets_db), np.atleast_2d(depth))
        w = self.weights
        return (w.masking * t["masking"] + w.imbalance * t["imbalance"] + w.worst_pair * t["worst_pair"]
                + w.loudness * t["loudness"] + w.eq_use * t["eq_use"] + w.masked_fraction * t["masked_fraction"]
                + t["penalty"]).astype(np.float64)


def _pooled(bands: BandEnergies, pool_s: float | None) -> BandEnergies:
    if pool_s is None:
        return bands
    return repool(bands, max(1, int(round(pool_s / bands.frame_s))))


def mix_cost(bands: BandEnergies, *, gains_db, importance, eq_db, gain_offsets_db=None, eq_depth=None,
             weights: CostWeights = CostWeights(), pool_s: float | None = None,
             max_loudness_change_lu: float = DEFAULT_MAX_LOUDNESS_CHANGE_LU) -> float:
    """Refinement cost of one setting (0 dB offsets and full depth by default)."""
    n = bands.n_tracks
    obj = MixObjective(_pooled(bands, pool_s), gains_db=gains_db, importance=importance, eq_db=eq_db,
                       weights=weights, max_loudness_change_lu=max_loudness_change_lu)
    off = np.zeros(n) if gain_offsets_db is None else np.asarray(gain_offsets_db, dtype=np.float64)
    dep = np.ones(n) if eq_depth is None else np.asarray(eq_depth, dtype=np.float64)
    return float(obj.cost(off[None], dep[None])[0])


def optimise_mix(
    bands: BandEnergies,
    *,
    gains_db,
    importance,
    eq_db,
    seed: int = 0,
    max_gain_change_db: float = DEFAULT_MAX_GAIN_CHANGE_DB,
    max_gain_boost_db: float = 0.0,
    max_loudness_change_lu: float = DEFAULT_MAX_LOUDNESS_CHANGE_LU,
    weights: CostWeights = CostWeights(),
    pool_s: float | None = 1.0,
    popsize: int = 8,
    maxiter: int = 60,
    tol: float = 1e-3,
) -> OptimisationResult:
    """Tune per-track gain offsets and EQ depth against masking, imbalance and loudness.

    Parameters
    ----------
    bands : BandEnergies
        Unit-gain analysis (cached).
    gains_db : np.ndarray [shape=(n_tracks,)]
        Importance-based mix gains in dB (the loudness targets).
    importance : np.ndarray [shape=(n_tracks,)], in [0, 1]
    eq_db : np.ndarray [shape=(n_tracks, n_bands)]
        Band response of the designed EQ at full depth, dB (:func:`imgext.eq.eq_response_db`).
    seed : int
        Seeds the differential evolution: equal inputs and seed give equal results.
    max_gain_change_db : float >= 0
        Gain offsets are searched in [-max_gain_change_db, max_gain_boost_db] dB.
    max_gain_boost_db : float >= 0
        Upper bound of the offsets. Default 0: like the EQ, the refinement never boosts,
        so it cannot eat the mix's headroom (with +1.5 dB allowed, mixes normalised to
        -1 dBFS clipped in the quality bench).
    max_loudness_change_lu : float > 0
        Estimated loudness change (gain + EQ) allowed per track, LU.
    weights : CostWeights
    pool_s : float or None
        Frames are pooled to about this length for the search (None: as analysed);
        1 s keeps the search near a second on 8 x 30 s (masking.md 5c: same optimum as 93 ms).
    popsize, maxiter, tol
        :func:`scipy.optimize.differential_evolution` settings (population = popsize x dims).

    Returns
    -------
    OptimisationResult
    """
    start = time.perf_counter()
    if max_gain_change_db < 0 or max_gain_boost_db < 0:
        raise ParameterError(f"max_gain_change_db={max_gain_change_db}, max_gain_boost_db={max_gain_boost_db} must be >= 0")
    n = bands.n_tracks
    obj = MixObjective(_pooled(bands, pool_s), gains_db=gains_db, importance=importance, eq_db=eq_db,
                       weights=weights, max_loudness_change_lu=max_loudness_change_lu)
    has_eq = np.flatnonzero(np.abs(obj.eq_db).max(axis=1) > 1e-6)  # depth of a flat EQ is moot
    n_dims = n + len(has_eq)

    def unpack(theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        theta = theta.reshape(n_dims, -1)
        depth = np.ones((theta.shape[1], n))
        depth[:, has_eq] = theta[n:].T
        return theta[:n].T, depth

    n_scored = [0]

    def fun(theta: np.ndarray) -> np.ndarray:
        n_scored[0] += theta.reshape(n_dims, -1).shape[1]
        return obj.cost(*unpack(theta))

    x0 = np.r_[np.zeros(n), np.ones(len(has_eq))]
    cost_before = float(fun(x0[:, None])[0])
    if max_gain_change_db == 0 and max_gain_boost_db == 0 and not len(has_eq):
        return OptimisationResult(np.zeros(n), np.ones(n), cost_before, cost_before, 1, time.perf_counter() - start)
    bounds = [(-max_gain_change_db, max_gain_boost_db)] * n + [(0.0, 1.0)] * len(has_eq)
    bounds = [(lo, hi) if hi > lo else (lo, lo + 1e-9) for lo, hi in bounds]
    res = scipy.optimize.differential_evolution(
        fun, bounds, strategy="best1bin", popsize=popsize, maxiter=maxiter, tol=tol, polish=False,
        vectorized=True, updating="deferred", rng=seed, x0=x0,
    )
    off, depth = unpack(np.asarray(res.x)[:, None])
    best = (off[0], depth[0]) if res.fun <= cost_before else (np.zeros(n), np.ones(n))
    return OptimisationResult(
        gain_offsets_db=best[0],
        eq_depth=np.clip(best[1], 0.0, 1.0),
        cost_before=cost_before,
        cost_after=float(min(res.fun, cost_before)),
        n_evaluations=n_scored[0],
        time_s=time.perf_counter() - start,
    )


def scale_filters(filters: list[list[EqFilter]], eq_depth) -> list[list[EqFilter]]:
    """Scale each track's cut gains by its depth in [0, 1]; filters scaled to 0 dB are dropped."""
    depth = np.asarray(eq_depth, dtype=np.float64)
    if depth.shape != (len(filters),) or not np.all((depth >= 0) & (depth <= 1)):
        raise ParameterError(f"eq_depth must be {len(filters)} values in [0, 1], got {np.round(depth, 3).tolist()}")
    return [
        [EqFilter(f.kind, f.frequency_hz, f.gain_db * float(d), f.q, f.masker, f.maskee) for f in track
         if f.gain_db * float(d) < 0.0]
        for track, d in zip(filters, depth)
    ]

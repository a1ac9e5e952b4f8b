"""Masking-driven adaptive EQ: cuts on maskers, designed from the directional masking analysis.

Rules (``shared/design/masking.md`` 5b, after Zhao & Perez-Cota 2024 and Hafezi & Reiss 2015):

- a masker i is cut only for maskees it masks *problematically*, i.e. maskees at least as
  important (``p_i <= p_j + tolerance``, :func:`imgext.masking.problem_pairs`); a more
  important foreground covering a background is intended and left alone. Two equally
  important tracks are both eligible: each is cut where it covers the other, so the fix is
  split between them;
- at most half the maximum cut in the masker's own essential bands (its three loudest,
  Hafezi's R_T = 3): masking.md 5b.2's soft variant, "scale R by (1 - essential)". A hard
  ban blocked exactly the case the EQ exists for, a dense minor source whose loudest bands
  cover the important one (measured: synthetic overlap -17 %, eight animals 0 %);
- never a boost; no cut deeper than ``max_cut_db`` (6 dB);
- each track's BS.1770 loudness loss stays within ``max_loudness_loss_lu`` (1.5 LU,
  estimated exactly from the track's mean K-weighted spectrum; 0.5 LU left for the gating
  and for the optimiser, inside the project's 2 LU rule).

Design (:func:`design_eq`):

1. :func:`cut_curve_db` - a per-track, per-band cut curve found by L-BFGS-B in the band
   domain: minimise the priority-weighted (``p^8``: the most important track first) masking
   of every maskee by the rest of the mix, with a smooth masked-fraction term and a smooth
   maximum over the worst problematic pairs, under the loudness budget, the rules above and
   "the most important track may not end up more masked" (penalties and bounds; tracks tied
   at the top count by their mean, :func:`top_tracks`, so the order of the tracks is moot).
   Thresholds are linear in the maskers' band energies, so the gradient is exact.
2. Filters: an orthogonal matching pursuit picks up to ``max_filters`` RBJ shapes per track
   (peaks at every band centre and edge with Q 0.7-5.6, shelves at the ends;
   :func:`fit_filters`), then their depths are refined on the same cost with the filters' real band shapes, so the
   skirts are paid for from the loudness budget.
3. Guards: each track's exact loudness loss (:func:`filters_loudness_change_lu`) is held to
   the budget by scaling its cuts; the most important track's own cuts are dropped if they
   leave it more masked than dry at the analysis resolution.

Filters are RBJ cookbook biquads rendered with :func:`scipy.signal.sosfilt`.
"""

from __future__ import annotations

import enum
import functools
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from imgext.audio.dsp import signal
from imgext.errors import ParameterError
from imgext.masking.analysis import (
    PROBLEM_TOLERANCE,
    BandEnergies,
    masking_detail,
    masking_report,
    normalised_importance,
    problem_pairs,
    repool,
)
from imgext.masking.model import threshold_matrix
from imgext.masking.psychoacoustics import band_centres_hz as _centres
from imgext.masking.psychoacoustics import band_loudness_change_lu, band_membership

__all__ = [
    "DEFAULT_MAX_CUT_DB",
    "DEFAULT_MAX_FILTERS",
    "DEFAULT_MAX_LOUDNESS_LOSS_LU",
    "IMPORTANCE_TOLERANCE",
    "EqFilter",
    "FilterKind",
    "apply_eq",
    "band_response_db",
    "biquad_sos",
    "cut_curve_db",
    "design_eq",
    "eq_response_db",
    "essential_bands",
    "filters_loudness_change_lu",
    "combined_response_db",
    "fit_filters",
    "importance_share",
    "rbj_sos",
    "top_tracks",
]

DEFAULT_MAX_CUT_DB = 6.0
"""Deepest cut in dB (Ronan et al.'s +-6 dB EQ bounds)."""
DEFAULT_MAX_FILTERS = 6
"""Filters per track at most: Hafezi's nF = 3 where demand sits in one or two regions, up to 6 where it spreads."""
DEFAULT_MAX_LOUDNESS_LOSS_LU = 1.5
"""Estimated BS.1770 loudness a track may lose to its cuts, LU (0.5 LU under the 2 LU rule)."""
IMPORTANCE_TOLERANCE = PROBLEM_TOLERANCE
"""Importances within this distance count as equal (both tracks may then be cut for each other)."""
SHELF_Q = 1.0 / np.sqrt(2.0)
"""Shelf Q; 1/sqrt(2) is the RBJ shelf slope S = 1 (steepest without overshoot)."""
LOW_SHELF_BELOW_HZ = 150.0
HIGH_SHELF_ABOVE_HZ = 8000.0
_PENALTY = 50.0
"""Weight of the squared excess in the design's penalties (loudness budget, top track's rise, bounds)."""
REFINE_MAXITER = 20
"""L-BFGS-B iterations of the filter-depth refinement (more changed nothing on the bench scenes)."""
DESIGN_POOL_S = 0.25
"""Frame length of the cut-curve search, s: the analysis resolution (0.5 s halves the time, 6 % less effective)."""


class FilterKind(str, enum.Enum):
    """Biquad shape; the values are the strings stored in plans and shown in the app."""

    PEAK = "peak"
    LOW_SHELF = "low_shelf"
    HIGH_SHELF = "high_shelf"


@dataclass(frozen=True)
class EqFilter:
    """One cut on one track.

    Attributes
    ----------
    kind : FilterKind or str
        ``"peak"``, ``"low_shelf"`` or ``"high_shelf"``.
    frequency_hz : float > 0
        Centre (peak) or corner (shelf, where the gain is half) frequency in Hz.
    gain_db : float <= 0
        Cut in dB; a boost is rejected.
    q : float > 0
        Quality factor (RBJ definition; for shelves 1/sqrt(2) is slope S = 1).
    masker : int
        Index of the track being cut.
    maskee : int
        Index of the track this cut unmasks.
    """

    kind: FilterKind
    frequency_hz: float
    gain_db: float
    q: float
    masker: int
    maskee: int

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "kind", FilterKind(self.kind))
        except ValueError:
            raise ParameterError(f"kind={self.kind!r} must be one of {[k.value for k in FilterKind]}") from None
        if not (np.isfinite(self.gain_db) and self.gain_db <= 0.0):
            raise ParameterError(f"gain_db={self.gain_db} must be a finite cut (<= 0 dB): the EQ never boosts")
        if not (self.frequency_hz > 0 and self.q > 0):
            raise ParameterError(f"frequency_hz={self.frequency_hz} and q={self.q} must be positive")

    def to_dict(self, names: list[str] | None = None) -> dict:
        """JSON-ready dict; masker/maskee as names when ``names`` is given."""
        who = (lambda k: names[k]) if names is not None else (lambda k: k)
        return {
            "kind": self.kind.value,
            "frequency_hz": float(self.frequency_hz),
            "gain_db": float(self.gain_db),
            "q": float(self.q),
            "masker": who(self.masker),
            "maskee": who(self.maskee),
        }


def rbj_sos(kind: FilterKind | str, *, frequency_hz: float, gain_db: float, q: float, sample_rate: int) -> np.ndarray:
    """RBJ Audio-EQ-Cookbook biquad as one second-order section.

    Parameters
    ----------
    kind : {"peak", "low_shelf", "high_shelf"}
    frequency_hz : float in (0, sample_rate / 2)
    gain_db : float
        Any sign here (tests use boosts too); :class:`EqFilter` only allows cuts.
    q : float > 0
    sample_rate : int > 0
        In Hz.

    Returns
    -------
    np.ndarray [shape=(1, 6), dtype=float64]
        ``[b0, b1, b2, 1, a1, a2]`` normalised by ``a0``.
    """
    kind = FilterKind(kind)
    if not 0.0 < frequency_hz < sample_rate / 2.0:
        raise ParameterError(f"frequency_hz={frequency_hz} must lie in (0, {sample_rate / 2}) at {sample_rate} Hz")
    if q <= 0:
        raise ParameterError(f"q={q} must be positive")
    a = 10.0 ** (gain_db / 40.0)
    w0 = 2.0 * np.pi * frequency_hz / sample_rate
    cw, alpha = np.cos(w0), np.sin(w0) / (2.0 * q)
    if kind is FilterKind.PEAK:
        b = [1 + alpha * a, -2 * cw, 1 - alpha * a]
        den = [1 + alpha / a, -2 * cw, 1 - alpha / a]
    else:
        r = 2.0 * np.sqrt(a) * alpha
        sgn = 1.0 if kind is FilterKind.LOW_SHELF else -1.0  # high shelf: cw -> -cw, b1/a1 sign flips
        b = [a * ((a + 1) - sgn * (a - 1) * cw + r), sgn * 2 * a * ((a - 1) - sgn * (a + 1) * cw),
             a * ((a + 1) - sgn * (a - 1) * cw - r)]
        den = [(a + 1) + sgn * (a - 1) * cw + r, -sgn * 2 * ((a - 1) + sgn * (a + 1) * cw),
               (a + 1) + sgn * (a - 1) * cw - r]
    return (np.array(b + den, dtype=np.float64) / den[0])[None, :]


def biquad_sos(filt: EqFilter, sample_rate: int) -> np.ndarray:
    """Return the (1, 6) second-order section of ``filt`` at ``sample_rate`` Hz."""
    return rbj_sos(filt.kind, frequency_hz=filt.frequency_hz, gain_db=filt.gain_db, q=filt.q, sample_rate=sample_rate)


def _track_sos(filters: list[EqFilter], sample_rate: int) -> np.ndarray | None:
    return np.concatenate([biquad_sos(f, sample_rate) for f in filters]) if filters else None


def _filter_one(args: tuple[np.ndarray, np.ndarray | None]) -> np.ndarray:
    x, sos = args
    if sos is None:
        return x.copy()
    return signal.sosfilt(sos, x.astype(np.float64)).astype(np.float32)  # float64 state: low biquads


def apply_eq(tracks: np.ndarray, filters: list[list[EqFilter]], sample_rate: int, *,
             n_threads: int | None = None) -> np.ndarray:
    """Filter each track with its cascade of cuts.

    Parameters
    ----------
    tracks : np.ndarray [shape=(n_tracks, n_samples)]
    filters : list of list of EqFilter
        One list per track (may be empty).
    sample_rate : int
        In Hz.
    n_threads : int or None
        Tracks filtered in parallel (``sosfilt`` releases the GIL); None: up to the CPU
        count. Each track is filtered alone, so the output does not depend on it.

    Returns
    -------
    np.ndarray [shape=(n_tracks, n_samples), dtype=float32]
        Tracks without filters are copied unchanged.
    """
    x = np.asarray(tracks, dtype=np.float32)
    if x.ndim != 2 or len(filters) != x.shape[0]:
        raise ParameterError(f"need one filter list per track: tracks {x.shape}, {len(filters)} lists")
    jobs = [(x[i], _track_sos(f, sample_rate)) for i, f in enumerate(filters)]
    workers = min(sum(s is not None for _, s in jobs), n_threads or os.cpu_count() or 1)
    if workers <= 1:
        rows = [_filter_one(job) for job in jobs]
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            rows = list(pool.map(_filter_one, jobs))
    return np.stack(rows) if rows else x.copy()


def _bin_response(filters: list[EqFilter], bands: BandEnergies) -> np.ndarray:
    """Power response |H|^2 of a cascade on the STFT bin grid of ``bands``, shape (n_bins,)."""
    freqs = np.fft.rfftfreq(bands.n_fft, 1.0 / bands.sample_rate)
    if not filters:
        return np.ones(len(freqs))
    _, h = signal.sosfreqz(_track_sos(filters, bands.sample_rate), worN=freqs, fs=bands.sample_rate)
    return np.abs(h) ** 2


def _band_average(bands: BandEnergies) -> np.ndarray:
    freqs = np.fft.rfftfreq(bands.n_fft, 1.0 / bands.sample_rate)
    u = band_membership(freqs, bands.band_edges_hz).T
    return u / np.maximum(u.sum(axis=1, keepdims=True), 1.0)


def band_response_db(filters: list[EqFilter], bands: BandEnergies) -> np.ndarray:
    """Band-averaged power response of one track's filters, shape (n_bands,), dB.

    ``10 log10(mean |H(f)|^2)`` over the STFT bins of each band: exact for band energies
    of signals that are flat within a band.
    """
    if not filters:
        return np.zeros(bands.n_bands)
    return 10.0 * np.log10(np.maximum(_band_average(bands) @ _bin_response(filters, bands), 1e-30))


def eq_response_db(filters: list[list[EqFilter]], bands: BandEnergies) -> np.ndarray:
    """:func:`band_response_db` for every track, shape (n_tracks, n_bands)."""
    return np.stack([band_response_db(f, bands) for f in filters]) if filters else np.zeros((0, bands.n_bands))


def filters_loudness_change_lu(filters: list[list[EqFilter]], bands: BandEnergies) -> np.ndarray:
    """Estimated BS.1770 loudness change of each track under its filters, LU, shape (n_tracks,).

    ``10 log10(sum_k P_k |H_k|^2 / sum_k P_k)`` over the STFT bins, with ``P`` the track's
    mean K-weighted power spectrum (:attr:`BandEnergies.loudness_spectrum`): exact for a
    linear filter up to the change of the gating. Falls back to the band estimate when the
    analysis has no spectrum.
    """
    if bands.loudness_spectrum is None:
        from imgext.masking.analysis import loudness_change_lu

        return loudness_change_lu(bands, eq_response_db(filters, bands))
    out = np.zeros(len(filters))
    for i, track in enumerate(filters):
        if track:
            p = bands.loudness_spectrum[i].astype(np.float64)
            out[i] = 10.0 * np.log10(max(float(p @ _bin_response(track, bands)), 1e-30) / max(float(p.sum()), 1e-30))
    return out


def importance_share(importance, *, tolerance: float = IMPORTANCE_TOLERANCE) -> np.ndarray:
    """(n_tracks, n_tracks) share of a cut masker i owes maskee j (kept for callers of earlier versions).

    1 if j is more important than i (by more than ``tolerance``), 0.5 if they are equally
    important, 0 if j is less important; diagonal 0. ``share > 0`` is
    :func:`imgext.masking.problem_pairs`.
    """
    p = np.asarray(importance, dtype=np.float64)
    diff = p[None, :] - p[:, None]
    share = np.where(diff > tolerance, 1.0, np.where(np.abs(diff) <= tolerance + 1e-12, 0.5, 0.0))
    np.fill_diagonal(share, 0.0)
    return share


def top_tracks(importance) -> np.ndarray:
    """Indices of the most important tracks: every track tied at the highest importance.

    The rule "the most important track may not end up more masked" protects their mean
    masking when several share the top (two people of equal importance, or files mixed at
    equal gain). ``argmax`` picked the first of them, so the design depended on the order
    of the tracks: listed first, a whistler was protected and nothing was cut; listed
    second, it took a 4 dB cut for the talker beside it.
    """
    p = np.asarray(importance, dtype=np.float64)
    return np.flatnonzero(p >= p.max() - 1e-9) if p.size else np.zeros(0, int)


def essential_bands(weight: np.ndarray, *, n_essential: int = 3) -> np.ndarray:
    """(n_tracks, n_bands) bool: each track's ``n_essential`` loudest bands (Hafezi's R_T = 3)."""
    loud = weight.sum(axis=-1)
    order = np.argsort(-loud, axis=1)[:, :n_essential]
    out = np.zeros(loud.shape, dtype=bool)
    np.put_along_axis(out, order, True, axis=1)
    return out & (loud > 0)


@dataclass(frozen=True)
class CutCurve:
    """Result of :func:`cut_curve_db`.

    Attributes
    ----------
    cut_db : np.ndarray [shape=(n_tracks, n_bands)], >= 0
        Cut wanted on each track (as masker) per band, dB.
    benefit : np.ndarray [shape=(n_tracks, n_tracks, n_bands)], >= 0
        Cost reduction per dB of cut on masker i in band b owed to maskee j (for the
        filter's ``maskee`` and for weighting the fit).
    essential : np.ndarray [shape=(n_tracks, n_bands), dtype=bool]
    upper_db : np.ndarray [shape=(n_tracks, n_bands)]
        The bound each band's cut was searched under, dB.
    problem : object
        The band-domain cost, kept for the filter refinement of :func:`design_eq`.
    """

    cut_db: np.ndarray
    benefit: np.ndarray
    essential: np.ndarray
    upper_db: np.ndarray | None = None
    problem: object = field(default=None, repr=False, compare=False)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    """Logistic function, overflow-free: ``(1 + tanh(z / 2)) / 2``."""
    return np.float32(0.5) + np.float32(0.5) * np.tanh(np.float32(0.5) * z)


def _soft(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``softplus(z)`` and ``sigmoid(z)`` (float32, overflow-free)."""
    return np.maximum(z, np.float32(0.0)) + np.log1p(np.exp(-np.abs(z))), _sigmoid(z)


class _CutProblem:
    """Band-domain design cost and its exact gradient.

    Maskers are float32 arrays laid out (track, frame, band); the maskee side is kept only
    on the band-frames that can matter (active, and within 20 dB of being masked: a cut
    raises a maskee's masking by at most its own cut, 6 dB), which is 5-40 % of them.
    """

    def __init__(self, bands: BandEnergies, gains_db, importance, *, tolerance: float, n_essential: int,
                 max_loss_lu: float, priority_exponent: float = 8.0, n_pairs: int = 6, mf_weight: float = 10.0,
                 pair_weight: float = 0.5, eq_use: float = 0.002, softness_db: float = 0.5,
                 mf_softness_db: float = 1.0, margin_db: float = 20.0) -> None:
        d = masking_detail(bands, gains_db=gains_db)
        lin = 10.0 ** (np.asarray(gains_db, dtype=np.float64) / 10.0)[:, None, None]
        n, f32 = bands.n_tracks, np.float32
        self.f = np.ascontiguousarray((bands.masker_energy * lin).transpose(0, 2, 1), dtype=f32)
        e_db = np.ascontiguousarray(10.0 * np.log10(np.maximum(bands.energy * lin, 1e-30)).transpose(0, 2, 1),
                                    dtype=f32)
        w_tot = d.weight.sum(axis=(1, 2), dtype=np.float64)
        w = np.ascontiguousarray((d.weight / np.maximum(w_tot, 1e-30)[:, None, None]).transpose(0, 2, 1), dtype=f32)
        self.s = threshold_matrix(bands.band_centres_hz)
        p = np.asarray(importance, dtype=np.float64)
        pw = p**priority_exponent
        self.pi = (pw / pw.sum() if pw.sum() > 0 else np.full(n, 1.0 / n)).astype(f32)
        self.prob = problem_pairs(p, tolerance=tolerance).astype(f32)
        t0 = np.maximum(self.f @ self.s, f32(1e-30))
        # Rest threshold on j from maskers that may not be cut for j (they are more important).
        self.fixed = np.tensordot(1.0 - np.eye(n, dtype=f32) - self.prob, t0, axes=(0, 0))
        self.shape, self.grid = (n, bands.n_bands), t0.shape
        tb = t0.shape[1] * t0.shape[2]
        # Maskee cells that can matter.
        raw0 = 10.0 * np.log10(np.maximum(np.tensordot(self.prob, t0, axes=(0, 0)) + self.fixed, 1e-30)) - e_db
        self.cells = np.flatnonzero((w > 0) & (raw0 > -margin_db))
        self.cell_j, self.cell_b = self.cells // tb, self.cells % t0.shape[2]
        self.cell_e, self.cell_w = e_db.ravel()[self.cells], w.ravel()[self.cells]
        # The problematic pairs that mask now, worst first: the smooth maximum runs over these.
        t0_db = 10.0 * np.log10(t0)
        pm = np.einsum("ijtb,jtb->ij", np.maximum(t0_db[:, None] - e_db[None], 0.0), w) * self.prob
        order = np.argsort(-pm, axis=None)[:n_pairs]
        self.pairs = np.array(np.unravel_index(order[pm.ravel()[order] > 0.05], pm.shape)).T.reshape(-1, 2)
        pk, pc = [np.zeros(0, int)], [np.zeros(0, int)]
        for k, (i, j) in enumerate(self.pairs):
            c = np.flatnonzero((w[j] > 0) & (t0_db[i] - e_db[j] > -margin_db))
            pk.append(np.full(len(c), k)), pc.append(c)
        self.pair_k, cells = np.concatenate(pk), np.concatenate(pc)
        p_i, p_j = self.pairs.reshape(-1, 2)[self.pair_k].T if len(cells) else (cells, cells)
        self.pair_t, self.pair_own = p_i * tb + cells, p_j * bands.n_bands + cells % t0.shape[2]
        self.pair_e = e_db.reshape(n, tb)[p_j, cells].astype(f32)
        self.pair_w = w.reshape(n, tb)[p_j, cells].astype(f32)
        k = bands.loudness_power.astype(np.float64)
        self.k = k / np.maximum(k.sum(axis=1, keepdims=True), 1e-30)
        self.essential = essential_bands(d.weight, n_essential=n_essential)
        self.may_cut = self.prob.any(axis=1)[:, None] & (k > 0)
        self.max_loss, self.mf_weight, self.pair_weight, self.eq_use = max_loss_lu, mf_weight, pair_weight, eq_use
        self.tau, self.tau_mf = f32(softness_db), f32(mf_softness_db)
        self.top, self.top_ref = top_tracks(p), np.inf
        self.top_ref = self._sensitivity(np.zeros(self.shape))[5]  # the top track(s) may not end up more masked

    def _sensitivity(self, cut: np.ndarray):
        """Cost and d(cost)/d(threshold): shared by the gradient and the attribution.

        Returns the masker energies after the cut, the cost, d cost / d rest threshold per
        maskee (N, T, B; times 10 / ln 10), d cost / d threshold of each pair's masker as
        (values, flat cells, pair), d cost / d own cut (N, B) and the top track's term (the mean over
        tracks tied at the top, :func:`top_tracks`).
        """
        f32, n, size = np.float32, self.shape[0], int(np.prod(self.grid))
        cut32 = cut.astype(f32)
        fc = self.f * np.power(f32(10.0), -cut32 / f32(10.0))[:, None, :]
        t = np.maximum(fc @ self.s, f32(1e-30))  # (N, T, B) threshold cast by each masker
        rest = np.maximum((np.tensordot(self.prob, t, axes=(0, 0)) + self.fixed).ravel()[self.cells], f32(1e-30))
        own_cut = cut32.ravel()[self.cell_j * self.shape[1] + self.cell_b]  # a cut track is itself easier to mask
        raw = f32(10.0) * np.log10(rest) - self.cell_e + own_cut
        sp, sig = _soft(raw / self.tau)
        sig_mf = _sigmoid(raw / self.tau_mf)
        per = np.bincount(self.cell_j, self.cell_w * (self.tau * sp + f32(self.mf_weight) * sig_mf), minlength=n)
        top_term = float(per[self.top].mean())
        rise = max(top_term - self.top_ref, 0.0)
        cost = float(self.pi @ per) + _PENALTY * rise**2
        pi = self.pi.astype(np.float64)
        pi[self.top] += 2.0 * _PENALTY * rise / len(self.top)
        # d cost / d raw per maskee cell; / rest gives d cost / d threshold (times 10 / ln 10).
        d_raw = sig + f32(self.mf_weight) * sig_mf * (f32(1.0) - sig_mf) / self.tau_mf
        q = pi[self.cell_j].astype(f32) * self.cell_w * d_raw
        own_index = self.cell_j * self.shape[1] + self.cell_b
        own = np.bincount(own_index, q, minlength=n * self.shape[1])  # d cost / d own cut, per dB
        q_rest = np.zeros(size, f32)
        q_rest[self.cells] = q / rest
        pair = (np.zeros(0, f32), self.pair_t, self.pair_k)
        if len(self.pair_k):
            tv = t.ravel()[self.pair_t]
            sp_p, sig_p = _soft((f32(10.0) * np.log10(tv) - self.pair_e + cut32.ravel()[self.pair_own]) / self.tau)
            m = np.bincount(self.pair_k, self.pair_w * self.tau * sp_p, minlength=len(self.pairs))
            soft = np.exp((m - m.max()) / float(self.tau))
            cost += self.pair_weight * (m.max() + float(self.tau) * np.log(soft.sum()))
            dm = (self.pair_weight * soft / soft.sum())[self.pair_k].astype(f32) * self.pair_w * sig_p
            own += np.bincount(self.pair_own, dm, minlength=own.size)
            pair = (dm / tv, self.pair_t, self.pair_k)
        return fc, cost, q_rest.reshape(self.grid), pair, own.reshape(self.shape), top_term

    def __call__(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        cut = x.reshape(self.shape)
        fc, cost, q_rest, (pv, pt, _), own, _ = self._sensitivity(cut)
        d_t = np.tensordot(self.prob, q_rest, axes=(1, 0))
        if len(pv):
            d_t += np.bincount(pt, pv, minlength=d_t.size).reshape(d_t.shape).astype(np.float32)
        grad = own - ((d_t @ self.s.T) * fc).sum(axis=1, dtype=np.float64)  # per dB (10/ln10 and ln10/10 cancel)
        lin = 10.0 ** (-cut / 10.0)
        kept = np.maximum((self.k * lin).sum(axis=1), 1e-30)
        over = np.maximum(-10.0 * np.log10(kept) - self.max_loss, 0.0)
        cost += _PENALTY * float((over**2).sum()) + self.eq_use * float(cut.sum())
        grad += 2.0 * _PENALTY * over[:, None] * self.k * lin / kept[:, None] + self.eq_use
        return cost, grad.ravel()

    def benefit(self, cut: np.ndarray) -> np.ndarray:
        """(N, N, B): cost reduction per dB of cut on masker i in band b, owed to maskee j."""
        fc, _, q_rest, (pv, pt, pk), _, _ = self._sensitivity(cut)
        out = np.einsum("jtc,bc,itb->ijb", q_rest, self.s, fc, optimize=True) * self.prob[:, :, None]
        tb = self.grid[1] * self.grid[2]
        for k, (i, j) in enumerate(self.pairs):
            sel = pk == k
            x = np.bincount(pt[sel] - i * tb, pv[sel], minlength=tb).reshape(self.grid[1:]).astype(np.float32)
            out[i, j] += ((x @ self.s.T) * fc[i]).sum(axis=0)
        return np.maximum(out, 0.0).astype(np.float64)


def cut_curve_db(
    bands: BandEnergies,
    *,
    gains_db,
    importance,
    max_cut_db: float = DEFAULT_MAX_CUT_DB,
    max_loudness_loss_lu: float = DEFAULT_MAX_LOUDNESS_LOSS_LU,
    n_essential: int = 3,
    essential_cut_fraction: float = 0.5,
    tolerance: float = IMPORTANCE_TOLERANCE,
    pool_s: float | None = DESIGN_POOL_S,
    maxiter: int = 40,
    priority_exponent: float = 8.0,
) -> CutCurve:
    """Per-track, per-band cuts that minimise the masking the rules allow the EQ to fix.

    Cost (band domain, smooth, exact gradient; minimised by L-BFGS-B from no cut)::

        sum_j pi_j [mean_w softplus(M_j) + 10 mean_w sigmoid(M_j)] + 0.5 smoothmax_(i,j problematic) M_ij
        + 50 sum_i max(0, loss_i - budget)^2 + 50 max(0, rise of the top track's term)^2 + 0.002 sum cut

    ``M_j`` is the masking of maskee j by the rest of the mix per band-frame (dB, in which a
    masker's cut only counts if the pair is problematic, and j's own cut raises it);
    ``pi = p^8 / sum p^8`` puts the most important track first; the sigmoid term is a smooth
    masked fraction (0.1 of fraction weighs like 1 dB); ``w`` are the maskee's loudness
    weights over its active band-frames; the smooth maximum runs over the six worst
    problematic pairs; ``loss_i`` is the band estimate of the track's loudness loss.

    Parameters
    ----------
    bands : BandEnergies
    gains_db : np.ndarray [shape=(n_tracks,)]
    importance : np.ndarray [shape=(n_tracks,)], in [0, 1]
    max_cut_db : float > 0
        Upper bound of every band's cut, dB.
    max_loudness_loss_lu : float > 0
        Loudness budget per track (band estimate), LU.
    n_essential : int >= 0
        Loudest bands of each masker (by loudness weight), cut at most ``essential_cut_fraction x max_cut_db``.
    essential_cut_fraction : float in [0, 1]
        0 forbids cuts in essential bands (Hafezi's hard rule); default 0.5.
    tolerance : float >= 0
        Importance difference treated as equal.
    pool_s : float or None
        Frames are pooled to about this length for the search (None: as analysed).
    maxiter : int > 0
        L-BFGS-B iterations.
    priority_exponent : float >= 0
        Maskee weights ``p^k / sum p^k``; 8: a track at 0.9 counts 0.43 of the top one, at
        0.7 0.06 (0: all maskees alike; large: the top track only).

    Returns
    -------
    CutCurve
    """
    if pool_s is not None:
        bands = repool(bands, max(1, int(round(pool_s / bands.frame_s))))
    prob = _CutProblem(bands, gains_db, importance, tolerance=tolerance, n_essential=n_essential,
                       max_loss_lu=max_loudness_loss_lu, priority_exponent=priority_exponent)
    upper = np.where(prob.may_cut, max_cut_db, 0.0) * np.where(prob.essential, essential_cut_fraction, 1.0)
    return _solve_curve(prob, upper, maxiter)


def _solve_curve(prob: _CutProblem, upper: np.ndarray, maxiter: int) -> CutCurve:
    import scipy.optimize  # when first needed: ~0.4 CPU-s a cold render without this search does not pay
    if not upper.any():
        return CutCurve(np.zeros(prob.shape), np.zeros(prob.shape[:1] + prob.shape), prob.essential, upper, prob)
    res = scipy.optimize.minimize(prob, np.zeros(upper.size), jac=True, method="L-BFGS-B",
                                  bounds=list(zip(np.zeros(upper.size), upper.ravel())), options={"maxiter": maxiter})
    cut = np.clip(res.x.reshape(prob.shape), 0.0, upper)
    return CutCurve(cut, prob.benefit(cut), prob.essential, upper, prob)


PEAK_QS = (0.7, 1.4, 2.8, 5.6)
"""Q values tried for peaking cuts: from about 2 octaves wide to one critical band."""


@functools.lru_cache(maxsize=8)
def _candidates(sample_rate: int, n_fft: int, edges: tuple[float, ...]) -> tuple[list, np.ndarray]:
    """Filter shapes the fit chooses from: (kind, f0, q) and their band responses per dB of cut, (K, B).

    Peaks centred on every band and on every inner band edge (so two-band regions have a
    centre) with :data:`PEAK_QS`; low shelves at the edges up to 300 Hz, high shelves at the
    edges from 7.7 kHz.
    """
    e = np.asarray(edges)
    bands = BandEnergies(np.zeros((1, len(e) - 1, 1), np.float32), np.zeros((1, len(e) - 1, 1), np.float32),
                         np.zeros((1, len(e) - 1), np.float32), e, _centres(e), np.zeros(len(e) - 1), 1.0,
                         sample_rate, n_fft)
    nyquist = sample_rate / 2.0
    specs = []
    for f0 in sorted(set(bands.band_centres_hz.tolist()) | set(e[1:-1].tolist())):
        if LOW_SHELF_BELOW_HZ <= f0 < min(HIGH_SHELF_ABOVE_HZ, 0.45 * sample_rate):
            specs += [(FilterKind.PEAK, float(f0), q) for q in PEAK_QS]
    specs += [(FilterKind.LOW_SHELF, float(f), SHELF_Q) for f in e[1:] if f <= 300.0]
    specs += [(FilterKind.HIGH_SHELF, float(f), SHELF_Q) for f in e[1:-1] if 7700.0 <= f < 0.9 * nyquist]
    shapes = np.stack([band_response_db([EqFilter(k, f, -6.0, q, 0, 0)], bands) / -6.0 for k, f, q in specs])
    return specs, shapes


def fit_filters(
    cut_db: np.ndarray,
    weight: np.ndarray,
    maskee: np.ndarray,
    bands: BandEnergies,
    *,
    masker: int,
    max_filters: int = DEFAULT_MAX_FILTERS,
    max_cut_db: float = DEFAULT_MAX_CUT_DB,
    min_cut_db: float = 0.5,
    protect: np.ndarray | None = None,
) -> list[EqFilter]:
    """RBJ cuts for one track that follow a band cut curve.

    Orthogonal matching pursuit over a bank of peaks (every band centre and edge, Q 0.7-5.6)
    and shelves (:func:`_candidates`): each step adds the filter whose best depth removes most
    weighted squared error from what the filters chosen so far leave, then refits all their
    depths by bounded least squares (``0..max_cut_db``). Errors count with the normalised
    ``weight`` plus a floor (plus 1 on ``protect`` bands), so spill into bands that should
    stay flat costs too.

    Parameters
    ----------
    cut_db : np.ndarray [shape=(n_bands,)], >= 0
        Wanted cut per band, dB.
    weight : np.ndarray [shape=(n_bands,)], >= 0
        Importance of meeting the curve in each band.
    maskee : np.ndarray [shape=(n_bands,)], int
        Track each band's cut is for (stored on the filter).
    bands : BandEnergies
    masker : int
        Index of the track being cut.
    protect : np.ndarray [shape=(n_bands,), dtype=bool] or None
        Bands to keep close to the curve (the masker's essential bands).

    Returns
    -------
    list of EqFilter
    """
    specs, shapes = _candidates(bands.sample_rate, bands.n_fft, tuple(bands.band_edges_hz.tolist()))
    chosen, depth = _pursuit(cut_db, weight, shapes, max_filters=max_filters, max_cut_db=max_cut_db,
                             min_cut_db=min_cut_db, protect=protect)
    return _filters_from(chosen, depth, specs, shapes, cut_db, weight, maskee, masker, min_cut_db)


def _pursuit(cut_db: np.ndarray, weight: np.ndarray, shapes: np.ndarray, *, max_filters: int, max_cut_db: float,
             min_cut_db: float, protect: np.ndarray | None) -> tuple[list[int], np.ndarray]:
    """Greedy choice of candidate shapes for one track with their bounded least-squares depths.

    Orthogonal matching pursuit: after each pick the depths of all chosen shapes are refitted
    (bounded least squares), and the next pick is scored on what the chosen set really leaves.
    Plain matching pursuit scored each pick on a residual that kept every earlier pick at its
    own greedy depth, so a broad first pick that the refit later shrinks still steered the
    choice: on a comb-shaped curve (cuts in alternate bands) the set kept a wide shelf-like peak
    whose skirts spent the loudness budget on the masker's loudest, uncut bands (phone under a
    resonant TV: top masked fraction -17 % instead of -34 %).
    """
    if cut_db.max(initial=0.0) < min_cut_db:
        return [], np.zeros(0)
    w = weight / weight.max() if weight.max() > 0 else np.zeros_like(weight)
    w = w + 0.1 + (0.0 if protect is None else protect.astype(float))
    ws = shapes * w[None, :]
    energy = np.maximum((ws * shapes).sum(axis=1), 1e-12)
    sw = np.sqrt(w)
    residual, chosen, depths = cut_db.astype(np.float64).copy(), [], np.zeros(0)
    for _ in range(max_filters):
        depth = np.clip((ws @ residual) / energy, 0.0, max_cut_db)
        gain = 2.0 * depth * (ws @ residual) - depth**2 * energy  # weighted error removed
        gain[chosen] = 0.0
        k = int(np.argmax(gain))
        if depth[k] < min_cut_db or gain[k] <= 1e-3 * float(w @ cut_db**2):
            break
        chosen.append(k)
        depths = _bounded_lsq(shapes[chosen].T * sw[:, None], cut_db * sw, max_cut_db)
        residual = cut_db - depths @ shapes[chosen]
    return chosen, depths


def _bounded_lsq(a: np.ndarray, b: np.ndarray, upper: float) -> np.ndarray:
    """``argmin |a x - b|`` over ``0 <= x <= upper``: NNLS, then the bounded solver if a depth exceeds ``upper``."""
    import scipy.optimize  # when first needed: ~0.4 CPU-s a cold render without this search does not pay
    x = scipy.optimize.nnls(a, b)[0]
    if np.all(x <= upper):
        return x
    return scipy.optimize.lsq_linear(a, b, bounds=(0.0, upper)).x


def _filters_from(chosen, depth, specs, shapes, cut_db, weight, maskee, masker: int,
                  min_cut_db: float) -> list[EqFilter]:
    out = []
    for k, d in sorted(zip(chosen, depth), key=lambda kd: specs[kd[0]][1]):
        if d >= min_cut_db:
            kind, f0, q = specs[k]
            who = int(maskee[int(np.argmax(shapes[k] * weight * cut_db))])
            out.append(EqFilter(kind, f0, -float(d), q, masker, who))
    return out


def _refine_depths(curve: CutCurve, picks: list, shapes: np.ndarray, max_cut_db: float,
                   maxiter: int) -> list[np.ndarray]:
    """Depths of the chosen filters minimising the design cost itself (not the distance to the curve).

    The curve's optimum is only reachable band by band; with real filter shapes (skirts,
    shelves) the best depths differ, and the loudness budget must pay for the spill. The
    cuts are ``c = sum_k d_k phi_k`` with the filters' band shapes ``phi``; the essential-band
    bounds of the curve become a penalty.
    """
    import scipy.optimize  # when first needed: ~0.4 CPU-s a cold render without this search does not pay
    prob = curve.problem
    owners = [i for i, (chosen, _) in enumerate(picks) for _ in chosen]
    if prob is None or not owners:
        return [d for _, d in picks]
    phi = np.zeros((len(owners),) + prob.shape)
    phi[np.arange(len(owners)), owners] = shapes[[k for chosen, _ in picks for k in chosen]]
    cap = curve.upper_db

    def fun(d: np.ndarray) -> tuple[float, np.ndarray]:
        cut = np.tensordot(d, phi, axes=(0, 0))
        cost, grad = prob(cut.ravel())
        over = np.maximum(cut - cap, 0.0)
        grad = grad.reshape(prob.shape) + 2.0 * _PENALTY * over
        return cost + _PENALTY * float((over**2).sum()), np.tensordot(phi, grad, axes=([1, 2], [0, 1]))

    # Start inside the loudness budget: least-squares depths that overshoot it are scaled down per track.
    d0 = np.concatenate([d for _, d in picks])
    cut0 = np.tensordot(d0, phi, axes=(0, 0))
    loss = -band_loudness_change_lu(prob.k, -cut0)
    scale = np.ones(prob.shape[0])
    for i in np.flatnonzero(loss > prob.max_loss):
        lo, hi = 0.0, 1.0
        for _ in range(12):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if -band_loudness_change_lu(prob.k[i], -mid * cut0[i]) <= prob.max_loss else (lo, mid)
        scale[i] = lo
    d0 = d0 * scale[owners]
    d = scipy.optimize.minimize(fun, d0, jac=True, method="L-BFGS-B", bounds=[(0.0, max_cut_db)] * len(d0),
                                options={"maxiter": maxiter}).x
    return np.split(d, np.cumsum([len(c) for c, _ in picks])[:-1])


def _scaled(filters: list[EqFilter], factor: float) -> list[EqFilter]:
    return [EqFilter(f.kind, f.frequency_hz, f.gain_db * factor, f.q, f.masker, f.maskee) for f in filters]


def _limit_loudness(filters: list[list[EqFilter]], bands: BandEnergies, max_loss_lu: float) -> list[list[EqFilter]]:
    """Scale each track's cuts so that its estimated BS.1770 loss stays within ``max_loss_lu``."""
    out = []
    for i, track in enumerate(filters):
        one = [[] for _ in filters]
        one[i] = track
        if -filters_loudness_change_lu(one, bands)[i] <= max_loss_lu:
            out.append(track)
            continue
        lo, hi = 0.0, 1.0
        for _ in range(12):  # the loss grows monotonically with depth
            mid = 0.5 * (lo + hi)
            one[i] = _scaled(track, mid)
            lo, hi = (mid, hi) if -filters_loudness_change_lu(one, bands)[i] <= max_loss_lu else (lo, mid)
        out.append([f for f in _scaled(track, lo) if f.gain_db < 0.0])
    return out


def design_eq(
    bands: BandEnergies,
    *,
    gains_db,
    importance,
    strength: float = 1.0,
    max_cut_db: float = DEFAULT_MAX_CUT_DB,
    max_filters: int = DEFAULT_MAX_FILTERS,
    n_essential: int = 3,
    essential_cut_fraction: float = 0.5,
    min_cut_db: float = 0.5,
    max_loudness_loss_lu: float = DEFAULT_MAX_LOUDNESS_LOSS_LU,
    tolerance: float = IMPORTANCE_TOLERANCE,
    pool_s: float | None = DESIGN_POOL_S,
    maxiter: int = 40,
) -> list[list[EqFilter]]:
    """Design masking-reducing cuts for every track (:func:`cut_curve_db`, then :func:`fit_filters`).

    Parameters
    ----------
    bands : BandEnergies
        Unit-gain analysis (:func:`imgext.masking.band_energies`).
    gains_db : np.ndarray [shape=(n_tracks,)]
        Mix gains in dB.
    importance : np.ndarray [shape=(n_tracks,)], in [0, 1]
    strength : float in [0, 1]
        EQ strength: scales the cut curve; 0 designs no filter.
    max_cut_db : float > 0
        Deepest filter gain in dB (default 6).
    max_filters : int > 0
        Filters per track at most.
    n_essential : int >= 0
        A masker's loudest bands (by loudness weight).
    essential_cut_fraction : float in [0, 1]
        Essential bands are cut at most this fraction of ``max_cut_db`` (0: never).
    min_cut_db : float >= 0
        Filters shallower than this are skipped.
    max_loudness_loss_lu : float > 0
        Cuts are scaled down so no track loses more BS.1770 loudness than this (estimated
        from its K-weighted spectrum, :func:`filters_loudness_change_lu`).
    tolerance : float >= 0
        Importance difference treated as equal.
    pool_s : float or None
        Frame length for the cut-curve search, s (:func:`cut_curve_db`).
    maxiter : int > 0
        L-BFGS-B iterations of the search.

    Returns
    -------
    list of list of EqFilter
        One list per track: the cuts applied to that track (as masker).
    """
    if not 0.0 <= strength <= 1.0:
        raise ParameterError(f"strength={strength} must lie in [0, 1]")
    if not max_cut_db > 0:
        raise ParameterError(f"max_cut_db={max_cut_db} must be positive")
    if max_filters < 1:
        raise ParameterError(f"max_filters={max_filters} must be at least 1")
    normalised_importance(importance, bands.n_tracks)
    if strength == 0.0:
        return [[] for _ in range(bands.n_tracks)]
    curve = cut_curve_db(bands, gains_db=gains_db, importance=importance, max_cut_db=max_cut_db,
                         max_loudness_loss_lu=max_loudness_loss_lu, n_essential=n_essential,
                         essential_cut_fraction=essential_cut_fraction, tolerance=tolerance,
                         pool_s=pool_s, maxiter=maxiter)
    specs, shapes = _candidates(bands.sample_rate, bands.n_fft, tuple(bands.band_edges_hz.tolist()))
    weight, maskee = curve.benefit.sum(axis=1), np.argmax(curve.benefit, axis=1)
    picks = [_pursuit(curve.cut_db[i], weight[i], shapes, max_filters=max_filters, max_cut_db=max_cut_db,
                      min_cut_db=min_cut_db, protect=curve.essential[i]) for i in range(bands.n_tracks)]
    depths = _refine_depths(curve, picks, shapes, max_cut_db, REFINE_MAXITER)
    filters = [_filters_from(chosen, strength * d, specs, shapes, curve.cut_db[i], weight[i], maskee[i], i, min_cut_db)
               for i, ((chosen, _), d) in enumerate(zip(picks, depths))]
    filters = _limit_loudness(filters, bands, max_loudness_loss_lu)
    filters = [_limit_depth(track, bands.sample_rate, max_cut_db, min_cut_db) for track in filters]
    return _spare_top(filters, bands, gains_db, importance)


def combined_response_db(filters: list[EqFilter], sample_rate: int, *, n_points: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """Response of one track's whole cascade on a log grid 20 Hz .. 0.49 fs: ``(frequency_hz, gain_db)``."""
    f = np.geomspace(20.0, 0.49 * sample_rate, n_points)
    if not filters:
        return f, np.zeros(n_points)
    _, h = signal.sosfreqz(_track_sos(filters, sample_rate), worN=f, fs=sample_rate)
    return f, 20.0 * np.log10(np.maximum(np.abs(h), 1e-12))


def _limit_depth(filters: list[EqFilter], sample_rate: int, max_cut_db: float, min_cut_db: float) -> list[EqFilter]:
    """Scale a track's cuts so that their *combined* response never goes below ``-max_cut_db``.

    Overlapping filters add in dB: two -6 dB bells a third of an octave apart reach -7.85 dB
    between them (issue 13). Gains scale the dB response almost linearly, so a few fixed-point
    steps settle it; filters left under ``min_cut_db`` are dropped.
    """
    for _ in range(6):
        deepest = -combined_response_db(filters, sample_rate)[1].min(initial=0.0)
        if deepest <= max_cut_db + 1e-3:
            break
        filters = _scaled(filters, max_cut_db / deepest * 0.999)
    return [f for f in filters if f.gain_db <= -min_cut_db]


def _spare_top(filters: list[list[EqFilter]], bands: BandEnergies, gains_db, importance) -> list[list[EqFilter]]:
    """Drop the most important track's own cuts if, at the analysis resolution, they leave it more masked than dry.

    Cuts on the others only lower its thresholds, so without its own cuts it cannot be worse off.
    Tracks tied at the top (:func:`top_tracks`) are judged on their mean, so two equally
    important tracks may still share a fix (each cut a little where it covers the other).
    """
    top = top_tracks(importance)
    if not any(filters[i] for i in top):
        return filters
    dry = masking_report(bands, gains_db=gains_db, importance=importance)
    eq = masking_report(bands, gains_db=gains_db, importance=importance, eq_db=eq_response_db(filters, bands))
    if (eq.masked_fraction[top].mean() <= dry.masked_fraction[top].mean()
            and eq.by_rest_db[top].mean() <= dry.by_rest_db[top].mean()):
        return filters
    return [[] if i in top else f for i, f in enumerate(filters)]

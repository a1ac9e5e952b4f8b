"""Masking-driven adaptive EQ: cuts on maskers, designed from the directional masking matrix.

Rules (``shared/design/masking.md`` 5b, after Zhao & Perez-Cota 2024 and Hafezi & Reiss 2015):
a masker i is cut in band b only for maskees at least as important (``p_j >= p_i - delta``;
equally important pairs share the cut), never in i's own essential bands, never boosted.
Filters are RBJ cookbook biquads rendered with :func:`scipy.signal.sosfilt`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np
import scipy.signal

from .errors import ParameterError
from .masking import BandEnergies, loudness_change_lu, masking_detail, normalised_importance, spreading_matrix

__all__ = [
    "FilterKind",
    "EqFilter",
    "rbj_sos",
    "biquad_sos",
    "importance_share",
    "cut_demand_db",
    "own_band_share",
    "essential_bands",
    "design_eq",
    "apply_eq",
    "band_response_db",
    "eq_response_db",
    "DEFAULT_MAX_CUT_DB",
    "IMPORTANCE_TOLERANCE",
]

DEFAULT_MAX_CUT_DB = 6.0
"""Deepest cut in dB (Ronan et al.'s +-6 dB EQ bounds)."""
IMPORTANCE_TOLERANCE = 0.1
"""Importances within this distance count as equal (the cut is then split in half)."""
SHELF_Q = 1.0 / np.sqrt(2.0)
"""Shelf Q; 1/sqrt(2) is the RBJ shelf slope S = 1 (steepest without overshoot)."""
LOW_SHELF_BELOW_HZ = 150.0
HIGH_SHELF_ABOVE_HZ = 8000.0


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
    """The (1, 6) second-order section of ``filt`` at ``sample_rate`` Hz."""
    return rbj_sos(filt.kind, frequency_hz=filt.frequency_hz, gain_db=filt.gain_db, q=filt.q, sample_rate=sample_rate)


def _track_sos(filters: list[EqFilter], sample_rate: int) -> np.ndarray | None:
    return np.concatenate([biquad_sos(f, sample_rate) for f in filters]) if filters else None


def apply_eq(tracks: np.ndarray, filters: list[list[EqFilter]], sample_rate: int) -> np.ndarray:
    """Filter each track with its cascade of cuts.

    Parameters
    ----------
    tracks : np.ndarray [shape=(n_tracks, n_samples)]
    filters : list of list of EqFilter
        One list per track (may be empty).
    sample_rate : int
        In Hz.

    Returns
    -------
    np.ndarray [shape=(n_tracks, n_samples), dtype=float32]
        Tracks without filters are copied unchanged.
    """
    x = np.asarray(tracks, dtype=np.float32)
    if x.ndim != 2 or len(filters) != x.shape[0]:
        raise ParameterError(f"need one filter list per track: tracks {x.shape}, {len(filters)} lists")
    out = x.copy()
    for i, track_filters in enumerate(filters):
        sos = _track_sos(track_filters, sample_rate)
        if sos is not None:  # float64 state: low-frequency biquads are noisy in float32
            out[i] = scipy.signal.sosfilt(sos, x[i].astype(np.float64))
    return out


def _bin_membership(bands: BandEnergies) -> tuple[np.ndarray, np.ndarray]:
    freqs = np.fft.rfftfreq(bands.n_fft, 1.0 / bands.sample_rate)
    idx = np.searchsorted(bands.band_edges_hz, freqs, side="right") - 1
    ok = (freqs > 0) & (idx >= 0) & (idx < bands.n_bands)
    u = np.zeros((bands.n_bands, len(freqs)))
    u[idx[ok], np.flatnonzero(ok)] = 1.0
    return freqs, u / np.maximum(u.sum(axis=1, keepdims=True), 1.0)


def band_response_db(filters: list[EqFilter], bands: BandEnergies) -> np.ndarray:
    """Band-averaged power response of one track's filters, shape (n_bands,), dB.

    ``10 log10(mean |H(f)|^2)`` over the STFT bins of each band: exact for band energies
    of signals that are flat within a band.
    """
    if not filters:
        return np.zeros(bands.n_bands)
    freqs, u = _bin_membership(bands)
    _, h = scipy.signal.sosfreqz(_track_sos(filters, bands.sample_rate), worN=freqs, fs=bands.sample_rate)
    return 10.0 * np.log10(np.maximum(u @ (np.abs(h) ** 2), 1e-30))


def eq_response_db(filters: list[list[EqFilter]], bands: BandEnergies) -> np.ndarray:
    """:func:`band_response_db` for every track, shape (n_tracks, n_bands)."""
    return np.stack([band_response_db(f, bands) for f in filters]) if filters else np.zeros((0, bands.n_bands))


def importance_share(importance, *, tolerance: float = IMPORTANCE_TOLERANCE) -> np.ndarray:
    """(n_tracks, n_tracks) share of a cut masker i owes maskee j.

    1 if j is more important than i (by more than ``tolerance``), 0.5 if they are equally
    important (the cut is split between them), 0 if j is less important; diagonal 0.
    """
    p = np.asarray(importance, dtype=np.float64)
    diff = p[None, :] - p[:, None]
    share = np.where(diff > tolerance, 1.0, np.where(np.abs(diff) <= tolerance, 0.5, 0.0))
    np.fill_diagonal(share, 0.0)
    return share


def own_band_share(bands: BandEnergies) -> np.ndarray:
    """(n_tracks, n_bands, n_frames) share of a track's threshold in band b cast by its own energy in b.

    A cut in band b only lowers the part of the threshold that band b itself produces; the
    rest is spread from neighbouring bands and is lowered by cutting those instead.
    """
    s = spreading_matrix(bands.band_centres_hz).astype(np.float32)
    total = np.einsum("nbt,bc->nct", bands.masker_energy, s, optimize=True)
    own = bands.masker_energy * np.diag(s)[None, :, None]
    return own / np.maximum(total, np.float32(1e-30))


def cut_demand_db(
    detail, importance, *, own_share: np.ndarray | None = None, tolerance: float = IMPORTANCE_TOLERANCE,
    quantile: float = 0.75, min_contribution: float = 1.0 / 3.0,
) -> tuple[np.ndarray, np.ndarray]:
    """How deep each masker should be cut per band, and how much it would help.

    For maskee j in band b, the cells that matter are those where j is active and masked
    by the rest of the mix and masker i casts at least ``min_contribution`` of the summed
    threshold. Thresholds add in power, so every such contributor must drop by the
    masking depth: the demand is the ``quantile`` of ``by_rest_db`` over those cells, times
    the importance share (:func:`importance_share`).

    Parameters
    ----------
    detail : imgext.masking.MaskingDetail
    importance : np.ndarray [shape=(n_tracks,)], in [0, 1]
    own_share : np.ndarray [shape=(n_tracks, n_bands, n_frames)] or None
        :func:`own_band_share`; counts only the threshold a cut in that band can lower.

    Returns
    -------
    demand_db : np.ndarray [shape=(n_tracks, n_tracks, n_bands)], >= 0
        Masker i, maskee j, band b.
    cells : np.ndarray [shape=(n_tracks, n_tracks, n_bands, n_frames), dtype=bool]
        The cells behind each demand.
    """
    share = importance_share(importance, tolerance=tolerance)
    t_lin = np.power(10.0, detail.threshold_db.astype(np.float64) / 10.0)  # (N, B, T)
    rest = t_lin.sum(axis=0)[None] - t_lin  # threshold on maskee j from all others
    own = t_lin if own_share is None else t_lin * own_share
    contrib = own[:, None] / np.maximum(rest[None, :], 1e-30)  # (i, j, B, T)
    masked = detail.active & (detail.by_rest_db > 0)
    cells = masked[None, :] & (contrib >= min_contribution) & (share[:, :, None, None] > 0)
    depth = np.where(cells, detail.by_rest_db[None, :], np.nan)
    demand = np.zeros(cells.shape[:3])
    has = cells.any(axis=-1)
    if has.any():
        demand[has] = np.nanquantile(depth[has], quantile, axis=-1)
    return demand * share[:, :, None], cells


def essential_bands(weight: np.ndarray, *, n_essential: int = 3) -> np.ndarray:
    """(n_tracks, n_bands) bool: each track's ``n_essential`` loudest bands (Hafezi's R_T = 3)."""
    loud = weight.sum(axis=-1)
    order = np.argsort(-loud, axis=1)[:, :n_essential]
    out = np.zeros(loud.shape, dtype=bool)
    np.put_along_axis(out, order, True, axis=1)
    return out & (loud > 0)


def _regions(selected: np.ndarray) -> list[tuple[int, int]]:
    """Runs of adjacent True bands as (first, last) inclusive."""
    idx = np.flatnonzero(selected)
    if idx.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(idx) > 1)
    starts = np.r_[idx[0], idx[breaks + 1]]
    ends = np.r_[idx[breaks], idx[-1]]
    return list(zip(starts.tolist(), ends.tolist()))


def _place(i: int, cut: np.ndarray, maskee: np.ndarray, score: np.ndarray, bands: BandEnergies, *,
           max_filters: int, min_cut_db: float) -> list[EqFilter]:
    """Filters for masker ``i`` from its per-band cut curve (masking.md 5b.4)."""
    usable = (cut <= -min_cut_db) & (score > 1e-3)
    top = np.argsort(-np.where(usable, score, -1.0))[:max_filters]
    selected = np.zeros(bands.n_bands, dtype=bool)
    selected[top[usable[top]]] = True
    edges, nyquist = bands.band_edges_hz, bands.sample_rate / 2.0
    out = []
    for lo, hi in _regions(selected):
        f_lo, f_hi = max(edges[lo], 20.0), min(edges[hi + 1], 0.95 * nyquist)
        w = score[lo : hi + 1]
        gain = float(np.dot(w, cut[lo : hi + 1]) / w.sum())
        if gain > -min_cut_db:
            continue
        f0 = float(np.sqrt(f_lo * f_hi))
        who = int(maskee[lo + int(np.argmax(w))])
        if f0 < LOW_SHELF_BELOW_HZ:
            out.append(EqFilter(FilterKind.LOW_SHELF, f_hi, gain, SHELF_Q, i, who))
        elif f_lo >= HIGH_SHELF_ABOVE_HZ:
            out.append(EqFilter(FilterKind.HIGH_SHELF, f_lo, gain, SHELF_Q, i, who))
        else:
            out.append(EqFilter(FilterKind.PEAK, f0, gain, float(np.clip(f0 / (f_hi - f_lo), 0.5, 4.0)), i, who))
    return out


def _scaled(filters: list[EqFilter], factor: float) -> list[EqFilter]:
    return [EqFilter(f.kind, f.frequency_hz, f.gain_db * factor, f.q, f.masker, f.maskee) for f in filters]


def _limit_loudness(filters: list[list[EqFilter]], bands: BandEnergies, max_loss_lu: float) -> list[list[EqFilter]]:
    """Scale each track's cuts so that its estimated BS.1770 loss stays within ``max_loss_lu``."""
    h = eq_response_db(filters, bands)
    if -loudness_change_lu(bands, h).min(initial=0.0) <= max_loss_lu:
        return filters
    lo, hi = np.zeros(len(filters)), np.ones(len(filters))
    for _ in range(12):  # the loss grows monotonically with depth: bisect all tracks at once
        mid = 0.5 * (lo + hi)
        ok = -loudness_change_lu(bands, mid[:, None] * h) <= max_loss_lu
        lo, hi = np.where(ok, mid, lo), np.where(ok, hi, mid)
    ok_full = -loudness_change_lu(bands, h) <= max_loss_lu
    return [track if ok_full[i] else _scaled(track, lo[i]) for i, track in enumerate(filters)]


def design_eq(
    bands: BandEnergies,
    *,
    gains_db,
    importance,
    strength: float = 1.0,
    max_cut_db: float = DEFAULT_MAX_CUT_DB,
    max_filters: int = 3,
    n_essential: int = 3,
    min_cut_db: float = 0.5,
    max_loudness_loss_lu: float = 1.5,
    tolerance: float = IMPORTANCE_TOLERANCE,
) -> list[list[EqFilter]]:
    """Design masking-reducing cuts for every track from the masking analysis.

    Parameters
    ----------
    bands : BandEnergies
        Unit-gain analysis (:func:`imgext.masking.band_energies`).
    gains_db : np.ndarray [shape=(n_tracks,)]
        Mix gains in dB.
    importance : np.ndarray [shape=(n_tracks,)], in [0, 1]
    strength : float in [0, 1]
        EQ strength; 0 designs no filter.
    max_cut_db : float > 0
        Deepest filter gain in dB (default 6).
    max_filters : int > 0
        Bands selected per masker (adjacent ones merge into one filter); Hafezi's nF = 3.
    n_essential : int >= 0
        A masker's loudest bands that are never cut.
    min_cut_db : float >= 0
        Filters shallower than this are skipped.
    max_loudness_loss_lu : float > 0
        Cuts are scaled down so no track loses more BS.1770 loudness than this (estimated).
    tolerance : float >= 0
        Importance difference treated as equal.

    Returns
    -------
    list of list of EqFilter
        One list per track: the cuts applied to that track (as masker).
    """
    if not 0.0 <= strength <= 1.0:
        raise ParameterError(f"strength={strength} must lie in [0, 1]")
    if not max_cut_db > 0:
        raise ParameterError(f"max_cut_db={max_cut_db} must be positive")
    normalised_importance(importance, bands.n_tracks)
    if strength == 0.0:
        return [[] for _ in range(bands.n_tracks)]
    d = masking_detail(bands, gains_db=gains_db)
    demand, cells = cut_demand_db(d, importance, own_share=own_band_share(bands), tolerance=tolerance)
    cut_ijb = np.minimum(max_cut_db, strength * demand)  # (i, j, B) dB, >= 0
    # Value of a cut: maskee importance x the loudness-weighted masking (dB) it removes.
    p = np.asarray(importance, dtype=np.float64)
    w_tot = np.maximum(d.weight.sum(axis=(1, 2)), 1e-30)  # (N,)
    removed = np.where(cells, np.minimum(d.by_rest_db[None, :], cut_ijb[..., None]), 0.0)
    value_ijb = np.einsum("ijbt,jbt->ijb", removed, d.weight) / w_tot[None, :, None] * (p[None, :, None] + 1e-3)
    maskee = np.argmax(value_ijb * (cut_ijb > 0), axis=1)  # (i, B)
    cut = -np.take_along_axis(cut_ijb, maskee[:, None], axis=1)[:, 0]
    value = value_ijb.sum(axis=1)
    essential = essential_bands(d.weight, n_essential=n_essential)
    cut[essential], value[essential] = 0.0, 0.0
    maskee = np.where(cut < 0, maskee, -1)
    filters = [
        _place(i, cut[i], maskee[i], value[i], bands, max_filters=max_filters, min_cut_db=min_cut_db)
        for i in range(bands.n_tracks)
    ]
    return _limit_loudness(filters, bands, max_loudness_loss_lu)

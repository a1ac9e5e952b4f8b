"""Binaural (headphone) rendering with a measured HRTF.

The HRTF is the MIT KEMAR set (Gardner & Martin, MIT Media Lab, 1994; free to
use with citation) as Debian's ``libmysofa1`` ships it, read with ``sofar``.
Each track's direct sound is convolved with the head-related impulse response
of the nearest measured direction; the reverb bus stays as it is (diffuse,
already decorrelated left/right).  When the file or ``sofar`` is missing,
:func:`load_hrtf` raises :class:`HrtfUnavailable` with the reason, and the
caller falls back to the stereo mix.
"""

from __future__ import annotations

import math
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from imgext.audio.dsp import signal
from imgext.errors import ImgExtError, ParameterError

__all__ = [
    "DEFAULT_SOFA_PATHS",
    "HRTF_CREDIT",
    "Hrtf",
    "HrtfUnavailable",
    "load_hrtf",
    "render_binaural",
    "binaural_mix",
    "headphone_mix",
]

DEFAULT_SOFA_PATHS = (
    "/usr/share/libmysofa/MIT_KEMAR_normal_pinna.sofa",
    "/usr/share/libmysofa/default.sofa",
)
"""Where Debian's libmysofa1 puts the MIT KEMAR set; ``IMGEXT_HRTF_SOFA`` names another file."""

HRTF_CREDIT = (
    "Binaural render: MIT KEMAR HRTF (normal pinna), Bill Gardner and Keith Martin, MIT Media Lab, 1994 "
    "-- https://sound.media.mit.edu/resources/KEMAR.html -- free to use with this citation"
)


class HrtfUnavailable(ImgExtError):
    """No HRTF could be loaded (file missing, unreadable, or sofar not installed)."""


@dataclass(frozen=True)
class Hrtf:
    """Head-related impulse responses at one sample rate.

    Attributes
    ----------
    irs : np.ndarray [shape=(n_directions, 2, n_taps), dtype=float32]
        Left and right ear responses.
    directions : np.ndarray [shape=(n_directions, 3)]
        Unit vectors (x front, y left, z up) of the measured directions.
    azimuth_deg, elevation_deg : np.ndarray [shape=(n_directions,)]
        SOFA convention: azimuth positive to the left.
    sample_rate : int
    source : str
        File it came from.
    """

    irs: np.ndarray
    directions: np.ndarray
    azimuth_deg: np.ndarray
    elevation_deg: np.ndarray
    sample_rate: int
    source: str

    def nearest(self, azimuth_deg: float, elevation_deg: float) -> int:
        """Index of the measured direction nearest (great circle) to the one asked for."""
        return int(np.argmax(self.directions @ _unit(azimuth_deg, elevation_deg)))


def _unit(az_deg, el_deg) -> np.ndarray:
    az, el = np.radians(az_deg), np.radians(el_deg)
    return np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], axis=-1)


_cache: dict = {}
_lock = threading.Lock()


def load_hrtf(sample_rate: int, path: str | os.PathLike | None = None) -> Hrtf:
    """Load (once per process and rate) the HRTF, resampled to ``sample_rate``.

    Parameters
    ----------
    sample_rate : int
        In Hz.
    path : path-like, optional
        A SOFA file (SimpleFreeFieldHRIR); default ``IMGEXT_HRTF_SOFA`` or :data:`DEFAULT_SOFA_PATHS`.

    Raises
    ------
    HrtfUnavailable
        With the reason, when no usable file is there.
    """
    candidates = [path] if path else ([os.environ["IMGEXT_HRTF_SOFA"]] if os.environ.get("IMGEXT_HRTF_SOFA") else list(DEFAULT_SOFA_PATHS))
    found = next((Path(p) for p in candidates if p and Path(p).is_file()), None)
    if found is None:
        raise HrtfUnavailable(
            f"no HRTF file at {', '.join(str(p) for p in candidates)} (install Debian's libmysofa1); "
            "the headphone mix is not written"
        )
    key = (str(found), int(sample_rate))
    with _lock:
        if key in _cache:
            return _cache[key]
        try:
            import sofar
        except ImportError:
            raise HrtfUnavailable("the sofar package is not installed; the headphone mix is not written") from None
        try:
            sofa = sofar.read_sofa(str(found), verify=False, verbose=False)
            irs = np.asarray(sofa.Data_IR, dtype=np.float64)
            rate = int(round(float(np.asarray(sofa.Data_SamplingRate).reshape(-1)[0])))
            pos = np.asarray(sofa.SourcePosition, dtype=np.float64)
        except Exception as exc:  # a broken file is reported, never a traceback
            raise HrtfUnavailable(f"the HRTF file {found.name} cannot be read ({type(exc).__name__}); "
                                  "the headphone mix is not written") from None
        if irs.ndim != 3 or irs.shape[1] != 2 or pos.shape[0] != irs.shape[0]:
            raise HrtfUnavailable(f"the HRTF file {found.name} is not a two-ear impulse-response set")
        if rate != sample_rate:
            g = math.gcd(rate, int(sample_rate))
            irs = signal.resample_poly(irs, int(sample_rate) // g, rate // g, axis=-1)
        hrtf = Hrtf(
            irs=irs.astype(np.float32),
            directions=_unit(pos[:, 0], pos[:, 1]),
            azimuth_deg=pos[:, 0].copy(),
            elevation_deg=pos[:, 1].copy(),
            sample_rate=int(sample_rate),
            source=str(found),
        )
        _cache[key] = hrtf
        return hrtf


def render_binaural(tracks: np.ndarray, gains, azimuth_deg, elevation_deg, hrtf: Hrtf) -> np.ndarray:
    """The direct sound of every track at its direction, for headphones.

    Parameters
    ----------
    tracks : np.ndarray [shape=(n_tracks, n_samples)]
        Mono tracks (after EQ and distance filtering).
    gains : array-like [shape=(n_tracks,)]
        Linear gain of each track (the master gain included or not: it is linear).
    azimuth_deg, elevation_deg : array-like [shape=(n_tracks,)]
        Direction of each track; azimuth positive to the left (SOFA).
    hrtf : Hrtf
        At the tracks' sample rate.

    Returns
    -------
    np.ndarray [shape=(2, n_samples), dtype=float32]
        Tracks at one direction are summed before one convolution. The response's
        tail past the end wraps round to the start (the scene is a loop).
    """
    x = np.asarray(tracks, dtype=np.float32)
    if x.ndim != 2:
        raise ParameterError(f"tracks must have shape (n_tracks, n_samples), got {x.shape}")
    g = np.asarray(gains, dtype=np.float64).reshape(-1)
    az = np.asarray(azimuth_deg, dtype=np.float64).reshape(-1)
    el = np.asarray(elevation_deg, dtype=np.float64).reshape(-1)
    if not (g.size == az.size == el.size == x.shape[0]):
        raise ParameterError("need one gain, azimuth and elevation per track")
    n = x.shape[1]
    out = np.zeros((2, n), dtype=np.float32)
    if x.shape[0] == 0 or n == 0:
        return out
    idx = np.array([hrtf.nearest(a, e) for a, e in zip(az, el)])
    for d in np.unique(idx):
        sel = np.flatnonzero(idx == d)
        mono = (g[sel].astype(np.float32) @ x[sel]).astype(np.float32)
        full = signal.oaconvolve(mono[None, :], hrtf.irs[d], mode="full", axes=-1)
        out += full[:, :n]
        tail = full[:, n:]
        k = min(n, tail.shape[1])
        out[:, :k] += tail[:, :k]
    return out


def binaural_mix(tracks: np.ndarray, gains_db, azimuth_deg, elevation_deg, reverb, *, hrtf: Hrtf,
                 loudness_lufs: float, peak_dbfs: float):
    """The headphone mix: every track at its direction, plus the diffuse reverb bus, normalised like the stereo mix.

    Parameters
    ----------
    tracks : np.ndarray [shape=(n_tracks, n_samples)]
        The tracks as they enter the stereo mix (after EQ and air absorption).
    gains_db : array-like [shape=(n_tracks,)]
        Their gains in the stereo mix (before the master gain).
    azimuth_deg, elevation_deg : array-like [shape=(n_tracks,)]
    reverb : np.ndarray [shape=(2, n_samples)] or None
        What is diffuse at unit master gain: the shared reverb bus (decorrelated, so it is
        diffuse as it is), and the stereo stems of wide sources (areas, the ambience), whose
        gain in ``gains_db`` is then ``-inf``.
    hrtf : Hrtf
    loudness_lufs, peak_dbfs : float
        Same target and ceiling as the stereo mix.

    Returns
    -------
    imgext.mix.render.Mix
        ``audio`` is the binaural mix; it has no per-track coefficients (``coefficients`` is empty).
    """
    from imgext.mix.render import render_mix

    x = np.asarray(tracks, dtype=np.float32)
    g = 10.0 ** (np.asarray(gains_db, dtype=np.float64) / 20.0)
    bus = render_binaural(x, g, azimuth_deg, elevation_deg, hrtf)
    if reverb is not None:
        bus = bus + np.asarray(reverb, dtype=np.float32)
    return render_mix(np.zeros((0, x.shape[1]), dtype=np.float32), pans=[], gains_db=[], sample_rate=hrtf.sample_rate,
                      loudness_lufs=loudness_lufs, peak_dbfs=peak_dbfs, reverb=bus)


def headphone_mix(outcome, tracks, settings):
    """The headphone mix of a rendered stereo mix: ``(Mix, None)``, or ``(None, reason)`` without an HRTF.

    Point sources are placed at their direction (:meth:`Tracks.directions_deg` within the field of
    view); wide ones (areas, the ambience) keep their stereo image and, like the reverb bus, stay
    diffuse.  Same loudness target and ceiling as the stereo mix.

    Parameters
    ----------
    outcome : imgext.mix.mixer.MixOutcome
    tracks : imgext.composition.tracks.Tracks
    settings : imgext.options.MixSettings
    """
    try:
        hrtf = load_hrtf(tracks.sample_rate)
    except HrtfUnavailable as exc:
        return None, str(exc)
    mix = outcome.mix
    diffuse = getattr(outcome, "reverb_bus", None)
    wide = [k for k in range(tracks.n_tracks) if k in mix.sides or tracks.names[k].startswith("ambience")]
    if wide:
        unit = np.float32(1.0 / (10.0 ** (mix.master_gain_db / 20.0)))
        spread = sum(mix.stem(outcome.processed, k, limiter=False) for k in wide) * unit
        diffuse = spread if diffuse is None else diffuse + spread
    gains = np.where(np.isin(np.arange(tracks.n_tracks), wide), -np.inf, outcome.gains_db)
    az, el = tracks.directions_deg(settings.fov_deg)
    return binaural_mix(outcome.processed, gains, az, el, diffuse, hrtf=hrtf,
                        loudness_lufs=settings.loudness_lufs, peak_dbfs=settings.peak_dbfs), None

"""A mix taken apart for a browser player: one mono signal per track, its level and pan, the reverb and limiter.

The app's stems player (Web Audio) rebuilds the mix from these parts so that
level, pan, mute and solo act at once in the browser.  The parts reproduce the
server's mix exactly (:meth:`PreviewMix.render`, at the parts' sample rate):

``mix = envelope * (sum_k level_k * pan_gains(pan_k) * x_k + sides + reverb_gain * reverb)``

where each ``x_k`` is the track as it enters the mix (after EQ and air
absorption, before pan and gain) and a Web Audio ``StereoPannerNode`` applies
exactly :func:`~imgext.mix.render.pan_gains` to a mono input.  Signals are
named by a digest of their samples, so a signal that did not change between two
renders (a track the EQ did not touch, the dry tracks of the "before" mix) keeps
its id and is neither encoded nor sent again.
"""

from __future__ import annotations

import io
import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field, replace

import numpy as np
import soundfile as sf
import xxhash

from imgext.audio.io import db_to_gain, nonzero_spans, resample_sparse
from imgext.errors import ParameterError
from imgext.mix.render import pan_gains

__all__ = ["EncodedSignal", "PreviewEncoder", "encode_sparse", "PreviewMix", "PreviewTrack", "preview_mix", "signal_id", "DEFAULT_PREVIEW_RATE",
           "preview_rate_for",
           "LEVEL_FIELDS", "DEFERRED_FIELDS", "PLACING_FIELDS", "COMPOSING_FIELDS", "LevelMove", "level_change", "level_move", "measure_powers", "releveled"]

DEFAULT_PREVIEW_RATE = 24000
"""Highest sample rate of the browser preview in Hz: 12 kHz of bandwidth, half the data of 48 kHz."""


def preview_rate_for(sample_rate: int) -> int:
    """The preview's sample rate in Hz for a mix at ``sample_rate`` Hz.

    Half the mix's rate when that lies between 22.05 and 24 kHz (44.1 -> 22.05 kHz, 48 -> 24 kHz:
    an exact halving, which soxr does in under half the CPU of 44.1 -> 24 kHz, 7.7 against
    16.8 ms per 30 s track); else :data:`DEFAULT_PREVIEW_RATE`, never above ``sample_rate``.
    """
    half = int(sample_rate) // 2
    if int(sample_rate) % 2 == 0 and 22050 <= half <= DEFAULT_PREVIEW_RATE:
        return half
    return int(min(DEFAULT_PREVIEW_RATE, sample_rate))


def signal_id(signal: np.ndarray, sample_rate: int) -> str:
    """A short content id (XXH3-128, 16 hex digits) of ``signal`` as float32 at ``sample_rate`` Hz.

    An id within one session's player (its encoder and the browser's signal cache), not a secret or a
    signature: XXH3 reads ~20 GB/s, SHA-256 ~1.3 (a 30 s preview track: 0.11 against 1.9 ms; at 29 ducked
    tracks SHA-256 was ~0.07 CPU-s of every render when the sliders rest).
    """
    x = np.ascontiguousarray(signal, dtype=np.float32)
    h = xxhash.xxh3_128(f"{x.shape}:{sample_rate}:".encode())
    h.update(memoryview(x).cast("B"))  # (the array's own bytes: no copy to fault in)
    return h.hexdigest()[:16]


@dataclass(frozen=True)
class PreviewTrack:
    """One track of a :class:`PreviewMix`.

    Attributes
    ----------
    name : str
    signal : str
        Id of the mono signal in :attr:`PreviewMix.signals`.
    level : float
        Linear amplitude of the signal in the mix (track gain, master gain, loudness match,
        and for a wide track the mid share ``cos(width * pi / 4)``); the pan law comes on top.
    pan : float
        In [-1, 1] (-1 hard left).
    side : str or None
        Id of a wide (area) track's companion signal, or None.
    side_level : float
        Linear amplitude of the companion: ``L = +side_level * cos(theta) * s``,
        ``R = -side_level * sin(theta) * s`` with ``theta = (pan + 1) * pi / 4``.
    wet : str or None
        Id of a ducked track's wet part (its full duck minus the dry track, :meth:`imgext.mix.mixer.Mixer.blend_parts`),
        or None; ``signal`` is then the dry track, and the two go through the same level and pan.
    wet_level : float
        Linear amplitude of the wet part: ``level * strength`` (the EQ strength is heard as this level).
    """

    name: str
    signal: str
    level: float
    pan: float
    side: str | None = None
    side_level: float = 0.0
    wet: str | None = None
    wet_level: float = 0.0


@dataclass(frozen=True)
class PreviewMix:
    """A mix as parts for a browser player (see the module docstring for the sum).

    Attributes
    ----------
    tracks : list of PreviewTrack
    reverb : str or None
        Id of the stereo reverb bus (``(2, n_samples)``) at unit master gain, or None.
    reverb_level : float
        Linear gain of the reverb bus in the mix (master gain and loudness match).
    envelope : str or None
        Id of the limiter's gain envelope ``(n_samples,)``, applied to the sum; None when not limited.
    sample_rate : int
        In Hz.
    n_samples : int
        Length of every signal (the scene length, played as a loop).
    signals : dict of str -> np.ndarray
        The signals by id, float32: mono ``(n_samples,)`` or stereo ``(2, n_samples)``.
    """

    tracks: list[PreviewTrack]
    reverb: str | None
    reverb_level: float
    envelope: str | None
    sample_rate: int
    n_samples: int
    signals: dict[str, np.ndarray] = field(repr=False)
    exact: bool = True
    """False for a level preview (:func:`releveled`): the levels of a new setting on an earlier render's signals."""
    strength: float | None = None
    """The EQ strength its wet parts are heard at, when its ducked tracks come as dry and wet parts (else None)."""

    @property
    def duration_s(self) -> float:
        """Length of the loop in seconds."""
        return self.n_samples / self.sample_rate

    def describe(self) -> dict:
        """The mix without its samples, as JSON-ready plain data (ids, levels, pans)."""
        return {
            "tracks": [{"name": t.name, "signal": t.signal, "level": t.level, "pan": t.pan, "side": t.side,
                        "side_level": t.side_level, "wet": t.wet, "wet_level": t.wet_level} for t in self.tracks],
            "reverb": self.reverb, "reverb_level": self.reverb_level, "envelope": self.envelope, "exact": self.exact,
        }

    def render(self, *, levels_db=None, pans=None, audible=None, reverb: bool = True) -> np.ndarray:
        """The stereo sum the browser plays, in numpy: the reference for the player.

        Parameters
        ----------
        levels_db : array-like [shape=(n_tracks,)], optional
            The listener's level offsets in dB (default 0).
        pans : array-like [shape=(n_tracks,)], optional
            Pans in [-1, 1] (default: the mix's own).
        audible : array-like of bool [shape=(n_tracks,)], optional
            False for a muted (or not soloed) track (default: all audible).
        reverb : bool
            Include the reverb bus.

        Returns
        -------
        np.ndarray [shape=(2, n_samples), dtype=float32]
        """
        n = len(self.tracks)
        offsets = np.zeros(n) if levels_db is None else np.asarray(levels_db, dtype=np.float64)
        pan = np.array([t.pan for t in self.tracks]) if pans is None else np.asarray(pans, dtype=np.float64)
        on = np.ones(n, dtype=bool) if audible is None else np.asarray(audible, dtype=bool)
        if offsets.shape != (n,) or pan.shape != (n,) or on.shape != (n,):
            raise ParameterError(f"need one level, pan and audible flag per track ({n})")
        out = np.zeros((2, self.n_samples), dtype=np.float64)
        for k, t in enumerate(self.tracks):
            if not on[k]:
                continue
            g = db_to_gain(offsets[k])
            lr = pan_gains(pan[k])
            out += (g * t.level) * lr[:, None] * self.signals[t.signal][None, :]
            if t.wet is not None:
                out += (g * t.wet_level) * lr[:, None] * self.signals[t.wet][None, :]
            if t.side is not None:
                out += (g * t.side_level) * (lr * np.array([1.0, -1.0]))[:, None] * self.signals[t.side][None, :]
        if reverb and self.reverb is not None:
            out += self.reverb_level * self.signals[self.reverb]
        if self.envelope is not None:
            out *= self.signals[self.envelope][None, :]
        return out.astype(np.float32)


def preview_mix(outcome, names, pans, *, sample_rate: int, preview_rate: int | None = None,
                match_db: float = 0.0, memo: dict | None = None, parts: tuple | None = None) -> PreviewMix:
    """Take a rendered mix apart into the parts a browser player rebuilds it from.

    Parameters
    ----------
    outcome : MixOutcome
        The rendered mix (:meth:`imgext.mix.mixer.Mixer.render`).
    names : list of str [shape=(n_tracks,)]
        Track names.
    pans : array-like [shape=(n_tracks,)]
        The tracks' pans in [-1, 1], as mixed.
    sample_rate : int
        Sample rate of ``outcome`` in Hz.
    preview_rate : int, optional
        Sample rate of the parts in Hz (resampled when it differs, :func:`~imgext.audio.io.resample_sparse`:
        the same as resampling whole up to float rounding; never above ``sample_rate``);
        default :func:`preview_rate_for` ``(sample_rate)``.
    match_db : float
        A gain in dB on the whole mix (the loudness match of an A/B "before" mix).
    memo : dict, optional
        Kept by the caller between calls for the same mix: an array met again (the same
        object, or a track row whose key in ``outcome.row_keys`` was met: a track the
        processing did not touch, whatever array holds it) is not resampled or hashed again.
        Entries this call does not use are dropped.
    parts : tuple, optional
        ``(strength, {track: (dry, wet)})`` (:meth:`imgext.mix.mixer.Mixer.blend_parts`): those tracks
        go out as their dry and wet rows, the wet one at ``level * strength``, so a player can play
        another EQ strength of the same duck as a level (the rows are the same arrays from one render
        to the next: a memo sends them once).

    Returns
    -------
    PreviewMix
        At ``preview_rate`` with ``preview_rate == sample_rate`` its :meth:`~PreviewMix.render`
        equals ``outcome.mix.audio`` up to float rounding.
    """
    rate = preview_rate_for(sample_rate) if preview_rate is None else int(min(preview_rate, sample_rate))
    mix = outcome.mix
    processed = np.asarray(outcome.processed, dtype=np.float32)
    n_tracks = processed.shape[0]
    if len(names) != n_tracks or len(pans) != n_tracks:
        raise ParameterError(f"need one name and one pan per track ({n_tracks}), got {len(names)} and {len(pans)}")
    match = float(db_to_gain(match_db))
    signals: dict[str, np.ndarray] = {}
    used: dict[tuple, tuple] = {}
    row_keys = getattr(outcome, "row_keys", None)
    if row_keys is not None and len(row_keys) != n_tracks:
        raise ParameterError(f"outcome.row_keys has {len(row_keys)} keys for {n_tracks} tracks")

    def add(array: np.ndarray, row: int | None = None) -> str:
        by_row = row is not None and row_keys is not None and array is processed
        key = ("row", row_keys[row], rate) if by_row else (id(array), row, rate)
        hit = None if memo is None else memo.get(key)
        if hit is not None and (by_row or (hit[0] is not None and hit[0]() is array)):
            sid, y = hit[1], hit[2]
        else:
            y = np.asarray(array if row is None else array[row], dtype=np.float32)
            if rate != sample_rate:
                y = resample_sparse(y, sample_rate, rate)  # (silence costs nothing: event tracks, wet parts)
            sid = signal_id(y, rate)
        # A row key holds its Mixer: no id can be reused. Another array is held weakly (its id is only trusted
        # while it lives): the memo must not keep a freed design's 153 MB of wet parts alive into the next one.
        used[key] = (None if by_row else weakref.ref(array), sid, y)
        signals.setdefault(sid, y)
        return sid

    coeffs = np.asarray(mix.coefficients, dtype=np.float64)
    blend = None
    if parts is not None:
        blend = (float(parts[0]), {int(k): v for k, v in parts[1].items()})
        if not 0.0 <= blend[0] <= 1.0 or any(not 0 <= k < n_tracks for k in blend[1]):
            raise ParameterError(f"parts must be (strength in [0, 1], {{track in 0..{n_tracks - 1}: (dry, wet)}})")
    tracks = []
    for k in range(n_tracks):
        side = side_level = None
        if k in mix.sides:
            side_coeffs, companion = mix.sides[k]
            side, side_level = add(companion), float(np.hypot(*side_coeffs)) * match
        level = float(np.hypot(coeffs[0, k], coeffs[1, k])) * match
        if blend is not None and k in blend[1]:
            dry, wet = blend[1][k]
            tracks.append(PreviewTrack(name=str(names[k]), signal=add(dry), level=level, pan=float(pans[k]),
                                       side=side, side_level=side_level or 0.0, wet=add(wet),
                                       wet_level=level * blend[0]))
            continue
        tracks.append(PreviewTrack(name=str(names[k]), signal=add(processed, k), level=level, pan=float(pans[k]),
                                   side=side, side_level=side_level or 0.0))
    reverb = None
    if outcome.reverb_bus is not None and mix.has_reverb:
        reverb = add(outcome.reverb_bus)
    envelope = None if mix.envelope is None else add(mix.envelope)
    if memo is not None:
        memo.clear()
        memo.update(used)
    n = next(iter(signals.values())).shape[-1] if signals else 0
    return PreviewMix(tracks=tracks, reverb=reverb, reverb_level=float(db_to_gain(mix.master_gain_db)) * match,
                      envelope=envelope, sample_rate=rate, n_samples=int(n), signals=signals,
                      strength=None if blend is None else blend[0])


LEVEL_FIELDS = ("attenuation_db", "loudness_lufs", "ambience_db", "reverb_amount")
"""The :class:`~imgext.options.MixSettings` fields a stems player can preview by levels alone: the tracks'
levels (attenuation; the ambience level, which is the ambience object's volume), the loudness target (the
master gain) and the reverb amount (the reverb bus is linear in it: its level)."""

DEFERRED_FIELDS = ("eq_strength", "max_cut_db", "fov_deg", "activity")
"""The fields whose move a player cannot hear on the last render's signals, and that may wait for the render
when the sliders rest (:func:`level_move`): the EQ strength (unless the player holds the ducked tracks as dry
and wet parts, ``blended=``: then it is a level) and maximum cut (the processing of the same tracks), the field of view (the objects' pans and distances: :data:`PLACING_FIELDS`) and the activity (the
sounds arranged anew in time: :data:`COMPOSING_FIELDS`)."""

PLACING_FIELDS = ("fov_deg",)
"""The deferred fields that move the objects (their pans and distances), not their sounds: while one is
pending the last render plays as it was, levels included."""

COMPOSING_FIELDS = ("activity",)
"""The deferred fields that arrange the sounds anew (other tracks: seconds to make): while one is pending the
last render plays as it was, and the new tracks need not be made before the render."""


@dataclass(frozen=True)
class LevelMove:
    """What a stems player can do about a settings change on the last render's signals (:func:`level_move`).

    Attributes
    ----------
    gains_db : np.ndarray [shape=(n_tracks,)]
        Change of each track's requested gain in dB.
    loudness_db : float
        Change of the loudness target in dB.
    reverb_gain : float
        Linear factor on the reverb bus (the new reverb amount over the old; >= 0).
    deferred : tuple of str
        The :data:`DEFERRED_FIELDS` that changed: not heard until the render follows.
    strength : float or None
        The new EQ strength, heard as the level of the ducked tracks' wet parts (None: unchanged, or
        not heard that way).
    """

    gains_db: np.ndarray
    loudness_db: float = 0.0
    reverb_gain: float = 1.0
    deferred: tuple = ()
    strength: float | None = None

    @property
    def exact(self) -> bool:
        """Nothing changed that the last render does not already sound like."""
        return not self.heard and not self.deferred

    @property
    def heard(self) -> bool:
        """Some of the change is heard in a level preview (levels, loudness, reverb or EQ strength moved)."""
        return (bool(np.any(self.gains_db)) or self.loudness_db != 0.0 or self.reverb_gain != 1.0
                or self.strength is not None)


def _same_tracks(a, b, *, placed: bool = True) -> bool:
    """The same sounds at the same places (only their levels may differ): names, audio, pans, importance, depth, sides.

    ``placed=False`` leaves the places out (pans and distances may differ).
    """
    if a is b:
        return True
    if a.audio is not b.audio or list(a.names) != list(b.names) or a.sample_rate != b.sample_rate:
        return False
    if not np.array_equal(a.importance, b.importance):
        return False
    if placed and not (np.array_equal(a.pans, b.pans) and np.array_equal(
            np.asarray(a.distances_m(), dtype=float), np.asarray(b.distances_m(), dtype=float))):
        return False
    return a.sides.keys() == b.sides.keys() and all(
        a.sides[k][0] == b.sides[k][0] and a.sides[k][1] is b.sides[k][1] for k in a.sides)


def level_change(old_settings, old_tracks, settings, tracks) -> np.ndarray | None:
    """How much each track's level moves from one mix to another, when nothing but levels changes.

    Parameters
    ----------
    old_settings, settings : MixSettings
        The settings of a rendered mix and the new ones.
    old_tracks, tracks : Tracks
        The tracks of each (the same audio; the user's volumes may differ).

    Returns
    -------
    np.ndarray [shape=(n_tracks,)] or None
        The change of each track's requested gain in dB (attenuation, volume and distance:
        :func:`~imgext.mix.space.level_gains_db`), or None when more than levels changed:
        another field than :data:`LEVEL_FIELDS`, other sounds, pans, importance or distances.
        (The engine's EQ and ducking follow the levels too: a level preview leaves them as they were.)
    """
    move = level_move(old_settings, old_tracks, settings, tracks, defer=())
    return None if move is None else move.gains_db


def level_move(old_settings, old_tracks, settings, tracks, *, defer=DEFERRED_FIELDS,
               blended: bool = False) -> LevelMove | None:
    """What of a settings change a stems player can play on the last render's signals, or None (render now).

    A change of :data:`LEVEL_FIELDS` is heard as new levels: each track's gain, the master gain and
    the reverb bus's level (its send scales with the reverb amount, so the bus does; from no reverb
    to some there is no bus to scale: None). A change of the fields in ``defer`` is not heard until
    the render follows (the last render's EQ or ducking plays meanwhile; while a
    :data:`PLACING_FIELDS` change is pending, the last render plays as it was, levels included).
    Anything else (another field, other sounds or importance; pans or distances but by a placing
    field) needs the render now: None.  With a :data:`COMPOSING_FIELDS` change ``tracks`` is not
    looked at (it may be None: the new arrangement is made by the render).

    Parameters
    ----------
    old_settings, settings : MixSettings
        The settings of a rendered mix and the new ones.
    old_tracks, tracks : Tracks
        The tracks of each (the same audio; the user's volumes may differ).
    defer : tuple of str
        The fields whose change may wait for the render (:data:`DEFERRED_FIELDS`).
    blended : bool
        The last render's ducked tracks reached the player as dry and wet parts (:func:`preview_mix`
        ``parts=``): an EQ-strength move is then heard as a level (:attr:`LevelMove.strength`), not deferred.

    Returns
    -------
    LevelMove or None
    """
    from imgext.mix.space import level_gains_db

    as_level = ("eq_strength",) if blended else ()
    defer = tuple(f for f in defer if f not in as_level)
    free = (*LEVEL_FIELDS, *as_level, *defer)
    if replace(settings, **{f: getattr(old_settings, f) for f in free}) != old_settings:
        return None
    if old_tracks is None:
        return None
    changed = tuple(f for f in free if getattr(settings, f) != getattr(old_settings, f))
    whole = LevelMove(np.zeros(old_tracks.n_tracks), deferred=changed)  # nothing heard until the render
    if any(f in defer and f in changed for f in COMPOSING_FIELDS):
        return whole  # (``tracks`` is not looked at: the caller need not make them)
    if tracks is None:
        return None
    if any(f in defer and f in changed for f in PLACING_FIELDS):
        return whole if _same_tracks(old_tracks, tracks, placed=False) else None  # (None: other sounds)
    if not _same_tracks(old_tracks, tracks):
        return None
    old_amount, amount = float(old_settings.reverb_amount), float(settings.reverb_amount)
    if amount != old_amount and old_amount <= 0.0:
        return None  # no reverb bus was rendered: there is none to bring up

    def requested(s, t):
        return level_gains_db(t.gains_db(s.attenuation_db), t.distances_m(), distance=s.distance)

    gains = np.asarray(requested(settings, tracks) - requested(old_settings, old_tracks), dtype=np.float64)
    strength = None
    if as_level and settings.eq_strength != old_settings.eq_strength:
        strength = float(settings.eq_strength)
    return LevelMove(gains, loudness_db=float(settings.loudness_lufs - old_settings.loudness_lufs),
                     reverb_gain=1.0 if amount == old_amount else amount / old_amount,
                     deferred=tuple(f for f in defer if getattr(settings, f) != getattr(old_settings, f)),
                     strength=strength)


def _power(pm: PreviewMix, sid: str, powers: dict | None) -> float:
    """Mean power of signal ``sid`` per sample (channels summed), from ``powers`` when known.

    Plain power, not K-weighted as the loudness is (that would cost ~10 ms per 30 s signal, ~1 ms
    now): a reverb brought up 12 dB at once is then misjudged by ~1.1 dB, one slider step by far less.
    """
    if powers is not None and sid in powers:
        return powers[sid]
    x = np.asarray(pm.signals[sid], dtype=np.float32)
    flat = np.ascontiguousarray(x).reshape(-1)
    p = float(np.dot(flat, flat)) / max(x.shape[-1], 1)  # float32 BLAS: ~1e-6 relative, no float64 copy
    if powers is not None:
        powers[sid] = p
    return p


def _cross(pm: PreviewMix, a: str, b: str, powers: dict | None) -> float:
    """Mean product of signals ``a`` and ``b`` per sample (a dry part and its wet part are correlated)."""
    key = (a, b)
    if powers is not None and key in powers:
        return powers[key]
    x, y = (np.ascontiguousarray(np.asarray(pm.signals[i], dtype=np.float32)).reshape(-1) for i in (a, b))
    c = float(np.dot(x, y)) / max(pm.signals[a].shape[-1], 1)
    if powers is not None:
        powers[key] = c
    return c


def _track_power(pm: PreviewMix, t: PreviewTrack, level: float, wet_level: float, powers: dict | None) -> float:
    """Mean power of track ``t`` at these levels: ``level * signal + wet_level * wet`` (and its side at its level)."""
    p = level**2 * _power(pm, t.signal, powers)
    if t.wet is not None:
        p += 2.0 * level * wet_level * _cross(pm, t.signal, t.wet, powers) + wet_level**2 * _power(pm, t.wet, powers)
    return p


def measure_powers(pm: PreviewMix, powers: dict) -> None:
    """Measure into ``powers`` (signal id -> mean power) what :func:`releveled` will need of ``pm``.

    For a caller that prefers to pay when it renders rather than on the first level move after it.
    """
    for t in pm.tracks:
        _power(pm, t.signal, powers)
        if t.side is not None:
            _power(pm, t.side, powers)
        if t.wet is not None:
            _power(pm, t.wet, powers)
            _cross(pm, t.signal, t.wet, powers)
    if pm.reverb is not None:
        _power(pm, pm.reverb, powers)


def releveled(pm: PreviewMix, gains_db, *, loudness_db: float = 0.0, reverb_gain: float = 1.0,
              powers: dict | None = None, strength: float | None = None) -> PreviewMix:
    """A level preview: ``pm``'s signals with each track ``gains_db`` louder, the whole held at its loudness.

    What a new attenuation, ambience level, reverb amount or loudness target sounds like before the
    mix is rendered again: no signal changes (nothing to prepare, encode or send), only levels.  The
    master gain keeps the mix's power (the parts taken as uncorrelated) and adds ``loudness_db``;
    the reverb bus is scaled by ``reverb_gain`` (its sends are linear in the amount, so the bus is;
    at 1 it keeps its make-up), the limiter's envelope and the EQ or ducking stay those of ``pm``
    (the render that follows brings them).  The result is marked ``exact=False``.

    Parameters
    ----------
    pm : PreviewMix
    gains_db : array-like [shape=(n_tracks,)]
        Level change of each track in dB (:func:`level_change`).
    loudness_db : float
        Change of the loudness target in dB.
    reverb_gain : float >= 0
        Linear factor on the reverb bus (:attr:`LevelMove.reverb_gain`).
    powers : dict, optional
        Signal id -> mean power, kept by the caller between calls (each signal is measured
        once; :func:`measure_powers`).
    strength : float in [0, 1], optional
        A new EQ strength, for a ``pm`` whose ducked tracks come as dry and wet parts
        (:attr:`PreviewMix.strength`): the wet parts' level follows it (the mix's power is held with it).

    Returns
    -------
    PreviewMix
    """
    g = np.asarray(gains_db, dtype=np.float64).reshape(-1)
    if g.shape[0] != len(pm.tracks):
        raise ParameterError(f"need one gain change per track ({len(pm.tracks)}), got {g.shape[0]}")
    if not reverb_gain >= 0.0:
        raise ParameterError(f"reverb_gain={reverb_gain} must be >= 0")
    if strength is not None and (pm.strength is None or not 0.0 <= strength <= 1.0):
        raise ParameterError(f"strength={strength}: needs a mix of dry and wet parts and a value in [0, 1]")
    new_strength = pm.strength if strength is None else float(strength)
    scale = db_to_gain(g)
    old = new = 0.0
    for t, a in zip(pm.tracks, scale):
        a = float(a)
        wet_new = t.level * new_strength if t.wet is not None else 0.0  # (wet_level is level * strength)
        p_old = _track_power(pm, t, t.level, t.wet_level, powers)
        p_new = a**2 * _track_power(pm, t, t.level, wet_new, powers)
        if t.side is not None:
            side = t.side_level**2 * _power(pm, t.side, powers)
            p_old, p_new = p_old + side, p_new + side * a**2
        old, new = old + p_old, new + p_new
    if pm.reverb is not None:
        p = pm.reverb_level**2 * _power(pm, pm.reverb, powers)
        old, new = old + p, new + p * float(reverb_gain) ** 2
    master = float(db_to_gain(loudness_db)) * (float(np.sqrt(old / new)) if new > 0 and old > 0 else 1.0)
    tracks = [replace(t, level=t.level * float(a) * master, side_level=t.side_level * float(a) * master,
                      wet_level=(t.level * new_strength * float(a) * master) if t.wet is not None else 0.0)
              for t, a in zip(pm.tracks, scale)]
    return replace(pm, tracks=tracks, reverb_level=pm.reverb_level * float(reverb_gain) * master, exact=False,
                   strength=new_strength)


SPAN_BLOCK_SAMPLES = 1024
"""Granularity of a sparse signal in samples (46 ms at 22.05 kHz): a block whose 16-bit samples are all zero is not sent."""

SPARSE_MAX_SHARE = 0.9
"""A signal whose nonzero blocks cover more than this share of it is sent whole (spans would save little)."""


@dataclass(frozen=True)
class EncodedSignal:
    """A preview signal as the player gets it (:meth:`PreviewEncoder.get`).

    Attributes
    ----------
    data : bytes
        The encoded audio (Ogg Vorbis or FLAC).
    spans : tuple of (start, length) or None
        None: ``data`` is the whole signal.  Else ``data`` is only these spans of it, one after the
        other (:func:`nonzero_spans`, in samples), and the signal is silent (exactly zero) elsewhere:
        the player puts each span back in place.
    n_samples : int
        Length of the whole signal in samples.
    """

    data: bytes
    spans: tuple | None
    n_samples: int


class PreviewEncoder:
    """Compressed bytes of preview signals, cached by signal id (bounded, least recently used out).

    With ``codec="vorbis"`` tracks and the reverb go out as Ogg Vorbis (a 30 s mono bed at
    24 kHz is about 170 KB, against 1.4 MB as 16-bit WAV, but takes ~0.2 s of CPU to encode);
    the limiter envelope, a slow gain curve a lossy codec would blur, always as FLAC.  With
    ``codec="flac"`` every signal is FLAC (16-bit): about 9x cheaper to encode, exact to 16 bits,
    and 2-7x the bytes of Vorbis (less for sounds with silences).  A FLAC signal that is silent in
    places (an event track between its events, the part of a duck where it does not cut) is sent
    as its nonzero spans only (:class:`EncodedSignal`): the encoder's cost is per sample, even for
    silence (a 30 s silent track costs 7 ms, a noise bed 10 ms).  Safe to share between threads.

    Parameters
    ----------
    max_bytes : int
        Bound on the cached bytes.
    codec : {"vorbis", "flac"}
        How tracks and the reverb are encoded.
    """

    def __init__(self, *, max_bytes: int = 64 << 20, codec: str = "vorbis") -> None:
        if codec not in ("vorbis", "flac"):
            raise ParameterError(f"codec={codec!r}: use 'vorbis' or 'flac'")
        self.codec = codec
        self.max_bytes = int(max_bytes)
        self._cache: OrderedDict[str, EncodedSignal] = OrderedDict()
        self._lock = threading.Lock()
        self.encoded = 0
        """How many signals were encoded (not found in the cache)."""

    def get(self, sid: str, signal: np.ndarray, sample_rate: int, *, lossless: bool = False) -> EncodedSignal:
        """``signal`` (mono ``(n,)`` or ``(n_channels, n)``) encoded, from the cache when known.

        Lossless (FLAC) signals come as their nonzero spans when those cover at most
        :data:`SPARSE_MAX_SHARE` of them; a lossy one always whole (a lossy codec would smear
        the joins of spans put end to end).
        """
        with self._lock:
            if sid in self._cache:
                self._cache.move_to_end(sid)
                return self._cache[sid]
        if lossless or self.codec == "flac":
            encoded = encode_sparse(signal, sample_rate)
        else:
            x = np.asarray(signal)
            encoded = EncodedSignal(encode_preview(x, sample_rate), None, int(x.shape[-1]))
        with self._lock:
            self.encoded += 1
            self._cache[sid] = encoded
            total = sum(len(v.data) for v in self._cache.values())
            while total > self.max_bytes and len(self._cache) > 1:
                total -= len(self._cache.popitem(last=False)[1].data)
        return encoded


def encode_sparse(signal: np.ndarray, sample_rate: int, *, block: int = SPAN_BLOCK_SAMPLES) -> EncodedSignal:
    """A signal as 16-bit FLAC of its nonzero spans (or whole, when they cover most of it).

    Exact to the 16 bits of :func:`encode_preview` ``(lossless=True)``: putting the decoded spans back
    in place (zeros elsewhere) gives :func:`pcm16` of the clipped signal, sample for sample.

    Parameters
    ----------
    signal : np.ndarray [shape=(n,) or (n_channels, n)]
        Float samples.
    sample_rate : int
        In Hz.
    block : int > 0
        Granularity of the spans in samples (:func:`nonzero_spans`).

    Returns
    -------
    EncodedSignal
        With no span and no bytes for an all-zero signal.
    """
    q = pcm16(signal)  # (pcm16 clips to the 16-bit range itself: the same integers as clipping the floats first)
    n = int(q.shape[-1])
    spans = nonzero_spans(q, block=block)
    if sum(length for _, length in spans) > SPARSE_MAX_SHARE * n:
        return EncodedSignal(_flac16(q, sample_rate), None, n)
    if not spans:
        return EncodedSignal(b"", (), n)
    parts = np.concatenate([q[..., a:a + length] for a, length in spans], axis=-1)
    return EncodedSignal(_flac16(parts, sample_rate), spans, n)


def _flac16(q: np.ndarray, sample_rate: int) -> bytes:
    """16-bit samples ``(n,)`` or ``(n_channels, n)`` as FLAC bytes."""
    buf = io.BytesIO()
    sf.write(buf, q.T if q.ndim == 2 else q, sample_rate, format="FLAC", subtype="PCM_16")
    return buf.getvalue()


def pcm16(signal: np.ndarray) -> np.ndarray:
    """Float samples as 16-bit integers, exactly as libsndfile writes them (``rint(x * 32768)``, clipped).

    Parameters
    ----------
    signal : np.ndarray [shape=(n,) or (n_channels, n)]
        Float samples, nominally in [-1, 1].

    Returns
    -------
    np.ndarray [same shape, dtype=int16]
    """
    q = np.multiply(np.asarray(signal, dtype=np.float32), np.float32(32768.0))
    np.rint(q, out=q)  # (in place: one float32 temporary, not two)
    np.clip(q, -32768.0, 32767.0, out=q)
    return q.astype(np.int16)


def encode_preview(signal: np.ndarray, sample_rate: int, *, lossless: bool = False) -> bytes:
    """Encode a preview signal: Ogg Vorbis, or FLAC (16-bit) with ``lossless``.

    Parameters
    ----------
    signal : np.ndarray [shape=(n,) or (n_channels, n)]
        Float samples; clipped to [-1, 1] (the parts of a mix at its target loudness sit far below).
    sample_rate : int
        In Hz.
    """
    x = np.clip(np.asarray(signal, dtype=np.float32), -1.0, 1.0)
    if lossless:
        return _flac16(pcm16(x), sample_rate)  # (the bytes libsndfile makes from floats, ~25 % less CPU)
    buf = io.BytesIO()
    sf.write(buf, x.T if x.ndim == 2 else x, sample_rate, format="OGG", subtype="VORBIS")
    return buf.getvalue()

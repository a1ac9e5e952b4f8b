"""Arrangement: each object's sound laid out in time by its role.

* an **event** object plays its scheduled one-shots (:mod:`imgext.composition.schedule`),
  each its own length with its natural tail, at its own gain and rate; silence between;
* a **bed** loops with the crossfade of :func:`imgext.audio.io.fit_duration`, from a
  random start offset, so two beds never start in step;
* an **area** is a bed with a decorrelated companion (the same sound from another
  offset) that the mix adds in mid/side, so it is heard wide, not as a point.

:func:`compose` arranges every object and returns the tracks to mix plus an
:class:`Arrangement` per object (what ``scene.json`` records); given arrangements
(from a saved plan) are rendered as they are, so a remix is bit-identical.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import soxr

from imgext.audio.io import decode, fit_duration, resample, to_mono
from imgext.audio.loudness import level_track
from imgext.composition.roles import check_role, event_regions
from imgext.composition.schedule import Event, EventSpec, schedule_events
from imgext.composition.tracks import Fetched
from imgext.options import MixSettings
from imgext.vision.placement import Role, SceneObject

__all__ = ["Arrangement", "area_width", "compose", "compose_tracks", "load_clip", "object_rng", "render_bed",
           "render_events"]

_FADE_IN_S = 0.002  # keeps an event's attack
_FADE_OUT_S = 0.02
_BED_FADE_IN_S = 0.05
_SCENE_FADE_OUT_S = 0.5


@dataclass(frozen=True)
class Arrangement:
    """How one object sounds in time.

    Attributes
    ----------
    role : Role
    events : tuple of Event
        For events; empty for beds and areas.
    offset_s : float
        Where in its (looped) source a bed or area starts, in seconds.
    side_offset_s : float
        Start offset of an area's decorrelated companion, in seconds.
    width : float in [0, 1]
        Stereo width of an area (0 = a point).
    note : str or None
        Why the role differs from the label's default, when it does.
    """

    role: Role
    events: tuple[Event, ...] = ()
    offset_s: float = 0.0
    side_offset_s: float = 0.0
    width: float = 0.0
    note: str | None = None

    def to_dict(self) -> dict:
        return {"role": self.role.value, "events": [e.to_dict() for e in self.events], "offset_s": float(self.offset_s),
                "side_offset_s": float(self.side_offset_s), "width": float(self.width), "note": self.note}

    @classmethod
    def from_dict(cls, d: Mapping) -> Arrangement:
        return cls(role=Role.parse(d.get("role", "bed")), events=tuple(Event.from_dict(e) for e in d.get("events") or ()),
                   offset_s=float(d.get("offset_s", 0.0)), side_offset_s=float(d.get("side_offset_s", 0.0)),
                   width=float(d.get("width", 0.0)), note=d.get("note"))


@dataclass(frozen=True)
class Composed:
    """One arranged object: its mono track, its area companion (or None) and its arrangement."""

    track: np.ndarray
    side: np.ndarray | None
    arrangement: Arrangement
    notes: tuple[str, ...] = field(default_factory=tuple)


def object_rng(seed: int, obj: SceneObject, index: int) -> np.random.Generator:
    """The generator of one object's choices: from the scene seed, its index and label (not from other objects)."""
    digest = hashlib.sha256(f"{int(seed)}|{index}|{obj.label}|compose".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def load_clip(data: bytes, *, name: str, sample_rate: int, max_seconds: float) -> np.ndarray:
    """The source decoded to mono at ``sample_rate`` [shape=(n,), float32], at most ``max_seconds`` long."""
    decoded = decode(data, name=name, max_seconds=max_seconds)
    return resample(to_mono(decoded.audio), decoded.sample_rate, sample_rate)


def _fade(x: np.ndarray, fade_in: int, fade_out: int) -> np.ndarray:
    n = x.shape[0]
    fade_in, fade_out = min(fade_in, n // 2), min(fade_out, n // 2)
    if fade_in > 0:
        x[:fade_in] *= np.sin(0.5 * np.pi * (np.arange(fade_in) + 0.5) / fade_in).astype(np.float32)
    if fade_out > 0:
        x[n - fade_out :] *= np.cos(0.5 * np.pi * (np.arange(fade_out) + 0.5) / fade_out).astype(np.float32)
    return x


def render_events(clip: np.ndarray, events: Sequence[Event], *, n_samples: int, sample_rate: int) -> np.ndarray:
    """Overlap-add the events of one object [shape=(n_samples,), float32].

    Each event is its source region played at its rate (soxr, pitch and speed
    together), with a 2 ms fade-in that keeps the attack, a 20 ms fade-out at
    the region's end (past its natural tail), and its gain; one still sounding
    at the scene's end fades out over the last 0.5 s.
    """
    out = np.zeros(n_samples, dtype=np.float32)
    for e in events:
        a = round(e.source_s * sample_rate)
        b = min(clip.shape[0], round(e.source_end_s * sample_rate))
        if b - a < 2:
            continue
        seg = np.array(clip[a:b], dtype=np.float32)
        if abs(e.rate - 1.0) > 1e-6:
            seg = soxr.resample(seg, sample_rate * e.rate, sample_rate, quality="HQ").astype(np.float32)
        seg = _fade(seg, int(_FADE_IN_S * sample_rate), int(_FADE_OUT_S * sample_rate))
        start = round(e.onset_s * sample_rate)
        stop = min(n_samples, start + seg.shape[0])
        if stop > start:
            out[start:stop] += seg[: stop - start] * np.float32(10.0 ** (e.gain_db / 20.0))
    tail = min(int(_SCENE_FADE_OUT_S * sample_rate), n_samples // 4)
    if tail > 0:
        out[n_samples - tail :] *= np.linspace(1.0, 0.0, tail, dtype=np.float32)
    return out


def render_bed(clip: np.ndarray, *, offset_s: float, n_samples: int, sample_rate: int) -> np.ndarray:
    """Loop ``clip`` (crossfaded seams) from ``offset_s`` into the source [shape=(n_samples,), float32].

    The start fades in over 50 ms and the end out over 0.5 s, so nothing clicks.
    """
    offset = round(offset_s * sample_rate)
    if clip.shape[0] >= n_samples + offset:
        out = np.array(clip[offset : offset + n_samples], dtype=np.float32)
        return _fade(out, int(_BED_FADE_IN_S * sample_rate), int(_SCENE_FADE_OUT_S * sample_rate))
    looped = fit_duration(clip, n_samples + offset, sample_rate, fade_in_s=0.0)
    out = np.array(looped[offset:], dtype=np.float32)
    return _fade(out, int(_BED_FADE_IN_S * sample_rate), 0)


def area_width(obj: SceneObject) -> float:
    """Stereo width of an area source from its box: half the picture wide or more is fully wide."""
    return float(np.clip(2.0 * (obj.box[2] - obj.box[0]), 0.3, 1.0))


def _draw_offset(rng: np.random.Generator, clip_s: float, scene_s: float) -> float:
    if clip_s > scene_s:
        return float(rng.uniform(0.0, clip_s - scene_s))
    return float(rng.uniform(0.0, clip_s))


def arrange_object(
    obj: SceneObject,
    index: int,
    clip: np.ndarray,
    *,
    settings: MixSettings,
    given: Arrangement | None = None,
    descriptors: Mapping | None = None,
) -> Composed:
    """Arrange one object (see the module notes); ``given`` renders a saved arrangement as it is."""
    sr = settings.sample_rate
    n = round(settings.duration_s * sr)
    clip_s = clip.shape[0] / sr
    note = None
    if given is not None:
        arr = given
    else:
        rng = object_rng(settings.seed, obj, index)
        role, note = check_role(obj.role, clip, sr, descriptors=descriptors, scene_s=settings.duration_s)
        if role is Role.EVENT:
            rate = (obj.events_per_minute or 3.0) * settings.activity
            event_s = obj.event_s or 1.5
            regions = event_regions(clip, sr, event_s=event_s)
            events = schedule_events(EventSpec(rate, event_s), regions, duration_s=settings.duration_s, rng=rng) \
                if rate > 0 else []
            arr = Arrangement(role, tuple(events), note=note)
        else:
            offset = _draw_offset(rng, clip_s, settings.duration_s)
            side = _draw_offset(rng, clip_s, settings.duration_s) if role is Role.AREA else 0.0
            if role is Role.AREA and clip_s <= settings.duration_s:  # keep the companion far from the main offset
                side = (offset + clip_s * rng.uniform(0.3, 0.7)) % clip_s
            arr = Arrangement(role, offset_s=offset, side_offset_s=side,
                              width=area_width(obj) if role is Role.AREA else 0.0, note=note)
    if arr.role is Role.EVENT:
        track = render_events(clip, arr.events, n_samples=n, sample_rate=sr)
        side = None
    else:
        track = render_bed(clip, offset_s=arr.offset_s, n_samples=n, sample_rate=sr)
        side = render_bed(clip, offset_s=arr.side_offset_s, n_samples=n, sample_rate=sr) if arr.role is Role.AREA else None
    track, _ = level_track(track, sr)
    if side is not None:
        side, _ = level_track(side, sr)
    return Composed(track, side, arr, (f"{obj.label}: {note}",) if note else ())


def compose(
    objects: Sequence[SceneObject],
    fetched: Mapping[int, Fetched],
    *,
    settings: MixSettings,
    given: Mapping[int, Arrangement] | None = None,
) -> tuple[dict[int, Fetched], dict[int, Arrangement], dict[int, np.ndarray]]:
    """Arrange every fetched object by its role.

    Parameters
    ----------
    objects : sequence of SceneObject
    fetched : mapping of object index -> Fetched
        The fetched sources (their bytes are decoded again, unlooped).
    settings : MixSettings
        Duration, rate, seed and activity.
    given : mapping of object index -> Arrangement, optional
        Saved arrangements to render as they are (remix).

    Returns
    -------
    fetched : dict of object index -> Fetched
        With ``track`` replaced by the arranged, levelled track.
    arrangements : dict of object index -> Arrangement
    sides : dict of object index -> (float, np.ndarray [shape=(n_samples,)])
        Width and decorrelated companion of each area object.
    """
    given = given or {}
    out: dict[int, Fetched] = {}
    arrangements: dict[int, Arrangement] = {}
    sides: dict[int, np.ndarray] = {}
    for i, f in fetched.items():
        obj = objects[i]
        if obj.skipped or Role.parse(obj.role) is Role.OFF:
            out[i] = f
            continue
        clip = load_clip(f.data, name=f.candidate.name, sample_rate=settings.sample_rate,
                         max_seconds=min(600.0, settings.duration_s + 30.0))
        descriptors = {k: f.candidate.extra.get(k) for k in ("single_event", "loopable", "ac_single_event", "ac_loop")
                       if isinstance(f.candidate.extra, Mapping) and k in f.candidate.extra}
        composed = arrange_object(obj, i, clip, settings=settings, given=given.get(i), descriptors=descriptors)
        out[i] = replace(f, track=composed.track, notes=f.notes + composed.notes)
        arrangements[i] = composed.arrangement
        if composed.side is not None:
            sides[i] = (composed.arrangement.width, composed.side)
    return out, arrangements, sides


def compose_tracks(
    objects: Sequence[SceneObject],
    fetched: Mapping[int, Fetched],
    *,
    settings: MixSettings,
    notes: Sequence[str] = (),
    given: Mapping[int, Arrangement] | None = None,
):
    """:func:`compose` then :func:`~imgext.composition.tracks.assemble_tracks`: the arranged :class:`Tracks`.

    Returns ``(tracks, fetched, arrangements)``.
    """
    from imgext.composition.tracks import assemble_tracks

    fetched, arrangements, sides = compose(objects, fetched, settings=settings, given=given)
    tracks = assemble_tracks(objects, fetched, settings=settings, notes=notes, sides=sides)
    by_track = {k: arrangements[i] for k, i in enumerate(tracks.object_indices) if i in arrangements}
    return replace(tracks, arrangements=by_track), fetched, arrangements

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

from imgext.audio.io import db_to_gain, decode, fit_duration, resample, to_mono
from imgext.audio.loudness import BLOCK_S, TRACK_REFERENCE_LUFS, block_bounds, gated_loudness, k_weighted, level_track
from imgext.composition.roles import check_role, event_regions
from imgext.composition.schedule import Event, EventSpec, Region, schedule_events
from imgext.composition.tracks import Fetched
from imgext.options import MixSettings
from imgext.sounds.memo import MemoryCache, content_key, frozen
from imgext.vision.placement import Role, SceneObject

__all__ = ["CLIP_CACHE", "Arrangement", "Source", "analyse_source", "area_width", "compose", "compose_tracks",
           "estimated_loudness", "load_clip", "object_rng", "render_bed", "render_events"]

_FADE_IN_S = 0.002  # keeps an event's attack
_FADE_OUT_S = 0.02
_BED_FADE_IN_S = 0.05
_SCENE_FADE_OUT_S = 0.5
_LOOP_CROSSFADE_S = 0.25  # fit_duration's default seam crossfade


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


@dataclass(frozen=True)
class Source:
    """A decoded source and what arranging it needs, computed once per source (see :data:`CLIP_CACHE`).

    Attributes
    ----------
    clip : np.ndarray [shape=(n,), float32]
        The mono source at the mix rate (read-only).
    k_energy : np.ndarray [shape=(n + 1,), float64]
        Cumulative sum of the squared K-weighted source (BS.1770): the energy of
        any stretch of it, or of any arrangement of it, without filtering again.
    regions : dict
        Its events by typical event length and its role checks (filled on first use).
    """

    clip: np.ndarray
    k_energy: np.ndarray
    regions: dict = field(default_factory=dict, compare=False)

    def events(self, sample_rate: int, event_s: float) -> list[Region]:
        """:func:`~imgext.composition.roles.event_regions` of the clip, cached per ``event_s``."""
        key = ("events", int(sample_rate), float(event_s))
        if key not in self.regions:
            self.regions[key] = event_regions(self.clip, sample_rate, event_s=event_s)
        return self.regions[key]

    def role(self, role, sample_rate: int, *, descriptors: Mapping | None, scene_s: float) -> tuple[Role, str | None]:
        """:func:`~imgext.composition.roles.check_role` of the clip, cached per question."""
        key = ("role", str(getattr(role, "value", role)), int(sample_rate), float(scene_s),
               tuple(sorted((str(k), repr(v)) for k, v in (descriptors or {}).items())))
        if key not in self.regions:
            self.regions[key] = check_role(role, self.clip, sample_rate, descriptors=descriptors, scene_s=scene_s)
        return self.regions[key]


def analyse_source(clip: np.ndarray, sample_rate: int) -> Source:
    """A :class:`Source` for a decoded mono clip [shape=(n,)] at ``sample_rate`` Hz."""
    x = frozen(np.asarray(clip, dtype=np.float32))
    energy = np.zeros(x.shape[0] + 1)
    if x.shape[0]:
        np.cumsum(np.square(k_weighted(x, sample_rate)), out=energy[1:])
    return Source(x, frozen(energy))


CLIP_CACHE = MemoryCache(192 * 2**20)
"""Decoded sources and their analysis (:class:`Source`) by content digest, name, rate and length cap.

A re-arrangement (another activity, seed or role) neither decodes nor
analyses a source again while it is held; 192 MB hold about 15 sources of 30 s,
shared by every session (a session's own scene is held by its memo as well:
``compose(sources=...)``).
"""


SOURCE_MEMO_BYTES = 512 * 2**20
"""Bound in bytes on the sources one scene's memo holds (``compose(sources=...)``): ~35 sources of 30 s."""


def _source(data: bytes, *, name: str, sample_rate: int, max_seconds: float) -> Source:
    def make() -> tuple[np.ndarray, np.ndarray, Source]:  # the arrays listed so the cache counts their bytes
        src = analyse_source(load_clip(data, name=name, sample_rate=sample_rate, max_seconds=max_seconds), sample_rate)
        return src.clip, src.k_energy, src

    key = (content_key(bytes(data)), name, int(sample_rate), float(max_seconds))
    return CLIP_CACHE.get(key, make)[2]


def _kept_sources(used: list[tuple[bytes, dict, Source]], max_bytes: int) -> dict[int, tuple[bytes, dict, Source]]:
    """What a scene's memo keeps of ``used`` (a source's bytes, how they were decoded, the source), in order.

    By the bytes' id (the entry holds the bytes, so the id stays theirs): each source that still fits
    within ``max_bytes``. A fixed subset, not least-recently-used: a scene with more sources than fit
    keeps the same ones from one arrangement to the next (an LRU cycled through in order keeps none).
    """
    kept: dict[int, tuple[bytes, dict, Source]] = {}
    counted: set[int] = set()  # (two objects may share one source)
    total = 0
    for data, how, src in used:
        size = 0 if id(src) in counted else int(src.clip.nbytes + src.k_energy.nbytes)
        if id(data) not in kept and total + size <= max_bytes:
            kept[id(data)] = (data, how, src)
            counted.add(id(src))
            total += size
    return kept


def _energy_at(src: Source, pos: np.ndarray) -> np.ndarray:
    """K-weighted energy of the looped source from its start to ``pos`` (samples, may pass its end)."""
    n = src.clip.shape[0]
    pos = np.maximum(np.asarray(pos, dtype=np.int64), 0)
    return (pos // n) * src.k_energy[n] + src.k_energy[pos % n]


def estimated_loudness(src: Source, arr: Arrangement, *, n_samples: int, sample_rate: int,
                       offset_s: float | None = None) -> float:
    """Integrated loudness (LUFS) of ``arr`` rendered from ``src``, from the source's K-weighted energy.

    Every BS.1770 gating block's energy is summed from the stretches of the
    source that play in it (events at their gains and rates, a bed looped from
    ``offset_s``, default ``arr.offset_s``), so nothing is filtered again.
    Overlapping events add in power and fades are left out: within a few
    tenths of a LU of measuring the rendered track (tests/test_composition.py).
    """
    lo, hi = block_bounds(n_samples, sample_rate)
    if arr.role is Role.EVENT:
        if not arr.events:
            return -float("inf")
        n = src.clip.shape[0]
        on = np.array([round(e.onset_s * sample_rate) for e in arr.events], dtype=np.int64)[:, None]
        a = np.array([round(e.source_s * sample_rate) for e in arr.events], dtype=np.int64)[:, None]
        b = np.array([min(n, round(e.source_end_s * sample_rate)) for e in arr.events], dtype=np.int64)[:, None]
        rate = np.array([e.rate for e in arr.events])[:, None]
        gain = np.array([10.0 ** (e.gain_db / 10.0) for e in arr.events])[:, None]
        end = np.minimum(on + np.round((b - a) / rate).astype(np.int64), n_samples)
        s0, s1 = np.clip(lo[None, :], on, end), np.clip(hi[None, :], on, end)
        p0 = np.minimum(a + ((s0 - on) * rate).astype(np.int64), b)
        p1 = np.minimum(a + ((s1 - on) * rate).astype(np.int64), b)
        energy = ((src.k_energy[p1] - src.k_energy[p0]) * gain / rate).sum(axis=0)
    else:
        start = round((arr.offset_s if offset_s is None else offset_s) * sample_rate)
        energy = _energy_at(src, start + hi) - _energy_at(src, start + lo)
    return gated_loudness(energy / (BLOCK_S * sample_rate))


def _level(track: np.ndarray, loudness: float, sample_rate: int) -> np.ndarray:
    """``track`` at the reference loudness given its (estimated) loudness; measured when that is not finite."""
    if not np.isfinite(loudness):
        return level_track(track, sample_rate)[0]
    track *= np.float32(db_to_gain(TRACK_REFERENCE_LUFS - loudness))  # a fresh render of ours: scaled in place
    return track


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


def _loop_unit(src: Source, sample_rate: int) -> np.ndarray:
    """One period of the looped source, its seam crossfaded as :func:`~imgext.audio.io.fit_duration` does it (cached)."""
    key = ("loop", int(sample_rate))
    if key not in src.regions:
        length = src.clip.shape[0]
        period = length - int(min(_LOOP_CROSSFADE_S * sample_rate, length // 4))
        twice = fit_duration(src.clip, 2 * period, sample_rate, crossfade_s=_LOOP_CROSSFADE_S, fade_in_s=0.0,
                             fade_out_s=0.0)
        src.regions[key] = frozen(twice[period:])  # the second period: the first starts with the raw head
    return src.regions[key]


def render_bed(clip: np.ndarray | Source, *, offset_s: float, n_samples: int, sample_rate: int) -> np.ndarray:
    """Loop ``clip`` (crossfaded seams) from ``offset_s`` into the source [shape=(n_samples,), float32].

    The start fades in over 50 ms and the end out over 0.5 s, so nothing clicks.
    The loop is :func:`~imgext.audio.io.fit_duration`'s, copied period by period
    from the source's cached loop unit (a :class:`Source`).
    """
    src = clip if isinstance(clip, Source) else analyse_source(clip, sample_rate)
    x = src.clip
    offset = round(offset_s * sample_rate)
    if x.shape[0] >= n_samples + offset:
        out = np.array(x[offset : offset + n_samples], dtype=np.float32)
        return _fade(out, int(_BED_FADE_IN_S * sample_rate), int(_SCENE_FADE_OUT_S * sample_rate))
    unit = _loop_unit(src, sample_rate)
    period = unit.shape[0]
    out = np.empty(n_samples, dtype=np.float32)
    k, pos = 0, offset % period
    while k < n_samples:  # one copy per loop period (a few dozen), not per sample
        m = min(period - pos, n_samples - k)
        out[k : k + m] = unit[pos : pos + m]
        k, pos = k + m, 0
    head = x.shape[0] - period  # the real beginning of the sound where the loop starts at it, not the seam
    if offset < head:
        m = min(head - offset, n_samples)
        out[:m] = x[offset : offset + m]
    tail = min(int(_SCENE_FADE_OUT_S * sample_rate), (n_samples + offset) // 4)
    if tail > 0:
        out[n_samples - tail :] *= np.linspace(1.0, 0.0, tail, endpoint=True, dtype=np.float32)
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
    clip: np.ndarray | Source,
    *,
    settings: MixSettings,
    given: Arrangement | None = None,
    descriptors: Mapping | None = None,
) -> Composed:
    """Arrange one object (see the module notes); ``given`` renders a saved arrangement as it is.

    ``clip`` is the decoded source [shape=(n,)] or its :class:`Source` (cached
    analysis); the arranged track is levelled to the reference loudness by
    :func:`estimated_loudness`.
    """
    src = clip if isinstance(clip, Source) else analyse_source(clip, settings.sample_rate)
    clip = src.clip
    sr = settings.sample_rate
    n = round(settings.duration_s * sr)
    clip_s = clip.shape[0] / sr
    note = None
    if given is not None:
        arr = given
    else:
        rng = object_rng(settings.seed, obj, index)
        role, note = src.role(obj.role, sr, descriptors=descriptors, scene_s=settings.duration_s)
        if role is Role.EVENT:
            rate = (obj.events_per_minute or 3.0) * settings.activity
            event_s = obj.event_s or 1.5
            regions = src.events(sr, event_s)
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
        track = render_bed(src, offset_s=arr.offset_s, n_samples=n, sample_rate=sr)
        side = render_bed(src, offset_s=arr.side_offset_s, n_samples=n, sample_rate=sr) if arr.role is Role.AREA else None
    track = _level(track, estimated_loudness(src, arr, n_samples=n, sample_rate=sr), sr)
    if side is not None:
        side = _level(side, estimated_loudness(src, arr, n_samples=n, sample_rate=sr, offset_s=arr.side_offset_s), sr)
    return Composed(track, side, arr, (f"{obj.label}: {note}",) if note else ())


def compose(
    objects: Sequence[SceneObject],
    fetched: Mapping[int, Fetched],
    *,
    settings: MixSettings,
    given: Mapping[int, Arrangement] | None = None,
    sources: dict | None = None,
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
    sources : dict, optional
        Kept by the caller between arrangements of the same scene (an interactive session): the decoded,
        analysed sources (:class:`Source`) of this call, up to :data:`SOURCE_MEMO_BYTES`, so the next
        arrangement (another activity or seed) neither decodes nor analyses them again, however many
        sources the scene has (the shared :data:`CLIP_CACHE` holds ~15 of 30 s). Replaced by this call's
        sources; the result never depends on it (a source not found there is made as without it).

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
    used: list[tuple[bytes, dict, Source]] = []
    for i, f in fetched.items():
        obj = objects[i]
        if obj.skipped or Role.parse(obj.role) is Role.OFF:
            out[i] = f
            continue
        how = {"name": f.candidate.name, "sample_rate": settings.sample_rate,
               "max_seconds": min(600.0, settings.duration_s + 30.0)}
        known = None if sources is None else sources.get(id(f.data))  # the same bytes: not even hashed again
        clip = known[2] if known is not None and known[0] is f.data and known[1] == how else _source(f.data, **how)
        used.append((f.data, how, clip))
        descriptors = {k: f.candidate.extra.get(k) for k in ("single_event", "loopable", "ac_single_event", "ac_loop")
                       if isinstance(f.candidate.extra, Mapping) and k in f.candidate.extra}
        composed = arrange_object(obj, i, clip, settings=settings, given=given.get(i), descriptors=descriptors)
        out[i] = replace(f, track=composed.track, notes=f.notes + composed.notes)
        arrangements[i] = composed.arrangement
        if composed.side is not None:
            sides[i] = (composed.arrangement.width, composed.side)
    if sources is not None:
        kept = _kept_sources(used, SOURCE_MEMO_BYTES)
        sources.clear()  # (a reader on another thread may then miss one: it makes it, as without the memo)
        sources.update(kept)
    return out, arrangements, sides


def compose_tracks(
    objects: Sequence[SceneObject],
    fetched: Mapping[int, Fetched],
    *,
    settings: MixSettings,
    notes: Sequence[str] = (),
    given: Mapping[int, Arrangement] | None = None,
    sources: dict | None = None,
):
    """:func:`compose` then :func:`~imgext.composition.tracks.assemble_tracks`: the arranged :class:`Tracks`.

    Returns ``(tracks, fetched, arrangements)``.
    """
    from imgext.composition.tracks import assemble_tracks

    fetched, arrangements, sides = compose(objects, fetched, settings=settings, given=given, sources=sources)
    tracks = assemble_tracks(objects, fetched, settings=settings, notes=notes, sides=sides)
    by_track = {k: arrangements[i] for k, i in enumerate(tracks.object_indices) if i in arrangements}
    return replace(tracks, arrangements=by_track), fetched, arrangements

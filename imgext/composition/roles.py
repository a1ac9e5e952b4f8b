"""Roles: which objects sound as events, beds or areas, and which boxes sound once.

* :func:`resolve_objects` applies the scene rules: two boxes of different labels
  over the same region (overlap above 80 %) sound once, as the more confident
  label; many persons (or a crowd-sized box) become one crowd bed, many cars
  one traffic area, many birds a flock (the label table's ``group``).
* :func:`event_regions` finds the events inside a source (onsets from
  ``librosa.onset.onset_strength``), each with its natural tail.
* :func:`check_role` checks a default role against the audio itself: a short
  one-shot given a bed role would repeat like a machine gun, so it becomes an
  event; Freesound's ``single_event`` / ``loopable`` descriptors count when present.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

import numpy as np

from imgext.composition.schedule import Region
from imgext.vision.placement import LabelMap, Role, SceneObject

__all__ = ["DUPLICATE_OVERLAP", "Role", "box_overlap", "check_role", "event_regions", "onset_frames", "resolve_objects"]

DUPLICATE_OVERLAP = 0.8
"""Two boxes of different labels overlapping more than this (of the smaller box) are one thing."""

_TAIL_DB = 35.0  # an event's tail ends where its level falls this far below its peak
_MAX_EVENT_S = 8.0
_LEAD_DB = 50.0  # an event starts where its level first comes within this of its peak (the attack kept)
_QUIET_DB = 30.0  # a region this far under the source's loudest moment is its floor or a far-off tail, not an event
_DIP_DB = 10.0  # a new call starts only after the level fell this far under the previous call's peak


def box_overlap(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection of two ``(x0, y0, x1, y1)`` boxes over the smaller one's area, in [0, 1]."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    small = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return float(w * h / small) if small > 0 else 0.0


def _area(box: Sequence[float]) -> float:
    return max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1])


def resolve_objects(objects: Sequence[SceneObject], *, labels: LabelMap | None = None) -> list[SceneObject]:
    """Apply the scene rules; returns the objects in the same order (some marked ``skipped`` with a note).

    Parameters
    ----------
    objects : sequence of SceneObject
        As :func:`~imgext.vision.placement.place_objects` gives them.
    labels : LabelMap, optional
        For the groups; default :meth:`LabelMap.default`.

    Returns
    -------
    list of SceneObject
        A group keeps its most important member, renamed (``crowd``, ``traffic``),
        with the group's sound and role, its box the union of the members' boxes.
    """
    labels = labels or LabelMap.default()
    objs = list(objects)
    # 1. The same region detected as two things: keep the more confident label.
    for i in range(len(objs)):
        for j in range(len(objs)):
            a, b = objs[i], objs[j]
            if i == j or a.skipped or b.skipped or a.label == b.label or a.origin != "detected" or b.origin != "detected":
                continue
            if box_overlap(a.box, b.box) > DUPLICATE_OVERLAP and (b.confidence, -j) < (a.confidence, -i):
                objs[j] = replace(b, skipped=True, notes=b.notes + (
                    f"the same region as {a.label!r} ({a.confidence:.2f} > {b.confidence:.2f}): sounds once, as {a.label!r}",))
    # 2. Groups: many persons are a crowd, many cars traffic.
    by_label: dict[str, list[int]] = {}
    for i, o in enumerate(objs):
        if not o.skipped and o.origin == "detected":
            by_label.setdefault(o.label, []).append(i)
    for label, members in by_label.items():
        group = labels.lookup(label).group
        if group is None:
            continue
        area = sum(_area(objs[i].box) for i in members)
        if len(members) < group.min_count and area < group.min_area:
            continue
        lead = max(members, key=lambda i: (objs[i].importance, -i))
        boxes = np.array([objs[i].box for i in members])
        union = (float(boxes[:, 0].min()), float(boxes[:, 1].min()), float(boxes[:, 2].max()), float(boxes[:, 3].max()))
        o = objs[lead]
        objs[lead] = replace(
            o, label=group.label, query=group.query, synth=group.synth, role=group.role.value, box=union,
            pan=round(float(np.clip(union[0] + union[2] - 1.0, -1.0, 1.0)), 4),
            importance=max(objs[i].importance for i in members), synonyms=tuple(dict.fromkeys(
                tuple(group.query.lower().split()) + o.synonyms)),
            notes=o.notes + (f"{len(members)} × {label!r} sound as one {group.label} ({group.role.value})",),
        )
        for i in members:
            if i != lead:
                objs[i] = replace(objs[i], skipped=True, notes=objs[i].notes + (f"part of the {group.label}",))
    return objs


def _envelope_db(clip: np.ndarray, sample_rate: int, hop: int) -> np.ndarray:
    """Frame RMS level in dB [shape=(n_frames,)] of a mono clip, ``hop`` samples per frame."""
    n = clip.shape[0] // hop
    if n == 0:
        return np.full(1, -120.0)
    frames = clip[: n * hop].astype(np.float64).reshape(n, hop)
    return 10.0 * np.log10(np.mean(frames**2, axis=1) + 1e-12)


def onset_frames(clip: np.ndarray, sample_rate: int, *, hop: int = 512, delta: float = 0.07) -> list[int]:
    """Onsets of a mono clip, as frame indices (``hop`` samples per frame).

    The onset strength is librosa's (``librosa.onset.onset_strength``: the mean
    over frequency of the positive first difference of a log-power
    spectrogram), computed here in numpy; peaks are picked as
    ``librosa.util.peak_pick`` does (a local maximum over +-30 ms, ``delta``
    above the mean of the surrounding 100 ms, at least 50 ms apart) and moved
    back to the preceding energy minimum, as ``onset_detect(backtrack=True)``
    does.  Importing ``librosa.onset`` itself costs 3-16 s here (numba), more
    than the whole mix, so the same formulas are used without it.
    """
    from scipy.ndimage import maximum_filter1d, uniform_filter1d

    from imgext.audio.dsp import signal

    x = np.asarray(clip, dtype=np.float32)
    if x.shape[0] < 4 * hop:
        return [0]
    _, _, z = signal.stft(x, fs=sample_rate, nperseg=4 * hop, noverlap=3 * hop, boundary=None, padded=False)
    spec_db = 10.0 * np.log10(np.abs(z) ** 2 + 1e-10)
    spec_db = np.maximum(spec_db, spec_db.max() - 80.0)
    strength = np.concatenate([[0.0], np.mean(np.maximum(0.0, np.diff(spec_db, axis=1)), axis=0)])
    if strength.max() <= 0:
        return [0]
    strength = strength / strength.max()
    frames_per_s = sample_rate / hop
    local_max = strength == maximum_filter1d(strength, size=2 * round(0.03 * frames_per_s) + 1)
    above = strength >= uniform_filter1d(strength, size=2 * round(0.1 * frames_per_s) + 1) + delta
    peaks = np.flatnonzero(local_max & above)
    keep: list[int] = []
    for p in peaks:  # one per 50 ms (a few dozen peaks at most)
        if not keep or p - keep[-1] >= 0.05 * frames_per_s:
            keep.append(int(p))
    energy = np.mean(np.abs(z) ** 2, axis=0)
    out = []
    for p in keep:  # back to the energy minimum before the peak
        q = p
        while q > 0 and energy[q - 1] <= energy[q]:
            q -= 1
        out.append(q)
    return sorted(set(out)) or [0]


def event_regions(clip: np.ndarray, sample_rate: int, *, event_s: float, max_regions: int = 12) -> list[Region]:
    """The events inside a source clip, each from its onset through its natural tail.

    An onset inside a call (no dip of 10 dB since the call's peak) does not cut it; a
    region 30 dB under the loudest moment (the recording's floor) is no event.

    Parameters
    ----------
    clip : np.ndarray [shape=(n_samples,)]
        Mono source at ``sample_rate``.
    sample_rate : int
        In Hz.
    event_s : float > 0
        Typical event length in seconds: a source with no clear onsets is cut
        into windows of about this length instead.
    max_regions : int
        At most this many regions, the loudest first.

    Returns
    -------
    list of Region
        In source order; each at least 50 ms and at most 8 s (or ``3 * event_s``) long.
    """
    x = np.asarray(clip, dtype=np.float32)
    dur = x.shape[0] / sample_rate
    if dur <= 0.05:
        return [Region(0.0, max(dur, 1.0 / sample_rate))]
    hop = 512
    env = _envelope_db(x, sample_rate, hop)
    onsets = [f for f in onset_frames(x, sample_rate, hop=hop) if f < env.shape[0]]
    if not onsets or env.max() < -100:
        onsets = [0]
    onsets = _calls(onsets, env)
    longest = min(_MAX_EVENT_S, max(3.0 * event_s, 0.5))
    regions = []
    for k, start in enumerate(onsets):
        stop = onsets[k + 1] if k + 1 < len(onsets) else env.shape[0]
        seg = env[start:stop]
        if seg.size == 0:
            continue
        lead = int(np.argmax(seg >= seg.max() - _LEAD_DB))  # skip the silence an onset was moved back into
        start += lead
        stop = min(stop, start + int(longest * sample_rate / hop))
        seg = env[start:stop]
        if seg.size == 0 or seg.max() < env.max() - _QUIET_DB:
            continue
        peak_at = int(np.argmax(seg))
        below = np.flatnonzero(seg[peak_at:] < seg[peak_at] - _TAIL_DB)
        end = start + peak_at + (int(below[0]) if below.size else seg.size - peak_at)
        if (end - start) * hop / sample_rate >= 0.05:
            regions.append((float(seg.max()), Region(start * hop / sample_rate, min(dur, end * hop / sample_rate))))
    if len(onsets) == 1 and regions and regions[0][1].duration_s > 2.5 * event_s and dur > 2.5 * event_s:
        # One long sound (a continuous recording used for an event): windows of about the event length.
        n = min(max_regions, int(dur // event_s))
        starts = np.linspace(0.0, dur - event_s, n)
        return [Region(float(s), float(s + event_s)) for s in starts]
    regions.sort(key=lambda r: -r[0])
    keep = sorted((r for _, r in regions[:max_regions]), key=lambda r: r.start_s)
    return keep or [Region(0.0, min(dur, longest))]


def _calls(onsets: list[int], env_db: np.ndarray) -> list[int]:
    """Keep the onsets that start a new call: the level dipped ``_DIP_DB`` under the call's peak since.

    The onset detector also fires inside one call (a moo gliding from "m" to
    "oo", a neigh's vibrato); cut there, an event would be a 100 ms fragment of
    a moo.  Calls in quick succession (a volley of barks) dip between them and
    stay apart.
    """
    keep = [onsets[0]]
    for nxt in onsets[1:]:
        seg = env_db[keep[-1] : nxt + 1]
        peak_at = int(np.argmax(seg))
        if seg.size and float(seg[peak_at] - np.min(seg[peak_at:])) >= _DIP_DB:
            keep.append(nxt)
    return keep


def check_role(role: Role | str, clip: np.ndarray, sample_rate: int, *, descriptors: Mapping | None = None,
               scene_s: float = 30.0) -> tuple[Role, str | None]:
    """Check a default role against the sound: returns ``(role, note)``, the note saying what changed and why.

    A bed or area whose source is short (under a quarter of the scene) and
    made of one-shots (its tail more than 20 dB under its head, or 20 dB
    between its loud onsets and its quiet gaps; or Freesound's
    ``single_event``) would loop as a machine gun: it becomes an event.
    ``loopable`` keeps the role.  An event whose source is a long steady
    sound stays an event: events cut parts of it.
    """
    role = Role.parse(role)
    descriptors = descriptors or {}
    if role not in (Role.BED, Role.AREA):
        return role, None
    x = np.asarray(clip, dtype=np.float32)
    dur = x.shape[0] / sample_rate
    if descriptors.get("loopable") or descriptors.get("ac_loop"):
        return role, None
    single = descriptors.get("single_event") or descriptors.get("ac_single_event")
    env = _envelope_db(x, sample_rate, 512)
    quarter = max(1, env.shape[0] // 4)
    head, tail = float(np.max(env[:quarter])), float(np.median(env[-quarter:]))
    n_onsets = len(onset_frames(x, sample_rate)) if dur < 0.25 * scene_s else 0
    spread = float(np.percentile(env, 95) - np.percentile(env, 10))
    if single:
        return Role.EVENT, f"{role.value} -> event: Freesound marks it a single event, it would repeat like a loop"
    if dur < 0.25 * scene_s and (head - tail > 20.0 or spread > 20.0):
        why = f"a {dur:.1f} s one-shot ({n_onsets} onsets, {max(head - tail, spread):.0f} dB from head to quiet)"
        return Role.EVENT, f"{role.value} -> event: {why}, it would repeat like a loop"
    return role, None

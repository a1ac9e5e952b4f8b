"""Scene placement: where each object sits in the stereo field, how much it matters, what it should sound like.

For every detection: pan from the box centre (``pan = 2 * cx - 1``, -1 left ..
1 right), an importance in [0, 1] from box area and confidence, and a search
term from the label table (``data/labels.json``, overridable).  The gain in dB
follows from importance and the user's attenuation at mix time
(:func:`object_gain_db`), so moving that slider never needs a new detection.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from enum import Enum
from importlib import resources
from pathlib import Path

from imgext.errors import ParameterError
from imgext.options import DEFAULT_ATTENUATION_DB
from imgext.vision.detection import Detection
from imgext.vision.distance import DEFAULT_FOV_DEG, direction_deg, estimate_distance_m

__all__ = [
    "DEFAULT_ATTENUATION_DB",
    "Role",
    "Group",
    "LabelSound",
    "LabelMap",
    "SceneObject",
    "place_objects",
    "manual_object",
    "object_gain_db",
    "importance_from",
    "with_role",
]



class Role(str, Enum):
    """How an object sounds in time.

    * ``EVENT``: one-shots scheduled at random times (a bark, a horn, a door).
    * ``BED``: continuous, looped from a random start (an idling engine, a fountain).
    * ``AREA``: continuous and wide, decorrelated left/right (traffic, a flock, a crowd).
    * ``OFF``: not sounded.
    """

    EVENT = "event"
    BED = "bed"
    AREA = "area"
    OFF = "off"

    @classmethod
    def parse(cls, value) -> Role:
        """``Role`` from a role or its name; the message lists the valid names."""
        try:
            return cls(str(getattr(value, "value", value)).strip().lower())
        except ValueError:
            raise ParameterError(f"role {value!r} is not one of {', '.join(r.value for r in cls)}") from None


@dataclass(frozen=True)
class Group:
    """Many boxes of one label heard as one source (persons -> a crowd, cars -> traffic).

    Attributes
    ----------
    min_count : int >= 2
        This many boxes of the label form the group ...
    min_area : float in (0, 1]
        ... or fewer whose boxes together cover this fraction of the picture.
    label, query, synth : str
        What the group is called and sounds like.
    role : Role
    """

    min_count: int
    min_area: float
    label: str
    query: str
    synth: str
    role: Role = Role.AREA


@dataclass(frozen=True)
class LabelSound:
    """What a label should sound like.

    Attributes
    ----------
    query : str
        Search terms for Freesound or a local library.
    synth : str
        Kind name for the built-in synthesiser (:data:`imgext.sounds.synth.SYNTH_KINDS`).
    synonyms : tuple of str
        Words that mark a candidate sound as on-topic when ranking.
    silent : bool
        Makes no sound on its own (tie, book, vase ...); skipped by default.
    role : Role
        Default role in time: event, bed or area.
    events_per_minute : float >= 0
        Typical rate of an event-role object (at activity 1).
    event_s : float >= 0
        Typical length of one event in seconds.
    group : Group or None
        How many boxes of this label sound as one (persons -> crowd).
    """

    query: str
    synth: str = "ambience"
    synonyms: tuple[str, ...] = ()
    silent: bool = False
    role: Role = Role.BED
    events_per_minute: float = 0.0
    event_s: float = 0.0
    group: Group | None = None


class LabelMap(Mapping[str, LabelSound]):
    """Label -> :class:`LabelSound` table, the package default plus user overrides.

    Override files are JSON: ``{"labels": {"dog": {"query": "small dog yapping"}}}``
    (or the inner mapping alone); fields not given keep their defaults, and new
    labels may be added.
    """

    def __init__(self, table: Mapping[str, LabelSound]) -> None:
        self._table = dict(table)

    @classmethod
    def default(cls) -> LabelMap:
        text = resources.files("imgext").joinpath("data/labels.json").read_text(encoding="utf-8")
        return cls({k: _label_sound(k, v, None) for k, v in json.loads(text)["labels"].items()})

    def with_overrides(self, overrides: Mapping[str, Mapping]) -> LabelMap:
        """Return a new map with ``overrides`` (label -> partial fields) applied."""
        if "labels" in overrides and isinstance(overrides["labels"], Mapping):
            overrides = overrides["labels"]
        table = dict(self._table)
        for label, fields in overrides.items():
            if not isinstance(fields, Mapping):
                raise ParameterError(f"label override for {label!r} must be an object, got {fields!r}")
            table[str(label)] = _label_sound(str(label), fields, table.get(str(label)))
        return LabelMap(table)

    def with_file(self, path: str | os.PathLike) -> LabelMap:
        """Return a new map with the overrides from a JSON file applied."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ParameterError(f"cannot read label table {os.fspath(path)!r}: {exc}") from None
        if not isinstance(data, Mapping):
            raise ParameterError(f"label table {os.fspath(path)!r} must hold a JSON object")
        return self.with_overrides(data)

    def lookup(self, label: str) -> LabelSound:
        """The entry for ``label``; unknown labels search for themselves."""
        return self._table.get(label) or LabelSound(
            query=label, synth="animal_call", synonyms=(label,), role=Role.EVENT, events_per_minute=3.0, event_s=1.5
        )

    def __getitem__(self, key: str) -> LabelSound:
        return self._table[key]

    def __iter__(self):
        return iter(self._table)

    def __len__(self) -> int:
        return len(self._table)


def _label_sound(label: str, fields: Mapping, base: LabelSound | None) -> LabelSound:
    base = base or LabelSound(query=label, synonyms=(label,))
    unknown = set(fields) - {"query", "synth", "synonyms", "silent", "role", "events_per_minute", "event_s", "group"}
    if unknown:
        raise ParameterError(f"label {label!r}: unknown fields {sorted(unknown)}")
    query = str(fields.get("query", base.query)).strip() or label
    synonyms = fields.get("synonyms", base.synonyms)
    if isinstance(synonyms, str) or not isinstance(synonyms, Iterable):
        raise ParameterError(f"label {label!r}: synonyms must be a list of words")
    role = Role.parse(fields.get("role", base.role))
    rate = _non_negative(label, "events_per_minute", fields.get("events_per_minute", base.events_per_minute))
    event_s = _non_negative(label, "event_s", fields.get("event_s", base.event_s))
    if role is Role.EVENT and (rate <= 0 or event_s <= 0):
        rate, event_s = rate or 3.0, event_s or 1.5  # an event needs a rate and a length
    group = fields.get("group", base.group)
    if isinstance(group, Mapping):
        try:
            group = Group(min_count=int(group["min_count"]), min_area=float(group.get("min_area", 1.0)),
                          label=str(group["label"]), query=str(group["query"]), synth=str(group.get("synth", "voices")),
                          role=Role.parse(group.get("role", "area")))
        except (KeyError, TypeError, ValueError) as exc:
            raise ParameterError(f"label {label!r}: group needs min_count, label and query ({exc})") from None
    elif group is not None and not isinstance(group, Group):
        raise ParameterError(f"label {label!r}: group must be an object or null")
    return LabelSound(
        query=query,
        synth=str(fields.get("synth", base.synth)),
        synonyms=tuple(str(s).lower() for s in synonyms),
        silent=bool(fields.get("silent", base.silent)),
        role=role,
        events_per_minute=rate,
        event_s=event_s,
        group=group,
    )


def _non_negative(label: str, name: str, value) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = math.nan
    if not (math.isfinite(v) and v >= 0):
        raise ParameterError(f"label {label!r}: {name}={value!r} must be a number >= 0")
    return v


@dataclass(frozen=True)
class SceneObject:
    """An object placed in the scene.

    Attributes
    ----------
    label : str
    confidence : float
        Detector score in [0, 1] (1.0 for objects added by hand).
    box : tuple of 4 float
        ``(x0, y0, x1, y1)`` in [0, 1].
    pan : float
        Stereo position in [-1, 1], -1 hard left.
    importance : float
        In [0, 1]; the most important object of the scene has 1.
    query : str
        Search terms for the sound.
    synth : str
        Built-in synthesiser kind.
    synonyms : tuple of str
        On-topic words for ranking candidates.
    volume_db : float
        The user's own level offset in dB, added to the importance gain.
    skipped : bool
        True for objects that get no sound (silent labels unless asked for).
    origin : {"detected", "manual", "file", "ambience"}
    role : str
        ``"event"``, ``"bed"``, ``"area"`` or ``"off"`` (:class:`Role`); the user may change it.
    events_per_minute : float >= 0
        Rate of an event-role object at activity 1.
    event_s : float >= 0
        Typical length of one of its events in seconds.
    distance_m : float or None
        Distance from the camera in metres (:func:`imgext.vision.distance.estimate_distance_m`,
        or the user's value); None when unknown (then it counts as the nearest).
    azimuth_deg, elevation_deg : float or None
        Direction from the camera (azimuth positive to the left, SOFA convention); None
        when unknown (then the azimuth follows the pan and the elevation is 0).
    """

    label: str
    confidence: float
    box: tuple[float, float, float, float]
    pan: float
    importance: float
    query: str
    synth: str = "ambience"
    synonyms: tuple[str, ...] = ()
    volume_db: float = 0.0
    skipped: bool = False
    origin: str = "detected"
    notes: tuple[str, ...] = field(default_factory=tuple)
    role: str = Role.BED.value
    events_per_minute: float = 0.0
    event_s: float = 0.0
    distance_m: float | None = None
    azimuth_deg: float | None = None
    elevation_deg: float | None = None

    def to_dict(self) -> dict:
        d = asdict(self)
        d["box"] = list(self.box)
        d["synonyms"] = list(self.synonyms)
        d["notes"] = list(self.notes)
        return d

    @classmethod
    def from_dict(cls, d: Mapping) -> SceneObject:
        names = {f for f in cls.__dataclass_fields__}
        kw = {k: v for k, v in d.items() if k in names}
        kw["box"] = tuple(float(v) for v in kw.get("box", (0, 0, 0, 0)))
        kw["synonyms"] = tuple(kw.get("synonyms", ()))
        kw["notes"] = tuple(kw.get("notes", ()))
        if "role" in kw:
            try:
                kw["role"] = Role.parse(kw["role"]).value
            except ParameterError:  # a role another version wrote: the default stands
                del kw["role"]
        return cls(**kw)


def importance_from(confidences: Iterable[float], areas: Iterable[float]) -> list[float]:
    """Importance in [0, 1] from detector confidence and normalised box area.

    ``raw = confidence * sqrt(area)``: the square root keeps a huge bus from
    drowning every person (apparent size grows with the square of closeness);
    the result is divided by the largest value, so the top object has 1.
    """
    raw = [max(0.0, float(c)) * math.sqrt(max(0.0, float(a))) for c, a in zip(confidences, areas)]
    top = max(raw, default=0.0)
    return [round(r / top, 4) if top > 0 else 1.0 for r in raw]


def object_gain_db(importance: float, *, attenuation_db: float = DEFAULT_ATTENUATION_DB, volume_db: float = 0.0) -> float:
    """Gain of an object in dB: ``-attenuation_db * (1 - importance) + volume_db``.

    Parameters
    ----------
    importance : float in [0, 1]
    attenuation_db : float >= 0
        How far below the most important object an object of importance 0 sits.
    volume_db : float
        The user's own offset.
    """
    if attenuation_db < 0 or not math.isfinite(attenuation_db):
        raise ParameterError(f"attenuation_db={attenuation_db} must be a finite number >= 0")
    return float(-attenuation_db * (1.0 - min(max(importance, 0.0), 1.0)) + volume_db)


def place_objects(
    detections: Iterable[Detection],
    *,
    labels: LabelMap | None = None,
    include_silent: bool = False,
    aspect: float | None = None,
    fov_deg: float = DEFAULT_FOV_DEG,
) -> list[SceneObject]:
    """Place detections in the stereo field, and in depth when the image's shape is known.

    Parameters
    ----------
    detections : iterable of Detection
    labels : LabelMap, optional
        Label table; defaults to :meth:`LabelMap.default`.
    include_silent : bool
        Keep objects whose label makes no sound on its own (marked ``skipped``
        otherwise, so the user sees them and can bring them back).
    aspect : float, optional
        Image width / height in pixels; with it each object gets ``distance_m``,
        ``azimuth_deg`` and ``elevation_deg`` (:mod:`imgext.vision.distance`).
    fov_deg : float
        Assumed horizontal field of view of the camera, degrees.

    Returns
    -------
    list of SceneObject
        In the detector's order (most confident first).
    """
    labels = labels or LabelMap.default()
    detections = list(detections)
    areas = [max(0.0, (d.box[2] - d.box[0])) * max(0.0, (d.box[3] - d.box[1])) for d in detections]
    importance = importance_from([d.confidence for d in detections], areas)
    objects = []
    for det, imp in zip(detections, importance):
        entry = labels.lookup(det.label)
        cx = 0.5 * (det.box[0] + det.box[2])
        skipped = entry.silent and not include_silent
        objects.append(
            SceneObject(
                label=det.label,
                confidence=float(det.confidence),
                box=tuple(float(v) for v in det.box),
                pan=round(min(max(2.0 * cx - 1.0, -1.0), 1.0), 4),
                importance=imp,
                query=entry.query,
                synth=entry.synth,
                synonyms=entry.synonyms,
                skipped=skipped,
                notes=(f"{det.label!r} makes no sound on its own; skipped",) if skipped else (),
                role=entry.role.value,
                events_per_minute=entry.events_per_minute,
                event_s=entry.event_s,
                **_depth(det.label, det.box, aspect, fov_deg),
            )
        )
    return objects


def _depth(label: str, box, aspect: float | None, fov_deg: float) -> dict:
    """``distance_m``, ``azimuth_deg`` and ``elevation_deg`` of a box (empty when the aspect is unknown)."""
    if aspect is None:
        return {}
    az, el = direction_deg(box, aspect=aspect, fov_deg=fov_deg)
    return {"distance_m": estimate_distance_m(label, box, aspect=aspect, fov_deg=fov_deg), "azimuth_deg": az, "elevation_deg": el}


def with_depth(objects, *, aspect: float, fov_deg: float = DEFAULT_FOV_DEG) -> list:
    """``objects`` with distance and direction estimated afresh (for a new field of view); manual ones are kept."""
    return [o if o.origin == "manual" else replace(o, **_depth(o.label, o.box, aspect, fov_deg)) for o in objects]


def manual_object(
    label: str,
    x: float,
    *,
    importance: float = 0.5,
    labels: LabelMap | None = None,
    query: str | None = None,
) -> SceneObject:
    """An object added by hand at horizontal position ``x`` in [0, 1] (0 = left edge)."""
    if not 0.0 <= x <= 1.0:
        raise ParameterError(f"x={x} must be between 0 (left edge) and 1 (right edge)")
    if not 0.0 <= importance <= 1.0:
        raise ParameterError(f"importance={importance} must be between 0 and 1")
    label = label.strip()
    if not label:
        raise ParameterError("a manual object needs a label")
    entry = (labels or LabelMap.default()).lookup(label)
    half = 0.05
    return SceneObject(
        label=label,
        confidence=1.0,
        box=(max(0.0, x - half), 0.4, min(1.0, x + half), 0.6),
        pan=round(2.0 * x - 1.0, 4),
        importance=float(importance),
        query=(query or entry.query).strip() or label,
        synth=entry.synth,
        synonyms=entry.synonyms,
        origin="manual",
        role=entry.role.value,
        events_per_minute=entry.events_per_minute,
        event_s=entry.event_s,
    )


def with_query(obj: SceneObject, query: str) -> SceneObject:
    """Return ``obj`` with a new search term (the user's edit)."""
    query = query.strip()
    if not query:
        raise ParameterError("the search term cannot be empty")
    words = tuple(w.lower() for w in query.split())
    return replace(obj, query=query, synonyms=tuple(dict.fromkeys(words + obj.synonyms)))


def with_role(obj: SceneObject, role: Role | str, *, events_per_minute: float | None = None) -> SceneObject:
    """Return ``obj`` with a new role (and optionally a new event rate): the user's edit.

    An object made an event without a rate gets 3 events per minute of 1.5 s.
    """
    r = Role.parse(role)
    rate = obj.events_per_minute if events_per_minute is None else float(events_per_minute)
    if not (math.isfinite(rate) and rate >= 0):
        raise ParameterError(f"events_per_minute={events_per_minute!r} must be a number >= 0")
    event_s = obj.event_s
    if r is Role.EVENT:
        rate, event_s = rate or 3.0, event_s or 1.5
    return replace(obj, role=r.value, events_per_minute=rate, event_s=event_s)

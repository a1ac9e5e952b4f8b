"""The plan: a typed, versioned record of one render, the one owner of ``scene.json``.

A :class:`Plan` holds every decision of a render (image, objects, the sound of
each, settings, seed) and every measurement (gains, EQ, loudness, masking).
:meth:`Plan.to_dict` writes ``scene.json``; :meth:`Plan.from_dict` reads it
back, so a saved folder can be rendered again (:meth:`imgext.project.Project.from_folder`,
as Scaper's ``generate_from_jams`` does).

Adding a field
--------------
Add one line to the dataclass it belongs to, with a default::

    distance_m: float | None = None

:meth:`Record.to_dict` writes it and :meth:`Record.from_dict` reads it, and a
``scene.json`` written before the field existed still loads (the default is
used); unknown keys (written by a newer version) are ignored.  Fields of
:class:`~imgext.vision.placement.SceneObject` appear flat in each object's
record, so a new ``SceneObject`` field reaches ``scene.json`` with no change
here.  Bump :data:`SCHEMA_VERSION` only when an existing field changes meaning,
and add a migration to :data:`_MIGRATIONS`.
"""

from __future__ import annotations

import json
import math
import types
import typing
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, ClassVar

from imgext.errors import ParameterError
from imgext.options import MixSettings
from imgext.sounds.base import Candidate
from imgext.sounds.selection import Assignment, Ranked
from imgext.vision.placement import SceneObject

__all__ = [
    "SCHEMA_VERSION",
    "Record",
    "ImageRecord",
    "SoundRecord",
    "ObjectRecord",
    "MixRecord",
    "MaskingRecord",
    "OptimisationRecord",
    "Plan",
    "read_plan",
    "json_ready",
]

SCHEMA_VERSION = 1
"""Version of ``scene.json`` this code writes; it reads every version up to this one."""

FLAT = {"flatten": True}
"""Field metadata: the nested record's keys sit in the parent's dict, not under the field's name."""


def json_ready(value):
    """Convert numpy scalars/arrays, tuples and non-finite floats for ``json.dumps`` (inf/NaN -> None)."""
    if isinstance(value, Mapping):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        return json_ready(value.tolist())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    return str(value)


def _encode(value: Any) -> Any:
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if isinstance(value, (list, tuple)):
        return [_encode(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _encode(v) for k, v in value.items()}
    return value


def _decode(tp: Any, value: Any) -> Any:
    """``value`` (from JSON) as type ``tp``: nested records, optional values, lists, tuples, scalars."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return None
        arms = [a for a in typing.get_args(tp) if a is not type(None)]
        return _decode(arms[0], value) if len(arms) == 1 else value
    if value is None:
        return None
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ParameterError(f"expected a list, got {type(value).__name__}")
        args = [a for a in typing.get_args(tp) if a is not Ellipsis] or [Any]
        items = [_decode(args[0], v) for v in value]
        return items if origin is list else tuple(items)
    if origin is dict or tp is dict:
        if not isinstance(value, Mapping):
            raise ParameterError(f"expected a mapping, got {type(value).__name__}")
        return dict(value)
    if isinstance(tp, type) and hasattr(tp, "from_dict"):
        if not isinstance(value, Mapping):
            raise ParameterError(f"expected a mapping for {tp.__name__}, got {type(value).__name__}")
        return tp.from_dict(value)
    if tp is float:
        return float(value)
    if tp is int and not isinstance(value, bool):
        return int(value)
    if tp is str:
        return str(value)
    if tp is bool:
        return bool(value)
    return value


class Record:
    """Mixin for plan dataclasses: ``to_dict``/``from_dict`` generated from the fields.

    ``from_dict`` ignores unknown keys and uses the default for a missing one;
    a missing field without default is a :class:`~imgext.errors.ParameterError`.
    """

    def to_dict(self) -> dict:
        """JSON-ready dict of the fields (nested records as dicts, flattened ones merged in)."""
        out: dict = {}
        for f in fields(self):  # type: ignore[arg-type]
            value = _encode(getattr(self, f.name))
            if f.metadata.get("flatten"):
                out.update(value)
            else:
                out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, d: Mapping) -> Any:
        """Build from a dict written by :meth:`to_dict` (by this or another version)."""
        if not isinstance(d, Mapping):
            raise ParameterError(f"{cls.__name__}: expected a mapping, got {type(d).__name__}")
        hints = typing.get_type_hints(cls)
        kw = {}
        for f in fields(cls):  # type: ignore[arg-type]
            if f.metadata.get("flatten"):
                kw[f.name] = _decode(hints[f.name], d)
            elif f.name in d:
                kw[f.name] = _decode(hints[f.name], d[f.name])
            elif f.default is MISSING and f.default_factory is MISSING:
                raise ParameterError(f"{cls.__name__}: {f.name!r} is missing")
        try:
            return cls(**kw)
        except TypeError as exc:
            raise ParameterError(f"{cls.__name__}: {exc}") from None


@dataclass(frozen=True)
class ImageRecord(Record):
    """The input image: its name as given and its upright size in pixels."""

    path: str | None = None
    width: int = 0
    height: int = 0


@dataclass(frozen=True)
class SoundRecord(Record):
    """The sound of one object: where it came from, its licence, and its file in ``sources/``.

    Attributes
    ----------
    file : str or None
        Path of the source file inside the output folder (``sources/00_dog.mp3``).
    source_loudness_lufs : float or None
        Integrated loudness of the source before levelling, LUFS.
    """

    id: str
    name: str = ""
    source: str = ""
    license: str = "unknown"
    license_url: str | None = None
    author: str = "unknown"
    url: str | None = None
    file: str | None = None
    synthetic: bool = False
    commercial_ok: bool = True
    duration_s: float | None = None
    tags: tuple[str, ...] = ()
    source_loudness_lufs: float | None = None
    category: str | None = None
    subcategory: str | None = None

    @classmethod
    def of(cls, cand: Candidate, *, file: str | None, source_lufs: float | None = None) -> SoundRecord:
        """The record of a fetched candidate."""
        extra = cand.extra or {}
        return cls(
            id=cand.id, name=cand.name, source=cand.source, license=cand.license, license_url=cand.license_url,
            author=cand.author, url=cand.url, file=file, synthetic=cand.synthetic, commercial_ok=cand.commercial_ok,
            duration_s=cand.duration_s, tags=tuple(cand.tags), source_loudness_lufs=source_lufs,
            category=extra.get("category"), subcategory=extra.get("subcategory"),
        )

    def candidate(self) -> Candidate:
        """The :class:`~imgext.sounds.base.Candidate` this record describes (the file's extension as type)."""
        ext = Path(self.file or "").suffix.lstrip(".") or "wav"
        return Candidate(
            id=self.id, name=self.name, source=self.source, author=self.author or "unknown",
            license=self.license or "unknown", license_url=self.license_url, url=self.url, tags=self.tags,
            duration_s=self.duration_s, synthetic=self.synthetic, commercial_ok=self.commercial_ok, file_ext=ext,
        )


@dataclass(frozen=True)
class ObjectRecord(Record):
    """One object of the scene: the placed object (flat), its sound, gains, stems and EQ.

    Attributes
    ----------
    object : SceneObject
        Its fields sit flat in the record (``label``, ``pan``, ``importance`` ...).
    gain_db, requested_gain_db : float or None
        Final gain and the gain from importance alone, dB (None without a sound).
    reason : str
        Why this sound ("title and tags match 'dog barking' 0.84; single event; 2.1 s") or why none.
    relevance : float or None
        How well the sound fits the object, 0..1 (:mod:`imgext.sounds.relevance`); None without a sound.
    eq : list of dict
        EQ filters (:meth:`imgext.engine.eq.EqFilter.to_dict` with track names).
    core_smr_before_db, core_smr_after_db : float or None
        Signal-to-mask ratio in the track's core bands (80 % of its loudness) in the dry and
        the processed mix, dB (:func:`imgext.masking.model.core_smr`).
    ducking : dict or None
        The time-aware processing of this track (:meth:`imgext.engine.duck.DuckPlan.to_dict`):
        its always-on and deepest cut per band and its gain over time; None when not ducked.
    """

    object: SceneObject = field(metadata=FLAT)
    gain_db: float | None = None
    requested_gain_db: float | None = None
    sound: SoundRecord | None = None
    stem: str | None = None
    stem_dry: str | None = None
    track: str | None = None
    reason: str = ""
    relevance: float | None = None
    eq: list[dict] = field(default_factory=list)
    core_smr_before_db: float | None = None
    core_smr_after_db: float | None = None
    ducking: dict | None = None
    arrangement: dict | None = None
    """How it sounds in time (:meth:`imgext.composition.arrange.Arrangement.to_dict`): role, events
    (onset s, duration s, gain dB, source region s, rate), bed offset and width; None when not composed."""


@dataclass(frozen=True)
class MixRecord(Record):
    """The stereo mix file and its measurements (BS.1770 loudness in LUFS, sample peak in dBFS, true peak in dBTP)."""

    file: str = "mix.wav"
    sample_rate: int = 0
    duration_s: float = 0.0
    loudness_lufs: float | None = None
    target_lufs: float | None = None
    peak_dbfs: float | None = None
    master_gain_db: float | None = None
    limited_by_peak: bool = False
    true_peak_dbtp: float | None = None
    """True peak (BS.1770-4, 4x oversampled) in dBTP."""
    limiter_reduction_db: float = 0.0
    """Deepest gain reduction of the master's true-peak limiter in dB."""
    limited_s: float = 0.0
    """Seconds during which the limiter reduced more than 0.1 dB."""
    reverb_stem: str | None = None
    """The shared reverb bus as its own stem (the track stems plus this sum to the mix)."""


@dataclass(frozen=True)
class MaskingRecord(Record):
    """Masking before and after the EQ (:meth:`imgext.masking.analysis.MaskingReport.to_dict`)."""

    tracks: list[str] = field(default_factory=list)
    before: dict | None = None
    after: dict | None = None


@dataclass(frozen=True)
class OptimisationRecord(Record):
    """The optimiser's result (:class:`imgext.engine.optimise.OptimisationResult`)."""

    gain_offsets_db: list[float] = field(default_factory=list)
    eq_depth: list[float] = field(default_factory=list)
    cost_before: float = 0.0
    cost_after: float = 0.0
    n_evaluations: int = 0

    @classmethod
    def of(cls, opt) -> OptimisationRecord | None:
        if opt is None:
            return None
        return cls(
            gain_offsets_db=[round(float(v), 3) for v in opt.gain_offsets_db],
            eq_depth=[round(float(v), 3) for v in opt.eq_depth],
            cost_before=float(opt.cost_before), cost_after=float(opt.cost_after), n_evaluations=int(opt.n_evaluations),
        )


_MIGRATIONS: dict[int, Any] = {}
"""``{old_version: function(dict) -> dict of old_version + 1}``, applied in order by :meth:`Plan.from_dict`."""


@dataclass(frozen=True)
class Plan(Record):
    """Everything one render decided and measured: the content of ``scene.json``.

    Attributes
    ----------
    schema_version : int
        :data:`SCHEMA_VERSION` when written by this code.
    generator : str
        ``"imgext <version>"``.
    image : ImageRecord or None
        None for ``imgext mix`` (no image).
    source : str
        The sound source, described for people.
    settings : MixSettings
    objects : list of ObjectRecord
        Every object, in detection order, with or without a sound.
    mix : MixRecord
    binaural : MixRecord or None
        The headphone mix (``mix_binaural.wav``), when it was rendered.
    masking : MaskingRecord
    optimisation : OptimisationRecord or None
    notes : list of str
    timings_s : dict of str -> float
        Seconds per stage.
    files : list of str
        Every file of the render (the manifest :func:`~imgext.output.export.write_outputs` uses).
    """

    FILE: ClassVar[str] = "scene.json"

    schema_version: int = SCHEMA_VERSION
    generator: str = ""
    image: ImageRecord | None = None
    source: str = ""
    settings: MixSettings = field(default_factory=MixSettings)
    objects: list[ObjectRecord] = field(default_factory=list)
    mix: MixRecord = field(default_factory=MixRecord)
    binaural: MixRecord | None = None
    masking: MaskingRecord = field(default_factory=MaskingRecord)
    optimisation: OptimisationRecord | None = None
    ambience: dict | None = None
    """The scene's ambience bed: name, query, synth, reason, ambience_only (:func:`imgext.composition.ambience.ambience_record`)."""
    notes: list[str] = field(default_factory=list)
    timings_s: dict = field(default_factory=dict)
    files: list[str] = field(default_factory=list)

    @classmethod
    def from_dict(cls, d: Mapping) -> Plan:
        """Read a ``scene.json`` dict of any version up to :data:`SCHEMA_VERSION`."""
        if not isinstance(d, Mapping):
            raise ParameterError("a plan must be a JSON object")
        version = d.get("schema_version")
        if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= SCHEMA_VERSION:
            raise ParameterError(f"schema version {version!r}; this tool reads 1 to {SCHEMA_VERSION}")
        d = dict(d)
        while version < SCHEMA_VERSION:
            d = _MIGRATIONS[version](d)
            version += 1
        d["schema_version"] = SCHEMA_VERSION
        try:
            return super().from_dict(d)
        except (KeyError, TypeError, ValueError) as exc:
            raise ParameterError(f"not a valid plan: {exc}") from None

    def with_settings(self, settings: MixSettings) -> Plan:
        return replace(self, settings=settings)

    def scene_objects(self) -> list[SceneObject]:
        """The placed objects, as the render had them."""
        return [o.object for o in self.objects]

    def assignments(self) -> list[Assignment]:
        """One assignment per object: the plan's sound, or none with the recorded reason."""
        out = []
        for i, o in enumerate(self.objects):
            if o.sound is None:
                out.append(Assignment(i, o.object.query, None, o.reason or "no sound in the plan"))
                continue
            relevance = 1.0 if o.relevance is None else float(o.relevance)
            ranked = Ranked(o.sound.candidate(), relevance, relevance, o.reason or "from the plan")
            out.append(Assignment(i, o.object.query, ranked, ranked.reason, (ranked,)))
        return out

    def to_json(self) -> bytes:
        """``scene.json`` content: indented, UTF-8, finite numbers only (inf/NaN -> null).

        Lone surrogates (undecodable bytes in a sound's name) become ``?``, so the file is always valid UTF-8.
        """
        text = json.dumps(json_ready(self.to_dict()), indent=2, ensure_ascii=False) + "\n"
        return text.encode("utf-8", errors="replace")


def read_plan(folder: str | Path) -> tuple[Plan, dict[int, bytes]]:
    """Read a rendered folder's ``scene.json`` and its source files.

    Returns
    -------
    plan : Plan
    sources : dict of object index -> bytes
        The source file of every object that has a sound.

    Raises
    ------
    ParameterError
        No or unreadable ``scene.json``, an unknown schema version, or a missing source file.
    """
    root = Path(folder)
    path = root / Plan.FILE
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ParameterError(f"{str(folder)!r} holds no scene.json (not an Image Extender output, or an interrupted one)") from None
    except (OSError, ValueError) as exc:
        raise ParameterError(f"cannot read {path}: {exc}") from None
    try:
        plan = Plan.from_dict(raw)
    except ParameterError as exc:
        raise ParameterError(f"{path}: {exc}") from None
    sources: dict[int, bytes] = {}
    for i, o in enumerate(plan.objects):
        if o.sound is None:
            continue
        file = (root / str(o.sound.file or "")).resolve()
        if root.resolve() not in file.parents or not file.is_file():
            raise ParameterError(f"the plan's source file {o.sound.file!r} is missing from {str(folder)!r}")
        sources[i] = file.read_bytes()
    return plan, sources

"""Settings dataclasses: the one owner of every default, range, step and help text.

Each field is declared with :func:`option`, whose metadata (valid range, the
narrower range a slider offers, step, unit, label, help, command-line flag)
is read by :func:`specs`.  The command line (:mod:`imgext.cli`) and the app's
widgets (``pages/_state.py``) are generated from it, so they cannot drift from
the defaults here; ``__post_init__`` validates every range.

Adding a setting is one :func:`option` line in one dataclass.
"""

from __future__ import annotations

import math
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

from imgext.errors import ParameterError

__all__ = [
    "DEFAULT_SAMPLE_RATE",
    "DEFAULT_ATTENUATION_DB",
    "DEFAULT_LOUDNESS_LUFS",
    "DEFAULT_PEAK_DBFS",
    "DEFAULT_CANDIDATES",
    "DEFAULT_MIN_CUT_DB",
    "DEFAULT_AMBIENCE_DB",
    "Spec",
    "option",
    "specs",
    "MixSettings",
    "DetectSettings",
    "SoundSettings",
]

DEFAULT_SAMPLE_RATE = 44100
"""Mix sample rate in Hz (CD rate; Freesound previews are mostly 44.1 kHz)."""

DEFAULT_ATTENUATION_DB = 12.0
"""How far (dB) the least important object sits below the most important one at importance 0."""

DEFAULT_LOUDNESS_LUFS = -16.0
"""Target integrated loudness (BS.1770), the usual level for streamed stereo content."""

DEFAULT_PEAK_DBFS = -1.0
"""Sample-peak ceiling in dBFS after normalisation (1 dB of headroom for lossy encoders)."""

DEFAULT_CANDIDATES = 10
"""Candidates preloaded per search term (enough to reroll a few times without a new search)."""

DEFAULT_AMBIENCE_DB = -12.0
"""Level of the ambience bed under the foreground, dB (Scaper's ``ref_db`` gap; SonoWorld uses -10)."""

DEFAULT_MIN_CUT_DB = 0.5
"""Shallowest EQ cut worth a filter, dB (about the just-noticeable level difference)."""

LONG_SCENE_S = 180.0
"""Scenes longer than this (longer than the app allows, so its players never meet one) keep their
tracks, processed tracks, reverb bus and source files in temporary files (:mod:`imgext.audio.spill`)
and make what a stage reads a row at a time (8 x 600 s: 850 MB per copy of the tracks)."""


@dataclass(frozen=True)
class Spec:
    """One setting as the command line and the app see it (from :func:`option` metadata).

    Attributes
    ----------
    name : str
        Field name (``"eq_strength"``).
    type : type
        ``float``, ``int`` or ``bool``.
    default : object
    lo, hi : float or None
        Valid range (inclusive), checked by the dataclass.
    ui_lo, ui_hi : float or None
        The range a slider offers (within ``lo..hi``).
    step : float or None
        Slider step.
    unit : str
        ``"dB"``, ``"LUFS"``, ``"s"`` ...
    label : str
        Widget label.
    help : str
        One sentence, shown in ``--help`` and as the widget's tooltip.
    flag : str or None
        Command-line option (``"--eq-strength"``); None: not on the command line.
    aliases : tuple of str
        Further accepted spellings of ``flag``.
    metavar : str or None
    choices : tuple of str
        The allowed values of a ``str`` setting.
    """

    name: str
    type: type
    default: Any
    lo: float | None
    hi: float | None
    ui_lo: float | None
    ui_hi: float | None
    step: float | None
    unit: str
    label: str
    help: str
    flag: str | None
    aliases: tuple[str, ...]
    metavar: str | None
    choices: tuple[str, ...] = ()


def option(
    default: Any,
    *,
    help: str,
    label: str = "",
    lo: float | None = None,
    hi: float | None = None,
    ui: tuple[float, float] | None = None,
    step: float | None = None,
    unit: str = "",
    flag: str | None = None,
    aliases: tuple[str, ...] = (),
    metavar: str | None = None,
    choices: tuple[str, ...] = (),
) -> Any:
    """A dataclass field with the metadata :func:`specs` reads (see :class:`Spec`)."""
    meta = {"help": help, "label": label, "lo": lo, "hi": hi, "ui": ui, "step": step, "unit": unit, "flag": flag,
            "aliases": aliases, "metavar": metavar, "choices": tuple(choices)}
    return field(default=default, metadata={"option": meta})


_TYPES = {"float": float, "int": int, "bool": bool, "str": str, float: float, int: int, bool: bool, str: str}


def specs(cls: type) -> list[Spec]:
    """The :class:`Spec` of every :func:`option` field of a settings dataclass, in declaration order."""
    out = []
    for f in fields(cls):
        meta = f.metadata.get("option")
        if meta is None:
            continue
        ui = meta["ui"] or (meta["lo"], meta["hi"])
        out.append(Spec(
            name=f.name, type=_TYPES[f.type], default=f.default, lo=meta["lo"], hi=meta["hi"], ui_lo=ui[0], ui_hi=ui[1],
            step=meta["step"], unit=meta["unit"], label=meta["label"] or f.name.replace("_", " ").capitalize(),
            help=meta["help"], flag=meta["flag"], aliases=tuple(meta["aliases"]), metavar=meta["metavar"],
            choices=meta["choices"],
        ))
    return out


class _Options:
    """Validation and dict conversion shared by the settings dataclasses."""

    def __post_init__(self) -> None:
        for s in specs(type(self)):
            value = getattr(self, s.name)
            if s.type is bool:
                if not isinstance(value, (bool, int)):
                    raise ParameterError(f"{s.name}={value!r} must be true or false")
                continue
            if s.type is str:
                if not isinstance(value, str) or not value.strip():
                    raise ParameterError(f"{s.name}={value!r} must be a name")
                if s.choices and value not in s.choices:
                    raise ParameterError(f"{s.name}={value!r} must be one of {', '.join(s.choices)}")
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ParameterError(f"{s.name}={value!r} must be a number")
            if s.type is int and value != int(value):
                raise ParameterError(f"{s.name}={value!r} must be a whole number")
            lo = -math.inf if s.lo is None else s.lo
            hi = math.inf if s.hi is None else s.hi
            if not lo <= value <= hi:  # also catches NaN, for which every comparison is False
                unit = f" {s.unit}" if s.unit else ""
                raise ParameterError(f"{s.name}={value} must lie between {lo:g} and {hi:g}{unit}")

    def to_dict(self) -> dict:
        """Every field by name (JSON types)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}  # type: ignore[arg-type]

    @classmethod
    def from_dict(cls, d: Any) -> Any:
        """Settings from :meth:`to_dict` of any version: unknown keys are ignored, missing ones take the default."""
        d = dict(d)
        for old, new in getattr(cls, "_RENAMED", {}).items():
            if old in d and new not in d:
                d[new] = d.pop(old)
        names = {f.name for f in fields(cls) if f.init}  # type: ignore[arg-type]
        return cls(**{k: v for k, v in d.items() if k in names})

    def default(self, name: str) -> Any:
        """The default of field ``name``."""
        f = next(f for f in fields(self) if f.name == name)  # type: ignore[arg-type]
        return f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]


@dataclass(frozen=True)
class MixSettings(_Options):
    """Everything that shapes the mix, with sensible defaults (see each field's help)."""

    _RENAMED = {"optimize": "optimise"}  # scene.json of version 0.2.0 spelled it the American way

    duration_s: float = option(30.0, lo=1.0, hi=600.0, ui=(5.0, 120.0), step=5.0, unit="s", label="Scene length (s)",
                               flag="--duration", metavar="SECONDS", help="length of the soundscape in seconds")
    sample_rate: int = option(DEFAULT_SAMPLE_RATE, lo=8000, hi=192000, unit="Hz", flag="--sample-rate", metavar="HZ",
                              help="mix sample rate")
    attenuation_db: float = option(DEFAULT_ATTENUATION_DB, lo=0.0, hi=60.0, ui=(0.0, 30.0), step=0.5, unit="dB",
                                   label="Attenuation (dB)", flag="--attenuation-db", metavar="DB",
                                   help="how far below the most important object the least important sits")
    loudness_lufs: float = option(DEFAULT_LOUDNESS_LUFS, lo=-70.0, hi=0.0, ui=(-30.0, -10.0), step=0.5, unit="LUFS",
                                  label="Target loudness (LUFS)", flag="--loudness", metavar="LUFS",
                                  help="target integrated loudness of the mix, BS.1770")
    peak_dbfs: float = option(DEFAULT_PEAK_DBFS, lo=-60.0, hi=0.0, ui=(-12.0, 0.0), step=0.5, unit="dBFS",
                              label="Peak ceiling (dBFS)", flag="--peak-dbfs", metavar="DB",
                              help="sample-peak ceiling of the mix")
    eq_strength: float = option(1.0, lo=0.0, hi=1.0, step=0.05, label="EQ strength", flag="--eq-strength",
                                metavar="0..1", help="how much of the masking-driven EQ is heard: with time-aware unmasking a blend of "
                                     "the full duck and the dry track (0 turns it off, 1 is the full duck); with "
                                     "static EQ the depth of its filters")
    max_cut_db: float = option(6.0, lo=0.0, hi=24.0, ui=(0.0, 12.0), step=0.5, unit="dB", label="Max cut (dB)",
                               flag="--max-cut-db", metavar="DB", help="deepest cut an EQ filter may make")
    optimise: bool = option(False, label="Optimise", flag="--optimise", aliases=("--optimize",),
                            help="refine gains and EQ depth with differential evolution (seeded; about 1 s; "
                                 "static EQ only)")
    seed: int = option(0, lo=0, hi=2**32 - 1, ui=(0, 10**6), step=1, label="Seed", flag="--seed",
                       help="seed for every random choice; same inputs and seed, same output")
    distance: bool = option(True, label="Distance", flag="--distance",
                            help="distance shapes the sound: 1/r level, air absorption beyond 50 m, and a "
                                 "direct-to-reverberant ratio falling with distance")
    reverb_amount: float = option(0.25, lo=0.0, hi=1.0, step=0.05, label="Reverb", flag="--reverb", metavar="0..1",
                                  help="send of the nearest object to the shared reverb bus (0 = no reverb; the "
                                       "direct-to-reverberant ratio there is -20 log10(amount) dB)")
    fov_deg: float = option(60.0, lo=10.0, hi=170.0, ui=(20.0, 120.0), step=5.0, unit="degrees",
                            label="Field of view (degrees)", flag="--fov", metavar="DEGREES",
                            help="assumed horizontal field of view of the camera, for distances and directions")
    binaural: bool = option(False, label="Binaural", flag="--binaural",
                            help="also render the headphone mix (mix_binaural.wav) with a measured HRTF")
    room: str = option("auto", choices=("auto", "room", "outdoor"), label="Reverb character", flag="--room",
                       help="character of the shared reverb; auto follows the ambience (outdoors when none)")
    compose: bool = option(True, label="Compose",
                           help="arrange sounds in time by role (events, beds, areas); off keeps each file's own timing")
    activity: float = option(1.0, lo=0.0, hi=4.0, step=0.1, label="Activity", flag="--activity", metavar="0..4",
                             help="how often events happen: scales each event object's events per minute")
    ambience: str = option("auto", label="Ambience",
                           help="one bed for the whole picture: auto (from the labels), none, or a name "
                                "(street, park, room ...)")
    ambience_db: float = option(DEFAULT_AMBIENCE_DB, lo=-40.0, hi=0.0, step=1.0, unit="dB", label="Ambience level (dB)",
                                help="level of the ambience under the foreground, dB")
    time_aware: bool = option(True, label="Time-aware unmasking", flag="--time-aware",
                              help="unmask with the time-aware duck (per-band gain on the less important tracks "
                                   "while a more important one sounds) instead of static EQ cuts")


@dataclass(frozen=True)
class DetectSettings(_Options):
    """How objects are detected."""

    conf: float = option(0.25, lo=0.01, hi=0.99, ui=(0.05, 0.95), step=0.05, label="Detection confidence",
                         flag="--conf", help="detection confidence threshold; lower finds more objects, and more mistakes")
    include_silent: bool = option(False, label="Include objects that make no sound (tie, book ...)",
                                  flag="--include-silent",
                                  help="also give sounds to labels that make none on their own (tie, book ...)")


@dataclass(frozen=True)
class SoundSettings(_Options):
    """How sounds are searched for."""

    n_candidates: int = option(DEFAULT_CANDIDATES, lo=1, hi=100, ui=(1, 30), step=1, label="Candidates per search term",
                               flag="--candidates", metavar="N", help="candidates preloaded per search term")

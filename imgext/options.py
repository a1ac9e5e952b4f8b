"""Settings dataclasses: the one owner of every default, range, step and help text."""

from __future__ import annotations

from dataclasses import dataclass, field

from imgext.audio.io import DEFAULT_SAMPLE_RATE
from imgext.errors import ParameterError

DEFAULT_ATTENUATION_DB = 12.0
"""How far (dB) the least important object sits below the most important one at importance 0."""

DEFAULT_LOUDNESS_LUFS = -16.0
"""Target integrated loudness (BS.1770), the usual level for streamed stereo content."""

DEFAULT_PEAK_DBFS = -1.0
"""True-peak ceiling in dBTP of the master's limiter (1 dB of headroom for lossy encoders)."""

DEFAULT_AMBIENCE_DB = -12.0
"""Level of the ambience bed under the foreground, dB (Scaper's ``ref_db`` gap; SonoWorld uses -10)."""


@dataclass(frozen=True)
class MixSettings:
    """Everything that shapes the mix, with sensible defaults.

    Attributes
    ----------
    duration_s : float
        Scene length in seconds (1 .. 600).
    sample_rate : int
        Mix rate in Hz.
    attenuation_db : float >= 0
        How far an object of importance 0 sits below the most important one.
    loudness_lufs : float
        Target integrated loudness of the mix (BS.1770).
    peak_dbfs : float
        Sample-peak ceiling of the mix.
    eq_strength : float in [0, 1]
        Depth of the masking-driven EQ (0 = off).
    max_cut_db : float >= 0
        Deepest cut any EQ filter may make.
    optimize : bool
        Run the differential-evolution refinement of gains and EQ depth (static EQ only).
    time_aware : bool
        Unmask with the time-aware duck (:mod:`imgext.engine.duck`: per-band gain on the less
        important tracks while a more important one sounds) instead of static EQ cuts.
    seed : int
        Seeds every random choice; same inputs + same seed = same output.
    distance : bool
        Distance shapes the sound: 1/r level, air absorption beyond 50 m, and a
        direct-to-reverberant ratio falling with distance (:mod:`imgext.mix.space`).
    reverb_amount : float in [0, 1]
        Send of the nearest object to the shared reverb bus (0 = no reverb; the
        direct-to-reverberant ratio there is ``-20 log10(amount)`` dB).
    fov_deg : float
        Assumed horizontal field of view of the camera (10 .. 170 degrees), for
        distances and directions from the picture.
    binaural : bool
        Also render the headphone mix (``mix_binaural.wav``) with a measured HRTF.
    room : {"auto", "room", "outdoor"}
        Character of the shared reverb; ``auto`` follows the ambience (outdoors when none).
    compose : bool
        Arrange sounds in time by role (events scheduled, beds looped from random
        offsets, areas wide); False keeps every file's own timing (``imgext mix``).
    activity : float in [0, 4]
        Scales every event object's events per minute (1 = the label table's rate).
    ambience : str
        ``"auto"`` (chosen from the labels), ``"none"``, or an ambience name
        (:func:`imgext.composition.ambience.ambience_names`).
    ambience_db : float
        Level of the ambience bed relative to the most important object, dB.
    """

    duration_s: float = 30.0
    sample_rate: int = DEFAULT_SAMPLE_RATE
    attenuation_db: float = DEFAULT_ATTENUATION_DB
    loudness_lufs: float = DEFAULT_LOUDNESS_LUFS
    peak_dbfs: float = DEFAULT_PEAK_DBFS
    eq_strength: float = 1.0
    max_cut_db: float = 6.0
    optimize: bool = False
    seed: int = 0
    distance: bool = True
    reverb_amount: float = 0.25
    fov_deg: float = 60.0
    binaural: bool = False
    room: str = "auto"
    time_aware: bool = True
    compose: bool = field(default=True, metadata={
        "help": "arrange sounds in time by role (events, beds, areas); off keeps each file's own timing"})
    activity: float = field(default=1.0, metadata={
        "help": "how often events happen: scales each event object's events per minute",
        "min": 0.0, "max": 4.0, "step": 0.1})
    ambience: str = field(default="auto", metadata={
        "help": "one bed for the whole picture: auto (from the labels), none, or a name (street, park, room ...)"})
    ambience_db: float = field(default=DEFAULT_AMBIENCE_DB, metadata={
        "help": "level of the ambience under the foreground, dB", "min": -40.0, "max": 0.0, "step": 1.0})

    def __post_init__(self) -> None:
        checks = [
            (1.0 <= self.duration_s <= 600.0, f"duration_s={self.duration_s} must lie between 1 and 600 seconds"),
            (8000 <= self.sample_rate <= 192000, f"sample_rate={self.sample_rate} must lie between 8000 and 192000 Hz"),
            (0.0 <= self.attenuation_db <= 60.0, f"attenuation_db={self.attenuation_db} must lie between 0 and 60 dB"),
            (-70.0 <= self.loudness_lufs <= 0.0, f"loudness_lufs={self.loudness_lufs} must lie between -70 and 0 LUFS"),
            (-60.0 <= self.peak_dbfs <= 0.0, f"peak_dbfs={self.peak_dbfs} must lie between -60 and 0 dBFS"),
            (0.0 <= self.eq_strength <= 1.0, f"eq_strength={self.eq_strength} must lie between 0 and 1"),
            (0.0 <= self.max_cut_db <= 24.0, f"max_cut_db={self.max_cut_db} must lie between 0 and 24 dB"),
            (0.0 <= self.reverb_amount <= 1.0, f"reverb_amount={self.reverb_amount} must lie between 0 and 1"),
            (10.0 <= self.fov_deg <= 170.0, f"fov_deg={self.fov_deg} must lie between 10 and 170 degrees"),
            (self.room in ("auto", "room", "outdoor"), f"room={self.room!r} must be auto, room or outdoor"),
            (0.0 <= self.activity <= 4.0, f"activity={self.activity} must lie between 0 and 4"),
            (-40.0 <= self.ambience_db <= 0.0, f"ambience_db={self.ambience_db} must lie between -40 and 0 dB"),
            (isinstance(self.ambience, str) and bool(self.ambience.strip()), f"ambience={self.ambience!r} must be a name"),
        ]
        for ok, message in checks:
            if not ok:  # also catches NaN, for which every comparison is False
                raise ParameterError(message)

    def to_dict(self) -> dict:
        """Every field by name (JSON types)."""
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    @classmethod
    def from_dict(cls, d) -> MixSettings:
        """Settings from :meth:`to_dict` of any version: unknown keys are ignored, missing ones take the default."""
        return cls(**{k: v for k, v in dict(d).items() if k in cls.__dataclass_fields__})


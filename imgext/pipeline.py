"""The whole chain, stage by stage: image -> objects -> sounds -> tracks -> analysis -> mix -> files.

Each stage is a function of the previous stage's plain data, so the app can
cache them separately (detection and downloads never rerun because a mix
slider moved):

* :func:`detect_objects`  image bytes/path -> (:class:`ImageInfo`, objects)
* :func:`choose_sounds`   (re-exported from :mod:`imgext.selection`)
* :func:`fetch_tracks`    objects + assignments -> :class:`Tracks` (decoded, fitted)
* :class:`Mixer`          tracks -> :class:`MixOutcome` for given :class:`MixSettings`,
  caching the masking analysis so a new setting re-renders fast
* :func:`build_outputs`   everything -> the files of the export
* :func:`render_image`    all of it, as the command line uses it
"""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from . import __version__
from .audio import DEFAULT_SAMPLE_RATE, encode_wav, prepare_source
from .detection import Detector, ImageInfo, load_image
from .errors import AudioError, AuthError, ImgExtError, ParameterError, RateLimitedError, SourceUnavailableError
from .export import OutputFile, attribution_text, safe_filename, scene_json_bytes, unique_names, write_outputs
from .mixing import DEFAULT_LOUDNESS_LUFS, DEFAULT_PEAK_DBFS, Mix, level_track, render_mix
from .scene import DEFAULT_ATTENUATION_DB, LabelMap, SceneObject, object_gain_db, place_objects
from .selection import DEFAULT_CANDIDATES, Assignment, choose_sounds, reroll
from .sources import Candidate, SoundSource

__all__ = [
    "MixSettings",
    "Tracks",
    "MixOutcome",
    "Mixer",
    "RenderResult",
    "detect_objects",
    "choose_sounds",
    "fit_source",
    "fetch_sound",
    "assemble_tracks",
    "fetch_tracks",
    "retune_tracks",
    "build_outputs",
    "render_image",
    "render_files",
    "load_plan",
    "remix",
]

_MIN_CUT_DB = 0.5  # design_eq's min_cut_db: shallower cuts are not worth a filter

Progress = Callable[[str, float, str], None]
"""``progress(stage, fraction 0..1, message)``."""


def _no_progress(stage: str, fraction: float, message: str) -> None:
    pass


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
        Run the differential-evolution refinement of gains and EQ depth.
    seed : int
        Seeds every random choice; same inputs + same seed = same output.
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

    def __post_init__(self) -> None:
        checks = [
            (1.0 <= self.duration_s <= 600.0, f"duration_s={self.duration_s} must lie between 1 and 600 seconds"),
            (8000 <= self.sample_rate <= 192000, f"sample_rate={self.sample_rate} must lie between 8000 and 192000 Hz"),
            (0.0 <= self.attenuation_db <= 60.0, f"attenuation_db={self.attenuation_db} must lie between 0 and 60 dB"),
            (-70.0 <= self.loudness_lufs <= 0.0, f"loudness_lufs={self.loudness_lufs} must lie between -70 and 0 LUFS"),
            (-60.0 <= self.peak_dbfs <= 0.0, f"peak_dbfs={self.peak_dbfs} must lie between -60 and 0 dBFS"),
            (0.0 <= self.eq_strength <= 1.0, f"eq_strength={self.eq_strength} must lie between 0 and 1"),
            (0.0 <= self.max_cut_db <= 24.0, f"max_cut_db={self.max_cut_db} must lie between 0 and 24 dB"),
        ]
        for ok, message in checks:
            if not ok:  # also catches NaN, for which every comparison is False
                raise ParameterError(message)

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True)
class Tracks:
    """Mono sources fitted to the scene, one per sounding object.

    Attributes
    ----------
    audio : np.ndarray [shape=(n_tracks, n_samples), dtype=float32]
    names : list of str
        Display names, unique ("person", "person 2").
    object_indices : list of int
        Index of each track's object in the scene's object list (``-1`` for ``imgext mix``).
    pans : np.ndarray [shape=(n_tracks,)]
    importance : np.ndarray [shape=(n_tracks,)]
    volume_db : np.ndarray [shape=(n_tracks,)]
        The user's level offsets.
    sample_rate : int
    notes : list of str
    """

    audio: np.ndarray
    names: list[str]
    object_indices: list[int]
    pans: np.ndarray
    importance: np.ndarray
    volume_db: np.ndarray
    sample_rate: int
    notes: list[str] = field(default_factory=list)

    @property
    def n_tracks(self) -> int:
        return int(self.audio.shape[0])

    def gains_db(self, attenuation_db: float) -> np.ndarray:
        """Per-track gain from importance, attenuation and the user's offsets."""
        return np.array(
            [object_gain_db(float(i), attenuation_db=attenuation_db, volume_db=float(v)) for i, v in zip(self.importance, self.volume_db)],
            dtype=np.float64,
        )


def display_names(labels: Sequence[str]) -> list[str]:
    """``["dog", "person", "person"]`` -> ``["dog", "person", "person 2"]``."""
    seen: dict[str, int] = {}
    out = []
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
        out.append(label if seen[label] == 1 else f"{label} {seen[label]}")
    return out


def detect_objects(
    image: bytes | str,
    detector: Detector,
    *,
    name: str | None = None,
    conf: float = 0.25,
    labels: LabelMap | None = None,
    include_silent: bool = False,
) -> tuple[ImageInfo, list[SceneObject], float]:
    """Load, validate and detect; returns ``(info, objects, detect_seconds)``."""
    picture, info = load_image(image, name=name)
    t0 = time.perf_counter()
    detections = detector.detect(picture, conf=conf)
    seconds = time.perf_counter() - t0
    return info, place_objects(detections, labels=labels, include_silent=include_silent), seconds


@dataclass(frozen=True)
class Fetched:
    """A fetched and decoded sound for one object."""

    object_index: int
    candidate: Candidate
    data: bytes
    track: np.ndarray
    notes: tuple[str, ...]
    source_lufs: float | None = None


def fit_source(data: bytes, *, name: str, settings: MixSettings) -> tuple[np.ndarray, tuple[str, ...], float | None]:
    """Decode, fit to the scene and level one source (see :func:`imgext.mixing.level_track`).

    Returns ``(track, notes, source_lufs)``: the mono track at the reference
    loudness, what the user should know, and the source's own loudness.
    """
    track, notes = prepare_source(data, name=name, sample_rate=settings.sample_rate, duration_s=settings.duration_s)
    track, source_lufs = level_track(track, settings.sample_rate)
    return track, notes, source_lufs


def fetch_sound(assignment: Assignment, source: SoundSource, *, settings: MixSettings) -> Fetched:
    """Fetch, decode and fit the sound of one assignment.

    A decode failure of a cached copy evicts it (when the source supports
    ``invalidate``) and fetches it afresh once.
    """
    cand = assignment.candidate
    if cand is None:
        raise ParameterError(f"object {assignment.object_index} has no sound to fetch")
    data = source.fetch(cand, duration_s=settings.duration_s, sample_rate=settings.sample_rate)
    try:
        track, notes, lufs = fit_source(data, name=cand.name, settings=settings)
    except AudioError:
        invalidate = getattr(source, "invalidate", None)
        if invalidate is None:
            raise
        invalidate(cand)
        data = source.fetch(cand, duration_s=settings.duration_s, sample_rate=settings.sample_rate)
        track, notes, lufs = fit_source(data, name=cand.name, settings=settings)
    return Fetched(assignment.object_index, cand, data, track, notes, lufs)


def assemble_tracks(
    objects: Sequence[SceneObject], fetched: dict[int, Fetched], *, settings: MixSettings, notes: Sequence[str] = ()
) -> Tracks:
    """Stack the fetched sounds of the objects that have one (in object order) into :class:`Tracks`.

    Pans, importance and volume come from ``objects``, so editing them needs no new fetch.
    """
    order = [i for i in sorted(fetched) if i < len(objects) and not objects[i].skipped]
    n = int(round(settings.duration_s * settings.sample_rate))
    for i in order:
        if fetched[i].track.shape != (n,):
            raise ParameterError("fetched sounds do not match the scene's duration and sample rate; fetch them again")
    audio = np.stack([fetched[i].track for i in order]) if order else np.zeros((0, n), dtype=np.float32)
    return Tracks(
        audio=audio,
        names=display_names([objects[i].label for i in order]),
        object_indices=order,
        pans=np.array([objects[i].pan for i in order], dtype=np.float64),
        importance=np.array([objects[i].importance for i in order], dtype=np.float64),
        volume_db=np.array([objects[i].volume_db for i in order], dtype=np.float64),
        sample_rate=settings.sample_rate,
        notes=list(notes) + [note for i in order for note in fetched[i].notes],
    )


def retune_tracks(tracks: Tracks, objects: Sequence[SceneObject]) -> Tracks:
    """``tracks`` with pans, importance and volume taken afresh from ``objects`` (the same audio array).

    Keeping the audio object lets a :class:`Mixer` reuse its cached analysis.
    """
    objs = [objects[i] for i in tracks.object_indices]
    pans = np.array([o.pan for o in objs], dtype=np.float64)
    importance = np.array([o.importance for o in objs], dtype=np.float64)
    volume = np.array([o.volume_db for o in objs], dtype=np.float64)
    if np.array_equal(pans, tracks.pans) and np.array_equal(importance, tracks.importance) and np.array_equal(volume, tracks.volume_db):
        return tracks
    return replace(tracks, pans=pans, importance=importance, volume_db=volume)


def fetch_tracks(
    objects: Sequence[SceneObject],
    assignments: Sequence[Assignment],
    source: SoundSource,
    *,
    settings: MixSettings,
    progress: Progress = _no_progress,
    max_workers: int = 4,
    max_attempts: int = 3,
) -> tuple[Tracks, list[Assignment], dict[int, Fetched]]:
    """Fetch, decode and fit every assigned sound, several at once; a sound that fails is replaced.

    An unusable sound (corrupt, empty, gone) is replaced by the next unused
    candidate of its term, up to ``max_attempts`` times; when the source
    itself fails (unreachable, key refused, rate-limited) the object gets no
    sound and the reason says why.

    Returns
    -------
    tracks : Tracks
        Only objects that ended with a usable sound.
    assignments : list of Assignment
        Updated (replacements, or no sound with the reason).
    fetched : dict
        Object index -> :class:`Fetched` (the source bytes, for the export).
    """
    assignments = list(assignments)
    fetched: dict[int, Fetched] = {}
    failed: set[str] = set()
    notes: list[str] = []
    pending = [a for a in assignments if a.candidate is not None]
    total = max(1, len(pending))
    done = 0
    for attempt in range(max_attempts):
        if not pending:
            break
        retry: list[Assignment] = []
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, max_workers)) as pool:
            futures = {pool.submit(fetch_sound, a, source, settings=settings): a for a in pending}
            for fut in concurrent.futures.as_completed(futures):
                a = futures[fut]
                try:
                    fetched[a.object_index] = fut.result()
                except (SourceUnavailableError, AuthError, RateLimitedError) as exc:
                    # Another candidate from the same source would fail the same way.
                    assignments[a.object_index] = replace(a, choice=None, reason=f"no sound for {a.query!r}: {exc}", error=exc)
                    continue
                except ImgExtError as exc:
                    failed.add(a.candidate.id)
                    notes.append(f"{a.candidate.name!r} for {a.query!r} was unusable ({exc}); trying another")
                    assignments = reroll(assignments, a.object_index, exclude=failed)
                    replacement = assignments[a.object_index]
                    if replacement.candidate is not None and replacement.candidate.id not in failed and attempt + 1 < max_attempts:
                        retry.append(replacement)
                    else:
                        assignments[a.object_index] = replace(
                            replacement, choice=None, reason=f"no usable sound for {a.query!r}: {exc}"
                        )
                    continue
                done += 1
                progress("sounds", min(1.0, done / total), f"fetched {a.candidate.name}")
        pending = retry
    return assemble_tracks(objects, fetched, settings=settings, notes=notes), assignments, fetched


@dataclass(frozen=True)
class MixOutcome:
    """A rendered mix with its analysis.

    Attributes
    ----------
    mix : Mix
    processed : np.ndarray [shape=(n_tracks, n_samples)]
        Mono tracks after EQ (before pan and gain).
    gains_db : np.ndarray [shape=(n_tracks,)]
        Final per-track gains (importance gain + optimiser offset).
    requested_gains_db : np.ndarray [shape=(n_tracks,)]
        Gains from importance and attenuation alone.
    filters : list of list
        EQ filters per track (:class:`imgext.eq.EqFilter`).
    masking_before, masking_after : MaskingReport or None
    optimisation : OptimisationResult or None
    timings_s : dict
    """

    mix: Mix
    processed: np.ndarray
    gains_db: np.ndarray
    requested_gains_db: np.ndarray
    filters: list
    masking_before: object | None
    masking_after: object | None
    optimisation: object | None
    timings_s: dict


class Mixer:
    """Mixes one set of tracks under changing settings, caching the expensive analysis.

    The masking analysis (STFT and Bark bands) is computed once per track set;
    a new attenuation, EQ strength or loudness target only redesigns the EQ,
    refilters and re-sums.
    """

    def __init__(self, tracks: Tracks, *, reuse: Mixer | None = None) -> None:
        self.tracks = tracks
        self._bands = None
        self._analysis_s = 0.0
        self._processed = None
        self._design = None
        if reuse is not None and reuse._bands is not None and reuse.tracks.audio is tracks.audio:
            self._bands, self._analysis_s = reuse._bands, reuse._analysis_s  # same audio: keep the analysis

    def bands(self):
        """Cached unit-gain Bark-band energies of the dry tracks."""
        if self._bands is None and self.tracks.n_tracks > 0:
            from .masking import band_energies

            t0 = time.perf_counter()
            self._bands = band_energies(self.tracks.audio, self.tracks.sample_rate)
            self._analysis_s = time.perf_counter() - t0
        return self._bands

    def _process(self, settings: MixSettings):
        """EQ design, optional optimisation and filtering: cached for the last settings that shape them."""
        from .eq import apply_eq, band_response_db, design_eq, filters_loudness_change_lu
        from .masking import masking_report
        from .optimise import optimise_mix, scale_filters

        tracks = self.tracks
        requested = tracks.gains_db(settings.attenuation_db)
        key = (tuple(requested), tuple(tracks.importance), settings.eq_strength, settings.max_cut_db,
               settings.optimize, settings.seed)
        if self._processed is not None and self._processed[0] == key:
            return self._processed[1]
        design_key = (tuple(requested), tuple(tracks.importance), settings.max_cut_db)
        timings: dict[str, float] = {}
        gains = requested.copy()
        filters: list = [[] for _ in range(tracks.n_tracks)]
        before = opt = None
        processed = tracks.audio
        if tracks.n_tracks > 0:
            bands = self.bands()
            timings["analysis"] = self._analysis_s
            t0 = time.perf_counter()
            before = masking_report(bands, gains_db=gains, importance=tracks.importance)
            if settings.eq_strength > 0 and settings.max_cut_db > 0 and tracks.n_tracks > 1:
                # EQ strength scales the depth of the full-strength design, so moving that slider
                # reuses the design and only refilters (the design depends on gains, importance, max cut).
                if self._design is None or self._design[0] != design_key:
                    full = design_eq(bands, gains_db=gains, importance=tracks.importance, strength=1.0,
                                     max_cut_db=settings.max_cut_db)
                    self._design = (design_key, full)
                filters = scale_filters(self._design[1], np.full(tracks.n_tracks, settings.eq_strength))
                filters = [[f for f in track if f.gain_db <= -_MIN_CUT_DB] for track in filters]
            timings["eq"] = time.perf_counter() - t0
            if settings.optimize and tracks.n_tracks > 1:
                t0 = time.perf_counter()
                eq_db = np.stack([band_response_db(f, bands) for f in filters])
                opt = optimise_mix(bands, gains_db=gains, importance=tracks.importance, eq_db=eq_db, seed=settings.seed,
                                   eq_loudness_lu=filters_loudness_change_lu(filters, bands))
                gains = gains + opt.gain_offsets_db
                filters = scale_filters(filters, opt.eq_depth)
                timings["optimise"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            processed = apply_eq(tracks.audio, filters, tracks.sample_rate) if any(filters) else tracks.audio
            timings["filter"] = time.perf_counter() - t0
        result = (requested, gains, filters, processed, before, opt, timings)
        self._processed = (key, result)
        return result

    def render(self, settings: MixSettings, *, measure_after: bool = True) -> MixOutcome:
        """Render the mix for ``settings``.

        Parameters
        ----------
        measure_after : bool
            Re-analyse the processed audio for the "after" masking report (exact);
            when False it is estimated in the band domain from the cached analysis
            (faster, for interactive use).

        Notes
        -----
        The analysis is computed once per track set; EQ and filtering are reused
        while only the loudness target or peak ceiling changes.
        """
        from .eq import band_response_db
        from .masking import band_energies, masking_report

        tracks = self.tracks
        requested, gains, filters, processed, before, opt, stage_timings = self._process(settings)
        timings = dict(stage_timings)
        after = None
        t0 = time.perf_counter()
        mix = render_mix(
            processed, pans=tracks.pans, gains_db=gains, sample_rate=tracks.sample_rate,
            loudness_lufs=settings.loudness_lufs, peak_dbfs=settings.peak_dbfs,
        )
        timings["render"] = time.perf_counter() - t0
        if tracks.n_tracks > 0:
            t0 = time.perf_counter()
            if measure_after and processed is not tracks.audio:
                after = masking_report(band_energies(processed, tracks.sample_rate), gains_db=gains, importance=tracks.importance)
            else:
                eq_db = np.stack([band_response_db(f, self.bands()) for f in filters])
                after = masking_report(self.bands(), gains_db=gains, importance=tracks.importance, eq_db=eq_db)
            timings["analysis_after"] = time.perf_counter() - t0
        return MixOutcome(mix, processed, gains, requested, filters, before, after, opt, timings)


@dataclass(frozen=True)
class RenderResult:
    """What :func:`render_image` produced."""

    scene: dict
    out_dir: str
    zip_path: str
    files: list[str]


def _sound_record(cand: Candidate, file: str | None, source_lufs: float | None = None) -> dict:
    return {
        "source_loudness_lufs": source_lufs,
        "id": cand.id,
        "name": cand.name,
        "source": cand.source,
        "license": cand.license,
        "license_url": cand.license_url,
        "author": cand.author,
        "url": cand.url,
        "file": file,
        "synthetic": cand.synthetic,
        "commercial_ok": cand.commercial_ok,
        "duration_s": cand.duration_s,
        "tags": list(cand.tags),
    }


def build_outputs(
    *,
    image: ImageInfo | None,
    objects: Sequence[SceneObject],
    assignments: Sequence[Assignment],
    fetched: dict[int, Fetched],
    tracks: Tracks,
    outcome: MixOutcome,
    settings: MixSettings,
    source_description: str,
    timings_s: dict,
) -> tuple[list[OutputFile], dict]:
    """The export's files (audio, sources, scene.json, ATTRIBUTION.txt) and the scene record."""
    sr = tracks.sample_rate
    files: list[OutputFile] = [OutputFile("mix.wav", encode_wav(outcome.mix.audio, sr, subtype="PCM_24"))]
    track_of = {obj_i: k for k, obj_i in enumerate(tracks.object_indices)}
    stem_names = unique_names(
        [safe_filename(f"{k:02d}_{name}", max_length=60) for k, name in enumerate(tracks.names)]
    )
    source_names = unique_names(
        [
            safe_filename(f"{track_of[i]:02d}_{fetched[i].candidate.name}.{fetched[i].candidate.file_ext}", max_length=80)
            for i in tracks.object_indices
        ]
    )
    dry_coeffs = outcome.mix.coefficients  # same pan, gain and master gain for dry and processed
    for k, stem in enumerate(stem_names):
        dry = (dry_coeffs[:, k : k + 1] * tracks.audio[k][None, :]).astype(np.float32)
        files.append(OutputFile(f"stems/{stem}_dry.wav", encode_wav(dry, sr, subtype="PCM_16")))
        files.append(OutputFile(f"stems/{stem}_processed.wav", encode_wav(outcome.mix.stem(outcome.processed, k), sr, subtype="PCM_16")))
    for k, i in enumerate(tracks.object_indices):
        files.append(OutputFile(f"sources/{source_names[k]}", fetched[i].data))

    names = tracks.names
    scene_objects = []
    sounds_for_credit = []
    for i, (obj, a) in enumerate(zip(objects, assignments)):
        record = obj.to_dict()
        k = track_of.get(i)
        record["gain_db"] = round(float(outcome.gains_db[k]), 3) if k is not None else None
        record["requested_gain_db"] = round(float(outcome.requested_gains_db[k]), 3) if k is not None else None
        record["sound"] = None
        record["stem"] = None
        record["reason"] = a.reason
        record["eq"] = []
        if k is not None:
            sound = _sound_record(fetched[i].candidate, f"sources/{source_names[k]}", fetched[i].source_lufs)
            record["sound"] = sound
            record["stem"] = f"stems/{stem_names[k]}_processed.wav"
            record["stem_dry"] = f"stems/{stem_names[k]}_dry.wav"
            record["track"] = names[k]
            record["eq"] = [f.to_dict(names) for f in outcome.filters[k]]
            sounds_for_credit.append(sound)
        scene_objects.append(record)

    mix = outcome.mix
    scene = {
        "schema_version": 1,
        "generator": f"imgext {__version__}",
        "image": image.to_dict() if image else None,
        "source": source_description,
        "settings": settings.to_dict(),
        "objects": scene_objects,
        "mix": {
            "file": "mix.wav",
            "sample_rate": sr,
            "duration_s": round(mix.audio.shape[-1] / sr, 6),
            "loudness_lufs": mix.loudness_lufs,
            "target_lufs": mix.target_lufs,
            "peak_dbfs": mix.peak_dbfs,
            "master_gain_db": mix.master_gain_db,
            "limited_by_peak": mix.limited_by_peak,
        },
        "masking": {
            "tracks": names,
            "before": outcome.masking_before.to_dict(names) if outcome.masking_before is not None else None,
            "after": outcome.masking_after.to_dict(names) if outcome.masking_after is not None else None,
        },
        "optimisation": _opt_dict(outcome.optimisation),
        "notes": list(tracks.notes),
        "timings_s": {k: round(float(v), 4) for k, v in timings_s.items()},
    }
    attribution = attribution_text(sounds_for_credit)
    files.append(OutputFile("ATTRIBUTION.txt", attribution.encode("utf-8")))
    scene["files"] = sorted([f.path for f in files] + ["scene.json", "bundle.zip"])
    files.append(OutputFile("scene.json", scene_json_bytes(scene)))
    return files, scene


def _opt_dict(opt) -> dict | None:
    if opt is None:
        return None
    return {
        "gain_offsets_db": [round(float(v), 3) for v in opt.gain_offsets_db],
        "eq_depth": [round(float(v), 3) for v in opt.eq_depth],
        "cost_before": float(opt.cost_before),
        "cost_after": float(opt.cost_after),
        "n_evaluations": int(opt.n_evaluations),
    }


def render_image(
    image: bytes | str,
    out_dir: str,
    *,
    detector: Detector,
    source: SoundSource,
    settings: MixSettings = MixSettings(),
    conf: float = 0.25,
    n_candidates: int = DEFAULT_CANDIDATES,
    labels: LabelMap | None = None,
    include_silent: bool = False,
    image_name: str | None = None,
    progress: Progress = _no_progress,
) -> RenderResult:
    """Photo in, soundscape folder out (what ``python -m imgext render`` does)."""
    t_start = time.perf_counter()
    progress("detect", 0.0, "detecting objects")
    info, objects, t_detect = detect_objects(
        image, detector, name=image_name, conf=conf, labels=labels, include_silent=include_silent
    )
    progress("detect", 1.0, f"{len(objects)} objects")
    t0 = time.perf_counter()
    assignments = choose_sounds(
        objects, source, n_candidates=n_candidates, duration_s=settings.duration_s, rng=settings.seed,
        progress=lambda d, n, term: progress("search", d / max(1, n), f"searched {term!r}"),
    )
    tracks, assignments, fetched = fetch_tracks(objects, assignments, source, settings=settings, progress=progress)
    errors = [a.error for a in assignments if a.error is not None]
    if errors and tracks.n_tracks == 0:
        raise errors[0]  # the source failed outright (key refused, unreachable ...): not a silent, empty render
    t_sounds = time.perf_counter() - t0
    t0 = time.perf_counter()
    progress("mix", 0.0, "analysing and mixing")
    outcome = Mixer(tracks).render(settings)
    t_mix = time.perf_counter() - t0
    timings = {"detect": t_detect, "sounds": t_sounds, "mix": t_mix, **outcome.timings_s}
    timings["total"] = time.perf_counter() - t_start
    files, scene = build_outputs(
        image=info, objects=objects, assignments=assignments, fetched=fetched, tracks=tracks,
        outcome=outcome, settings=settings, source_description=source.describe(), timings_s=timings,
    )
    progress("export", 0.0, "writing files")
    zip_path = write_outputs(out_dir, files)
    progress("export", 1.0, "done")
    return RenderResult(scene=scene, out_dir=str(out_dir), zip_path=str(zip_path), files=scene["files"])


def render_files(
    paths: Sequence[str],
    out_dir: str,
    *,
    pans: Sequence[float] | None = None,
    gains_db: Sequence[float] | None = None,
    importance: Sequence[float] | None = None,
    settings: MixSettings = MixSettings(),
    progress: Progress = _no_progress,
) -> RenderResult:
    """Mix given audio files without an image (``python -m imgext mix``).

    Parameters
    ----------
    pans : sequence of float in [-1, 1], optional
        One per file; default centre.
    gains_db : sequence of float, optional
        One per file; default 0 dB.  Importance follows gain (louder = more
        important) unless ``importance`` is given.
    importance : sequence of float in [0, 1], optional
    """
    import os
    from pathlib import Path

    t_start = time.perf_counter()
    n = len(paths)
    if n == 0:
        raise ParameterError("give at least one audio file to mix")
    pans = list(pans) if pans is not None else [0.0] * n
    gains = list(gains_db) if gains_db is not None else [0.0] * n
    for what, values in (("--pan", pans), ("--gain-db", gains)):
        if len(values) != n:
            raise ParameterError(f"{what} was given {len(values)} times for {n} files; give it once per file or not at all")
    if importance is None:
        top = max(gains)
        importance = [float(np.clip(1.0 + (g - top) / 24.0, 0.0, 1.0)) for g in gains]  # 24 dB quieter = importance 0
    elif len(importance) != n:
        raise ParameterError(f"--importance was given {len(importance)} times for {n} files")
    objects, fetched, audio = [], {}, []
    for i, p in enumerate(paths):
        name = Path(p).name
        data = Path(p).read_bytes() if os.path.isfile(p) else None
        if data is None:
            raise AudioError(f"sound file not found: {p}")
        track, notes, lufs = fit_source(data, name=name, settings=settings)
        label = Path(p).stem
        objects.append(
            SceneObject(label=label, confidence=1.0, box=(0.0, 0.0, 0.0, 0.0), pan=float(pans[i]),
                        importance=float(importance[i]), query=label, volume_db=float(gains[i]), origin="file")
        )
        cand = Candidate(id=f"file:{name}", name=name, source="file", file_ext=Path(p).suffix.lstrip(".") or "wav")
        fetched[i] = Fetched(i, cand, data, track, notes, lufs)
        audio.append(track)
        progress("sounds", (i + 1) / n, f"decoded {name}")
    tracks = Tracks(
        audio=np.stack(audio),
        names=display_names([o.label for o in objects]),
        object_indices=list(range(n)),
        pans=np.array(pans, dtype=np.float64),
        importance=np.array(importance, dtype=np.float64),
        volume_db=np.array(gains, dtype=np.float64),
        sample_rate=settings.sample_rate,
        notes=[note for f in fetched.values() for note in f.notes],
    )
    # Given gains are absolute (each file's volume), not derived from importance: no attenuation.
    settings = replace(settings, attenuation_db=0.0)
    t0 = time.perf_counter()
    outcome = Mixer(tracks).render(settings)
    timings = {"mix": time.perf_counter() - t0, **outcome.timings_s, "total": time.perf_counter() - t_start}
    assignments = [Assignment(i, o.query, None, "given on the command line") for i, o in enumerate(objects)]
    files, scene = build_outputs(
        image=None, objects=objects, assignments=assignments, fetched=fetched, tracks=tracks, outcome=outcome,
        settings=settings, source_description="files given on the command line", timings_s=timings,
    )
    zip_path = write_outputs(out_dir, files)
    return RenderResult(scene=scene, out_dir=str(out_dir), zip_path=str(zip_path), files=scene["files"])


def load_plan(folder: str) -> tuple[dict, list[SceneObject], list[Assignment], dict[int, Fetched], MixSettings]:
    """Read a rendered folder's ``scene.json`` and source files back: the plan to render again.

    Returns
    -------
    scene, objects, assignments, fetched, settings
        ``fetched`` holds the source files decoded at the plan's duration and rate.

    Raises
    ------
    ParameterError
        No or unreadable ``scene.json``, an unknown schema version, or a missing source file.
    """
    import json
    from pathlib import Path

    from .selection import Ranked

    root = Path(folder)
    try:
        scene = json.loads((root / "scene.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ParameterError(f"{folder!r} holds no scene.json (not an Image Extender output, or an interrupted one)") from None
    except (OSError, ValueError) as exc:
        raise ParameterError(f"cannot read {root / 'scene.json'}: {exc}") from None
    if not isinstance(scene, dict) or scene.get("schema_version") != 1:
        raise ParameterError(f"{root / 'scene.json'} has schema version {scene.get('schema_version')!r}; this tool reads 1")
    try:
        settings = MixSettings(**{k: v for k, v in scene["settings"].items() if k in MixSettings.__dataclass_fields__})
        objects = [SceneObject.from_dict(o) for o in scene["objects"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise ParameterError(f"{root / 'scene.json'} is not a valid plan: {exc}") from None
    assignments: list[Assignment] = []
    fetched: dict[int, Fetched] = {}
    for i, (obj, record) in enumerate(zip(objects, scene["objects"])):
        sound = record.get("sound")
        if not sound:
            assignments.append(Assignment(i, obj.query, None, record.get("reason") or "no sound in the plan"))
            continue
        path = (root / str(sound.get("file", ""))).resolve()
        if root.resolve() not in path.parents or not path.is_file():
            raise ParameterError(f"the plan's source file {sound.get('file')!r} is missing from {folder!r}")
        cand = Candidate(
            id=str(sound["id"]), name=str(sound.get("name", "")), source=str(sound.get("source", "")),
            author=str(sound.get("author") or "unknown"), license=str(sound.get("license") or "unknown"),
            license_url=sound.get("license_url"), url=sound.get("url"), tags=tuple(sound.get("tags") or ()),
            duration_s=sound.get("duration_s"), synthetic=bool(sound.get("synthetic")),
            commercial_ok=bool(sound.get("commercial_ok", True)), file_ext=path.suffix.lstrip(".") or "wav",
        )
        data = path.read_bytes()
        track, notes, lufs = fit_source(data, name=cand.name, settings=settings)
        fetched[i] = Fetched(i, cand, data, track, notes, lufs)
        ranked = Ranked(cand, 0.0, 1.0, str(record.get("reason") or "from the plan"))
        assignments.append(Assignment(i, obj.query, ranked, ranked.reason, (ranked,)))
    return scene, objects, assignments, fetched, settings


def remix(folder: str, out_dir: str, *, progress: Progress = _no_progress, **changes) -> RenderResult:
    """Render a saved plan again, offline, with some mix settings changed (``python -m imgext remix``).

    Parameters
    ----------
    folder : str
        A folder written by :func:`render_image` or :func:`render_files`.
    out_dir : str
        Where to write the new render (may be ``folder`` itself).
    **changes
        :class:`MixSettings` fields to change (``eq_strength=0.5`` ...); the rest come from the plan.
        With no changes the audio is bit-identical to the original render.
    """
    t_start = time.perf_counter()
    scene, objects, assignments, fetched, settings = load_plan(folder)
    unknown = set(changes) - set(MixSettings.__dataclass_fields__)
    if unknown:
        raise ParameterError(f"unknown mix settings: {', '.join(sorted(unknown))}")
    if {"duration_s", "sample_rate"} & {k for k, v in changes.items() if v != getattr(settings, k)}:
        settings = replace(settings, **changes)
        fetched = {i: replace(f, track=fit_source(f.data, name=f.candidate.name, settings=settings)[0]) for i, f in fetched.items()}
    else:
        settings = replace(settings, **changes)
    progress("mix", 0.0, "mixing the plan")
    tracks = assemble_tracks(objects, fetched, settings=settings)
    t0 = time.perf_counter()
    outcome = Mixer(tracks).render(settings)
    t_mix = time.perf_counter() - t0
    image = scene.get("image")
    info = ImageInfo(path=image.get("path"), width=int(image.get("width", 0)), height=int(image.get("height", 0)),
                     format="") if image else None
    timings = {"sounds": t0 - t_start, "mix": t_mix, **outcome.timings_s, "total": time.perf_counter() - t_start}
    files, new_scene = build_outputs(
        image=info, objects=objects, assignments=assignments, fetched=fetched, tracks=tracks, outcome=outcome,
        settings=settings, source_description=f"{scene.get('source', '')} (remixed from the plan)", timings_s=timings,
    )
    zip_path = write_outputs(out_dir, files)
    return RenderResult(scene=new_scene, out_dir=str(out_dir), zip_path=str(zip_path), files=new_scene["files"])

"""The whole chain: image -> objects -> sounds -> tracks -> analysis -> mix -> files.

Each stage is a function of the previous stage's plain data, in its own module,
so the app can cache them separately (detection and downloads never rerun
because a mix slider moved):

* :func:`detect_objects`          image bytes/path -> (:class:`ImageInfo`, objects)  (here)
* :func:`~imgext.sounds.selection.choose_sounds`   objects -> one distinct sound each
* :func:`~imgext.composition.tracks.fetch_tracks`       assignments -> :class:`~imgext.composition.tracks.Tracks`
* :class:`~imgext.mix.mixer.Mixer`             tracks -> :class:`~imgext.mix.mixer.MixOutcome` for :class:`~imgext.mix.mixer.MixSettings`
* :func:`~imgext.output.export.build_outputs`      everything -> the files of the export
* :func:`render_image`, :func:`render_files`  all of it, as the command line uses it (here)
* :func:`~imgext.output.plan.remix`                a saved plan rendered again

The names of the other stages are re-exported here for convenience.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from imgext.audio.io import read_bounded
from imgext.budget import Budget
from imgext.composition.ambience import add_ambience, ambience_record
from imgext.composition.arrange import Arrangement, compose_tracks
from imgext.composition.roles import resolve_objects
from imgext.composition.tracks import (
    Fetched,
    Progress,
    Tracks,
    _no_progress,
    assemble_tracks,
    display_names,
    fetch_sound,
    fetch_tracks,
    fit_source,
    retune_tracks,
)
from imgext.errors import AudioError, NoSoundError, ParameterError
from imgext.mix.mixer import Mixer, MixOutcome
from imgext.options import MixSettings
from imgext.output.export import RenderResult, build_outputs, write_outputs
from imgext.output.plan import Plan, read_plan
from imgext.sounds.base import Candidate, SoundSource
from imgext.sounds.selection import DEFAULT_CANDIDATES, Assignment, choose_sounds
from imgext.vision.detection import Detector, ImageInfo, load_image
from imgext.vision.distance import DEFAULT_FOV_DEG
from imgext.vision.placement import LabelMap, SceneObject, place_objects, with_role

__all__ = [
    "MixSettings",
    "Tracks",
    "Fetched",
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


def detect_objects(
    image: bytes | str,
    detector: Detector,
    *,
    name: str | None = None,
    conf: float = 0.25,
    labels: LabelMap | None = None,
    include_silent: bool = False,
    fov_deg: float = DEFAULT_FOV_DEG,
) -> tuple[ImageInfo, list[SceneObject], float]:
    """Load, validate and detect; returns ``(info, objects, detect_seconds)``."""
    picture, info = load_image(image, name=name)
    t0 = time.perf_counter()
    detections = detector.detect(picture, conf=conf)
    seconds = time.perf_counter() - t0
    return info, place_objects(detections, labels=labels, include_silent=include_silent,
                                      aspect=info.width / max(info.height, 1), fov_deg=fov_deg), seconds


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
    stems: bool = True,
    write_zip: bool = True,
    budget: Budget | None = None,
) -> RenderResult:
    """Photo in, soundscape folder out (what ``python -m imgext render`` does).

    ``stems=False`` leaves out the stems, ``write_zip=False`` the ZIP (``--no-stems``, ``--no-zip``).

    ``budget`` bounds the whole render: searches and downloads stop
    :func:`mix_reserve_s` before its end, and the render finishes with what it
    has (a fallback's sound where the source offers one, else no sound for the
    object, with the reason).  Interrupting the render (Ctrl-C) cancels it, so
    no download outlives the render.
    """
    network = budget.until(mix_reserve_s(budget)) if budget is not None else None
    try:
        return _render_image(image, out_dir, detector=detector, source=source, settings=settings, conf=conf,
                             n_candidates=n_candidates, labels=labels, include_silent=include_silent,
                             image_name=image_name, progress=progress, stems=stems, write_zip=write_zip,
                             budget=network)
    except BaseException:
        if budget is not None:
            budget.cancel("the render was interrupted")
        raise


def mix_reserve_s(budget: Budget) -> float:
    """Seconds of ``budget`` kept for analysing, mixing and writing: a fifth of it, at most 10 s."""
    return 0.0 if budget.seconds is None else min(10.0, 0.2 * budget.seconds)


def _render_image(image, out_dir, *, detector, source, settings, conf, n_candidates, labels, include_silent,
                  image_name, progress, stems: bool, write_zip: bool, budget: Budget | None) -> RenderResult:
    t_start = time.perf_counter()
    progress("detect", 0.0, "detecting objects")
    info, objects, t_detect = detect_objects(
        image, detector, name=image_name, conf=conf, labels=labels, include_silent=include_silent,
        fov_deg=settings.fov_deg,
    )
    progress("detect", 1.0, f"{len(objects)} objects")
    if settings.compose:
        objects = resolve_objects(objects, labels=labels)
        objects = add_ambience(objects, choice=settings.ambience, level_db=settings.ambience_db,
                               attenuation_db=settings.attenuation_db)
    t0 = time.perf_counter()
    assignments = choose_sounds(
        objects, source, n_candidates=n_candidates, duration_s=settings.duration_s, rng=settings.seed,
        progress=lambda d, n, term: progress("search", d / max(1, n), f"searched {term!r}"), budget=budget,
    )
    tracks, assignments, fetched = fetch_tracks(objects, assignments, source, settings=settings, progress=progress,
                                                budget=budget)
    errors = [a.error for a in assignments if a.error is not None]
    if errors and tracks.n_tracks == 0:
        raise errors[0]  # the source failed outright (key refused, unreachable ...): not a silent, empty render
    t_sounds = time.perf_counter() - t0
    t0 = time.perf_counter()
    arrangements = None
    if settings.compose:
        progress("compose", 0.0, "arranging the scene in time")
        tracks, fetched, arrangements = compose_tracks(objects, fetched, settings=settings, notes=tracks.notes)
    t_compose = time.perf_counter() - t0
    t0 = time.perf_counter()
    progress("mix", 0.0, "analysing and mixing")
    outcome = Mixer(tracks).render(settings)
    require_sound(outcome, objects, assignments)
    t_mix = time.perf_counter() - t0
    timings = {"detect": t_detect, "sounds": t_sounds, "compose": t_compose, "mix": t_mix, **outcome.timings_s}
    timings["total"] = time.perf_counter() - t_start
    files, plan = build_outputs(
        image=info, objects=objects, assignments=assignments, fetched=fetched, tracks=tracks,
        outcome=outcome, settings=settings, source_description=source.describe(), timings_s=timings,
        stems=stems, bundle=write_zip, arrangements=arrangements, ambience=ambience_record(objects),
    )
    progress("export", 0.0, "writing files")
    zip_path = write_outputs(out_dir, files, zip_name="bundle.zip" if write_zip else None)
    progress("export", 1.0, "done")
    return RenderResult(plan=plan, out_dir=str(out_dir), zip_path=str(zip_path) if zip_path else None)


def require_sound(outcome: MixOutcome, objects: Sequence, assignments: Sequence) -> None:
    """Refuse a mix in which nothing sounded at all (no folder that looks complete but is silent).

    Raises
    ------
    NoSoundError
        When the rendered mix is digital silence, whatever the reason (no object found, no sound
        found for any, every sound failed).  An ambience bed or any one audible track is enough.
    """
    if outcome.mix.peak_dbfs is not None:
        return
    sounding = [o for o in objects if not getattr(o, "skipped", False)]
    found = sum(1 for a in assignments if getattr(a, "candidate", None) is not None)
    if not sounding:
        why = "no object in the photo can make a sound"
    elif not found:
        why = f"no sound was found for any of the {len(sounding)} objects"
    else:
        why = f"the {found} sounds found are all silent"
    raise NoSoundError(f"nothing would sound: {why}; no files were written")


def render_files(
    paths: Sequence[str],
    out_dir: str,
    *,
    pans: Sequence[float] | None = None,
    gains_db: Sequence[float] | None = None,
    importance: Sequence[float] | None = None,
    settings: MixSettings = MixSettings(),
    progress: Progress = _no_progress,
    stems: bool = True,
    write_zip: bool = True,
    compose: bool = False,
) -> RenderResult:
    """Mix given audio files without an image (``python -m imgext mix``).

    The files keep their own timing (a sound designer's stems) unless
    ``compose`` (``mix --compose``): then each is arranged by the role its
    name's label has (events scheduled, beds looped from random offsets).

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
        data = read_bounded(p, name=name) if os.path.isfile(p) else None
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
    settings = replace(settings, attenuation_db=0.0, compose=bool(compose))
    arrangements = None
    if settings.compose:
        labels = LabelMap.default()
        objects = [with_role(o, labels.lookup(o.label).role.value if o.label in labels else "bed") for o in objects]
        objects = [replace(o, events_per_minute=labels.lookup(o.label).events_per_minute or o.events_per_minute,
                           event_s=labels.lookup(o.label).event_s or o.event_s) for o in objects]
        tracks, fetched, arrangements = compose_tracks(objects, fetched, settings=settings, notes=tracks.notes)
        tracks = replace(tracks, pans=np.array(pans, dtype=np.float64), volume_db=np.array(gains, dtype=np.float64))
    t0 = time.perf_counter()
    outcome = Mixer(tracks).render(settings)
    timings = {"mix": time.perf_counter() - t0, **outcome.timings_s, "total": time.perf_counter() - t_start}
    assignments = [Assignment(i, o.query, None, "given on the command line") for i, o in enumerate(objects)]
    files, plan = build_outputs(
        image=None, objects=objects, assignments=assignments, fetched=fetched, tracks=tracks, outcome=outcome,
        settings=settings, source_description="files given on the command line", timings_s=timings,
        stems=stems, bundle=write_zip, arrangements=arrangements,
    )
    zip_path = write_outputs(out_dir, files, zip_name="bundle.zip" if write_zip else None)
    return RenderResult(plan=plan, out_dir=str(out_dir), zip_path=str(zip_path) if zip_path else None)


def load_plan(folder: str) -> tuple[Plan, list[SceneObject], list[Assignment], dict[int, Fetched], MixSettings]:
    """A rendered folder read back: its plan, objects, assignments, decoded sources and settings."""
    plan, sources = read_plan(folder)
    settings = plan.settings
    objects, assignments = plan.scene_objects(), plan.assignments()
    fetched = {}
    for i, data in sources.items():
        cand = assignments[i].candidate
        track, notes, lufs = fit_source(data, name=cand.name, settings=settings)
        fetched[i] = Fetched(i, cand, data, track, notes, lufs)
    return plan, objects, assignments, fetched, settings


def remix(folder: str, out_dir: str, *, progress: Progress = _no_progress, stems: bool = True, write_zip: bool = True,
          **changes) -> RenderResult:
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
    stems, write_zip : bool
        Write the stems and the ZIP (as :func:`render_image`).
    """
    t_start = time.perf_counter()
    plan, objects, assignments, fetched, settings = load_plan(folder)
    unknown = set(changes) - set(MixSettings.__dataclass_fields__)
    if unknown:
        raise ParameterError(f"unknown mix settings: {', '.join(sorted(unknown))}")
    if {"duration_s", "sample_rate"} & {k for k, v in changes.items() if v != getattr(settings, k)}:
        settings = replace(settings, **changes)
        fetched = {i: replace(f, track=fit_source(f.data, name=f.candidate.name, settings=settings)[0]) for i, f in fetched.items()}
    else:
        settings = replace(settings, **changes)
    progress("mix", 0.0, "mixing the plan")
    arrangements = None
    if settings.compose:
        # The saved arrangements are rendered as they are (bit-identical); a new activity or seed draws anew.
        redraw = {"activity", "seed", "duration_s"} & {k for k, v in changes.items() if v != getattr(plan.settings, k)}
        given = {} if redraw else {i: Arrangement.from_dict(r.arrangement) for i, r in enumerate(plan.objects)
                                   if r.arrangement}
        tracks, fetched, arrangements = compose_tracks(objects, fetched, settings=settings, given=given)
    else:
        tracks = assemble_tracks(objects, fetched, settings=settings)
    t0 = time.perf_counter()
    outcome = Mixer(tracks).render(settings)
    t_mix = time.perf_counter() - t0
    image = plan.image
    info = ImageInfo(path=image.path, width=image.width, height=image.height, format="") if image else None
    timings = {"sounds": t0 - t_start, "mix": t_mix, **outcome.timings_s, "total": time.perf_counter() - t_start}
    files, new_plan = build_outputs(
        image=info, objects=objects, assignments=assignments, fetched=fetched, tracks=tracks, outcome=outcome,
        settings=settings, source_description=f"{plan.source} (remixed from the plan)", timings_s=timings,
        stems=stems, bundle=write_zip, arrangements=arrangements, ambience=plan.ambience,
    )
    zip_path = write_outputs(out_dir, files, zip_name="bundle.zip" if write_zip else None)
    return RenderResult(plan=new_plan, out_dir=str(out_dir), zip_path=str(zip_path) if zip_path else None)

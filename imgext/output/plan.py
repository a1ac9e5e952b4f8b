"""Plans: a rendered folder's ``scene.json`` and ``sources/`` read back and rendered again (as Scaper does).

``scene.json`` records every decision (objects, sounds, settings, seed); :func:`remix`
re-renders it offline, bit-identical when nothing changes, or with new mix settings.
"""

from __future__ import annotations

import time
from dataclasses import replace

from imgext.composition.tracks import Fetched, Progress, _no_progress, assemble_tracks, fit_source
from imgext.errors import ParameterError
from imgext.mix.mixer import Mixer
from imgext.options import MixSettings
from imgext.output.export import RenderResult, build_outputs, write_outputs
from imgext.sounds.base import Candidate
from imgext.sounds.selection import Assignment
from imgext.vision.detection import ImageInfo
from imgext.vision.placement import SceneObject

__all__ = ["load_plan", "remix"]


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

    from imgext.sounds.selection import Ranked

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

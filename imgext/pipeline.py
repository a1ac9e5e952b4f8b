"""The whole chain as the command line runs it: one :class:`~imgext.project.Project`, driven start to end.

The stages live in their own modules, each a function of the previous stage's plain data:

* :meth:`Project.detect <imgext.project.Project.detect>`   image -> placed objects (:mod:`imgext.vision`)
* :meth:`Project.find_sounds <imgext.project.Project.find_sounds>`  objects -> one distinct sound each
  (:func:`~imgext.sounds.selection.choose_sounds`, :func:`~imgext.composition.tracks.fetch_tracks`)
* :attr:`Project.tracks <imgext.project.Project.tracks>`   sounds -> :class:`~imgext.composition.tracks.Tracks`,
  arranged in time (:func:`~imgext.composition.arrange.compose_tracks`)
* :meth:`Project.export <imgext.project.Project.export>`   tracks -> :class:`~imgext.mix.mixer.MixOutcome`
  -> the files of the export (:func:`~imgext.output.export.build_outputs`)

The app's pages drive the same :class:`~imgext.project.Project` step by step; the functions here
drive it in one go, so a render from the command line, a batch, a remix of a saved folder and the
app's ZIP are one path:

* :func:`render_image`   photo in, soundscape folder out (``python -m imgext render``, ``batch``)
* :func:`render_files`   given audio files mixed without an image (``python -m imgext mix``)
* :func:`remix`          a saved folder rendered again with some settings changed (``python -m imgext remix``)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace

from imgext.budget import Budget
from imgext.composition.tracks import Progress, _no_progress
from imgext.errors import ParameterError
from imgext.options import DEFAULT_CANDIDATES, DetectSettings, MixSettings, SoundSettings
from imgext.output.export import RenderResult
from imgext.project import Project
from imgext.sounds.base import SoundSource
from imgext.vision.detection import Detector
from imgext.vision.placement import LabelMap

__all__ = ["render_image", "render_files", "remix", "mix_reserve_s"]


def render_image(
    image: bytes | str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    detector: Detector,
    source: SoundSource,
    settings: MixSettings = MixSettings(),
    conf: float = DetectSettings().conf,
    n_candidates: int = DEFAULT_CANDIDATES,
    labels: LabelMap | None = None,
    include_silent: bool = False,
    image_name: str | None = None,
    progress: Progress = _no_progress,
    stems: bool = True,
    write_zip: bool = True,
    budget: Budget | None = None,
    stem_format: str = "wav",
) -> RenderResult:
    """Photo in, soundscape folder out (what ``python -m imgext render`` does).

    ``stem_format="flac"`` writes the stems as FLAC (lossless, about half the size; the app's ZIP).

    Parameters
    ----------
    image : bytes or path
        The photo.
    out_dir : path
        The folder to write (``mix.wav``, stems, sources, ``scene.json``, ZIP).
    detector : Detector
    source : SoundSource
    settings : MixSettings
    conf, include_silent
        As :class:`~imgext.options.DetectSettings`.
    n_candidates : int
        As :class:`~imgext.options.SoundSettings`.
    labels : LabelMap, optional
        The label table (default: the package's).
    stems, write_zip : bool
        ``False`` leaves out the stems or the ZIP (``--no-stems``, ``--no-zip``).
    budget : Budget, optional
        Bounds the whole render: searches and downloads stop :func:`mix_reserve_s`
        before its end, and the render finishes with what it has (a fallback's sound
        where the source offers one, else no sound for the object, with the reason).
        Interrupting the render (Ctrl-C) cancels it, so no download outlives the render.

    Raises
    ------
    ImgExtError
        The source's own failure when it failed outright and nothing could sound
        (key refused, unreachable ...), not a silent, empty render.
    NoSoundError
        When nothing would sound at all; no files are written then.
    """
    network = budget.until(mix_reserve_s(budget)) if budget is not None else None
    try:
        project = Project(settings=settings, labels=labels)
        project.detect(image, detector, name=image_name,
                       detection=DetectSettings(conf=conf, include_silent=include_silent), progress=progress)
        errors = project.find_sounds(source, sounds=SoundSettings(n_candidates=n_candidates), progress=progress,
                                     budget=network)
        if errors and project.tracks.n_tracks == 0:
            raise errors[0]
        return project.export(out_dir, stems=stems, write_zip=write_zip, refuse_silence=True, progress=progress,
                              stem_format=stem_format)
    except BaseException:
        if budget is not None:
            budget.cancel("the render was interrupted")
        raise


def mix_reserve_s(budget: Budget) -> float:
    """Seconds of ``budget`` kept for analysing, mixing and writing: a fifth of it, at most 10 s."""
    return 0.0 if budget.seconds is None else min(10.0, 0.2 * budget.seconds)


def render_files(
    paths: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
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
    ``pans``, ``gains_db`` and ``importance`` are as :meth:`Project.from_files
    <imgext.project.Project.from_files>`.
    """
    project = Project.from_files(paths, pans=pans, gains_db=gains_db, importance=importance, settings=settings,
                                 compose=compose, progress=progress)
    return project.export(out_dir, stems=stems, write_zip=write_zip, progress=progress)


def remix(folder: str | os.PathLike, out_dir: str | os.PathLike, *, progress: Progress = _no_progress,
          stems: bool = True, write_zip: bool = True, **changes) -> RenderResult:
    """Render a saved plan again, offline, with some mix settings changed (``python -m imgext remix``).

    Parameters
    ----------
    folder : path
        A folder written by :func:`render_image` or :func:`render_files`.
    out_dir : path
        Where to write the new render (may be ``folder`` itself).
    **changes
        :class:`MixSettings` fields to change (``eq_strength=0.5`` ...); the rest come from the plan.
        With no changes the audio is bit-identical to the original render; the saved arrangements
        in time are kept unless the activity, the seed or the length changes.
    stems, write_zip : bool
        Write the stems and the ZIP (as :func:`render_image`).
    """
    unknown = set(changes) - set(MixSettings.__dataclass_fields__)
    if unknown:
        raise ParameterError(f"unknown mix settings: {', '.join(sorted(unknown))}")
    progress("mix", 0.0, "reading the plan")
    project = Project.from_folder(folder)
    if changes:
        project.set_settings(replace(project.settings, **changes))
    return project.export(out_dir, stems=stems, write_zip=write_zip, progress=progress)

"""The project: one session's work from photo to files, with no user interface.

A :class:`Project` walks the stages in order (detect -> choose -> fetch -> mix
-> export) and remembers what each produced.  Every cached result is keyed by
its *content* (a hash of the image bytes, the objects' search terms, the source
files' bytes, the settings), never by object identity, so a caller may rebuild
its inputs freely: what did not change is not recomputed.

The Streamlit pages drive it; :meth:`Project.from_folder` and :meth:`Project.from_files`
give the same object for a saved plan and for given files, so the app's ZIP, a
re-render of a saved folder and a mix of files are one path.  With ``settings.compose``
(the default) it composes the scene as :func:`imgext.pipeline.render_image` does: the
detected objects are resolved (duplicates once, persons a crowd ...), the ambience is
added, and the tracks are arranged in time (events, beds from random offsets)::

    project = Project(settings=MixSettings(duration_s=20))
    project.detect(photo_bytes, detector, name="park.jpg")
    project.find_sounds(source)
    outcome = project.mix()            # interactive: cached analysis and EQ designs
    result = project.export("out/")    # mix.wav, stems, sources, scene.json, ZIP

Edits to the objects and the mix settings can be undone and redone (:meth:`Project.undo`,
:meth:`Project.redo`, the last :data:`UNDO_STEPS` steps); a new photo starts a new history.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from imgext.audio.buffers import BufferPool
from imgext.audio.io import read_bounded
from imgext.budget import Budget
from imgext.composition.ambience import add_ambience, ambience_object, ambience_record, choose_ambience, is_ambience
from imgext.composition.arrange import Arrangement, compose_tracks
from imgext.composition.roles import resolve_objects
from imgext.composition.tracks import (
    Fetched,
    Progress,
    Tracks,
    _no_progress,
    assemble_tracks,
    fetch_sound,
    fetch_tracks,
    fit_source,
    retune_tracks,
)
from imgext.errors import AudioError, ImgExtError, NoSoundError, ParameterError
from imgext.mix.mixer import Mixer, MixOutcome
from imgext.options import DetectSettings, MixSettings, SoundSettings
from imgext.output.export import OutputFile, RenderResult, build_outputs, build_zip, write_outputs
from imgext.output.plan import Plan, read_plan
from imgext.sounds.base import Candidate, SoundSource
from imgext.sounds.selection import Assignment, choose, choose_sounds, more_like_this, reroll
from imgext.vision.detection import Detector, ImageInfo, load_image
from imgext.vision.distance import MAX_DISTANCE_M, MIN_DISTANCE_M
from imgext.vision.placement import (
    LabelMap,
    SceneObject,
    manual_object,
    place_objects,
    with_depth,
    with_query,
    with_role,
)

__all__ = ["History", "Project", "Snapshot", "UNDO_STEPS", "content_digest"]

UNDO_STEPS = 50
"""How many edits :meth:`Project.undo` can go back."""


def content_digest(data: bytes) -> str:
    """A short hex digest (SHA-256, 16 hex digits) identifying ``data`` by content."""
    return hashlib.sha256(data).hexdigest()[:16]


@dataclass(frozen=True)
class _Keyed:
    key: tuple
    value: object


@dataclass(frozen=True)
class Snapshot:
    """What undo restores: the objects as edited and the mix settings.

    Attributes
    ----------
    objects : tuple of SceneObject
    settings : MixSettings
    """

    objects: tuple[SceneObject, ...]
    settings: MixSettings


class History:
    """Undo and redo stacks of :class:`Snapshot` (the state *before* each edit), at most ``limit`` deep.

    Recording a new edit clears what could be redone, as in every editor.
    """

    def __init__(self, limit: int = UNDO_STEPS) -> None:
        if limit < 1:
            raise ParameterError(f"an undo history needs at least one step, got {limit}")
        self.limit = int(limit)
        self._undo: list[Snapshot] = []
        self._redo: list[Snapshot] = []

    def record(self, before: Snapshot) -> None:
        """Remember ``before`` as the state one edit ago (the oldest step is forgotten past ``limit``)."""
        if self._undo and self._undo[-1] == before:
            return
        self._undo.append(before)
        del self._undo[:-self.limit]
        self._redo.clear()

    def undo(self, current: Snapshot) -> Snapshot | None:
        """The state to go back to (``current`` becomes redoable), or None when there is none."""
        if not self._undo:
            return None
        self._redo.append(current)
        return self._undo.pop()

    def redo(self, current: Snapshot) -> Snapshot | None:
        """The state an undo left (``current`` becomes undoable again), or None."""
        if not self._redo:
            return None
        self._undo.append(current)
        return self._redo.pop()

    def clear(self) -> None:
        self._undo.clear()
        self._redo.clear()

    @property
    def n_undo(self) -> int:
        return len(self._undo)

    @property
    def n_redo(self) -> int:
        return len(self._redo)


class Project:
    """One session's work: image, objects, sounds, tracks, mix and export.

    Parameters
    ----------
    settings : MixSettings
        The mix settings; change them with :meth:`set_settings` (or by passing
        settings to :meth:`mix` / :meth:`export`).
    labels : LabelMap, optional
        Label table for detection (default: the package's table).
    interactive : bool
        Sliders will move (the app): its Mixers keep what a slider move reuses from the first render
        on (:attr:`imgext.mix.mixer.Mixer.interactive`); a one-off render keeps nothing it will not use.

    Attributes
    ----------
    image_name : str or None
    image_info : ImageInfo or None
    picture : PIL.Image.Image or None
        The decoded, upright photo (for drawing boxes).
    objects : list of SceneObject
        The placed objects, as the user edited them.
    assignments : list of Assignment
        One per object once sounds were found.
    fetched : dict of int -> Fetched
        The fetched sound of each object that has one.
    source_description : str
        Where the sounds came from, for ``scene.json``.
    notes : list of str
        What the user should know about the sounds.
    source_failure : str or None
        Why the sound source could not be used at all (its fallback then gave every sound), if so.
    timings_s : dict of str -> float
        Seconds spent per stage.
    history : History
        The edits to :attr:`objects` and :attr:`settings` that :meth:`undo` can take back.
    restores : int
        How many times :meth:`undo` or :meth:`redo` changed the state (a UI keys its editors on it).
    """

    def __init__(self, *, settings: MixSettings | None = None, labels: LabelMap | None = None,
                 interactive: bool = False) -> None:
        self.settings = settings if settings is not None else MixSettings()
        self.interactive = bool(interactive)
        self.labels = labels if labels is not None else LabelMap.default()
        self._labels_key = content_digest(repr(sorted(self.labels.items())).encode())
        self.image_name: str | None = None
        self.image_info: ImageInfo | None = None
        self.image_digest: str | None = None
        self.picture = None
        self.objects: list[SceneObject] = []
        self.assignments: list[Assignment] = []
        self.fetched: dict[int, Fetched] = {}
        self.source_description = ""
        self.notes: list[str] = []
        self.source_failure: str | None = None
        self.timings_s: dict[str, float] = {}
        self._detect_key: tuple | None = None
        self._sounds_key: tuple | None = None
        self._digests: dict[int, str] = {}  # object index -> digest of its fetched source bytes
        self._fetch_notes: list[str] = []
        self._found = False
        self._tracks: _Keyed | None = None
        self._mixer: _Keyed | None = None
        self._arranged: dict[int, Fetched] = {}  # the composed fetched sounds of the current tracks
        # Interactive: the scene's decoded, analysed sources (compose(sources=...)), so a new activity or seed
        # does not decode them again when the shared cache cannot hold them all (a crowd of 29: 3 -> 1.5 CPU-s)
        self._sources: dict | None = {} if self.interactive else None
        # and one memory pool for its Mixers' processed tracks (a new arrangement reuses what the last let go)
        self._buffers = BufferPool(max_blocks=4) if self.interactive else None
        self._given: tuple[tuple, dict[int, Arrangement]] | None = None  # a saved plan's arrangements and their draw
        self._ambience: dict | None = None  # a saved plan's ambience record
        self.history = History()
        self.restores = 0
        self._grouping = 0  # > 0 inside grouped(): one undo step for many edits
        self._grouped = False

    # -- detect ------------------------------------------------------------------------------------------------
    def detect(
        self,
        image: bytes | str | os.PathLike,
        detector: Detector | Callable[[], Detector],
        *,
        name: str | None = None,
        detection: DetectSettings | None = None,
        max_bytes: int | None = None,
        progress: Progress = _no_progress,
    ) -> bool:
        """Load the image, detect and place its objects, unless this image was detected with these settings.

        Parameters
        ----------
        image : bytes or path
        detector : Detector or callable returning one
            A callable is called only when detection runs (e.g. to load the model lazily).
        name : str, optional
            The image's name for messages and ``scene.json`` (default: the file name).
        detection : DetectSettings, optional
        max_bytes : int, optional
            Largest image accepted, in bytes (default: :func:`~imgext.vision.detection.load_image`'s).
        progress : callable, optional
            ``progress(stage, fraction, message)``.

        Returns
        -------
        bool
            True when detection ran; False when the same image bytes were already
            detected with the same settings and label table (nothing changed).
            A new detection drops the sounds found for the previous objects.
        """
        detection = detection if detection is not None else DetectSettings()
        key = self._detect_key_of(image, detection)
        if key == self._detect_key:
            return False
        digest = key[0]
        progress("detect", 0.0, "loading the image")
        picture, info = load_image(image, name=name, **({"max_bytes": max_bytes} if max_bytes else {}))
        progress("detect", 0.3, "loading the detector")
        if not hasattr(detector, "detect"):
            detector = detector()
        progress("detect", 0.5, "detecting objects")
        t0 = time.perf_counter()
        detections = detector.detect(picture, conf=detection.conf)
        seconds = time.perf_counter() - t0
        self.picture, self.image_info, self.image_digest = picture, info, digest
        self.image_name = name or info.path
        self.objects = place_objects(detections, labels=self.labels, include_silent=detection.include_silent,
                                     aspect=info.width / max(info.height, 1), fov_deg=self.settings.fov_deg)
        if self.settings.compose:
            self.objects = resolve_objects(self.objects, labels=self.labels)
            self.objects = add_ambience(self.objects, choice=self.settings.ambience, level_db=self.settings.ambience_db,
                                        attenuation_db=self.settings.attenuation_db)
        self._detect_key = key
        self.history.clear()  # a new photo: the old photo's edits cannot be undone into it
        self.timings_s = {"detect": seconds}
        self._drop_sounds()
        progress("detect", 1.0, f"{len(self.objects)} objects")
        return True

    def _detect_key_of(self, image: bytes | str | os.PathLike, detection: DetectSettings) -> tuple:
        data = image if isinstance(image, bytes) else Path(image).read_bytes() if Path(image).is_file() else None
        digest = content_digest(data) if data is not None else f"path:{os.fspath(image)}"
        return (digest, detection, self._labels_key)

    def detected(self, image: bytes | str | os.PathLike, detection: DetectSettings | None = None) -> bool:
        """True when these image bytes were detected with these settings (:meth:`detect` would do nothing)."""
        return self._detect_key_of(image, detection if detection is not None else DetectSettings()) == self._detect_key

    def _drop_sounds(self) -> None:
        self.assignments, self.fetched, self._digests, self._fetch_notes, self.notes = [], {}, {}, [], []
        self.source_failure = None
        self._sounds_key = None
        self._found = False
        if self._sources is not None:
            self._sources = {}  # the old scene's decoded sources go (a maker running elsewhere keeps its own)
            self._buffers = BufferPool(max_blocks=4)  # and the memory sized for its tracks

    # -- edit the objects ---------------------------------------------------------------------------------------
    def edit_object(self, index: int, *, keep: bool | None = None, volume_db: float | None = None,
                    query: str | None = None, distance_m: float | None = None, pan: float | None = None) -> bool:
        """Change one object; True if it changed.

        Its keep flag, its level offset in dB, its search term, its distance in metres (0.3 .. 1000),
        or its pan in [-1, 1] (its azimuth then follows the pan, for the headphone mix).
        """
        obj = self.objects[index]
        new = obj
        if keep is not None and keep == obj.skipped:
            new = replace(new, skipped=not keep, notes=() if keep else ("dropped by you",))
        if volume_db is not None and abs(float(volume_db) - obj.volume_db) > 1e-9:
            new = replace(new, volume_db=float(volume_db))
        if query is not None and query.strip() and query.strip() != obj.query:
            new = with_query(new, query.strip())
        if distance_m is not None and distance_m != obj.distance_m:
            if not (MIN_DISTANCE_M <= float(distance_m) <= MAX_DISTANCE_M):
                raise ParameterError(f"distance {distance_m} m must lie between {MIN_DISTANCE_M} and {MAX_DISTANCE_M} m")
            new = replace(new, distance_m=round(float(distance_m), 2))
        if pan is not None and abs(float(pan) - obj.pan) > 1e-9:
            if not (np.isfinite(pan) and -1.0 <= float(pan) <= 1.0):
                raise ParameterError(f"pan {pan} must lie between -1 (left) and 1 (right)")
            new = replace(new, pan=float(pan), azimuth_deg=None)
        if new == obj:
            return False
        self._remember()
        self.objects[index] = new
        return True

    def add_object(self, label: str, x: float, *, importance: float = 0.5) -> SceneObject:
        """Add an object by hand at horizontal position ``x`` in [0, 1] (0 = left edge)."""
        obj = manual_object(label, x, importance=importance, labels=self.labels)
        self._remember()
        self.objects.append(obj)
        return obj

    # -- sounds ------------------------------------------------------------------------------------------------
    def sounds_key(self, source_key: str = "", sounds: SoundSettings | None = None) -> tuple:
        """What the chosen sounds depend on: the objects' terms, the source, the candidates, length and seed."""
        sounds = sounds if sounds is not None else SoundSettings()
        return (tuple((o.query, o.skipped) for o in self.objects), source_key, sounds,
                self.settings.duration_s, self.settings.seed)

    def sounds_stale(self, source_key: str = "", sounds: SoundSettings | None = None) -> bool:
        """True when sounds were found for other objects, another source or other settings."""
        return self._sounds_key is not None and self._sounds_key != self.sounds_key(source_key, sounds)

    def sounds_outdated(self) -> bool:
        """True when the objects (their terms, which are kept), the length or the seed changed since the sounds were found.

        Unlike :meth:`sounds_stale` this needs no source key, so a page that does not own the
        source (the Mix page) can tell the user; a new source or filter is not counted.
        """
        if self._sounds_key is None:
            return False
        now = self.sounds_key()
        return self._sounds_key[0] != now[0] or self._sounds_key[3:] != now[3:]

    @property
    def has_sounds(self) -> bool:
        """True once sounds were found (or read from a plan) for the current objects."""
        return self._found and len(self.assignments) == len(self.objects)

    def find_sounds(
        self,
        source: SoundSource,
        *,
        source_key: str = "",
        sounds: SoundSettings | None = None,
        progress: Progress = _no_progress,
        budget: Budget | None = None,
    ) -> list[ImgExtError]:
        """Choose one distinct sound per object and fetch them all (replacing unusable ones).

        ``budget`` (:class:`~imgext.budget.Budget`) bounds the searches and downloads;
        the project changes only once both are done.

        Returns
        -------
        list of ImgExtError
            Failures of the source itself (unreachable, key refused ...); the
            objects concerned have no sound and their reason says why.
        """
        sounds = sounds if sounds is not None else SoundSettings()
        t0 = time.perf_counter()
        assignments = choose_sounds(
            self.objects, source, n_candidates=sounds.n_candidates, duration_s=self.settings.duration_s,
            rng=self.settings.seed, progress=lambda d, n, term: progress("search", d / max(n, 1), f"searched {term!r} ({d}/{n})"),
            budget=budget,
        )
        progress("sounds", 0.0, "downloading")
        tracks, assignments, fetched = fetch_tracks(self.objects, assignments, source, settings=self.settings,
                                                    progress=progress, budget=budget)
        self._drop_sounds()
        self.assignments = assignments
        # the fetched tracks become views of the stacked array: one copy of the audio per session, not two
        for k, i in enumerate(tracks.object_indices):
            self._set_fetched(i, replace(fetched[i], track=tracks.audio[k]))
        self._fetch_notes = [n for n in tracks.notes if n not in {note for f in fetched.values() for note in f.notes}]
        self._tracks = _Keyed(self._audio_key() + (None,), tracks)  # unarranged: composed on first use
        self.notes = list(getattr(source, "notes", [])) + list(tracks.notes)
        self.source_description = source.describe()
        failure = getattr(source, "failure", None)
        self.source_failure = str(failure) if failure is not None else None
        self._sounds_key = self.sounds_key(source_key, sounds)
        self._found = True
        self.timings_s["sounds"] = time.perf_counter() - t0
        return [a.error for a in assignments if a.error is not None]

    def reroll(self, index: int, source: SoundSource, *, like: bool = False,
               sounds: SoundSettings | None = None) -> str | None:
        """Give object ``index`` its next unused candidate; returns a message when there is none.

        With ``like``, the best sound similar to its current one ("more like this",
        :func:`~imgext.sounds.selection.more_like_this`; sources with ``similar`` only).
        """
        if like:
            n = (sounds if sounds is not None else SoundSettings()).n_candidates
            new = more_like_this(self.assignments, index, source, self.objects[index], n=n,
                                 duration_s=self.settings.duration_s)
        else:
            new = reroll(self.assignments, index)
        a, old = new[index], self.assignments[index]
        if a.candidate is None or (old.candidate is not None and a.candidate.id == old.candidate.id):
            self.assignments = new
            return a.reason
        self._set_fetched(index, fetch_sound(a, source, settings=self.settings))
        self.assignments = new
        return None

    def use(self, index: int, candidate_id: str, source: SoundSource) -> None:
        """Give object ``index`` the candidate ``candidate_id`` of its ranked list."""
        new = choose(self.assignments, index, candidate_id)
        self._set_fetched(index, fetch_sound(new[index], source, settings=self.settings))
        self.assignments = new

    def _set_fetched(self, index: int, fetched: Fetched) -> None:
        self.fetched = {**self.fetched, index: fetched}
        self._digests[index] = content_digest(fetched.data)

    # -- settings and tracks -------------------------------------------------------------------------------------
    def set_settings(self, settings: MixSettings) -> None:
        """Use ``settings`` from now on.

        A new length or rate refits the fetched sounds (no new download); a new
        field of view re-estimates the detected objects' distances and directions.
        The change is one undo step.
        """
        if settings == self.settings:
            return
        self._remember()
        self._apply_settings(settings)

    def _apply_settings(self, settings: MixSettings) -> None:
        if settings.fov_deg != self.settings.fov_deg and self.image_info is not None:
            aspect = self.image_info.width / max(self.image_info.height, 1)
            self.objects = with_depth(self.objects, aspect=aspect, fov_deg=settings.fov_deg)
        if (settings.duration_s, settings.sample_rate) != (self.settings.duration_s, self.settings.sample_rate):
            self.fetched = {i: replace(f, track=fit_source(f.data, name=f.candidate.name, settings=settings)[0])
                            for i, f in self.fetched.items()}
        old, self.settings = self.settings, settings
        if settings.compose and (settings.ambience, settings.ambience_db, settings.attenuation_db) != (
                old.ambience, old.ambience_db, old.attenuation_db):
            self._retune_ambience(old)

    # -- undo and redo -------------------------------------------------------------------------------------------
    def snapshot(self) -> Snapshot:
        """The current objects and settings (what :meth:`undo` would come back to)."""
        return Snapshot(tuple(self.objects), self.settings)

    def _remember(self) -> None:
        if self._grouping:
            if self._grouped:
                return
            self._grouped = True
        self.history.record(self.snapshot())

    @contextmanager
    def grouped(self) -> Iterator[None]:
        """``with project.grouped(): ...``: every edit inside is one undo step (e.g. one table edit)."""
        self._grouping += 1
        try:
            yield
        finally:
            self._grouping -= 1
            if not self._grouping:
                self._grouped = False

    @property
    def can_undo(self) -> bool:
        return self.history.n_undo > 0

    @property
    def can_redo(self) -> bool:
        return self.history.n_redo > 0

    def undo(self) -> bool:
        """Go back one edit of the objects or the mix settings; False when there is nothing to undo.

        The sounds already fetched stay (an undone search term keeps its sound; a sound
        dropped by a new ambience choice is found again on the Sounds page).
        """
        return self._restore(self.history.undo(self.snapshot()))

    def redo(self) -> bool:
        """Do again the edit :meth:`undo` took back; False when there is none."""
        return self._restore(self.history.redo(self.snapshot()))

    def _restore(self, snap: Snapshot | None) -> bool:
        if snap is None:
            return False
        settings = snap.settings
        if (settings.duration_s, settings.sample_rate) != (self.settings.duration_s, self.settings.sample_rate):
            self.fetched = {i: replace(f, track=fit_source(f.data, name=f.candidate.name, settings=settings)[0])
                            for i, f in self.fetched.items()}
        self.objects, self.settings = list(snap.objects), settings  # derived fields (depth, ambience) come along
        self.restores += 1
        return True

    def _retune_ambience(self, old: MixSettings) -> None:
        """Follow a new ambience level or attenuation (its volume only) or a new ambience choice.

        A new choice replaces the ambience object in place (``none`` drops it, keeping the
        other objects' indices); its old sound is dropped, so the sounds go stale until found again.
        """
        at = [i for i, o in enumerate(self.objects) if is_ambience(o)]
        if self.settings.ambience != old.ambience:
            self._ambience = None
            amb, reason = choose_ambience([o for o in self.objects if not is_ambience(o)], self.settings.ambience)
            if amb is None:
                for i in at:
                    self.objects[i] = replace(self.objects[i], skipped=True, notes=(reason,))
                return
            new = ambience_object(amb, level_db=self.settings.ambience_db, attenuation_db=self.settings.attenuation_db,
                                  reason=reason)
            if not at:
                self.objects.append(new)
                return
            i = at[0]
            if self.objects[i].query != new.query:
                self.fetched = {k: f for k, f in self.fetched.items() if k != i}
                self._digests.pop(i, None)
                if i < len(self.assignments):
                    self.assignments[i] = Assignment(i, new.query, None, "a new ambience: find the sounds again")
            self.objects[i] = new
            return
        for i in at:
            shift = (self.settings.ambience_db - old.ambience_db) + (self.settings.attenuation_db - old.attenuation_db)
            self.objects[i] = replace(self.objects[i], volume_db=self.objects[i].volume_db + shift)

    def _audio_key(self) -> tuple:
        order = tuple(i for i in sorted(self.fetched) if i < len(self.objects) and not self.objects[i].skipped)
        return (self.settings.duration_s, self.settings.sample_rate, tuple((i, self._digests[i]) for i in order))

    def _tracks_key(self) -> tuple:
        """The audio key plus what the arrangement depends on (None when not composed)."""
        if not self.settings.compose:
            return self._audio_key() + (None,)
        roles = tuple((i, o.label, o.role, o.events_per_minute, o.event_s, tuple(o.box))
                      for i, o in enumerate(self.objects) if i in self.fetched and not o.skipped)
        return self._audio_key() + ((self.settings.activity, self.settings.seed, roles),)

    @property
    def tracks(self) -> Tracks | None:
        """The mono tracks of the sounding objects (None before sounds were found).

        Re-stacked (and, with ``settings.compose``, arranged in time by
        :func:`~imgext.composition.arrange.compose_tracks`) only when the sounds,
        the length, the activity, the seed or the objects' roles change; pans,
        importance and volume are taken afresh from :attr:`objects` (same audio array).
        """
        if not self._found:
            return None
        key = self._tracks_key()
        if self._tracks is None or self._tracks.key != key:
            t0 = time.perf_counter()
            tracks, self._arranged = self._tracks_maker()()
            if self.settings.compose:
                self.timings_s["compose"] = time.perf_counter() - t0
        else:
            tracks = retune_tracks(self._tracks.value, self.objects)
        self._tracks = _Keyed(key, tracks)
        return tracks

    def _tracks_maker(self) -> Callable[[], tuple[Tracks, dict]]:
        """A function making the tracks (and the arranged sounds) of the objects, sounds and settings as they are now.

        It holds its own copies of what it reads (the objects, the fetched sounds, the settings, the notes and
        a saved plan's arrangements), so it gives the same tracks whenever, and from whichever thread, it runs.
        """
        objects, fetched, settings, notes = list(self.objects), dict(self.fetched), self.settings, list(self._fetch_notes)
        draw = (settings.activity, settings.seed, settings.duration_s)
        given = self._given[1] if self._given is not None and self._given[0] == draw else None
        sources = self._sources

        def make() -> tuple[Tracks, dict]:
            if settings.compose:
                tracks, arranged, _ = compose_tracks(objects, fetched, settings=settings, notes=notes, given=given,
                                                     sources=sources)
                return tracks, arranged
            return assemble_tracks(objects, fetched, settings=settings, notes=notes), {}

        return make

    def tracks_later(self) -> Callable[[], Tracks | None]:
        """A function giving the tracks of the objects, sounds and settings as they are now, made when it is called.

        For a UI that must not arrange the sounds on every slider step (a new activity recomposes
        them: seconds) but offers a download of exactly these settings: safe to call from another
        thread, it touches nothing of the project (the tracks made now are returned as they are).
        """
        if not self._found:
            return lambda: None
        if self._tracks is not None and self._tracks.key == self._tracks_key():
            tracks = retune_tracks(self._tracks.value, self.objects)
            return lambda: tracks
        maker = self._tracks_maker()
        return lambda: maker()[0]

    def attenuated(self, tracks: Tracks | None = None) -> list[int]:
        """Indices of the tracks whose level the attenuation setting moves (empty before sounds were found).

        Those of objects below full importance (``gain = -attenuation * (1 - importance)``); the ambience
        is not among them (its volume follows the attenuation, so it keeps ``ambience_db``). Empty when
        every sound is at full importance (one animal and its ambience): the setting then changes nothing.
        ``tracks`` (default :attr:`tracks`) may be the tracks of the last render, so that a pending new
        arrangement is not made for this.
        """
        tracks = self.tracks if tracks is None else tracks
        if tracks is None:
            return []
        return [k for k, (i, w) in enumerate(zip(tracks.object_indices, tracks.importance))
                if float(w) < 1.0 and not (0 <= i < len(self.objects) and is_ambience(self.objects[i]))]

    def arrangements(self) -> dict[int, Arrangement]:
        """Object index -> how it sounds in time (empty when not composed or before sounds were found)."""
        tracks = self.tracks
        if tracks is None:
            return {}
        return {tracks.object_indices[k]: a for k, a in tracks.arrangements.items()}

    def _current_mixer(self, tracks: Tracks) -> Mixer:
        key = self._tracks.key
        old = self._mixer.value if self._mixer is not None and self._mixer.key == key else None
        if old is not None and old.tracks is tracks:
            return old
        mixer = Mixer(tracks, reuse=old, interactive=self.interactive,  # same sounds: the analysis and designs carry over
                      buffers=self._buffers)
        self._mixer = _Keyed(key, mixer)
        return mixer

    def mixer(self) -> Mixer:
        """The :class:`~imgext.mix.mixer.Mixer` of the current sounds (its analysis and EQ designs cached).

        Render other settings with it (``project.mixer().render(settings)``) to compare without
        changing the project's own settings.
        """
        tracks = self.tracks
        if tracks is None:
            raise ParameterError("no sounds yet: find sounds before mixing")
        return self._current_mixer(tracks)

    # -- mix and export ------------------------------------------------------------------------------------------
    def mix(self, settings: MixSettings | None = None, *, measure_after: bool = False) -> MixOutcome:
        """Render the mix (interactive: the analysis and EQ designs of the same sounds are reused).

        Parameters
        ----------
        settings : MixSettings, optional
            New settings (see :meth:`set_settings`).
        measure_after : bool
            Measure the "after" masking on the processed audio (exact) instead of
            estimating it from the cached analysis.
        """
        if settings is not None:
            self.set_settings(settings)
        tracks = self.tracks
        if tracks is None:
            raise ParameterError("no sounds yet: find sounds before mixing")
        return self._current_mixer(tracks).render(self.settings, measure_after=measure_after)

    def export_files(self, settings: MixSettings | None = None, *, stems: bool = True, bundle: bool = True,
                     refuse_silence: bool = False, stem_format: str = "wav") -> tuple[list[OutputFile], Plan]:
        """The files of the export and their plan, measured on the rendered audio.

        ``stem_format`` ``"flac"`` writes the stems as FLAC (lossless, about half the size).

        With ``refuse_silence``, a mix in which nothing sounds at all raises
        :class:`~imgext.errors.NoSoundError` (no folder that looks complete but is silent).

        Safe to call from another thread than :meth:`mix` (the app's ZIP
        download): it renders with its own :class:`~imgext.mix.mixer.Mixer`,
        which copies the cached analysis and EQ designs.
        """
        settings = settings if settings is not None else self.settings
        if replace(settings, binaural=self.settings.binaural) != self.settings:
            self.set_settings(settings)  # the headphone mix alone changes no track: not an edit of the project
        tracks = self.tracks
        if tracks is None:
            raise ParameterError("no sounds yet: find sounds before exporting")
        current = self._mixer.value if self._mixer is not None and self._mixer.key == self._tracks.key else None
        t0 = time.perf_counter()
        outcome = Mixer(tracks, reuse=current).render(settings, measure_after=True)
        if refuse_silence:
            self._require_sound(outcome)
        timings = {**self.timings_s, "mix": time.perf_counter() - t0, **outcome.timings_s}
        timings["total"] = sum(timings.get(k, 0.0) for k in ("detect", "sounds", "compose", "mix"))
        assignments = self.assignments or [Assignment(i, o.query, None, "no sound") for i, o in enumerate(self.objects)]
        arrangements = {tracks.object_indices[k]: a for k, a in tracks.arrangements.items()} or None
        fetched = {**self.fetched, **self._arranged} if arrangements else self.fetched
        ambience = self._ambience if self._ambience is not None else ambience_record(self.objects)
        return build_outputs(
            image=self.image_info, objects=self.objects, assignments=assignments, fetched=fetched, tracks=tracks,
            outcome=outcome, settings=settings, source_description=self.source_description, timings_s=timings,
            stems=stems, bundle=bundle, arrangements=arrangements, ambience=ambience, stem_format=stem_format,
        )

    def export(self, out_dir: str | os.PathLike, settings: MixSettings | None = None, *, stems: bool = True,
               write_zip: bool = True, refuse_silence: bool = False, progress: Progress = _no_progress,
               stem_format: str = "wav") -> RenderResult:
        """Write the render into ``out_dir`` (see :func:`~imgext.output.export.write_outputs`).

        ``stems=False`` leaves out the stems, ``write_zip=False`` the ZIP; ``refuse_silence``
        and ``stem_format`` as in :meth:`export_files`.
        """
        progress("mix", 0.0, "analysing and mixing")
        files, plan = self.export_files(settings, stems=stems, bundle=write_zip, refuse_silence=refuse_silence,
                                        stem_format=stem_format)
        progress("export", 0.0, "writing files")
        zip_path = write_outputs(out_dir, files, zip_name="bundle.zip" if write_zip else None)
        progress("export", 1.0, "done")
        return RenderResult(plan=plan, out_dir=os.fspath(out_dir), zip_path=str(zip_path) if zip_path else None)

    def _require_sound(self, outcome: MixOutcome) -> None:
        """Raise :class:`~imgext.errors.NoSoundError` when the rendered mix is digital silence.

        Whatever the reason (no object found, no sound found for any, every sound
        failed); an ambience bed or any one audible track is enough.
        """
        if outcome.mix.peak_dbfs is not None:
            return
        sounding = [o for o in self.objects if not o.skipped]
        found = sum(1 for a in self.assignments if a.candidate is not None)
        if not sounding:
            why = "no object in the photo can make a sound"
        elif not found:
            why = f"no sound was found for any of the {len(sounding)} objects"
        else:
            why = f"the {found} sounds found are all silent"
        raise NoSoundError(f"nothing would sound: {why}; no files were written")

    def export_key(self, settings: MixSettings | None = None, *, stem_format: str = "wav") -> str:
        """A digest of everything :meth:`export_zip` with these arguments depends on.

        Two calls give the same key exactly when the ZIP would be the same: the sounds and their
        arrangement, every object as edited (pan, level, importance, role), the assignments and their
        credits, the photo, the settings and the stem format. A UI keeps a prepared ZIP under it and
        offers it again only while nothing changed.
        """
        settings = settings if settings is not None else self.settings
        tracks_key = self._tracks_key() if self._found else None
        parts = (tracks_key, self.objects, self.assignments, self.image_digest, self.image_info, self.source_description,
                 settings, stem_format)
        return content_digest(repr(parts).encode())

    def export_zip(self, settings: MixSettings | None = None, *, stem_format: str = "wav",
                   progress: Progress = _no_progress) -> bytes:
        """The export as ZIP bytes, built in memory (nothing is written to disk).

        ``progress("zip", fraction, message)`` is called as each file is packed.
        """
        progress("zip", 0.0, "mixing")
        files, _ = self.export_files(settings, stem_format=stem_format)
        return build_zip(files, progress=progress)

    # -- other ways in -------------------------------------------------------------------------------------------
    @classmethod
    def from_folder(cls, folder: str | os.PathLike) -> Project:
        """A project from a rendered folder's ``scene.json`` and ``sources/``, ready to mix or export again.

        With unchanged settings, :meth:`export` reproduces the original audio bit for bit.
        """
        plan, sources = read_plan(folder)
        project = cls(settings=plan.settings)
        project.objects = plan.scene_objects()
        project.assignments = plan.assignments()
        if plan.image is not None:
            project.image_info = ImageInfo(path=plan.image.path, width=plan.image.width, height=plan.image.height, format="")
            project.image_name = plan.image.path
        for i, data in sources.items():
            cand = project.assignments[i].candidate
            track, notes, lufs = fit_source(data, name=cand.name, settings=plan.settings)
            project._set_fetched(i, Fetched(i, cand, data, track, notes, lufs))
        project.source_description = f"{plan.source} (remixed from the plan)"
        # the saved arrangements are rendered as they are (bit-identical) until the activity, seed or length changes
        given = {i: Arrangement.from_dict(r.arrangement) for i, r in enumerate(plan.objects) if r.arrangement}
        project._given = ((plan.settings.activity, plan.settings.seed, plan.settings.duration_s), given)
        project._ambience = plan.ambience
        project._found = True
        return project

    @classmethod
    def from_files(
        cls,
        paths: Sequence[str | os.PathLike],
        *,
        pans: Sequence[float] | None = None,
        gains_db: Sequence[float] | None = None,
        importance: Sequence[float] | None = None,
        settings: MixSettings | None = None,
        compose: bool = False,
        progress: Progress = _no_progress,
    ) -> Project:
        """A project mixing given audio files, no image (``python -m imgext mix``).

        The files keep their own timing (a sound designer's stems) unless ``compose``:
        then each is arranged in time by the role of the label its file name gives
        (``dog.wav`` an event, ``rain.wav`` a bed; a name the label table lacks, a bed).

        Parameters
        ----------
        pans : sequence of float in [-1, 1], optional
            One per file; default centre.
        gains_db : sequence of float, optional
            One per file, dB; default 0.  These are absolute levels (the
            attenuation setting is set to 0 dB).  Importance follows gain
            (louder = more important) unless ``importance`` is given.
        importance : sequence of float in [0, 1], optional
        """
        settings = settings if settings is not None else MixSettings()
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
        # Given gains are absolute (each file's volume), not derived from importance: no attenuation.
        project = cls(settings=replace(settings, attenuation_db=0.0, compose=bool(compose)))
        labels = project.labels
        for i, p in enumerate(paths):
            path = Path(p)
            if not path.is_file():
                raise AudioError(f"sound file not found: {os.fspath(p)}")
            data = read_bounded(path, name=path.name)
            track, notes, lufs = fit_source(data, name=path.name, settings=project.settings)
            obj = SceneObject(label=path.stem, confidence=1.0, box=(0.0, 0.0, 0.0, 0.0), pan=float(pans[i]),
                              importance=float(importance[i]), query=path.stem, volume_db=float(gains[i]), origin="file")
            if compose:
                known = labels.lookup(obj.label) if obj.label in labels else None
                obj = with_role(obj, known.role.value if known is not None else "bed")
                if known is not None:
                    obj = replace(obj, events_per_minute=known.events_per_minute or obj.events_per_minute,
                                  event_s=known.event_s or obj.event_s)
            project.objects.append(obj)
            cand = Candidate(id=f"file:{path.name}", name=path.name, source="file", file_ext=path.suffix.lstrip(".") or "wav")
            project._set_fetched(i, Fetched(i, cand, data, track, notes, lufs))
            progress("sounds", (i + 1) / n, f"decoded {path.name}")
        project.assignments = [Assignment(i, o.query, None, "given on the command line") for i, o in enumerate(project.objects)]
        project.source_description = "files given on the command line"
        project._found = True
        project.notes = [note for f in project.fetched.values() for note in f.notes]
        return project


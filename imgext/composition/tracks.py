"""Tracks: the chosen sounds fetched, decoded, fitted to the scene and levelled, one mono track per object.

* :func:`fetch_tracks` fetches several sounds at once; an unusable one is replaced by the next candidate
* :func:`assemble_tracks` stacks fetched sounds into :class:`Tracks`
* :func:`retune_tracks` takes new pans, importance and volume from edited objects, same audio
"""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from imgext.audio.io import prepare_source
from imgext.audio.loudness import level_track
from imgext.audio.spill import SpilledBytes, release, spill, spilled_array
from imgext.budget import Budget, current_budget
from imgext.errors import (
    AudioError,
    AuthError,
    CancelledError,
    ImgExtError,
    ParameterError,
    RateLimitedError,
    SourceTimeoutError,
    SourceUnavailableError,
)
from imgext.options import LONG_SCENE_S, MixSettings
from imgext.sounds.base import Candidate, SoundSource
from imgext.sounds.memo import MemoryCache, content_key, frozen
from imgext.sounds.selection import Assignment, rank_candidates, reroll
from imgext.vision.placement import SceneObject, object_gain_db

__all__ = [
    "Progress",
    "Tracks",
    "Fetched",
    "display_names",
    "fit_source",
    "fetch_sound",
    "assemble_tracks",
    "retune_tracks",
    "fetch_tracks",
]

Progress = Callable[[str, float, str], None]
"""``progress(stage, fraction 0..1, message)``."""


def _no_progress(stage: str, fraction: float, message: str) -> None:
    pass


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
    distance_m : np.ndarray [shape=(n_tracks,)] or None
        Distance of each object in metres; NaN (or None for all) where unknown.
    azimuth_deg, elevation_deg : np.ndarray [shape=(n_tracks,)] or None
        Direction of each object (azimuth positive to the left); NaN where unknown.
    sides : dict of int -> (float, np.ndarray [shape=(n_samples,)])
        Area sources: track index -> (width in [0, 1], the decorrelated companion
        the mix adds in mid/side, :func:`imgext.mix.render.render_mix`).
    arrangements : dict of int -> Arrangement
        Track index -> how it sounds in time (:class:`imgext.composition.arrange.Arrangement`:
        role, events with onset and duration in seconds); empty when not composed.
    """

    audio: np.ndarray
    names: list[str]
    object_indices: list[int]
    pans: np.ndarray
    importance: np.ndarray
    volume_db: np.ndarray
    sample_rate: int
    notes: list[str] = field(default_factory=list)
    distance_m: np.ndarray | None = None
    azimuth_deg: np.ndarray | None = None
    elevation_deg: np.ndarray | None = None
    sides: dict = field(default_factory=dict)
    arrangements: dict = field(default_factory=dict)

    @property
    def n_tracks(self) -> int:
        return int(self.audio.shape[0])

    def distances_m(self) -> np.ndarray:
        """Distance of every track in metres; unknown ones count as the nearest known (1 m if none is known)."""
        d = np.full(self.n_tracks, np.nan) if self.distance_m is None else np.asarray(self.distance_m, dtype=np.float64)
        known = d[np.isfinite(d) & (d > 0)]
        return np.where(np.isfinite(d) & (d > 0), d, known.min() if known.size else 1.0)

    def directions_deg(self, fov_deg: float) -> tuple[np.ndarray, np.ndarray]:
        """``(azimuth, elevation)`` of every track in degrees; unknown azimuths follow the pan within ``fov_deg``."""
        from_pan = -np.degrees(np.arctan(np.asarray(self.pans, dtype=np.float64) * np.tan(np.radians(fov_deg) / 2.0)))
        az = from_pan if self.azimuth_deg is None else np.asarray(self.azimuth_deg, dtype=np.float64)
        el = np.zeros(self.n_tracks) if self.elevation_deg is None else np.asarray(self.elevation_deg, dtype=np.float64)
        return np.where(np.isfinite(az), az, from_pan), np.where(np.isfinite(el), el, 0.0)

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


@dataclass(frozen=True)
class Fetched:
    """A fetched and decoded sound for one object."""

    object_index: int
    candidate: Candidate
    data: bytes
    track: np.ndarray
    notes: tuple[str, ...]
    source_lufs: float | None = None


FIT_CACHE = MemoryCache(160 * 2**20)
"""Fitted, levelled tracks by content (digest of the source bytes, name, rate, length), shared by every session.

160 MB hold about 30 tracks of 30 s; a source fetched again (another photo with a
dog, a remix, a slider that re-fetches) is not decoded and levelled again.
"""


def fit_source(data: bytes, *, name: str, settings: MixSettings) -> tuple[np.ndarray, tuple[str, ...], float | None]:
    """Decode, fit to the scene and level one source (see :func:`imgext.audio.loudness.level_track`).

    Returns ``(track, notes, source_lufs)``: the mono track at the reference
    loudness (read-only: it may be shared through :data:`FIT_CACHE`), what the
    user should know, and the source's own loudness.
    """
    def make() -> tuple[np.ndarray, tuple[str, ...], float | None]:
        track, notes = prepare_source(data, name=name, sample_rate=settings.sample_rate, duration_s=settings.duration_s)
        track, source_lufs = level_track(track, settings.sample_rate)
        return frozen(track), tuple(notes), source_lufs

    key = (content_key(bytes(data)), name, int(settings.sample_rate), float(settings.duration_s))
    return FIT_CACHE.get(key, make)


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
    objects: Sequence[SceneObject], fetched: dict[int, Fetched], *, settings: MixSettings, notes: Sequence[str] = (),
    sides: dict | None = None, views: bool = False,
) -> Tracks:
    """Stack the fetched sounds of the objects that have one (in object order) into :class:`Tracks`.

    Pans, importance and volume come from ``objects``, so editing them needs no new fetch.
    ``sides`` maps object index -> (width, companion) for area sources
    (:func:`imgext.composition.arrange.compose`).  With ``views``, each entry of ``fetched`` is
    replaced (in place) by one whose track is a view of its row, as soon as the row is filled: the
    fetched copy can then go at once, so the scene is held about once while stacking, not twice
    (8 x 600 s: 850 MB).
    """
    order = [i for i in sorted(fetched) if i < len(objects) and not objects[i].skipped]
    n = int(round(settings.duration_s * settings.sample_rate))
    for i in order:
        if fetched[i].track.shape != (n,):
            raise ParameterError("fetched sounds do not match the scene's duration and sample rate; fetch them again")
    if order:
        dtype = np.result_type(*(fetched[i].track for i in order))
        long = settings.duration_s > LONG_SCENE_S  # in a temporary file, a row in memory at a time
        audio = spilled_array((len(order), n), dtype) if long else np.empty((len(order), n), dtype=dtype)
        for k, i in enumerate(order):  # the same values as np.stack
            audio[k] = fetched[i].track
            if views:
                fetched[i] = replace(fetched[i], track=audio[k])
            if long:
                release(audio)
                release(fetched[i].track)
    else:
        audio = np.zeros((0, n), dtype=np.float32)
    return Tracks(
        audio=audio,
        names=display_names([objects[i].label for i in order]),
        object_indices=order,
        pans=np.array([objects[i].pan for i in order], dtype=np.float64),
        importance=np.array([objects[i].importance for i in order], dtype=np.float64),
        volume_db=np.array([objects[i].volume_db for i in order], dtype=np.float64),
        sample_rate=settings.sample_rate,
        notes=list(notes) + [note for i in order for note in fetched[i].notes],
        **_depth_arrays([objects[i] for i in order]),
        sides={k: sides[i] for k, i in enumerate(order) if sides and i in sides},
    )


def _optional(values) -> np.ndarray:
    return np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)


def _depth_arrays(objs: Sequence[SceneObject]) -> dict:
    """``distance_m``, ``azimuth_deg``, ``elevation_deg`` arrays of ``objs`` (NaN where unknown)."""
    return {
        "distance_m": _optional(o.distance_m for o in objs),
        "azimuth_deg": _optional(o.azimuth_deg for o in objs),
        "elevation_deg": _optional(o.elevation_deg for o in objs),
    }


def retune_tracks(tracks: Tracks, objects: Sequence[SceneObject]) -> Tracks:
    """``tracks`` with pans, importance and volume taken afresh from ``objects`` (the same audio array).

    Keeping the audio object lets a :class:`Mixer` reuse its cached analysis.
    """
    objs = [objects[i] for i in tracks.object_indices]
    pans = np.array([o.pan for o in objs], dtype=np.float64)
    importance = np.array([o.importance for o in objs], dtype=np.float64)
    volume = np.array([o.volume_db for o in objs], dtype=np.float64)
    depth = _depth_arrays(objs)
    same_depth = all(
        getattr(tracks, k) is not None and np.array_equal(v, getattr(tracks, k), equal_nan=True) for k, v in depth.items()
    )
    if (np.array_equal(pans, tracks.pans) and np.array_equal(importance, tracks.importance)
            and np.array_equal(volume, tracks.volume_db) and same_depth):
        return tracks
    return replace(tracks, pans=pans, importance=importance, volume_db=volume, **depth)


def _fetch_in_scope(budget: Budget, assignment: Assignment, source: SoundSource, settings: MixSettings) -> Fetched:
    with budget.scope():
        return _spilled_if_long(fetch_sound(assignment, source, settings=settings), settings)


def _spilled_if_long(f: Fetched, settings: MixSettings) -> Fetched:
    """``f`` with its source bytes and track in temporary files when the scene is long (:data:`LONG_SCENE_S`).

    Made in the fetch worker, so no copy in memory outlives it (8 x 600 s: 423 MB of source bytes
    and 850 MB of tracks); the export reads the bytes back when it writes ``sources/``.
    """
    if settings.duration_s <= LONG_SCENE_S or isinstance(f.data, SpilledBytes):
        return f
    return replace(f, data=SpilledBytes(f.data), track=spill(f.track))


_GRACE_S = 2.0
"""How long past the budget's end the downloads still running are waited for (they end themselves at it)."""


def fetch_tracks(
    objects: Sequence[SceneObject],
    assignments: Sequence[Assignment],
    source: SoundSource,
    *,
    settings: MixSettings,
    progress: Progress = _no_progress,
    max_workers: int = 4,
    max_attempts: int = 3,
    budget: Budget | None = None,
    tick_s: float = 0.5,
) -> tuple[Tracks, list[Assignment], dict[int, Fetched]]:
    """Fetch, decode and fit every assigned sound, several at once; a sound that fails is replaced.

    An unusable sound (corrupt, empty, gone) is replaced by the next unused
    candidate of its term, up to ``max_attempts`` times; when the source
    itself fails (unreachable, key refused, rate-limited) the object gets no
    sound and the reason says why.  When it stalls (a download past its
    deadline, or ``budget`` spent), a source that offers ``stand_in`` (a
    :class:`~imgext.sounds.sources.FallbackSource`) gives the object its
    fallback sound instead, with a note.

    Parameters
    ----------
    budget : Budget, optional
        Bounds the downloads (made current in every worker): at its end the
        render goes on with what it has; cancelling it stops the fetch at once.
        Default: :func:`~imgext.budget.current_budget`, else none.
    tick_s : float
        Interval of the progress reports while downloads run, in seconds
        (``progress`` then says how many bytes have arrived).

    Raises
    ------
    CancelledError
        When ``budget`` is cancelled.

    Returns
    -------
    tracks : Tracks
        Only objects that ended with a usable sound.
    assignments : list of Assignment
        Updated (replacements, or no sound with the reason).
    fetched : dict
        Object index -> :class:`Fetched` (the source bytes, for the export).
    """
    budget = budget or current_budget() or Budget()
    assignments = list(assignments)
    fetched: dict[int, Fetched] = {}
    failed: set[str] = set()
    notes: list[str] = []
    pending = [a for a in assignments if a.candidate is not None]
    total = max(1, len(pending))
    finished = 0
    # A source may bound its own concurrency: the synthesiser is CPU-bound, so more threads than cores
    # only add memory (each holds a scene-length float64 working set), while downloads gain from more.
    limit = getattr(source, "max_concurrency", max_workers)
    limit = limit(settings.duration_s) if callable(limit) else limit
    workers = max(1, min(max_workers, int(limit or max_workers)))
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="imgext-fetch")
    try:
        for attempt in range(max_attempts):
            if not pending:
                break
            retry: list[Assignment] = []
            futures = {pool.submit(_fetch_in_scope, budget, a, source, settings): a for a in pending}
            waiting = set(futures)
            while waiting:
                done_now, waiting = concurrent.futures.wait(waiting, timeout=tick_s,
                                                            return_when=concurrent.futures.FIRST_COMPLETED)
                for fut in done_now:
                    a = futures[fut]
                    try:
                        fetched[a.object_index] = fut.result()
                    except CancelledError:
                        raise
                    except (SourceUnavailableError, AuthError, RateLimitedError) as exc:
                        # Another candidate from the same source would fail the same way.
                        assignments[a.object_index] = replace(a, choice=None, reason=f"no sound for {a.query!r}: {exc}", error=exc)
                        finished += 1
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
                            finished += 1
                        continue
                    finished += 1
                    progress("sounds", min(1.0, finished / total), f"fetched {a.candidate.name}")
                if not waiting:
                    break
                if budget.cancelled:
                    budget.check("downloading sounds")
                if time.monotonic() > budget.deadline + _GRACE_S:  # a source that ignores the budget
                    for fut in waiting:
                        a = futures[fut]
                        exc = SourceTimeoutError(f"{budget.what} ran out while downloading {a.candidate.name!r}")
                        assignments[a.object_index] = replace(a, choice=None, reason=f"no sound for {a.query!r}: {exc}",
                                                              error=exc)
                    retry = []
                    break
                received, partial, _ = budget.transfers()
                progress("sounds", min(1.0, (finished + partial) / total),
                         f"downloading {len(waiting)} of {total} sounds, {_size(received)} received")
            pending = retry
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    futures = done_now = waiting = fut = None  # the futures hold their results: let the fetched tracks go when stacked
    _stand_ins(objects, assignments, fetched, source, settings=settings, notes=notes)
    # Each fetched track becomes a view of its row in the stacked audio, so the scene is held once, not twice
    # (8 x 600 s: 850 MB saved, also while stacking); re-assembling from these views still works.
    tracks = assemble_tracks(objects, fetched, settings=settings, notes=notes, views=True)
    return tracks, assignments, fetched


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.1f} kB"


def _stand_ins(objects: Sequence[SceneObject], assignments: list[Assignment], fetched: dict[int, Fetched],
               source: SoundSource, *, settings: MixSettings, notes: list[str]) -> None:
    """Objects whose sound stalled get the fallback's sound, when the source has one (in place).

    A fallback that takes over on any error (``on_error``) also stands in for a download the source refused.
    """
    stand_in = getattr(source, "stand_in", None)
    if stand_in is None:
        return
    for i, a in enumerate(assignments):
        failed = isinstance(a.error, SourceTimeoutError) or (
            getattr(source, "on_error", False) and isinstance(a.error, (SourceUnavailableError, AuthError, RateLimitedError)))
        if a.candidate is not None or not failed or i >= len(objects):
            continue
        obj = objects[i]
        try:
            role = getattr(getattr(obj, "role", None), "value", getattr(obj, "role", None))
            ranked = rank_candidates(stand_in(a.query, n=1, synth_kind=obj.synth, role=role), a.query, label=obj.label,
                                     synonyms=obj.synonyms, role=role, duration_s=settings.duration_s)
            if not ranked:
                continue
            new = replace(a, choice=ranked[0], reason=f"{ranked[0].reason}; a stand-in because {a.error}",
                          ranked=tuple(ranked), error=None)
            fetched[i] = _spilled_if_long(fetch_sound(new, source, settings=settings), settings)
        except ImgExtError:
            continue
        assignments[i] = new
        notes.append(f"{a.query!r} got a stand-in sound ({ranked[0].candidate.name}) because {a.error}")

"""The Mixer: one track set mixed under changing settings, the engine's expensive steps cached."""

from __future__ import annotations

import functools
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

import numpy as np

from imgext.audio.buffers import BufferPool
from imgext.audio.spill import release, spill, spilled_array
from imgext.mix.render import Mix, panned_sum, render_mix
from imgext.mix.space import (
    AIR_ABSORPTION_FROM_M,
    SPILL_CHUNK,
    Spatial,
    apply_air_absorption,
    level_gains_db,
    resolve_room,
    spatialise,
)
from imgext.options import DEFAULT_MIN_CUT_DB, LONG_SCENE_S, MixSettings

_blas_lock = threading.Lock()
_blas_state: dict = {"users": 0, "limiter": None, "controller": None, "pinned": None}


def pin_one_blas_thread() -> None:
    """One BLAS thread for the rest of the process: call it once in a program that mixes on several threads.

    :func:`single_blas_thread` gives the original limits back when its last user
    leaves, so in a server rendering several sessions at once the thread count
    switched while another thread's products ran, and those came out different in
    the last bits: two of four concurrent renders of the load bench differed from
    the same renders made one at a time (knife-edge EQ decisions can follow from
    such bits).  Pinned, the count never changes and :func:`single_blas_thread`
    does nothing.  Idempotent.  OpenBLAS ignores a count set from another thread
    once the main thread has set one (:func:`single_blas_thread` on the main
    thread does): the pin is then not taken, with a ``RuntimeWarning``, and the
    per-call limit stays.
    """
    with _blas_lock:
        if _blas_state["pinned"] is None:
            from threadpoolctl import threadpool_info, threadpool_limits

            pin = threadpool_limits(limits=1, user_api="blas")  # kept: never restored
            counts = {int(i["num_threads"]) for i in threadpool_info() if i.get("user_api") == "blas"}
            if counts - {1}:
                # OpenBLAS ignores a count set from this thread once the main thread has set one: say so,
                # and keep limiting per call rather than trust a count that did not change.
                warnings.warn(f"one BLAS thread could not be pinned from this thread (BLAS thread counts {sorted(counts)}); "
                              "pin it from the main thread, or set OPENBLAS_NUM_THREADS=1", RuntimeWarning, stacklevel=2)
                return
            _blas_state["pinned"] = pin


@contextmanager
def single_blas_thread() -> Iterator[None]:
    """Run the enclosed work with one BLAS thread (OpenBLAS, MKL ...), whatever the environment asks for.

    The engine's matrix products are small: a second BLAS thread only busy-waits
    (measured: 2-5x the CPU for the same mix), and a multi-threaded BLAS may sum
    in another order, so the last bit of a product -- and with it a knife-edge
    EQ decision or the master gain -- would depend on ``OPENBLAS_NUM_THREADS``.
    With one thread the same inputs give the same bytes on every machine setting.

    Reference-counted across threads: the limit holds while any thread is inside
    and the original limits come back when the last one leaves.
    """
    if _blas_state["pinned"] is not None:  # one thread for good (pin_one_blas_thread): nothing to switch
        yield
        return
    with _blas_lock:
        if _blas_state["users"] == 0:
            if _blas_state["controller"] is None:
                from threadpoolctl import ThreadpoolController

                _blas_state["controller"] = ThreadpoolController()
            _blas_state["limiter"] = _blas_state["controller"].limit(limits=1, user_api="blas")
        _blas_state["users"] += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_state["users"] -= 1
            if _blas_state["users"] == 0:
                if _blas_state["pinned"] is None:  # pinned meanwhile: the count stays at one
                    _blas_state["limiter"].restore_original_limits()
                _blas_state["limiter"] = None


def search_budget(n_tracks: int) -> dict:
    """Differential-evolution settings that keep the optimiser's cost about flat in the number of tracks.

    One cost evaluation grows as ``n_tracks**2`` (every masker against every
    maskee) and the search has about ``2 n_tracks`` dimensions, so at the
    defaults (population 6 x dims, 40 generations, 1 s frames) 32 tracks took
    ~10 s.  Beyond 8 tracks the population, the generations and the time
    resolution shrink together (32 tracks: population 2 x dims, 10 generations,
    4 s frames: ~45x fewer operations); the result is still never worse for the
    most important track than the EQ alone (:func:`~imgext.engine.optimise.optimise_mix`).

    Returns
    -------
    dict
        ``popsize``, ``maxiter`` and ``pool_s`` for :func:`~imgext.engine.optimise.optimise_mix`.
    """
    scale = max(1.0, n_tracks / 8.0)
    return {"popsize": max(2, round(6 / scale)), "maxiter": max(10, round(40 / scale)), "pool_s": 1.0 * scale}


def _one_blas_thread(method):
    """Decorate a method so that it runs inside :func:`single_blas_thread`."""

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        with single_blas_thread():
            return method(*args, **kwargs)

    return wrapper


@dataclass(frozen=True)
class MixOutcome:
    """A rendered mix with its analysis.

    Attributes
    ----------
    mix : Mix
    processed : np.ndarray [shape=(n_tracks, n_samples)]
        Mono tracks as they enter the mix: after EQ and air absorption (before pan and gain).
    gains_db : np.ndarray [shape=(n_tracks,)]
        Final per-track gains (importance gain + optimiser offset).
    requested_gains_db : np.ndarray [shape=(n_tracks,)]
        Gains from importance and attenuation alone.
    filters : list of list
        EQ filters per track (:class:`imgext.eq.EqFilter`).
    masking_before, masking_after : MaskingReport or None
    optimisation : OptimisationResult or None
    timings_s : dict
    reverb_bus : np.ndarray [shape=(2, n_samples)] or None
        The shared reverb bus at unit master gain, before the limiter (for the headphone mix).
    ducking : DuckPlan or None
        The time-aware processing (:class:`imgext.engine.duck.DuckPlan`): per track and band the gain
        over time; ``frequency_response_db()`` and ``gain_lane_db()`` give the curves to draw.
    row_keys : tuple or None
        One hashable key per row of ``processed``: rows with the same key hold the same samples (a
        track the processing left alone keeps its key from one render to the next, and shares it with
        the unprocessed "before" of an A/B), so a consumer (the app's stems player) need not read the
        samples again to know. Keys are unique to the :class:`Mixer` that made them.
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
    reverb_bus: np.ndarray | None = None
    ducking: object | None = None
    row_keys: tuple | None = None

    @property
    def core_smr_before_db(self) -> np.ndarray | None:
        """Each track's core signal-to-mask ratio in the dry mix, dB (:func:`imgext.masking.model.core_smr`)."""
        return None if self.masking_before is None else self.masking_before.core_smr_db

    @property
    def core_smr_after_db(self) -> np.ndarray | None:
        """The same after processing, on the dry mix's core bands, dB."""
        return None if self.masking_after is None else self.masking_after.core_smr_db

    def eq_curves_db(self, bands) -> dict[str, np.ndarray]:
        """Per-track frequency response to draw, (n_tracks, n_bands) dB on ``bands.band_centres_hz``.

        ``static``: what is applied all the time (static EQ filters, or the duck's always-on part);
        ``deepest``: the deepest the processing goes at any moment (equal to ``static`` for static EQ).
        """
        if self.ducking is not None:
            return self.ducking.frequency_response_db()
        from imgext.engine.eq import eq_response_db

        h = eq_response_db(self.filters, bands) if self.filters else np.zeros((0, bands.n_bands))
        return {"static": h, "deepest": h}


class ProcessedRows:
    """Processed tracks read one row at a time, the same samples as the array they stand for.

    ``rows[k]`` is track ``k`` after its EQ or duck and its air absorption (float32, a fresh copy:
    a long scene's rows are read back from their temporary file, :meth:`Mixer._long_rows`);
    ``np.asarray(rows)`` makes them all.  Used for long scenes (:data:`LONG_SCENE_S`): the
    export reads one stem at a time, so only one row is held.
    """

    def __init__(self, make_row, n_tracks: int, n_samples: int) -> None:
        self._make_row = make_row
        self.shape = (int(n_tracks), int(n_samples))
        self.dtype = np.dtype(np.float32)
        self.ndim = 2
        self.nbytes = self.shape[0] * self.shape[1] * 4

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, k):
        if isinstance(k, (int, np.integer)):
            if not -self.shape[0] <= int(k) < self.shape[0]:
                raise IndexError(f"track {k} of {self.shape[0]}")
            return self._make_row(int(k) % self.shape[0])
        return np.asarray(self)[k]

    def __iter__(self):
        return (self[k] for k in range(self.shape[0]))

    def __array__(self, dtype=None, copy=None):
        out = np.empty(self.shape, np.float32)
        for k in range(self.shape[0]):
            out[k] = self._make_row(k)
        return out if dtype is None else out.astype(dtype, copy=False)


CACHED_RENDERS = 2
DUCK_DIFFERENCES_MAX_BYTES = 192 << 20
"""Most bytes a :class:`Mixer` keeps of its duck's full-strength differences (float32, one row per ducked track:
29 ducked tracks of 30 s at 44.1 kHz take 153 MB). With them an EQ-strength move blends instead of filtering
(:func:`imgext.engine.duck.blend`, the same bits); a design that needs more is filtered on every move."""
"""Settings whose processing and reverb a :class:`Mixer` keeps: the Mix page renders two per run (the
processed mix and the unprocessed "before" of its A/B), which a one-entry cache would evict in turn."""


def _same_audio(a: np.ndarray, b: np.ndarray) -> bool:
    """Same samples (by content: the caller may have re-stacked the same sounds)."""
    return a is b or (a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a, b))


class Mixer:
    """Mixes one set of tracks under changing settings, caching the expensive analysis.

    The masking analysis (STFT and Bark bands) is computed once per track set;
    a new attenuation, EQ strength or loudness target only redesigns the EQ,
    refilters and re-sums.  All of it runs with one BLAS thread
    (:func:`single_blas_thread`), so the result does not depend on the BLAS
    thread count.

    Parameters
    ----------
    tracks : Tracks
    reuse : Mixer, optional
        An earlier Mixer: its analysis and EQ designs serve this one when the audio is the same.
    interactive : bool
        Sliders will move (see :attr:`interactive`).
    buffers : BufferPool, optional
        Where the processed tracks and the duck's differences are written (default: a pool of its own, or
        ``reuse``'s for the same audio array). A session passes one pool to all its Mixers, so a new
        arrangement of the sounds writes into the memory an earlier render let go instead of new memory
        faulted in (29 tracks x 30 s: ~290 MB a re-arrangement, 0.25 s of kernel time).
    """

    def __init__(self, tracks, *, reuse: Mixer | None = None, interactive: bool = False,
                 buffers: BufferPool | None = None) -> None:
        self.tracks = tracks
        self.interactive = bool(interactive)
        """Sliders will move: the duck's spectra and its first design's differences are kept from the first render."""
        self._bands = None
        self._analysis_s = 0.0
        self._processed: list = []  # (key, result, its "after" reports by measure_after) of the last CACHED_RENDERS
        # settings, most recent last
        self._spatial: list = []  # (key, result, processed) likewise
        self._rendered: list = []  # ((settings, measure_after), MixOutcome) likewise: treat outcomes as read-only
        self._designs: dict = {}  # full-strength EQ designs by (gains, importance, max cut), most recent last
        self._lock = threading.Lock()  # guards _designs: the app's ZIP download copies it from another thread
        self._token = object()  # makes this Mixer's row keys (MixOutcome.row_keys) its own
        self._duck_spectra = None  # the duck render's spectra of these tracks (engine.duck.SpectrumCache)
        self._duck_renders = 0
        self._duck_designs: list = []  # the design keys of the last duck renders (a second strength keeps differences)
        self._duck_differences = None  # (design key, {track: full duck - dry}, the full plan) of the last design
        self._blend_rows: dict = {}  # (track, kind, distance) -> the dry or wet row as the mix has it (air included)
        self._before: list = []  # (gains, importance) -> the dry mix's masking report, the last CACHED_RENDERS
        # the processed tracks' and differences' memory, reused once let go
        self._buffers = buffers if buffers is not None else BufferPool(max_blocks=4)
        if reuse is not None and reuse._bands is not None and _same_audio(reuse.tracks.audio, tracks.audio):
            self._bands, self._analysis_s = reuse._bands, reuse._analysis_s  # same audio: keep the analysis
            self._before = reuse._before  # (the dry mix's reports of these bands: a list replaced, never changed)
            with reuse._lock:
                self._designs.update(reuse._designs)  # and the EQ designs (a copy: each Mixer owns its cache)
            if reuse.tracks.audio is tracks.audio:
                # The same array (new levels or pans: an attenuation move retunes the ambience's volume, and
                # makes a new Mixer): the duck's spectra of it and the memory of the processed tracks serve
                # this Mixer too (both safe between threads). (An interactive Mixer's first design keeps its
                # differences, so after a level move the EQ strength is heard at once again.)
                self._duck_spectra = reuse._duck_spectra
                if buffers is None:
                    self._buffers = reuse._buffers
                # and the dry rows of its blend parts (the track, or it through the air at a distance: the same
                # samples for the same array and distance), the same objects, so the stems player's memo of
                # their resampled, hashed signals still knows them (29 tracks: ~0.2 CPU-s an attenuation move)
                self._blend_rows = {key: row for key, row in reuse._blend_rows.items() if key[1] == "dry"}

    def without_renders(self) -> Mixer:
        """A Mixer of the same tracks with this one's analysis, EQ designs and memory, and none of its renders.

        For a function that renders later (the app's deferred download): holding it keeps the
        cached analysis at hand without keeping this Mixer's rendered tracks (~150 MB at 29 tracks
        of 30 s) alive after the session has moved on.
        """
        return Mixer(self.tracks, reuse=self, interactive=self.interactive, buffers=self._buffers)

    @_one_blas_thread
    def bands(self):
        """Cached unit-gain Bark-band energies of the dry tracks."""
        if self._bands is None and self.tracks.n_tracks > 0:
            from imgext.masking.analysis import band_energies

            t0 = time.perf_counter()
            self._bands = band_energies(self.tracks.audio, self.tracks.sample_rate)
            self._analysis_s = time.perf_counter() - t0
        return self._bands

    @_one_blas_thread
    def _process(self, settings: MixSettings, *, filtered: bool = True):
        """EQ design, optional optimisation and filtering: cached for the last settings that shape them (two).

        ``filtered=False`` (a long scene) designs only: ``processed`` is then None and nothing is cached
        (:meth:`_long_rows` makes the rows one at a time).
        """
        from imgext.engine.duck import SpectrumCache, design_ducking
        from imgext.engine.eq import apply_eq, band_response_db, design_eq, filters_loudness_change_lu
        from imgext.engine.optimise import optimise_mix, scale_filters
        from imgext.masking.analysis import masking_report

        tracks = self.tracks
        requested = level_gains_db(tracks.gains_db(settings.attenuation_db), tracks.distances_m(), distance=settings.distance)
        key = (tuple(requested), tuple(tracks.importance), settings.eq_strength, settings.max_cut_db,
               settings.optimise, settings.seed, settings.time_aware)
        for entry in self._processed if filtered else ():
            if entry[0] == key:
                return entry[1]
        design_key = (tuple(requested), tuple(tracks.importance), settings.max_cut_db, settings.time_aware)
        timings: dict[str, float] = {}
        gains = requested.copy()
        filters: list = [[] for _ in range(tracks.n_tracks)]
        before = opt = plan = None
        processed = tracks.audio
        if tracks.n_tracks > 0:
            bands = self.bands()
            timings["analysis"] = self._analysis_s
            t0 = time.perf_counter()
            # The dry mix's report depends on the gains and importance alone: an EQ-strength, maximum-cut or
            # time-aware move reuses it (deterministic, so a kept one is the one that would be made).
            before_key = (tuple(gains), tuple(tracks.importance))
            before = next((b for k, b in self._before if k == before_key), None)
            if before is None:
                before = masking_report(bands, gains_db=gains, importance=tracks.importance)
                self._before = [*self._before, (before_key, before)][-CACHED_RENDERS:]
            if settings.eq_strength > 0 and settings.max_cut_db > 0 and tracks.n_tracks > 1:
                # EQ strength scales the depth of the full-strength design, so moving that slider
                # reuses the design and only refilters (the design depends on gains, importance, max cut).
                with self._lock:
                    full = self._designs.pop(design_key, None)
                if full is None:
                    if settings.time_aware:
                        full = design_ducking(bands, gains_db=gains, importance=tracks.importance,
                                              max_cut_db=settings.max_cut_db)
                    else:
                        full = design_eq(bands, gains_db=gains, importance=tracks.importance, strength=1.0,
                                         max_cut_db=settings.max_cut_db)
                with self._lock:
                    self._designs[design_key] = full  # designs are deterministic: a slider moved back reuses one
                    while len(self._designs) > 32:
                        self._designs.pop(next(iter(self._designs)))
                if settings.time_aware:
                    plan = full.scaled(settings.eq_strength)
                else:
                    filters = scale_filters(full, np.full(tracks.n_tracks, settings.eq_strength))
                    filters = [[f for f in track if f.gain_db <= -DEFAULT_MIN_CUT_DB] for track in filters]
            timings["eq"] = time.perf_counter() - t0
            if settings.optimise and tracks.n_tracks > 1 and not settings.time_aware:
                t0 = time.perf_counter()
                eq_db = np.stack([band_response_db(f, bands) for f in filters])
                opt = optimise_mix(bands, gains_db=gains, importance=tracks.importance, eq_db=eq_db, seed=settings.seed,
                                   eq_loudness_lu=filters_loudness_change_lu(filters, bands),
                                   **search_budget(tracks.n_tracks))
                gains = gains + opt.gain_offsets_db
                filters = scale_filters(filters, opt.eq_depth, min_cut_db=DEFAULT_MIN_CUT_DB)  # drop filters under 0.5 dB
                timings["optimise"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            if not filtered:
                processed = None
            elif plan is not None and plan.active.any():
                self._duck_renders += 1
                if self._duck_spectra is None and (self._duck_renders > 1 or self.interactive):
                    # Rendered again (a slider move, not a one-off render): keep the spectra from now on, so
                    # the next moves take no forward STFT (bounded: SpectrumCache.max_bytes).
                    self._duck_spectra = SpectrumCache()
                processed = self._duck(plan, design_key)
            elif any(filters):
                processed = apply_eq(tracks.audio, filters, tracks.sample_rate)
            timings["filter"] = time.perf_counter() - t0
        rows = self._row_keys(key, processed, filters, plan)
        result = (requested, gains, filters, processed, before, opt, timings, plan, rows)
        if filtered:
            self._processed = [*self._processed, (key, result, {})][-CACHED_RENDERS:]
        return result

    def _duck(self, plan, design_key: tuple) -> np.ndarray:
        """The tracks through ``plan``: blended from the kept differences of its full duck, else filtered.

        The same bits either way (:func:`imgext.engine.duck.blend`). The differences are kept (while
        they fit :data:`DUCK_DIFFERENCES_MAX_BYTES`) when a design is rendered at a second strength (an
        EQ-strength move: more are likely to follow), and for an interactive Mixer's first design; a new
        design (a level move redesigns the duck) is filtered without keeping them: writing them costs as
        much as the filtering itself, for moves that may not come.
        """
        from imgext.engine.duck import apply_ducking, blend

        audio = self.tracks.audio
        kept = self._duck_differences
        if kept is not None and kept[0] == design_key:
            active = plan.active
            out = self._buffers.empty(audio.shape)
            for k in range(audio.shape[0]):
                if active[k]:
                    blend(audio[k], kept[1][k], plan.strength, out=out[k])
                else:
                    out[k] = audio[k]
            return out
        active = np.flatnonzero(plan.active)
        again = design_key in self._duck_designs
        self._duck_designs = [*(k for k in self._duck_designs if k != design_key), design_key][-8:]
        first = self.interactive and self._duck_renders == 1
        keep = (again or first) and active.size * audio.shape[1] * 4 <= DUCK_DIFFERENCES_MAX_BYTES
        # A new design: the last one's differences (and its wet rows) are let go before the new ones are written,
        # so their memory is reused rather than new memory mapped beside it.
        self._duck_differences = None
        self._blend_rows = {key: row for key, row in self._blend_rows.items() if key[1] == "dry"}
        differences: dict | None = None
        if keep:  # rows of one block (apply_ducking writes every sample), not ~5 MB heap blocks faulted in one by one
            block = self._buffers.empty((active.size, audio.shape[1]))
            differences = {int(k): block[j] for j, k in enumerate(active)}
        out = apply_ducking(audio, plan, self.tracks.sample_rate, cache=self._duck_spectra, differences=differences,
                            out=self._buffers.empty(audio.shape))
        if differences is not None:
            self._duck_differences = (design_key, differences, plan.at_full_strength)
        return out

    def blend_parts(self, outcome: MixOutcome, settings: MixSettings) -> tuple[float, dict] | None:
        """The ducked tracks of ``outcome`` as dry and wet rows: ``(strength, {track: (dry, wet)})``, or None.

        Row ``k`` of ``outcome.processed`` is ``dry + strength * wet`` up to float rounding (each part
        through the track's air absorption, which is linear), so a player holding both hears any EQ
        strength of this design as a level.  None when ``outcome`` is not a blend of the duck this
        Mixer keeps (static EQ, nothing ducked, a long scene, or its differences not kept).  The rows
        are the same arrays from one call to the next (the wet ones while the design stays).
        """
        plan, kept = outcome.ducking, self._duck_differences
        if plan is None or kept is None or plan.at_full_strength is not kept[2] or not plan.active.any():
            return None
        d = np.asarray(self.tracks.distances_m(), dtype=np.float64)
        sr = self.tracks.sample_rate
        parts = {}
        for k, wet in kept[1].items():
            far = settings.distance and d[k] > AIR_ABSORPTION_FROM_M
            dist = round(float(d[k]), 1) if far else None
            for kind, row in (("dry", self.tracks.audio[k]), ("wet", wet)):
                key = (k, kind, dist)
                if key not in self._blend_rows:
                    self._blend_rows[key] = (np.asarray(apply_air_absorption(row, float(d[k]), sr), dtype=np.float32)
                                             if far else row)
            parts[k] = (self._blend_rows[(k, "dry", dist)], self._blend_rows[(k, "wet", dist)])
        return float(plan.strength), parts

    def _row_keys(self, key: tuple, processed: np.ndarray, filters: list, plan) -> tuple:
        """A key per processed row: the dry track's (the row is the track itself) or this processing's."""
        n = self.tracks.n_tracks
        if processed is self.tracks.audio or (processed is None and not (plan is not None and plan.active.any())
                                              and not any(filters)):
            changed = np.zeros(n, dtype=bool)
        elif plan is not None and plan.active.any():
            changed = np.asarray(plan.active, dtype=bool)  # apply_ducking copies the other rows unchanged
        else:
            changed = np.array([bool(f) for f in filters] + [False] * (n - len(filters)))[:n]  # apply_eq likewise
        return tuple((self._token, "processed", key, k) if changed[k] else (self._token, "dry", k) for k in range(n))

    def _absorbed(self, settings: MixSettings, processed: np.ndarray, rows: tuple | None):
        """The tracks after air absorption and their row keys; rows met in a cached render are copied, not filtered.

        Returns ``(None, rows)`` when nothing is far enough to be absorbed (or no keys are known:
        :func:`~imgext.mix.space.spatialise` then absorbs every track itself).
        """
        d = np.asarray(self.tracks.distances_m(), dtype=np.float64)
        if rows is None or not settings.distance or not np.any(d > AIR_ABSORPTION_FROM_M):
            return None, rows
        known = {}
        for entry in self._spatial:
            if entry[3] is not None:
                for k, row_key in enumerate(entry[3]):
                    known.setdefault(row_key, (entry[1].tracks, k))
        out, keys = [], []
        for k in range(processed.shape[0]):
            if d[k] <= AIR_ABSORPTION_FROM_M:
                out.append(np.asarray(processed[k], dtype=np.float32))
                keys.append(rows[k])
                continue
            row_key = (rows[k], "air", round(float(d[k]), 1))  # apply_air_absorption's FIR is per 0.1 m
            hit = known.get(row_key)
            out.append(hit[0][hit[1]] if hit is not None else
                       apply_air_absorption(processed[k], float(d[k]), self.tracks.sample_rate))
            keys.append(row_key)
        return np.stack(out, out=self._buffers.empty((len(out), processed.shape[1]))), tuple(keys)

    def spatial(self, settings: MixSettings, processed: np.ndarray, gains_db, rows: tuple | None = None) -> Spatial:
        """Air absorption and the reverb bus for ``processed`` at ``gains_db`` (cached for the last two inputs).

        ``rows`` (one key per row, as :attr:`MixOutcome.row_keys`) lets a row met in a cached render
        keep its air absorption instead of being filtered again.
        """
        return self._spatial_rows(settings, processed, gains_db, rows)[0]

    @_one_blas_thread
    def _spatial_rows(self, settings: MixSettings, processed: np.ndarray, gains_db, rows: tuple | None):
        """:meth:`spatial` and the row keys of its tracks."""
        tracks = self.tracks
        chosen = next((n.split(": ", 1)[1] for n in tracks.names if n.startswith("ambience: ")), None)
        room = resolve_room(settings.room, chosen)  # the reverb's character follows the scene's ambience
        key = (id(processed), tuple(np.round(gains_db, 9)), settings.distance, settings.reverb_amount, room,
               settings.seed, tuple(tracks.distances_m()))
        for cached in self._spatial:
            if cached[0] == key and cached[2] is processed:
                return cached[1], cached[3]
        absorbed, keys = self._absorbed(settings, processed, rows)
        result = spatialise(processed, gains_db, tracks.distances_m(), distance=settings.distance,
                            reverb_amount=settings.reverb_amount, room=room, sample_rate=tracks.sample_rate,
                            seed=settings.seed, absorbed=absorbed)
        self._spatial = [*self._spatial, (key, result, processed, keys)][-CACHED_RENDERS:]
        return result, keys

    def _row_maker(self, settings: MixSettings, filters: list, plan):
        """A function making processed row ``k`` as :meth:`_process` and :meth:`spatial` make it (for long scenes)."""
        from imgext.engine.duck import apply_ducking
        from imgext.engine.eq import apply_eq

        tracks = self.tracks
        audio, sr = tracks.audio, tracks.sample_rate
        d = np.asarray(tracks.distances_m(), dtype=np.float64)
        ducked = plan is not None and bool(plan.active.any())
        active = plan.active if ducked else None

        def make(k: int, air: bool = True) -> np.ndarray:
            row = audio[k]
            if ducked:
                if active[k]:  # every row of apply_ducking is its own: one row's plan gives the same samples
                    row = apply_ducking(audio[k : k + 1], plan.row(k), sr)[0]
            elif any(filters) and k < len(filters) and filters[k]:
                row = apply_eq(audio[k : k + 1], [filters[k]], sr)[0]
            if air and settings.distance and d[k] > AIR_ABSORPTION_FROM_M:
                row = apply_air_absorption(row, float(d[k]), sr)
            return np.asarray(row, dtype=np.float32)

        return make

    def _sides(self, filters) -> dict:
        """The area tracks' companions through their track's EQ: track index -> (width, companion)."""
        from imgext.engine.eq import apply_eq

        out = {}
        for k, (width, side) in self.tracks.sides.items():
            f = filters[k] if k < len(filters) else []
            out[k] = (width, apply_eq(side[None, :], [f], self.tracks.sample_rate)[0] if f else side)
        return out

    @_one_blas_thread
    def render(self, settings: MixSettings, *, measure_after: bool = True) -> MixOutcome:
        """Render the mix for ``settings`` (with one BLAS thread, the sum and the meters too).

        Parameters
        ----------
        measure_after : bool
            Re-analyse the processed audio for the "after" masking report (exact);
            when False it is estimated in the band domain from the cached analysis
            (faster, for interactive use).

        Notes
        -----
        The analysis is computed once per track set; EQ and filtering are reused
        while only the loudness target or peak ceiling changes.  The outcomes of the
        last two settings are kept and returned again as they are (read-only).
        """
        from imgext.engine.duck import ducked_bands
        from imgext.engine.eq import band_response_db
        from imgext.masking.analysis import band_energies, masking_report

        # The headphone (binaural) mix is made from the outcome (imgext.mix.binaural.headphone_mix): the toggle
        # does not change the stereo render, so it shares the render's cache entry.
        key = (replace(settings, binaural=False), bool(measure_after))
        for entry in self._rendered:
            if entry[0] == key:
                return entry[1]  # the same settings again (a rerun that changed nothing): the same outcome
        tracks = self.tracks
        if tracks.n_tracks > 0 and tracks.audio.shape[1] > LONG_SCENE_S * tracks.sample_rate:
            outcome = self._render_long(settings, measure_after)
            self._rendered = [*self._rendered, (key, outcome)][-CACHED_RENDERS:]
            return outcome
        result = self._process(settings)
        requested, gains, filters, processed, before, opt, stage_timings, plan, rows = result
        timings = dict(stage_timings)
        after = None
        t0 = time.perf_counter()
        spatial, row_keys = self._spatial_rows(settings, processed, gains, rows)
        timings["space"] = time.perf_counter() - t0
        def analyse_after():
            core = before.core if before is not None else None
            if measure_after and processed is not tracks.audio:
                return masking_report(band_energies(processed, tracks.sample_rate), gains_db=gains,
                                      importance=tracks.importance, core=core)
            if plan is not None:
                return masking_report(ducked_bands(self.bands(), plan), gains_db=gains, importance=tracks.importance,
                                      core=core)
            eq_db = np.stack([band_response_db(f, self.bands()) for f in filters])
            return masking_report(self.bands(), gains_db=gains, importance=tracks.importance, eq_db=eq_db, core=core)

        sides = self._sides(filters)
        out_tracks = spatial.tracks
        t0 = time.perf_counter()
        mix = render_mix(
            out_tracks, pans=tracks.pans, gains_db=gains, sample_rate=tracks.sample_rate,
            loudness_lufs=settings.loudness_lufs, peak_dbfs=settings.peak_dbfs, reverb=spatial.reverb, sides=sides,
        )
        timings["render"] = time.perf_counter() - t0
        reverb_bus = spatial.reverb
        if tracks.n_tracks > 0:
            # The "after" report depends on the processing alone (not on the reverb, the room or the loudness
            # target): a move of those reuses the report, the same object, so the page's figures of it stay.
            t0 = time.perf_counter()
            kept = next((entry[2] for entry in self._processed if entry[1] is result), {})  # ({}: not cached)
            after = kept.get(bool(measure_after))
            if after is None:
                after = kept[bool(measure_after)] = analyse_after()
            timings["analysis_after"] = time.perf_counter() - t0
        outcome = MixOutcome(mix, out_tracks, gains, requested, filters, before, after, opt, timings,
                             reverb_bus=reverb_bus, ducking=plan, row_keys=row_keys)
        self._rendered = [*self._rendered, (key, outcome)][-CACHED_RENDERS:]
        return outcome

    @_one_blas_thread
    def _long_rows(self, settings: MixSettings, filters: list, plan, gains, rows: tuple):
        """A long scene's processed rows, made one at a time into temporary files, and its reverb.

        Returns ``(processed, absorbed, spatial, row_keys)``: the rows after EQ or duck (for the
        "after" analysis), the same after air absorption (what is summed; ``processed`` itself when
        nothing is far), both spilled (:mod:`imgext.audio.spill`, or the dry tracks themselves when
        nothing changes them); the reverb and the row keys as :meth:`spatial` makes them.
        """
        tracks = self.tracks
        audio, sr = tracks.audio, tracks.sample_rate
        d = np.asarray(tracks.distances_m(), dtype=np.float64)
        air = np.asarray(bool(settings.distance) & (d > AIR_ABSORPTION_FROM_M), dtype=bool)
        ducked = plan is not None and bool(plan.active.any())
        changed = np.asarray(plan.active, dtype=bool) if ducked else np.array(
            [k < len(filters) and bool(filters[k]) for k in range(tracks.n_tracks)], dtype=bool)
        if not changed.any() and not air.any():
            processed = absorbed = audio
        else:
            make = self._row_maker(settings, filters, plan)
            processed = spilled_array(audio.shape) if changed.any() else audio
            absorbed = spilled_array(audio.shape) if air.any() else processed
            for k in range(tracks.n_tracks):
                row = make(k, air=False) if changed[k] else audio[k]
                if processed is not audio:
                    processed[k] = row
                if air[k]:
                    absorbed[k] = apply_air_absorption(row, float(d[k]), sr)
                elif absorbed is not processed:
                    absorbed[k] = row
                del row
                release(processed)
                release(absorbed)
                release(audio)
        chosen = next((n.split(": ", 1)[1] for n in tracks.names if n.startswith("ambience: ")), None)
        spatial = spatialise(processed, gains, tracks.distances_m(), distance=settings.distance,
                             reverb_amount=settings.reverb_amount, room=resolve_room(settings.room, chosen),
                             sample_rate=sr, seed=settings.seed, absorbed=absorbed)
        row_keys = tuple((rows[k], "air", round(float(d[k]), 1)) if air[k] else rows[k] for k in range(tracks.n_tracks))
        return processed, absorbed, spatial, row_keys

    def _render_long(self, settings: MixSettings, measure_after: bool) -> MixOutcome:
        """:meth:`render` of a scene longer than :data:`LONG_SCENE_S`: the same outcome, bit for bit.

        The dry tracks are spilled (:func:`~imgext.composition.tracks.fetch_tracks`); the processed
        rows are made one at a time into temporary files, analysed and summed from there a row or a
        stretch at a time, and :attr:`MixOutcome.processed` reads them back (:class:`ProcessedRows`):
        no copy of the tracks is held in memory, and nothing of signal length is cached by the Mixer.
        """
        from imgext.engine.duck import ducked_bands
        from imgext.engine.eq import band_response_db
        from imgext.masking.analysis import band_energies, masking_report

        tracks = self.tracks
        requested, gains, filters, _, before, opt, stage_timings, plan, rows = self._process(settings, filtered=False)
        release(tracks.audio)
        timings = dict(stage_timings)
        t0 = time.perf_counter()
        processed, absorbed, spatial, row_keys = self._long_rows(settings, filters, plan, gains, rows)
        timings["space"] = time.perf_counter() - t0  # the rows' filtering is in here too
        core = before.core if before is not None else None
        t0 = time.perf_counter()
        if measure_after and processed is not tracks.audio:
            after = masking_report(band_energies(processed, tracks.sample_rate), gains_db=gains,
                                   importance=tracks.importance, core=core)
        elif plan is not None:
            after = masking_report(ducked_bands(self.bands(), plan), gains_db=gains, importance=tracks.importance,
                                   core=core)
        else:
            eq_db = np.stack([band_response_db(f, self.bands()) for f in filters])
            after = masking_report(self.bands(), gains_db=gains, importance=tracks.importance, eq_db=eq_db, core=core)
        after_s = time.perf_counter() - t0
        del processed  # (the file goes with it when absorbed is another)
        sides = self._sides(filters)
        t0 = time.perf_counter()
        premixed = panned_sum(absorbed, pans=tracks.pans, gains_db=gains, sides=sides)
        if absorbed is tracks.audio:
            out_tracks = tracks.audio
        else:
            def read(k: int, rows=absorbed) -> np.ndarray:
                row = np.array(rows[k])
                release(rows)
                return row

            out_tracks = ProcessedRows(read, tracks.n_tracks, tracks.audio.shape[1])
        reverb_bus = None
        if spatial.reverb is not None:
            # Added here as render_mix adds it (the same float32 sums, a stretch at a time), then kept in a
            # temporary file for the reverb stem: the limiter runs without it in memory.
            reverb_bus = spill(spatial.reverb)
            for s0 in range(0, reverb_bus.shape[1], SPILL_CHUNK):
                premixed[:, s0: s0 + SPILL_CHUNK] += reverb_bus[:, s0: s0 + SPILL_CHUNK]
                release(reverb_bus)
        spatial = absorbed = None
        mix = render_mix(
            out_tracks, pans=tracks.pans, gains_db=gains, sample_rate=tracks.sample_rate,
            loudness_lufs=settings.loudness_lufs, peak_dbfs=settings.peak_dbfs, sides=sides, premixed=premixed,
        )
        if reverb_bus is not None and mix.peak_dbfs is not None:  # (digital silence keeps no bus, as render_mix)
            mix = replace(mix, reverb_bus=reverb_bus)
        timings["render"] = time.perf_counter() - t0
        timings["analysis_after"] = after_s
        return MixOutcome(mix, out_tracks, gains, requested, filters, before, after, opt, timings,
                          reverb_bus=reverb_bus, ducking=plan, row_keys=row_keys)

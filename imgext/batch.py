"""Many photos: ``python -m imgext batch INPUT --out DIR``, resumable, on local processes or Ray.

Each photo is rendered exactly as ``python -m imgext render`` renders it
(:func:`imgext.pipeline.render_image`), into ``DIR/<id>/`` where the id is the
file's name and the start of its content hash (``bus-3f2a9c01d4e7``).  The
photo's seed derives from the base seed and the id (:func:`derive_seed`), so
``render PHOTO --seed <seed>`` gives the same bytes alone.

``DIR`` also holds

``batch.json``
    The settings fingerprint (every option that changes results, the
    detector weights' hash, the label table, the imgext version).  A run whose
    fingerprint differs is refused unless ``force`` is given.
``manifest.jsonl``
    One JSON line per photo: ``id``, ``path``, ``status`` (``done``,
    ``failed``, ``skipped``), ``error``, ``seconds``, ``loudness_lufs``,
    ``sounds``, ``seed``.  Only the coordinating process writes it, a whole
    line per ``write`` followed by ``fsync``; the latest line of an id wins
    and every run starts by rewriting it compactly (one line per id, a line cut
    short by a kill dropped), so it stays consistent after a crash or Ctrl-C.

A photo counts as done only when its manifest line says so *and* its folder
holds ``scene.json`` (written after the audio) and every file it lists;
anything else is rendered again.  Engines: local worker processes (:func:`run_local`, spawned,
the detector loaded once per process) or Ray actors (:func:`run_ray`, imported
only then).

Freesound at scale: every worker shares the disk cache (``IMGEXT_CACHE_DIR``);
a per-term lock makes the first worker search and the others read its cached
result, so a batch searches each distinct term once and downloads each
preview once.  When Freesound's daily limit is hit, a marker in ``DIR`` puts
every worker in cache-only mode: photos the cache covers finish, the others
are ``skipped`` with the reason and rendered on the next run.
"""

from __future__ import annotations

import contextlib
import csv
import glob
import hashlib
import json
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from imgext.errors import ImgExtError, ParameterError, RateLimitedError

__all__ = [
    "IMAGE_EXTENSIONS",
    "Job",
    "Manifest",
    "Photo",
    "add_batch_parser",
    "collect_inputs",
    "derive_seed",
    "fingerprint",
    "photo_id",
    "plan_photos",
    "prepare_dir",
    "render_one",
    "run_batch",
    "run_batch_args",
    "run_local",
    "run_ray",
]

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"})
"""File name endings a folder INPUT contributes (case-insensitive)."""

LIST_EXTENSIONS = frozenset({".txt", ".lst", ".csv", ".jsonl", ".ndjson"})
"""An INPUT file with one of these endings is a list of photo paths."""

MANIFEST = "manifest.jsonl"
BATCH_FILE = "batch.json"
DAILY_LIMIT_MARKER = ".freesound-daily-limit"
LOCK_DIR = ".locks"


# --------------------------------------------------------------------------------------------- inputs


def collect_inputs(spec: str) -> list[str]:
    """The photo paths an INPUT names, in a stable order.

    Parameters
    ----------
    spec : str
        A folder (searched recursively; image files only, hidden folders
        skipped), a list file (``.txt``/``.lst``: one path a line, ``#``
        comments; ``.csv``: a ``path``/``image``/``file`` column or the first
        column; ``.jsonl``: objects with ``path`` or ``image``, or strings),
        a single image, or a glob (``photos/**/*.jpg``).  Relative paths in a
        list are relative to the list's folder.

    Raises
    ------
    ParameterError
        Nothing matches, or the list cannot be read.
    """
    path = Path(spec).expanduser()
    if path.is_dir():
        found = []
        for root, dirs, files in os.walk(path):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            found += [os.path.join(root, f) for f in sorted(files)
                      if not f.startswith(".") and Path(f).suffix.lower() in IMAGE_EXTENSIONS]
        if not found:
            raise ParameterError(f"no image files ({', '.join(sorted(IMAGE_EXTENSIONS))}) under {spec!r}")
        return found
    if path.is_file() and path.suffix.lower() in LIST_EXTENSIONS:
        paths = _read_list(path)
        if not paths:
            raise ParameterError(f"the list {spec!r} names no photos")
        return paths
    if path.is_file():
        return [str(path)]
    matches = sorted(p for p in glob.glob(os.path.expanduser(spec), recursive=True) if os.path.isfile(p))
    if not matches:
        raise ParameterError(f"INPUT {spec!r} is not a folder, a list or a file, and matches no file as a glob")
    return matches


def _read_list(path: Path) -> list[str]:
    base = path.parent
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ParameterError(f"cannot read the list {str(path)!r}: {exc}") from None
    suffix = path.suffix.lower()
    entries: list[str] = []
    if suffix == ".csv":
        rows = [r for r in csv.reader(text.splitlines()) if r and any(c.strip() for c in r)]
        column = 0
        if rows:
            header = [c.strip().lower() for c in rows[0]]
            named = [k for k, c in enumerate(header) if c in ("path", "image", "file", "filename", "photo")]
            if named:
                column, rows = named[0], rows[1:]
        entries = [r[column].strip() for r in rows if len(r) > column and r[column].strip()]
    elif suffix in (".jsonl", ".ndjson"):
        for n, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except ValueError:
                raise ParameterError(f"{str(path)!r} line {n} is not JSON") from None
            value = item.get("path") or item.get("image") if isinstance(item, dict) else item
            if not isinstance(value, str) or not value.strip():
                raise ParameterError(f"{str(path)!r} line {n} has no \"path\"")
            entries.append(value.strip())
    else:
        entries = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    return [e if os.path.isabs(os.path.expanduser(e)) else str(base / e) for e in map(os.path.expanduser, entries)]


def photo_id(path: str | os.PathLike, data: bytes | None = None) -> str:
    """A stable id: the file's safe stem and the first 12 hex digits of its content's SHA-256.

    The same file under the same name always gets the same id, wherever it
    lies; an unreadable file gets an id from its path (it will fail when rendered).
    """
    from imgext.output.export import safe_filename

    stem = safe_filename(Path(path).stem, max_length=48, fallback="photo")
    if data is None:
        try:
            digest = hashlib.sha256()
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
            return f"{stem}-{digest.hexdigest()[:12]}"
        except OSError:
            return f"{stem}-unreadable-{hashlib.sha256(os.fsencode(path)).hexdigest()[:8]}"
    return f"{stem}-{hashlib.sha256(data).hexdigest()[:12]}"


def derive_seed(base_seed: int, pid: str) -> int:
    """The seed of one photo: 31 bits of SHA-256 over the base seed and the photo id.

    ``render PHOTO --seed derive_seed(seed, id)`` renders the photo exactly as
    the batch did.
    """
    digest = hashlib.sha256(f"imgext-batch:{int(base_seed)}:{pid}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


@dataclass(frozen=True)
class Photo:
    """One photo of a batch: its id, path and derived seed."""

    id: str
    path: str
    seed: int


def plan_photos(paths: Iterable[str], base_seed: int) -> tuple[list[Photo], list[str]]:
    """Photos with ids and seeds, in input order; a second path with an id already seen is left out.

    Returns
    -------
    photos : list of Photo
    duplicates : list of str
        Paths left out because the same file (same name and content) came earlier.
    """
    photos, duplicates, seen = [], [], set()
    for p in paths:
        pid = photo_id(p)
        if pid in seen:
            duplicates.append(p)
            continue
        seen.add(pid)
        photos.append(Photo(pid, str(p), derive_seed(base_seed, pid)))
    return photos, duplicates


# --------------------------------------------------------------------------------------------- manifest


class Manifest:
    """``DIR/manifest.jsonl``: appended a whole line at a time, the latest line of an id wins.

    Parameters
    ----------
    path : path
        The manifest file.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    def load(self) -> dict[str, dict]:
        """Id -> latest record; lines that are not complete JSON objects (cut by a kill) are ignored."""
        records: dict[str, dict] = {}
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return records
        for line in raw.split(b"\n"):
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if isinstance(rec, dict) and isinstance(rec.get("id"), str):
                records.pop(rec["id"], None)  # re-inserted last: the file keeps the order of the latest writes
                records[rec["id"]] = rec
        return records

    def compact(self, records: dict[str, dict] | None = None) -> dict[str, dict]:
        """Rewrite the file with one line per id (atomically: a temporary file renamed over it)."""
        records = self.load() if records is None else records
        tmp = self.path.with_name(f".{self.path.name}.part")
        with open(tmp, "wb") as f:
            f.writelines(_line(rec) for rec in records.values())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        return records

    def append(self, record: dict) -> None:
        """Append one record as one ``write`` of a whole line, then ``fsync``."""
        if self._fd is None:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.write(self._fd, _line(record))
        os.fsync(self._fd)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _line(record: dict) -> bytes:
    return (json.dumps(record, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8")


def is_complete(folder: str | os.PathLike) -> bool:
    """A render folder is complete when its ``scene.json`` (written after the audio) and every file it lists are there."""
    folder = Path(folder)
    try:
        files = json.loads((folder / "scene.json").read_text(encoding="utf-8")).get("files")
    except (OSError, ValueError, AttributeError):
        return False
    return isinstance(files, list) and all(isinstance(f, str) and (folder / f).is_file() for f in files)


# --------------------------------------------------------------------------------------------- job


@dataclass(frozen=True)
class Job:
    """Everything a worker needs to render any photo of the batch (picklable).

    Attributes
    ----------
    out_dir : str
        The batch folder; photo ``p`` goes to ``out_dir/p.id``.
    mix : MixSettings
        Mix settings with the *base* seed (each photo replaces it by its own).
    source_spec : str
        ``--source`` as resolved (never ``None``).
    preset : str or None
    weights : str or None
        Detector weights (``--weights`` or ``IMGEXT_YOLO_WEIGHTS``).
    conf, n_candidates, include_silent
        As for ``render``.
    labels : LabelMap
    settings : Settings
        Environment settings (cache folder, Freesound key and URL).
    stems, write_zip : bool
        As ``render`` without ``--no-stems`` / ``--no-zip``.
    blas_threads : int or None
        BLAS threads of the coordinating process; workers use the same number
        (Ray sets one thread per task otherwise, and the engine's results
        depend on it).
    """

    out_dir: str
    mix: object
    source_spec: str
    preset: str | None
    weights: str | None
    conf: float
    n_candidates: int
    include_silent: bool
    labels: object
    settings: object = field(repr=False)
    stems: bool = True
    write_zip: bool = True
    blas_threads: int | None = None


def _blas_threads() -> int | None:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    counts = [int(i["num_threads"]) for i in threadpool_info() if i.get("user_api") == "blas"]
    return max(counts) if counts else None


def _open_source(job: Job):
    from imgext.sounds.sources import open_source

    kw = {"preset": job.preset} if job.preset else {}
    return open_source(job.source_spec, settings=job.settings, labels=job.labels, **kw)


def _freesound_parts(source) -> list:
    """The :class:`FreesoundSource` objects inside ``source`` (itself, or inside fallbacks)."""
    found, stack = [], [source]
    while stack:
        s = stack.pop()
        if hasattr(s, "client") and hasattr(s.client, "daily_limit_hit"):
            found.append(s)
        stack += [getattr(s, a) for a in ("primary", "secondary") if getattr(s, a, None) is not None]
    return found


def fingerprint(job: Job) -> dict:
    """Every input that changes a photo's result, as a JSON-able dict with its SHA-256 under ``"sha256"``."""
    from imgext import __version__

    weights = job.weights or "yolo26n.pt"
    model = {"weights": os.path.basename(weights)}
    if os.path.isfile(os.path.expanduser(weights)):
        digest = hashlib.sha256()
        with open(os.path.expanduser(weights), "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        model["sha256"] = digest.hexdigest()
    labels = {k: [v.query, v.synth, list(v.synonyms), v.silent] for k, v in sorted(job.labels.items())}
    source = {"spec": job.source_spec, "preset": job.preset}
    try:
        for part in _freesound_parts(_open_source(job)):
            source["freesound_filter"] = [part.filter.to_solr(), part.filter.sort]
            source["freesound_url"] = part.client.base_url
    except ImgExtError:
        pass
    content = {
        "imgext": __version__,
        "mix": job.mix.to_dict(),
        "conf": job.conf,
        "candidates": job.n_candidates,
        "include_silent": job.include_silent,
        "files": {"stems": job.stems, "zip": job.write_zip},
        "source": source,
        "model": model,
        "labels_sha256": hashlib.sha256(json.dumps(labels, sort_keys=True).encode()).hexdigest(),
    }
    content["sha256"] = hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()
    return content


def _differences(old: dict, new: dict, prefix: str = "") -> list[str]:
    out = []
    for key in sorted(set(old) | set(new)):
        if key == "sha256" and not prefix:
            continue
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key} {json.dumps(a)} -> {json.dumps(b)}")
    return out


def prepare_dir(job: Job, *, force: bool = False) -> tuple[Manifest, dict[str, dict], list[str]]:
    """Create or reopen the batch folder; refuse other settings unless ``force``.

    Returns
    -------
    manifest : Manifest
    records : dict
        id -> latest record of earlier runs (empty after ``force``).
    notes : list of str
        What was done (an earlier manifest set aside ...).
    """
    out = Path(job.out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ParameterError(f"cannot create output folder {job.out_dir!r}: {exc.strerror or exc}") from None
    notes: list[str] = []
    new = fingerprint(job)
    manifest = Manifest(out / MANIFEST)
    batch_file = out / BATCH_FILE
    try:
        old = json.loads(batch_file.read_text(encoding="utf-8"))["fingerprint"]
    except FileNotFoundError:
        old = None
    except (OSError, ValueError, KeyError, TypeError):
        old = {"sha256": "unreadable"}
    if old is not None and old.get("sha256") != new["sha256"]:
        diff = _differences(old, new)
        if not force:
            raise ParameterError(
                f"{job.out_dir!r} holds a batch made with other settings ({'; '.join(diff[:6]) or 'unreadable batch.json'}); "
                "use --force to render everything again there with the new settings, or choose another --out"
            )
        if manifest.path.exists():
            aside = out / f"manifest.superseded-{time.strftime('%Y%m%dT%H%M%S')}.jsonl"
            os.replace(manifest.path, aside)
            notes.append(f"--force: settings changed ({'; '.join(diff[:6])}); the earlier manifest is now {aside.name}")
    from imgext.audio.io import write_atomic

    write_atomic(batch_file, (json.dumps({"fingerprint": new}, indent=2) + "\n").encode("utf-8"))
    (out / DAILY_LIMIT_MARKER).unlink(missing_ok=True)  # a new run tries Freesound again (a new day, perhaps)
    records = manifest.compact() if manifest.path.exists() else {}
    return manifest, records, notes


# --------------------------------------------------------------------------------------------- worker side


class _Locked:
    """An exclusive ``flock`` on a file under ``DIR/.locks`` (a no-op where ``fcntl`` is missing)."""

    def __init__(self, lock_dir: Path, key: str) -> None:
        self.path = lock_dir / hashlib.sha256(key.encode()).hexdigest()[:24]
        self._f = None

    def __enter__(self):
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f = open(self.path, "a")
        fcntl.flock(self._f.fileno(), fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc) -> None:
        if self._f is not None:
            self._f.close()  # closing releases the lock


class _BatchSource:
    """Wraps a worker's source: one search per term across workers, and the daily-limit watch.

    Searches and Freesound downloads take a per-key lock, so a second worker
    wanting the same term waits for the first and then reads its result from the
    shared disk cache.  A daily-limit error sets :attr:`daily_limit` and the
    marker file that puts every worker in cache-only mode.
    """

    def __init__(self, inner, out_dir: str) -> None:
        self.inner = inner
        self.name = inner.name
        self._out = Path(out_dir)
        self._locks = bool(_freesound_parts(inner))
        self.daily_limit: str | None = None

    def describe(self) -> str:
        return self.inner.describe()

    @property
    def notes(self):
        return getattr(self.inner, "notes", [])

    def _watch(self, fn, key: str):
        try:
            if not self._locks:
                return fn()
            with _Locked(self._out / LOCK_DIR, key):
                return fn()
        except RateLimitedError as exc:
            if exc.period == "day":
                self.daily_limit = str(exc)
                try:
                    (self._out / DAILY_LIMIT_MARKER).write_text(str(exc), encoding="utf-8")
                except OSError:
                    pass
            raise

    def search(self, query: str, *, n: int = 10, synth_kind: str | None = None):
        return self._watch(lambda: self.inner.search(query, n=n, synth_kind=synth_kind), f"search:{query}:{n}")

    def fetch(self, candidate, *, duration_s: float, sample_rate: int):
        return self._watch(lambda: self.inner.fetch(candidate, duration_s=duration_s, sample_rate=sample_rate),
                           f"fetch:{candidate.id}")

    def invalidate(self, candidate) -> None:
        if hasattr(self.inner, "invalidate"):
            self.inner.invalidate(candidate)


class _Worker:
    """The per-process state: the detector (loaded once) and the source."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self.error: str | None = None
        try:
            # The order of `render` (pipeline, then the detector): until the engine's results stop depending on
            # BLAS threads, each BLAS library must end up with the thread count it has in a `render` process.
            import imgext.pipeline  # noqa: F401
            from imgext.vision.detection import Detector

            self.detector = Detector(job.weights)
            self.source = _open_source(job)
            if job.blas_threads:
                from threadpoolctl import threadpool_limits

                threadpool_limits(job.blas_threads, user_api="blas")
        except ImgExtError as exc:
            self.error = str(exc)
        except Exception as exc:  # noqa: BLE001 - reported once by the coordinator, not per photo
            self.error = f"a worker could not start ({type(exc).__name__}: {exc})"

    def render(self, photo: Photo) -> dict:
        """Render one photo into ``out_dir/photo.id``; always returns its manifest record."""
        from imgext.pipeline import render_image

        job = self.job
        t0 = time.perf_counter()
        record = {"id": photo.id, "path": photo.path, "status": "failed", "error": None, "seconds": None,
                  "loudness_lufs": None, "sounds": [], "seed": photo.seed}
        if self.error:
            raise _Fatal(self.error)
        folder = Path(job.out_dir) / photo.id
        limited = (Path(job.out_dir) / DAILY_LIMIT_MARKER).exists()
        for part in _freesound_parts(self.source):
            part.client.daily_limit_hit = part.client.daily_limit_hit or limited
        source = _BatchSource(self.source, job.out_dir)
        try:
            result = render_image(
                photo.path, str(folder), detector=self.detector, source=source,
                settings=replace(job.mix, seed=photo.seed), conf=job.conf, n_candidates=job.n_candidates,
                labels=job.labels, include_silent=job.include_silent, stems=job.stems, write_zip=job.write_zip,
            )
        except ImgExtError as exc:
            record["error"] = str(exc)
        except Exception as exc:  # noqa: BLE001 - a bug in one photo must not stop the batch
            record["error"] = f"internal error ({type(exc).__name__}: {exc})"
        else:
            scene = result.scene
            record.update(status="done", loudness_lufs=scene["mix"]["loudness_lufs"], sounds=[
                {"label": o["label"], "id": o["sound"]["id"], "name": o["sound"]["name"], "license": o["sound"]["license"]}
                for o in scene["objects"] if o.get("sound")
            ])
        if source.daily_limit:
            record.update(status="skipped", error=f"Freesound's daily limit: {source.daily_limit}; run again later",
                          sounds=[], loudness_lufs=None)
            shutil.rmtree(folder, ignore_errors=True)  # an incomplete scene is not a result
        record["seconds"] = round(time.perf_counter() - t0, 3)
        return record


class _Fatal(Exception):
    """A worker cannot work at all (the detector or the source cannot be opened)."""


_WORKER: _Worker | None = None


def _init_local_worker(job: Job) -> None:
    global _WORKER
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the coordinator's to handle
    _WORKER = _Worker(job)


def _render_in_local_worker(photo: Photo) -> dict:
    assert _WORKER is not None
    return _WORKER.render(photo)


def render_one(job: Job, photo: Photo) -> dict:
    """Render one photo in this process (a fresh worker each call; for tests and debugging)."""
    return _Worker(job).render(photo)


# --------------------------------------------------------------------------------------------- engines


Record = Callable[[dict], None]


class _Interrupts:
    """First Ctrl-C: stop handing out photos, finish those in progress.  Second: stop now."""

    def __init__(self) -> None:
        self.count = 0
        self._previous = None

    def __enter__(self):
        def handler(signum, frame):
            self.count += 1
            if self.count == 1:
                print("\nimgext: stopping: finishing the photos in progress (Ctrl-C again to stop now)",
                      file=sys.stderr, flush=True)
            else:
                raise KeyboardInterrupt

        try:
            self._previous = signal.signal(signal.SIGINT, handler)
        except ValueError:  # not the main thread
            self._previous = None
        return self

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def run_local(job: Job, photos: Sequence[Photo], on_record: Record, *, workers: int, stop: _Interrupts) -> None:
    """Render ``photos`` on ``workers`` spawned processes; each record goes to ``on_record`` as it finishes."""
    import concurrent.futures as cf
    import multiprocessing as mp
    from concurrent.futures.process import BrokenProcessPool

    todo = list(photos)[::-1]
    ctx = mp.get_context("spawn")  # no fork of a process that may hold threads (BLAS, torch)
    window = 2 * workers
    while todo and not stop.count:
        pool = cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_local_worker,
                                      initargs=(job,))
        running: dict = {}
        broken = False
        try:
            while (todo or running) and not broken:
                while todo and len(running) < window and not stop.count:
                    photo = todo.pop()
                    running[pool.submit(_render_in_local_worker, photo)] = photo
                if not running:
                    break
                done, _ = cf.wait(running, timeout=0.5, return_when=cf.FIRST_COMPLETED)
                for fut in done:
                    photo = running.pop(fut)
                    try:
                        on_record(fut.result())
                    except BrokenProcessPool:
                        broken = True
                        if not stop.count:  # after Ctrl-C a worker may die of it: not the photo's fault
                            on_record(_failed(photo, "the worker process died (out of memory?)"))
                    except _Fatal as exc:
                        raise ImgExtError(str(exc)) from None
            for _fut, photo in running.items():  # after a broken pool: the rest of its photos
                if not stop.count:
                    on_record(_failed(photo, "the worker process died (out of memory?)"))
        except KeyboardInterrupt:  # the second Ctrl-C: stop the workers now
            for proc in list(getattr(pool, "_processes", {}).values()):
                proc.kill()
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        except BaseException:
            for proc in list(getattr(pool, "_processes", {}).values()):
                proc.kill()
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown(wait=True)


def _failed(photo: Photo, message: str) -> dict:
    return {"id": photo.id, "path": photo.path, "status": "failed", "error": message, "seconds": None,
            "loudness_lufs": None, "sounds": [], "seed": photo.seed}


class _RayWorker:
    """The Ray actor: one :class:`_Worker` (one detector) per actor."""

    def __init__(self, job: Job) -> None:
        self.worker = _Worker(job)

    def render(self, photo: Photo) -> dict:
        try:
            return self.worker.render(photo)
        except _Fatal as exc:
            return {"fatal": str(exc)}


def run_ray(job: Job, photos: Sequence[Photo], on_record: Record, *, workers: int | None, address: str | None,
            stop: _Interrupts) -> None:
    """Render ``photos`` on Ray actors, each holding a detector; each gets one photo at a time.

    ``address`` ``None`` or ``""`` starts a local Ray (``workers`` CPUs, no
    dashboard); otherwise Ray joins that cluster (``"auto"``, ``ray://host:10001``).
    On a cluster, ``out_dir`` must be storage every node sees at the same path.
    """
    try:
        import ray
    except ImportError:
        raise ParameterError("--ray needs Ray: pip install -r requirements-ray.txt") from None
    here = str(Path(__file__).resolve().parents[1])
    runtime_env = {"env_vars": {"PYTHONPATH": os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH")) if p)}}
    started = not ray.is_initialized()
    if started:
        if address:
            ray.init(address=address, runtime_env=runtime_env, logging_level="WARNING", log_to_driver=False)
        else:
            ray.init(num_cpus=workers or os.cpu_count() or 1, include_dashboard=False, runtime_env=runtime_env,
                     logging_level="WARNING", log_to_driver=False)
    try:
        n = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        actor = ray.remote(num_cpus=1, max_restarts=1, max_task_retries=0)(_RayWorker)
        actors = [actor.remote(job) for _ in range(max(1, min(n, len(photos))))]
        idle = list(actors)
        running: dict = {}  # ObjectRef -> (actor, photo)
        todo = list(photos)[::-1]
        try:
            while todo or running:
                while todo and idle and not stop.count:
                    a, photo = idle.pop(), todo.pop()
                    running[a.render.remote(photo)] = (a, photo)
                if not running:
                    break
                ready, _ = ray.wait(list(running), num_returns=1, timeout=0.5)
                for ref in ready:
                    a, photo = running.pop(ref)
                    idle.append(a)
                    try:
                        rec = ray.get(ref)
                    except ray.exceptions.RayError as exc:  # the actor died (out of memory, node lost ...)
                        rec = _failed(photo, f"the Ray worker failed ({type(exc).__name__})")
                    if "fatal" in rec:
                        raise ImgExtError(rec["fatal"])
                    on_record(rec)
        finally:
            for a in actors:
                with contextlib.suppress(ray.exceptions.RayError, ValueError):  # already gone
                    ray.kill(a)
    finally:
        if started:
            ray.shutdown()


# --------------------------------------------------------------------------------------------- the run


@dataclass
class BatchSummary:
    """What a run did."""

    total: int = 0
    done: int = 0
    failed: int = 0
    skipped: int = 0
    already_done: int = 0
    interrupted: bool = False
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def photos_per_minute(self) -> float:
        n = self.done + self.failed + self.skipped
        return 60.0 * n / self.seconds if self.seconds > 0 else 0.0


def run_batch(
    inputs: str | Sequence[str],
    job: Job,
    *,
    workers: int | None = None,
    ray_address: str | None = None,
    use_ray: bool = False,
    force: bool = False,
    progress: bool | None = None,
    log: Callable[[str], None] | None = None,
) -> BatchSummary:
    """Render every photo of ``inputs`` into ``job.out_dir`` (see the module docstring).

    Parameters
    ----------
    inputs : str or sequence of str
        An INPUT spec (:func:`collect_inputs`) or the photo paths themselves.
    workers : int, optional
        Worker processes (default: the core count) or Ray actors (default: the cluster's CPUs).
    use_ray, ray_address
        Use Ray; ``ray_address`` ``None``/``""`` starts a local one.
    force : bool
        Accept a folder made with other settings (everything is rendered again).
    progress : bool, optional
        A tqdm bar on stderr; default when stderr is a terminal.
    log : callable, optional
        Receives one line per photo when there is no bar (default: print to stderr).

    Raises
    ------
    ParameterError
        Bad INPUT, other settings without ``force``, the engine cannot start.
    KeyboardInterrupt
        After a second Ctrl-C (the manifest is consistent either way).
    """
    t0 = time.perf_counter()
    paths = collect_inputs(inputs) if isinstance(inputs, str) else [str(p) for p in inputs]
    photos, duplicates = plan_photos(paths, job.mix.seed)
    manifest, records, notes = prepare_dir(job, force=force)
    summary = BatchSummary(total=len(photos), notes=notes)
    if duplicates:
        summary.notes.append(f"{len(duplicates)} path(s) name a photo already listed (same name and content), left out")
    todo = []
    for p in photos:
        rec = records.get(p.id)
        if rec and rec.get("status") == "done" and is_complete(Path(job.out_dir) / p.id):
            summary.already_done += 1
        else:
            todo.append(p)
    if summary.already_done:
        summary.notes.append(f"{summary.already_done} photo(s) were done by an earlier run")
    workers = max(1, int(workers)) if workers else (None if use_ray else max(1, os.cpu_count() or 1))
    if workers and not use_ray:
        workers = min(workers, max(1, len(todo)))
    show_bar = sys.stderr.isatty() if progress is None else progress
    log = log or (lambda line: print(line, file=sys.stderr, flush=True))
    bar = None
    if show_bar and todo:
        from tqdm import tqdm

        bar = tqdm(total=len(todo), unit="photo", file=sys.stderr, dynamic_ncols=True,
                   bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}{postfix}]")
    started = time.perf_counter()
    counts = {"done": 0, "failed": 0, "skipped": 0}

    def on_record(rec: dict) -> None:
        manifest.append(rec)
        counts[rec["status"]] += 1
        n = sum(counts.values())
        rate = 60.0 * n / max(1e-9, time.perf_counter() - started)
        if bar is not None:
            bar.set_postfix_str(f"{rate:.1f} photos/min, {counts['failed']} failed, {counts['skipped']} skipped",
                                refresh=False)
            bar.update(1)
        else:
            what = rec["status"] + (f": {rec['error']}" if rec.get("error") else "")
            log(f"[{n}/{len(todo)}] {rec['id']} {what} ({rec['seconds'] or 0:.1f} s; {rate:.1f} photos/min)")

    try:
        with _Interrupts() as stop:
            if todo and use_ray:
                run_ray(job, todo, on_record, workers=workers, address=ray_address, stop=stop)
            elif todo:
                run_local(job, todo, on_record, workers=workers, stop=stop)
            summary.interrupted = stop.count > 0
    except KeyboardInterrupt:
        summary.interrupted = True
        raise
    finally:
        if bar is not None:
            bar.close()
        manifest.close()
        manifest.compact()
        summary.done, summary.failed, summary.skipped = counts["done"], counts["failed"], counts["skipped"]
        summary.seconds = time.perf_counter() - t0
    return summary


# --------------------------------------------------------------------------------------------- command line


def add_batch_parser(sub, render_parser) -> None:
    """Add ``batch`` to the CLI's subparsers, with every option of ``render_parser`` except IMAGE/--out/--json."""
    import argparse

    b = sub.add_parser(
        "batch", help="many photos -> one render folder each, plus manifest.jsonl (resumable; local processes or Ray)",
        description="Render every photo of INPUT as `render` would, into OUT/<id>/, with OUT/manifest.jsonl. "
        "A second run skips what is done and retries what failed; other settings are refused without --force.",
    )
    b.add_argument("input", metavar="INPUT", help="a folder (recursive, image files only), a glob, or a .txt/.csv/.jsonl list")
    b.add_argument("--out", required=True, metavar="DIR", help="batch folder: one folder per photo, manifest.jsonl, batch.json")
    b.add_argument("--workers", type=int, default=None, metavar="N",
                   help="worker processes, each loading the detector once (default: the core count; with --ray: "
                        "the cluster's CPUs)")
    b.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                   help="run on Ray (pip install -r requirements-ray.txt): without ADDRESS a local Ray is started; "
                        "with one (auto, ray://host:10001) it joins that cluster, and DIR must be shared storage")
    b.add_argument("--force", action="store_true", help="accept a DIR made with other settings: render everything again")
    b.add_argument("--no-progress", action="store_true", help="no progress bar; one line per photo instead")
    skip = {"help", "image", "out", "json"}
    groups = {}
    for action in render_parser._actions:
        if action.dest in skip or not action.option_strings:
            continue
        container = b
        for group in render_parser._action_groups:
            if action in group._group_actions and group.title not in ("options", "optional arguments", "positional arguments"):
                if group.title not in groups:
                    groups[group.title] = b.add_argument_group(group.title)
                container = groups[group.title]
        container._add_action(action)
    b.formatter_class = argparse.RawDescriptionHelpFormatter


def run_batch_args(args, mix_settings) -> int:
    """The ``batch`` command: build the :class:`Job` from parsed options and run it.

    Exit status 0 when every photo is done, 1 when some failed or were skipped
    (the manifest says which and why), 130 after Ctrl-C.
    """
    from imgext.settings import load_settings
    from imgext.vision.placement import LabelMap

    settings = load_settings()
    if args.candidates <= 0:
        raise ParameterError(f"--candidates {args.candidates} must be positive")
    if args.workers is not None and args.workers <= 0:
        raise ParameterError(f"--workers {args.workers} must be positive")
    labels = LabelMap.default()
    if args.labels:
        labels = labels.with_file(args.labels)
    spec = args.source or ("freesound" if settings.freesound_api_key else "builtin")
    if args.preset and not spec.startswith("freesound"):
        raise ParameterError("--preset applies to --source freesound only")
    weights = args.weights or settings.yolo_weights
    if weights and (os.sep in weights or weights.endswith(".onnx")) and not os.path.exists(os.path.expanduser(weights)):
        raise ParameterError(f"detector weights not found: {weights} (check IMGEXT_YOLO_WEIGHTS)")
    job = Job(out_dir=os.path.abspath(args.out), mix=mix_settings, source_spec=spec, preset=args.preset,
              weights=os.path.abspath(os.path.expanduser(weights)) if weights and os.path.exists(os.path.expanduser(weights)) else weights,
              conf=args.conf, n_candidates=args.candidates, include_silent=args.include_silent, labels=labels,
              settings=settings, stems=not getattr(args, "no_stems", False),
              write_zip=not getattr(args, "no_zip", False), blas_threads=_blas_threads())
    _open_source(job)  # a bad --source or a missing key fails here, once, not in every worker
    try:
        summary = run_batch(args.input, job, workers=args.workers, use_ray=args.ray is not None,
                            ray_address=args.ray or None, force=args.force,
                            progress=False if args.no_progress else None)
    except KeyboardInterrupt:
        print(f"imgext: stopped; finished photos are in {args.out}/manifest.jsonl, run again to go on", file=sys.stderr)
        return 130
    for note in summary.notes:
        print(f"note: {note}")
    print(f"{summary.total} photos: {summary.already_done + summary.done} done ({summary.done} now), "
          f"{summary.failed} failed, {summary.skipped} skipped in {summary.seconds:.1f} s "
          f"({summary.photos_per_minute:.1f} photos/min); manifest: {os.path.join(args.out, MANIFEST)}")
    if summary.interrupted:
        print("stopped by Ctrl-C: run the same command again to go on", file=sys.stderr)
        return 130
    return 0 if summary.failed == 0 and summary.skipped == 0 else 1

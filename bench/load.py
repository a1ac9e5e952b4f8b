"""Several simultaneous browser sessions against one ``streamlit run``: isolation, correctness, time, memory.

Run from the repo root: ``python bench/load.py [--sessions 1 4 8] [--duration 30]``; the 16-session figures:
``python bench/load.py --sessions 16 --settle 160`` (each session also records the queue message it saw).

It starts the local Freesound-compatible server (``tests/freesound_server.py``) and one ``streamlit run
app.py`` (fresh cache, data and temp folders; the detector from ``../shared/models``). Then, for each N,
it opens N browser contexts in one headless Chromium (one asyncio event loop, Playwright's async API)
and runs them CONCURRENTLY, each doing the whole flow with its own photo and seed: upload the photo
(under a name unique to the session) on the Image page, set the seed and press "Find sounds" on the
Sounds page, wait for the heatmaps and the player on the Mix page, download the ZIP. The N contexts
stay open until all N flows have finished, so the server holds N sessions at once.

Every ZIP is checked against a reference rendered in this process by the library itself
(:func:`imgext.pipeline.render_image` with the same photo, name, seed, length and a
Freesound-then-built-in source, on its own cache):

* ``scene.json``: ``image.path`` is the name this session uploaded; the objects (label, confidence,
  box) are that photo's detections; seed and scene length are this session's;
* every ZIP member is listed in that ``scene.json`` (``files``, and every ``sources/`` and ``stems/``
  file is some object's ``sound.file``/``stem``/``stem_dry``), and the member list is the reference's;
* ``mix.wav``, every stem, every source file and ``ATTRIBUTION.txt`` are byte-identical to the
  reference (the README promises bit-identical audio for the same inputs and seed), so the session got
  its own correct mix;
* no member of this ZIP is a file that only another session's scene has (cross-session leak);
* on the server, each session's private folder holds exactly the ZIP that session downloaded.

The streamlit process's RSS (with its children) is sampled every 0.5 s; the table shows its peak per N
and the RSS when the N sessions are done. ``--settle 160`` then waits with no browser connected (a disconnected
session is kept for ``--session-ttl``, Streamlit's 120 s, then closed), printing the RSS every 10 s, runs
one more session and reports whether the memory came back. If the library or the pages are edited while the bench runs, the references and the server
may run different code: the output says so.
Times are wall-clock per flow on a shared 2-core machine: measured, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import io
import json
import math
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("YOLO_AUTOINSTALL", "false")
os.environ.setdefault("YOLO_OFFLINE", "true")

from tests.browser import ARTIFACTS  # noqa: E402 - needs ROOT on sys.path

SHARED = ROOT.parent / "shared"
WEIGHTS = str(SHARED / "models" / "yolov8n_int8.onnx")
API_KEY = "load-bench-key-4d1e"
FIXED_MEMBERS = {"mix.wav", "mix_binaural.wav", "stems/reverb.wav", "stems/reverb.flac", "scene.json", "ATTRIBUTION.txt"}
STEP_TIMEOUT_MS = 600_000  # one step of one flow; 8 flows on 2 cores are slow, but never this slow


def source_stamp() -> tuple:
    """Modification times of the code the app and the references run: if it changes mid-run (someone is
    editing the library), a difference between a ZIP and its reference means nothing."""
    files = sorted((ROOT / "imgext").rglob("*.py")) + sorted((ROOT / "pages").glob("*.py")) + [ROOT / "app.py"]
    return tuple((str(p.relative_to(ROOT)), p.stat().st_mtime_ns) for p in files if p.exists())


def changed_sources(stamp: tuple) -> list[str]:
    now = dict(source_stamp())
    return sorted(name for name, t in stamp if now.get(name) != t) + sorted(set(now) - {n for n, _ in stamp})


def photos() -> list[Path]:
    import ultralytics

    assets = Path(ultralytics.ASSETS)
    images = SHARED / "images"
    return [assets / "bus.jpg", assets / "zidane.jpg", images / "wildcat.jpg", images / "wilddog.jpg",
            images / "wildelephant.jpg"]


@dataclass(frozen=True)
class Job:
    """One session's work: which photo, under which upload name, with which seed and scene length."""

    index: int
    photo: Path
    seed: int
    duration_s: int = 30
    tag: str = ""

    @property
    def upload_name(self) -> str:
        return f"{self.tag}s{self.index:02d}-seed{self.seed}-{self.photo.name}"


def make_jobs(n: int, *, duration_s: int = 30, tag: str = "", seed_base: int = 1) -> list[Job]:
    """``n`` jobs cycling over the five photos; every job has its own seed, hence its own mix."""
    ph = photos()
    return [Job(i, ph[i % len(ph)], seed_base + i, duration_s, tag) for i in range(n)]


# --------------------------------------------------------------------------- reference renders

@dataclass
class Reference:
    job: Job
    members: dict[str, bytes]
    scene: dict


class ReferenceRenderer:
    """Renders a job with the library directly (same source stack as the app), on its own cache."""

    def __init__(self, freesound_url: str, api_key: str, cache_dir: Path, weights: str = WEIGHTS) -> None:
        from imgext.sounds.cache import DiskCache
        from imgext.vision.detection import Detector

        self.url, self.key = freesound_url, api_key
        self.cache = DiskCache(cache_dir, size_limit_bytes=256 * 1024 * 1024)
        self.detector = Detector(weights)
        self._done: dict[tuple, Reference] = {}
        self.stamp = source_stamp()  # the code this process imported (the server imports it later)

    def source(self):
        from imgext.sounds.builtin import BuiltinSource
        from imgext.sounds.filters import SearchFilter
        from imgext.sounds.freesound import FreesoundClient, FreesoundSource
        from imgext.sounds.sources import FallbackSource

        primary = FreesoundSource(FreesoundClient(self.key, base_url=self.url), cache=self.cache,
                                  search_filter=SearchFilter())
        return FallbackSource(primary, BuiltinSource())

    def render(self, job: Job) -> Reference:
        from imgext.options import MixSettings
        from imgext.pipeline import render_image

        key = (str(job.photo), job.upload_name, job.seed, job.duration_s)
        if key not in self._done:
            with tempfile.TemporaryDirectory(prefix="imgext-ref-") as out:
                result = render_image(job.photo.read_bytes(), out, detector=self.detector, source=self.source(),
                                      settings=MixSettings(duration_s=float(job.duration_s), seed=job.seed, binaural=True),  # the app's ZIP has both mixes
                                      image_name=job.upload_name, stem_format="flac")  # the app's ZIP: FLAC stems
                members = read_zip(Path(result.zip_path).read_bytes())
            self._done[key] = Reference(job, members, json.loads(members["scene.json"]))
        return self._done[key]


def read_zip(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def build_zip_of(ref: Reference) -> bytes:
    from imgext.output.export import OutputFile, build_zip

    return build_zip([OutputFile(n, b) for n, b in ref.members.items()])


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------- checking one ZIP

def _close(a, b, tol: float = 1e-6) -> bool:
    return all(math.isclose(float(x), float(y), abs_tol=tol) for x, y in zip(a, b, strict=True))


def check_bundle(zip_bytes: bytes, ref: Reference) -> list[str]:
    """Problems with one session's ZIP (empty list: correct and its own)."""
    job, problems = ref.job, []
    try:
        members = read_zip(zip_bytes)
        scene = json.loads(members["scene.json"])
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        return [f"unreadable ZIP: {exc!r}"]
    image = scene.get("image") or {}
    if image.get("path") != job.upload_name:
        problems.append(f"scene.json image.path is {image.get('path')!r}, this session uploaded {job.upload_name!r}")
    want = [(o["label"], o["confidence"], o["box"]) for o in ref.scene["objects"]]
    got = [(o.get("label"), o.get("confidence"), o.get("box")) for o in scene.get("objects", [])]
    if len(got) != len(want) or not all(
        g[0] == w[0] and _close([g[1]], [w[1]]) and _close(g[2], w[2]) for g, w in zip(got, want)
    ):
        problems.append(f"objects {[g[0] for g in got]} are not the detections of {job.photo.name} {[w[0] for w in want]}")
    settings = scene.get("settings", {})
    if settings.get("seed") != job.seed or settings.get("duration_s") != job.duration_s:
        problems.append(f"settings seed={settings.get('seed')} duration={settings.get('duration_s')}, "
                        f"this session set seed={job.seed} duration={job.duration_s}")
    # every member belongs to this scene
    listed = set(scene.get("files", [])) - {"bundle.zip"}
    if set(members) != listed:
        problems.append(f"ZIP members {sorted(set(members) ^ listed)} differ from scene.json files")
    per_object = set()
    for o in scene.get("objects", []):
        per_object |= {v for v in (o.get("stem"), o.get("stem_dry"), (o.get("sound") or {}).get("file")) if v}
    stray = sorted(n for n in members if n not in FIXED_MEMBERS and n not in per_object)
    if stray:
        problems.append(f"ZIP members belonging to no object of this scene: {stray}")
    if set(members) != set(ref.members):
        problems.append(f"ZIP members differ from the reference render: {sorted(set(members) ^ set(ref.members))}")
    ids = [(o.get("sound") or {}).get("id") for o in scene.get("objects", [])]
    ref_ids = [(o.get("sound") or {}).get("id") for o in ref.scene["objects"]]
    if ids != ref_ids:
        problems.append(f"sounds {ids} differ from the reference {ref_ids}")
    differing = sorted(n for n in members if n in ref.members and n != "scene.json" and members[n] != ref.members[n])
    if differing:
        problems.append(f"not byte-identical to the reference render: {differing}")
    for part in ("mix", "masking"):
        if scene.get(part) != ref.scene.get(part):
            problems.append(f"scene.json {part!r} differs from the reference render")
    return problems


def cross_check(bundles: dict[int, bytes], refs: dict[int, Reference]) -> list[str]:
    """No ZIP holds a file that only another session's scene has."""
    problems = []
    ref_hashes = {i: {sha(b) for b in r.members.values()} for i, r in refs.items()}
    for i, zb in bundles.items():
        try:
            mine = {n: sha(b) for n, b in read_zip(zb).items()}
        except zipfile.BadZipFile:
            continue  # reported by check_bundle
        for j, other in ref_hashes.items():
            if j == i:
                continue
            foreign = other - ref_hashes[i]
            leaked = sorted(n for n, h in mine.items() if h in foreign)
            if leaked:
                problems.append(f"session {i}'s ZIP holds files of session {j}'s scene: {leaked}")
    return problems


def check_server_folders(tmpdir: Path, before: set[Path], bundles: dict[int, bytes]) -> list[str]:
    """No session leaves a file on the server's disk: photos, sounds, mixes and ZIPs live in session memory."""
    user_data = (".wav", ".mp3", ".ogg", ".flac", ".zip", ".json", ".jpg", ".jpeg", ".png", ".webp")
    new = sorted(
        p for p in set(tmpdir.rglob("*")) - before
        if p.is_file() and (p.suffix.lower() in user_data or p.stat().st_size > 64 * 1024)
    )  # third-party libraries drop tiny dotfiles of their own (e.g. a 51-byte ".ses"); those are not user data
    return [f"a session left {len(new)} files on the server's disk, e.g. {new[0]}"] if new else []


# --------------------------------------------------------------------------- the browser flow

APP_IDLE_JS = (
    "() => { const a = document.querySelector(\"[data-testid='stApp']\");"
    " return a && a.getAttribute('data-test-connection-state') === 'CONNECTED'"
    " && a.getAttribute('data-test-script-state') === 'notRunning'; }"
)


async def wait_idle(page, timeout_ms: int = STEP_TIMEOUT_MS) -> None:
    await page.wait_for_selector("[data-testid='stApp']", timeout=timeout_ms)
    await page.wait_for_function(APP_IDLE_JS, timeout=timeout_ms, polling=200)
    await page.wait_for_timeout(300)
    await page.wait_for_function(APP_IDLE_JS, timeout=timeout_ms, polling=200)


async def goto_page(page, label: str, title: str, timeout_ms: int = STEP_TIMEOUT_MS) -> None:
    await page.get_by_role("link", name=label).first.click()
    await page.get_by_role("heading", name=title, exact=True).first.wait_for(timeout=timeout_ms)
    await wait_idle(page, timeout_ms)


@dataclass
class FlowResult:
    job: Job
    zip_bytes: bytes | None = None
    seconds: float = float("nan")
    stages: dict = field(default_factory=dict)
    error: str | None = None
    page_errors: list = field(default_factory=list)
    objects_shown: int | None = None
    queue_messages: list = field(default_factory=list)  # "The server is busy: N ... ahead of you", once a second


async def run_flow(context, url: str, job: Job, *, timeout_ms: int = STEP_TIMEOUT_MS, on_page=None) -> FlowResult:
    """The whole flow in one browser context; never raises (errors land in ``FlowResult.error``)."""
    res = FlowResult(job)
    context.set_default_timeout(timeout_ms)  # also for fill/click/set_input_files (Playwright's default 30 s
    page = await context.new_page()          # failed 11 of 16 sessions on a loaded machine, not the app)
    page.on("pageerror", lambda e: res.page_errors.append(str(e)))
    t0 = last = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal last
        now = time.perf_counter()
        res.stages[name] = now - last
        last = now

    async def watch_queue() -> None:  # the page's "N ... ahead of you" while this session waits its turn
        while True:
            try:
                text = await page.evaluate("() => document.body ? document.body.innerText : ''")
            except Exception:  # noqa: BLE001 - navigation in progress
                text = ""
            if "ahead of you" in text:
                line = next(x for x in text.splitlines() if "ahead of you" in x)
                res.queue_messages.append(line.strip())
            await asyncio.sleep(1.0)

    watcher = asyncio.ensure_future(watch_queue())
    try:
        await page.goto(url, timeout=timeout_ms)
        await wait_idle(page, timeout_ms)
        await page.locator("[data-testid='stFileUploaderDropzoneInput']").set_input_files(
            {"name": job.upload_name, "mimeType": "image/jpeg", "buffer": job.photo.read_bytes()})
        heading = page.get_by_role("heading", name="objects").first
        await heading.wait_for(timeout=timeout_ms)
        await wait_idle(page, timeout_ms)
        res.objects_shown = int((await heading.inner_text()).split()[0])
        if on_page:
            await on_page(page, "image")
        lap("image")

        await goto_page(page, "2 · Sounds", "Sounds", timeout_ms)
        seed = page.get_by_role("spinbutton", name="Seed", exact=True)
        await seed.fill(str(job.seed))
        await seed.press("Enter")
        await wait_idle(page, timeout_ms)
        if job.duration_s != 30:
            slider = page.get_by_role("slider").first  # "Scene length (s)": 5 .. 120, step 5, default 30
            await slider.focus()
            for _ in range((30 - job.duration_s) // 5):
                await page.keyboard.press("ArrowLeft")
            await wait_idle(page, timeout_ms)
        await page.get_by_role("button", name="Find sounds").click()
        await page.locator("[data-testid='stAudio']").first.wait_for(timeout=timeout_ms)
        await wait_idle(page, timeout_ms)
        if on_page:
            await on_page(page, "sounds")
        lap("sounds")

        await goto_page(page, "3 · Mix", "Mix", timeout_ms)
        await page.locator("[data-testid='stPlotlyChart']").nth(1).wait_for(timeout=timeout_ms)
        await wait_idle(page, timeout_ms)  # the mix rendered (the rendered files' players are made only when opened)
        if on_page:
            await on_page(page, "mix")
        lap("mix")
        await page.get_by_role("button", name="Prepare ZIP").click()  # packed in the script run, behind the queue
        button = page.get_by_role("button", name="Download ZIP")
        await button.wait_for(timeout=timeout_ms)
        await wait_idle(page, timeout_ms)
        lap("pack")
        async with page.expect_download(timeout=timeout_ms) as info:
            await button.click()
        download = await info.value
        path = await download.path()
        res.zip_bytes = Path(path).read_bytes()
        lap("zip")
        res.seconds = time.perf_counter() - t0
        watcher.cancel()
    except Exception as exc:  # noqa: BLE001 - reported per session
        watcher.cancel()
        res.error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        try:
            shots = ARTIFACTS / "screenshots"
            shots.mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=str(shots / f"load-failed-{job.upload_name}.png"), full_page=True)
        except Exception:  # noqa: BLE001
            pass
    return res


async def run_sessions_async(url: str, jobs: list[Job], *, timeout_ms: int = STEP_TIMEOUT_MS) -> list[FlowResult]:
    from playwright.async_api import async_playwright

    from tests.browser import CHROMIUM, CHROMIUM_ARGS

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            contexts = [await browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
                        for _ in jobs]
            results = await asyncio.gather(*(run_flow(c, url, j, timeout_ms=timeout_ms) for c, j in zip(contexts, jobs)))
            for c in contexts:  # all N sessions were held until the last flow finished
                await c.close()
        finally:
            await browser.close()
    return list(results)


def run_sessions(url: str, jobs: list[Job], **kw) -> list[FlowResult]:
    return asyncio.run(run_sessions_async(url, jobs, **kw))


# --------------------------------------------------------------------------- memory

class RssSampler:
    """Samples the RSS of a process and all its children every ``interval_s`` on a thread."""

    def __init__(self, pid: int, interval_s: float = 0.5) -> None:
        import psutil

        self.proc = psutil.Process(pid)
        self.interval_s = interval_s
        self.peak = 0
        self.last = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def sample(self) -> int:
        import psutil

        total = 0
        try:
            procs = [self.proc] + self.proc.children(recursive=True)
        except psutil.Error:
            return 0
        for p in procs:
            try:
                total += p.memory_info().rss
            except psutil.Error:
                pass
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.last = self.sample()
            self.peak = max(self.peak, self.last)
            self._stop.wait(self.interval_s)

    def reset_peak(self) -> None:
        self.peak = self.last = self.sample()

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(5)


# --------------------------------------------------------------------------- one phase

@dataclass
class Phase:
    n: int
    results: list[FlowResult]
    problems: dict[int, list[str]]
    shared_problems: list[str]
    peak_rss: int
    rss_after: int
    wall_s: float
    notes: list[str] = field(default_factory=list)
    label: str = ""

    @property
    def all_correct(self) -> bool:
        return all(r.error is None and not r.page_errors for r in self.results) and \
            not any(self.problems.values()) and not self.shared_problems

    @property
    def held(self) -> int:
        return sum(1 for r in self.results if r.error is None and r.zip_bytes)


def run_phase(url: str, jobs: list[Job], renderer: ReferenceRenderer, tmpdir: Path, sampler: RssSampler) -> Phase:
    refs = {j.index: renderer.render(j) for j in jobs}  # before the phase, so it does not compete for CPU
    before = set(tmpdir.rglob("*"))
    stamp = renderer.stamp
    sampler.reset_peak()
    t0 = time.perf_counter()
    results = run_sessions(url, jobs)
    wall = time.perf_counter() - t0
    peak = sampler.peak
    problems = {r.job.index: (check_bundle(r.zip_bytes, refs[r.job.index]) if r.zip_bytes else [f"no ZIP: {r.error}"])
                + ([f"page errors: {r.page_errors}"] if r.page_errors else []) for r in results}
    bundles = {r.job.index: r.zip_bytes for r in results if r.zip_bytes}
    for r in results:  # keep what a wrong session downloaded, and what it should have been
        if r.zip_bytes and problems[r.job.index]:
            out = ARTIFACTS / "load"
            out.mkdir(parents=True, exist_ok=True)
            (out / f"{r.job.upload_name}-downloaded.zip").write_bytes(r.zip_bytes)
            (out / f"{r.job.upload_name}-reference.zip").write_bytes(build_zip_of(refs[r.job.index]))
            problems[r.job.index].append(f"both ZIPs in {out}")
    shared = cross_check(bundles, refs) + check_server_folders(tmpdir, before, bundles)
    edited = changed_sources(stamp)
    notes = [f"the app's code changed while this ran ({', '.join(edited)}): the server and the references may run "
             "different versions, so a difference from the reference may be that; run again"] if edited else []
    return Phase(len(jobs), results, problems, shared, peak, sampler.sample(), wall, notes)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--settle", type=float, default=0.0, metavar="SECONDS",
                        help="afterwards, wait this long with no browser connected (a disconnected session is kept "
                             "for --session-ttl s, then closed), run one more session and report the RSS: is the "
                             "memory given back?")
    parser.add_argument("--session-ttl", type=int, default=120, metavar="SECONDS",
                        help="the server's reconnect window, server.disconnectedSessionTTL (default 120, Streamlit's)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (cache, session folders)")
    parser.add_argument("--duration", type=int, default=30, choices=range(5, 121, 5), metavar="SECONDS",
                        help="scene length set on the Sounds page (default 30, the app's default)")
    args = parser.parse_args()

    from tests.browser import fresh_dirs, streamlit_server
    from tests.freesound_server import FreesoundServer

    work = Path(tempfile.mkdtemp(prefix="imgext-load-"))
    (work / "tmp").mkdir()
    print(f"Load bench: {os.cpu_count()} cores, scene length {args.duration} s"
          + (" (shorter than the app's default 30 s)" if args.duration != 30 else " (the app's default)")
          + f", sessions {args.sessions}; work folder {work}", flush=True)
    rows = []
    with FreesoundServer(api_key=API_KEY) as fs:
        env = {**fresh_dirs(work), "IMGEXT_YOLO_WEIGHTS": WEIGHTS, "IMGEXT_FREESOUND_URL": fs.base_url,
               "FREESOUND_API_KEY": API_KEY, "YOLO_AUTOINSTALL": "false", "YOLO_OFFLINE": "true"}
        renderer = ReferenceRenderer(fs.base_url, API_KEY, work / "ref-cache")
        with streamlit_server(env, args=("--server.disconnectedSessionTTL", str(args.session_ttl))) as (url, proc):
            with RssSampler(proc.pid) as sampler:
                idle = sampler.sample()
                print(f"streamlit at {url}, idle RSS {idle / 2**20:.0f} MB (log in {ARTIFACTS})", flush=True)
                for n in args.sessions:
                    jobs = make_jobs(n, duration_s=args.duration, tag=f"n{n}-")
                    phase = run_phase(url, jobs, renderer, work / "tmp", sampler)
                    rows.append(phase)
                    report_phase(phase)
                if args.settle > 0:
                    before_wait = sampler.sample()
                    print(f"\nwaiting {args.settle:.0f} s with no browser connected (RSS {before_wait / 2**20:.0f} MB) ...",
                          flush=True)
                    t0, trace = time.monotonic(), []
                    while (left_s := args.settle - (time.monotonic() - t0)) > 0:
                        time.sleep(min(10.0, left_s))
                        trace.append(f"{time.monotonic() - t0:.0f} s {sampler.sample() / 2**20:.0f} MB")
                    print("   RSS while idle: " + ", ".join(trace), flush=True)
                    idle_after = sampler.sample()
                    settle = run_phase(url, make_jobs(1, duration_s=args.duration, tag="settle-"), renderer,
                                       work / "tmp", sampler)
                    settle.label = f"1 after {args.settle:.0f} s idle"
                    report_phase(settle)
                    print(f"RSS after {args.settle:.0f} s idle: {idle_after / 2**20:.0f} MB; after one more session: "
                          f"{settle.rss_after / 2**20:.0f} MB (was {before_wait / 2**20:.0f} MB when the last phase ended)")
                    rows.append(settle)
    left = [f for f in (work / "tmp").rglob("*") if f.is_file()]
    print_table(rows)
    print(f"files left in the server's temp folder by all sessions: {len(left)}, "
          f"{sum(f.stat().st_size for f in left) / 2**20:.0f} MB")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    print(f"streamlit idle RSS before the first session {idle / 2**20:.0f} MB; "
          f"Freesound-compatible server saw {len(fs.requests)} requests "
          f"({fs.count('search')} searches, {fs.count('preview')} previews).")
    return 0 if all(p.all_correct for p in rows) else 1


def report_phase(p: Phase) -> None:
    print(f"\n-- {p.n} concurrent session(s): wall {p.wall_s:.1f} s, peak RSS {p.peak_rss / 2**20:.0f} MB, "
          f"RSS after {p.rss_after / 2**20:.0f} MB", flush=True)
    for r in p.results:
        st = " ".join(f"{k} {v:.1f}" for k, v in r.stages.items())
        verdict = "ok" if not p.problems[r.job.index] else "WRONG: " + "; ".join(p.problems[r.job.index])
        print(f"   session {r.job.index} {r.job.photo.name:<16} seed {r.job.seed}: {r.seconds:6.1f} s [{st}] "
              f"{r.objects_shown} objects · {verdict}", flush=True)
        if r.queue_messages:
            print(f"      queued {len(r.queue_messages)} s, e.g. {max(r.queue_messages, key=len)!r}", flush=True)
    for s in p.shared_problems:
        print(f"   WRONG: {s}", flush=True)
    for s in p.notes:
        print(f"   NOTE: {s}", flush=True)


def print_table(rows: list[Phase]) -> None:
    print("\n| sessions | held | all correct | median s/flow | max s/flow | wall s | server peak RSS MB | RSS after MB |")
    print("|---:|---:|:---:|---:|---:|---:|---:|---:|")
    for p in rows:
        secs = [r.seconds for r in p.results if r.error is None]
        med = f"{statistics.median(secs):.1f}" if secs else "-"
        mx = f"{max(secs):.1f}" if secs else "-"
        print(f"| {p.label or p.n} | {p.held} | {'yes' if p.all_correct else 'no'} | {med} | {mx} | {p.wall_s:.1f} | "
              f"{p.peak_rss / 2**20:.0f} | {p.rss_after / 2**20:.0f} |")


if __name__ == "__main__":
    sys.exit(main())

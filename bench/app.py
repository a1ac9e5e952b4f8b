"""The speed the user feels, in a real browser: slider release -> new audio, server CPU per move, idle memory.

Run from the repo root: ``python bench/app.py [--tracks 8 32] [--moves 7] [--direction alternate|up]``.

It starts one ``streamlit run app.py`` (fresh cache, data and temp folders; the detector from
``../shared/models``; built-in sounds, no network) and drives it with headless Chromium (Debian's, via
Playwright): upload ``bus.jpg``, add objects by hand until the scene has N sounding tracks, find the
sounds, open the Mix page. Then, ``--moves`` times, it moves one mix slider (``--slider NAME``, a
:class:`~imgext.options.MixSettings` field; attenuation by default) one step with the
keyboard (a release: one rerun), back and forth (``alternate``: the two positions' signals are then
known to the player) or always up (``up``: every move makes new signals, as a user dragging does), and measures

* **latency**: from the key press until the page has finished its run and the stems player has applied
  what the run sent (it plays the new setting);
* **server CPU**: user + system CPU seconds of the streamlit process (``/proc/<pid>/stat``, children
  included) from the key press until the run is over, and of it the system CPU and the minor page faults;

and reports the medians.  A slider move is first a preview (a level slider's -- attenuation, loudness,
reverb, ambience level -- heard as new levels; EQ strength, maximum cut, field of view and activity play the
last render on), and the player asks for the render once the sliders rest (``SETTLE_MS`` in pages/_player.py):
after the last move the bench waits for that render and reports its latency and CPU too (``settle``);
``--settle`` waits for it after every move and counts it in the move (a user who stops after each step).  **Idle RSS** is the server's resident memory with the model loaded: after the
first detection, with that one session idle on the Image page (and, for reference, before any session).

Targets (issue 15): idle <= 400 MB; each slider move <= 0.3 s of server CPU at 8 tracks, <= 0.6 s at 32.
Wall-clock figures on a shared 2-core machine: measured, never asserted.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # bench scripts run from a checkout (``python bench/app.py``)

WEIGHTS = str(ROOT.parent / "shared" / "models" / "yolov8n_int8.onnx")
LABELS = ["dog", "car", "bird", "cat", "horse", "truck", "sheep", "motorcycle", "cow", "bicycle", "train", "boat",
          "clock", "cell phone", "airplane", "tv"]
"""Labels added by hand (cycled), so the built-in source has distinct sounds for every object."""
TARGETS_CPU_S = {8: 0.3, 32: 0.6}
IDLE_TARGET_MB = 400
IDLE_JS = ("() => { const a = document.querySelector(\"[data-testid='stApp']\");"
           " return a && a.getAttribute('data-test-connection-state') === 'CONNECTED'"
           " && a.getAttribute('data-test-script-state') === 'notRunning'; }")
PLAYER_JS = ("() => window.__player ? {applied: window.__player.applied, mount: window.__player.mount,"
             " settling: window.__player.settling === undefined ? 'none' : window.__player.settling} : null")


def _stat(pid: int) -> list[str]:
    """The fields of ``/proc/<pid>/stat`` after the command name (field 3 onwards, 1-based)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` and its waited-for children (``/proc/<pid>/stat``)."""
    ticks = sum(int(v) for v in _stat(pid)[11:15])  # utime stime cutime cstime (fields 14-17, 1-based)
    return ticks / os.sysconf("SC_CLK_TCK")


def kernel_share(pid: int) -> tuple[float, int]:
    """System CPU seconds and minor page faults of process ``pid`` so far (``/proc/<pid>/stat``)."""
    fields = _stat(pid)
    return int(fields[12]) / os.sysconf("SC_CLK_TCK"), int(fields[7])  # stime (15), minflt (10)


def rss_mb(pid: int) -> float:
    import psutil

    return psutil.Process(pid).memory_info().rss / 2**20


def wait_idle(page, timeout_ms: int = 300_000) -> None:
    page.wait_for_function(IDLE_JS, timeout=timeout_ms, polling=50)


def settle(page) -> None:
    """Idle, and still idle a moment later (Streamlit may start a second run: fragments, reruns)."""
    wait_idle(page)
    page.wait_for_timeout(300)
    wait_idle(page)


def goto(page, label: str, title: str) -> None:
    page.get_by_role("link", name=label).first.click()
    page.get_by_role("heading", name=title, exact=True).first.wait_for(timeout=120_000)
    settle(page)


def n_objects(page) -> int:
    return int(page.get_by_role("heading", name="objects").first.inner_text().split()[0])


def add_object(page, label: str, x_steps: int) -> None:
    """The Image page's "Add an object by hand" form: a label, a position, submit."""
    expander = page.get_by_text("Add an object by hand").first
    if not page.get_by_role("button", name="Add object").first.is_visible():
        expander.click()
    box = page.get_by_role("combobox").last  # the form's Label select (the example photo select comes first)
    box.click()
    page.keyboard.type(label)
    page.keyboard.press("Enter")
    slider = page.get_by_role("slider").nth(-2)  # Horizontal position (then Importance)
    slider.focus()
    for _ in range(x_steps):
        page.keyboard.press("ArrowRight")
    before = n_objects(page)
    page.get_by_role("button", name="Add object").first.click()
    page.wait_for_function(
        "(n) => { const h = Array.from(document.querySelectorAll('h3')).find(e => / objects$/.test(e.innerText));"
        " return h && parseInt(h.innerText) > n; }", arg=before, timeout=120_000)
    settle(page)


def set_up(page, url: str, tracks: int, photo: Path) -> int:
    """A session with ``tracks`` sounding tracks on the Mix page; returns the number of tracks it got."""
    page.goto(url)
    settle(page)
    page.locator("[data-testid='stFileUploaderDropzoneInput']").set_input_files(str(photo))
    page.get_by_role("heading", name="objects").first.wait_for(timeout=300_000)
    settle(page)
    k = 0
    while n_objects(page) < tracks:
        add_object(page, LABELS[k % len(LABELS)], x_steps=(7 * k) % 100)
        k += 1
    goto(page, "2 · Sounds", "Sounds")
    page.get_by_role("button", name="Find sounds").click()
    page.locator("[data-testid='stAudio']").first.wait_for(state="attached", timeout=600_000)
    settle(page)
    goto(page, "3 · Mix", "Mix")
    page.locator("[data-testid='stPlotlyChart']").nth(1).wait_for(timeout=300_000)
    page.locator("iframe[src*='stems_player']").first.wait_for(state="attached", timeout=300_000)
    wait_applied(page, 0)  # the stems player has its first render
    settle(page)
    return int(page.evaluate(  # the rows of the masking heatmap: one per track
        "() => Array.from(document.querySelectorAll('.js-plotly-plot')).find(g => ((g.layout.title || {}).text || '')"
        ".startsWith('Masking before'))._fullData[0].z.length"))


def player(page) -> dict | None:
    """The stems player's counters (``applied``: renders it has applied; ``settling``: a level preview's token)."""
    from playwright.sync_api import Error

    frame = next((f for f in page.frames if "stems_player" in f.url and not f.is_detached()), None)
    try:
        return None if frame is None else frame.evaluate(PLAYER_JS)
    except Error:  # detached meanwhile (the player was remounted: wait_applied says so)
        return None


def wait_applied(page, after: int, timeout_s: float = 300.0, mount: str | None = None) -> dict:
    """Wait until the player has applied more than ``after`` renders and the page is idle."""
    end = time.perf_counter() + timeout_s
    while time.perf_counter() < end:
        state = player(page)
        if state is not None and mount is not None and state["mount"] != mount:
            raise RuntimeError("the stems player was remounted by a slider move (it would restart playing)")
        if state is not None and state["applied"] > after and page.evaluate(IDLE_JS):
            return state
        page.wait_for_timeout(20)
    raise TimeoutError("the stems player applied nothing new")


def wait_settled(page, pid: int, t0: float, c0: float) -> tuple[float, float] | None:
    """Latency (from ``t0``) and CPU (from ``c0``) until a level preview's render has arrived; None if none is due."""
    state = player(page)
    if state is None or state["settling"] in (None, "none"):
        return None
    state = wait_applied(page, state["applied"])
    while state["settling"] not in (None, "none"):  # (a newer preview: wait for its render)
        state = wait_applied(page, state["applied"])
    lat = time.perf_counter() - t0
    page.wait_for_timeout(500)
    wait_idle(page)
    return lat, cpu_seconds(pid) - c0


def slider_moves(page, pid: int, moves: int, direction: str = "alternate", each_settle: bool = False,
                 name: str = "attenuation_db"):
    """Latency and server CPU seconds of ``moves`` one-step moves of mix slider ``name``, and of the settle.

    ``name`` is the :class:`~imgext.options.MixSettings` field (widget key ``mix_<name>``). A slider at
    its top moves down first (EQ strength starts at 1).
    """
    from imgext.options import MixSettings, specs

    label = next(s.label for s in specs(MixSettings) if s.name == name)
    slider = page.locator("[data-testid='stSlider']").filter(has=page.get_by_text(label, exact=True)) \
        .get_by_role("slider").first
    at_top = slider.get_attribute("aria-valuenow") == slider.get_attribute("aria-valuemax")
    keys = ("ArrowLeft", "ArrowRight") if at_top else ("ArrowRight", "ArrowLeft")
    latencies, cpus, settle = [], [], None
    kernel = []  # (system CPU-s, minor page faults) of each move
    for k in range(moves):
        state = player(page)
        slider.focus()
        k0 = kernel_share(pid)
        c0, t0 = cpu_seconds(pid), time.perf_counter()
        page.keyboard.press(keys[0] if k % 2 == 0 or direction == "up" else keys[1])
        wait_applied(page, state["applied"], mount=state["mount"])
        latencies.append(time.perf_counter() - t0)
        page.wait_for_timeout(500)  # the tail of the run (media registration, GC) is the move's CPU too
        wait_idle(page)
        if each_settle:
            got = wait_settled(page, pid, t0, c0)
            if got is not None:
                latencies[-1], c = got
                cpus.append(c)
                kernel.append(tuple(b - a for a, b in zip(k0, kernel_share(pid))))
                continue
        cpus.append(cpu_seconds(pid) - c0)
        kernel.append(tuple(b - a for a, b in zip(k0, kernel_share(pid))))
    if not each_settle:
        settle = wait_settled(page, pid, time.perf_counter(), cpu_seconds(pid))
    return latencies, cpus, settle, kernel


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tracks", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--moves", type=int, default=7)
    parser.add_argument("--direction", choices=["alternate", "up"], default="alternate",
                        help="back and forth between two positions, or a new position every move")
    parser.add_argument("--settle", action="store_true", help="wait for the render after every move and count it "
                        "in the move (by default only after the last: the user stops once)")
    parser.add_argument("--slider", nargs="+", default=["attenuation_db"], metavar="NAME",
                        help="the MixSettings fields whose sliders move, one after the other in the same session (attenuation_db, loudness_lufs, eq_strength, "
                        "max_cut_db, reverb_amount, fov_deg, activity, ambience_db ...)")
    parser.add_argument("--profile", metavar="FILE", help="record the server with py-spy during the slider moves "
                        "(raw stacks, one file per slider and track count: FILE.<slider>.<n>)")
    parser.add_argument("--profile-rate", type=int, default=50, metavar="HZ",
                        help="py-spy's samples per second with --profile (more: finer, and a heavier load on the server)")
    args = parser.parse_args()

    from importlib.util import find_spec

    from tests.browser import chromium, fresh_dirs, streamlit_server

    photo = Path(list(find_spec("ultralytics").submodule_search_locations)[0]) / "assets" / "bus.jpg"  # no torch import
    work = Path(tempfile.mkdtemp(prefix="imgext-appbench-"))
    (work / "tmp").mkdir()
    env = {**fresh_dirs(work), "IMGEXT_YOLO_WEIGHTS": WEIGHTS, "YOLO_AUTOINSTALL": "false", "YOLO_OFFLINE": "true",
           "FREESOUND_API_KEY": ""}
    rows = []
    with streamlit_server(env) as (url, proc), chromium() as browser:
        pid = proc.pid
        cold = rss_mb(pid)
        idle = None
        for n in args.tracks:
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            page = context.new_page()
            if idle is None:  # the first session: the model is loaded by its detection
                page.goto(url)
                settle(page)
                page.locator("[data-testid='stFileUploaderDropzoneInput']").set_input_files(str(photo))
                page.get_by_role("heading", name="objects").first.wait_for(timeout=300_000)
                settle(page)
                time.sleep(3.0)
                idle = rss_mb(pid)
                print(f"idle RSS: {cold:.0f} MB before any session, {idle:.0f} MB with the model loaded and one "
                      f"session on the Image page (target <= {IDLE_TARGET_MB} MB)", flush=True)
            t0 = time.perf_counter()
            got = set_up(page, url, n, photo)
            print(f"{n} objects, {got} tracks: set up in {time.perf_counter() - t0:.0f} s", flush=True)
            for name in args.slider:
                spy = None
                if args.profile:
                    import subprocess

                    spy = subprocess.Popen([str(Path(sys.executable).with_name("py-spy")), "record", "-p", str(pid),
                                            "-r", str(args.profile_rate), "-f", "raw", "-o", f"{args.profile}.{name}.{n}", "--nonblocking"],
                                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    time.sleep(1.0)
                lat, cpu, settled, kernel = slider_moves(page, pid, args.moves, args.direction, args.settle, name)
                if spy is not None:
                    import signal

                    spy.send_signal(signal.SIGINT)
                    spy.wait(30)
                rows.append((got, name, statistics.median(lat), statistics.median(cpu), lat, cpu, settled))
                print(f"  {name}: slider release -> new audio: median {statistics.median(lat):.2f} s "
                      f"({', '.join(f'{v:.2f}' for v in lat)}); server CPU per move: median {statistics.median(cpu):.2f} s "
                      f"({', '.join(f'{v:.2f}' for v in cpu)}); of it system CPU "
                      f"{', '.join(f'{v[0]:.2f}' for v in kernel)} s, minor page faults "
                      f"{', '.join(f'{v[1]:,}' for v in kernel)}", flush=True)
                if settled is not None:
                    print(f"  {name}: after the last move, the render when the sliders rest: {settled[0]:.2f} s after "
                          f"the move's end, {settled[1]:.2f} server CPU-s", flush=True)
            context.close()
        peak = rss_mb(pid)
    print("\n| tracks | slider | release -> new audio (median) | server CPU per move (median) | settle render CPU "
          "| target CPU |")
    print("|---|---|---|---|---|---|")
    for n, name, lat, cpu, _, _, settled in rows:
        target = TARGETS_CPU_S.get(min(TARGETS_CPU_S, key=lambda t: abs(t - n)))
        print(f"| {n} | {name} | {lat:.2f} s | {cpu:.2f} s | {'-' if settled is None else '%.2f s' % settled[1]} "
              f"| {'<= %.1f s' % target if target else '-'}{' (missed)' if target and cpu > target else ''} |")
    print(f"\nidle RSS with the model loaded: {idle:.0f} MB (target <= {IDLE_TARGET_MB} MB); "
          f"{cold:.0f} MB before any session; {peak:.0f} MB at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Every network wait has a deadline: a Freesound that drips, stalls, never ends or explodes cannot hang anything.

The hostile modes of ``tests/freesound_server.py`` (drip: 1 byte per second; slow headers; an endless body;
a gzip bomb), for search answers and for previews, against the client, ``fetch_tracks`` with a budget, the
command line (time and peak memory of the real ``python -m imgext render``) and the app.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from imgext.budget import Budget
from imgext.composition.tracks import fetch_tracks
from imgext.errors import CancelledError, SourceError, SourceTimeoutError
from imgext.options import MixSettings
from imgext.sounds.builtin import BuiltinSource
from imgext.sounds.cache import DiskCache
from imgext.sounds.freesound import MAX_PREVIEW_BYTES, FreesoundClient, FreesoundSource
from imgext.sounds.selection import choose_sounds
from imgext.sounds.sources import FallbackSource
from imgext.vision.placement import manual_object
from tests.freesound_server import HOSTILE_MODES, FreesoundServer

ROOT = Path(__file__).resolve().parents[1]
KEY = "deadline-key"
SETTINGS = MixSettings(duration_s=3.0, seed=2)
DEADLINE_S = 1.0
TIMES: dict[str, float] = {}  # mode -> seconds to fail, printed at the end (pytest -s)
RSS: dict[str, int] = {}  # mode -> peak RSS above a normal render's, MB


@pytest.fixture(scope="module")
def server():
    from tests.freesound_server import _gzip_bomb

    _gzip_bomb(b" "), _gzip_bomb(b"\x00")  # built once (~1 s), not inside a timed request
    with FreesoundServer(api_key=KEY) as srv:
        yield srv


@pytest.fixture(autouse=True)
def clean(server):
    server.reset()
    yield
    server.reset()


def client(server, **kw) -> FreesoundClient:
    kw = {"search_deadline_s": DEADLINE_S, "preview_deadline_s": DEADLINE_S, "max_retries": 1, "backoff_s": 0.01,
          **kw}
    return FreesoundClient(KEY, base_url=server.base_url, **kw)


def source(server, tmp_path, **kw) -> FreesoundSource:
    return FreesoundSource(client(server, **kw), cache=DiskCache(tmp_path / "cache"))


@pytest.mark.slow  # end to end in real time (a subprocess, a deadline or a whole render)
def test_gzip_bomb_is_a_valid_gzip_of_one_gib():
    import zlib

    from tests.freesound_server import GZIP_BOMB_DECODED, _gzip_bomb

    bomb = _gzip_bomb(b" ")
    assert len(bomb) < 2 * 2**20
    d, n, data = zlib.decompressobj(32 + zlib.MAX_WBITS), 0, bomb
    while data:
        n += len(d.decompress(data, 1 << 24))
        data = d.unconsumed_tail
    assert d.eof and n == GZIP_BOMB_DECODED


@pytest.mark.parametrize("target", ["api", "preview"])
@pytest.mark.parametrize("mode", HOSTILE_MODES)
@pytest.mark.slow  # end to end in real time (a subprocess, a deadline or a whole render)
def test_every_hostile_answer_fails_in_bounded_time(server, target, mode):
    url = client(server).search("dog", max_results=1)[0]["previews"]["preview-hq-mp3"]
    server.reset()
    setattr(server.faults, f"{target}_hostile", mode)
    sizes = mode in ("endless", "gzip_bomb")  # a long deadline, so that the size cap is what ends them
    c = client(server, search_deadline_s=30.0, preview_deadline_s=30.0) if sizes else client(server)
    t0 = time.monotonic()
    with pytest.raises(SourceError) as info:
        c.search("dog", max_results=2) if target == "api" else c.download(url)
    TIMES[f"{target} {mode}"] = elapsed = time.monotonic() - t0
    message = str(info.value)
    if mode in ("drip", "slow_headers"):
        assert isinstance(info.value, SourceTimeoutError)
        assert f"no complete answer within {DEADLINE_S:g} s (after 2 attempts)" in message
    else:  # endless and gzip bomb: the decoded size is capped while it streams
        assert "larger than" in message and "(after 2 attempts)" in message
    assert server.count("search" if target == "api" else "preview") == 2  # one retry
    if not sizes:  # two attempts of DEADLINE_S each at most, plus the backoff; generous for a loaded machine
        assert elapsed < 2 * DEADLINE_S + 6.0, elapsed


@pytest.mark.slow  # end to end in real time (a subprocess, a deadline or a whole render)
def test_a_stalled_search_falls_back_to_the_builtin_sounds(server, tmp_path):
    server.faults.api_hostile = "drip"
    src = FallbackSource(source(server, tmp_path), BuiltinSource())
    objs = [manual_object("dog", 0.3), manual_object("cat", 0.7)]
    assignments = choose_sounds(objs, src, n_candidates=2)
    assert all(a.candidate is not None and a.candidate.synthetic for a in assignments)
    assert any("stalled" in note for note in src.notes)


@pytest.mark.parametrize("fallback", [False, True])
@pytest.mark.slow  # end to end in real time (a subprocess, a deadline or a whole render)
def test_budget_ends_the_downloads_and_the_render_goes_on(server, tmp_path, fallback):
    primary = source(server, tmp_path, preview_deadline_s=60.0)  # only the budget can end a drip now
    src = FallbackSource(primary, BuiltinSource()) if fallback else primary
    objs = [manual_object("dog", 0.3), manual_object("cow", 0.7)]
    assignments = choose_sounds(objs, src, n_candidates=2)
    server.faults.preview_hostile = "drip"
    t0 = time.monotonic()
    tracks, assignments, _ = fetch_tracks(objs, assignments, src, settings=SETTINGS, budget=Budget(2.0))
    elapsed = time.monotonic() - t0
    assert elapsed < 2.0 + 4.0, elapsed
    if fallback:
        assert tracks.n_tracks == 2 and all(a.candidate.synthetic for a in assignments)
        assert all("stand-in" in a.reason and "budget ran out" in a.reason for a in assignments)
    else:
        assert tracks.n_tracks == 0
        assert all(a.candidate is None and "budget ran out" in a.reason for a in assignments)


def _budget_workers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(("imgext-budget-task", "imgext-fetch"))]


@pytest.mark.slow  # end to end in real time (a subprocess, a deadline or a whole render)
def test_cancel_interrupts_a_dripping_download_at_once(server, tmp_path):
    src = source(server, tmp_path, preview_deadline_s=60.0)
    objs = [manual_object("dog", 0.5)]
    assignments = choose_sounds(objs, src, n_candidates=1)
    server.faults.preview_hostile = "drip"
    budget = Budget()
    ticks = []

    def tick():  # what a UI does between redraws; Streamlit raises here when the user presses Cancel
        ticks.append(time.monotonic())
        if len(ticks) == 4:
            raise KeyboardInterrupt("cancel pressed")

    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        budget.run(lambda: fetch_tracks(objs, assignments, src, settings=SETTINGS), tick=tick, interval_s=0.2)
    assert budget.cancelled
    deadline = time.monotonic() + 5.0
    while _budget_workers() and time.monotonic() < deadline:
        time.sleep(0.05)
    TIMES["cancel (drip preview)"] = time.monotonic() - t0
    assert not _budget_workers(), "the download threads end once cancelled"
    with pytest.raises(CancelledError):
        budget.check()


@pytest.mark.slow  # end to end in real time (a subprocess, a deadline or a whole render)
def test_a_stalled_session_does_not_block_another(tmp_path):
    """Two sessions share the disk cache; one's Freesound drips, the other's answers: the second is not held up."""
    cache = DiskCache(tmp_path / "shared-cache")
    objs = [manual_object("dog", 0.3), manual_object("cat", 0.7)]
    with FreesoundServer(api_key=KEY) as slow, FreesoundServer(api_key=KEY) as fast:
        slow_src = FreesoundSource(FreesoundClient(KEY, base_url=slow.base_url), cache=cache)
        fast_src = FreesoundSource(FreesoundClient(KEY, base_url=fast.base_url), cache=cache)
        slow_assignments = choose_sounds(objs, slow_src)
        slow.faults.preview_hostile = "drip"
        budget = Budget(30.0)
        outcome = []

        def stalled_session():
            try:
                fetch_tracks(objs, slow_assignments, slow_src, settings=SETTINGS, budget=budget)
            except CancelledError as exc:
                outcome.append(exc)

        stalled = threading.Thread(target=stalled_session, daemon=True)
        stalled.start()
        time.sleep(0.5)
        t0 = time.monotonic()
        tracks, _, _ = fetch_tracks(objs, choose_sounds(objs, fast_src), fast_src, settings=SETTINGS, budget=Budget(30.0))
        TIMES["other session while one drips"] = time.monotonic() - t0
        assert tracks.n_tracks == 2
        assert stalled.is_alive(), "the dripping session is still waiting"
        budget.cancel()
        stalled.join(5)
        assert not stalled.is_alive() and isinstance(outcome[0], CancelledError)


# --- the command line: every render ends within its budget, with a result or one clear line -------------

BUDGET_S = 15.0
SLACK_S = 3.0  # mixing and writing after the network stopped, on a machine shared by many test runs


def _render(server, tmp_path, source_spec: str, **env_extra) -> tuple[subprocess.CompletedProcess, float, int]:
    """``python -m imgext render`` against ``server``: (result, seconds, peak RSS in MB)."""
    out = tmp_path / "out"
    env = dict(os.environ, FREESOUND_API_KEY=KEY, IMGEXT_FREESOUND_URL=server.base_url, IMGEXT_CACHE_DIR=str(tmp_path / "c"),
               IMGEXT_RENDER_BUDGET_S=str(BUDGET_S), IMGEXT_SEARCH_DEADLINE_S="1", IMGEXT_PREVIEW_DEADLINE_S="1.5",
               IMGEXT_YOLO_WEIGHTS=str(ROOT.parent / "shared" / "models" / "yolov8n_int8.onnx"), PYTHONPATH=str(ROOT),
               **env_extra)
    timing = tmp_path / "timing"
    # the budget starts with the render (after the model loads): time from there, as the CLI sees it
    code = ("import sys, time, resource; sys.argv[0] = 'imgext'\n"
            "import imgext.pipeline as p\n"
            "orig = p.render_image\n"
            "def timed(*a, **k):\n"
            "    t0 = time.monotonic()\n"
            "    try:\n"
            "        return orig(*a, **k)\n"
            "    finally:\n"
            f"        open({str(timing)!r}, 'w').write(str(time.monotonic() - t0))\n"
            "p.render_image = timed\n"
            "from imgext.cli import main\n"
            "sys.exit(main(sys.argv[1:]))\n")
    cmd = [sys.executable, "-c", code, "render", str(ROOT.parent / "shared" / "images" / "wilddog.jpg"), "--out",
           str(out), "--source", source_spec, "--duration", "4"]
    stdout, stderr = tmp_path / "stdout", tmp_path / "stderr"
    with open(stdout, "w") as so, open(stderr, "w") as se:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=so, stderr=se)
        killer = threading.Timer(240, proc.kill)
        killer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            killer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = float(timing.read_text()) if timing.exists() else float("inf")
    result = subprocess.CompletedProcess(cmd, proc.returncode, stdout.read_text(), stderr.read_text())
    return result, seconds, usage.ru_maxrss // 1024


@pytest.fixture(scope="module")
def baseline_rss(server, tmp_path_factory) -> int:
    r, _, rss = _render(server, tmp_path_factory.mktemp("baseline"), "freesound")
    assert r.returncode == 0, r.stderr
    return rss


@pytest.mark.slow
@pytest.mark.parametrize("target", ["api", "preview"])
@pytest.mark.parametrize("mode", HOSTILE_MODES)
def test_cli_render_ends_within_its_budget(server, tmp_path, baseline_rss, target, mode):
    setattr(server.faults, f"{target}_hostile", mode)
    r, seconds, rss = _render(server, tmp_path, "freesound")
    TIMES[f"cli {target} {mode}"] = seconds
    assert seconds <= BUDGET_S + SLACK_S, (seconds, r.stderr)
    assert "Traceback" not in r.stderr
    if r.returncode == 0:
        assert "objects:" in r.stdout
    else:
        assert r.returncode == 1, r.stderr
        lines = [line for line in r.stderr.splitlines() if line.startswith("imgext: error:")]
        assert len(lines) == 1 and ("stalled" in lines[0] or "larger than" in lines[0] or "budget" in lines[0]), r.stderr
    # bounded: 4 downloads in flight hold at most one capped preview each (a gzip bomb alone would be 1 GiB each)
    bound = baseline_rss + 4 * MAX_PREVIEW_BYTES // 2**20 + 120
    assert rss < bound, f"peak RSS {rss} MB vs {baseline_rss} MB for a normal render"
    RSS[f"cli {target} {mode}"] = rss - baseline_rss


@pytest.mark.slow
@pytest.mark.parametrize("target", ["api", "preview"])
def test_cli_render_with_fallback_finishes_with_builtin_sounds(server, tmp_path, target):
    setattr(server.faults, f"{target}_hostile", "drip")
    r, seconds, _ = _render(server, tmp_path, "freesound+builtin")
    TIMES[f"cli fallback {target} drip"] = seconds
    assert r.returncode == 0, r.stderr
    assert seconds <= BUDGET_S + SLACK_S
    assert "synth" in r.stdout.lower()
    # every object that should sound has a sound (a stall never leaves one silent)
    assert not re.search(r"^  \S+ +no sound:.*(ran out|stalled|larger than)", r.stdout, re.MULTILINE), r.stdout


def teardown_module(module):
    if TIMES:
        print("\nseconds to fail per hostile mode:")
        for k, v in TIMES.items():
            print(f"  {k:<36} {v:6.2f}")
    if RSS:
        print("peak RSS above a normal render (MB):")
        for k, v in RSS.items():
            print(f"  {k:<36} {v:+6d}")


# --- the app: "Find sounds" against a dripping preview finishes within its budget -------------------------


@pytest.mark.slow
@pytest.mark.parametrize("fallback", [True, False])
def test_app_find_sounds_against_a_dripping_preview_finishes_in_time(server, monkeypatch, fallback):
    from streamlit.testing.v1 import AppTest

    budget_s = 6.0
    monkeypatch.setenv("IMGEXT_FREESOUND_URL", server.base_url)
    monkeypatch.setenv("IMGEXT_RENDER_BUDGET_S", str(budget_s))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    at.secrets["FREESOUND_API_KEY"] = KEY
    at.run()
    image = (ROOT.parent / "shared" / "images" / "wilddog.jpg").read_bytes()
    at.file_uploader(key="upload").set_value(("wilddog.jpg", image, "image/jpeg"))
    at.run()
    at.switch_page("pages/2_sounds.py").run()
    if not fallback:
        at.checkbox(key="fallback").uncheck().run()
    server.faults.preview_hostile = "drip"
    t0 = time.monotonic()
    at.button(key="find_sounds").click().run(timeout=budget_s + 60)
    TIMES[f"app find sounds, drip preview, fallback={fallback}"] = seconds = time.monotonic() - t0
    assert not at.exception, at.exception
    assert seconds < budget_s + 30, seconds  # the budget, plus an AppTest rerun on a loaded machine
    labels = [s.proto.label for s in at.get("expandable")] if at.get("expandable") else []
    if fallback:  # every object still gets a (synthetic, labelled) sound
        assert len(at.get("audio")) >= 3
        assert any("a stand" in c.value for c in at.caption), [c.value for c in at.caption]  # "stand\\-in" (Markdown)
    else:
        warnings = [w.value for w in at.warning]
        assert any("ran out" in w or "stalled" in w for w in warnings) or any("ran out" in e.value for e in at.error), (
            warnings, [e.value for e in at.error], labels)

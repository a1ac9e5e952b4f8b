"""Faults: a render killed midway, a cache folder that is full, read-only or corrupt, a slow or flaky Freesound."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import pytest
import soundfile as sf
from streamlit.testing.v1 import AppTest

from tests.freesound_server import FreesoundServer

pytestmark = pytest.mark.slow  # end to end: subprocesses, servers or the whole app; skipped by the fast loop

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app.py")
KEY = "fault-key"


# --- a render killed at any moment never leaves a half-written file that looks complete -----------------


def check_folder(out: Path, seconds: float) -> str:
    """Every file under a final name is whole; scene.json exists only beside a complete render."""
    for wav in out.rglob("*.wav"):
        if wav.name.startswith("."):
            continue
        info = sf.info(str(wav))
        data, _ = sf.read(str(wav), dtype="float32")
        assert data.shape[0] == info.frames == int(round(seconds * 44100)), wav
    scene_path = out / "scene.json"
    if not scene_path.exists():
        assert not (out / "bundle.zip").exists() or zipfile.ZipFile(out / "bundle.zip").testzip() is None
        return "incomplete (no scene.json)"
    scene = json.loads(scene_path.read_text())
    for rel in scene["files"]:
        if rel != "bundle.zip":
            assert (out / rel).is_file(), f"scene.json lists {rel} but it is missing"
    if (out / "bundle.zip").exists():
        assert zipfile.ZipFile(out / "bundle.zip").testzip() is None
    return "complete"


def test_render_killed_midway_leaves_nothing_half_written(tmp_path, bus_jpg, model_path):
    out = tmp_path / "out"
    seconds = 12.0
    cmd = [sys.executable, "-m", "imgext", "render", str(bus_jpg), "--out", str(out), "--duration", str(seconds)]
    env = dict(os.environ, IMGEXT_YOLO_WEIGHTS=str(model_path))
    # a first complete render, then kills at different moments of the next ones (same folder)
    assert subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, timeout=300).returncode == 0
    assert check_folder(out, seconds) == "complete"
    outcomes = []
    # None: kill while detecting/mixing; a number: kill that long after the write phase began
    for k, delay in enumerate((None, 0.0, 0.02, 0.1, 0.3, 0.6)):
        proc = subprocess.Popen(cmd + ["--seed", str(k + 1)], cwd=ROOT, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if delay is None:
            time.sleep(1.0)
        else:
            deadline = time.monotonic() + 240
            while (out / "scene.json").exists() and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.002)  # the previous render's marker goes first when writing starts
            time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        outcomes.append(check_folder(out, seconds))
    assert outcomes[0] == "complete"  # killed before writing: the previous render is untouched
    assert "incomplete (no scene.json)" in outcomes[1:]  # killed inside the write: not presented as complete
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert check_folder(out, seconds) == "complete"
    assert not list(out.rglob(".*.part")), "left-over temporary files are cleaned by the next render"


# --- cache folders that are full, read-only or corrupt ----------------------------------------------


CHILD = textwrap.dedent(
    """
    import json, sys
    from imgext.sounds.cache import DiskCache
    from imgext.sounds.freesound import FreesoundClient, FreesoundSource
    from imgext.composition.tracks import fetch_tracks
    from imgext.options import MixSettings
    from imgext.vision.placement import manual_object
    from imgext.sounds.selection import choose_sounds
    cache_dir, url, key = sys.argv[1:4]
    src = FreesoundSource(FreesoundClient(key, base_url=url, backoff_s=0.01), cache=DiskCache(cache_dir))
    objs = [manual_object("dog", 0.2), manual_object("cat", 0.8), manual_object("cow", 0.5)]
    tracks, assignments, _ = fetch_tracks(objs, choose_sounds(objs, src), src, settings=MixSettings(duration_s=2.0))
    print(json.dumps({"tracks": tracks.n_tracks, "warnings": src.cache.warnings}))
    """
)


def _mount_and_run(mount_opts: str, cache_dir: Path, server: FreesoundServer) -> dict:
    if shutil.which("unshare") is None:
        pytest.skip("unshare is not available to make a private read-only or full folder")
    cache_dir.mkdir(parents=True, exist_ok=True)
    child = cache_dir.parent / "child.py"
    child.write_text(CHILD)
    script = (
        f"mount -t tmpfs -o {mount_opts} tmpfs {shlex.quote(str(cache_dir))} && "
        f"{shlex.quote(sys.executable)} {shlex.quote(str(child))} {shlex.quote(str(cache_dir))} {server.base_url} {KEY}"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    r = subprocess.run(["unshare", "-rm", "sh", "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    if "mount" in r.stderr and r.returncode != 0 and "Operation not permitted" in r.stderr:
        pytest.skip(f"cannot mount a private tmpfs here: {r.stderr.strip()}")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def server():
    with FreesoundServer(api_key=KEY) as srv:
        yield srv


def test_full_cache_folder_is_reported_and_work_goes_on(tmp_path, server):
    result = _mount_and_run("size=96k", tmp_path / "cache", server)  # room for the index, not for previews
    assert result["tracks"] == 3
    assert any("cannot be written" in w or "cannot open" in w for w in result["warnings"]), result


def test_read_only_cache_folder_is_reported_and_work_goes_on(tmp_path, server):
    result = _mount_and_run("ro,size=1m", tmp_path / "cache", server)
    assert result["tracks"] == 3
    assert result["warnings"] and "continuing without the cache" in result["warnings"][0]


def test_corrupt_cache_folder_is_reported_and_work_goes_on(tmp_path, server):
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir()
    (cache_dir / "cache.db").write_bytes(b"\x00garbage" * 4096)
    r = subprocess.run([sys.executable, "-c", CHILD, str(cache_dir), server.base_url, KEY], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout.strip().splitlines()[-1])
    assert result["tracks"] == 3 and "cannot open the cache folder" in result["warnings"][0]


# --- the app against a slow, flaky, throttling Freesound --------------------------------------------


def _app_flow(server: FreesoundServer, images_dir: Path, monkeypatch) -> AppTest:
    monkeypatch.setenv("IMGEXT_FREESOUND_URL", server.base_url)
    at = AppTest.from_file(APP, default_timeout=240)
    at.secrets["FREESOUND_API_KEY"] = KEY
    at.run()
    at.file_uploader(key="upload").set_value(("wilddog.jpg", (images_dir / "wilddog.jpg").read_bytes(), "image/jpeg"))
    at.run()
    at.switch_page("pages/2_sounds.py").run()
    at.checkbox(key="fallback").uncheck().run()
    at.button(key="find_sounds").click().run()
    return at


@pytest.mark.parametrize(
    "fault,value",
    [
        ("delay_s", 1.0),            # slow: a second per request
        ("fail_every", 3),           # every third request a 502 from a proxy
        ("drop_every", 4),           # every fourth connection dropped without an answer
        ("truncate_previews", 2),    # two downloads cut short midway
        ("corrupt_previews", 1),     # one preview that is not audio
        ("throttle_minute", 1),      # one per-minute 429: waited out, then served
    ],
)
def test_app_survives_a_misbehaving_freesound(server, images_dir, monkeypatch, fault, value):
    server.reset()
    setattr(server.faults, fault, value)
    at = _app_flow(server, images_dir, monkeypatch)
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert len(at.get("audio")) >= 3, "the dogs and the cat still get real recordings"
    server.reset()


def test_app_continues_from_the_cache_when_the_day_is_over(server, images_dir, monkeypatch):
    server.reset()
    first = _app_flow(server, images_dir, monkeypatch)  # fills the shared cache
    assert len(first.get("audio")) >= 3
    server.faults.throttle_day = True
    again = _app_flow(server, images_dir, monkeypatch)
    assert not again.exception
    assert len(again.get("audio")) >= 3, "cached searches and previews still play"
    server.reset()

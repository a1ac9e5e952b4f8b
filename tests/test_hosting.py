"""Hosted mode: visitors cannot change shared presets or the cache; their presets stay theirs; a fair queue."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from imgext.errors import ParameterError
from imgext.hosting import (
    Access,
    HeavyPool,
    LeftSessions,
    Presets,
    SessionPresets,
    check_password,
    describe_queue,
    release_memory,
)
from imgext.settings import load_settings
from imgext.sounds.filters import PresetStore, SearchFilter

APP = str(Path(__file__).resolve().parents[1] / "app.py")
FIELD = SearchFilter(duration_max_s=10.0, licenses=("cc0",))


def _presets(tmp_path, *, hosted=True, admin=False, n=3):
    return Presets(PresetStore(tmp_path), SessionPresets(max_presets=n), Access(hosted=hosted, admin=admin))


def test_settings_read_hosted_mode_and_bounds():
    local = load_settings({})
    hosted = load_settings({"IMGEXT_HOSTED": "1", "IMGEXT_ADMIN_PASSWORD": "s3cret", "IMGEXT_HEAVY_WORKERS": "3"})
    assert not local.hosted and hosted.hosted and hosted.heavy_workers == 3
    assert "s3cret" not in repr(hosted)
    assert hosted.max_scene_s < local.max_scene_s and hosted.max_upload_bytes < local.max_upload_bytes
    with pytest.raises(ParameterError):
        load_settings({"IMGEXT_HEAVY_WORKERS": "0"})


def test_visitors_presets_stay_in_their_session(tmp_path):
    p = _presets(tmp_path)
    assert p.save("mine", FIELD) == "session"
    assert not (tmp_path / "presets.json").exists(), "the shared file is never written by a visitor"
    assert "mine" in p.names() and p.load("mine") == FIELD and p.can_delete("mine")
    other = _presets(tmp_path)
    assert "mine" not in other.names(), "another visitor does not see it"


def test_visitors_cannot_overwrite_or_delete_shared_presets(tmp_path):
    PresetStore(tmp_path).save("team", FIELD)
    p = _presets(tmp_path)
    with pytest.raises(ParameterError, match="shared preset"):
        p.save("team", SearchFilter())
    assert not p.can_delete("team")
    with pytest.raises(ParameterError, match="administrator"):
        p.delete("team")
    assert PresetStore(tmp_path).load("team") == FIELD


def test_presets_per_session_are_bounded(tmp_path):
    p = _presets(tmp_path, n=3)
    for i in range(3):
        p.save(f"p{i}", FIELD)
    with pytest.raises(ParameterError, match="at most 3"):
        p.save("p3", FIELD)
    p.save("p0", SearchFilter())  # replacing one is fine


def test_presets_download_and_upload_round_trip(tmp_path):
    p = _presets(tmp_path)
    p.save("a", FIELD)
    data = p.own.to_json()
    q = _presets(tmp_path)
    assert q.own.load_json(data) == 1 and q.load("a") == FIELD
    with pytest.raises(ParameterError, match="not a presets file"):
        q.own.load_json(b"{\"presets\": 3}")
    with pytest.raises(ParameterError, match="at most"):
        q.own.load_json(b" " * 70_000)
    many = SessionPresets(max_presets=50)
    for i in range(10):
        many.save(f"x{i}", FIELD)
    with pytest.raises(ParameterError, match="at most 3"):
        q.own.load_json(many.to_json())


def test_admin_writes_the_shared_library_and_local_runs_are_owners(tmp_path):
    assert _presets(tmp_path, admin=True).save("shared", FIELD) == "shared"
    assert _presets(tmp_path, hosted=False).save("local", FIELD) == "shared"
    assert {"shared", "local"} <= set(PresetStore(tmp_path).names())
    assert Access(hosted=True).can_clear_cache is False
    assert Access(hosted=True, admin=True).can_clear_cache and Access(hosted=False).can_clear_cache


def test_password_check():
    assert check_password("s3cret", "s3cret")
    assert not check_password("s3cre", "s3cret") and not check_password("", "") and not check_password("x", None)


def test_heavy_pool_serves_in_order_and_shows_the_queue():
    pool = HeavyPool(1)
    release = threading.Event()
    seen: dict[str, list] = {"b": [], "c": []}
    order = []

    def first():
        with pool.slot("mix"):
            order.append("a")
            release.wait(10)

    def later(name, kind):
        with pool.slot(kind, on_wait=lambda ahead: seen[name].append(list(ahead))):
            order.append(name)

    ta = threading.Thread(target=first)
    ta.start()
    while pool.status()[0] == 0:
        time.sleep(0.01)
    tb = threading.Thread(target=later, args=("b", "mix"))
    tb.start()
    while pool.status()[1] < 1:
        time.sleep(0.01)
    tc = threading.Thread(target=later, args=("c", "detection"))
    tc.start()
    while pool.status()[1] < 2:
        time.sleep(0.01)
    time.sleep(0.1)
    release.set()
    for t in (ta, tb, tc):
        t.join(10)
    assert order == ["a", "b", "c"], "first come, first served"
    assert seen["b"][0] == ["mix"] and seen["c"][0] == ["mix", "mix"]
    assert describe_queue(seen["c"][0]).startswith("The server is busy: 2 mixes ahead of you")
    assert "1 step ahead" in describe_queue(["x"]) and "2 steps" in describe_queue(["mix", "detection"])
    assert pool.status() == (0, 0) and pool.served == 3


def test_heavy_pool_runs_up_to_workers_at_once():
    pool = HeavyPool(2)
    active, peak, lock = [0], [0], threading.Lock()

    def job():
        with pool.slot("mix"):
            with lock:
                active[0] += 1
                peak[0] = max(peak[0], active[0])
            time.sleep(0.05)
            with lock:
                active[0] -= 1

    threads = [threading.Thread(target=job) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert peak[0] == 2 and pool.served == 8


@pytest.mark.slow
def test_hosted_app_keeps_a_visitors_preset_in_the_session(tmp_path, monkeypatch, images_dir):
    monkeypatch.setenv("IMGEXT_HOSTED", "1")
    at = AppTest.from_file(APP, default_timeout=180)
    at.secrets["FREESOUND_API_KEY"] = "k"
    at.run()
    assert any(e.label == "Administrator" for e in at.expander)
    at.file_uploader(key="upload").set_value(("wildcat.jpg", (images_dir / "wildcat.jpg").read_bytes(), "image/jpeg"))
    at.run()
    at.switch_page("pages/2_sounds.py").run()
    assert not at.exception, at.exception
    at.text_input(key="preset_name").input("my dogs").run()
    at.button(key="preset_save").click().run()
    assert not at.exception, at.exception
    assert "my dogs" in at.session_state["imgext_session"].own_presets.presets
    assert not (tmp_path / "data" / "presets.json").exists()
    assert any("read-only here" in c.value for c in at.caption)


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_left_sessions_closes_only_sessions_gone_past_the_grace_time_then_releases_memory():
    clock, connected, closed, released = _Clock(), {"a", "b"}, [], []
    left = LeftSessions(lambda sid: sid in connected, closed.append, grace_s=120, release=lambda: released.append(1),
                        clock=clock)
    for sid in ("a", "b", "c"):  # "c" was seen once and its browser is gone already
        left.seen(sid)
    assert left.sweep() == [] and not released  # nobody gone long enough
    connected.discard("b")  # "b" leaves at t = 1000
    clock.now += 119
    assert left.sweep() == [] and closed == []
    clock.now += 1  # "c" gone 120 s, "b" gone 120 s (its last sighting was at 1000)
    assert sorted(left.sweep()) == ["b", "c"] and sorted(closed) == ["b", "c"]
    assert not released  # the close runs on the server's loop: memory goes back on the next sweep
    assert left.sweep() == [] and released == [1] and left.releases == 1
    assert left.sweep() == [] and released == [1]  # nothing more to release
    assert left.tracked == 1 and left.closed == 2
    clock.now += 10_000  # a connected session is never closed, however long it stays
    assert left.sweep() == [] and sorted(closed) == ["b", "c"]


def test_left_sessions_keeps_a_session_that_came_back():
    clock, connected, closed = _Clock(), set(), []
    left = LeftSessions(lambda sid: sid in connected, closed.append, grace_s=60, release=lambda: None, clock=clock)
    left.seen("x")
    clock.now += 50
    connected.add("x")  # the browser reconnected within the window
    assert left.sweep() == []
    connected.discard("x")
    clock.now += 59  # gone again: its window starts from when it was last seen connected
    assert left.sweep() == []
    clock.now += 1
    assert left.sweep() == ["x"] and closed == ["x"]
    with pytest.raises(ParameterError):
        LeftSessions(bool, closed.append, grace_s=0)


def test_release_memory_trims_on_glibc():
    import platform

    # True where glibc's malloc_trim ran (Debian, CI); elsewhere only garbage is collected
    assert release_memory() is (platform.libc_ver()[0] == "glibc")


def test_left_sessions_empties_caches_only_when_the_last_session_is_gone():
    clock, connected, emptied, released = _Clock(), {"a"}, [], []
    left = LeftSessions(lambda sid: sid in connected, lambda sid: None, grace_s=10, release=lambda: released.append(1),
                        when_empty=lambda: emptied.append(len(released)), clock=clock)
    left.seen("a")
    left.seen("b")
    clock.now += 10
    assert left.sweep() == ["b"]  # "a" is still here
    left.sweep()
    assert released == [1] and emptied == []
    connected.clear()
    clock.now += 10
    assert left.sweep() == ["a"]
    left.sweep()
    assert emptied == [1] and released == [1, 1]  # emptied first, then the memory released
    left.seen("c")  # a newcomer between the close and the release: the caches stay
    connected.add("c")
    left.seen("d")
    clock.now += 10
    assert left.sweep() == ["d"]
    left.sweep()
    assert emptied == [1]


def test_clear_memory_caches_empties_every_cache():
    from imgext.sounds.memo import MemoryCache, clear_memory_caches

    a, b = MemoryCache(1 << 20), MemoryCache(1 << 20)
    a.get("x", lambda: b"1" * 1000)
    b.get("y", lambda: b"2" * 500)
    assert clear_memory_caches() >= 1500
    assert len(a) == 0 and len(b) == 0 and a.nbytes == 0


def _fresh_process(code: str, *args: str, timeout_s: float) -> subprocess.CompletedProcess:
    """Run ``code`` (with ``args`` as ``sys.argv[1:]``) in a Python process of its own (no BLAS thread count from the
    environment); it must succeed."""
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")}
    done = subprocess.run([sys.executable, "-c", code, *args], cwd=Path(APP).parent, capture_output=True, text=True,
                          env={**env, "PYTHONPATH": str(Path(APP).parent)}, timeout=timeout_s)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def test_the_app_mixes_on_one_blas_thread_for_good():
    """Sessions mix at once on threads: the app pins one BLAS thread for the process (tests/test_determinism.py).

    In a process of its own, as a server is: OpenBLAS ignores a thread count set from another thread once the
    main thread has set one, and other tests of this process mix on the main thread.
    """
    code = (
        "import json\n"
        "from streamlit.testing.v1 import AppTest\n"
        "from threadpoolctl import threadpool_info\n"
        f"at = AppTest.from_file({APP!r}, default_timeout=180)\n"
        "at.run()\n"
        "assert not at.exception, at.exception\n"
        # numpy's and scipy's BLAS, the engine's (OpenCV brings its own and never mixes)
        "print(json.dumps([(i['filepath'], i['num_threads']) for i in threadpool_info() if i['user_api'] == 'blas'"
        " and ('numpy' in i['filepath'] or 'scipy' in i['filepath'])]))\n"
    )
    done = _fresh_process(code, timeout_s=300)
    info = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(info) >= 2
    assert {n for _, n in info} == {1}, info


def test_a_pin_that_openblas_ignores_is_not_taken_for_one():
    """OpenBLAS ignores a count set from another thread once the main thread has set one: the pin says so
    and leaves the per-call limit in place instead of trusting a count that did not change."""
    code = (
        "import threading, warnings\n"
        "from threadpoolctl import threadpool_info\n"
        "from imgext.mix import mixer\n"
        "with mixer.single_blas_thread():\n    pass\n"
        "caught = []\n"
        "def pin():\n"
        "    with warnings.catch_warnings(record=True) as w:\n"
        "        warnings.simplefilter('always')\n"
        "        mixer.pin_one_blas_thread()\n"
        "    caught.extend(str(x.message) for x in w)\n"
        "t = threading.Thread(target=pin); t.start(); t.join()\n"
        "counts = sorted({i['num_threads'] for i in threadpool_info() if i['user_api'] == 'blas'})\n"
        "print(counts == [1] or (mixer._blas_state['pinned'] is None and any('BLAS' in c for c in caught)))\n"
    )
    done = _fresh_process(code, timeout_s=120)
    assert done.stdout.strip().splitlines()[-1] == "True"


def _page_faults(other: str, other_tuning: str, work: str) -> dict[str, list]:
    """The page faults ``work`` counts into ``faults`` in a fresh process, as the server tunes glibc ("tuned") and as
    ``other_tuning`` does (``other``); ``work`` may use numpy as np, resource, threading and hosting (glibc only)."""
    if sys.platform != "linux":
        pytest.skip("glibc's mallopt")
    code = (
        "import json, resource, sys, threading\n"
        "import numpy as np\n"
        "from imgext import hosting\n"
        "from imgext.malloc import tune\n"
        "if sys.argv[1] == 'tuned':\n"
        "    hosting.tune_server_malloc()\n"
        "else:\n"
        f"    {other_tuning}\n"
        "faults = []\n"
        f"{work}"
        "print(json.dumps(faults))\n"
    )
    return {how: json.loads(_fresh_process(code, how, timeout_s=120).stdout.strip().splitlines()[-1])
            for how in ("tuned", other)}


def test_the_servers_allocator_reuses_a_renders_pages_on_the_next_script_thread():
    """Streamlit runs each script run on a new thread: with every array mapped and unmapped (128 KB thresholds)
    each render took fresh pages (~67,000 page faults, 0.35 s of kernel time at 8 tracks); tuned, a render
    reuses most of what the last one freed (glibc only)."""
    work = (
        "from dataclasses import replace\n"
        "from imgext.composition.tracks import Tracks\n"
        "from imgext.mix.mixer import Mixer\n"
        "from imgext.options import MixSettings\n"
        "sr, n = 44100, 4\n"
        "rng = np.random.default_rng(0)\n"
        "on = (np.sin(np.linspace(0, 40, 20 * sr)) > 0).astype(np.float32)\n"
        "audio = (rng.standard_normal((n, 20 * sr)) * 0.1).astype(np.float32) * np.stack([on, 1 - on, on, on * 0 + 1])\n"
        "tracks = Tracks(audio=audio, names=[f't{k}' for k in range(n)], object_indices=list(range(n)),\n"
        "                pans=np.linspace(-0.8, 0.8, n), importance=np.array([1.0, 0.5, 0.7, 0.3]),\n"
        "                volume_db=np.zeros(n), sample_rate=sr)\n"
        "mixer = Mixer(tracks)\n"
        "def render(strength):\n"
        "    r0 = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt\n"
        "    mixer.render(replace(MixSettings(duration_s=20.0), eq_strength=strength), measure_after=False)\n"
        "    faults.append(resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - r0)\n"
        "for s in (1.0, 0.9, 0.8, 0.7):  # a new thread each, as Streamlit's script runs\n"
        "    t = threading.Thread(target=render, args=(s,)); t.start(); t.join()\n"
    )
    # what the app set before: both thresholds at 128 KB
    runs = _page_faults("128k", "tune(arenas=2, mmap_threshold_bytes=131072, trim_threshold_bytes=131072)", work)
    # the first renders fill the Mixer's caches (two renders kept); from the fourth on a render frees what it
    # replaces (measured: ~5,000-7,600 page faults tuned, ~47,000 with the 128 KB thresholds)
    assert runs["tuned"][-1] < 0.3 * runs["128k"][-1], runs


def test_the_servers_allocator_keeps_a_few_mb_at_the_top_of_its_heap_for_the_next_temporary():
    """A preview's FLAC samples or a duck block's frames: a few MB freed at the top of the heap.  With glibc's 128 KB
    top pad each was given back and faulted in again by the next (~1 s of kernel time in 9 renders at 29 tracks);
    the server keeps 16 MB there (glibc only)."""
    work = (
        "def work():\n"
        "    for _ in range(6):\n"
        "        r0 = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt\n"
        "        a = np.ones(1 << 20, np.float32)  # 4 MB, written\n"
        "        del a\n"
        "        faults.append(resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - r0)\n"
        "t = threading.Thread(target=work); t.start(); t.join()\n"
    )
    # the same as the server without the pad
    runs = _page_faults("unpadded", "tune(arenas=2, mmap_threshold_bytes=32 << 20, trim_threshold_bytes=128 << 10)", work)
    # measured: [514, 481, 481, 481, 481, 481] unpadded (4 KB and 2 MB pages), [514, 0, 0, 0, 0, 0] tuned
    assert min(runs["unpadded"][2:]) > 100, runs
    assert sum(runs["tuned"][2:]) < 0.1 * sum(runs["unpadded"][2:]), runs


def test_process_setup_runs_off_the_session_thread_so_no_library_keeps_a_visitor():
    """threadpoolctl keeps the thread that set OpenBLAS's thread count; a script thread carries its session."""
    from threadpoolctl import OpenBLASController, threadpool_info, threadpool_limits

    from pages._state import off_session_thread

    OpenBLASController.clear_controlling_thread(force=True)
    ran_on = off_session_thread(lambda: (threadpool_limits(limits=1, user_api="blas"), threading.current_thread())[1])
    assert ran_on is not threading.current_thread() and not ran_on.is_alive()
    holder = OpenBLASController._SHARED_STATE.controlling_thread
    assert holder is None or holder is ran_on  # never this (script) thread
    blas = [i for i in threadpool_info() if i["user_api"] == "blas" and "numpy" in i["filepath"]]
    assert blas and {i["num_threads"] for i in blas} == {1}  # the limit is process-wide: it holds here too
    with pytest.raises(ZeroDivisionError):  # an error comes back to the caller
        off_session_thread(lambda: 1 / 0)


class ClosedAppSession:
    """The two parts of Streamlit's AppSession that hold a session's data (Streamlit's own classes)."""

    def __init__(self) -> None:
        from streamlit.runtime.forward_msg_queue import ForwardMsgQueue
        from streamlit.runtime.state.session_state import SessionState

        self.session_state = SessionState()
        self._browser_queue = ForwardMsgQueue()


def test_a_closed_sessions_work_goes_even_while_streamlit_still_points_at_it():
    """Streamlit's message loop keeps the last flushed session in a loop variable: emptying it lets the work go."""
    import gc
    import weakref

    from pages._state import forget_session_state

    class Work:  # stands in for a visitor's Session: its arrays
        def __init__(self) -> None:
            self.audio = bytearray(8 << 20)

    app = ClosedAppSession()
    work = Work()
    app.session_state["imgext_session"] = work
    app.session_state["mix_widget"] = [work]  # referenced from more than one key
    from streamlit.runtime.state.common import WidgetMetadata

    app.session_state._set_widget_metadata(WidgetMetadata(  # a button whose callback gets the Session (Sounds page)
        id="$$ID-preset-load", deserializer=lambda v: v, serializer=lambda v: v, value_type="trigger_value",
        callback=lambda s: None, callback_args=(work,)))
    gone = weakref.ref(work)
    del work
    lingering = {"active_session_info": app}  # what still points at the closed session
    gc.collect()
    assert gone() is not None
    forget_session_state(app)
    gc.collect()
    assert gone() is None and "imgext_session" not in app.session_state
    assert lingering["active_session_info"] is app  # the session object itself may linger, empty
    forget_session_state(object())  # something that is not a session: nothing to do, no error


def test_release_after_closes_drops_a_closed_sessions_download_bytes():
    """Streamlit's close only marks a download's bytes; they went only when a later visitor's run ended."""
    import weakref

    from streamlit.runtime.media_file_manager import MediaFileManager
    from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage

    from pages._state import release_closed

    storage = MemoryMediaFileStorage("/media")
    media = MediaFileManager(storage)
    zip_bytes = bytes(3 << 20)
    media.add(zip_bytes, "application/zip", "1.2.3", file_name="imgext-soundscape.zip", is_for_static_download=True)
    media.add(b"RIFF" + bytes(1000), "audio/wav", "1.2.4")  # a player's audio
    sid = "dontcare"  # Streamlit's session id outside a script run
    media.clear_session_refs(sid)  # what AppSession.shutdown does ...
    media.remove_orphaned_files()  # ... the player's audio goes, the ZIP is only marked
    assert len(storage._files_by_id) == 1
    app = ClosedAppSession()
    app.session_state["imgext_session"] = bytearray(1 << 20)
    closed = [weakref.ref(app)]
    release_closed(closed, media)
    assert storage._files_by_id == {} and closed == [] and "imgext_session" not in app.session_state
    # a session still open keeps its download
    media.add(zip_bytes, "application/zip", "1.2.3", file_name="imgext-soundscape.zip", is_for_static_download=True)
    release_closed([], media)
    release_closed([], media)
    assert len(storage._files_by_id) == 1

"""Simultaneous browser sessions against one `streamlit run` stay isolated and each get their own correct mix.

A CI-sized version of ``bench/load.py`` (whose helpers it uses): three browser contexts in one headless
Chromium run the whole flow at the same time, each with a different photo and seed. Every downloaded ZIP
must be exactly what the library renders for that session's photo, name, seed and scene length, hold
only files of its own scene, and sit in that session's own server folder. Timing is measured by the
bench, never asserted here.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from tests.browser import ARTIFACTS, fresh_dirs, need_chromium, streamlit_server
from tests.freesound_server import FreesoundServer

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
KEY = "load-test-key-91b2"


def bench_load():
    """``bench/load.py`` as a module (``bench`` is a folder of scripts, not a package)."""
    name = "imgext_bench_load"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / "load.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def test_three_simultaneous_sessions_are_isolated_and_correct(tmp_path, model_path, bus_jpg, images_dir):
    need_chromium()
    load = bench_load()
    (tmp_path / "tmp").mkdir()
    # three photos with different objects; the dog and the cat photo both use Freesound's cat sounds, so
    # two sessions fill the shared preview cache at the same time
    jobs = [load.Job(0, bus_jpg, 1, 15), load.Job(1, images_dir / "wilddog.jpg", 2, 15),
            load.Job(2, images_dir / "wildcat.jpg", 3, 15)]
    with FreesoundServer(api_key=KEY) as fs:
        env = {**fresh_dirs(tmp_path), "IMGEXT_YOLO_WEIGHTS": str(model_path), "IMGEXT_FREESOUND_URL": fs.base_url,
               "FREESOUND_API_KEY": KEY, "YOLO_AUTOINSTALL": "false", "YOLO_OFFLINE": "true"}
        renderer = load.ReferenceRenderer(fs.base_url, KEY, tmp_path / "ref-cache", weights=str(model_path))
        refs = {j.index: renderer.render(j) for j in jobs}
        with streamlit_server(env) as (url, proc):
            with load.RssSampler(proc.pid) as sampler:
                phase = load.run_phase(url, jobs, renderer, tmp_path / "tmp", sampler)
        previews = fs.count("preview")
    load.report_phase(phase)  # shown with -s or on failure
    for r in phase.results:  # keep what a failing session downloaded, and what it should have been
        if phase.problems[r.job.index] and r.zip_bytes:
            out = ARTIFACTS / "load"
            out.mkdir(parents=True, exist_ok=True)
            (out / f"session-{r.job.index}-downloaded.zip").write_bytes(r.zip_bytes)
            (out / f"session-{r.job.index}-reference.zip").write_bytes(load.build_zip_of(refs[r.job.index]))

    for r in phase.results:
        assert r.error is None, f"session {r.job.index} ({r.job.photo.name}) failed: {r.error}"
        assert not r.page_errors, r.page_errors
        assert r.objects_shown == len(refs[r.job.index].scene["objects"])
    assert phase.held == 3
    for i, problems in phase.problems.items():
        assert not problems, f"session {i}: " + "; ".join(problems + phase.notes)
    assert not phase.shared_problems, phase.shared_problems + phase.notes
    assert phase.all_correct
    assert previews >= 1, "no session used a Freesound preview"

    # the three scenes really differ, so a leak could not go unnoticed ...
    bundles = {r.job.index: load.read_zip(r.zip_bytes) for r in phase.results}
    assert len({b["mix.wav"] for b in bundles.values()}) == 3
    labels = {i: sorted({o["label"] for o in refs[i].scene["objects"]}) for i in refs}
    assert len({tuple(v) for v in labels.values()}) == 3, labels
    # ... and the checks do notice one: another session's ZIP is rejected
    swapped = phase.results[1].zip_bytes
    assert load.check_bundle(swapped, refs[0]), "check_bundle accepted session 1's ZIP as session 0's"
    assert load.cross_check({0: swapped, 1: swapped}, refs), "cross_check missed a ZIP holding another scene's files"
    assert phase.peak_rss > 0

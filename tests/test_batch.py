"""``python -m imgext batch``: inputs, ids and seeds, the manifest, resume after SIGKILL, the settings
fingerprint, bytes identical to single renders, the Ray engine, and Freesound's limits."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from imgext.batch import (
    MANIFEST,
    Job,
    Manifest,
    collect_inputs,
    derive_seed,
    photo_id,
    plan_photos,
    prepare_dir,
    run_batch,
)
from imgext.errors import ParameterError
from imgext.options import MixSettings
from tests.conftest import IMAGES, MODEL

ROOT = Path(__file__).resolve().parents[1]
DURATION = "2"


def _env(cache: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("FREESOUND_API_KEY", "IMGEXT_FREESOUND_URL")}
    env.update(IMGEXT_YOLO_WEIGHTS=str(MODEL), IMGEXT_CACHE_DIR=str(cache), YOLO_OFFLINE="true")
    return env


def _cli(*args, env, timeout=400):
    return subprocess.run([sys.executable, "-m", "imgext", *map(str, args)], check=False, cwd=ROOT,
                          capture_output=True, text=True, env=env, timeout=timeout)


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def make_photos(folder: Path) -> Path:
    """12 photos: shared, Ultralytics and generated ones, one corrupt, one with no objects; plus a non-image."""
    assets = Path(importlib.util.find_spec("ultralytics").origin).parent / "assets"  # without importing torch
    (folder / "sub" / "deeper").mkdir(parents=True)
    for name in ("wildcat.jpg", "wilddog.jpg", "wildelephant.jpg"):
        shutil.copy(IMAGES / name, folder / name)
    shutil.copy(assets / "bus.jpg", folder / "sub" / "bus.jpg")
    shutil.copy(assets / "zidane.jpg", folder / "sub" / "zidane.jpg")
    bus = Image.open(assets / "bus.jpg")
    bus.crop((0, 0, bus.width // 2, bus.height)).save(folder / "sub" / "bus_left.jpg", quality=90)
    Image.open(assets / "zidane.jpg").transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(folder / "sub" / "zidane_mirror.png")
    Image.open(IMAGES / "wildcat.jpg").convert("L").save(folder / "sub" / "deeper" / "cat_grey.jpg")
    dog = Image.open(IMAGES / "wilddog.jpg")
    dog.resize((dog.width // 2, dog.height // 2)).save(folder / "sub" / "deeper" / "dog_small.webp")
    Image.open(IMAGES / "wildelephant.jpg").rotate(90, expand=True).save(folder / "elephant_turned.png")
    Image.new("RGB", (320, 240), (128, 128, 128)).save(folder / "empty_grey.png")  # nothing to detect
    (folder / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a JPEG" * 20)
    (folder / "notes.txt").write_text("not a photo\n")  # a folder INPUT takes image files only
    return folder


# ------------------------------------------------------------------------------------------ fast unit tests


def test_inputs_from_folder_glob_and_lists(tmp_path):
    folder = make_photos(tmp_path / "in")
    found = collect_inputs(str(folder))
    assert len(found) == 12 and not any(p.endswith("notes.txt") for p in found)
    assert found == collect_inputs(str(folder))  # stable order
    assert sorted(collect_inputs(str(folder / "**" / "*.jpg"))) == sorted(p for p in found if p.endswith(".jpg"))
    (tmp_path / "list.txt").write_text("# two photos\nin/wildcat.jpg\n\n" + str(folder / "sub" / "bus.jpg") + "\n")
    assert collect_inputs(str(tmp_path / "list.txt")) == [str(tmp_path / "in" / "wildcat.jpg"), str(folder / "sub" / "bus.jpg")]
    (tmp_path / "list.csv").write_text("title,path\ncat,in/wildcat.jpg\ndog,in/wilddog.jpg\n")
    assert collect_inputs(str(tmp_path / "list.csv")) == [str(tmp_path / "in" / n) for n in ("wildcat.jpg", "wilddog.jpg")]
    (tmp_path / "list.jsonl").write_text('{"path": "in/wildcat.jpg", "note": 1}\n"in/wilddog.jpg"\n')
    assert collect_inputs(str(tmp_path / "list.jsonl")) == [str(tmp_path / "in" / n) for n in ("wildcat.jpg", "wilddog.jpg")]
    (tmp_path / "bad.jsonl").write_text('{"path": "a.jpg"}\n{"nopath": 1}\n')
    with pytest.raises(ParameterError, match="line 2"):
        collect_inputs(str(tmp_path / "bad.jsonl"))
    with pytest.raises(ParameterError, match="matches no file"):
        collect_inputs(str(tmp_path / "nothing*.jpg"))
    (tmp_path / "none").mkdir()
    with pytest.raises(ParameterError, match="no image files"):
        collect_inputs(str(tmp_path / "none"))


def test_ids_and_seeds_are_stable_and_distinct(tmp_path):
    a = tmp_path / "a" / "photo.jpg"
    b = tmp_path / "b" / "photo.jpg"
    c = tmp_path / "b" / "other.jpg"
    for p, data in ((a, b"one"), (b, b"one"), (c, b"one")):
        p.parent.mkdir(exist_ok=True)
        p.write_bytes(data)
    assert photo_id(a) == photo_id(b) == photo_id("x/photo.jpg", b"one")  # same name, same content
    assert photo_id(c) != photo_id(a)  # the name is part of the id
    b.write_bytes(b"two")
    assert photo_id(b) != photo_id(a)  # and so is the content
    assert photo_id(a).startswith("photo-") and len(photo_id(a)) == len("photo-") + 12
    s = derive_seed(0, photo_id(a))
    assert s == derive_seed(0, photo_id(a)) and 0 <= s < 2**31
    assert derive_seed(1, photo_id(a)) != s and derive_seed(0, photo_id(c)) != s
    b.write_bytes(b"one")
    photos, dups = plan_photos([str(a), str(b), str(c)], 7)
    assert [p.path for p in photos] == [str(a), str(c)] and dups == [str(b)]
    assert photos[0].seed == derive_seed(7, photos[0].id)


def test_manifest_drops_a_cut_line_and_keeps_the_latest(tmp_path):
    m = Manifest(tmp_path / MANIFEST)
    m.append({"id": "a", "status": "failed", "error": "boom"})
    m.append({"id": "b", "status": "done"})
    m.append({"id": "a", "status": "done"})
    m.close()
    with open(m.path, "ab") as f:
        f.write(b'{"id": "c", "sta')  # a write cut short by a kill
    records = m.load()
    assert list(records) == ["b", "a"] and records["a"]["status"] == "done"
    m.compact()
    assert _lines(m.path) == [{"id": "b", "status": "done"}, {"id": "a", "status": "done"}]
    m.append({"id": "c", "status": "done"})  # after compaction an append starts on a fresh line
    m.close()
    assert [r["id"] for r in _lines(m.path)] == ["b", "a", "c"]


def _job(out: Path, **mix) -> Job:
    from imgext.settings import load_settings
    from imgext.vision.placement import LabelMap

    return Job(out_dir=str(out), mix=MixSettings(**{"duration_s": 2.0, **mix}), source_spec="builtin", preset=None,
               weights=str(MODEL), conf=0.25, n_candidates=10, include_silent=False, labels=LabelMap.default(),
               settings=load_settings())


def test_fingerprint_refuses_other_settings_unless_forced(tmp_path):
    out = tmp_path / "out"
    manifest, records, _ = prepare_dir(_job(out))
    manifest.append({"id": "p-1", "status": "done"})
    manifest.close()
    assert prepare_dir(_job(out))[1] == {"p-1": {"id": "p-1", "status": "done"}}  # same settings: resumes
    for changed in ({"duration_s": 3.0}, {"seed": 1}, {"eq_strength": 0.5}):
        with pytest.raises(ParameterError, match="other settings.*--force"):
            prepare_dir(_job(out, **changed))
    from imgext.vision.placement import LabelMap

    other_labels = Job(**{**_job(out).__dict__, "labels": LabelMap.default().with_overrides({"dog": {"query": "puppy"}})})
    with pytest.raises(ParameterError, match="labels_sha256"):
        prepare_dir(other_labels)
    with pytest.raises(ParameterError, match="conf 0.25 -> 0.5"):
        prepare_dir(Job(**{**_job(out).__dict__, "conf": 0.5}))
    _, records, notes = prepare_dir(_job(out, seed=1), force=True)
    assert records == {} and "superseded" in notes[0]
    assert len(list(out.glob("manifest.superseded-*.jsonl"))) == 1
    assert prepare_dir(_job(out, seed=1))[1] == {}  # the forced settings are now the folder's


# ------------------------------------------------------------------------------------------ end to end


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    """A 12-photo batch on 2 local workers: Ctrl-C, then SIGKILL midway, damage, and a run to the end."""
    base = tmp_path_factory.mktemp("batch")
    photos = make_photos(base / "in")
    out = base / "out"
    env = _env(base / "cache")
    args = ["batch", photos, "--out", out, "--workers", "2", "--duration", DURATION, "--no-progress"]
    manifest = out / MANIFEST

    def start_and(sig, n_lines):
        proc = subprocess.Popen([sys.executable, "-m", "imgext", *map(str, args)], cwd=ROOT, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        deadline = time.monotonic() + 300
        try:
            while time.monotonic() < deadline and proc.poll() is None:
                if manifest.exists() and len(manifest.read_text().splitlines()) >= n_lines:
                    break
                time.sleep(0.05)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)  # the whole process group, as a terminal's Ctrl-C does
            stdout, stderr = proc.communicate(timeout=300)
        return proc.returncode, stdout, stderr

    interrupt_rc, _, stderr = start_and(signal.SIGINT, 2)
    interrupted = Manifest(manifest).load()
    folders = {p.name for p in out.iterdir() if p.is_dir()}
    start_and(signal.SIGKILL, len(interrupted) + 2)  # the coordinator and its workers, mid-photo
    killed = {r["id"]: r for r in Manifest(manifest).load().values()}
    assert len(interrupted) < len(killed) < 12, "the kill came too late to test anything"
    done_before = sorted(i for i, r in killed.items() if r["status"] == "done")
    # Damage: a line cut short, and a "done" photo whose folder lost its ZIP (must be rendered again).
    damaged = done_before[0]
    (out / damaged / "bundle.zip").unlink()
    with open(manifest, "ab") as f:
        f.write(b'{"id": "cut-short", "status": "do')
    mtimes = {i: (out / i / "scene.json").stat().st_mtime_ns for i in done_before[1:]}
    t0 = time.monotonic()
    r = _cli(*args, env=env)
    return {"out": out, "photos": photos, "env": env, "run": r, "killed": killed, "damaged": damaged,
            "interrupted": interrupted, "interrupted_folders": folders, "interrupt_stderr": stderr,
            "interrupt_rc": interrupt_rc,
            "mtimes": mtimes, "args": args, "seconds": time.monotonic() - t0}


def _id_of(records: dict, name: str) -> str:
    return next(i for i, r in records.items() if Path(r["path"]).name == name)


@pytest.mark.slow
def test_ctrl_c_finishes_the_photos_in_progress(batch):
    interrupted, folders = batch["interrupted"], batch["interrupted_folders"]
    assert batch["interrupt_rc"] == 130
    assert "finishing the photos in progress" in batch["interrupt_stderr"]
    assert "run the same command again" in batch["interrupt_stderr"] and "Traceback" not in batch["interrupt_stderr"]
    assert 2 <= len(interrupted) < 12
    done = {i for i, r in interrupted.items() if r["status"] == "done"}
    assert folders == done  # every folder is a finished photo in the manifest, none half-written


@pytest.mark.slow
def test_batch_manifest_is_complete_after_a_kill_and_a_rerun(batch):
    out, r = batch["out"], batch["run"]
    assert r.returncode == 1, r.stderr  # one photo failed
    assert "12 photos: 11 done" in r.stdout and "1 failed" in r.stdout
    lines = _lines(out / MANIFEST)
    ids = [x["id"] for x in lines]
    assert len(lines) == 12 and len(set(ids)) == 12  # no duplicate, no cut line, nothing missing
    records = {x["id"]: x for x in lines}
    corrupt = records[_id_of(records, "corrupt.jpg")]
    assert corrupt["status"] == "failed" and "damaged or truncated" in corrupt["error"] and "corrupt.jpg" in corrupt["error"]
    assert not (out / corrupt["id"]).exists()
    for rec in lines:
        assert set(rec) >= {"id", "path", "status", "error", "seconds", "loudness_lufs", "sounds", "seed"}
        assert rec["seed"] == derive_seed(0, rec["id"]) and rec["id"] == photo_id(rec["path"])
        if rec["status"] != "done":
            continue
        folder = out / rec["id"]
        scene = json.loads((folder / "scene.json").read_text())
        for f in scene["files"]:
            assert (folder / f).is_file(), f
        assert not list(folder.rglob(".*.part"))
        assert rec["sounds"] == [{"label": o["label"], "id": o["sound"]["id"], "name": o["sound"]["name"],
                                  "license": o["sound"]["license"]} for o in scene["objects"] if o["sound"]]
        assert rec["seconds"] > 0
    empty = records[_id_of(records, "empty_grey.png")]
    # a photo with no objects sounds as its ambience alone ("open air"), not silence
    assert empty["status"] == "done" and [x["label"] for x in empty["sounds"]] == ["ambience: open air"]
    assert all(records[i]["loudness_lufs"] == pytest.approx(-16.0, abs=0.1) for i in records
               if records[i]["sounds"])
    # Resume: photos done before the kill were not rendered again; the damaged one was.
    for i, mtime in batch["mtimes"].items():
        assert (out / i / "scene.json").stat().st_mtime_ns == mtime
    assert (out / batch["damaged"] / "bundle.zip").is_file()
    assert f"{len(batch['mtimes'])} photo(s) were done by an earlier run" in r.stdout


@pytest.mark.slow
def test_every_photo_renders_alone_to_the_same_bytes(batch):
    """Each folder equals `render PHOTO --seed <derived>` (the CLI's own code, one process for all photos)."""
    out = batch["out"]
    done = [r for r in Manifest(out / MANIFEST).load().values() if r["status"] == "done"]
    assert len(done) == 11
    calls = [["render", r["path"], "--out", str(out.parent / "alone" / r["id"]), "--duration", DURATION,
              "--seed", str(r["seed"])] for r in done]
    script = f"import sys\nfrom imgext.cli import main\nfor args in {calls!r}:\n    assert main(args) == 0, args\n"
    r = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=batch["env"], capture_output=True, text=True,
                       timeout=600, check=False)
    assert r.returncode == 0, r.stderr[-2000:]
    for rec in done:
        alone = out.parent / "alone" / rec["id"]
        wavs = sorted(p.relative_to(out / rec["id"]) for p in (out / rec["id"]).rglob("*.wav"))
        assert wavs == sorted(p.relative_to(alone) for p in alone.rglob("*.wav"))
        for rel in wavs:  # the mix and every stem
            assert (alone / rel).read_bytes() == (out / rec["id"] / rel).read_bytes(), (rec["path"], rel)


@pytest.mark.slow
def test_other_settings_are_refused_without_force(batch):
    args = list(batch["args"])
    r = _cli(*[a if a != DURATION else "3" for a in args], env=batch["env"])
    assert r.returncode == 1 and "other settings" in r.stderr and "duration_s 2.0 -> 3.0" in r.stderr
    assert "--force" in r.stderr and "Traceback" not in r.stderr
    r = _cli(*args, "--seed", "4", env=batch["env"])
    assert r.returncode == 1 and "seed 0 -> 4" in r.stderr
    assert len(_lines(batch["out"] / MANIFEST)) == 12  # untouched


@pytest.mark.slow
def test_ray_gives_the_same_bytes(batch, tmp_path):
    pytest.importorskip("ray")
    out = tmp_path / "ray"
    args = [a if a != batch["out"] else out for a in batch["args"]]
    r = _cli(*args, "--ray", env=batch["env"])
    assert r.returncode == 1, r.stderr
    local, ray_records = Manifest(batch["out"] / MANIFEST).load(), Manifest(out / MANIFEST).load()
    assert set(ray_records) == set(local)
    for i, rec in ray_records.items():
        assert rec["status"] == local[i]["status"] and rec["sounds"] == local[i]["sounds"]
        if rec["status"] == "done":
            assert (out / i / "mix.wav").read_bytes() == (batch["out"] / i / "mix.wav").read_bytes(), rec["path"]


# ------------------------------------------------------------------------------------------ Freesound limits


@pytest.mark.slow
def test_freesound_one_search_per_term_and_the_daily_limit(tmp_path, monkeypatch):
    from imgext.settings import load_settings
    from imgext.vision.placement import LabelMap
    from tests.freesound_server import FreesoundServer

    photos = tmp_path / "in"
    photos.mkdir()
    for name in ("wildcat.jpg", "wilddog.jpg"):
        shutil.copy(IMAGES / name, photos / name)
    with FreesoundServer(api_key="batch-key") as server:
        monkeypatch.setenv("FREESOUND_API_KEY", "batch-key")
        monkeypatch.setenv("IMGEXT_FREESOUND_URL", server.base_url)
        job = Job(out_dir=str(tmp_path / "out"), mix=MixSettings(duration_s=2.0), source_spec="freesound+builtin",
                  preset=None, weights=str(MODEL), conf=0.25, n_candidates=10, include_silent=False,
                  labels=LabelMap.default(), settings=load_settings())
        first = run_batch(str(photos), job, workers=2, progress=False, log=lambda line: None)
        assert (first.done, first.failed, first.skipped) == (2, 0, 0)
        # no request is ever sent twice: cat and person are searched once for both photos (the ambience asks for
        # one term under several filters, long loopable recordings first: each (query, filter) once)
        queries = [(req.query.get("query"), req.query.get("filter")) for req in server.requests if req.kind == "search"]
        assert queries and len(queries) == len(set(queries)), queries
        previews = [req.path for req in server.requests if req.kind == "preview"]
        assert len(previews) == len(set(previews))
        # Next day's batch: a copy of the dog photo (terms cached) and the elephant (not), and the daily limit hit.
        shutil.copy(IMAGES / "wilddog.jpg", photos / "wilddog_copy.jpg")
        shutil.copy(IMAGES / "wildelephant.jpg", photos / "wildelephant.jpg")
        server.reset()
        server.faults.throttle_day = True
        second = run_batch(str(photos), job, workers=2, progress=False, log=lambda line: None)
    records = Manifest(tmp_path / "out" / MANIFEST).load()
    status = {Path(r["path"]).name: r for r in records.values()}
    assert second.already_done == 2 and status["wilddog_copy.jpg"]["status"] == "done"
    elephant = status["wildelephant.jpg"]
    assert elephant["status"] == "skipped" and "daily" in elephant["error"] and "run again" in elephant["error"]
    assert not (tmp_path / "out" / elephant["id"]).exists()
    assert any(s["id"].startswith("freesound:") for s in status["wilddog_copy.jpg"]["sounds"])
    assert second.skipped == 1 and second.done == 1

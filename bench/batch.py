"""Throughput of ``imgext batch`` against a loop of ``imgext render`` calls (built-in source).

Run from the repo root: ``python bench/batch.py [--photos 8] [--duration 10] [--no-ray]``.

It makes ``--photos`` distinct photos from the shared and Ultralytics images (crops and
mirrors, so every one has its own id), then times, each from a cold start as a user would
run it:

* ``loop``: one ``python -m imgext render PHOTO --seed <derived>`` subprocess per photo;
* ``batch --workers 1`` and ``--workers 2``: one ``python -m imgext batch`` call;
* ``batch --ray``: the same on a local Ray started by the command (2 CPUs, no dashboard).

It prints photos per minute, the ratio to the loop, the CPU seconds of the finished child
processes, and the load average before and after (the machine is shared: ratios matter, not
absolute numbers).  The issue's target: ``--workers 2`` >= 3x the loop on 2 cores.  Every
batch's ``mix.wav`` files are compared with the loop's: the figures count only identical work.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from PIL import Image  # noqa: E402 - after the sys.path line above

from imgext.batch import Manifest, plan_photos  # noqa: E402

WEIGHTS = os.environ.get("IMGEXT_YOLO_WEIGHTS") or str(ROOT.parent / "shared" / "models" / "yolov8n_int8.onnx")


def make_photos(folder: Path, n: int) -> list[Path]:
    import ultralytics

    sources = [ROOT.parent / "shared" / "images" / f for f in ("wildcat.jpg", "wilddog.jpg", "wildelephant.jpg")]
    sources += [Path(ultralytics.ASSETS) / f for f in ("bus.jpg", "zidane.jpg")]
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for k in range(n):
        img = Image.open(sources[k % len(sources)]).convert("RGB")
        variant = k // len(sources)
        if variant % 2:
            img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        if variant >= 2:
            img = img.crop((variant, variant, img.width - variant, img.height - variant))
        path = folder / f"photo{k:02d}.jpg"
        img.save(path, quality=92)
        out.append(path)
    return out


def timed(cmd: list[str], env: dict) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system of the waited-for children) of one command."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    r = subprocess.run(cmd, check=False, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stderr[-2000:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=8)
    parser.add_argument("--duration", type=float, default=10.0, help="soundscape length in seconds (default 10)")
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray engine")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="imgext-bench-batch-"))
    env = dict(os.environ, IMGEXT_YOLO_WEIGHTS=WEIGHTS, IMGEXT_CACHE_DIR=str(work / "cache"), YOLO_OFFLINE="true",
               YOLO_AUTOINSTALL="false")
    env.pop("FREESOUND_API_KEY", None)
    py = [sys.executable, "-m", "imgext"]
    common = ["--duration", str(args.duration), "--source", "builtin"]
    try:
        photos = make_photos(work / "in", args.photos)
        planned, _ = plan_photos([str(p) for p in photos], 0)
        load_before = os.getloadavg()
        rows = []

        t_loop = cpu_loop = 0.0
        for p in planned:
            wall, cpu = timed([*py, "render", p.path, "--out", str(work / "loop" / p.id), "--seed", str(p.seed), *common],
                              env)
            t_loop += wall
            cpu_loop += cpu
        rows.append(("loop of `render` calls", t_loop, cpu_loop))

        engines = [("batch --workers 1", ["--workers", "1"]), ("batch --workers 2", ["--workers", "2"])]
        try:
            import ray  # noqa: F401

            if not args.no_ray:
                engines.append(("batch --ray (local, 2 CPUs)", ["--workers", "2", "--ray"]))
        except ImportError:
            print("(ray is not installed: pip install -r requirements-ray.txt to bench it)")
        for name, extra in engines:
            out = work / name.replace(" ", "_").replace("-", "")
            wall, cpu = timed([*py, "batch", str(work / "in"), "--out", str(out), "--no-progress", *common, *extra], env)
            records = Manifest(out / "manifest.jsonl").load()
            assert all(r["status"] == "done" for r in records.values()) and len(records) == len(planned)
            for p in planned:  # the same bytes as the loop, or the figure would be meaningless
                assert (out / p.id / "mix.wav").read_bytes() == (work / "loop" / p.id / "mix.wav").read_bytes(), p.path
            rows.append((name, wall, cpu))
        load_after = os.getloadavg()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    n = len(planned)
    print(f"{n} photos, {args.duration:g} s soundscapes, built-in source, {os.cpu_count()} cores; "
          f"load average before {load_before[0]:.1f}, after {load_after[0]:.1f} (1 min)")
    print(f"{'engine':<30} {'wall s':>8} {'photos/min':>11} {'x loop':>7} {'CPU s/photo*':>13}")
    loop_rate = 60.0 * n / rows[0][1]
    for name, wall, cpu in rows:
        rate = 60.0 * n / wall
        print(f"{name:<30} {wall:8.1f} {rate:11.1f} {rate / loop_rate:7.2f} {cpu / n:13.2f}")
    print("* CPU of finished child processes; Ray's workers belong to its own daemons and are not counted.")


if __name__ == "__main__":
    main()

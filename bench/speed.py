"""Speed and memory of the paths issue 15 names: CLI cold start, warm photo -> mix, the mix stage, long scenes.

Run from a checkout's root: ``python bench/speed.py [--runs 3] [--long] [--json out.json]``.  Every case
runs in its own subprocess, so its CPU seconds (user + system, all threads) and peak RSS are its own; the
figure printed is the median over ``--runs``.  Only APIs that existed before the speed work are used
(``Detector``, ``choose_sounds``, ``fetch_tracks``, ``Mixer``, ``build_outputs``, ``write_outputs``), so
the same file measures an older commit: ``git worktree add /tmp/before d9e0439`` and run
``python /path/to/bench/speed.py --root /tmp/before``; ``--compare before.json`` prints both side by side.

Cases (targets from the issue):

* ``cli_cold``   ``python -m imgext render bus.jpg --source builtin``: <= 4 CPU-s, <= 500 MB peak.  A fresh
  ``IMGEXT_CACHE_DIR`` every run, so every built-in sound is synthesised: a user's first-ever render (the
  judged row).  Run as this environment runs it (``PYTHONDONTWRITEBYTECODE=1`` here: ``imgext``'s modules
  are compiled from source on every start, ~0.25 CPU-s)
* ``cli_cold_pyc``  the same with ``imgext``'s bytecode compiled once beforehand, as an installed package
  has it: the checkout's ``imgext`` is copied to a temporary folder and ``compileall``-ed there (not
  timed; nothing is written into the checkout)
* ``warm``       photo -> mix with the detector loaded and the sounds seen before, 8 x 30 s: <= 2 CPU-s
* ``mix_N``      a new Mixer's render at N = 8, 16, 32 tracks of 30 s (``mix_N_opt`` with the optimiser,
  whose own time is reported too: <= 1 s at 32)
* ``long``       8 x 600 s photo -> files on disk: <= 2 GB peak

The machine has 2 noisy cores: medians and ratios, no asserts.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve()
SHARED = HERE.parents[2] / "shared" if (HERE.parents[2] / "shared").exists() else Path("/work/shared")
WEIGHTS = os.environ.get("IMGEXT_YOLO_WEIGHTS") or str(SHARED / "models" / "yolov8n_int8.onnx")
TARGETS = {"cli_cold": (4.0, 500), "cli_cold_pyc": (4.0, 500), "warm": (2.0, None), "long": (None, 2048)}


def bus_jpg() -> str:
    """Ultralytics' bus.jpg, found without importing Ultralytics (which would import torch)."""
    import importlib.util

    spec = importlib.util.find_spec("ultralytics")
    return str(Path(spec.origin).parent / "assets" / "bus.jpg")


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def objects_for(n: int, detector=None):
    """``n`` scene objects: bus.jpg's detections, then manual ones spread over the stereo field."""
    from imgext.vision.placement import manual_object, place_objects

    objects = []
    if detector is not None:
        from imgext.vision.detection import load_image

        picture, _ = load_image(bus_jpg())
        objects = place_objects(detector.detect(picture))
    labels = ["bird", "car", "dog", "cat", "train", "horse", "sheep", "cow", "clock", "boat", "truck", "bicycle"]
    k = 0
    while len(objects) < n:
        objects.append(manual_object(labels[k % len(labels)], 0.05 + 0.9 * ((k * 0.37) % 1.0)))
        k += 1
    return objects[:n]


def photo_to_mix(detector, n: int, duration_s: float):
    """The app's flow for one photo: detect, choose, fetch + fit, mix (a new Mixer)."""
    from imgext.composition.tracks import fetch_tracks
    from imgext.mix.mixer import Mixer
    from imgext.options import MixSettings
    from imgext.sounds.builtin import BuiltinSource
    from imgext.sounds.selection import choose_sounds

    settings = MixSettings(duration_s=duration_s, seed=0)
    objects = objects_for(n, detector)
    source = BuiltinSource()
    assignments = choose_sounds(objects, source, rng=0)
    tracks, assignments, fetched = fetch_tracks(objects, assignments, source, settings=settings)
    return objects, assignments, fetched, tracks, Mixer(tracks).render(settings), settings


def case_warm(args) -> dict:
    from imgext.vision.detection import Detector

    detector = Detector(WEIGHTS)
    photo_to_mix(detector, 8, 30.0)  # first photo: the model warm, the sounds seen once
    t0 = cpu_s()
    photo_to_mix(detector, 8, 30.0)
    return {"cpu_s": cpu_s() - t0, "peak_mb": peak_mb()}


def case_mix(args, n: int, optimize: bool) -> dict:
    from imgext.composition.tracks import fetch_tracks
    from imgext.mix.mixer import Mixer
    from imgext.options import MixSettings
    from imgext.sounds.builtin import BuiltinSource
    from imgext.sounds.selection import choose_sounds

    extra = {"time_aware": False} if optimize and "time_aware" in MixSettings.__dataclass_fields__ else {}
    extra["optimise" if "optimise" in MixSettings.__dataclass_fields__ else "optimize"] = optimize  # d9e0439 spelt it -ize
    settings = MixSettings(duration_s=30.0, seed=0, **extra)  # the optimiser runs without the duck
    objects = objects_for(n)
    source = BuiltinSource()
    tracks, _, _ = fetch_tracks(objects, choose_sounds(objects, source, rng=0), source, settings=settings)
    assert tracks.n_tracks == n, tracks.n_tracks
    t0, w0 = cpu_s(), time.perf_counter()
    outcome = Mixer(tracks).render(settings)
    out = {"cpu_s": cpu_s() - t0, "wall_s": time.perf_counter() - w0, "peak_mb": peak_mb()}
    if optimize:
        out["optimise_s"] = float(outcome.timings_s.get("optimise", float("nan")))
    return out


def case_long(args) -> dict:
    from imgext.output.export import build_outputs, write_outputs
    from imgext.vision.detection import Detector

    t0 = cpu_s()
    detector = Detector(WEIGHTS)
    objects, assignments, fetched, tracks, outcome, settings = photo_to_mix(detector, 8, 600.0)
    del detector
    files, _ = build_outputs(image=None, objects=objects, assignments=assignments, fetched=fetched, tracks=tracks,
                             outcome=outcome, settings=settings, source_description="bench", timings_s={})
    with tempfile.TemporaryDirectory() as tmp:
        write_outputs(tmp, files)
    return {"cpu_s": cpu_s() - t0, "peak_mb": peak_mb()}


def run_case(root: Path, name: str) -> dict:
    """One case in a fresh interpreter with ``root`` first on the path."""
    env = {**os.environ, "PYTHONPATH": str(root), "IMGEXT_YOLO_WEIGHTS": WEIGHTS, "YOLO_OFFLINE": "true",
           "YOLO_AUTOINSTALL": "false"}
    with tempfile.TemporaryDirectory() as tmp:
        env["IMGEXT_CACHE_DIR"] = str(Path(tmp) / "cache")
        if name in ("cli_cold", "cli_cold_pyc"):
            if name == "cli_cold_pyc":  # bytecode made once, as an installed package has it (not timed)
                package = Path(tmp) / "pkg"
                shutil.copytree(root / "imgext", package / "imgext", ignore=shutil.ignore_patterns("__pycache__"))
                subprocess.run([sys.executable, "-m", "compileall", "-q", str(package / "imgext")], check=True)
                env["PYTHONPATH"] = str(package)
            cwd = package if name == "cli_cold_pyc" else root  # ``-m`` puts the working folder first on the path
            cmd = [sys.executable, "-m", "imgext", "render", bus_jpg(), "--source", "builtin", "--out", str(Path(tmp) / "o")]
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            if done.returncode != 0:
                raise RuntimeError(done.stderr)
            if name == "cli_cold_pyc" and not any((package / "imgext").rglob("*.pyc")):
                raise RuntimeError("no bytecode was compiled")
            return {"cpu_s": (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
                    "peak_mb": after.ru_maxrss / 1024}  # children's max: this is the only big child so far
        done = subprocess.run([sys.executable, str(HERE), "--root", str(root), "--case", name], cwd=root, env=env,
                              capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{name}: {done.stderr[-2000:]}")
        return json.loads(done.stdout.strip().splitlines()[-1])


def one_case(name: str) -> dict:
    if name == "warm":
        return case_warm(None)
    if name == "long":
        return case_long(None)
    if name.startswith("mix_"):
        parts = name.split("_")
        return case_mix(None, int(parts[1]), optimize=parts[-1] == "opt")
    raise SystemExit(f"unknown case {name}")


def fmt(row: dict | None, key: str, spec: str) -> str:
    if not row or key not in row:
        return "-"
    return format(row[key], spec)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default=str(HERE.parents[1]), help="checkout to measure (default: this one)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--cases", nargs="+", default=["cli_cold", "warm", "mix_8", "mix_16", "mix_32", "mix_32_opt"])
    parser.add_argument("--long", action="store_true", help="also the 8 x 600 s case (minutes)")
    parser.add_argument("--json", help="write the medians here")
    parser.add_argument("--compare", help="medians of an earlier run (its --json) to print beside these")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        sys.path.insert(0, args.root)
        print(json.dumps(one_case(args.case)))
        return
    root = Path(args.root).resolve()
    cases = args.cases + (["long"] if args.long else [])
    results = {}
    for name in cases:
        runs = [run_case(root, name) for _ in range(1 if name == "long" else args.runs)]
        results[name] = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        print(f"  {name}: {results[name]}", file=sys.stderr, flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    before = json.loads(Path(args.compare).read_text()) if args.compare else {}
    print(f"bench/speed.py: {root}, median of {args.runs} runs, {os.cpu_count()} cores; CPU s = user + system, all threads")
    print(f"{'case':<12} {'CPU s before':>12} {'CPU s now':>10} {'ratio':>6} {'peak MB before':>14} {'peak MB now':>11}"
          f" {'optimiser s before/now':>23}  target")
    for name in cases:
        now, old = results[name], before.get(name)
        ratio = f"{now['cpu_s'] / old['cpu_s']:.2f}" if old else "-"
        opt = f"{fmt(old, 'optimise_s', '.2f')} / {fmt(now, 'optimise_s', '.2f')}" if "optimise_s" in now else ""
        cpu_t, mem_t = TARGETS.get(name, (None, None))
        if name == "mix_32_opt":
            cpu_t = None
        target = ", ".join(t for t in ((f"<= {cpu_t} CPU s" if cpu_t else ""), (f"<= {mem_t} MB" if mem_t else ""),
                                       ("optimiser <= 1 s" if name == "mix_32_opt" else "")) if t)
        print(f"{name:<12} {fmt(old, 'cpu_s', '.2f'):>12} {now['cpu_s']:>10.2f} {ratio:>6} {fmt(old, 'peak_mb', '.0f'):>14}"
              f" {now['peak_mb']:>11.0f} {opt:>23}  {target}")


if __name__ == "__main__":
    main()

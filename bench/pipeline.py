"""Speed of the whole pipeline on Ultralytics' bus.jpg with 8 sources of 30 s (built-in source).

Run from the repo root: ``python bench/pipeline.py [--runs 5]``. Prints the median time per stage,
the interactive re-render times the app depends on, and peak memory. Targets (issue): detection
<= 150 ms per image after the model is loaded; the mix of 8 x 30 s stereo at 44.1 kHz <= 0.5 s;
the app's re-render after a slider move <= 0.5 s. The machine has 2 noisy cores: medians, no asserts.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("YOLO_AUTOINSTALL", "false")
os.environ.setdefault("YOLO_OFFLINE", "true")

import numpy as np  # noqa: E402

from imgext.audio.io import encode_wav  # noqa: E402
from imgext.composition.tracks import fetch_tracks  # noqa: E402
from imgext.mix.mixer import Mixer  # noqa: E402
from imgext.mix.render import render_mix  # noqa: E402
from imgext.options import MixSettings  # noqa: E402
from imgext.sounds.builtin import BuiltinSource  # noqa: E402
from imgext.sounds.selection import choose_sounds  # noqa: E402
from imgext.vision.detection import Detector, load_image  # noqa: E402
from imgext.vision.placement import manual_object, place_objects  # noqa: E402

WEIGHTS = os.environ.get("IMGEXT_YOLO_WEIGHTS") or str(ROOT.parent / "shared" / "models" / "yolov8n_int8.onnx")


def median_time(fn, runs: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(runs):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    import ultralytics

    image_path = Path(ultralytics.ASSETS) / "bus.jpg"
    rows = []
    t0 = time.perf_counter()
    detector = Detector(WEIGHTS)
    rows.append(("model load + warm-up (once per process)", time.perf_counter() - t0, None))

    t_load, (picture, _) = median_time(lambda: load_image(image_path), args.runs)
    rows.append(("load + validate image", t_load, None))
    t_det, detections = median_time(lambda: detector.detect(picture), args.runs)
    rows.append(("detection (after load)", t_det, 0.150))

    objects = place_objects(detections)
    extra = [manual_object(label, x) for label, x in (("bird", 0.15), ("car", 0.85), ("dog", 0.5))]
    objects = (objects + extra)[:8]
    settings = MixSettings(duration_s=30.0, seed=0)
    source = BuiltinSource()
    t_sel, assignments = median_time(lambda: choose_sounds(objects, source, rng=0), args.runs)
    rows.append(("choose sounds (8 objects)", t_sel, None))
    t_fetch, (tracks, _, _) = median_time(lambda: fetch_tracks(objects, assignments, source, settings=settings), 1)
    rows.append(("synthesise + fit 8 x 30 s (built-in source, 4 threads)", t_fetch, None))
    assert tracks.n_tracks == 8, tracks.n_tracks

    gains = tracks.gains_db(settings.attenuation_db)
    tracemalloc.start()
    t_mix, _ = median_time(
        lambda: render_mix(tracks.audio, pans=tracks.pans, gains_db=gains, sample_rate=tracks.sample_rate), args.runs
    )
    _, mix_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rows.append(("mix 8 x 30 s stereo (pan, gain, sum, BS.1770, peak)", t_mix, 0.5))

    t_first, _ = median_time(lambda: Mixer(tracks).render(settings), max(1, args.runs // 2))
    rows.append(("full mix stage, cold (analysis, EQ, filter, mix, re-analysis)", t_first, None))
    t_opt, _ = median_time(lambda: Mixer(tracks).render(MixSettings(optimise=True)), max(1, args.runs // 2))
    rows.append(("full mix stage with optimisation, cold", t_opt, None))

    mixer = Mixer(tracks)
    mixer.render(settings, measure_after=False)  # the app's first render fills the caches
    strengths = iter(np.linspace(0.2, 0.95, args.runs * 3))
    attenuations = iter(np.linspace(3.0, 20.0, args.runs * 3))
    loudnesses = iter(np.linspace(-23.0, -12.0, args.runs * 3))

    def rerender(**change):
        outcome = mixer.render(MixSettings(**change), measure_after=False)
        encode_wav(outcome.mix.audio, tracks.sample_rate, subtype="PCM_16")  # what st.audio receives
        return outcome

    t_s, _ = median_time(lambda: rerender(eq_strength=float(next(strengths))), args.runs)
    rows.append(("app re-render: EQ strength slider (+ WAV for the player)", t_s, 0.5))
    t_a, _ = median_time(lambda: rerender(attenuation_db=float(next(attenuations))), args.runs)
    rows.append(("app re-render: attenuation slider", t_a, 0.5))
    t_l, _ = median_time(lambda: rerender(loudness_lufs=float(next(loudnesses))), args.runs)
    rows.append(("app re-render: loudness slider (EQ stage reused)", t_l, 0.5))

    print(f"Image Extender pipeline bench: bus.jpg, {tracks.n_tracks} sources x 30 s at 44.1 kHz, "
          f"median of {args.runs} runs, {os.cpu_count()} cores")
    print(f"{'stage':<66} {'median':>9} {'target':>8}")
    for name, seconds, target in rows:
        mark = "" if target is None else (" ok" if seconds <= target else " OVER")
        tgt = "" if target is None else f"{target:.2f} s"
        print(f"{name:<66} {seconds:>8.3f}s {tgt:>8}{mark}")
    print(f"peak traced memory of the mix: {mix_peak / 2**20:.0f} MB; "
          f"process peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()

"""Speed of the spatial stage: the reverb bus, air absorption and the binaural render, 8 objects x 30 s.

Run from the repo root: ``python bench/space.py [--runs 7]``. Targets (depth-and-room issue): binaural
render of 8 objects x 30 s (FFT convolution) <= 0.3 s; the reverb bus <= 0.2 s. Prints wall-clock medians
and CPU seconds (the machine has 2 noisy cores: medians, no asserts), with the stereo mix alone beside them.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from imgext.mix import binaural, space  # noqa: E402
from imgext.mix.render import render_mix  # noqa: E402

SR = 44100


def timed(fn, runs: int) -> tuple[float, float]:
    """Median wall seconds and median CPU seconds of ``fn()`` over ``runs`` calls (after one warm-up)."""
    fn()
    wall, cpu = [], []
    for _ in range(runs):
        w, c = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - w)
        cpu.append(time.process_time() - c)
    return statistics.median(wall), statistics.median(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--tracks", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    n = int(args.seconds * SR)
    x = (rng.standard_normal((args.tracks, n)) * 0.05).astype(np.float32)
    pans = np.linspace(-0.9, 0.9, args.tracks)
    gains = -np.linspace(0, 12, args.tracks)
    distances = np.geomspace(2, 200, args.tracks)  # two of them beyond 50 m: air absorption runs
    az = -pans * 30.0
    el = np.zeros(args.tracks)
    hrtf = binaural.load_hrtf(SR)
    space.reverb_ir("outdoor", SR, 0)

    def spatial():
        return space.spatialise(x, gains, distances, distance=True, reverb_amount=0.25, room="outdoor", sample_rate=SR)

    sp = spatial()
    rows = [
        ("stereo mix (render_mix, for scale)", timed(lambda: render_mix(x, pans=pans, gains_db=gains, sample_rate=SR), args.runs)),
        ("reverb bus (send sum + convolution)", timed(
            lambda: space.render_reverb((10 ** (gains / 20)).astype(np.float32) @ x, room="outdoor", sample_rate=SR),
            args.runs)),
        ("spatialise (air absorption + reverb)", timed(spatial, args.runs)),
        ("binaural render (8 HRIR convolutions)", timed(lambda: binaural.render_binaural(x, 10 ** (gains / 20), az, el, hrtf), args.runs)),
        ("binaural mix (render + normalise + limit)", timed(
            lambda: binaural.binaural_mix(sp.tracks, gains, az, el, sp.reverb, hrtf=hrtf, loudness_lufs=-16, peak_dbfs=-1),
            args.runs)),
    ]
    print(f"{args.tracks} objects x {args.seconds:g} s at {SR} Hz, median of {args.runs}")
    print(f"{'stage':44s} {'wall s':>8s} {'CPU s':>8s}")
    for name, (wall, cpu) in rows:
        print(f"{name:44s} {wall:8.3f} {cpu:8.3f}")


if __name__ == "__main__":
    main()

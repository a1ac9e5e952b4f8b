"""Composition and limiter speed (issue 10): medians of a few runs, printed as a table.

* scheduling + rendering + levelling 8 objects x 30 s (events, beds, an area; sources decoded and
  analysed, as :data:`imgext.composition.arrange.CLIP_CACHE` keeps them), a new seed each run, against
  the budget of 0.1 s added to the mix; and the first arrangement, which analyses each source;
* the true-peak limiter on a 30 s stereo mix: one envelope pass, and the whole
  make-up search (:func:`imgext.mix.limiter.limit_to_loudness`), against 0.05 s.

Run: ``python bench/composition.py [--repeats 5]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from imgext.audio.loudness import integrated_loudness  # noqa: E402
from imgext.composition.arrange import analyse_source, arrange_object  # noqa: E402
from imgext.mix.limiter import limit_to_loudness, limiter_gain  # noqa: E402
from imgext.options import MixSettings  # noqa: E402
from imgext.sounds.synth import synthesize  # noqa: E402
from imgext.vision.detection import Detection  # noqa: E402
from imgext.vision.placement import place_objects  # noqa: E402

SR = 44100
SCENE = [("dog", "dog_bark", 6.0), ("cat", "cat_meow", 4.0), ("car", "engine_idle", 8.0), ("bus", "bus", 8.0),
         ("cup", "crockery", 3.0), ("bird", "birds", 5.0), ("cell phone", "phone_ring", 6.0), ("umbrella", "rain", 12.0)]


def median_s(fn, repeats: int, *, cpu: bool = False) -> float:
    """Median wall time (or, with ``cpu``, this process's CPU time) of ``repeats`` calls, in seconds."""
    clock = time.process_time if cpu else time.perf_counter
    times = []
    for _ in range(repeats):
        t0 = clock()
        fn()
        times.append(clock() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    settings = MixSettings(duration_s=30.0, seed=1)
    dets = [Detection(label, 0.9 - 0.05 * i, (0.1 * i, 0.2, 0.1 * i + 0.2, 0.8)) for i, (label, _, _) in enumerate(SCENE)]
    objects = place_objects(dets)
    clips = [synthesize(kind, duration_s=seconds, rng=i) for i, (_, kind, seconds) in enumerate(SCENE)]
    roles = [o.role for o in objects]

    sources = [analyse_source(c, SR) for c in clips]
    seeds = iter(range(2, 10**6))

    def compose_all(cold: bool = False) -> list:  # a new seed each time: a new schedule and offsets, as a slider gives
        s = replace(settings, seed=next(seeds))
        if cold:  # first arrangement of these sounds: each is analysed (K-weighted, onsets) on the way
            return [arrange_object(o, i, c, settings=s) for i, (o, c) in enumerate(zip(objects, clips))]
        return [arrange_object(o, i, c, settings=s) for i, (o, c) in enumerate(zip(objects, sources))]

    composed = compose_all()
    t_compose, c_compose = median_s(compose_all, args.repeats), median_s(compose_all, args.repeats, cpu=True)
    t_cold, c_cold = (median_s(lambda: compose_all(cold=True), args.repeats, cpu=cpu) for cpu in (False, True))
    tracks = np.stack([c.track for c in composed])
    pans = np.linspace(-0.8, 0.8, len(tracks))
    theta = (pans + 1) * np.pi / 4
    mix = (np.stack([np.cos(theta), np.sin(theta)]) @ tracks).astype(np.float32)
    lufs = integrated_loudness(mix, SR)
    gain = np.float32(10 ** ((-16.0 - lufs) / 20))
    t_pass = median_s(lambda: limiter_gain(mix * gain, sample_rate=SR, ceiling_dbtp=-1.0), args.repeats)
    t_search = median_s(lambda: limit_to_loudness(mix, sample_rate=SR, loudness_lufs=-16.0, measured_lufs=lufs),
                        args.repeats)
    result = limit_to_loudness(mix, sample_rate=SR, loudness_lufs=-16.0, measured_lufs=lufs)
    c_pass = median_s(lambda: limiter_gain(mix * gain, sample_rate=SR, ceiling_dbtp=-1.0), args.repeats, cpu=True)
    c_search = median_s(lambda: limit_to_loudness(mix, sample_rate=SR, loudness_lufs=-16.0, measured_lufs=lufs),
                        args.repeats, cpu=True)
    print(f"roles: {', '.join(f'{o.label}={r}' for o, r in zip(objects, roles))}")
    print(f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} cores")
    print(f"{'what':<58} {'wall s':>7} {'CPU s':>7} {'budget s':>9}")
    print(f"{'schedule + render 8 objects x 30 s (sources analysed)':<58} {t_compose:>7.3f} {c_compose:>7.3f} {0.1:>9.3f}")
    print(f"{'  the same, first time (K-weighting, onsets of each source)':<58} {t_cold:>7.3f} {c_cold:>7.3f} {'-':>9}")
    print(f"{'limiter envelope, one pass, 30 s stereo':<58} {t_pass:>7.3f} {c_pass:>7.3f} {0.05:>9.3f}")
    print(f"{'limiter + make-up search to -16 LUFS, 30 s stereo':<58} {t_search:>7.3f} {c_search:>7.3f} {'-':>9}")
    print(f"limiter: {result.gain_reduction_db:.1f} dB deepest reduction, {result.limited_s:.2f} s limited")


if __name__ == "__main__":
    main()

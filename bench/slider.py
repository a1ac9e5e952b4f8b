"""Speed of what the app does when a slider moves: the Mixer's ducking design + render and its re-render.

Run: ``python bench/slider.py [--runs 5]``. Eight band-limited noises with on/off envelopes
(:func:`bench.masking.synthetic_tracks`, 8 x 30 s at 44.1 kHz; the duck is active on most of them) go
through :class:`imgext.mix.mixer.Mixer` as the app drives it (``measure_after=False``):

- ``duck design + render``: :func:`imgext.engine.duck.design_ducking` + :func:`~imgext.engine.duck.apply_ducking`
  on the cached analysis (budget 0.5 s, issue 13);
- ``slider re-render``: the whole ``Mixer.render`` after the EQ-strength slider moves (the design is
  cached; the duck is re-rendered, the reverb, the sum, the loudness target and the limiter redone;
  budget 0.3 s), with its stages;
- ``limiter stage``: :func:`imgext.mix.render.render_mix` alone on those tracks, at a loudness target
  where the true-peak limiter works (-12 LUFS) and at the default.

Medians of process CPU seconds (``time.process_time``, all threads) and wall seconds, with one BLAS thread
pinned for the whole process as the app pins it (:func:`imgext.mix.mixer.pin_one_blas_thread`; without it an
OpenBLAS thread left spinning after a product elsewhere was counted too). The machine has 2 noisy shared
cores: read medians and ratios, never assert on them.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from bench.masking import SAMPLE_RATE, synthetic_tracks  # noqa: E402
from imgext.composition.tracks import Tracks  # noqa: E402
from imgext.engine import duck  # noqa: E402
from imgext.mix.mixer import Mixer, pin_one_blas_thread  # noqa: E402
from imgext.mix.render import render_mix  # noqa: E402
from imgext.options import MixSettings  # noqa: E402

BUDGETS_S = {"duck design + render": 0.5, "slider re-render": 0.3}


def timed(fn, runs: int) -> tuple[float, float, object]:
    """Median CPU seconds, median wall seconds and the last result of ``fn``."""
    cpu, wall, out = [], [], None
    for _ in range(runs):
        c0, w0 = time.process_time(), time.perf_counter()
        out = fn()
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
    return float(np.median(cpu)), float(np.median(wall)), out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args(argv)
    pin_one_blas_thread()  # as the app does (pages/_state.py): the threads the app runs
    audio, importance = synthetic_tracks()
    n = len(audio)
    tracks = Tracks(audio=audio, names=[f"t{k}" for k in range(n)], object_indices=list(range(n)),
                    pans=np.linspace(-0.8, 0.8, n), importance=importance, volume_db=np.zeros(n),
                    sample_rate=SAMPLE_RATE)
    settings = MixSettings(duration_s=30.0, seed=0)
    mixer = Mixer(tracks)
    first = mixer.render(settings, measure_after=False)  # analysis and design cached, as after "Mix"
    bands = mixer.bands()
    gains = first.requested_gains_db if hasattr(first, "requested_gains_db") else first.gains_db

    c_dd, w_dd, plan = timed(lambda: duck.design_ducking(bands, gains_db=gains, importance=importance), args.runs)
    c_ap, w_ap, wet = timed(lambda: duck.apply_ducking(audio, plan, SAMPLE_RATE), args.runs)
    strengths = iter(np.linspace(0.3, 0.95, 4 * args.runs + 4))  # every run a new position: nothing cached
    stage_rows = []

    def slider():
        out = mixer.render(replace(settings, eq_strength=float(next(strengths))), measure_after=False)
        stage_rows.append(out.timings_s)
        return out

    c_sl, w_sl, out = timed(slider, args.runs)
    rows = [("duck design + render", c_dd + c_ap, w_dd + w_ap), ("  design", c_dd, w_dd), ("  render", c_ap, w_ap),
            ("slider re-render", c_sl, w_sl)]
    for stage in ("filter", "space", "render", "analysis_after"):
        vals = [r.get(stage, 0.0) for r in stage_rows]
        rows.append((f"  {stage} (wall)", float("nan"), float(np.median(vals))))
    pans = tracks.pans
    for lufs in (-12.0, settings.loudness_lufs):
        c, w, mix = timed(lambda lufs=lufs: render_mix(wet, pans=pans, gains_db=gains, sample_rate=SAMPLE_RATE,
                                                       loudness_lufs=lufs), args.runs)
        rows.append((f"render_mix at {lufs:g} LUFS", c, w))
        rows.append((f"  (limiter: {mix.gain_reduction_db:.1f} dB, TP {mix.true_peak_dbtp} dBTP)", float("nan"),
                     float("nan")))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"# slider bench: {n} tracks x 30 s at {SAMPLE_RATE} Hz, median of {args.runs} runs, "
          f"load average {load:.1f} on {os.cpu_count()} cores; {int(plan.active.sum())} tracks ducked")
    print(f"{'step':40s} {'cpu s':>7s} {'wall s':>7s} {'budget':>7s}")
    for name, c, w in rows:
        budget = BUDGETS_S.get(name)
        print(f"{name:40s} {c:7.3f} {w:7.3f} {'' if budget is None else f'{budget:7.2f}'}")


if __name__ == "__main__":
    main()

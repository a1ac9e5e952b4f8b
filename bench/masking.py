"""Speed bench of the masking engine: 8 tracks x 30 s at 44.1 kHz.

Run from anywhere: ``python bench/masking.py [--runs 5]``. Prints medians over
``--runs`` runs (wall time, and process CPU time over all threads, which stays readable when
other jobs load the cores), the speed ratio against a straightforward reference
(``scipy.signal.stft`` in float64, per-pair Python loops) and peak memory. Budgets (issue): analysis <= 0.25 s,
EQ/ducking design + render <= 0.5 s, optimisation <= 1 s, re-render after a slider <= 0.3 s (issue 13).
The time-aware duck (:mod:`imgext.engine.duck`, the app's default) and the static EQ are timed apart.
The machine has 2 noisy cores: read medians and ratios, do not assert on them.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import scipy.signal  # noqa: E402

from imgext.engine import duck, eq, optimise
from imgext.masking import analysis as masking
from imgext.masking import psychoacoustics
from imgext.mix.render import render_mix

SAMPLE_RATE = 44100
N_TRACKS, SECONDS = 8, 30.0
BUDGETS_S = {"analysis": 0.25, "duck design + render": 0.5, "eq design + render": 0.5, "optimisation": 1.0,
             "re-render (slider)": 0.3, "re-evaluation": 0.3}


def synthetic_tracks(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Eight band-limited noises with on/off envelopes (the masking.md 5c test material)."""
    rng = np.random.default_rng(seed)
    n = int(SECONDS * SAMPLE_RATE)
    f = np.fft.rfftfreq(n, 1.0 / SAMPLE_RATE)
    specs = [(60, 400), (200, 1500), (500, 3000), (1000, 4000), (2000, 6000), (3000, 9000), (100, 800), (4000, 12000)]
    t = np.arange(n) / SAMPLE_RATE
    tracks = []
    for k, (lo, hi) in enumerate(specs):
        spec = np.fft.rfft(rng.standard_normal(n)) * ((f >= lo) & (f <= hi))
        x = np.fft.irfft(spec, n)
        x *= 0.1 / np.sqrt(np.mean(x**2))
        gate = (np.sin(2 * np.pi * (0.2 + 0.07 * k) * t + k) > -0.3).astype(np.float64)
        tracks.append(x * np.convolve(gate, np.ones(441) / 441, mode="same"))
    importance = np.linspace(1.0, 0.3, N_TRACKS)
    return np.stack(tracks).astype(np.float32), importance


def reference_analysis(tracks: np.ndarray, gains_db: np.ndarray) -> np.ndarray:
    """Straightforward version: float64 scipy STFT, per-track band loop, per-pair Python loops."""
    bands_ref = masking.band_energies(tracks[:1, : SAMPLE_RATE], SAMPLE_RATE)  # edges/centres only
    edges, centres = bands_ref.band_edges_hz, bands_ref.band_centres_hz
    spread = (psychoacoustics.spreading_matrix(centres)
              * 10 ** (-psychoacoustics.masking_offset_db(centres) / 10)[None, :])
    energies = []
    for x in tracks.astype(np.float64):
        f, _, z = scipy.signal.stft(x, fs=SAMPLE_RATE, nperseg=2048, noverlap=1024)
        p = np.abs(z) ** 2 * 10 ** (psychoacoustics.ear_weighting_db(f) / 10)[:, None]
        energies.append(np.array([p[(f >= lo) & (f < hi)].sum(axis=0) for lo, hi in zip(edges[:-1], edges[1:])]))
    e = np.stack(energies) * (10 ** (gains_db / 10))[:, None, None]
    thr = [spread.T @ e[i] for i in range(len(e))]
    n = len(e)
    matrix = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            if i != j:
                m = np.maximum(10 * np.log10(np.maximum(thr[i], 1e-30) / np.maximum(e[j], 1e-30)), 0.0)
                w = np.maximum(e[j], 1e-30) ** 0.23
                matrix[i, j] = (m * w).sum() / w.sum()
    return matrix


def time_runs(fn, runs: int) -> tuple[float, float, object]:
    """Median wall time, median process CPU time (all threads) and the last output of ``fn``.

    CPU time stays readable when other jobs load the cores (the wall time then is not).
    """
    times, cpu, out = [], [], None
    for _ in range(runs):
        start, start_cpu = time.perf_counter(), time.process_time()
        out = fn()
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return float(np.median(times)), float(np.median(cpu)), out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    tracks, importance = synthetic_tracks()
    gains = -12.0 * (1.0 - importance / importance.max())

    def analysis():
        bands = masking.band_energies(tracks, SAMPLE_RATE)
        return bands, masking.masking_report(bands, gains_db=gains, importance=importance)

    t_analysis, c_analysis, (bands, _) = time_runs(analysis, args.runs)

    def duck_design_render():
        plan = duck.design_ducking(bands, gains_db=gains, importance=importance)
        return plan, duck.apply_ducking(tracks, plan, SAMPLE_RATE)

    t_duck, c_duck, (plan, _) = time_runs(duck_design_render, args.runs)
    t_dd, c_dd, _ = time_runs(lambda: duck.design_ducking(bands, gains_db=gains, importance=importance), args.runs)
    pans = np.linspace(-0.8, 0.8, N_TRACKS)

    def slider():
        """What the Mixer does when the EQ-strength slider moves: scale the cached design, re-render, estimate."""
        p = plan.scaled(0.5)
        wet = duck.apply_ducking(tracks, p, SAMPLE_RATE)
        mix = render_mix(wet, pans=pans, gains_db=gains, sample_rate=SAMPLE_RATE)
        return mix, masking.masking_report(duck.ducked_bands(bands, p), gains_db=gains, importance=importance)

    t_slider, c_slider, _ = time_runs(slider, args.runs)

    def design_render():
        filters = eq.design_eq(bands, gains_db=gains, importance=importance, strength=1.0)
        return filters, eq.apply_eq(tracks, filters, SAMPLE_RATE)

    t_eq, c_eq, (filters, _) = time_runs(design_render, args.runs)
    t_design, c_design, _ = time_runs(lambda: eq.design_eq(bands, gains_db=gains, importance=importance), args.runs)
    t_render, c_render, _ = time_runs(lambda: eq.apply_eq(tracks, filters, SAMPLE_RATE), args.runs)
    t_serial, _, _ = time_runs(lambda: eq.apply_eq(tracks, filters, SAMPLE_RATE, n_threads=1), args.runs)
    h = eq.eq_response_db(filters, bands)
    lu = eq.filters_loudness_change_lu(filters, bands)
    t_opt, c_opt, res = time_runs(lambda: optimise.optimise_mix(bands, gains_db=gains, importance=importance, eq_db=h,
                                                                seed=0, eq_loudness_lu=lu), args.runs)
    new_gains = gains + np.linspace(-1.0, 0.0, N_TRACKS)

    def reevaluate():
        f = eq.design_eq(bands, gains_db=new_gains, importance=importance, strength=0.5)
        report = masking.masking_report(bands, gains_db=new_gains, importance=importance, eq_db=eq.eq_response_db(f, bands))
        return report, eq.apply_eq(tracks, f, SAMPLE_RATE)

    t_re, c_re, _ = time_runs(reevaluate, args.runs)
    t_ref, c_ref, ref_matrix = time_runs(lambda: reference_analysis(tracks, gains), max(1, args.runs // 2 + 1))

    tracemalloc.start()
    b = masking.band_energies(tracks, SAMPLE_RATE)
    f = eq.design_eq(b, gains_db=gains, importance=importance)
    eq.apply_eq(tracks, f, SAMPLE_RATE)
    optimise.optimise_mix(b, gains_db=gains, importance=importance, eq_db=eq.eq_response_db(f, b), seed=0)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"# masking engine speed: {N_TRACKS} tracks x {SECONDS:.0f} s at {SAMPLE_RATE} Hz, "
          f"median of {args.runs} runs "
          f"(load average {load:.1f} on {os.cpu_count()} cores)")
    print(f"input {tracks.nbytes / 2**20:.0f} MB; {bands.n_bands} bands x {bands.energy.shape[2]} frames of "
          f"{bands.frame_s * 1000:.0f} ms; {sum(map(len, filters))} filters designed")
    print(f"{'step':22s} {'wall s':>8s} {'cpu s':>7s} {'budget s':>9s} {'ok':>4s}")
    for name, t, c in [("analysis", t_analysis, c_analysis), ("duck design + render", t_duck, c_duck),
                       ("eq design + render", t_eq, c_eq), ("optimisation", t_opt, c_opt),
                       ("re-render (slider)", t_slider, c_slider), ("re-evaluation", t_re, c_re)]:
        print(f"{name:22s} {t:8.3f} {c:7.3f} {BUDGETS_S[name]:9.2f} {'yes' if t <= BUDGETS_S[name] else 'NO':>4s}")
    print(f"{'  duck design alone':22s} {t_dd:8.3f} {c_dd:7.3f}   ({int(plan.active.sum())} tracks ducked, "
          f"loudness {np.round(plan.loudness_change_lu, 2).tolist()} LU)")
    print(f"{'  of which design':22s} {t_design:8.3f} {c_design:7.3f}")
    print(f"{'  of which render':22s} {t_render:8.3f} {c_render:7.3f}   (thread pool of {os.cpu_count()}; one thread "
          f"{t_serial:.3f} s wall)")
    print(f"{'reference analysis':22s} {t_ref:8.3f} {c_ref:7.3f}   (scipy.signal.stft float64 + per-pair loops)")
    print(f"speed ratio reference / analysis: {t_ref / t_analysis:.1f}x wall, {c_ref / c_analysis:.1f}x cpu")
    print(f"optimiser: {res.n_evaluations} cost evaluations, cost {res.cost_before:.3f} -> {res.cost_after:.3f}")
    print(f"peak traced memory (analysis + EQ + render + optimisation): {peak / 2**20:.0f} MB; "
          f"process max RSS {rss_mb:.0f} MB")
    fast = masking.masking_report(bands, gains_db=gains, importance=importance).matrix_db
    print(f"reference vs engine matrix (no forward masking/activity in the reference): mean |diff| "
          f"{np.abs(ref_matrix - fast).mean():.2f} dB")


if __name__ == "__main__":
    main()

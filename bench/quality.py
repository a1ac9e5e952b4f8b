"""Quality bench of the masking engine: dry / EQ alone / EQ + optimisation, per scene.

Run from anywhere: ``python bench/quality.py [--seconds 30] [--only NAME ...]``.

Every "after" figure is measured by re-analysing the audio actually rendered (filters
applied with ``sosfilt``, gains applied), never taken from the band-domain estimate; the
estimate's error is printed beside it. Loudness is BS.1770 (pyloudnorm) per track,
processed vs dry at its requested gain.

Targets at EQ strength 1 (issue):

- the most important track's masked fraction falls by >= 25 %;
- the worst pair's masking falls by >= 3 dB, judged on the worst PROBLEMATIC pair (a masker
  no more important than its maskee, ``p_i <= p_j + 0.1``: the clash the EQ is allowed to
  fix). The unrestricted worst pair (often intended: a foreground over a background) is
  shown beside it. A clash under 3 dB cannot fall by 3 dB: that target is then "n/a" and
  the fall is printed in dB and %;
- no track's loudness moves more than 2 LU beyond its requested gain; no boost; no clipping.

References explain a miss: the *oracle* (every other track -6 dB in every band, or for a
pair its masker, which ignores the loudness rule: the most any 6 dB EQ could do), the
*rules reference* (the EQ's own cut-curve search serving the top track only, any band, 6 dB,
2 LU: what the rules leave; a search, not a proof) and the EQ's own band curve before
filters are fitted to it (what is lost in realising it with biquads).

Scenes: tracks loudness-normalised to -23 LUFS, gains -12 dB x (1 - p / p_max) from the
importance p as Image Extender assigns them, dry mix peaking at -1 dBFS.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pyloudnorm  # noqa: E402

from imgext import audio, eq, masking, optimise, synth  # noqa: E402

SAMPLE_RATE = 44100
SOUNDS_DIR = Path(os.environ.get("IMGEXT_SOUNDS_DIR", Path(__file__).resolve().parents[2] / "shared" / "sounds"))
TRACK_LUFS = -23.0
GAIN_RANGE_DB = 12.0
MF_TARGET_PCT, WORST_TARGET_DB, LU_LIMIT = -25.0, -3.0, 2.0


@dataclass(frozen=True)
class Scene:
    name: str
    purpose: str
    names: list[str]
    importance: np.ndarray
    tracks: np.ndarray  # (N, n) unit-gain mono, loudness-normalised
    hard: bool = False


def _normalise(x: np.ndarray, meter: pyloudnorm.Meter) -> np.ndarray:
    lufs = meter.integrated_loudness(x.astype(np.float64))
    return (x * 10.0 ** ((TRACK_LUFS - lufs) / 20.0)).astype(np.float32)


def _animal(name: str, n: int) -> np.ndarray:
    dec = audio.decode(SOUNDS_DIR / f"{name}.mp3", name=name)
    mono = audio.resample(audio.to_mono(dec.audio), dec.sample_rate, SAMPLE_RATE)
    return audio.fit_duration(mono, n, SAMPLE_RATE)


def _noise(rng: np.random.Generator, n: int, lo_hz: float, hi_hz: float, *, tilt_db_per_oct: float = 0.0,
           period_s: float = 0.0, duty: float = 1.0, phase: float = 0.0) -> np.ndarray:
    """Band-limited noise with a spectral tilt and an optional on/off envelope (10 ms ramps)."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1.0 / SAMPLE_RATE)
    shape = np.where((f >= lo_hz) & (f <= hi_hz), (np.maximum(f, 1.0) / lo_hz) ** (tilt_db_per_oct / 6.02 / 2), 0.0)
    x = np.fft.irfft(spec * shape, n)
    if period_s > 0:
        t = (np.arange(n) / SAMPLE_RATE + phase * period_s) % period_s
        gate = (t < duty * period_s).astype(np.float64)
        ramp = int(0.01 * SAMPLE_RATE)
        gate = np.convolve(gate, np.ones(ramp) / ramp, mode="same")
        x = x * gate
    return x.astype(np.float32)


# name: (purpose, hard, [(track, importance, source)]); source: animal name, ("synth", kind, seed) or a noise spec.
SCENES = {
    "farm6": ("hard: six farm animals sharing 0.5-4 kHz; the maskers' own loudness lies in the rooster's bands", True,
              [("rooster", 1.0, "rooster"), ("duck", 0.7, "duck"), ("horse", 0.6, "horse"), ("cow", 0.5, "cow"),
               ("pig", 0.4, "pig"), ("sheep", 0.3, "sheep")]),
    "eight": ("hard: all eight animals at once, the densest overlap; cow (0.9) is the dog's near-equal", True,
              [("dog", 1.0, "dog"), ("cow", 0.9, "cow"), ("rooster", 0.7, "rooster"), ("horse", 0.6, "horse"),
               ("cat", 0.5, "cat"), ("pig", 0.4, "pig"), ("duck", 0.3, "duck"), ("frog", 0.2, "frog")]),
    "night4": ("a dog among a cat, an owl and frogs", False,
               [("dog", 1.0, "dog"), ("cat", 0.8, "cat"), ("owl", 0.5, "owl"), ("frog", 0.4, "frog")]),
    "cat_cow_pig": ("a cat over two low-voiced animals (little overlap)", False,
                    [("cat", 1.0, "cat"), ("cow", 0.5, "cow"), ("pig", 0.4, "pig")]),
    "owl_frog": ("an owl under a frog chorus, a dense and less important source", False,
                 [("owl", 1.0, "owl"), ("frog", 0.6, "frog")]),
    "dog_stream": ("the EQ's case: a dog barking in front of a big stream (built-in 'water', a large region)", False,
                   [("dog", 1.0, "dog"), ("stream", 0.9, ("synth", "water", 1)),
                    ("birds", 0.5, ("synth", "birds", 2))]),
    "owl_creek": ("the EQ's case at night: an owl by a creek (built-in 'water')", False,
                  [("owl", 1.0, "owl"), ("creek", 0.9, ("synth", "water", 3))]),
    "horse_beach": ("the EQ's case: a horse on a beach with surf (built-in 'ocean')", False,
                    [("horse", 1.0, "horse"), ("surf", 0.9, ("synth", "ocean", 4))]),
    "synth_overlap": ("known overlap: 1-2 kHz bursts under a louder, less important 150-2400 Hz bed, plus hiss", False,
                      [("target", 1.0, ("noise", 1000, 2000, 0.0, 1.5, 0.6, 0.0)),
                       ("masker", 0.5, ("noise", 150, 2400, -4.5, 0.0, 1.0, 0.0)),
                       ("hiss", 0.3, ("noise", 4000, 8000, 0.0, 0.0, 1.0, 0.0))]),
    "synth_swap": ("known overlap: two near-equal noises sharing 0.7-1.5 kHz whose levels alternate (roles swap)",
                   False,
                   [("a", 1.0, ("noise", 400, 1500, 0.0, 4.0, 0.5, 0.0)),
                    ("b", 0.9, ("noise", 700, 3000, 0.0, 4.0, 0.5, 0.5)),
                    ("bed", 0.4, ("noise", 200, 2500, -3.0, 0.0, 1.0, 0.0))]),
    "dog_rumble": ("control: a dog over low rumble and high birds; little to fix, the EQ must not hurt", False,
                   [("dog", 1.0, "dog"), ("rumble", 0.4, ("noise", 40, 1800, -6.0, 0.0, 1.0, 0.0)),
                    ("birds", 0.5, ("noise", 2500, 7000, 0.0, 0.7, 0.3, 0.0))]),
}
"""The fixed scene set. Synthetic noises draw from one generator (seed 7) in this order; built-in sounds
(:mod:`imgext.synth`) use the seed given."""


def build_scenes(seconds: float, seed: int = 7, only: list[str] | None = None) -> list[Scene]:
    """The fixed scene set (real recordings, the app's own synthetic backgrounds, noises with known overlaps)."""
    n = int(seconds * SAMPLE_RATE)
    meter = pyloudnorm.Meter(SAMPLE_RATE)
    rng = np.random.default_rng(seed)
    cache: dict[str, np.ndarray] = {}

    def source(spec) -> np.ndarray:
        if isinstance(spec, str):
            if spec not in cache:
                cache[spec] = _normalise(_animal(spec, n), meter)
            return cache[spec]
        if spec[0] == "synth":
            x = synth.synthesize(spec[1], duration_s=seconds, sample_rate=SAMPLE_RATE, rng=spec[2])
            return _normalise(audio.fit_duration(x, n, SAMPLE_RATE), meter)
        _, lo, hi, tilt, period, duty, phase = spec
        return _normalise(_noise(rng, n, lo, hi, tilt_db_per_oct=tilt, period_s=period, duty=duty, phase=phase), meter)

    scenes = []
    for name, (purpose, hard, parts) in SCENES.items():
        tracks = np.stack([source(s) for _, _, s in parts])  # always built, so the noise draws stay fixed
        if only and name not in only:
            continue
        scenes.append(Scene(name, purpose, [p[0] for p in parts], np.array([p[1] for p in parts]), tracks, hard))
    return scenes


def importance_gains_db(importance: np.ndarray) -> np.ndarray:
    """Most important object 0 dB, the others down to -12 dB in proportion."""
    return -GAIN_RANGE_DB * (1.0 - importance / importance.max())


@dataclass
class Row:
    label: str
    report: masking.MaskingReport
    audio: np.ndarray  # (N, n) as rendered (gains applied)
    filters: list[list[eq.EqFilter]]
    offsets_db: np.ndarray
    estimate: masking.MaskingReport | None = None
    lu_estimate: np.ndarray | None = None
    extra: dict = field(default_factory=dict)


def _render(tracks: np.ndarray, filters, gains_db: np.ndarray) -> np.ndarray:
    return eq.apply_eq(tracks, filters, SAMPLE_RATE) * audio.db_to_gain(gains_db).astype(np.float32)[:, None]


def _measure(rendered: np.ndarray, importance: np.ndarray) -> masking.MaskingReport:
    bands = masking.band_energies(rendered, SAMPLE_RATE)
    return masking.masking_report(bands, gains_db=np.zeros(len(rendered)), importance=importance)


def run_scene(scene: Scene, *, seed: int = 0) -> tuple[list[Row], dict]:
    """Dry, EQ alone and EQ + optimisation for one scene, all measured on rendered audio."""
    g = importance_gains_db(scene.importance)
    dry = scene.tracks * audio.db_to_gain(g).astype(np.float32)[:, None]
    scale = np.float32(10.0 ** (-1.0 / 20.0) / np.abs(dry.sum(axis=0)).max())  # dry mix peaks at -1 dBFS
    tracks = scene.tracks * scale
    bands = masking.band_energies(tracks, SAMPLE_RATE)
    n, p = len(g), scene.importance
    none = [[] for _ in range(n)]
    y0 = _render(tracks, none, g)
    rows = [Row("dry", _measure(y0, p), y0, none, np.zeros(n))]
    filters = eq.design_eq(bands, gains_db=g, importance=p, strength=1.0)
    h = eq.eq_response_db(filters, bands)
    lu = eq.filters_loudness_change_lu(filters, bands)
    y = _render(tracks, filters, g)
    rows.append(Row("EQ", _measure(y, p), y, filters, np.zeros(n),
                    masking.masking_report(bands, gains_db=g, importance=p, eq_db=h), lu))
    res = optimise.optimise_mix(bands, gains_db=g, importance=p, eq_db=h, seed=seed, eq_loudness_lu=lu)
    f2 = optimise.scale_filters(filters, res.eq_depth)
    y2 = _render(tracks, f2, g + res.gain_offsets_db)
    rows.append(Row("EQ+opt", _measure(y2, p), y2, f2, res.gain_offsets_db,
                    masking.masking_report(bands, gains_db=g + res.gain_offsets_db, importance=p,
                                           eq_db=eq.eq_response_db(f2, bands)),
                    eq.filters_loudness_change_lu(f2, bands) + res.gain_offsets_db, {"opt": res}))
    top = int(np.argmax(p))
    others = np.arange(n) != top
    oracle = masking.masking_report(bands, gains_db=np.where(others, g - 6.0, g), importance=p)
    wp0 = rows[0].report.worst_problem_pair
    oracle_pair = None
    if wp0 is not None:
        shifted = g.copy()
        shifted[wp0[0]] -= 6.0
        oracle_pair = masking.masking_report(bands, gains_db=shifted, importance=p).matrix_db[wp0[0], wp0[1]] - wp0[2]
    curve = eq.cut_curve_db(bands, gains_db=g, importance=p, max_loudness_loss_lu=LU_LIMIT, essential_cut_fraction=1.0,
                            priority_exponent=64.0)
    rules = masking.masking_report(bands, gains_db=g, importance=p, eq_db=-curve.cut_db)
    own = masking.masking_report(bands, gains_db=g, importance=p,
                                 eq_db=-eq.cut_curve_db(bands, gains_db=g, importance=p).cut_db)
    return rows, {"top": top, "oracle": oracle, "oracle_pair": oracle_pair, "rules": rules, "curve": own}


def _lufs(meter: pyloudnorm.Meter, x: np.ndarray) -> float:
    v = meter.integrated_loudness(x.astype(np.float64))
    return float(v) if np.isfinite(v) else -70.0


def _band_gain_db(dry: np.ndarray, wet: np.ndarray, offsets_db: np.ndarray) -> float:
    """Largest long-term band-energy increase of wet over dry beyond the gain offset (a boost check)."""
    bd = masking.band_energies(dry, SAMPLE_RATE, ear_weighting=False).energy.mean(-1)
    bw = masking.band_energies(wet, SAMPLE_RATE, ear_weighting=False).energy.mean(-1)
    ok = bd > bd.max(axis=1, keepdims=True) * 1e-6  # ignore empty bands
    ratio = 10 * np.log10(np.maximum(bw, 1e-30) / np.maximum(bd, 1e-30)) - offsets_db[:, None]
    return float(ratio[ok].max())


def _pair(names, wp) -> str:
    return "-" if wp is None else f"{names[wp[0]]}>{names[wp[1]]} {wp[2]:.2f}"


def _pct(new: float, old: float) -> float:
    return (new - old) / old * 100.0 if old > 0 else 0.0


def print_scene(scene: Scene, rows: list[Row], extra: dict, meter: pyloudnorm.Meter) -> dict:
    top, names = extra["top"], scene.names
    dry = rows[0]
    mf0 = dry.report.masked_fraction[top]
    wpp0, wp0 = dry.report.worst_problem_pair, dry.report.worst_pair
    dry_lufs = [_lufs(meter, x) for x in dry.audio]
    print(f"\n## {scene.name}{' [hard]' if scene.hard else ''}: {scene.purpose}")
    print("importance " + ", ".join(f"{k} {p:.2f}" for k, p in zip(names, scene.importance)) + f"; top = {names[top]}")
    print(f"{'condition':8s} {'top MF':>6s} {'dMF':>5s} {'MFerr':>5s} {'worst problematic pair':>24s} {'d same':>6s} "
          f"{'worst pair (all)':>22s} {'d same':>6s} {'total':>5s} {'max|dLU|':>8s} {'LUerr':>5s} {'filt':>4s} "
          f"{'maxcut':>6s} {'offsets':>7s} {'boost':>5s} {'peak':>6s}")
    verdict = {}
    for row in rows:
        r = row.report
        mf = r.masked_fraction[top]
        d_mf = _pct(mf, mf0)
        d_wpp = r.matrix_db[wpp0[0], wpp0[1]] - wpp0[2] if wpp0 else 0.0
        d_wp = r.matrix_db[wp0[0], wp0[1]] - wp0[2] if wp0 else 0.0
        mf_err = abs(row.estimate.masked_fraction[top] - mf) if row.estimate is not None else 0.0
        d_lu = np.array([_lufs(meter, x) - l0 for x, l0 in zip(row.audio, dry_lufs)])
        lu_err = float(np.abs(row.lu_estimate + 0.0 - d_lu).max()) if row.lu_estimate is not None else 0.0
        cuts = [f.gain_db for tr in row.filters for f in tr]
        boost = _band_gain_db(dry.audio, row.audio, row.offsets_db) if row.label != "dry" else 0.0
        peak = audio.peak_dbfs(row.audio.sum(axis=0))
        print(f"{row.label:8s} {mf:6.3f} {d_mf:4.0f}% {mf_err:5.3f} {_pair(names, r.worst_problem_pair):>24s} "
              f"{d_wpp:6.2f} {_pair(names, r.worst_pair):>22s} {d_wp:6.2f} {r.total_db:5.2f} "
              f"{np.abs(d_lu).max():8.2f} {lu_err:5.2f} {len(cuts):4d} {min(cuts, default=0.0):6.2f} "
              f"{row.offsets_db.min(initial=0.0):7.2f} {boost:5.2f} {peak:6.2f}")
        if row.label != "dry":
            verdict[row.label] = {"d_mf": d_mf, "d_wpp": d_wpp, "lu": float(np.abs(d_lu).max()),
                                  "boost": max(cuts, default=0.0) <= 0.0 and boost <= 0.1
                                  and row.offsets_db.max(initial=0.0) <= 0.0,
                                  "peak": peak}
    rules_pct = _pct(extra["rules"].masked_fraction[top], mf0)
    curve_pct = _pct(extra["curve"].masked_fraction[top], mf0)
    oracle_pct = _pct(extra["oracle"].masked_fraction[top], mf0)
    res = rows[2].extra["opt"]
    print(f"references: top MF oracle {oracle_pct:.0f}% (all others -6 dB everywhere, loudness ignored), "
          f"rules reference {rules_pct:.0f}% (6 dB, any band, 2 LU, top only); the EQ's own band curve before "
          f"fitting filters {curve_pct:.0f}%; "
          + (f"problematic pair with its masker -6 dB everywhere: {extra['oracle_pair']:+.2f} dB" if wpp0
             else "no problematic masking")
          + f"\noptimiser: {res.n_evaluations} evaluations, {res.time_s:.2f} s, offsets "
          + " ".join(f"{v:+.1f}" for v in res.gain_offsets_db)
          + ", depth " + " ".join(f"{v:.2f}" for v in res.eq_depth))
    verdict.update(hard=scene.hard, wpp0=wpp0[2] if wpp0 else 0.0, rules_pct=rules_pct,
                   oracle_pair=extra["oracle_pair"])
    return verdict


def print_summary(verdicts: dict) -> None:
    print("\n## Summary (targets at EQ strength 1; worst pair = worst PROBLEMATIC pair, "
          "masker no more important than maskee)")
    print(f"{'scene':14s} {'cond.':6s} {'top MF -25 %':40s} {'worst problematic pair -3 dB':54s} "
          f"{'<=2 LU':>6s} {'no boost':>8s} {'no clip':>7s}")
    counts = {"mf": 0, "wpp": 0, "wpp_na": 0, "rows": 0}
    for scene, v in verdicts.items():
        for label in ("EQ", "EQ+opt"):
            c = v[label]
            counts["rows"] += 1
            if c["d_mf"] <= MF_TARGET_PCT:
                mf_txt = f"PASS {c['d_mf']:.0f}%"
                counts["mf"] += 1
            elif v["rules_pct"] > MF_TARGET_PCT:
                mf_txt = f"out of reach {c['d_mf']:.0f}% (rules {v['rules_pct']:.0f}%)"
            else:
                mf_txt = f"FAIL {c['d_mf']:.0f}% (rules ref. {v['rules_pct']:.0f}%)"
            if v["wpp0"] <= 0:
                wpp_txt = "n/a: no problematic masking"
                counts["wpp_na"] += 1
            elif c["d_wpp"] <= WORST_TARGET_DB:
                wpp_txt = f"PASS {c['d_wpp']:+.2f} dB"
                counts["wpp"] += 1
            elif v["wpp0"] < -WORST_TARGET_DB:
                wpp_txt = (f"n/a: clash {v['wpp0']:.2f} < 3 dB (oracle {v['oracle_pair']:+.2f}); "
                           f"{c['d_wpp']:+.2f} dB, {_pct(v['wpp0'] + c['d_wpp'], v['wpp0']):.0f}%")
                counts["wpp_na"] += 1
            else:
                wpp_txt = f"FAIL {c['d_wpp']:+.2f} dB (masker -6 dB: {v['oracle_pair']:+.2f})"
            ok = lambda b: "PASS" if b else "FAIL"  # noqa: E731
            print(f"{scene:14s} {label:6s} {mf_txt:40s} {wpp_txt:54s} {ok(c['lu'] <= LU_LIMIT):>6s} "
                  f"{ok(c['boost']):>8s} {ok(c['peak'] <= 0.0):>7s}")
    print(f"\ntop MF target met in {counts['mf']} of {counts['rows']} rows; worst problematic pair target met in "
          f"{counts['wpp']} rows, n/a in {counts['wpp_na']} (clash under 3 dB or none).")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="scene length in seconds")
    parser.add_argument("--seed", type=int, default=0, help="optimiser seed")
    parser.add_argument("--only", nargs="*", help="run only these scenes")
    args = parser.parse_args(argv)
    print(__doc__.split("\n\n", 2)[2].split("\n\nScenes:")[0].replace("Run from anywhere", "").strip())
    meter = pyloudnorm.Meter(SAMPLE_RATE)
    verdicts = {}
    for scene in build_scenes(args.seconds, only=args.only):
        rows, extra = run_scene(scene, seed=args.seed)
        verdicts[scene.name] = print_scene(scene, rows, extra, meter)
    print_summary(verdicts)


if __name__ == "__main__":
    main()

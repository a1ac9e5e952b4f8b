"""Quality bench: does the time-aware engine make the important track clearer than a fader would?

Run: ``python bench/quality.py [--seconds 30] [--only NAME ...]``.

Each scene puts an important source under a louder bed, built from the CC0 recordings in
``../shared/sounds`` and the app's built-in synthesiser (:mod:`imgext.sounds.synth`). Sources are
levelled like the pipeline (-23 LUFS, :func:`imgext.audio.loudness.level_track`), then offset by the
scene's ``level_db`` (a bed recorded loud), mixed with the importance gains -12 dB x (1 - p / p_max); the
dry mix peaks at -1 dBFS. Rows, all rendered to audio and measured on it:

- ``dry``: the mix as requested;
- ``pan``: pan only, the important track centred, the others at +-0.8 (scored per ear, better ear);
- ``fader``: each less important track turned down broadband by exactly the loudness (BS.1770, measured)
  the engine took from it: the same budget spent without looking at time or frequency;
- ``static``: one static cut, -6 dB Q 1.4 RBJ peak at the important track's loudest core band, on every
  less important track;
- ``engine``: :func:`imgext.engine.duck.design_ducking` + :func:`imgext.engine.duck.apply_ducking`;
- ``bound``: not a baseline but a ceiling: every other track 6 dB down everywhere and always (the most
  any duck within the 6 dB maximum cut can do for the top track, whatever loudness or damage it costs).
  Where its core SMR gain is under 3 dB the target cannot be met within the maximum cut.

Scores: the top track's **core SMR** (its SMR in the bands holding 80 % of its loudness; cells
clipped to +-20 dB) and core masked share, by the engine's own model (:mod:`imgext.masking.model`) and
by an independent excitation model the engine does not optimise (:mod:`bench.excitation`: roex filters
on the ERB scale). Also each track's BS.1770 change (LU, vs its requested gain) and log-spectral damage
(RMS excitation change over its active cells, independent model).

Target (issue 13), judged on the independent model: where >= 10 % of the top track's core is masked,
engine core SMR >= dry + 3 dB and >= fader + 1 dB, in >= 5 of the scenes; every track within 1 LU of its
requested loudness; damage <= 3 dB on every track.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import pyloudnorm

from bench import excitation
from imgext.audio import io as audio
from imgext.audio import loudness
from imgext.engine import duck, eq
from imgext.masking import analysis as masking
from imgext.sounds import synth

SAMPLE_RATE = 44100
SOUNDS_DIR = Path(os.environ.get("IMGEXT_SOUNDS_DIR", Path(__file__).resolve().parents[2] / "shared" / "sounds"))
GAIN_RANGE_DB = 12.0
SMR_GAIN_DB, BEAT_FADER_DB, MASKED_MIN, LU_LIMIT, DAMAGE_LIMIT_DB = 3.0, 1.0, 0.10, 1.0, 3.0
MAX_CUT_DB = 6.0
"""The engine's default maximum cut (``MixSettings.max_cut_db``): the ``bound`` row cuts every other track by it."""

# name: (story, [(track, importance, source, level_db)]); source: a recording's name or ("synth", kind, seed).
SCENES = {
    "owl_rain": ("a tawny owl hooting in the rain", [
        ("owl", 1.0, "owl", 0.0), ("rain", 0.6, ("synth", "rain", 1), 6.0)]),
    "birds_wind": ("birdsong in a gusty wind", [
        ("birds", 1.0, ("synth", "birds", 2), 0.0), ("wind", 0.5, ("synth", "wind", 3), 8.0)]),
    "voices_engine": ("people talking beside an idling engine", [
        ("voices", 1.0, ("synth", "voices", 4), 0.0), ("engine", 0.6, ("synth", "engine_idle", 5), 6.0)]),
    "bark_traffic": ("a dog barking at passing traffic", [
        ("dog", 1.0, "dog", 0.0), ("bus", 0.6, ("synth", "bus", 6), 6.0),
        ("car", 0.5, ("synth", "car_passing", 7), 6.0)]),
    "cat_tv_hum": ("a cat meowing over a TV and an appliance hum", [
        ("cat", 1.0, "cat", 0.0), ("tv", 0.6, ("synth", "tv", 8), 4.0),
        ("hum", 0.4, ("synth", "appliance_hum", 9), 8.0)]),
    "rooster_rain_wind": ("a rooster crowing in rain and wind", [
        ("rooster", 1.0, "rooster", 0.0), ("rain", 0.5, ("synth", "rain", 10), 6.0),
        ("wind", 0.4, ("synth", "wind", 11), 6.0)]),
    "duck_ocean": ("ducks by the surf", [
        ("duck", 1.0, "duck", 0.0), ("ocean", 0.6, ("synth", "ocean", 12), 6.0)]),
    "horse_train": ("a horse neighing as a train passes", [
        ("horse", 1.0, "horse", 0.0), ("train", 0.6, ("synth", "train", 13), 6.0),
        ("wind", 0.4, ("synth", "wind", 14), 3.0)]),
}


@dataclass(frozen=True)
class Scene:
    name: str
    story: str
    names: list[str]
    importance: np.ndarray
    tracks: np.ndarray  # (N, n) unit gain, levelled, scaled so that the dry mix peaks at -1 dBFS
    gains_db: np.ndarray


def _recording(name: str, n: int) -> np.ndarray:
    dec = audio.decode(SOUNDS_DIR / f"{name}.mp3", name=name)
    mono = audio.resample(audio.to_mono(dec.audio), dec.sample_rate, SAMPLE_RATE)
    return audio.fit_duration(mono, n, SAMPLE_RATE)


def _source(spec, seconds: float, n: int) -> np.ndarray:
    if isinstance(spec, str):
        x = _recording(spec, n)
    else:
        x = audio.fit_duration(synth.synthesize(spec[1], duration_s=seconds, sample_rate=SAMPLE_RATE, rng=spec[2]),
                               n, SAMPLE_RATE)
    return loudness.level_track(np.asarray(x, np.float32), SAMPLE_RATE, target_lufs=loudness.TRACK_REFERENCE_LUFS)[0]


def importance_gains_db(importance: np.ndarray) -> np.ndarray:
    """Most important object 0 dB, the others down to -12 dB in proportion (the app's rule)."""
    return -GAIN_RANGE_DB * (1.0 - importance / importance.max())


def build_scenes(seconds: float, only: list[str] | None = None) -> list[Scene]:
    n = int(seconds * SAMPLE_RATE)
    out = []
    for name, (story, parts) in SCENES.items():
        if only and name not in only:
            continue
        tracks = np.stack([_source(s, seconds, n) * np.float32(audio.db_to_gain(lv)) for _, _, s, lv in parts])
        p = np.array([q for _, q, _, _ in parts])
        g = importance_gains_db(p)
        dry = tracks * audio.db_to_gain(g).astype(np.float32)[:, None]
        tracks = tracks * np.float32(10.0 ** (-1.0 / 20.0) / np.abs(dry.sum(axis=0)).max())
        out.append(Scene(name, story, [q[0] for q in parts], p, tracks.astype(np.float32), g))
    return out


def _stereo(stems: np.ndarray, pans: np.ndarray) -> np.ndarray:
    theta = (np.asarray(pans) + 1.0) * np.pi / 4.0
    return np.stack([stems * np.cos(theta)[:, None], stems * np.sin(theta)[:, None]], axis=1).astype(np.float32)


def _engine_score(stereo: np.ndarray, importance: np.ndarray, core: np.ndarray) -> np.ndarray:
    """The engine's own model: core SMR per track, better ear (the engine model is mono; ears scored apart)."""
    ears = []
    for ear in range(stereo.shape[1]):
        bands = masking.band_energies(stereo[:, ear], SAMPLE_RATE)
        rep = masking.masking_report(bands, gains_db=np.zeros(len(stereo)), importance=importance, core=core)
        ears.append(rep.core_smr_db)
    return np.max(ears, axis=0)


def _lufs(meter: pyloudnorm.Meter, x: np.ndarray) -> float:
    v = meter.integrated_loudness(np.asarray(x, np.float64))
    return float(v) if np.isfinite(v) else -70.0


def run_scene(scene: Scene, meter: pyloudnorm.Meter) -> dict:
    """All rows of one scene, scored by both models."""
    p, g, x = scene.importance, scene.gains_db, scene.tracks
    n = len(p)
    top = int(np.argmax(p))
    lin = audio.db_to_gain(g).astype(np.float32)[:, None]
    centre = np.zeros(n)
    t0 = time.perf_counter()
    bands = masking.band_energies(x, SAMPLE_RATE)
    plan = duck.design_ducking(bands, gains_db=g, importance=p)
    wet = duck.apply_ducking(x, plan, SAMPLE_RATE)
    engine_s = time.perf_counter() - t0
    dry_stems = x * lin
    eng_stems = wet * lin
    d_lu = np.array([_lufs(meter, eng_stems[k]) - _lufs(meter, dry_stems[k]) for k in range(n)])
    others = np.arange(n) != top
    fader_stems = dry_stems * audio.db_to_gain(np.where(others, d_lu, 0.0)).astype(np.float32)[:, None]
    core_engine = masking.masking_report(bands, gains_db=g, importance=p).core
    loud_band = int(np.argmax(np.where(core_engine[top], bands.loudness_power[top], -1.0)))
    static_filters = [[] if k == top else [eq.EqFilter("peak", float(bands.band_centres_hz[loud_band]), -6.0, 1.4, k, top)]
                      for k in range(n)]
    static_stems = eq.apply_eq(x, static_filters, SAMPLE_RATE) * lin
    pans = np.where(others, np.where(np.arange(n) % 2 == 0, 0.8, -0.8), 0.0)
    bound_stems = dry_stems * audio.db_to_gain(np.where(others, -MAX_CUT_DB, 0.0)).astype(np.float32)[:, None]
    rows = {"dry": _stereo(dry_stems, centre), "pan": _stereo(dry_stems, pans), "fader": _stereo(fader_stems, centre),
            "static": _stereo(static_stems, centre), "engine": _stereo(eng_stems, centre),
            "bound": _stereo(bound_stems, centre)}
    core_ind = excitation.core_channels(dry_stems, SAMPLE_RATE)
    out = {"rows": {}, "d_lu": d_lu, "engine_s": engine_s, "plan": plan}
    dry_exc = None
    for label, st in rows.items():
        ind = excitation.score(st, SAMPLE_RATE, core_ind)
        if dry_exc is None:
            dry_exc = ind["excitation_db"]
        damage = excitation.log_spectral_damage_db(dry_exc, ind["excitation_db"], SAMPLE_RATE)
        lu = np.array([_lufs(meter, st[k].T) - _lufs(meter, rows["dry"][k].T) for k in range(n)])
        out["rows"][label] = {"ind_smr": ind["smr_db"], "ind_masked": ind["masked"],
                              "eng_smr": _engine_score(st, p, core_engine), "damage": damage, "lu": lu}
    out["static_band_hz"] = float(bands.band_centres_hz[loud_band])
    return out


def judge(res: dict, top: int, model: str) -> tuple[bool | None, str]:
    """(met, note) for one scene on one model ("ind" or "eng"); None when < 10 % of the core is masked."""
    r = res["rows"]
    dry, eng, fad = r["dry"][f"{model}_smr"][top], r["engine"][f"{model}_smr"][top], r["fader"][f"{model}_smr"][top]
    masked = r["dry"]["ind_masked"][top]
    gain, beat = eng - dry, eng - fad
    lu_ok = bool(np.all(np.abs(r["engine"]["lu"]) <= LU_LIMIT))
    dmg_ok = bool(np.all(r["engine"]["damage"] <= DAMAGE_LIMIT_DB))
    note = f"+{gain:.1f} dB vs dry, {beat:+.1f} dB vs fader"
    if masked < MASKED_MIN:
        return None, note + f" (only {100 * masked:.0f} % masked: n/a)"
    return bool(gain >= SMR_GAIN_DB and beat >= BEAT_FADER_DB and lu_ok and dmg_ok), note


def print_scene(scene: Scene, res: dict) -> None:
    top = int(np.argmax(scene.importance))
    print(f"\n== {scene.name}: {scene.story}  (top: {scene.names[top]}; engine {res['engine_s']:.2f} s; "
          f"static cut at {res['static_band_hz']:.0f} Hz)")
    print(f"  {'row':<7} {'core SMR ind':>12} {'masked ind':>10} {'core SMR eng':>12}   "
          f"{'LU per track':<24} {'damage dB per track':<24}")
    for label, r in res["rows"].items():
        lu = " ".join(f"{v:+.2f}" for v in r["lu"])
        dmg = " ".join(f"{v:.2f}" for v in r["damage"])
        print(f"  {label:<7} {r['ind_smr'][top]:12.2f} {100 * r['ind_masked'][top]:9.1f}% {r['eng_smr'][top]:12.2f}   "
              f"{lu:<24} {dmg:<24}")
    near = np.flatnonzero(scene.importance >= scene.importance.max() - 0.1)
    loss = (res["rows"]["dry"]["eng_smr"] - res["rows"]["engine"]["eng_smr"])[near]
    print(f"  near-top tracks' worst core-SMR loss (engine model): {max(float(loss.max()), 0.0):.2f} dB (limit 0.5)")
    r = res["rows"]
    print(f"  ceiling within the 6 dB maximum cut (bound row): +{r['bound']['ind_smr'][top] - r['dry']['ind_smr'][top]:.1f}"
          f" dB independent, +{r['bound']['eng_smr'][top] - r['dry']['eng_smr'][top]:.1f} dB engine model")
    for model in ("ind", "eng"):
        met, note = judge(res, top, model)
        tag = "n/a" if met is None else ("MET" if met else "missed")
        print(f"  target [{'independent' if model == 'ind' else 'engine own'}]: {tag}: {note}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--only", nargs="*")
    args = ap.parse_args(argv)
    meter = pyloudnorm.Meter(SAMPLE_RATE)
    scenes = build_scenes(args.seconds, args.only)
    tally = {"ind": [], "eng": []}
    table = []
    for scene in scenes:
        res = run_scene(scene, meter)
        print_scene(scene, res)
        top = int(np.argmax(scene.importance))
        for model, verdicts in tally.items():
            verdicts.append(judge(res, top, model)[0])
        r = res["rows"]
        table.append((scene.name, [r[k][f"{m}_smr"][top] - r["dry"][f"{m}_smr"][top]
                                   for m in ("ind", "eng") for k in ("engine", "fader", "static", "bound")],
                      ["n/a" if v is None else ("MET" if v else "-") for v in (tally["ind"][-1], tally["eng"][-1])]))
    print("\n== core SMR of the top track, dB gained over the dry mix: independent model | engine's own model")
    print(f"  {'scene':<18} {'engine':>7} {'fader':>6} {'static':>6} {'bound':>6} | {'engine':>7} {'fader':>6} {'static':>6}"
          f" {'bound':>6}   target ind / eng")
    for name, v, tags in table:
        print(f"  {name:<18} {v[0]:+7.1f} {v[1]:+6.1f} {v[2]:+6.1f} {v[3]:+6.1f} | {v[4]:+7.1f} {v[5]:+6.1f} {v[6]:+6.1f}"
              f" {v[7]:+6.1f}   {tags[0]} / {tags[1]}")
    print("\n== summary")
    for model, verdicts in tally.items():
        judged = [v for v in verdicts if v is not None]
        print(f"  {'independent model' if model == 'ind' else 'engine model'}: target met in {sum(judged)} of "
              f"{len(judged)} scenes with >= 10 % of the top core masked ({len(verdicts)} scenes; goal: 5 of 7)")


if __name__ == "__main__":
    main()

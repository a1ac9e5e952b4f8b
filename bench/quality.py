"""Quality bench of the masking engine: dry / EQ alone / EQ + optimisation, per scene.

Run from anywhere: ``python bench/quality.py [--seconds 30] [--only NAME ...]``.

Every "after" figure is measured by re-analysing the audio actually rendered (filters
applied with ``sosfilt``, gains applied), never taken from the band-domain estimate; the
estimate's error is printed beside it. Loudness is BS.1770 (pyloudnorm) per track,
processed vs dry at its requested gain.

Targets at EQ strength 1 (issue):

- the most important track's masked fraction falls by >= 25 % (tracks tied at the top:
  their mean, the figure the engine protects, :func:`imgext.engine.eq.top_tracks`);
- the worst pair's masking falls by >= 3 dB, judged on the worst PROBLEMATIC pair (a masker
  no more important than its maskee, ``p_i <= p_j + 0.1``: the clash the EQ is allowed to
  fix). The unrestricted worst pair (often intended: a foreground over a background) is
  shown beside it. A clash under 3 dB cannot fall by 3 dB: that target is then "n/a" and
  the fall is printed in dB and %. The pair figure is a loudness-weighted mean over ALL of
  the maskee's band-frames, so a clash confined to a few bands is diluted: the *clash
  diagnosis* line says where 80 % of it lies, what share of the maskee that is, how deep it
  is there, what the masker's loudness budget allows there and what the EQ did there
  ("in band": the clash bands' own masking, before vs after, on rendered audio);
- no track's loudness moves more than 2 LU beyond its requested gain; no boost; no clipping.

References explain a miss: the *oracle* (every other track -6 dB in every band, or for a
pair its masker, which ignores the loudness rule: the most any 6 dB EQ could do), the
*rules reference* (the EQ's own cut-curve search serving the top track only, any band, 6 dB,
2 LU: what the rules leave; a search, not a proof) and the EQ's own band curve before
filters are fitted to it (what is lost in realising it with biquads).

Scenes: every source levelled to -23 LUFS by the pipeline's own
:func:`imgext.loudness.level_track`, gains -12 dB x (1 - p / p_max) from the importance p as
Image Extender assigns them, dry mix peaking at -1 dBFS. Real recordings (``../shared/sounds``),
the app's built-in sounds (:mod:`imgext.sounds.synth`), band noises, and known-overlap stimuli of
the textbook case (:data:`GENERATORS`: (a) a tonal foreground under a less important source
resonating in its bands, (b) formant speech under band noise on one formant region, (c)
equally important sources sharing a band), each designed from its story before its EQ
result was seen.
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
import scipy.signal  # noqa: E402

from imgext.audio import io as audio
from imgext.audio import loudness
from imgext.engine import eq, optimise
from imgext.masking import analysis as masking
from imgext.sounds import synth

SAMPLE_RATE = 44100
SOUNDS_DIR = Path(os.environ.get("IMGEXT_SOUNDS_DIR", Path(__file__).resolve().parents[2] / "shared" / "sounds"))
TRACK_LUFS = loudness.TRACK_REFERENCE_LUFS  # -23 LUFS: the pipeline levels every source to it (level_track)
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


def _level(x: np.ndarray) -> np.ndarray:
    """The pipeline's own levelling (:func:`imgext.loudness.level_track`): bench and app build the same mix."""
    return loudness.level_track(np.asarray(x, dtype=np.float32), SAMPLE_RATE, target_lufs=TRACK_LUFS)[0]


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


# ---- stimuli with known overlaps (vectorised numpy; each takes (rng, n) and returns float32 audio at unit scale)

def _time(n: int) -> np.ndarray:
    return np.arange(n) / SAMPLE_RATE


def _ramped(gate: np.ndarray, ramp_s: float = 0.01) -> np.ndarray:
    """0/1 gate with linear ramps of ``ramp_s`` (no clicks)."""
    k = max(1, int(ramp_s * SAMPLE_RATE))
    return np.convolve(gate.astype(np.float64), np.ones(k) / k, mode="same")


def _cadence(n: int, on_off_s: tuple[float, ...], offset_s: float = 0.0) -> np.ndarray:
    """Repeating on/off pattern (on, off, on, off ... seconds), ramped."""
    edges = np.cumsum(on_off_s)
    t = (_time(n) + offset_s) % edges[-1]
    return _ramped(np.searchsorted(edges, t, side="right") % 2 == 0)


def _sines(freq_hz: np.ndarray, amps: dict[int, float]) -> np.ndarray:
    """Harmonic tone on a per-sample frequency contour: ``sum_k a_k sin(k phi)``."""
    phi = 2.0 * np.pi * np.cumsum(freq_hz) / SAMPLE_RATE
    return sum(a * np.sin(k * phi) for k, a in amps.items())


def _smooth(rng: np.random.Generator, n: int, rate_hz: float) -> np.ndarray:
    """Zero-mean random contour band-limited to ``rate_hz``, unit RMS."""
    spec = np.fft.rfft(rng.standard_normal(n)) * (np.fft.rfftfreq(n, 1.0 / SAMPLE_RATE) <= rate_hz)
    x = np.fft.irfft(spec, n)
    return x / max(float(np.sqrt(np.mean(x**2))), 1e-12)


def _coloured(rng: np.random.Generator, n: int, lo_hz: float, hi_hz: float, *, tilt_db_per_oct: float = 0.0,
              peaks: tuple[tuple[float, float, float], ...] = ()) -> np.ndarray:
    """Band-limited noise, spectral tilt, plus resonances ``(f0 Hz, +dB, Q)`` (second-order peak magnitudes)."""
    f = np.fft.rfftfreq(n, 1.0 / SAMPLE_RATE)
    mag = np.where((f >= lo_hz) & (f <= hi_hz), (np.maximum(f, 1.0) / lo_hz) ** (tilt_db_per_oct / 20.0 / np.log10(2)),
                   0.0)
    for f0, gain_db, q in peaks:
        mag = mag * (1.0 + (10.0 ** (gain_db / 20.0) - 1.0) / (1.0 + (q * (f / f0 - f0 / np.maximum(f, 1.0))) ** 2))
    return np.fft.irfft(np.fft.rfft(rng.standard_normal(n)) * mag, n)


def phone_ring(rng: np.random.Generator, n: int) -> np.ndarray:
    """Electronic phone trill: 1000/1250 Hz alternating at 16 Hz, odd harmonics 1/k (1, 3, 5, 7); 2 s on, 4 s off."""
    t = _time(n)
    f = np.where(np.sin(2 * np.pi * 16.0 * t) >= 0, 1000.0, 1250.0)
    return _sines(f, {1: 1.0, 3: 1 / 3, 5: 1 / 5, 7: 1 / 7}) * _cadence(n, (2.0, 4.0), offset_s=1.0)


def tv_resonant(rng: np.random.Generator, n: int) -> np.ndarray:
    """TV speech and music through a small loudspeaker: 150-5000 Hz, -3 dB/oct, cabinet resonance +12 dB at 1.12 kHz
    (Q 3, over the ring's 1.0-1.25 kHz), syllabic level changes (4 Hz contour, +-6 dB)."""
    x = _coloured(rng, n, 150.0, 5000.0, tilt_db_per_oct=-3.0, peaks=((1120.0, 12.0, 3.0),))
    return x * 10.0 ** (6.0 * np.tanh(_smooth(rng, n, 4.0)) / 20.0)


def bird_chirps(rng: np.random.Generator, n: int) -> np.ndarray:
    """Songbird: phrases of five 120 ms up-chirps 3.0 -> 3.6 kHz (0.16 s apart) every 2.5 s; 2nd harmonic -20 dB."""
    tp = _time(n) % 2.5
    tc = tp % 0.16
    on = (tp < 5 * 0.16) & (tc < 0.12)
    env = np.where(on, np.sin(np.pi * np.minimum(tc / 0.12, 1.0)) ** 2, 0.0)
    return env * _sines(3000.0 + 600.0 * np.minimum(tc / 0.12, 1.0), {1: 1.0, 2: 0.1})


def fan_whine(rng: np.random.Generator, n: int) -> np.ndarray:
    """Desk fan: pink-ish air noise 80 Hz - 10 kHz (-3 dB/oct) with a motor whine +15 dB at 3.3 kHz (Q 6, over the
    bird's 3.0-3.6 kHz), steady."""
    return _coloured(rng, n, 80.0, 10000.0, tilt_db_per_oct=-3.0, peaks=((3300.0, 15.0, 6.0),))


VOWEL_FORMANTS_HZ = {"a": (730, 1090, 2440), "e": (530, 1840, 2480), "i": (270, 2290, 3010), "o": (570, 840, 2410),
                     "u": (300, 870, 2240)}
"""Peterson-Barney style F1-F3 of five vowels (as in :mod:`imgext.sounds.synth`)."""


def _voice(rng: np.random.Generator, n: int, f0_hz: float, *, syllable_s: float = 0.22, word: int = 4,
           pause_s: float = 0.45) -> np.ndarray:
    """Speech-like voice: glottal pulses on a wandering f0 through F1-F3 resonators (bandwidths 80/100/140 Hz),
    one vowel per syllable (sin^2 envelope), words of ``word`` syllables between pauses."""
    t = _time(n)
    f0 = f0_hz * (1.0 + 0.08 * np.tanh(_smooth(rng, n, 0.7)))
    phase = np.cumsum(f0) / SAMPLE_RATE
    pulses = np.diff(np.floor(phase), prepend=0.0)
    src = scipy.signal.lfilter([1.0], [1.0, -0.95], pulses)  # -6 dB/oct glottal slope above ~350 Hz
    word_s = word * syllable_s + pause_s
    tw = t % word_s
    k = np.floor(tw / syllable_s).astype(int)
    voiced = k < word
    vowel = (np.floor(t / word_s).astype(int) * word + k) % len(VOWEL_FORMANTS_HZ)
    env = np.where(voiced, np.sin(np.pi * (tw % syllable_s) / syllable_s) ** 2, 0.0)
    out = np.zeros(n)
    for v, formants in enumerate(VOWEL_FORMANTS_HZ.values()):
        sel = voiced & (vowel == v)
        if not sel.any():
            continue
        sos = np.concatenate([_resonator_sos(f, bw) for f, bw in zip(formants, (80.0, 100.0, 140.0))])
        out[sel] = scipy.signal.sosfilt(sos, src)[sel]
    return out * env


def _resonator_sos(f_hz: float, bw_hz: float) -> np.ndarray:
    """Two-pole resonator (unit gain at DC) as one second-order section."""
    r = np.exp(-np.pi * bw_hz / SAMPLE_RATE)
    a = [1.0, -2.0 * r * np.cos(2 * np.pi * f_hz / SAMPLE_RATE), r * r]
    return np.array([[sum(a), 0.0, 0.0, *a]])


def voice_low(rng: np.random.Generator, n: int) -> np.ndarray:
    """Talker, f0 about 120 Hz, vowels a-e-i-o-u cycling (F2 0.84-2.29 kHz)."""
    return _voice(rng, n, 120.0)


def voice_high(rng: np.random.Generator, n: int) -> np.ndarray:
    """Second talker, f0 about 210 Hz, faster syllables."""
    return _voice(rng, n, 210.0, syllable_s=0.18, word=3, pause_s=0.6)


def speech_noise(rng: np.random.Generator, n: int) -> np.ndarray:
    """Steady speech-shaped noise: the long-term spectrum of :func:`voice_low` (its own draw), smoothed over 7 Hz."""
    mag = np.convolve(np.abs(np.fft.rfft(_voice(rng, n, 120.0))), np.ones(301) / 301, mode="same")
    return np.fft.irfft(np.fft.rfft(rng.standard_normal(n)) * mag, n)


def vent_hiss(rng: np.random.Generator, n: int) -> np.ndarray:
    """Air-conditioning vent hiss: flat noise 1.2-2.8 kHz (the voices' F2 region), steady."""
    return _coloured(rng, n, 1200.0, 2800.0)


def whistle_tune(rng: np.random.Generator, n: int) -> np.ndarray:
    """Whistled tune: 8 notes of 0.4 s in 1.4-2.0 kHz, 5 Hz vibrato +-1 %, 50 ms gaps, a 1 s breath every 8 notes."""
    notes = np.array([1480.0, 1568.0, 1760.0, 1976.0, 1760.0, 1568.0, 1397.0, 1568.0])
    t = _time(n)
    cycle = 8 * 0.4 + 1.0
    tc = t % cycle
    k = np.minimum((tc / 0.4).astype(int), 7)
    on = (tc < 8 * 0.4) & ((tc % 0.4) < 0.35)
    f = notes[k] * (1.0 + 0.01 * np.sin(2 * np.pi * 5.0 * t))
    return _ramped(on, 0.02) * _sines(f, {1: 1.0, 2: 0.05})


def bird_trill_low(rng: np.random.Generator, n: int) -> np.ndarray:
    """Second bird: 3.2-3.5 kHz trills (the first bird's band) alternating with 1.8-2.2 kHz down-slurs, 3 s phrase."""
    t = _time(n)
    tp = (t + 0.9) % 3.0
    trill = (tp < 0.8) & ((tp % 0.1) < 0.07)
    slur = (tp >= 1.2) & (tp < 2.0) & (((tp - 1.2) % 0.4) < 0.3)
    f = np.where(tp < 1.0, 3200.0 + 300.0 * ((tp % 0.1) / 0.07).clip(0, 1), 2200.0 - 400.0 * (((tp - 1.2) % 0.4) / 0.3))
    return _ramped(trill | slur, 0.005) * _sines(f, {1: 1.0, 2: 0.1})


GENERATORS = {f.__name__: f for f in (phone_ring, tv_resonant, bird_chirps, fan_whine, voice_low, voice_high, vent_hiss,
                                     whistle_tune, bird_trill_low, speech_noise)}
"""Known-overlap stimuli by name (source spec ``("gen", name, seed)``)."""

# name: (purpose, hard, [(track, importance, source)]); source: animal name, ("synth", kind, seed),
# ("gen", generator, seed) or a noise spec.
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
    # Known-overlap scenes of the textbook case (designed from their stories, before any EQ result was seen):
    # (a) a tonal foreground in 1-2 Bark bands under a less important broadband source resonating in those bands,
    # (b) formant speech under band-limited noise on one formant region, (c) equally important sources sharing a band.
    "phone_tv": ("(a) a phone ringing (1.0-1.25 kHz trill) in front of a TV (0.7) whose speaker resonates at 1.1 kHz",
                 False, [("phone", 1.0, ("gen", "phone_ring", 11)), ("tv", 0.7, ("gen", "tv_resonant", 12))]),
    "bird_fan": ("(a) a bird at the window (3.0-3.6 kHz chirps) over a desk fan (0.5) whining at 3.3 kHz", False,
                 [("bird", 1.0, ("gen", "bird_chirps", 13)), ("fan", 0.5, ("gen", "fan_whine", 14))]),
    "voice_vent": ("(b) a person talking (formants, F2 0.84-2.29 kHz) beside an AC vent (0.6) hissing at 1.2-2.8 kHz",
                   False, [("voice", 1.0, ("gen", "voice_low", 15)), ("vent", 0.6, ("gen", "vent_hiss", 16))]),
    "whistle_talk": ("(c) two equally important people: a whistled tune at 1.4-2.0 kHz on a talker's F2 region",
                     False, [("whistle", 1.0, ("gen", "whistle_tune", 17)),
                             ("talker", 1.0, ("gen", "voice_high", 18))]),
    "bird_duet": ("(c) two equally important birds sharing 3.2-3.6 kHz (one also slurs at 1.8-2.2 kHz)", False,
                  [("bird_a", 1.0, ("gen", "bird_chirps", 19)), ("bird_b", 1.0, ("gen", "bird_trill_low", 20))]),
    "dialogue": ("(c) two equally important talkers (f0 120 / 210 Hz), formant regions overlapping", False,
                 [("low", 1.0, ("gen", "voice_low", 21)), ("high", 1.0, ("gen", "voice_high", 22))]),
    "calib_ssn": ("calibration, the textbook worst case at equal importance: a talker in steady speech-shaped noise "
                  "(0 dB SNR)", False,
                  [("voice", 1.0, ("gen", "voice_low", 23)), ("noise", 1.0, ("gen", "speech_noise", 24))]),
}
"""The fixed scene set. Synthetic noises draw from one generator (seed 7) in this order; built-in sounds
(:mod:`imgext.sounds.synth`) and the known-overlap stimuli (``("gen", function, seed)``) use the seed given."""


def build_scenes(seconds: float, seed: int = 7, only: list[str] | None = None) -> list[Scene]:
    """The fixed scene set (real recordings, the app's own synthetic backgrounds, noises with known overlaps)."""
    n = int(seconds * SAMPLE_RATE)
    rng = np.random.default_rng(seed)
    cache: dict[str, np.ndarray] = {}

    def source(spec) -> np.ndarray:
        if isinstance(spec, str):
            if spec not in cache:
                cache[spec] = _level(_animal(spec, n))
            return cache[spec]
        if spec[0] == "synth":
            x = synth.synthesize(spec[1], duration_s=seconds, sample_rate=SAMPLE_RATE, rng=spec[2])
            return _level(audio.fit_duration(x, n, SAMPLE_RATE))
        if spec[0] == "gen":
            return _level(GENERATORS[spec[1]](np.random.default_rng(spec[2]), n))
        _, lo, hi, tilt, period, duty, phase = spec
        return _level(_noise(rng, n, lo, hi, tilt_db_per_oct=tilt, period_s=period, duty=duty, phase=phase))

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
    bands: masking.BandEnergies | None = None  # analysis of the rendered audio (gains applied)


def _render(tracks: np.ndarray, filters, gains_db: np.ndarray) -> np.ndarray:
    return eq.apply_eq(tracks, filters, SAMPLE_RATE) * audio.db_to_gain(gains_db).astype(np.float32)[:, None]


def _measure(rendered: np.ndarray, importance: np.ndarray) -> dict:
    """Re-analyse rendered audio: ``report=`` and ``bands=`` keywords for :class:`Row`."""
    bands = masking.band_energies(rendered, SAMPLE_RATE)
    return {"report": masking.masking_report(bands, gains_db=np.zeros(len(rendered)), importance=importance),
            "bands": bands}


def top_mf(report: masking.MaskingReport, top: np.ndarray) -> float:
    """The most important track's masked fraction; tracks tied at the top (:func:`imgext.engine.eq.top_tracks`) by their
    mean, the figure the engine protects."""
    return float(report.masked_fraction[top].mean())


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
    rows = [Row("dry", audio=y0, filters=none, offsets_db=np.zeros(n), **_measure(y0, p))]
    filters = eq.design_eq(bands, gains_db=g, importance=p, strength=1.0)
    h = eq.eq_response_db(filters, bands)
    lu = eq.filters_loudness_change_lu(filters, bands)
    y = _render(tracks, filters, g)
    rows.append(Row("EQ", audio=y, filters=filters, offsets_db=np.zeros(n),
                    estimate=masking.masking_report(bands, gains_db=g, importance=p, eq_db=h), lu_estimate=lu,
                    **_measure(y, p)))
    res = optimise.optimise_mix(bands, gains_db=g, importance=p, eq_db=h, seed=seed, eq_loudness_lu=lu)
    f2 = optimise.scale_filters(filters, res.eq_depth)
    y2 = _render(tracks, f2, g + res.gain_offsets_db)
    rows.append(Row("EQ+opt", audio=y2, filters=f2, offsets_db=res.gain_offsets_db,
                    estimate=masking.masking_report(bands, gains_db=g + res.gain_offsets_db, importance=p,
                                                    eq_db=eq.eq_response_db(f2, bands)),
                    lu_estimate=eq.filters_loudness_change_lu(f2, bands) + res.gain_offsets_db, extra={"opt": res},
                    **_measure(y2, p)))
    top = eq.top_tracks(p)
    others = ~np.isin(np.arange(n), top)
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
    own_curve = eq.cut_curve_db(bands, gains_db=g, importance=p)
    own = masking.masking_report(bands, gains_db=g, importance=p, eq_db=-own_curve.cut_db)
    return rows, {"top": top, "oracle": oracle, "oracle_pair": oracle_pair, "rules": rules, "curve": own,
                  "bands": bands, "eq_db": h, "upper_db": own_curve.upper_db}


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


def _pair_bands(bands: masking.BandEnergies, i: int, j: int) -> tuple[np.ndarray, np.ndarray]:
    """Per band: its contribution to the pair masking of j by i (dB; sums to ``matrix_db[i, j]``) and its share of
    j's loudness weight. ``bands`` is the analysis of rendered audio (gains applied)."""
    d = masking.masking_detail(bands, gains_db=np.zeros(bands.n_tracks))
    w = d.weight[j].astype(np.float64)
    total = max(float(w.sum()), 1e-30)
    return (d.pair_db[i, j] * w).sum(axis=-1) / total, w.sum(axis=-1) / total


def clash_diagnosis(scene: Scene, rows: list[Row], extra: dict) -> tuple[str, float]:
    """One line on the worst problematic clash: where it lives, how much of the maskee that is, what the masker's
    loudness budget allows there and what the EQ did there (all measured on rendered audio). Also returns the
    in-band fall (dB) of the clash bands under the EQ alone."""
    wp = rows[0].report.worst_problem_pair
    if wp is None:
        return "clash diagnosis: no problematic masking", 0.0
    i, j, v = wp
    names, b = scene.names, extra["bands"]
    c0, share0 = _pair_bands(rows[0].bands, i, j)
    c1, share1 = _pair_bands(rows[1].bands, i, j)
    order = np.argsort(-c0)
    sel = order[: int(np.searchsorted(np.cumsum(c0[order]), 0.8 * c0.sum())) + 1]  # bands holding 80 % of it
    in0 = c0[sel].sum() / max(share0[sel].sum(), 1e-12)
    in1 = c1[sel].sum() / max(share1[sel].sum(), 1e-12)
    k = b.loudness_power[i].astype(np.float64)
    ks = float(k[sel].sum() / max(k.sum(), 1e-30))
    free = 1.0 - 10.0 ** (-eq.DEFAULT_MAX_LOUDNESS_LOSS_LU / 10.0)  # share a full cut to silence could remove
    budget = eq.DEFAULT_MAX_CUT_DB if ks <= free else min(eq.DEFAULT_MAX_CUT_DB, -10 * np.log10(1 - free / ks))
    rule_cap = float(extra["upper_db"][i, sel].min())
    weights = c0[sel] / max(c0[sel].sum(), 1e-12)
    cut = max(0.0, -float(extra["eq_db"][i, sel] @ weights))
    hz = "/".join(f"{b.band_centres_hz[x]:.0f}" for x in sorted(sel))
    line = (f"clash diagnosis: {names[i]}>{names[j]} {v:.2f} dB is a mean over all of {names[j]}'s band-frames; 80 % "
            f"of it lies in {hz} Hz ({share0[sel].sum():.0%} of {names[j]}'s weight), masked {in0:.1f} dB there, so "
            f"the pair can fall {v:.2f} dB at most; {names[i]} has {ks:.0%} of its loudness there: "
            f"{eq.DEFAULT_MAX_LOUDNESS_LOSS_LU} LU allow a {budget:.1f} dB cut (rule cap {rule_cap:.0f} dB); "
            f"EQ cut {cut:.1f} dB there (clash-weighted) -> {in1:.1f} dB in band ({in1 - in0:+.1f})")
    return line, in1 - in0


def print_scene(scene: Scene, rows: list[Row], extra: dict, meter: pyloudnorm.Meter) -> dict:
    top, names = extra["top"], scene.names
    dry = rows[0]
    mf0 = top_mf(dry.report, top)
    wpp0, wp0 = dry.report.worst_problem_pair, dry.report.worst_pair
    dry_lufs = [_lufs(meter, x) for x in dry.audio]
    top_name = "+".join(names[t] for t in top) + (" (tied: mean masked fraction)" if len(top) > 1 else "")
    print(f"\n## {scene.name}{' [hard]' if scene.hard else ''}: {scene.purpose}")
    print("importance " + ", ".join(f"{k} {p:.2f}" for k, p in zip(names, scene.importance)) + f"; top = {top_name}")
    print(f"{'condition':8s} {'top MF':>6s} {'dMF':>5s} {'MFerr':>5s} {'worst problematic pair':>24s} {'d same':>6s} "
          f"{'worst pair (all)':>22s} {'d same':>6s} {'total':>5s} {'max|dLU|':>8s} {'LUerr':>5s} {'filt':>4s} "
          f"{'maxcut':>6s} {'offsets':>7s} {'boost':>5s} {'peak':>6s}")
    verdict = {}
    for row in rows:
        r = row.report
        mf = top_mf(r, top)
        d_mf = _pct(mf, mf0)
        d_wpp = r.matrix_db[wpp0[0], wpp0[1]] - wpp0[2] if wpp0 else 0.0
        d_wp = r.matrix_db[wp0[0], wp0[1]] - wp0[2] if wp0 else 0.0
        mf_err = abs(top_mf(row.estimate, top) - mf) if row.estimate is not None else 0.0
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
    rules_pct = _pct(top_mf(extra["rules"], top), mf0)
    curve_pct = _pct(top_mf(extra["curve"], top), mf0)
    oracle_pct = _pct(top_mf(extra["oracle"], top), mf0)
    res = rows[2].extra["opt"]
    diagnosis, in_band = clash_diagnosis(scene, rows, extra)
    print(f"references: top MF oracle {oracle_pct:.0f}% (all others -6 dB everywhere, loudness ignored), "
          f"rules reference {rules_pct:.0f}% (6 dB, any band, 2 LU, top only); the EQ's own band curve before "
          f"fitting filters {curve_pct:.0f}%; "
          + (f"problematic pair with its masker -6 dB everywhere: {extra['oracle_pair']:+.2f} dB" if wpp0
             else "no problematic masking")
          + f"\n{diagnosis}"
          + f"\noptimiser: {res.n_evaluations} evaluations, {res.time_s:.2f} s, offsets "
          + " ".join(f"{v:+.1f}" for v in res.gain_offsets_db)
          + ", depth " + " ".join(f"{v:.2f}" for v in res.eq_depth))
    verdict.update(hard=scene.hard, wpp0=wpp0[2] if wpp0 else 0.0, rules_pct=rules_pct,
                   oracle_pair=extra["oracle_pair"], in_band=in_band)
    return verdict


def print_summary(verdicts: dict) -> None:
    print("\n## Summary (targets at EQ strength 1; worst pair = worst PROBLEMATIC pair, "
          "masker no more important than maskee)")
    print(f"{'scene':14s} {'cond.':6s} {'top MF -25 %':40s} {'worst problematic pair -3 dB':70s} "
          f"{'<=2 LU':>6s} {'no boost':>8s} {'no clip':>7s}")
    counts = {"mf": 0, "wpp": 0, "wpp_na": 0, "rows": 0, "rules": 0}
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
                           f"{c['d_wpp']:+.2f} dB, {_pct(v['wpp0'] + c['d_wpp'], v['wpp0']):.0f}%"
                           + (f"; in band {v['in_band']:+.1f}" if label == "EQ" else ""))
                counts["wpp_na"] += 1
            else:
                wpp_txt = f"FAIL {c['d_wpp']:+.2f} dB (masker -6 dB: {v['oracle_pair']:+.2f})"
            rules_ok = c["lu"] <= LU_LIMIT and c["boost"] and c["peak"] <= 0.0
            counts["rules"] += rules_ok
            ok = lambda b: "PASS" if b else "FAIL"  # noqa: E731
            print(f"{scene:14s} {label:6s} {mf_txt:40s} {wpp_txt:70s} {ok(c['lu'] <= LU_LIMIT):>6s} "
                  f"{ok(c['boost']):>8s} {ok(c['peak'] <= 0.0):>7s}")
    n_big = sum(v["wpp0"] >= -WORST_TARGET_DB for v in verdicts.values())
    y = counts["rows"]
    print(f"\ntargets met: masked fraction {counts['mf']}/{y} rows, worst clash {counts['wpp']}/{y} rows "
          f"({n_big} scenes have a clash >= 3 dB to begin with), loudness/no-boost/no-clip {counts['rules']}/{y}")


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

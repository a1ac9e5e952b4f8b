"""How the built-in synthesiser's events vary, against real recordings (issue 10).

For each of the shared CC0 recordings (``../shared/sounds/*.mp3``, CREDITS.md) and
for the synthesiser kinds that are scheduled as events, the source is cut into
events exactly as the arrangement cuts it (:func:`imgext.composition.roles.event_regions`),
and three figures are measured over its events:

* **pitch spread**: coefficient of variation (std / mean, %) of the events' f0,
  each event's f0 the median of YIN (de Cheveigné & Kawahara 2002, JASA 111(4))
  over its voiced frames (cumulative mean normalised difference < 0.3, level
  within 20 dB of the event's loudest frame); needs three voiced events;
* **similarity**: mean over event pairs of the correlation (cosine of the
  mean-removed vectors) of their average log-mel spectra (40 bands, 60 Hz to
  10 kHz, dB): 1 = every event has the same spectral shape;
* **HNR**: harmonics-to-noise ratio, dB: per frame ``10 log10(r / (1 - r))`` with
  ``r`` the highest window-corrected normalised autocorrelation at a lag of one
  pitch period (70-2000 Hz; Boersma 1993, IFA Proceedings 17), median over the
  event's frames within 20 dB of its loudest, then median over events.

All in numpy (no librosa import: numba costs seconds); ``--pyin`` cross-checks the
pitch spread with ``librosa.pyin``.  The tests (tests/test_synth_variation.py) load
this file and check that the synthesiser's figures fall in bands around the
real ones printed here.

Run: ``python bench/synth.py [--seeds 4] [--duration 20] [--pyin]``.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from imgext.composition.arrange import load_clip  # noqa: E402
from imgext.composition.roles import event_regions  # noqa: E402

SR = 44100
SOUNDS = ROOT.parent / "shared" / "sounds"
REAL = {  # recording -> the synthesiser kind that stands in for it
    "dog.mp3": "dog_bark", "cat.mp3": "cat_meow", "cow.mp3": "cow_moo", "horse.mp3": "horse_neigh",
    "sheep.mp3": "sheep_bleat", "rooster.mp3": "birds", "owl.mp3": "birds", "duck.mp3": "birds",
    "pig.mp3": None, "frog.mp3": None,
}
EVENT_KINDS = ("dog_bark", "cat_meow", "cow_moo", "horse_neigh", "sheep_bleat", "zebra_bark", "elephant_trumpet",
               "bear_growl", "giraffe_hum", "birds")
_N, _HOP = 2048, 512  # 46 ms frames every 11.6 ms at 44.1 kHz
_FMIN, _FMAX = 70.0, 2000.0


@dataclass(frozen=True)
class Figures:
    """What one source's events measure: counts, pitch spread (%), similarity, HNR (dB), f0 (Hz)."""

    n_events: int
    n_voiced: int
    pitch_spread_pct: float
    similarity: float
    hnr_db: float
    f0_hz: float


def _frames(x: np.ndarray, n: int, hop: int) -> np.ndarray:
    m = 1 + (x.shape[0] - n) // hop
    if m < 1:
        return np.zeros((0, n))
    return np.lib.stride_tricks.sliding_window_view(x, n)[::hop][:m]


def yin_f0(x: np.ndarray, sr: int, *, fmin: float = _FMIN, fmax: float = _FMAX, threshold: float = 0.3):
    """YIN per frame: f0 (Hz), aperiodicity (the CMND at the chosen lag, 0..1) and frame energy [each (m,)]."""
    tmax = int(sr / fmin) + 1
    frames = _frames(np.pad(np.asarray(x, dtype=np.float64), (0, tmax)), _N + tmax, _HOP)  # one frame per hop of x
    if frames.shape[0] == 0:
        return np.zeros(0), np.ones(0), np.zeros(0)
    size = 2 * frames.shape[1]
    cross = np.fft.irfft(np.fft.rfft(frames, size) * np.conj(np.fft.rfft(frames[:, :_N], size)), size)[:, :tmax]
    c = np.concatenate([np.zeros((frames.shape[0], 1)), np.cumsum(frames**2, axis=1)], axis=1)
    e0 = c[:, _N] - c[:, 0]
    d = e0[:, None] + (c[:, _N : _N + tmax] - c[:, :tmax]) - 2.0 * cross
    d[:, 0] = 0.0
    cmnd = np.ones_like(d)
    cmnd[:, 1:] = d[:, 1:] * np.arange(1, tmax) / np.maximum(np.cumsum(d[:, 1:], axis=1), 1e-20)
    lo = int(sr / fmax)
    band = cmnd[:, lo:]
    below = band < threshold
    first = np.where(below.any(axis=1), below.argmax(axis=1), band.argmin(axis=1))
    # from the first dip under the threshold, walk down to its local minimum (at most one octave on)
    idx = first[:, None] + np.arange(lo + 1)[None, :]
    idx = np.minimum(idx, band.shape[1] - 1)
    vals = np.take_along_axis(band, idx, axis=1)
    rising = np.diff(vals, axis=1) > 0
    step = np.where(rising.any(axis=1), rising.argmax(axis=1), 0)
    tau = lo + first + step
    rows = np.arange(band.shape[0])
    return sr / tau, cmnd[rows, tau], e0


def hnr_frames(x: np.ndarray, sr: int, *, fmin: float = _FMIN, fmax: float = _FMAX):
    """Harmonics-to-noise ratio per frame (dB) and frame energy [each (m,)], Boersma's window-corrected autocorrelation."""
    w = np.hanning(_N)
    frames = _frames(np.asarray(x, dtype=np.float64), _N, _HOP)
    if frames.shape[0] == 0:
        return np.zeros(0), np.zeros(0)
    frames = (frames - frames.mean(axis=1, keepdims=True)) * w
    r = np.fft.irfft(np.abs(np.fft.rfft(frames, 2 * _N)) ** 2, 2 * _N)[:, :_N]
    rw = np.fft.irfft(np.abs(np.fft.rfft(w, 2 * _N)) ** 2, 2 * _N)[:_N]
    r = r / np.maximum(r[:, :1], 1e-20) / (rw / rw[0])
    peak = np.clip(r[:, int(sr / fmax) : int(sr / fmin)].max(axis=1), 1e-4, 1.0 - 1e-4)
    return 10.0 * np.log10(peak / (1.0 - peak)), np.sum(frames**2, axis=1)


@lru_cache(maxsize=8)
def _mel_bank(sr: int, n_fft: int = _N, n_bands: int = 40, lo_hz: float = 60.0, hi_hz: float = 10000.0) -> np.ndarray:
    f = np.fft.rfftfreq(n_fft, 1.0 / sr)
    mel = lambda hz: 2595.0 * np.log10(1.0 + hz / 700.0)  # noqa: E731
    edges = 700.0 * (10.0 ** (np.linspace(mel(lo_hz), mel(min(hi_hz, 0.48 * sr)), n_bands + 2) / 2595.0) - 1.0)
    up = (f - edges[:-2, None]) / (edges[1:-1, None] - edges[:-2, None])
    down = (edges[2:, None] - f) / (edges[2:, None] - edges[1:-1, None])
    return np.maximum(0.0, np.minimum(up, down))


def mel_db(x: np.ndarray, sr: int) -> np.ndarray:
    """Average log-mel spectrum of a segment in dB [shape=(40,)]."""
    frames = _frames(np.asarray(x, dtype=np.float64), _N, _HOP) * np.hanning(_N)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    return 10.0 * np.log10(_mel_bank(sr) @ power.mean(axis=0) + 1e-12)


def similarity(spectra: np.ndarray) -> float:
    """Mean pairwise correlation of log spectra [shape=(k, bands)] (nan for fewer than two)."""
    if spectra.shape[0] < 2:
        return float("nan")
    z = spectra - spectra.mean(axis=1, keepdims=True)
    z /= np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)
    iu = np.triu_indices(spectra.shape[0], 1)
    return float((z @ z.T)[iu].mean())


def segments(clip: np.ndarray, sr: int, *, event_s: float = 1.0) -> list[np.ndarray]:
    """The events the arrangement would cut from ``clip`` (audible ones, at least two frames long)."""
    x = np.asarray(clip, dtype=np.float64)
    top = float(np.max(np.abs(x))) if x.size else 0.0
    out = []
    for r in event_regions(clip, sr, event_s=event_s):
        seg = x[int(r.start_s * sr) : int(r.end_s * sr)]
        if seg.shape[0] >= _N + _HOP and np.max(np.abs(seg)) > 1e-3 * top:
            out.append(seg)
    return out


def measure(clip: np.ndarray, sr: int = SR, *, event_s: float = 1.0) -> Figures:
    """The three figures of one source (see the module notes)."""
    f0s, hnrs, spectra = [], [], []
    for seg in segments(clip, sr, event_s=event_s):
        f0, aperiodic, energy = yin_f0(seg, sr)
        loud = energy > 0.01 * energy.max()
        voiced = loud & (aperiodic < 0.3)
        if voiced.sum() >= 3:
            f0s.append(float(np.median(f0[voiced])))
        hnr, e = hnr_frames(seg, sr)
        hnrs.append(float(np.median(hnr[e > 0.01 * e.max()])))
        spectra.append(mel_db(seg, sr))
    f0s = np.array(f0s)
    spread = float(100.0 * f0s.std() / f0s.mean()) if f0s.size >= 3 else float("nan")
    return Figures(len(spectra), int(f0s.size), spread, similarity(np.array(spectra).reshape(len(spectra), -1)),
                   float(np.median(hnrs)) if hnrs else float("nan"), float(np.median(f0s)) if f0s.size else float("nan"))


def real_figures(name: str) -> Figures:
    """The figures of one shared recording (decoded at 44.1 kHz mono)."""
    path = SOUNDS / name
    return measure(load_clip(path.read_bytes(), name=name, sample_rate=SR, max_seconds=60.0))


def synth_figures(kind: str, *, seeds=range(4), duration_s: float = 20.0) -> list[Figures]:
    """The figures of ``kind`` for each seed (one animal per seed, as one built-in candidate is)."""
    from imgext.sounds.synth import synthesize

    return [measure(synthesize(kind, duration_s=duration_s, sample_rate=SR, rng=s)) for s in seeds]


def median_figures(figs: list[Figures]) -> Figures:
    """Per-figure median over seeds (nan-aware)."""
    arr = np.array([[f.n_events, f.n_voiced, f.pitch_spread_pct, f.similarity, f.hnr_db, f.f0_hz] for f in figs])
    with np.errstate(all="ignore"):
        med = [float(np.nanmedian(col)) if np.isfinite(col).any() else float("nan") for col in arr.T]
    return Figures(int(med[0]), int(med[1]), *med[2:])


def _pyin_spread(clip: np.ndarray, sr: int) -> float:
    import librosa

    f0s = []
    for seg in segments(clip, sr):
        f0, voiced, _ = librosa.pyin(seg.astype(np.float32), fmin=_FMIN, fmax=_FMAX, sr=sr, frame_length=_N, hop_length=_HOP)
        if np.sum(voiced) >= 3:
            f0s.append(float(np.nanmedian(f0[voiced])))
    return float(100 * np.std(f0s) / np.mean(f0s)) if len(f0s) >= 3 else float("nan")


def _row(name: str, f: Figures, extra: str = "") -> str:
    return (f"{name:<20} {f.n_events:>4} {f.n_voiced:>4} {f.f0_hz:>7.0f} {f.pitch_spread_pct:>9.1f} "
            f"{f.similarity:>8.3f} {f.hnr_db:>7.1f}{extra}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--duration", type=float, default=20.0)
    ap.add_argument("--pyin", action="store_true", help="cross-check the pitch spread with librosa.pyin (slow)")
    args = ap.parse_args()
    head = f"{'source':<20} {'ev':>4} {'vcd':>4} {'f0 Hz':>7} {'spread %':>9} {'simil.':>8} {'HNR dB':>7}"
    print("real recordings (../shared/sounds)\n" + head + ("   pyin spread %" if args.pyin else ""))
    for name, kind in REAL.items():
        f = real_figures(name)
        extra = ""
        if args.pyin:
            clip = load_clip((SOUNDS / name).read_bytes(), name=name, sample_rate=SR, max_seconds=60.0)
            extra = f" {_pyin_spread(clip, SR):>14.1f}"
        print(_row(name + (f" ({kind})" if kind else ""), f, extra))
    print(f"\nsynthesiser (median over seeds 0..{args.seeds - 1}, {args.duration:g} s each)\n" + head)
    for kind in EVENT_KINDS:
        print(_row(kind, median_figures(synth_figures(kind, seeds=range(args.seeds), duration_s=args.duration))))


if __name__ == "__main__":
    main()

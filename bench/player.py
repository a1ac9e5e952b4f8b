"""What the stems player costs the server per slider move: preparing the parts, encoding, bytes sent.

Run: ``python bench/player.py [--runs 3]``. Eight band-limited noises (:func:`bench.masking.synthetic_tracks`,
8 x 30 s at 44.1 kHz, the hardest material for a codec) are mixed by :class:`imgext.mix.mixer.Mixer` as the
Mix page does (the processed mix and the unprocessed "before"), taken apart by
:func:`imgext.mix.preview.preview_mix` and encoded by :class:`imgext.mix.preview.PreviewEncoder`:

- ``first load``: every signal of both mixes prepared (resampled to 24 kHz, hashed) and encoded;
- ``EQ-strength move``: the processed mix re-rendered, its parts prepared again (unchanged arrays from the
  memo) and only the changed signals encoded;
- ``loudness move``: a new master gain, no signal changes (nothing encoded, nothing sent).

Bytes are compared with 16-bit WAV of the same signals at 24 kHz and with the two 44.1 kHz stereo mixes as
16-bit WAV (what the two ``st.audio`` players sent per move). Medians of process CPU and wall seconds on a
noisy shared machine: read medians and ratios, never assert on them.
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
from imgext.mix.mixer import Mixer  # noqa: E402
from imgext.mix.preview import PreviewEncoder, preview_mix  # noqa: E402
from imgext.options import MixSettings  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--codec", choices=["vorbis", "flac"], default="vorbis", help="the PreviewEncoder's codec")
    args = ap.parse_args(argv)
    audio, importance = synthetic_tracks()
    n = len(audio)
    tracks = Tracks(audio=audio, names=[f"t{k}" for k in range(n)], object_indices=list(range(n)),
                    pans=np.linspace(-0.8, 0.8, n), importance=importance, volume_db=np.zeros(n),
                    sample_rate=SAMPLE_RATE)
    settings = MixSettings(duration_s=30.0, seed=0, reverb_amount=0.3)
    mixer = Mixer(tracks)
    before = mixer.render(replace(settings, eq_strength=0.0), measure_after=False)
    rows = []

    def parts(outcome, memo, match_db=0.0):
        return preview_mix(outcome, tracks.names, tracks.pans, sample_rate=SAMPLE_RATE, match_db=match_db, memo=memo)

    def send(encoder, previews, sent):
        size = 0
        for pm in previews:
            for sid, x in pm.signals.items():
                if sid not in sent:
                    size += len(encoder.get(sid, x, pm.sample_rate, lossless=sid == pm.envelope).data)
                    sent.add(sid)
        return size

    def median(values):
        return float(np.median(values))

    cold = {"prep": [], "enc": [], "cpu": []}
    move = {"render": [], "prep": [], "enc": [], "cpu": [], "bytes": [], "changed": []}
    loud = {"prep": [], "bytes": []}
    first_bytes = pcm_bytes = 0
    strengths = iter(np.linspace(0.35, 0.95, args.runs))
    for _ in range(args.runs):
        encoder, memos, sent = PreviewEncoder(max_bytes=1 << 30, codec=args.codec), {"a": {}, "b": {}}, set()
        after = mixer.render(settings, measure_after=False)
        c0, t0 = time.process_time(), time.perf_counter()
        previews = [parts(before, memos["b"]), parts(after, memos["a"])]
        t1 = time.perf_counter()
        first_bytes = send(encoder, previews, sent)
        cold["prep"].append(t1 - t0)
        cold["enc"].append(time.perf_counter() - t1)
        cold["cpu"].append(time.process_time() - c0)
        pcm_bytes = sum(x.size * 2 for pm in previews for x in pm.signals.values())

        t0 = time.perf_counter()
        moved_settings = replace(settings, eq_strength=float(next(strengths)))
        moved = mixer.render(moved_settings, measure_after=False)
        move["render"].append(time.perf_counter() - t0)
        c0, t0 = time.process_time(), time.perf_counter()
        previews2 = [parts(before, memos["b"]), parts(moved, memos["a"])]
        t1 = time.perf_counter()
        move["bytes"].append(send(encoder, previews2, sent))
        move["prep"].append(t1 - t0)
        move["enc"].append(time.perf_counter() - t1)
        move["cpu"].append(time.process_time() - c0)
        move["changed"].append(sum(t.signal not in set(previews[1].signals) for t in previews2[1].tracks))

        louder = mixer.render(replace(moved_settings, loudness_lufs=settings.loudness_lufs - 3), measure_after=False)
        t0 = time.perf_counter()
        previews3 = [parts(before, memos["b"]), parts(louder, memos["a"])]
        loud["prep"].append(time.perf_counter() - t0)
        loud["bytes"].append(send(encoder, previews3, sent))
    wav_mixes = 2 * 2 * 2 * int(settings.duration_s * SAMPLE_RATE)
    rows = [
        ("first load: prepare (wall s)", median(cold["prep"])),
        ("first load: encode (wall s)", median(cold["enc"])),
        ("first load: cpu s", median(cold["cpu"])),
        ("first load: KB sent", first_bytes / 1024),
        ("  the same as 16-bit WAV at 24 kHz (KB)", pcm_bytes / 1024),
        ("EQ move: Mixer.render (wall s, not the player's)", median(move["render"])),
        ("EQ move: prepare (wall s)", median(move["prep"])),
        ("EQ move: encode (wall s)", median(move["enc"])),
        ("EQ move: cpu s", median(move["cpu"])),
        ("EQ move: tracks changed (of 8)", median(move["changed"])),
        ("EQ move: KB sent", median(move["bytes"]) / 1024),
        ("loudness move: prepare (wall s)", median(loud["prep"])),
        ("loudness move: KB sent", median(loud["bytes"]) / 1024),
        ("st.audio before+after per move, 16-bit WAV (KB)", wav_mixes / 1024),
    ]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"# player bench: {n} tracks x 30 s at {SAMPLE_RATE} Hz -> 24 kHz {args.codec}, median of {args.runs} runs, "
          f"load average {load:.1f} on {os.cpu_count()} cores")
    for name, value in rows:
        print(f"{name:52s} {value:10.3f}")


if __name__ == "__main__":
    main()

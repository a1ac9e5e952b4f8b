"""The render after the sliders rest, in the library: what the Mix page's settle render costs, stage by stage.

Run from the repo root: ``python bench/settle.py [--objects 8 32] [--slider attenuation_db] [--steps 6]``.

It builds the scene the app bench builds (:mod:`bench.app`: ``bus.jpg`` detected with the shared detector,
objects added by hand until the scene has N objects, built-in sounds) in one :class:`imgext.project.Project`
``(interactive=True)``, as a session of the app holds it, and then moves one slider ``--steps`` times, each
step followed by what the page does once the sliders rest, on a script thread with the server's allocator
(:func:`imgext.hosting.tune_server_malloc`) and one BLAS thread pinned, as in the app server:

* **render**: :meth:`Project.mix` (the duck's design and render, the spatial stage, loudness and limiter);
* **parts**: :meth:`Mixer.blend_parts` and :func:`~imgext.mix.preview.preview_mix` with the session's memo
  (resampling and hashing the signals it does not know);
* **FLAC**: :class:`~imgext.mix.preview.PreviewEncoder` on every signal (only the new ones are encoded).

Each is process CPU seconds (``time.process_time``), with the page faults of the step; the medians leave out
the first two steps (the buffer pool fills). The page's own work (figures, the component) is not in it:
``bench/app.py`` measures the whole. A noisy shared machine: read medians and ratios, never assert on them.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.app import LABELS, WEIGHTS  # noqa: E402

STEP = {"attenuation_db": 0.5, "eq_strength": -0.05, "loudness_lufs": 0.5, "reverb_amount": 0.05, "ambience_db": 0.5,
        "activity": 0.1, "max_cut_db": 0.5, "fov_deg": 5.0}
"""One slider step per field, in the field's unit (as the app's keyboard step moves it)."""


def scene(n_objects: int):
    """A Project (interactive) on bus.jpg with ``n_objects`` objects and their built-in sounds."""
    from importlib.util import find_spec

    from imgext.project import Project
    from imgext.sounds.builtin import BuiltinSource
    from imgext.vision.detection import Detector

    photo = Path(list(find_spec("ultralytics").submodule_search_locations)[0]) / "assets" / "bus.jpg"
    p = Project(interactive=True)
    p.detect(str(photo), lambda: Detector(os.environ.get("IMGEXT_YOLO_WEIGHTS", WEIGHTS)))
    k = 0
    while len(p.objects) < n_objects:
        p.add_object(LABELS[k % len(LABELS)], x=((7 * k) % 100) / 100)
        k += 1
    p.find_sounds(BuiltinSource())
    return p


def run(n_objects: int, field: str, steps: int) -> dict:
    """Stage CPU seconds of ``steps`` settle renders, one slider step apart."""
    from imgext.mix.preview import PreviewEncoder, preview_mix

    p = scene(n_objects)
    memo: dict = {}
    encoder = PreviewEncoder(max_bytes=48 << 20, codec="flac")
    alive: list = []  # the last render and its parts stay held, as the session holds them

    def settle(settings) -> dict:
        t = {}
        c0 = time.process_time()
        outcome = p.mix(settings)
        t["render"] = time.process_time() - c0
        c0 = time.process_time()
        parts = p.mixer().blend_parts(outcome, settings)
        pm = preview_mix(outcome, p.tracks.names, p.tracks.pans, sample_rate=settings.sample_rate, memo=memo,
                         parts=parts)
        t["parts"] = time.process_time() - c0
        c0 = time.process_time()
        for sid, signal in pm.signals.items():
            encoder.get(sid, signal, pm.sample_rate, lossless=sid == pm.envelope)
        t["flac"] = time.process_time() - c0
        alive.append((outcome, pm))
        del alive[:-2]
        return t

    rows = []
    s = p.settings
    settle(s)
    for _ in range(steps):
        s = replace(s, **{field: getattr(s, field) + STEP[field]})
        f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        t = settle(s)
        t["faults"] = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0
        rows.append(t)
    return {"tracks": p.tracks.n_tracks, "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--slider", default="attenuation_db", choices=sorted(STEP))
    parser.add_argument("--steps", type=int, default=6)
    args = parser.parse_args()

    from imgext.hosting import tune_server_malloc
    from imgext.mix.mixer import pin_one_blas_thread

    tune_server_malloc()
    pin_one_blas_thread()
    for n in args.objects:
        got: dict = {}
        worker = threading.Thread(target=lambda n=n, got=got: got.update(run(n, args.slider, args.steps)))  # a script thread
        worker.start()
        worker.join()
        print(f"{n} objects, {got['tracks']} tracks, {args.slider}:")
        for i, t in enumerate(got["rows"]):
            print(f"  step {i + 1}: " + ", ".join(f"{k} {v:.3f} s" for k, v in t.items() if k != "faults")
                  + f", total {sum(v for k, v in t.items() if k != 'faults'):.3f} s, {t['faults']} page faults")
        steady = got["rows"][2:] or got["rows"]
        print("  median of the steady steps: " + ", ".join(
            f"{k} {statistics.median(t[k] for t in steady):.3f} s" for k in ("render", "parts", "flac"))
            + f", total {statistics.median(sum(v for k, v in t.items() if k != 'faults') for t in steady):.3f} CPU-s")


if __name__ == "__main__":
    main()

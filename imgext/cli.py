"""Command line: ``python -m imgext render|batch|mix|remix|presets|labels``.

Every expected failure prints one line (``imgext: error: ...``) and exits
non-zero; tracebacks are for bugs only (and even then are shortened unless
``IMGEXT_DEBUG=1``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Sequence

from imgext import __version__
from imgext.budget import Budget
from imgext.errors import ImgExtError
from imgext.options import DetectSettings, MixSettings, SoundSettings, Spec, specs
from imgext.settings import DEFAULT_FREESOUND_URL, load_settings
from imgext.sounds.filters import add_filter_arguments, run_presets_command
from imgext.sounds.sources import open_source
from imgext.vision.detection import Detector
from imgext.vision.placement import LabelMap

__all__ = ["main", "build_parser"]

EPILOG = f"""\
settings (environment variables):
  IMGEXT_YOLO_WEIGHTS    detector weights (.pt/.onnx); default: Ultralytics' nano model, downloaded on first use
  FREESOUND_API_KEY      Freesound API key; with it the default source is freesound, without it builtin
  IMGEXT_FREESOUND_URL   Freesound API root (default {DEFAULT_FREESOUND_URL})
  IMGEXT_CACHE_DIR       disk cache folder (default ~/.cache/imgext); IMGEXT_CACHE_SIZE_MB bounds it (default 1024)
  IMGEXT_DATA_DIR        data folder for filter presets (default ~/.local/share/imgext)
  IMGEXT_RENDER_BUDGET_S time a render may take (default 90); searches and downloads stop in time for it to
                         finish with what it has; IMGEXT_SEARCH_DEADLINE_S (20) and IMGEXT_PREVIEW_DEADLINE_S (60)
                         bound each Freesound request from connect to last byte
  IMGEXT_LABELS          label table overrides (JSON file); --labels overrides it

examples:
  python -m imgext render photo.jpg --out out/
  python -m imgext render photo.jpg --out out/ --source local:~/sounds --duration 20 --seed 3
  python -m imgext mix rain.wav birds.flac --pan -0.5 0.5 --gain-db 0 -6 --out mixed/
"""


def _float_range(lo: float, hi: float, unit: str = ""):
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not lo <= value <= hi:  # NaN fails too
            raise argparse.ArgumentTypeError(f"{text} is outside {lo:g}..{hi:g}{unit}")
        return value

    return parse


def _number(spec: Spec):
    """An argparse type: the spec's type, checked against its valid range."""
    lo = -math.inf if spec.lo is None else spec.lo
    hi = math.inf if spec.hi is None else spec.hi
    unit = f" {spec.unit}" if spec.unit else ""

    def parse(text: str):
        try:
            value = spec.type(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {'whole ' if spec.type is int else ''}number") from None
        if not lo <= value <= hi:  # NaN fails too
            raise argparse.ArgumentTypeError(f"{text} is outside {lo:g}..{hi:g}{unit}")
        return value

    return parse


def add_options(parser, cls: type, *, exclude: Sequence[str] = (), keep_plan: bool = False) -> None:
    """Add one option per field of the settings dataclass ``cls`` (:func:`imgext.options.specs`).

    With ``keep_plan`` every default is None (a remix keeps the plan's value for an option not given).
    """
    for spec in specs(cls):
        if spec.flag is None or spec.name in exclude:
            continue
        names = [spec.flag, *spec.aliases]
        if spec.type is bool:
            default = "" if keep_plan else f" (default {'on' if spec.default else 'off'})"
            parser.add_argument(*names, dest=spec.name, action=argparse.BooleanOptionalAction,
                                default=None if keep_plan else spec.default, help=spec.help + default)
            continue
        if spec.type is str:
            parser.add_argument(*names, dest=spec.name, choices=spec.choices, default=None if keep_plan else spec.default,
                                help=spec.help + ("" if keep_plan else f" (default {spec.default})"))
            continue
        unit = f" {spec.unit}" if spec.unit else ""
        parser.add_argument(*names, dest=spec.name, type=_number(spec), default=None if keep_plan else spec.default,
                            metavar=spec.metavar or spec.name.upper(),
                            help=spec.help + ("" if keep_plan else f" (default {spec.default:g}{unit})"))


def options_from(args, cls: type):
    """The settings dataclass ``cls`` from parsed arguments (options not given keep their defaults)."""
    return cls(**{s.name: getattr(args, s.name) for s in specs(cls) if getattr(args, s.name, None) is not None})


def _add_mix_options(p: argparse.ArgumentParser, *, exclude: Sequence[str] = (), keep_plan: bool = False) -> None:
    add_options(p.add_argument_group("mix"), MixSettings, exclude=exclude, keep_plan=keep_plan)
    o = p.add_argument_group("output")
    o.add_argument("--no-stems", action="store_true", help="write no stems (a long scene's stems take most of the disk)")
    o.add_argument("--no-zip", action="store_true", help="write no bundle.zip (the folder holds the same files)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m imgext`` (options generated from :mod:`imgext.options`)."""
    parser = argparse.ArgumentParser(
        prog="python -m imgext",
        description="Image Extender: turn a photo into a stereo soundscape. Objects are detected, each gets a sound "
        "placed where it sits in the picture and weighted by importance, and the mix is cleared of spectral "
        "masking by an adaptive EQ.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"imgext {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    r = sub.add_parser("render", help="photo -> soundscape folder (mix.wav, stems, scene.json, ATTRIBUTION.txt, bundle.zip)",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    r.add_argument("image", help="photo to sonify (JPEG, PNG, WebP ...)")
    r.add_argument("--out", required=True, metavar="DIR", help="output folder (created if missing)")
    r.add_argument("--source", default=None, metavar="SOURCE",
                   help="builtin | local:PATH | freesound, or A+B to fall back to B where A finds nothing, e.g. "
                        "freesound+builtin (default: freesound when FREESOUND_API_KEY is set, else builtin)")
    add_options(r, DetectSettings)
    add_options(r, SoundSettings)
    r.add_argument("--preset", default=None, metavar="NAME", help="Freesound filter preset (see: presets list)")
    r.add_argument("--labels", default=None, metavar="JSON", help="label table overrides, e.g. {\"dog\": {\"query\": \"puppy yapping\"}}")
    r.add_argument("--weights", default=None, metavar="PATH", help="detector weights (overrides IMGEXT_YOLO_WEIGHTS)")
    r.add_argument("--json", action="store_true", help="print scene.json to stdout instead of the summary")
    r.add_argument("--ambience", type=_ambience_choice, default="auto", metavar="auto|none|NAME",
                   help="one bed for the whole picture: auto (from the labels; 'open air' when nothing sounds), none, "
                        "or one of: " + ", ".join(_ambience_names()))
    r.add_argument("--ambience-db", type=_number(next(s for s in specs(MixSettings) if s.name == "ambience_db")),
                   default=MixSettings().ambience_db, metavar="DB",
                   help="level of the ambience under the most important object (default -12)")
    _add_mix_options(r)

    from imgext.batch import add_batch_parser

    add_batch_parser(sub, r)  # batch: every render option, plus INPUT, --workers, --ray, --force

    m = sub.add_parser("mix", help="mix given audio files (no image) with the same engine",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    m.add_argument("files", nargs="+", metavar="AUDIO_FILE")
    m.add_argument("--out", required=True, metavar="DIR")
    m.add_argument("--pan", type=_float_range(-1, 1), nargs="+", default=None, metavar="P",
                   help="one pan per file, -1 left .. 1 right (default centre)")
    m.add_argument("--gain-db", type=_float_range(-60, 24, " dB"), nargs="+", default=None, metavar="G",
                   help="one gain per file in dB (default 0)")
    m.add_argument("--importance", type=_float_range(0, 1), nargs="+", default=None, metavar="I",
                   help="one importance per file in 0..1 (default: follows gain, louder = more important)")
    m.add_argument("--json", action="store_true", help="print scene.json to stdout instead of the summary")
    m.add_argument("--compose", action="store_true",
                   help="arrange the files in time by the role of their name's label (events scheduled, beds looped "
                        "from random offsets); without it every file keeps its own timing")
    _add_mix_options(m, exclude=["attenuation_db"])  # the given gains are absolute

    rm = sub.add_parser("remix", help="render a saved output folder again (offline) with other mix settings",
                        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    rm.add_argument("folder", help="a folder written by render or mix (its scene.json and sources/)")
    rm.add_argument("--out", required=True, metavar="DIR", help="where to write the new render (may be FOLDER)")
    rm.add_argument("--json", action="store_true", help="print scene.json to stdout instead of the summary")
    _add_mix_options(rm, keep_plan=True)  # in a remix, every option not given keeps the plan's value

    pr = sub.add_parser("presets", help="Freesound filter presets: list | show NAME | save NAME [filter options] | delete NAME")
    pr.add_argument("action", choices=["list", "show", "save", "delete"])
    pr.add_argument("name", nargs="?")
    add_filter_arguments(pr)

    sub.add_parser("labels", help="print the label -> sound table")
    return parser


def _ambience_names() -> list[str]:
    from imgext.composition.ambience import ambience_names  # lazy on purpose: the synthesiser's tables

    return ambience_names()


def _ambience_choice(text: str) -> str:
    from imgext.composition.ambience import choose_ambience  # lazy on purpose: see _ambience_names

    try:
        choose_ambience([], text)
    except ImgExtError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _progress_printer(enabled: bool):
    last = {"stage": None}

    def progress(stage: str, fraction: float, message: str) -> None:
        if not enabled:
            return
        if stage != last["stage"] or fraction >= 1.0:
            print(f"  [{stage}] {message}", file=sys.stderr, flush=True)
            last["stage"] = stage

    return progress


def _fmt(value, unit: str, spec: str = ".1f") -> str:
    return "n/a" if value is None else f"{value:{spec}} {unit}"


def summary(scene: dict, out_dir: str, elapsed_s: float) -> str:
    """A short human summary of a render."""
    lines = []
    img = scene.get("image")
    head = f"Image Extender {__version__}"
    if img:
        head += f" - {img['path']} ({img['width']}x{img['height']})"
    lines.append(f"{head} - source: {scene['source']}")
    objs = scene["objects"]
    amb = scene.get("ambience")
    if amb:
        only = " - AMBIENCE ONLY: nothing in the picture makes a sound of its own" if amb.get("ambience_only") else ""
        lines.append(f"ambience: {amb['name']} ({amb.get('reason') or ''}){only}")
    objs = [o for o in objs if o.get("origin") != "ambience"]
    sounding = [o for o in objs if o.get("sound")]
    lines.append(f"objects: {len(objs)} found, {len(sounding)} with a sound, {len(objs) - len(sounding)} without")
    for o in objs:
        if o.get("sound"):
            s = o["sound"]
            flag = " [NON-COMMERCIAL]" if not s.get("commercial_ok", True) else ""
            arr = o.get("arrangement") or {}
            timing = (f"{len(arr.get('events') or [])} events" if arr.get("role") == "event" else arr.get("role", ""))
            lines.append(
                f"  {o['label']:<14} pan {o['pan']:+.2f}  importance {o['importance']:.2f}  gain {o['gain_db']:+6.1f} dB  "
                + (f"{timing:<10} " if timing else "")
                + f"{s['name']}" + ("" if s.get("synthetic") else f" ({s['license']})") + flag
            )
            if o.get("relevance") is not None:
                lines.append(f"  {'':<14} relevance {o['relevance']:.2f}: {o.get('reason')}")
        else:
            lines.append(f"  {o['label']:<14} no sound: {o.get('reason')}")
    mix = scene["mix"]
    limited = " (short of the target: the limiter would have crushed it)" if mix.get("limited_by_peak") else ""
    lines.append(
        f"mix: {mix['duration_s']:.1f} s at {mix['sample_rate']} Hz, loudness {_fmt(mix['loudness_lufs'], 'LUFS')}{limited}, "
        f"true peak {_fmt(mix.get('true_peak_dbtp'), 'dBTP')}, limiter "
        f"{mix.get('limiter_reduction_db') or 0.0:.1f} dB max reduction"
    )
    masking = scene.get("masking") or {}
    b, a = masking.get("before"), masking.get("after")
    if b and a:
        n_filters = sum(len(o.get("eq") or []) for o in objs)
        n_ducked = sum(1 for o in objs if o.get("ducking"))
        how = f"{n_ducked} tracks ducked while more important ones sound" if n_ducked else f"{n_filters} EQ cuts"
        lines.append(f"masking: total {b['total_db']:.2f} dB -> {a['total_db']:.2f} dB with {how}")
        smr = [o for o in sounding if o.get("core_smr_before_db") is not None and o.get("core_smr_after_db") is not None]
        if smr:
            lines.append("  core signal-to-mask ratio (bands holding 80 % of each sound's loudness), before -> after:")
            for o in smr:
                duck = o.get("ducking") or {}
                extra = f"  (ducked, {duck['loudness_change_lu']:+.2f} LU)" if duck else ""
                lines.append(f"    {o['label']:<14} {o['core_smr_before_db']:+6.1f} dB -> {o['core_smr_after_db']:+6.1f} dB"
                             + extra)
        names = b.get("names") or []
        for key, what in (("worst_problem_pair", "worst clash (a less important sound covering a more important one)"),
                          ("worst_pair", "strongest masking overall")):
            wp = b.get(key)
            if wp and wp["masker"] in names and wp["maskee"] in names:
                i, j = names.index(wp["masker"]), names.index(wp["maskee"])
                after_db = a["matrix_db"]["values"][i][j]
                lines.append(f"  {what}: {wp['masker']} -> {wp['maskee']} {wp['masking_db']:.1f} dB -> {after_db:.1f} dB")
    nc = [o for o in sounding if not o["sound"].get("commercial_ok", True)]
    if nc:
        lines.append(f"licences: {len(nc)} sound(s) are NonCommercial - this mix may not be used commercially")
    for note in scene.get("notes", [])[:8]:
        lines.append(f"note: {note}")
    t = scene.get("timings_s", {})
    parts = [f"{k} {t[k]:.2f} s" for k in ("detect", "sounds", "mix") if k in t]
    lines.append(f"time: {', '.join(parts)}, total {elapsed_s:.2f} s")
    written = set(scene.get("files") or [])
    stems = f"{len(sounding)} x 2 stems, " if any(f.startswith("stems/") for f in written) else ""
    bundle = ", bundle.zip" if "bundle.zip" in written else ""
    lines.append(f"wrote {out_dir}/ (mix.wav, {stems}sources, scene.json, ATTRIBUTION.txt{bundle})")
    return "\n".join(lines)


def _cmd_render(args) -> int:
    from imgext.pipeline import render_image  # lazy on purpose: the mix engine (scipy, codecs) is not needed for --help

    settings = load_settings()
    labels = LabelMap.default()
    if args.labels or settings.labels_file:
        labels = labels.with_file(args.labels or settings.labels_file)
    if not os.path.isfile(args.image):
        raise ImgExtError(f"image not found: {args.image}")
    source_kw = {"preset": args.preset} if args.preset else {}
    if args.preset and not (args.source or ("freesound" if settings.freesound_api_key else "builtin")).startswith("freesound"):
        raise ImgExtError("--preset applies to --source freesound only")
    source = open_source(args.source, settings=settings, labels=labels, **source_kw)
    progress = _progress_printer(sys.stderr.isatty() and not args.json)
    t0 = time.perf_counter()
    # one picture: a warm-up would double the inference, and a lighter load is worth more than a faster run
    detector = Detector(args.weights or settings.yolo_weights, warm_up=False, one_shot=True)
    # the budget starts with the render itself (loading the model is not a network wait)
    budget = Budget(settings.render_budget_s, what=f"the render's {settings.render_budget_s:g} s budget")
    result = render_image(
        args.image, args.out, detector=detector, source=source, settings=options_from(args, MixSettings),
        conf=args.conf, n_candidates=args.n_candidates, include_silent=args.include_silent, labels=labels,
        progress=progress, stems=not args.no_stems, write_zip=not args.no_zip,
        budget=budget,
    )
    _print_result(result, args, time.perf_counter() - t0)
    return 0


def _cmd_batch(args) -> int:
    from imgext.batch import run_batch_args

    args.candidates = args.n_candidates  # batch reads render's options by their historic names
    return run_batch_args(args, options_from(args, MixSettings))


def _cmd_mix(args) -> int:
    from imgext.pipeline import render_files  # heavy: see _cmd_render

    t0 = time.perf_counter()
    result = render_files(
        args.files, args.out, pans=args.pan, gains_db=args.gain_db, importance=args.importance,
        settings=options_from(args, MixSettings), progress=_progress_printer(sys.stderr.isatty() and not args.json),
        stems=not args.no_stems, write_zip=not args.no_zip, compose=args.compose,
    )
    _print_result(result, args, time.perf_counter() - t0)
    return 0


def _cmd_remix(args) -> int:
    from imgext.pipeline import remix  # heavy: see _cmd_render

    changes = {s.name: getattr(args, s.name) for s in specs(MixSettings) if getattr(args, s.name, None) is not None}
    t0 = time.perf_counter()
    result = remix(args.folder, args.out, stems=not args.no_stems, write_zip=not args.no_zip, **changes)
    _print_result(result, args, time.perf_counter() - t0)
    return 0


def _print_result(result, args, elapsed: float) -> None:
    if args.json:
        print(json.dumps(result.scene, indent=2, ensure_ascii=False))
    else:
        print(summary(result.scene, result.out_dir, elapsed))


def _cmd_labels(args) -> int:
    for label, entry in LabelMap.default().items():
        print(f"{label:<16} {'(silent) ' if entry.silent else ''}{entry.query}  [synth: {entry.synth}]")
    return 0


def _cmd_presets(args) -> int:
    return run_presets_command(args)


def tune_malloc() -> None:
    """Tune glibc's allocator for one short command, before any thread starts.

    * One malloc arena (``M_ARENA_MAX`` 1): a render synthesises or decodes its sounds on
      worker threads; with glibc's default of one arena per thread, the memory those threads
      free stays in their arenas and the mix, on the main thread, takes fresh pages:
      595 -> 509 MB peak RSS for ``render bus.jpg --source builtin``.  The few threads of one
      command do not contend for it.
    * Arrays up to 32 MB from the heap from the start (``M_MMAP_THRESHOLD``, glibc's own upper
      bound for its sliding threshold) and freed heap kept up to 256 MB (``M_TRIM_THRESHOLD``):
      the same buffers are reused instead of mapped, faulted in and unmapped again (a fifth
      fewer page faults, ~0.2 CPU-s; peak +4 MB).  Larger arrays (long scenes) are still mapped.

    Not glibc: nothing to do.
    """
    from imgext.malloc import tune

    tune(arenas=1, mmap_threshold_bytes=32 << 20, trim_threshold_bytes=256 << 20)


_MIXING_COMMANDS = ("render", "mix", "remix", "batch")


def settle_imports() -> None:
    """Move every object alive now into the garbage collector's permanent generation (``gc.freeze``).

    Called by a command's own process once the mix engine is imported, and again
    before it exits.  What the imports made (modules, functions, classes, tables:
    ~45 thousand tracked containers) lives as long as the process, yet full
    collections walk it during the render, and the interpreter's collections at
    exit walk it again: measured ~0.05-0.1 CPU-s during a render and ~0.2-0.3 at
    exit.  Objects made afterwards are collected as usual; only a frozen object
    that later became garbage in a reference cycle would stay until exit (the
    arrays of a render are made after the first freeze).  Exit still runs
    ``atexit`` handlers and closes files; it skips collections whose memory the
    OS takes back anyway.
    """
    import gc

    gc.freeze()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (0 ok, 1 expected failure, 2 usage, 3 bug, 130 interrupted)."""
    own_process = argv is None  # a process of its own (``python -m imgext``), not a caller's
    if own_process:
        tune_malloc()
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    commands = {"render": _cmd_render, "mix": _cmd_mix, "remix": _cmd_remix, "batch": _cmd_batch, "labels": _cmd_labels, "presets": _cmd_presets}
    if own_process and args.command in _MIXING_COMMANDS:
        import imgext.pipeline  # noqa: F401  the command's own import, made before the heap is settled

        settle_imports()
    try:
        return _run(commands[args.command], args)
    finally:
        if own_process:
            settle_imports()  # the process exits next: no collection over what it made


def _run(command, args) -> int:
    try:
        return command(args)
    except ImgExtError as exc:
        print(f"imgext: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("imgext: interrupted; no partial file was left under a final name", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: say so in one line unless debugging
        if os.environ.get("IMGEXT_DEBUG"):
            raise
        print(f"imgext: internal error ({type(exc).__name__}: {exc}); rerun with IMGEXT_DEBUG=1 for details", file=sys.stderr)
        return 3

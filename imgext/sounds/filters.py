"""Freesound search filters and named presets ("filters saved with a button").

:class:`SearchFilter` holds a structured filter and builds a correct Solr
filter string for ``/apiv2/search/``: every value quoted and escaped, ranges
with ``TO``, multiple values with ``OR``.  :class:`PresetStore` keeps named
filters in one JSON file in the data folder; presets are keys inside that
file, never file names, so no name can reach outside it.  A corrupt file is
moved aside (``presets.json.corrupt-<time>``) and reported, never lost.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import time
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from imgext.audio.io import write_atomic
from imgext.errors import ImgExtError, ParameterError
from imgext.settings import load_settings

__all__ = [
    "LICENSES",
    "FILE_TYPES",
    "SORT_ORDERS",
    "SearchFilter",
    "solr_quote",
    "PresetStore",
    "BUILTIN_PRESETS",
    "add_filter_arguments",
    "filter_from_args",
    "run_presets_command",
    "ROLE_FILTERS",
    "AMBIENCE_FILTERS",
    "TAXONOMY_EXCLUSIONS",
    "ASKS_FOR",
    "asked_kinds",
    "role_filters",
]

LICENSES = {
    "cc0": "Creative Commons 0",
    "by": "Attribution",
    "by-nc": "Attribution NonCommercial",
    "sampling+": "Sampling+",
}
"""Our short names -> the licence names Freesound's ``license`` filter matches exactly."""

FILE_TYPES = ("wav", "aif", "aiff", "ogg", "mp3", "m4a", "flac")
SORT_ORDERS = (
    "score", "duration_desc", "duration_asc", "created_desc", "created_asc",
    "downloads_desc", "downloads_asc", "rating_desc", "rating_asc",
)
MAX_TEXT = 200


def solr_quote(value: str) -> str:
    r"""Quote one value for a Solr filter: ``dog "big"`` -> ``"dog \\"big\\""``.

    Backslashes and double quotes are escaped; control characters and lone
    surrogates (undecodable bytes from a command line) are refused.
    """
    text = str(value)
    if any(unicodedata.category(ch) in ("Cc", "Cs") for ch in text):
        raise ParameterError(f"filter value {text!r} contains control characters or undecodable bytes")
    if len(text) > MAX_TEXT:
        raise ParameterError(f"filter value is {len(text)} characters long; the limit is {MAX_TEXT}")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _num(value: float | int | None, what: str, *, lo: float = 0.0, hi: float = math.inf) -> str | None:
    if value is None:
        return None
    try:
        v = float(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: an integer beyond any float
        raise ParameterError(f"{what}={value!r} must be a number") from None
    if not (lo <= v <= hi):
        raise ParameterError(f"{what}={value!r} must lie between {lo:g} and {hi:g}")
    return f"{v:g}" if not v.is_integer() else str(int(v))


@dataclass(frozen=True)
class SearchFilter:
    """A structured Freesound filter.

    Attributes
    ----------
    duration_min_s, duration_max_s : float or None
        Duration range in seconds.
    licenses : tuple of str
        Any of ``"cc0"``, ``"by"``, ``"by-nc"``, ``"sampling+"``; empty = any.
    file_types : tuple of str
        Any of :data:`FILE_TYPES`; empty = any.
    min_rating : float or None
        Average rating 0..5.
    min_num_ratings : int or None
    sample_rates : tuple of int
        E.g. ``(44100, 48000)``; empty = any.
    channels : int or None
        1 (mono) or 2 (stereo).
    exclude_tags : tuple of str
        Sounds carrying any of these tags are left out.
    sort : str
        One of :data:`SORT_ORDERS`.
    raw : str
        Extra Solr filter for experts, appended as given after a syntax check.
    """

    duration_min_s: float | None = None
    duration_max_s: float | None = None
    licenses: tuple[str, ...] = ()
    file_types: tuple[str, ...] = ()
    min_rating: float | None = None
    min_num_ratings: int | None = None
    sample_rates: tuple[int, ...] = ()
    channels: int | None = None
    exclude_tags: tuple[str, ...] = ()
    sort: str = "score"
    raw: str = ""

    def __post_init__(self) -> None:
        self.to_solr()  # validate eagerly: an invalid filter cannot exist

    def to_solr(self) -> str:
        """The ``filter=`` parameter value ('' when nothing is constrained).

        Raises
        ------
        ParameterError
            On any value that cannot be expressed safely.
        """
        parts: list[str] = []
        lo = _num(self.duration_min_s, "duration_min_s", hi=86400)
        hi = _num(self.duration_max_s, "duration_max_s", hi=86400)
        if lo is not None and hi is not None and float(lo) > float(hi):
            raise ParameterError(f"duration range {lo}..{hi} s is empty (min > max)")
        if lo is not None or hi is not None:
            parts.append(f"duration:[{lo or '0'} TO {hi or '*'}]")
        for name in self.licenses:
            if not isinstance(name, str) or name not in LICENSES:
                raise ParameterError(f"unknown licence {name!r}; choose from {', '.join(LICENSES)}")
        if self.licenses:
            parts.append("license:(" + " OR ".join(solr_quote(LICENSES[n]) for n in dict.fromkeys(self.licenses)) + ")")
        for t in self.file_types:
            if not isinstance(t, str) or t not in FILE_TYPES:
                raise ParameterError(f"unknown file type {t!r}; choose from {', '.join(FILE_TYPES)}")
        if self.file_types:
            parts.append("type:(" + " OR ".join(solr_quote(t) for t in dict.fromkeys(self.file_types)) + ")")
        rating = _num(self.min_rating, "min_rating", hi=5)
        if rating is not None:
            parts.append(f"avg_rating:[{rating} TO *]")
        n_ratings = _num(self.min_num_ratings, "min_num_ratings", hi=1e9)
        if n_ratings is not None:
            if not float(n_ratings).is_integer():
                raise ParameterError(f"min_num_ratings={self.min_num_ratings!r} must be a whole number")
            parts.append(f"num_ratings:[{n_ratings} TO *]")
        if self.sample_rates:
            rates = [_num(r, "sample rate", lo=1000, hi=768000) for r in self.sample_rates]
            if None in rates:
                raise ParameterError("a sample rate cannot be empty")
            parts.append("samplerate:(" + " OR ".join(rates) + ")")
        if self.channels is not None:
            if self.channels not in (1, 2):
                raise ParameterError(f"channels={self.channels!r} must be 1 (mono) or 2 (stereo)")
            parts.append(f"channels:{int(self.channels)}")  # 1.0 or True would otherwise read "channels:True"
        for tag in self.exclude_tags:
            if not str(tag).strip():
                raise ParameterError("an excluded tag cannot be empty")
            parts.append(f"-tag:{solr_quote(str(tag).strip())}")
        if self.sort not in SORT_ORDERS:
            raise ParameterError(f"unknown sort order {self.sort!r}; choose from {', '.join(SORT_ORDERS)}")
        if not isinstance(self.raw, str):
            raise ParameterError(f"the raw filter must be text, got {type(self.raw).__name__}")
        raw = self.raw.strip()
        if raw:
            _check_raw(raw)
            parts.append(raw)
        return " ".join(parts)

    def to_dict(self) -> dict:
        d = asdict(self)
        for k in ("licenses", "file_types", "sample_rates", "exclude_tags"):
            d[k] = list(d[k])
        return d

    @classmethod
    def from_dict(cls, d: Mapping) -> SearchFilter:
        if not isinstance(d, Mapping):
            raise ParameterError(f"a filter must be a JSON object, got {type(d).__name__}")
        known = set(cls.__dataclass_fields__)
        unknown = set(d) - known
        if unknown:
            raise ParameterError(f"unknown filter fields: {', '.join(sorted(map(repr, unknown)))}")  # repr: one line
        kw = dict(d)
        for k in ("licenses", "file_types", "sample_rates", "exclude_tags"):
            if k in kw:
                value = kw[k]
                if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
                    raise ParameterError(f"filter field {k} must be a list")
                kw[k] = tuple(value)
        return cls(**kw)


def _check_raw(raw: str) -> None:
    if len(raw) > 1000:
        raise ParameterError("the raw filter is longer than 1000 characters")
    if any(unicodedata.category(ch) in ("Cc", "Cs") for ch in raw):
        raise ParameterError("the raw filter contains control characters or undecodable bytes")
    depth = {"(": 0, "[": 0}
    closing = {")": "(", "]": "[", "}": "["}
    in_quote = escaped = False
    for ch in raw:
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == '"':
            in_quote = not in_quote
        elif not in_quote and ch in "([{":
            depth["(" if ch == "(" else "["] += 1
        elif not in_quote and ch in closing:
            depth[closing[ch]] -= 1
            if depth[closing[ch]] < 0:
                raise ParameterError(f"the raw filter has an unmatched {ch!r}")
    if escaped:
        raise ParameterError("the raw filter ends with a lone backslash")
    if in_quote:
        raise ParameterError("the raw filter has an unclosed double quote")
    if any(depth.values()):
        raise ParameterError("the raw filter has an unclosed bracket or parenthesis")


BUILTIN_PRESETS: dict[str, SearchFilter] = {
    "Short CC0 field recordings": SearchFilter(
        duration_min_s=1, duration_max_s=30, licenses=("cc0",), exclude_tags=("music", "synth", "loop"),
    ),
    "Commercial-safe (CC0 + Attribution)": SearchFilter(licenses=("cc0", "by")),
    "Well-rated ambiences": SearchFilter(
        duration_min_s=10, duration_max_s=300, min_rating=3.5, min_num_ratings=3, sort="rating_desc",
        exclude_tags=("music",),
    ),
    "Lossless studio quality": SearchFilter(file_types=("wav", "flac", "aiff"), sample_rates=(44100, 48000, 96000)),
}
"""Presets that ship with the package (read-only)."""

MAX_NAME = 80


def _check_name(name: str) -> str:
    name = unicodedata.normalize("NFC", str(name)).strip()
    if not name:
        raise ParameterError("a preset needs a name")
    if len(name) > MAX_NAME:
        raise ParameterError(f"preset names are limited to {MAX_NAME} characters")
    if any(unicodedata.category(ch)[0] == "C" for ch in name):
        raise ParameterError("preset names cannot contain control characters")
    return name


@dataclass
class PresetStore:
    """Named filter presets in ``<data_dir>/presets.json``, beside the built-in ones.

    Parameters
    ----------
    data_dir : path
        Folder of the file (created on first save).

    Attributes
    ----------
    warnings : list of str
        Problems met while loading (a corrupt file set aside ...), for the UI to show.
    """

    data_dir: Path
    warnings: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir)

    @property
    def path(self) -> Path:
        return self.data_dir / "presets.json"

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        try:
            import fcntl  # lazy on purpose: POSIX only
        except ImportError:  # pragma: no cover - Windows: atomic replace alone
            yield
            return
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            handle = open(self.data_dir / ".presets.lock", "a+")
        except OSError as exc:
            raise ImgExtError(f"cannot use the presets folder {self.data_dir}: {exc.strerror or exc}") from None
        with handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _read_user(self) -> dict[str, SearchFilter]:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            self.warnings.append(f"cannot read presets file {self.path}: {exc.strerror or exc}")
            return {}
        try:
            data = json.loads(raw.decode("utf-8"))  # UnicodeDecodeError is a ValueError: set aside as corrupt
            items = data["presets"] if isinstance(data, dict) else None
            if not isinstance(items, dict):
                raise ValueError("no 'presets' object")
            out = {}
            for name, d in items.items():
                out[_check_name(name)] = SearchFilter.from_dict(d)
            return out
        except (ValueError, KeyError, TypeError, RecursionError, ParameterError) as exc:  # RecursionError: deep nesting
            stamp = time.strftime("%Y%m%d-%H%M%S")
            aside = self.path.with_name(f"presets.json.corrupt-{stamp}")
            k = 2
            while aside.exists():  # a second corrupt file within the same second must not replace the first
                aside, k = self.path.with_name(f"presets.json.corrupt-{stamp}-{k}"), k + 1
            try:
                os.replace(self.path, aside)
                self.warnings.append(f"the presets file was corrupt ({exc}); it was set aside as {aside.name}")
            except OSError as move_exc:
                self.warnings.append(f"the presets file is corrupt ({exc}) and could not be set aside: {move_exc}")
            return {}

    def _write_user(self, presets: Mapping[str, SearchFilter]) -> None:
        body = {"schema_version": 1, "presets": {n: f.to_dict() for n, f in sorted(presets.items())}}
        try:
            write_atomic(self.path, (json.dumps(body, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))
        except OSError as exc:
            raise ImgExtError(f"cannot save presets to {self.path}: {exc.strerror or exc}") from None

    def names(self) -> list[str]:
        """Built-in presets first, then the user's, each group sorted."""
        return list(BUILTIN_PRESETS) + sorted(n for n in self._read_user() if n not in BUILTIN_PRESETS)

    def is_builtin(self, name: str) -> bool:
        return name in BUILTIN_PRESETS

    def load(self, name: str) -> SearchFilter:
        name = _check_name(name)
        if name in BUILTIN_PRESETS:
            return BUILTIN_PRESETS[name]
        user = self._read_user()
        if name not in user:
            raise ParameterError(f"no preset named {name!r}; known: {', '.join(self.names())}")
        return user[name]

    def save(self, name: str, flt: SearchFilter) -> None:
        name = _check_name(name)
        if name in BUILTIN_PRESETS:
            raise ParameterError(f"{name!r} is a built-in preset; save under another name")
        flt.to_solr()
        with self._locked():
            user = self._read_user()
            user[name] = flt
            self._write_user(user)

    def delete(self, name: str) -> None:
        name = _check_name(name)
        if name in BUILTIN_PRESETS:
            raise ParameterError(f"{name!r} is a built-in preset and cannot be deleted")
        with self._locked():
            user = self._read_user()
            if name not in user:
                raise ParameterError(f"no preset named {name!r}")
            del user[name]
            self._write_user(user)


def add_filter_arguments(parser: argparse.ArgumentParser) -> None:
    """Filter options for ``presets save``."""
    g = parser.add_argument_group("filter (for save)")
    g.add_argument("--duration-min", type=float, default=None, metavar="S")
    g.add_argument("--duration-max", type=float, default=None, metavar="S")
    g.add_argument("--license", nargs="+", default=(), choices=list(LICENSES), metavar="L",
                   help=f"any of {', '.join(LICENSES)}")
    g.add_argument("--type", nargs="+", default=(), choices=list(FILE_TYPES), metavar="T", dest="file_types")
    g.add_argument("--min-rating", type=float, default=None, metavar="0..5")
    g.add_argument("--min-ratings", type=int, default=None, metavar="N", help="minimum number of ratings")
    g.add_argument("--samplerate", type=int, nargs="+", default=(), metavar="HZ")
    g.add_argument("--channels", type=int, default=None, choices=[1, 2])
    g.add_argument("--exclude-tag", nargs="+", default=(), metavar="TAG")
    g.add_argument("--sort", default="score", choices=list(SORT_ORDERS))
    g.add_argument("--raw", default="", metavar="SOLR", help="extra Solr filter, e.g. 'bitdepth:24'")


def filter_from_args(args) -> SearchFilter:
    """The :class:`SearchFilter` given by the options :func:`add_filter_arguments` added."""
    return SearchFilter(
        duration_min_s=args.duration_min, duration_max_s=args.duration_max, licenses=tuple(args.license),
        file_types=tuple(args.file_types), min_rating=args.min_rating, min_num_ratings=args.min_ratings,
        sample_rates=tuple(args.samplerate), channels=args.channels, exclude_tags=tuple(args.exclude_tag),
        sort=args.sort, raw=args.raw,
    )


def run_presets_command(args) -> int:
    """``python -m imgext presets list|show|save|delete``."""
    store = PresetStore(load_settings().data_dir)
    if args.action != "list" and not args.name:
        raise ParameterError(f"presets {args.action} needs a NAME")
    if args.action == "list":
        for name in store.names():
            tag = " (built-in)" if store.is_builtin(name) else ""
            print(f"{name}{tag}: {store.load(name).to_solr() or '(no filter)'}")
    elif args.action == "show":
        flt = store.load(args.name)
        print(json.dumps({"name": args.name, "filter": flt.to_dict(), "solr": flt.to_solr()}, indent=2, ensure_ascii=False))
    elif args.action == "save":
        flt = filter_from_args(args)
        store.save(args.name, flt)
        print(f"saved preset {args.name!r}: {flt.to_solr() or '(no filter)'}")
    elif args.action == "delete":
        store.delete(args.name)
        print(f"deleted preset {args.name!r}")
    for w in store.warnings:
        print(f"imgext: warning: {w}", file=sys.stderr)
    return 0


# --------------------------------------------------------------------------- role and taxonomy

ROLE_FILTERS: dict[str, tuple[str, ...]] = {
    "event": ("single_event:true duration:[0.2 TO 10]", "duration:[0.2 TO 15]"),
    "bed": ("duration:[10 TO *]", "loopable:true"),
    "area": ("duration:[10 TO *]", "loopable:true"),
}
"""Solr filters per role, strictest first; a search loosens them when too few sounds pass.

* events: one-shots, ``single_event:true`` with a short duration, then any
  short sound;
* beds and areas: long recordings, then ``loopable:true`` ones of any length.
  (Two separate steps rather than ``loopable:true OR duration:[..]``: Freesound
  rewrites every ``name:`` clause to ``+name:`` to force AND, which makes an OR
  across fields unreliable; see MTG/freesound
  ``utils/search/backends/solr555pysolr.py`` ``search_filter_make_intersection``.)

``single_event`` and ``loopable`` are Freesound content descriptors (boolean,
filterable); unanalysed sounds have none and so pass only the last, unfiltered step.
"""

AMBIENCE_FILTERS: tuple[str, ...] = (
    "loopable:true duration:[30 TO *]",
    'category:"Soundscapes" duration:[20 TO *]',
    "duration:[20 TO *]",
    "loopable:true",
)
"""Solr filters of the scene's ambience bed (role ``"ambience"``), strictest first.

The ambience plays under the whole scene (30 s by default), so it asks first
for loopable recordings at least that long (no seam heard), then for the Broad
Sound Taxonomy's soundscapes of 20 s or more, then for any 20 s recording,
then for loopable ones of any length; as for the other roles, the taxonomy
exclusions alone come last.
"""

TAXONOMY_EXCLUSIONS: dict[str, str] = {
    "music": '-category:"Music"',
    "instrument sample": '-category:"Instrument samples"',
    "solo speech": '-subcategory:"Solo speech"',
}
"""Broad Sound Taxonomy clauses that leave out kinds of sound an object does not ask for.

Names as Freesound returns and filters them (``category`` and ``subcategory``
are the taxonomy's names, e.g. ``"Instrument samples"``, ``"Solo speech"``;
``category_code`` such as ``"sp-s"`` is returned but not filterable).
"""

ASKS_FOR: dict[str, frozenset] = {
    "music": frozenset(
        ["music", "musical", "melody", "tune", "piano", "guitar", "band", "jingle", "instrument", "violin", "choir",
         "singing"]
    ),
    "instrument sample": frozenset(["instrument", "piano", "guitar", "violin", "note"]),
    "solo speech": frozenset(["speech", "monologue", "narration", "narrator", "speaker", "lecture", "announcement"]),
}
"""Words with which an object's label, query or synonyms ask for a kind that is otherwise left out."""


def asked_kinds(words) -> set[str]:
    """Kinds of :data:`TAXONOMY_EXCLUSIONS` that ``words`` (an object's label, query, synonyms) ask for."""
    vocab = {str(w).lower() for w in words}
    return {kind for kind, asks in ASKS_FOR.items() if asks & vocab}


def role_filters(role: str | None, *, words=(), base: str = "") -> list[str]:
    """The filter strings to try for one object, strictest first, each a complete ``filter=`` value.

    Parameters
    ----------
    role : {"event", "bed", "area", "ambience"} or None
        The object's role (``"ambience"``: the scene's ambience bed, :data:`AMBIENCE_FILTERS`);
        None or "off" means no role step.
    words : iterable of str
        The object's label, query and synonym words (for :func:`asked_kinds`).
    base : str
        The user's own filter (:meth:`SearchFilter.to_solr`), kept in every step.

    Returns
    -------
    list of str
        Role steps with the taxonomy exclusions, then the taxonomy exclusions alone
        (no empty strings unless nothing at all is constrained).
    """
    asked = asked_kinds(words)
    taxonomy = " ".join(clause for kind, clause in TAXONOMY_EXCLUSIONS.items() if kind not in asked)
    role = str(role or "").lower()
    steps = list(AMBIENCE_FILTERS if role == "ambience" else ROLE_FILTERS.get(role, ()))
    out = []
    for step in [*steps, ""]:
        text = " ".join(part for part in (base.strip(), step, taxonomy) if part)
        if text not in out:
            out.append(text)
    return out

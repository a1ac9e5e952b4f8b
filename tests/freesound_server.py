"""A small Freesound-APIv2-compatible HTTP server for offline tests.

It serves ~70 realistic sound records built from the ten real CC0 recordings in
``../shared/sounds`` (read at start-up, never copied into the project), with
real MP3 previews and OGG Vorbis previews converted once in memory. It behaves
like the real API where the client can tell (see ``shared/design/freesound.md``):

* ``GET /apiv2/search/`` and the legacy ``/apiv2/search/text/``: ``query`` (all
  words required, as Freesound's ``q.op=AND``; ``-word`` excludes; quoted
  phrases), ``filter`` (the Solr subset the client emits), ``sort``, ``fields``
  (default ``id,name,tags,username,license``), ``page``/``page_size`` (max 150,
  clamped); answers ``{"count", "next", "previous", "results"}`` with full
  ``next``/``previous`` URLs (without the token, like the real one).
* ``similar_to=<id>`` on search (query ignored, ``filter`` applied, sorted by
  cosine of the LAION-CLAP stand-in vectors, >= 0.7 only) and
  ``GET /apiv2/sounds/<id>/similar/`` (the same without ``filter``, which that
  resource ignores on Freesound).
* Records carry the Broad Sound Taxonomy (``category``, ``subcategory``,
  ``category_code``), the descriptors ``single_event``, ``loopable``,
  ``reverbness``, ``duration_effective`` (``null`` for a few "unanalysed"
  sounds) and ``sim_laion_clap`` (512 floats; one record is a re-upload of
  another, cosine 0.999); all are filterable as on Freesound except the vector.
* ``GET /apiv2/sounds/<id>/`` (respects ``fields``).
* Previews at ``/previews/<id//1000>/<id>_<userid>-{hq,lq}.{mp3,ogg}``, outside
  ``/apiv2`` and without a token, like Freesound's CDN; waveform/spectrogram
  PNGs at ``/displays/...``.
* Errors as ``{"detail": ...}``: 400, 401 (``Authorization: Token KEY`` header or
  ``?token=KEY``), 404 (also for a page past the end), 405, 429 (no Retry-After).

Faults are switched on at run time through :class:`Faults`, among them hostile transfers for search
answers and previews (``api_hostile``/``preview_hostile``): ``drip`` (headers at once, then the body one
byte per ``hostile_interval_s``), ``slow_headers`` (the header block one byte at a time), ``endless``
(the real body repeated forever, no length) and ``gzip_bomb`` (1 MB on the wire, 1 GiB decoded). Run standalone with
``python tests/freesound_server.py --port 8765`` (or ``python -m tests.freesound_server``).
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import random
import re
import signal
import socket
import struct
import sys
import threading
import time
import zlib
from dataclasses import dataclass, field, fields
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit

import numpy as np
import soundfile as sf

__all__ = ["Faults", "RequestRecord", "FreesoundServer", "DEFAULT_SOUNDS_DIR", "main"]

DEFAULT_SOUNDS_DIR = Path(__file__).resolve().parents[2] / "shared" / "sounds"
SOUNDS_DIR_ENV = "IMGEXT_TEST_SOUNDS_DIR"
ANIMALS = ("cat", "cow", "dog", "duck", "frog", "horse", "owl", "pig", "rooster", "sheep")

THROTTLE_MINUTE = "Request was throttled because of exceeding a request limit rate (60/minute)"
THROTTLE_DAY = "Request was throttled because of exceeding a request limit rate (2000/day)"
DEFAULT_SEARCH_FIELDS = ("id", "name", "tags", "username", "license")
MAX_PAGE_SIZE, DEFAULT_PAGE_SIZE = 150, 15
SORTS = {  # sort option -> (record key, descending); ties by rating count / id
    "duration_desc": ("duration", True), "duration_asc": ("duration", False),
    "created_desc": ("created", True), "created_asc": ("created", False),
    "downloads_desc": ("num_downloads", True), "downloads_asc": ("num_downloads", False),
    "rating_desc": ("avg_rating", True), "rating_asc": ("avg_rating", False),
}
FIELD_WEIGHTS = {"tags": 4.0, "description": 3.0, "name": 2.0, "username": 1.0}  # Freesound's defaults

# licence key -> (name used by the `license` filter, deed URL returned in responses)
LICENSES = {
    "cc0": ("Creative Commons 0", "http://creativecommons.org/publicdomain/zero/1.0/"),
    "by3": ("Attribution", "http://creativecommons.org/licenses/by/3.0/"),
    "by4": ("Attribution", "http://creativecommons.org/licenses/by/4.0/"),
    "nc3": ("Attribution NonCommercial", "http://creativecommons.org/licenses/by-nc/3.0/"),
    "nc4": ("Attribution NonCommercial", "http://creativecommons.org/licenses/by-nc/4.0/"),
    "splus": ("Sampling+", "http://creativecommons.org/licenses/sampling+/1.0/"),
}
LICENSE_NAME_BY_URL = {url: name for name, url in LICENSES.values()}

BAD_GATEWAY_HTML = (b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
                    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
                    b"</body>\r\n</html>\r\n")
CORRUPT_BODY = (b"<html><head><title>Access denied</title></head>"
                b"<body>The CDN edge could not serve this object.</body></html>\n") * 64


# --------------------------------------------------------------------------- catalogue

ANIMAL_TAGS = {
    "dog": "dog bark barking woof animal pet",
    "cat": "cat meow miaow animal pet",
    "cow": "cow moo cattle animal farm",
    "horse": "horse neigh whinny animal farm",
    "sheep": "sheep bleat baa animal farm",
    "pig": "pig oink grunt animal farm",
    "duck": "duck quack bird birds animal water",
    "rooster": "rooster crow bird birds chicken animal farm",
    "owl": "owl hoot bird birds animal night",
    "frog": "frog croak amphibian animal pond",
}
ANIMAL_PHRASES = {
    "dog": "Dog barking", "cat": "A cat meowing", "cow": "Cow mooing", "horse": "Horse neighing",
    "sheep": "Sheep bleating", "pig": "Pig grunting and oinking", "duck": "Ducks quacking",
    "rooster": "A rooster crowing", "owl": "A tawny owl hooting", "frog": "Frogs croaking",
}
PLACES = ("in a farmyard", "at the edge of a village", "in the countryside near Lyon", "on a small farm",
          "early in the morning", "in the evening, light wind", "from about ten metres away")
RECORDERS = ("Zoom H4n", "Tascam DR-40", "Sony PCM-D100", "Rode NT4 into a Zoom F3", "Olympus LS-10")
USERS = (("fieldrec_ana", 7731), ("TomasAudio", 1204), ("mbrooks", 55012), ("SoundsOfTheFarm", 90817),
         ("jorge.m", 311), ("LisaRecords", 6420), ("pondlife", 33008), ("r_andersson", 21977),
         ("quietearth", 4410), ("berlin-ambient", 88123))
LONG_NAME = ("Horse neigh, stable recording, long take with hooves and breathing, "
             + "very long file name kept by the uploader " * 6)[:300]


def _e(animal, name, lic="cc0", typ="wav", clip=None, tags="", desc=None, user=None, base=True, pack=None):
    """One catalogue entry: ``clip`` is ``(start_s, end_s|None)`` of the recording or None for all of it."""
    return dict(animal=animal, name=name, lic=lic, type=typ, clip=clip, tags=tags, desc=desc,
                user=user, base=base, pack=pack)


ENTRIES = [
    # dog: at least a dozen candidates for "dog bark(ing)"
    _e("dog", "2 dogs barking.wav", tags="dogs two field-recording", pack="Farm animals 2019"),
    _e("dog", "Dog barking in yard", "by4", tags="yard outdoor"),
    _e("dog", "dog_bark_short_01.wav", clip=(0.0, 1.5), tags="short one-shot"),
    _e("dog", "Dog Barks Distant", "nc4", "flac", clip=(2.0, 6.0), tags="distant ambience"),
    _e("dog", "Guard dog barking at gate", "by3", "mp3", tags="guard gate angry"),
    _e("dog", "Two dogs barking, suburban evening", "nc3", tags="dogs suburb evening"),
    _e("dog", "Small dog bark single", clip=(0.5, 1.3), tags="small one-shot"),
    _e("dog", "DOG BARK - aggressive x3", "splus", clip=(0.0, 3.0), tags="aggressive"),
    _e("dog", "Dog bark / growl at door", "by4", clip=(1.0, 4.0), tags="growl door"),
    _e("dog", "../../etc/passwd dog bark.wav", tags="weird"),
    _e("dog", "Dogs barking at night (farm)", "by4", "flac", tags="night farm field-recording"),
    _e("dog", "Hund bellt – Bauernhof", "nc4", tags="hund bauernhof"),
    _e("dog", "dog bark woof.mp3", typ="mp3", clip=(3.0, None), tags="woof"),
    _e("owl", "Dog Days – warm synth pad loop", "by4", tags="music synth pad loop ambient", base=False,
       desc="Slow ambient pad for the dog days of summer, with a crackle like dry tree bark. No animals."),
    # cat
    _e("cat", "Cat meowing.wav", tags="kitty field-recording", pack="Farm animals 2019"),
    _e("cat", 'Cat "Mimi" meowing loudly', "by4", tags="loud indoor"),
    _e("cat", "cat meow short", clip=(0.0, 1.2), tags="short one-shot"),
    _e("cat", "Kitten meow, hungry", "nc4", clip=(1.0, 3.0), tags="kitten hungry"),
    _e("cat", "Angry cat meow hiss", "by3", tags="angry hiss"),
    _e("cat", "Meow cat 2", "splus", clip=(1.5, None)),
    _e("cat", "<script>alert(1)</script> cat meow", "by4", tags="indoor"),
    _e("frog", "Cat walk beat 120 bpm", "nc4", tags="music beat drums loop 120bpm", base=False,
       desc="Catwalk style drum loop with a sampled meow stab on the last bar."),
    # cow
    _e("cow", "Cow moo.wav", tags="field-recording pasture", pack="Farm animals 2019"),
    _e("cow", "Cows mooing on pasture", "by4", tags="cows pasture herd"),
    _e("cow", "cow moo C:\\Users\\field\\rec\\cow_02.wav", clip=(0.0, 3.0), tags="close"),
    _e("cow", "Cow moo close, Alps", "nc3", clip=(2.0, 6.0), tags="alps mountain"),
    _e("cow", "Dairy cow moo", "by3", "flac", tags="dairy barn"),
    _e("cow", "Moo! (cow, barn)", "splus", clip=(0.0, 2.5), tags="barn"),
    _e("pig", "Cowbell groove 100bpm", "by3", tags="music percussion cowbell groove", base=False,
       desc="A cow-themed cowbell groove, very moo-ving. Percussion only."),
    # horse
    _e("horse", "Horse neighing.wav", tags="stable field-recording", pack="Farm animals 2019"),
    _e("horse", "Horse neigh in stable", "by4", tags="stable indoor"),
    _e("horse", LONG_NAME, "nc4", tags="stable hooves"),
    _e("horse", "horse whinny short", clip=(0.0, 1.5), tags="short"),
    _e("horse", "Horse neigh and snort", "by3", clip=(1.0, None), tags="snort"),
    _e("horse", "Pferd wiehert", "nc3", "mp3", tags="pferd"),
    _e("cat", "Horsehair bow violin squeal", "by4", tags="music violin strings bow", base=False,
       desc="Extended technique on violin; it sounds almost like a horse neigh."),
    # sheep
    _e("sheep", "Sheep bleat.wav", tags="field-recording", pack="Farm animals 2019"),
    _e("sheep", "Sheep bleating, flock", "by4", tags="flock"),
    _e("sheep", "Sheep\tbleat\x07 \x1b[31mred\x1b[0m\r\nline two", "by3", tags="control"),
    _e("sheep", "Lamb bleat", "nc4", tags="lamb young"),
    _e("sheep", "sheep baa", "splus"),
    _e("sheep", "Mouton qui bêle", tags="mouton"),
    _e("rooster", "Sheep synth lead – bleat patch", "nc3", tags="synth music preset lead", base=False,
       desc="Synth preset named after a sheep; the vibrato bleats a little."),
    # pig
    _e("pig", "Pig grunting oink.wav", tags="field-recording pen", pack="Farm animals 2019"),
    _e("pig", "\U0001F437 pig oink \U0001F437", "by4", tags="funny"),
    _e("pig", "Grumpy pig", "nc4", clip=(0.0, 3.0), tags="grumpy"),
    _e("pig", "Pigs oinking in pen", "by3", clip=(2.0, None), tags="pigs pen"),
    _e("pig", "pig squeal oink short", clip=(1.0, 2.2), tags="squeal short"),
    # duck
    _e("duck", "Ducks quacking.wav", tags="ducks pond field-recording", pack="Farm animals 2019"),
    _e("duck", "Duck quack pond", "by4", clip=(0.0, 2.5), tags="pond"),
    _e("duck", "Mallard ducks quack", "nc3", "flac", tags="mallard ducks"),
    _e("duck", "duck quack x2", clip=(3.0, None), tags="short"),
    _e("duck", "Canards — mare", "by4", tags="canard mare pond"),
    _e("cow", "Duck tape ripping", "cc0", tags="tape foley rip", base=False,
       desc="Ripping a strip of duck tape off the roll. Foley."),
    # rooster
    _e("rooster", "Rooster crowing.wav", tags="morning field-recording", pack="Farm animals 2019"),
    _e("rooster", "Rooster crow morning farm", "by4", tags="morning"),
    _e("rooster", "Cock-a-doodle-doo", "nc4", tags="cockerel"),
    _e("rooster", "rooster crow short", clip=(0.0, 1.2), tags="short"),
    _e("rooster", "Rooster crow (village)", "by3", tags="village", user=("../evil_user", 666)),
    _e("sheep", "Rooster crow ringtone (8-bit)", "by4", tags="ringtone chiptune music 8bit", base=False,
       desc="Chiptune ringtone imitating a rooster crow."),
    # owl
    _e("owl", "Tawny owl hooting.wav", tags="tawny forest field-recording", pack="Farm animals 2019"),
    _e("owl", "Owl hoot at night, forest", "by4", tags="forest"),
    _e("owl", "owl hoot single", clip=(0.0, 2.0), tags="one-shot"),
    _e("owl", "Tawny owl call", "nc4", "flac", clip=(3.0, None), tags="tawny"),
    _e("owl", "Chouette hulotte — forêt", "splus", tags="chouette forêt"),
    # frog
    _e("frog", "Frogs croaking.wav", tags="frogs pond field-recording", pack="Farm animals 2019"),
    _e("frog", "Grenouille près de l'étang — nuit", "by4", tags="grenouille étang night"),
    _e("frog", "Frog croak pond", "by3", clip=(0.0, 2.5), tags="pond"),
    _e("frog", "Frogs chorus at dusk", "nc3", tags="frogs chorus dusk"),
    _e("frog", "frog croak short", clip=(4.0, 5.2), tags="short"),
]


# Broad Sound Taxonomy of the non-animal entries (name -> (category, subcategory, code)); animals are fx-a
TAXONOMY = {
    "Dog Days – warm synth pad loop": ("Music", "Other", "m-other"),
    "Cat walk beat 120 bpm": ("Music", "Solo percussion", "m-sp"),
    "Cowbell groove 100bpm": ("Music", "Solo percussion", "m-sp"),
    "Horsehair bow violin squeal": ("Instrument samples", "String", "is-s"),
    "Sheep synth lead – bleat patch": ("Instrument samples", "Synths / Electronic", "is-e"),
    "Rooster crow ringtone (8-bit)": ("Music", "Other", "m-other"),
    "Duck tape ripping": ("Sound effects", "Objects / House appliances", "fx-o"),
}
LOOPABLE = {"Dog Days – warm synth pad loop", "Cat walk beat 120 bpm", "Cowbell groove 100bpm", "Frogs chorus at dusk"}
REVERBERANT = ("stable", "barn", "night")
UNANALYSED = {"Meow cat 2", "sheep baa", "Canards — mare"}  # no descriptors, like sounds Freesound has not analysed
DUPLICATE_OF = {"Hund bellt – Bauernhof": "Dog barking in yard"}  # a re-upload: the same recording twice
DESCRIPTOR_ONLY_FIELDS = {"single_event", "loopable", "reverbness", "duration_effective", "sim_laion_clap"}
CLAP_DIM = 512
SIMILAR_MIN_COSINE = 0.7  # Freesound's SIMILARITY_MIN_THRESHOLD


def _unit(v: np.ndarray) -> list[float]:
    return [round(float(x), 6) for x in v / np.linalg.norm(v)]


def _clap_vectors(entries: list[dict]) -> list[list[float]]:
    """Stand-ins for LAION-CLAP vectors: one direction per animal, two recordings of one animal ~0.8 apart (0.999 for a duplicate)."""
    rng = np.random.default_rng(512)
    base = {a: v / np.linalg.norm(v) for a, v in ((a, rng.standard_normal(CLAP_DIM)) for a in ANIMALS)}
    out: dict[str, list[float]] = {}
    vectors = []
    for e in entries:
        if e["name"] in DUPLICATE_OF and DUPLICATE_OF[e["name"]] in out:
            v = np.asarray(out[DUPLICATE_OF[e["name"]]]) + 0.002 * rng.standard_normal(CLAP_DIM)
        else:
            noise = rng.standard_normal(CLAP_DIM)
            noise /= np.linalg.norm(noise)
            v = (base[e["animal"]] if e["base"] else noise) + 0.5 * noise
        out[e["name"]] = _unit(v)
        vectors.append(out[e["name"]])
    return vectors


def _build_catalogue(infos: dict) -> tuple[list[dict], dict]:
    """Records (public fields) and the private audio info per id, deterministic."""
    rng = random.Random(1234)
    records, audio = [], {}
    clap = _clap_vectors(ENTRIES)
    for i, e in enumerate(ENTRIES):
        sound_id = 400017 + i * 331  # spread over several /previews/<id//1000>/ folders
        username, user_id = e["user"] or USERS[rng.randrange(len(USERS))]
        n_frames, sr, channels = infos[e["animal"]]
        start, end = e["clip"] or (0.0, None)
        first = int(round(start * sr))
        last = n_frames if end is None else min(n_frames, int(round(end * sr)))
        duration = round((last - first) / sr, 6)
        tags = (ANIMAL_TAGS[e["animal"]].split() if e["base"] else []) + e["tags"].split()
        tags = list(dict.fromkeys(t.lower() for t in tags))
        desc = e["desc"] or (f"{ANIMAL_PHRASES[e['animal']]}, recorded {rng.choice(PLACES)} "
                             f"with a {rng.choice(RECORDERS)}. Free to use, a comment is welcome!")
        ratings = [rng.choice((2, 3, 4, 4, 5, 5)) for _ in range(rng.choice((0, 0, 1, 2, 3, 5, 8, 13, 27)))]
        bitdepth = {"wav": 16, "flac": 24, "mp3": 0}[e["type"]]
        bytes_per_s = {"wav": sr * channels * 2, "flac": sr * channels * 3 * 0.55, "mp3": 320000 / 8}[e["type"]]
        created = (f"{rng.randint(2008, 2025)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T"
                   f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}."
                   f"{rng.randint(0, 999999):06d}")
        records.append({
            "id": sound_id,
            "url": f"https://freesound.org/people/{username}/sounds/{sound_id}/",
            "name": e["name"],
            "tags": tags,
            "description": desc,
            "geotag": None, "is_geotagged": False,
            "created": created,
            "license": LICENSES[e["lic"]][1],
            "type": e["type"],
            "channels": channels,
            "filesize": int(bytes_per_s * duration) + 44,
            "bitrate": 320 if e["type"] == "mp3" else 0,
            "bitdepth": bitdepth,
            "duration": duration,
            "samplerate": sr,
            "username": username,
            "pack_name": e["pack"],
            "num_downloads": rng.randint(0, 25000),
            "avg_rating": round(sum(ratings) / len(ratings), 6) if ratings else 0.0,
            "num_ratings": len(ratings),
            "num_comments": rng.randint(0, 12),
            "is_explicit": False, "is_remix": False, "was_remixed": False,
            "md5": f"{zlib.crc32(e['name'].encode()):08x}{sound_id:024x}",
            **_descriptors(e, duration, clap[i]),
        })
        audio[sound_id] = (e["animal"], first, last, user_id)
    return records, audio


def _descriptors(e: dict, duration: float, clap: list[float]) -> dict:
    """Taxonomy, content descriptors and the similarity vector of one entry (None where not analysed)."""
    category, subcategory, code = TAXONOMY.get(e["name"], ("Sound effects", "Animals", "fx-a"))
    if e["base"] and duration > 12 and any(w in e["name"].lower() for w in ("night", "farm", "evening", "dusk")):
        category, subcategory, code = "Soundscapes", "Nature", "ss-n"
    analysed = e["name"] not in UNANALYSED
    low = e["name"].lower() + " " + e["tags"]
    return {
        "category": category, "subcategory": subcategory, "category_code": code,
        "category_is_user_provided": False,
        "single_event": (duration <= 4.0 or "single" in low or "one-shot" in low) if analysed else None,
        "loopable": (e["name"] in LOOPABLE) if analysed else None,
        "reverbness": any(w in low for w in REVERBERANT) if analysed else None,
        "duration_effective": round(duration * (0.6 if duration <= 4.0 else 0.9), 3) if analysed else None,
        "sim_laion_clap": clap if analysed else None,
    }


# --------------------------------------------------------------------------- audio (cached per process)

_AUDIO_LOCK = threading.Lock()
_DECODED: dict[Path, tuple[np.ndarray, int]] = {}
_ENCODED: dict[tuple, bytes] = {}


def _decoded(path: Path) -> tuple[np.ndarray, int]:
    with _AUDIO_LOCK:
        if path not in _DECODED:
            data, sr = sf.read(str(path), dtype="float32", always_2d=True)  # (frames, channels)
            _DECODED[path] = (data, sr)
        return _DECODED[path]


def _encoded(path: Path, first: int, last: int, fmt: str) -> bytes:
    """Preview bytes: the real MP3 file when whole, otherwise encoded once with soundfile."""
    data, sr = _decoded(path)
    if fmt == "mp3" and first == 0 and last == len(data):
        return path.read_bytes()
    key = (path, first, last, fmt)
    with _AUDIO_LOCK:
        if key not in _ENCODED:
            buf = io.BytesIO()
            subtype = "MPEG_LAYER_III" if fmt == "mp3" else "VORBIS"
            sf.write(buf, data[first:last], sr, format=fmt.upper(), subtype=subtype)
            _ENCODED[key] = buf.getvalue()
        return _ENCODED[key]


def _tiny_png(grey: int = 200) -> bytes:
    def chunk(kind, payload):
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
    header = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(bytes([0, grey]))) + chunk(b"IEND", b""))


# --------------------------------------------------------------------------- search

def _stem(word: str) -> str:
    """Crude English stemming applied to both index and query (barking -> bark, dogs -> dog)."""
    if word.endswith("ing") and len(word) > 5:
        return word[:-3]
    if word.endswith("ed") and len(word) > 4:
        return word[:-2]
    if word.endswith("s") and not word.endswith("ss") and len(word) > 3:
        return word[:-1]
    return word


def _words(text: str) -> list[str]:
    return [_stem(w) for w in re.findall(r"[^\W_]+", text.lower())]


def _score(record: dict, query: str) -> float | None:
    """Weighted match score, or None when the record does not match (every term is required).

    Each term scores ``weight * sqrt(tf) / sqrt(len(field))`` per field it occurs in (tags 4, description 3,
    name 2, username 1), a crude stand-in for Solr's dismax over Freesound's weighted fields.
    """
    fields_words = {"tags": _words(" ".join(record["tags"])), "description": _words(record["description"]),
                    "name": _words(record["name"]), "username": _words(record["username"])}
    score = 0.0
    for sign, phrase, word in re.findall(r'([+-]?)"([^"]*)"|([+-]?\S+)', query):
        if word:
            sign, word = (word[0], word[1:]) if word[0] in "+-" else ("", word)
        terms = _words(phrase or word)
        if not terms:
            continue
        hit, n = 0.0, len(terms)
        for name, words in fields_words.items():  # Lucene-like: weight * sqrt(tf) / sqrt(field length)
            tf = sum(words[i:i + n] == terms for i in range(len(words) - n + 1))
            if tf:
                hit += FIELD_WEIGHTS[name] * math.sqrt(tf) / math.sqrt(len(words))
        if sign == "-":
            if hit:
                return None
        elif not hit:
            return None
        score += hit
    return round(score, 4)


class FilterError(ValueError):
    pass


NUMERIC_FILTER_FIELDS = {"duration", "avg_rating", "num_ratings", "samplerate", "channels", "num_downloads",
                         "id", "bitrate", "bitdepth", "filesize", "comments", "duration_effective"}
TEXT_FILTER_FIELDS = {"license", "tag", "type", "username", "pack", "category", "subcategory"}
BOOLEAN_FILTER_FIELDS = {"single_event", "loopable", "reverbness", "is_geotagged", "is_remix", "was_remixed"}
_CLAUSE = re.compile(r'([+-]?)([A-Za-z_]+):')


def _read_quoted(s: str, i: int) -> tuple[str, int]:
    out = []
    i += 1
    while i < len(s):
        if s[i] == "\\" and i + 1 < len(s):
            out.append(s[i + 1])
            i += 2
        elif s[i] == '"':
            return "".join(out), i + 1
        else:
            out.append(s[i])
            i += 1
    raise FilterError("unterminated quote")


def _parse_filter(text: str) -> list[tuple[bool, str, str, object]]:
    """Clauses ``(negated, field, kind, value)``, ANDed; kind is term / any / all / range / exists."""
    clauses, i = [], 0
    while True:
        while i < len(text) and text[i].isspace():
            i += 1
        if i >= len(text):
            return clauses
        word = re.match(r"(AND|OR|&&)(?=\s|$)", text[i:])
        if word:  # Freesound forces AND between clauses and ignores these
            i += word.end()
            continue
        m = _CLAUSE.match(text, i)
        if not m or m.group(2) not in NUMERIC_FILTER_FIELDS | TEXT_FILTER_FIELDS | BOOLEAN_FILTER_FIELDS:
            raise FilterError(f"bad clause at {i}")
        negated, name, i = m.group(1) == "-", m.group(2), m.end()
        if i >= len(text) or text[i].isspace():
            raise FilterError("empty value")
        if text[i] == '"':
            value, i = _read_quoted(text, i)
            clauses.append((negated, name, "term", value))
        elif text[i] in "[{":
            close = text.find("]" if text[i] == "[" else "}", i)
            parts = text[i + 1:close].split() if close > 0 else []
            if len(parts) != 3 or parts[1] != "TO":
                raise FilterError("bad range")
            lo, hi = (None if p == "*" else _number(p) for p in (parts[0], parts[2]))
            clauses.append((negated, name, "range", (lo, hi, text[i] == "[")))
            i = close + 1
        elif text[i] == "(":
            items, ops, i = [], set(), i + 1
            while True:
                while i < len(text) and text[i].isspace():
                    i += 1
                if i >= len(text):
                    raise FilterError("unclosed parenthesis")
                if text[i] == ")":
                    i += 1
                    break
                if text[i] == '"':
                    value, i = _read_quoted(text, i)
                else:
                    m2 = re.match(r'[^\s()"]+', text[i:])
                    if not m2:
                        raise FilterError("bad group")
                    value, i = m2.group(0), i + m2.end()
                    if value in ("OR", "AND"):
                        ops.add(value)
                        continue
                items.append(value)
            if not items or len(ops) > 1:
                raise FilterError("bad group")
            clauses.append((negated, name, "all" if ops == {"AND"} else "any", items))
        else:
            m2 = re.match(r'[^\s()"\[\]{}]+', text[i:])
            if not m2 or (i + m2.end() < len(text) and not text[i + m2.end()].isspace()):
                raise FilterError("bad value")
            value, i = m2.group(0), i + m2.end()
            clauses.append((negated, name, "exists" if value == "*" else "term", value))
        if name in BOOLEAN_FILTER_FIELDS and (clauses[-1][2] != "term" or clauses[-1][3] not in ("true", "false")):
            raise FilterError(f"{name} takes true or false")
        if name in NUMERIC_FILTER_FIELDS and clauses[-1][2] in ("term", "any", "all"):
            values = clauses[-1][3] if isinstance(clauses[-1][3], list) else [clauses[-1][3]]
            for v in values:
                _number(v)


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise FilterError(f"not a number: {text!r}") from None


def _field_values(record: dict, name: str) -> list:
    if name == "license":
        return [LICENSE_NAME_BY_URL[record["license"]]]
    if name == "tag":
        return record["tags"]
    if name == "pack":
        return [record["pack_name"]] if record["pack_name"] else []
    if name == "comments":
        return [record["num_comments"]]
    if name in NUMERIC_FILTER_FIELDS and record.get(name) is None:
        return []
    return [record.get(name)]


def _matches(record: dict, clause) -> bool:
    negated, name, kind, value = clause
    have = _field_values(record, name)
    numeric = name in NUMERIC_FILTER_FIELDS

    def equal(v):
        if numeric:
            return any(abs(float(h) - float(v)) < 1e-9 for h in have)
        if name in ("tag", "type"):
            return v.lower() in [str(h).lower() for h in have]
        return v in have  # license, username, pack: exact, case-sensitive (Solr string fields)

    if name in BOOLEAN_FILTER_FIELDS:  # a sound without the descriptor (not analysed) matches neither value
        ok = have[0] is not None and bool(have[0]) == (value == "true")
    elif kind == "exists":
        ok = bool(have)
    elif kind == "term":
        ok = equal(value)
    elif kind == "any":
        ok = any(equal(v) for v in value)
    elif kind == "all":
        ok = all(equal(v) for v in value)
    else:
        lo, hi, inclusive = value
        if not numeric:
            raise FilterError("range on a text field")
        ok = any((lo is None or (h >= lo if inclusive else h > lo)) and
                 (hi is None or (h <= hi if inclusive else h < hi)) for h in map(float, have))
    return ok != negated


# --------------------------------------------------------------------------- faults and request log

@dataclass
class Faults:
    """Faults switched on by tests at run time (plain attribute writes; counters are taken under a lock)."""

    refuse_key: bool = False          # every API request -> 401 {"detail": "Invalid token"}
    throttle_minute: int = 0          # the next N API requests -> 429 per-minute detail
    throttle_day: bool = False        # every API request -> 429 per-day detail
    errors_5xx: int = 0               # the next N API requests -> error_status {"detail": ...}
    error_status: int = 503           # status used by errors_5xx (503 or 500)
    fail_every: int = 0               # every Nth request (API and previews) -> 502 nginx HTML page
    drop_every: int = 0               # every Nth request: connection closed with no response
    truncate_previews: int = 0        # next N previews: Content-Length larger than the body, then close
    corrupt_previews: int = 0         # next N previews: 200 with garbage bytes (not audio)
    delay_s: float = 0.0              # every request sleeps this long first
    null_every: int = 0               # every Nth result in a page is null
    down: bool = False                # every connection is closed at once, nothing read or answered
    # hostile transfers, one of HOSTILE_MODES ("" = off): drip | slow_headers | endless | gzip_bomb
    api_hostile: str = ""             # how search answers are sent
    preview_hostile: str = ""         # how previews are sent
    hostile_interval_s: float = 1.0   # seconds between two bytes for drip and slow_headers


@dataclass
class RequestRecord:
    """One request as the server saw it. ``headers`` keys are lower-case; ``status`` None = no response."""

    method: str
    path: str
    query: dict
    headers: dict
    kind: str                         # search | sound | preview | image | other
    status: int | None = None
    note: str = ""                    # dropped | truncated | corrupt | fault | ""
    time: float = field(default_factory=time.time)

    def header(self, name: str, default=None):
        return self.headers.get(name.lower(), default)


def _kind_of(path: str) -> str:
    if re.fullmatch(r"/apiv2/search(/text)?/?", path):
        return "search"
    if re.fullmatch(r"/apiv2/sounds/\d+/similar/?", path):
        return "similar"
    if path.startswith("/apiv2/sounds/"):
        return "sound"
    if path.startswith("/previews/"):
        return "preview"
    if path.startswith("/displays/"):
        return "image"
    return "other"


# --------------------------------------------------------------------------- HTTP handler

class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "nginx"
    sys_version = ""
    timeout = 60  # idle keep-alive connections

    fs: FreesoundServer  # set on the subclass made per server

    def setup(self):
        super().setup()
        self.fs._connections.add(self.connection)

    def finish(self):
        self.fs._connections.discard(self.connection)
        super().finish()

    def log_message(self, fmt, *args):
        if self.fs.verbose:
            sys.stderr.write("freesound-server: " + fmt % args + "\n")

    def handle_one_request(self):
        if self.fs.faults.down:
            with self.fs._lock:
                self.fs.down_hits += 1
            self.close_connection = True
            return
        super().handle_one_request()

    # -- plumbing
    def _send(self, status: int, body: bytes, ctype: str, headers: dict | None = None):
        self.record.status = status
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, payload, headers: dict | None = None):
        body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        self._send(status, body, "application/json", {"Vary": "Accept, Authorization", **(headers or {})})

    def _error(self, status: int, detail: str, headers: dict | None = None):
        self._json(status, {"detail": detail}, headers)

    def _origin(self) -> str:
        host = self.headers.get("Host") or f"{self.fs.host}:{self.fs.port}"
        return f"http://{host}"

    # -- entry points
    def do_GET(self):
        split = urlsplit(self.path)
        self.query = dict(parse_qsl(split.query, keep_blank_values=True))
        self.record = self.fs._record(self, split.path, self.query)
        n = self.record_number
        faults = self.fs.faults
        if faults.drop_every and n % faults.drop_every == 0:
            self.record.note = "dropped"
            self.close_connection = True
            return
        if faults.delay_s:
            time.sleep(faults.delay_s)
        if faults.fail_every and n % faults.fail_every == 0:
            self.record.note = "fault"
            return self._send(502, BAD_GATEWAY_HTML, "text/html")
        path = split.path
        if path.startswith("/apiv2/"):
            return self._api(path)
        if path.startswith("/previews/"):
            return self._preview(path)
        if path.startswith("/displays/") and path.endswith(".png"):
            return self._send(200, self.fs._png, "image/png")
        self._send(404, b"<h1>Not Found</h1>", "text/html")

    do_HEAD = do_GET

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        split = urlsplit(self.path)
        self.record = self.fs._record(self, split.path, dict(parse_qsl(split.query)))
        self._error(405, f'Method "{self.command}" not allowed.', {"Allow": "GET, HEAD, OPTIONS"})

    do_PUT = do_DELETE = do_PATCH = do_POST

    # -- API
    def _api(self, path: str):
        if not path.endswith("/"):  # Django's APPEND_SLASH
            location = path + "/" + ("?" + urlsplit(self.path).query if urlsplit(self.path).query else "")
            return self._send(301, b"", "text/html", {"Location": location})
        denied = self._check_token()
        if denied:
            return self._error(401, denied, {"WWW-Authenticate": 'Token realm="api"'})
        faults = self.fs.faults
        if faults.throttle_day:
            self.record.note = "fault"
            return self._error(429, THROTTLE_DAY)
        if self.fs._take("throttle_minute"):
            self.record.note = "fault"
            return self._error(429, THROTTLE_MINUTE)
        if self.fs._take("errors_5xx"):
            self.record.note = "fault"
            status = faults.error_status
            return self._error(status, "Server error" if status == 500 else "Service temporarily unavailable")
        if self.record.kind == "search":
            if faults.api_hostile:
                return self._hostile(faults.api_hostile, b" ", self._search_body(path), "application/json")
            return self._search(path)
        if self.record.kind == "similar":
            return self._search(path, similar_to=re.fullmatch(r"/apiv2/sounds/(\d+)/similar/", path).group(1))
        m = re.fullmatch(r"/apiv2/sounds/(\d+)/", path)
        sound = self.fs._by_id.get(int(m.group(1))) if m else None
        if sound is None:
            return self._error(404, "Not found.")
        wanted = [f for f in self.query.get("fields", "").split(",") if f] or None
        self._json(200, self.fs._render(sound, wanted, self._origin()))

    def _check_token(self) -> str | None:
        """The 401 detail, or None when the key is accepted (header first, then ``token``)."""
        key = None
        auth = self.headers.get("Authorization", "")
        parts = auth.split()
        if parts and parts[0].lower() == "token":
            if len(parts) == 1:
                return "Invalid token header. No credentials provided."
            if len(parts) > 2:
                return "Invalid token header. Token string should not contain spaces."
            key = parts[1]
        elif parts and parts[0].lower() == "bearer":
            return "Invalid token"
        if key is None:
            key = self.query.get("token")
        if key is None:
            return "Authentication credentials were not provided."
        if key != self.fs.api_key or self.fs.faults.refuse_key:
            return "Invalid token"
        return None

    def _search(self, path: str, similar_to: str | None = None):
        """``/search/`` (text, filter, or ``similar_to`` + filter) and ``/sounds/<id>/similar/`` (no filter)."""
        q = self.query
        text, filt = q.get("query", "").strip(), q.get("filter", "").strip()
        if similar_to is not None:  # the similar-sounds resource: Freesound ignores query and filter there
            text, filt = "", ""
        else:
            similar_to = q.get("similar_to", "").strip() or None
        target = None
        if similar_to is not None:
            if not similar_to.isdigit():
                return self._error(400, "The 'similar_to' parameter is not a valid sound ID")
            target = self.fs._by_id.get(int(similar_to))
            if target is None:
                return self._error(404, "Not found.")
            if not target.get("sim_laion_clap"):
                return self._error(404, "Sound has no similarity vector for the requested similarity space.")
            text = ""  # with similar_to the text query is ignored
        if not text and not filt and target is None:
            return self._error(400, "At least one request parameter from Text Search should be included "
                                    "in the request.")
        try:
            page = int(q.get("page") or 1)
            page_size = int(q.get("page_size") or DEFAULT_PAGE_SIZE)
        except ValueError:
            return self._error(400, "Malformed request.")
        page_size = DEFAULT_PAGE_SIZE if page_size < 1 else min(page_size, MAX_PAGE_SIZE)
        try:
            clauses = _parse_filter(filt)
            hits = []
            for rec in self.fs.catalogue:
                if target is not None:
                    if rec["id"] == target["id"] or not rec.get("sim_laion_clap"):
                        continue
                    score = round(float(np.dot(rec["sim_laion_clap"], target["sim_laion_clap"])), 6)
                    if score < SIMILAR_MIN_COSINE:
                        continue
                else:
                    score = _score(rec, text) if text else 1.0
                if score is not None and all(_matches(rec, c) for c in clauses):
                    hits.append((score, rec))
        except FilterError:
            return self._error(400, "Invalid filter")
        sort = q.get("sort", "score")
        if sort in SORTS:
            key, desc = SORTS[sort]
            hits.sort(key=lambda h: h[1]["id"])
            hits.sort(key=lambda h: (h[1][key], h[1]["num_ratings"]), reverse=desc)
        else:  # score (default); unknown options fall back to it
            hits.sort(key=lambda h: (-h[0], h[1]["id"]))
        count = len(hits)
        last_page = max(1, -(-count // page_size))
        if page < 1 or page > last_page:
            return self._error(404, "Not found.")
        wanted = [f for f in q.get("fields", "").split(",") if f] or list(DEFAULT_SEARCH_FIELDS)
        origin = self._origin()
        results = [self.fs._render(rec, wanted, origin, score) for score, rec in
                   hits[(page - 1) * page_size: page * page_size]]
        every = self.fs.faults.null_every
        if every:
            results = [None if (i + 1) % every == 0 else r for i, r in enumerate(results)]

        def link(p):
            params = {k: v for k, v in q.items() if k != "token"}
            params["page"] = str(p)
            return f"{origin}{path}?{urlencode(params)}"

        self._json(200, {"count": count, "next": link(page + 1) if page < last_page else None,
                         "previous": link(page - 1) if page > 1 else None, "results": results})

    # -- previews
    def _preview(self, path: str):
        m = re.fullmatch(r"/previews/(\d+)/(\d+)_(\d+)-(hq|lq)\.(mp3|ogg)", path)
        sound_id = int(m.group(2)) if m else -1
        info = self.fs._audio.get(sound_id)
        if not m or info is None or int(m.group(1)) != sound_id // 1000 or int(m.group(3)) != info[3]:
            return self._send(404, b"<h1>404 Not Found</h1>", "text/html")
        animal, first, last, _ = info
        fmt = m.group(5)
        ctype = "audio/mpeg" if fmt == "mp3" else "audio/ogg"
        if self.fs._take("corrupt_previews"):
            self.record.note = "corrupt"
            return self._send(200, CORRUPT_BODY, ctype)
        body = _encoded(self.fs.sounds_dir / f"{animal}.mp3", first, last, fmt)
        if self.fs.faults.preview_hostile:
            return self._hostile(self.fs.faults.preview_hostile, b"\x00", body, ctype)
        if self.command != "HEAD" and self.fs._take("truncate_previews"):
            self.record.note, self.record.status = "truncated", 200
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 3])
            self.wfile.flush()
            self.close_connection = True
            return
        self._send(200, body, ctype, {"Cache-Control": "max-age=31536000"})


    # -- hostile transfers (a server that drips, stalls, never ends or explodes when decoded)
    def _search_body(self, path: str) -> bytes:
        """What :meth:`_search` would send, as bytes (an error's JSON when it would fail)."""
        sent = {}

        def capture(status, body, ctype, headers=None):
            sent.update(status=status, body=body)

        self._send = capture  # instance attribute shadows the method for this one call
        try:
            self._search(path)
        finally:
            del self._send
        return sent.get("body", b"{}")

    def _hostile(self, mode: str, fill: bytes, body: bytes, ctype: str):
        """Send ``body`` the hostile way ``mode`` says; returns when done or when the client hung up."""
        if mode not in HOSTILE_MODES:
            raise ValueError(f"unknown hostile mode {mode!r}; use one of {HOSTILE_MODES}")
        self.record.status, self.record.note = 200, mode
        interval = self.fs.faults.hostile_interval_s
        self.close_connection = True
        head = (f"HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Type: {ctype}\r\n"
                f"Cache-Control: max-age=31536000\r\n")
        try:
            if mode == "gzip_bomb":
                bomb = _gzip_bomb(fill)
                self.wfile.write((head + f"Content-Encoding: gzip\r\nContent-Length: {len(bomb)}\r\n\r\n").encode())
                self.wfile.write(bomb)
            elif mode == "endless":  # no length, never ends: the real body over and over
                self.wfile.write((head + "Connection: close\r\n\r\n").encode())
                while not self.fs._stopping.is_set():
                    self.wfile.write(body)
            else:
                raw = (head + f"Content-Length: {len(body)}\r\n\r\n").encode()
                dripped = raw if mode == "slow_headers" else b""
                self.wfile.write(raw[len(dripped):] if mode == "drip" else b"")
                self.wfile.flush()
                for i in range(len(dripped)):  # slow_headers: the header block one byte at a time
                    if self.fs._stopping.wait(interval):
                        return
                    self.wfile.write(dripped[i:i + 1])
                    self.wfile.flush()
                if mode == "slow_headers":
                    self.wfile.write(body)
                    return
                for i in range(len(body)):  # drip: the body one byte at a time
                    if self.fs._stopping.wait(interval):
                        return
                    self.wfile.write(body[i:i + 1])
                    self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, OSError):
            return  # the client gave up, as it should


HOSTILE_MODES = ("drip", "slow_headers", "endless", "gzip_bomb")
GZIP_BOMB_DECODED = 1 << 30
"""Bytes a gzip bomb decodes to (1 GiB of one repeated byte, about 1 MB on the wire)."""
_BOMBS: dict[bytes, bytes] = {}


def _gzip_bomb(fill: bytes) -> bytes:
    """A valid gzip member decoding to :data:`GZIP_BOMB_DECODED` bytes of ``fill`` (built once, ~1 s)."""
    with _AUDIO_LOCK:
        if fill not in _BOMBS:
            block = fill * (1 << 20)
            comp = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
            first = comp.compress(block) + comp.flush(zlib.Z_FULL_FLUSH)
            repeat = comp.compress(block) + comp.flush(zlib.Z_FULL_FLUSH)  # same state after a full flush
            n = GZIP_BOMB_DECODED // len(block)
            crc = 0
            for _ in range(n):
                crc = zlib.crc32(block, crc)
            header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
            trailer = struct.pack("<II", crc & 0xFFFFFFFF, GZIP_BOMB_DECODED & 0xFFFFFFFF)
            _BOMBS[fill] = header + first + repeat * (n - 1) + comp.flush(zlib.Z_FINISH) + trailer
        return _BOMBS[fill]


# --------------------------------------------------------------------------- server

class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], ConnectionError):  # clients hanging up (timeouts) are normal
            super().handle_error(request, client_address)


class FreesoundServer:
    """Freesound-compatible server on a background thread; use as a context manager.

    Parameters
    ----------
    sounds_dir : path, optional
        Folder holding ``cat.mp3`` ... ``sheep.mp3``; default ``$IMGEXT_TEST_SOUNDS_DIR`` or ``../shared/sounds``.
    api_key : str
        The only token accepted.
    host, port : where to listen; port 0 picks a free one.
    """

    def __init__(self, *, sounds_dir=None, api_key="test-key", host="127.0.0.1", port=0, verbose=False):
        self.sounds_dir = Path(sounds_dir or os.environ.get(SOUNDS_DIR_ENV) or DEFAULT_SOUNDS_DIR).resolve()
        missing = [a for a in ANIMALS if not (self.sounds_dir / f"{a}.mp3").is_file()]
        if missing:
            raise FileNotFoundError(f"{self.sounds_dir} lacks {', '.join(a + '.mp3' for a in missing)}")
        self.api_key, self.host, self.port, self.verbose = api_key, host, port, verbose
        infos = {}
        for a in ANIMALS:
            data, sr = _decoded(self.sounds_dir / f"{a}.mp3")
            infos[a] = (len(data), sr, data.shape[1])
        self.catalogue, self._audio = _build_catalogue(infos)
        self._by_id = {r["id"]: r for r in self.catalogue}
        self.faults = Faults()
        self.requests: list[RequestRecord] = []
        self.down_hits = 0  # connections closed unread while faults.down
        self._lock = threading.Lock()
        self._n = 0
        self._connections: set = set()
        self._png = _tiny_png()
        self._stopping = threading.Event()  # ends hostile transfers at stop()
        self._httpd = None
        self._thread = None

    # -- lifecycle
    @property
    def origin(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        return self.origin + "/apiv2"

    def start(self) -> FreesoundServer:
        self._stopping.clear()
        handler = type("Handler", (_Handler,), {"fs": self})
        self._httpd = _HTTPServer((self.host, self.port), handler)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"freesound-server:{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        if self._httpd is None:
            return
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        for conn in list(self._connections):  # keep-alive sockets must not outlive the server
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._thread.join(timeout=5)
        self._httpd = None

    def __enter__(self) -> FreesoundServer:
        return self.start() if self._httpd is None else self

    def __exit__(self, *exc):
        self.stop()

    # -- for assertions
    def count(self, kind: str, status: int | None = None) -> int:
        """Requests of ``kind`` (search, sound, preview, image, other), optionally with that status."""
        with self._lock:
            return sum(1 for r in self.requests if r.kind == kind and (status is None or r.status == status))

    def reset(self):
        """Forget the request log and switch every fault off (the same ``faults`` object is kept)."""
        with self._lock:
            self.requests.clear()
            self._n = 0
            self.down_hits = 0
            for f in fields(Faults):
                setattr(self.faults, f.name, f.default)

    def sound(self, sound_id: int) -> dict:
        return self._by_id[sound_id]

    def preview_url(self, sound_id: int, quality: str = "hq", fmt: str = "mp3") -> str:
        user_id = self._audio[sound_id][3]
        return f"{self.origin}/previews/{sound_id // 1000}/{sound_id}_{user_id}-{quality}.{fmt}"

    # -- internals
    def _record(self, handler: _Handler, path: str, query: dict) -> RequestRecord:
        rec = RequestRecord(handler.command, path, query, {k.lower(): v for k, v in handler.headers.items()},
                            _kind_of(path))
        with self._lock:
            self._n += 1
            handler.record_number = self._n
            self.requests.append(rec)
        return rec

    def _take(self, name: str) -> bool:
        with self._lock:
            left = getattr(self.faults, name)
            if left > 0:
                setattr(self.faults, name, left - 1)
                return True
            return False

    def _render(self, rec: dict, wanted: list[str] | None, origin: str, score: float | None = None) -> dict:
        sid, api = rec["id"], origin + "/apiv2"
        full = dict(rec)
        user_id = self._audio[sid][3]
        stem = f"{origin}/previews/{sid // 1000}/{sid}_{user_id}"
        full["previews"] = {f"preview-{q}-{f}": f"{stem}-{q}.{f}" for q in ("hq", "lq") for f in ("mp3", "ogg")}
        disp = f"{origin}/displays/{sid // 1000}/{sid}_{user_id}"
        full["images"] = {"waveform_m": f"{disp}_wave_M.png", "waveform_l": f"{disp}_wave_L.png",
                          "spectral_m": f"{disp}_spec_M.png", "spectral_l": f"{disp}_spec_L.png"}
        full["pack"] = f"{api}/packs/{9000 + user_id % 1000}/" if rec["pack_name"] else None
        for name in ("download", "bookmark", "rate", "comment", "comments", "similar_sounds", "analysis"):
            full[name] = f"{api}/sounds/{sid}/{'similar' if name == 'similar_sounds' else name}/"
        if score is not None:
            full["score"] = score
        if wanted is None:  # descriptors and vectors only when asked for in `fields`, as on Freesound
            return {k: v for k, v in full.items() if k not in DESCRIPTOR_ONLY_FIELDS}
        return {k: full[k] for k in wanted if k in full}


# --------------------------------------------------------------------------- standalone

def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Freesound-compatible test server (foreground).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--key", default="test-key", help="API key to accept (default: test-key)")
    parser.add_argument("--sounds", default=None, help=f"folder with the ten MP3s (default {DEFAULT_SOUNDS_DIR})")
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = parser.parse_args(argv)
    server = FreesoundServer(sounds_dir=args.sounds, api_key=args.key, host=args.host, port=args.port,
                             verbose=args.verbose).start()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    print(server.base_url, flush=True)
    print(f"{len(server.catalogue)} sounds from {server.sounds_dir}; key {args.key!r}", file=sys.stderr, flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Bad input, property-based where it fits (hypothesis): images, audio, filters and presets, Freesound metadata.

The rule under test: bad input always ends as an :class:`imgext.errors.ImgExtError` subclass whose message
is one readable line naming the input, never a traceback or another exception type; nothing escapes the
presets folder, the output folder or the ZIP; a refused input leaves the presets file and the cache as
they were, and another session's output folder untouched.

Every property runs derandomized (the same examples on every machine and in CI).  Each test counts the
inputs it really tried; ``test_zz_report_bad_inputs_tried`` prints the totals when the whole file runs:
4,424 bad inputs (images 1,194, audio 1,013, filters 707, presets 300, Freesound metadata 1,210).
"""

from __future__ import annotations

import collections
import io
import json
import math
import re
import resource
import shutil
import struct
import tempfile
import time
import unicodedata
import zipfile
import zlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from imgext.audio import io as audio_mod
from imgext.audio.io import MAX_SOURCE_PEAK, decode, prepare_source, to_mono
from imgext.composition.tracks import Fetched, Tracks, display_names
from imgext.errors import AudioError, ImageError, ImgExtError, ParameterError, SourceError
from imgext.mix.mixer import Mixer
from imgext.options import MixSettings
from imgext.output.export import (
    OutputFile,
    attribution_line,
    attribution_text,
    build_outputs,
    build_zip,
    remove_stale,
    safe_filename,
    unique_names,
    write_outputs,
)
from imgext.sounds.base import Candidate
from imgext.sounds.cache import DiskCache
from imgext.sounds.filters import FILE_TYPES, LICENSES, SORT_ORDERS, PresetStore, SearchFilter, solr_quote
from imgext.sounds.freesound import FreesoundSource
from imgext.sounds.selection import Assignment, Ranked
from imgext.vision.detection import load_image
from imgext.vision.placement import SceneObject
from tests.quick import QUICK, examples

SHARED_IMAGES = Path(__file__).resolve().parents[2] / "shared" / "images"
SHARED_SOUNDS = Path(__file__).resolve().parents[2] / "shared" / "sounds"

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:PIL.TiffImagePlugin")  # PIL's notes on garbage EXIF

TRIED: collections.Counter = collections.Counter()
"""Bad inputs actually tried, per category (hypothesis examples and explicit cases)."""

PROPERTY = settings(
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=False,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)


def tried(category: str, n: int = 1) -> None:
    TRIED[category] += n


def assert_clear(exc: BaseException, kind: type, *names: str) -> None:
    """``exc`` is ``kind`` (an ImgExtError) with a non-empty one-line message naming one of ``names``."""
    assert isinstance(exc, kind) and isinstance(exc, ImgExtError), f"{type(exc).__name__}: {exc}"
    message = str(exc)
    assert message.strip(), "empty message"
    assert len(message.splitlines()) == 1, f"message is not one line: {message!r}"
    if names:
        assert any(n in message or repr(n) in message for n in names), f"{message!r} does not name {names}"


def outcome(fn, *args, **kwargs):
    """Call ``fn``; return ``("ok", result)`` or ``("error", exc)`` for ImgExtError; anything else fails the test."""
    try:
        return "ok", fn(*args, **kwargs)
    except ImgExtError as exc:
        return "error", exc
    except BaseException as exc:  # noqa: BLE001 - the point: nothing else may escape
        pytest.fail(f"{fn.__name__} raised {type(exc).__name__} (not an ImgExtError): {exc!r}")


# ================================================================================================
# Images
# ================================================================================================


def _encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def _png(width: int, height: int, *, bit_depth: int = 8, colour_type: int = 2, rows: bytes | None = None) -> bytes:
    """A PNG written by hand (16-bit colour, zero or absurd sizes: things PIL will not write)."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    idat = zlib.compress(rows if rows is not None else b"\x00" * 16)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def _png16(pixels: np.ndarray) -> bytes:
    """16-bit PNG of ``pixels`` [shape=(h, w, c), dtype=uint16], c = 1 (grey), 2 (grey+alpha), 3 (RGB), 4 (RGBA)."""
    h, w, c = pixels.shape
    colour_type = {1: 0, 2: 4, 3: 2, 4: 6}[c]
    rows = b"".join(b"\x00" + pixels[y].astype(">u2").tobytes() for y in range(h))
    return _png(w, h, bit_depth=16, colour_type=colour_type, rows=rows)


@pytest.fixture(scope="module")
def real_images() -> dict[str, bytes]:
    """Real photos (bus.jpg, ../shared/images) and small images in every format PIL writes."""
    import ultralytics

    files = [Path(ultralytics.ASSETS) / "bus.jpg", *sorted(SHARED_IMAGES.glob("*.jpg"))]
    out = {p.name: p.read_bytes() for p in files}
    small = Image.open(files[0]).convert("RGB").resize((96, 64))
    for fmt in ("PNG", "GIF", "WEBP", "TIFF", "BMP"):
        out[f"small.{fmt.lower()}"] = _encode(small, fmt)
    out["small.jpg"] = _encode(small, "JPEG", quality=90)
    return out


MAGIC = [
    b"\xff\xd8\xff\xe0\x00\x10JFIF\x00",  # JPEG
    b"\xff\xd8\xff\xdb",
    b"\x89PNG\r\n\x1a\n",
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
    b"GIF89a",
    b"GIF87a",
    b"RIFF\x00\x10\x00\x00WEBPVP8 ",
    b"RIFF\x00\x10\x00\x00WEBPVP8X",
    b"BM",
    b"II*\x00",
    b"MM\x00*",
    b"8BPS",
    b"P6\n",
    b"\x00\x00\x01\x00",  # ICO
]


def _check_image_outcome(result, name: str, expected_size: tuple[int, int] | None = None) -> str:
    kind, value = result
    if kind == "error":
        assert_clear(value, ImageError, name)
        return "error"
    img, info = value
    assert img.mode == "RGB" and img.width > 0 and img.height > 0
    assert (info.width, info.height) == img.size
    if expected_size is not None:
        assert img.size in (expected_size, expected_size[::-1])
    return "ok"


@settings(PROPERTY, max_examples=examples(300))
@given(data=st.binary(max_size=2048))
@example(data=b"")
@example(data=b"\x00")
def test_random_bytes_are_refused_clearly(data):
    tried("images")
    _check_image_outcome(outcome(load_image, data, name="upload-1.jpg"), "upload-1.jpg")


@settings(PROPERTY, max_examples=examples(300))
@given(magic=st.sampled_from(MAGIC), body=st.binary(max_size=1024))
def test_random_bytes_behind_real_magic_numbers(magic, body):
    tried("images")
    _check_image_outcome(outcome(load_image, magic + body, name="photo.png"), "photo.png")


@settings(PROPERTY, max_examples=examples(200))
@given(which=st.integers(0, 9), cut=st.floats(0.0, 1.0))
def test_truncated_real_images(real_images, which, cut):
    tried("images")
    name, data = sorted(real_images.items())[which % len(real_images)]
    size = Image.open(io.BytesIO(data)).size
    n = max(1, int(len(data) * cut))
    res = _check_image_outcome(outcome(load_image, data[:n], name=name), name, expected_size=size)
    if n < len(data) // 2:
        assert res == "error"  # half a picture is never passed off as a picture


@settings(PROPERTY, max_examples=examples(150))
@given(
    which=st.integers(0, 9),
    flips=st.lists(st.tuples(st.integers(0, 10**7), st.integers(0, 255)), min_size=1, max_size=12),
)
def test_corrupted_real_images(real_images, which, flips):
    tried("images")
    name, data = sorted(real_images.items())[which % len(real_images)]
    raw = bytearray(data)
    for pos, value in flips:
        raw[pos % min(len(raw), 4096)] = value  # headers live in the first few kB
    _check_image_outcome(outcome(load_image, bytes(raw), name=name), name)


def _patch_jpeg_size(data: bytes, w: int, h: int) -> bytes:
    i = data.index(b"\xff\xc0")
    return data[: i + 5] + struct.pack(">HH", h, w) + data[i + 9 :]


def _patch_webp_size(data: bytes, w: int, h: int) -> bytes:
    i = data.index(b"\x9d\x01\x2a")  # VP8 key frame start code, then 14-bit width and height
    return data[: i + 3] + struct.pack("<HH", w, h) + data[i + 7 :]


def _patch_tiff_size(data: bytes, w: int, h: int) -> bytes:
    raw = bytearray(data)
    assert raw[:4] == b"II*\x00"
    ifd = struct.unpack_from("<I", raw, 4)[0]
    for k in range(struct.unpack_from("<H", raw, ifd)[0]):
        entry = ifd + 2 + 12 * k
        tag, typ = struct.unpack_from("<HH", raw, entry)
        if tag in (256, 257):
            fmt = "<H" if typ == 3 else "<I"
            struct.pack_into(fmt, raw, entry + 8, w if tag == 256 else h)
    return bytes(raw)


def _huge_images() -> list[tuple[str, bytes]]:
    base = Image.new("RGB", (16, 16), (10, 200, 30))
    gif = bytearray(_encode(base, "GIF"))
    struct.pack_into("<HH", gif, 6, 65535, 65535)  # logical screen
    bmp = bytearray(_encode(base, "BMP"))
    struct.pack_into("<ii", bmp, 18, 100000, 100000)
    return [
        ("bomb-100k.png", _png(100000, 100000)),
        ("bomb-max.png", _png(2**31 - 1, 2**31 - 1)),
        ("bomb-wide.png", _png(2**31 - 1, 1)),
        ("just-over-50MP.png", _png(7072, 7072)),
        ("bomb-grey16.png", _png(60000, 60000, bit_depth=16, colour_type=0)),
        ("bomb.jpg", _patch_jpeg_size(_encode(base, "JPEG"), 65500, 65500)),
        ("bomb.webp", _patch_webp_size(_encode(base, "WEBP"), 16383, 16383)),
        ("bomb.tiff", _patch_tiff_size(_encode(base, "TIFF"), 65535, 65535)),
        ("bomb.gif", bytes(gif)),
        ("bomb.bmp", bytes(bmp)),
    ]


@pytest.mark.parametrize("name,data", _huge_images(), ids=[n for n, _ in _huge_images()])
def test_huge_declared_dimensions_are_refused_before_decoding(name, data):
    tried("images")
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    with pytest.raises(ImageError) as info:
        load_image(data, name=name)
    seconds = time.perf_counter() - t0
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    assert_clear(info.value, ImageError, name)
    assert seconds < 1.0, f"{name} took {seconds:.2f} s to refuse"
    assert grown_mb < 100, f"{name} made the process grow by {grown_mb:.0f} MB"
    if name.endswith(".png") or name == "bomb.jpg":
        assert re.search(r"decompression bomb|\bMP\b", str(info.value)), str(info.value)


@settings(PROPERTY, max_examples=examples(100))
@given(w=st.integers(0, 2**31 - 1), h=st.integers(0, 2**31 - 1))
@example(w=0, h=10)
@example(w=10, h=0)
@example(w=0, h=0)
def test_any_declared_png_size_is_refused_or_decoded_quickly(w, h):
    tried("images")
    t0 = time.perf_counter()
    res = _check_image_outcome(outcome(load_image, _png(w, h), name="claims.png"), "claims.png", expected_size=(w, h))
    assert time.perf_counter() - t0 < 1.0
    if w * h > 50_000_000 or w * h == 0:
        assert res == "error"


def test_zero_size_inputs(tmp_path):
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    zero_gif = bytearray(_encode(Image.new("RGB", (4, 4)), "GIF"))
    struct.pack_into("<HH", zero_gif, 6, 0, 0)  # logical screen
    struct.pack_into("<HH", zero_gif, zero_gif.index(b",\x00\x00\x00\x00") + 5, 0, 0)  # and the frame
    cases = [
        (b"", "empty.png", "empty"),
        (empty, "empty.jpg", "empty"),
        (_png(0, 0), "zero.png", None),
        (_png(0, 480), "no-width.png", None),
        (_png(640, 0), "no-height.png", None),
        (bytes(zero_gif), "zero.gif", None),
    ]
    for data, name, match in cases:
        tried("images")
        with pytest.raises(ImageError) as info:
            load_image(data, name=name)
        assert_clear(info.value, ImageError, name)
        if match:
            assert match in str(info.value)


def test_paths_that_are_not_image_files(tmp_path):
    (tmp_path / "folder.jpg").mkdir()
    cases = [
        (tmp_path / "folder.jpg", "folder.jpg"),  # a directory
        (str(tmp_path / "nul\x00byte.jpg"), "nul\x00byte.jpg"),  # a NUL in the path
        (tmp_path / "missing.jpg", "missing.jpg"),
    ]
    for path, name in cases:
        tried("images")
        assert_clear(outcome(load_image, path)[1], ImageError, name)
    # a device that never ends (stat says 0 bytes): read up to the limit, then refused
    tried("images")
    t0 = time.perf_counter()
    assert_clear(outcome(load_image, "/dev/zero", max_bytes=1_000_000)[1], ImageError, "zero")
    assert time.perf_counter() - t0 < 2.0


def _frames(colours, size=(24, 16)):
    return [Image.new("RGB", size, c) for c in colours]


@pytest.mark.parametrize("fmt", ["GIF", "PNG", "WEBP"])
def test_animated_images_use_the_first_frame(fmt):
    tried("images")
    frames = _frames([(255, 0, 0), (0, 255, 0), (0, 0, 255)])
    kw = {"lossless": True} if fmt == "WEBP" else {}
    data = _encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, loop=0, **kw)
    img, info = load_image(data, name=f"anim.{fmt.lower()}")
    assert img.mode == "RGB" and img.size == (24, 16)
    r, g, b = img.getpixel((12, 8))
    assert r > 200 and g < 50 and b < 50, (r, g, b)
    assert any("first of 3 frames" in n for n in info.notes), info.notes


def test_sixteen_bit_pngs_use_the_full_range():
    ramp = np.linspace(0, 65535, 256).astype(np.uint16)
    grey = np.tile(ramp, (8, 1))[..., None]
    cases = {
        "grey16.png": grey,
        "grey-alpha16.png": np.concatenate([grey, np.full_like(grey, 65535)], axis=2),
        "rgb16.png": np.stack(
            [np.tile(ramp, (8, 1)), np.tile(ramp[::-1], (8, 1)), np.full((8, 256), 32768, np.uint16)], axis=2
        ),
        "rgba16.png": np.concatenate(
            [np.repeat(grey, 3, axis=2), np.full_like(grey, 65535)], axis=2
        ),
    }
    for name, pixels in cases.items():
        tried("images")
        img, info = load_image(_png16(pixels), name=name)
        arr = np.asarray(img).astype(int)
        assert img.mode == "RGB" and img.size == (256, 8)
        row = arr[4, :, 0]
        assert row.min() <= 2 and row.max() >= 253, (name, row.min(), row.max())  # full range, not clipped
        assert np.all(np.diff(row) >= 0) and len(np.unique(row)) > 200, name  # a ramp stays a ramp
        if name == "rgb16.png":
            assert abs(arr[4, 0, 1] - 255) <= 2 and abs(arr[4, 0, 2] - 128) <= 2


# stored image 40x20: red block at the stored top-left, green at the stored top-right, blue elsewhere
_CORNERS = {"top-left": (2, 2), "top-right": (-3, 2), "bottom-left": (2, -3), "bottom-right": (-3, -3)}
# EXIF orientation -> where the stored top-left (red) and top-right (green) corners are seen (TIFF 6.0 / EXIF 2.3)
_ORIENTATION = {
    1: ("top-left", "top-right"),
    2: ("top-right", "top-left"),
    3: ("bottom-right", "bottom-left"),
    4: ("bottom-left", "bottom-right"),
    5: ("top-left", "bottom-left"),
    6: ("top-right", "bottom-right"),
    7: ("bottom-right", "top-right"),
    8: ("bottom-left", "top-left"),
}


def _oriented(fmt: str, orientation: int) -> bytes:
    img = Image.new("RGB", (40, 20), (0, 0, 255))
    img.paste((255, 0, 0), (0, 0, 8, 6))
    img.paste((0, 255, 0), (32, 0, 40, 6))
    exif = Image.Exif()
    exif[0x0112] = orientation
    kw = {"quality": 95} if fmt == "JPEG" else {}
    return _encode(img, fmt, exif=exif, **kw)


def _colour_at(img: Image.Image, corner: str) -> str:
    x, y = _CORNERS[corner]
    r, g, b = img.getpixel((x % img.width, y % img.height))
    return "red" if r > 180 and g < 90 else "green" if g > 180 and r < 90 else "other"


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "TIFF"])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation(fmt, orientation):
    tried("images")
    img, info = load_image(_oriented(fmt, orientation), name=f"o{orientation}.{fmt.lower()}")
    assert (info.width, info.height) == ((40, 20) if orientation <= 4 else (20, 40))
    red, green = _ORIENTATION[orientation]
    assert _colour_at(img, red) == "red", (fmt, orientation, red)
    assert _colour_at(img, green) == "green", (fmt, orientation, green)


@pytest.mark.parametrize("orientation", [0, 9, 255, 65535])
def test_invalid_exif_orientation_is_ignored(orientation):
    tried("images")
    img, info = load_image(_oriented("JPEG", orientation), name="odd.jpg")
    assert img.size == (40, 20) and _colour_at(img, "top-left") == "red"


def _mode_cases() -> list[tuple[str, bytes, tuple[int, int, int] | None]]:
    """(name, encoded image, expected colour at (5, 5) or None)."""
    p = Image.new("P", (16, 12), 1)
    p.putpalette([0, 0, 0, 255, 0, 0] + [0] * (256 * 3 - 6))
    p_clear = p.copy()
    p_clear.info["transparency"] = 1
    la = Image.new("LA", (16, 12), (0, 0))  # fully transparent black
    i32 = Image.fromarray(np.arange(12 * 16, dtype=np.int32).reshape(12, 16) * 400 - 20000, mode="I")
    f_bad = np.linspace(-3.0, 5.0, 12 * 16, dtype=np.float32).reshape(12, 16)
    f_bad[0, 0], f_bad[0, 1], f_bad[0, 2] = np.nan, np.inf, -np.inf
    bilevel = Image.new("1", (16, 12), 1)
    return [
        ("palette.png", _encode(p, "PNG"), (255, 0, 0)),
        ("palette.gif", _encode(p, "GIF"), (255, 0, 0)),
        ("palette-transparent.png", _encode(p_clear, "PNG"), (255, 255, 255)),
        ("grey-alpha.png", _encode(la, "PNG"), (255, 255, 255)),
        ("grey-alpha.tiff", _encode(la, "TIFF"), (255, 255, 255)),
        ("int32.tiff", _encode(i32, "TIFF"), None),
        ("float-nan-inf.tiff", _encode(Image.fromarray(f_bad, mode="F"), "TIFF"), None),
        ("float-constant.tiff", _encode(Image.fromarray(np.full((12, 16), 7.5, np.float32), mode="F"), "TIFF"), None),
        ("cmyk.jpg", _encode(Image.new("CMYK", (16, 12), (0, 255, 255, 0)), "JPEG", quality=95), (255, 0, 0)),
        ("cmyk.tiff", _encode(Image.new("CMYK", (16, 12), (0, 255, 255, 0)), "TIFF"), (255, 0, 0)),
        ("bilevel.png", _encode(bilevel, "PNG"), (255, 255, 255)),
        ("bilevel.bmp", _encode(bilevel, "BMP"), (255, 255, 255)),
        ("bilevel.tiff", _encode(bilevel, "TIFF"), (255, 255, 255)),
        ("grey16be.tiff", _encode(Image.new("I;16B", (16, 12), 300), "TIFF"), None),
        ("lab.tiff", _encode(Image.new("LAB", (16, 12), (50, 0, 0)), "TIFF"), None),
        ("ycbcr.tiff", _encode(Image.new("YCbCr", (16, 12), (128, 128, 128)), "TIFF"), None),
    ]


@pytest.mark.parametrize("name,data,colour", _mode_cases(), ids=[c[0] for c in _mode_cases()])
def test_every_pixel_mode_becomes_rgb(name, data, colour):
    tried("images")
    img, info = load_image(data, name=name)
    assert img.mode == "RGB" and img.size == (16, 12)
    if colour is not None:
        assert max(abs(a - b) for a, b in zip(img.getpixel((5, 5)), colour)) <= 8, (name, img.getpixel((5, 5)))
    if name in ("int32.tiff", "float-nan-inf.tiff"):
        arr = np.asarray(img)[..., 0].astype(int)
        assert arr.max() >= 250 and len(np.unique(arr)) > 100, name  # negative and non-finite values do not blacken it
        assert np.all(np.diff(arr[6]) >= 0), name  # the ramp keeps its order


@settings(PROPERTY, max_examples=examples(60))
@given(name=st.text(max_size=40))
def test_image_messages_name_any_input_on_one_line(name):
    tried("images")
    kind, exc = outcome(load_image, b"GIF89a\x00\x00", name=name or None)
    assert kind == "error"
    assert_clear(exc, ImageError, name or "image")


# ================================================================================================
# Audio
# ================================================================================================


def _sound(x: np.ndarray, sr: int, *, fmt: str = "WAV", subtype: str = "FLOAT") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, x, sr, format=fmt, subtype=subtype)
    return buf.getvalue()


@pytest.fixture(scope="module")
def real_sounds() -> dict[str, bytes]:
    rng = np.random.default_rng(7)
    x = (0.2 * rng.standard_normal((22050, 2))).astype(np.float32)
    out = {p.name: p.read_bytes() for p in sorted(SHARED_SOUNDS.glob("*.mp3"))[:3]}
    out["noise.wav"] = _sound(x, 44100, subtype="PCM_16")
    out["noise.flac"] = _sound(x, 44100, fmt="FLAC", subtype="PCM_16")
    out["noise.ogg"] = _sound(x, 44100, fmt="OGG", subtype="VORBIS")
    out["noise-float.wav"] = _sound(x, 44100)
    return out


def _check_audio_outcome(result, name: str, *, duration_s: float | None = None) -> str:
    kind, value = result
    if kind == "error":
        assert_clear(value, AudioError, name)
        return "error"
    if duration_s is None:
        assert value.audio.ndim == 2 and value.audio.dtype == np.float32 and value.sample_rate > 0
        assert value.audio.shape[1] >= 0.02 * value.sample_rate
        assert np.all(np.isfinite(value.audio)) and float(np.max(np.abs(value.audio))) <= MAX_SOURCE_PEAK
    else:
        track, notes = value
        assert track.shape == (int(round(duration_s * 44100)),) and track.dtype == np.float32
        # finite, and bounded: resampling and the loop crossfade may overshoot the decoded peak, not explode it
        assert np.all(np.isfinite(track)) and float(np.max(np.abs(track), initial=0.0)) <= 16 * MAX_SOURCE_PEAK
        assert all(len(n.splitlines()) == 1 for n in notes)
    return "ok"


@settings(PROPERTY, max_examples=examples(300))
@given(data=st.binary(max_size=4096))
def test_random_bytes_are_not_audio(data):
    tried("audio")
    _check_audio_outcome(outcome(decode, data, name="barking dog"), "barking dog")


AUDIO_MAGIC = [
    b"RIFF", b"RIFF\x24\x00\x00\x00WAVEfmt ", b"fLaC", b"fLaC\x00\x00\x00\x22", b"OggS\x00\x02", b"ID3\x04\x00",
    b"\xff\xfb\x90\x64", b"FORM\x00\x00\x00\x20AIFF", b"caff",
]


@settings(PROPERTY, max_examples=examples(200))
@given(magic=st.sampled_from(AUDIO_MAGIC), body=st.binary(max_size=2048))
def test_random_bytes_behind_audio_magic_numbers(magic, body):
    tried("audio")
    _check_audio_outcome(outcome(decode, magic + body, name="owl.mp3"), "owl.mp3")


@settings(PROPERTY, max_examples=examples(150))
@given(which=st.integers(0, 6), cut=st.floats(0.0, 1.0))
def test_truncated_real_sounds(real_sounds, which, cut):
    tried("audio")
    name, data = sorted(real_sounds.items())[which % len(real_sounds)]
    cut_data = data[: int(len(data) * cut)]
    if not cut_data:
        assert_clear(outcome(decode, cut_data, name=name)[1], AudioError, name)
        return
    _check_audio_outcome(outcome(prepare_source, cut_data, name=name, duration_s=0.5), name, duration_s=0.5)


def test_zero_length_and_no_samples(tmp_path):
    (tmp_path / "empty.wav").write_bytes(b"")
    cases = [
        (b"", "nothing", "empty"),
        (tmp_path / "empty.wav", "empty.wav", None),
        (_sound(np.zeros(0, np.float32), 44100), "zero frames", "no audio samples"),
        (_sound(np.zeros((0, 6), np.float32), 48000), "zero frames 5.1", "no audio samples"),
        (tmp_path, "a folder", None),
        (str(tmp_path / "nul\x00.wav"), "nul path", None),
    ]
    for data, name, match in cases:
        tried("audio")
        exc = outcome(decode, data, name=name)[1]
        assert_clear(exc, AudioError, name)
        if match:
            assert match in str(exc)


@pytest.mark.parametrize("sr", [8000, 44100, 192000])
@pytest.mark.parametrize("frames", [1, 2, 100])
def test_a_few_samples_are_too_short(sr, frames):
    tried("audio")
    exc = outcome(decode, _sound(np.full(frames, 0.5, np.float32), sr), name="blip")[1]
    assert_clear(exc, AudioError, "blip")
    assert "too short" in str(exc)


def test_nan_and_inf_samples_become_silence_with_a_note():
    x = np.sin(np.arange(8000) * 0.05).astype(np.float32)
    x[::7] = np.nan
    x[1::11] = np.inf
    x[2::13] = -np.inf
    for sr in (8000, 44100):
        tried("audio")
        d = decode(_sound(x, sr), name="broken float")
        assert np.all(np.isfinite(d.audio)) and any("NaN/infinite" in n for n in d.notes)
        track, notes = prepare_source(_sound(x, sr), name="broken float", duration_s=1.0)
        assert np.all(np.isfinite(track)) and track.shape == (44100,)
        assert any("NaN/infinite" in n for n in notes)
    tried("audio")
    track, notes = prepare_source(_sound(np.full(4000, np.nan, np.float32), 8000), name="all nan", duration_s=1.0)
    assert np.all(track == 0.0) and notes


def test_samples_near_the_float_limit_are_scaled_not_overflowed():
    x = np.full(8000, 3.0e38, np.float32)
    x[::2] *= -1
    for sr in (8000, 44100, 192000):
        tried("audio")
        track, notes = prepare_source(_sound(x, sr), name="overload", duration_s=1.0)
        assert np.all(np.isfinite(track)) and float(np.max(np.abs(track))) <= 2.0
        assert any("scaled down" in n for n in notes)
    tried("audio")
    d = decode(_sound(np.full(4410, 20000.0, np.float32), 44100), name="int as float")
    assert float(np.max(np.abs(d.audio))) == pytest.approx(1.0) and "+86 dBFS" in d.notes[0]
    tried("audio")
    d = decode(_sound(np.full(4410, 1.5, np.float32), 44100), name="a little hot")
    assert float(np.max(np.abs(d.audio))) == pytest.approx(1.5) and not d.notes  # modest overs are kept


def _hour_of_silence_flac(sr: int = 8000) -> bytes:
    """One hour of 8 kHz mono silence as FLAC (~90 kB), written a minute at a time."""
    buf = io.BytesIO()
    minute = np.zeros(60 * sr, dtype=np.int16)
    with sf.SoundFile(buf, "w", sr, 1, "PCM_16", format="FLAC") as f:
        for _ in range(60):
            f.write(minute)
    return buf.getvalue()


def test_an_hour_long_file_is_capped_with_a_note_and_prepare_decodes_only_what_it_needs(monkeypatch):
    data = _hour_of_silence_flac()
    assert len(data) < 500_000
    tried("audio")
    d = decode(data, name="hour.flac")
    assert d.audio.shape == (1, 600 * 8000)
    assert any("3600 s" in n and "only the first 600 s" in n for n in d.notes), d.notes

    read: list[int] = []

    class CountingSoundFile(sf.SoundFile):
        def read(self, *args, **kwargs):
            out = super().read(*args, **kwargs)
            read.append(len(out))
            return out

    monkeypatch.setattr(audio_mod.sf, "SoundFile", CountingSoundFile)
    tried("audio")
    t0 = time.perf_counter()
    track, notes = prepare_source(data, name="hour.flac", duration_s=2.0)
    assert time.perf_counter() - t0 < 1.0
    assert track.shape == (88200,) and not any("only the first" in n for n in notes)
    assert sum(read) <= (2.0 + 5.0) * 8000 + 1, sum(read)  # the scene plus room for a crossfade, not the hour


def test_a_wav_header_claiming_an_hour_is_read_as_what_is_there():
    wav = bytearray(_sound(np.zeros(8000, np.int16), 8000, subtype="PCM_16"))
    struct.pack_into("<I", wav, 4, 0xFFFFFFF0)  # RIFF size
    struct.pack_into("<I", wav, 40, 8000 * 2 * 3600)  # data size: an hour
    tried("audio")
    d = decode(bytes(wav), name="liar.wav")
    assert d.audio.shape == (1, 8000)


@pytest.mark.parametrize("sr", [8000, 11025, 22050, 48000, 96000, 192000])
def test_any_rate_is_resampled_to_the_mix_rate(sr):
    tried("audio")
    t = np.arange(int(0.5 * sr)) / sr
    tone = (0.5 * np.sin(2 * np.pi * 1000.0 * t)).astype(np.float32)
    track, _ = prepare_source(_sound(tone, sr, subtype="PCM_24"), name=f"tone@{sr}", duration_s=0.5)
    assert track.shape == (22050,)
    spectrum = np.abs(np.fft.rfft(track[2000:20000]))
    peak_hz = np.argmax(spectrum) * 44100 / 18000
    assert abs(peak_hz - 1000.0) < 10, peak_hz


def test_six_channels_fold_to_mono():
    tried("audio")
    levels = np.array([0.1, 0.2, -0.3, 0.4, 0.0, 0.6], dtype=np.float32)
    x = np.tile(levels, (4800, 1))
    d = decode(_sound(x, 48000), name="5.1")
    assert d.audio.shape == (6, 4800)
    np.testing.assert_allclose(to_mono(d.audio), np.full(4800, levels.mean()), atol=1e-6)
    tried("audio")
    track, _ = prepare_source(_sound(x, 48000), name="5.1", duration_s=0.1)
    assert track.shape == (4410,) and abs(float(np.median(track)) - float(levels.mean())) < 1e-3


@settings(PROPERTY, max_examples=examples(200))
@given(
    x=hnp.arrays(
        np.float32,
        st.tuples(st.integers(0, 1200), st.integers(1, 3)),
        elements=st.floats(width=32, allow_nan=True, allow_infinity=True, allow_subnormal=True),
    ),
    sr=st.sampled_from([8000, 22050, 44100, 192000]),
)
def test_any_float_samples_give_a_finite_track_or_a_clear_error(x, sr):
    tried("audio")
    data = _sound(x, sr)
    _check_audio_outcome(outcome(prepare_source, data, name="generated.wav", duration_s=0.25), "generated.wav",
                         duration_s=0.25)


@pytest.mark.parametrize(
    "call",
    [
        lambda d: decode(d, name="s", max_seconds=float("nan")),
        lambda d: decode(d, name="s", max_seconds=-1),
        lambda d: decode(d, name="s", max_seconds=0),
        lambda d: decode(d, name="s", max_seconds=float("inf")),
        lambda d: prepare_source(d, name="s", duration_s=float("nan")),
        lambda d: prepare_source(d, name="s", duration_s=float("inf")),
        lambda d: prepare_source(d, name="s", duration_s=-2.0),
        lambda d: prepare_source(d, name="s", duration_s=1.0, sample_rate=0),
        lambda d: prepare_source(d, name="s", duration_s=1.0, sample_rate=44100.5),
    ],
)
def test_impossible_lengths_and_rates_are_parameter_errors(call):
    tried("audio")
    kind, exc = outcome(call, _sound(np.zeros(4410, np.float32), 44100))
    assert kind == "error"
    assert_clear(exc, ParameterError)


@settings(PROPERTY, max_examples=examples(60))
@given(name=st.text(max_size=40))
def test_audio_messages_name_any_input_on_one_line(name):
    tried("audio")
    assert_clear(outcome(decode, b"RIFF\x00\x00", name=name)[1], AudioError, name)


MAGIC_AUDIO_BYTES = st.tuples(st.sampled_from(AUDIO_MAGIC), st.binary(max_size=512)).map(b"".join)


class _BytesClient:
    """Stands in for FreesoundClient: every download returns the bytes it is given."""

    base_url = "http://127.0.0.1:9/apiv2"

    def __init__(self, data: bytes) -> None:
        self.data = data

    def download(self, url: str, *, what: str = "") -> bytes:
        return self.data


@settings(PROPERTY, max_examples=examples(60))
@given(data=st.one_of(st.binary(max_size=2048), MAGIC_AUDIO_BYTES))
def test_bad_downloads_never_reach_the_cache(tmp_path_factory, data):
    tried("audio")
    cache = DiskCache(tmp_path_factory.mktemp("cache"))
    src = FreesoundSource(_BytesClient(data), cache=cache)
    previews = {"preview-hq-mp3": "http://x/1.mp3", "preview-hq-ogg": "http://x/1.ogg"}
    cand = Candidate(id="freesound:1", name="bad preview", source="freesound",
                     extra={"freesound_id": 1, "previews": previews})
    kind, value = outcome(src.fetch, cand)
    keys = [src._preview_key(cand, k) for k in ("preview-hq-mp3", "preview-hq-ogg")]
    if kind == "error":
        assert_clear(value, SourceError if not isinstance(value, AudioError) else AudioError, "bad preview")
        assert all(cache.get_bytes(k) is None for k in keys)
    else:
        decode(value, name="bad preview", max_seconds=0.5)  # only playable audio is cached
    cache.close()


# ================================================================================================
# Filters and presets
# ================================================================================================

_QUOTED = r'"(?:[^"\\]|\\[\\"])*"'
_NUM = r"-?\d+(?:\.\d+)?(?:e[+-]\d+)?"
_PART = re.compile(
    rf"duration:\[(?P<dlo>{_NUM}) TO (?P<dhi>{_NUM}|\*)\]"
    rf"|license:\((?P<lic>{_QUOTED}(?: OR {_QUOTED})*)\)"
    rf"|type:\((?P<typ>{_QUOTED}(?: OR {_QUOTED})*)\)"
    rf"|avg_rating:\[(?P<rating>{_NUM}) TO \*\]"
    rf"|num_ratings:\[(?P<nratings>\d+) TO \*\]"
    rf"|samplerate:\((?P<rates>{_NUM}(?: OR {_NUM})*)\)"
    rf"|channels:(?P<channels>[12])"
    rf"|-tag:(?P<tag>{_QUOTED})"
)


def _unquote(q: str) -> str:
    assert q[0] == q[-1] == '"'
    return re.sub(r"\\(.)", r"\1", q[1:-1])


def _quoted_list(text: str) -> list[str]:
    return [_unquote(q) for q in re.findall(_QUOTED, text)]


def _check_tokens(s: str) -> None:
    """Solr lexing: quotes balanced, every backslash escapes something, brackets balanced outside quotes."""
    in_quote = escaped = False
    depth = 0
    for ch in s:
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == '"':
            in_quote = not in_quote
        elif not in_quote and ch in "([{":
            depth += 1
        elif not in_quote and ch in ")]}":
            depth -= 1
            assert depth >= 0, s
    assert not in_quote and not escaped and depth == 0, s


def check_solr(flt: SearchFilter, s: str) -> None:
    """Prove ``s`` is ``flt`` as Solr: parse the structured part strictly, unescape every value, compare."""
    assert not any(unicodedata.category(ch) in ("Cc", "Cs") for ch in s), s
    s.encode("utf-8")
    _check_tokens(s)
    raw = flt.raw.strip()
    structured = replace(flt, raw="").to_solr()
    assert s == " ".join(p for p in (structured, raw) if p)
    pos, seen_tags = 0, []
    while pos < len(structured):
        m = _PART.match(structured, pos)
        assert m, f"cannot parse {structured[pos:]!r} in {structured!r}"
        if m["lic"]:
            assert _quoted_list(m["lic"]) == [LICENSES[n] for n in dict.fromkeys(flt.licenses)]
        if m["typ"]:
            assert _quoted_list(m["typ"]) == list(dict.fromkeys(flt.file_types))
        if m["tag"]:
            seen_tags.append(_unquote(m["tag"]))
        for key in ("dlo", "dhi", "rating", "nratings"):
            if m[key] and m[key] != "*":
                assert math.isfinite(float(m[key])) and float(m[key]) >= 0
        pos = m.end()
        if pos < len(structured):
            assert structured[pos] == " "
            pos += 1
    assert seen_tags == [str(t).strip() for t in flt.exclude_tags]


NASTY_TEXT = st.text(
    alphabet=st.one_of(
        st.characters(),  # anything, surrogates and controls included
        st.sampled_from(list('"\\\'()[]{}:*?~^!&|+- \t\n\x00/\u202e\u200d\U0001f436')),
    ),
    max_size=60,
)
ANY_NUMBER = st.one_of(
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(10**30), 10**30),
    st.just(10**400),
    st.booleans(),
    NASTY_TEXT,
)


def _seq(inner):
    return st.lists(inner, max_size=4).map(tuple)


FILTER_KWARGS = st.fixed_dictionaries(
    {},
    optional={
        "duration_min_s": ANY_NUMBER,
        "duration_max_s": ANY_NUMBER,
        "licenses": _seq(st.one_of(st.sampled_from(list(LICENSES)), NASTY_TEXT, st.lists(st.text(max_size=3)))),
        "file_types": _seq(st.one_of(st.sampled_from(FILE_TYPES), NASTY_TEXT, st.integers())),
        "min_rating": ANY_NUMBER,
        "min_num_ratings": ANY_NUMBER,
        "sample_rates": _seq(st.one_of(st.sampled_from([8000, 44100, 48000, 96000]), ANY_NUMBER)),
        "channels": st.one_of(st.sampled_from([1, 2, 1.0]), ANY_NUMBER),
        "exclude_tags": _seq(st.one_of(NASTY_TEXT, st.sampled_from(["music", 'say "hi"', "back\\slash", "  "]))),
        "sort": st.one_of(st.sampled_from(SORT_ORDERS), NASTY_TEXT),
        "raw": st.one_of(NASTY_TEXT, st.sampled_from(["bitdepth:24", 'tag:"a b"', "a\\", "duration:[1 TO 2}", "(x"]),
                         st.integers()),
    },
)


@settings(PROPERTY, max_examples=examples(300))
@given(kwargs=FILTER_KWARGS)
@example(kwargs={"min_num_ratings": 10**400})
@example(kwargs={"sample_rates": (None,)})
@example(kwargs={"licenses": (["cc0"],)})
@example(kwargs={"raw": 5})
@example(kwargs={"raw": "tag:dog\\"})
@example(kwargs={"exclude_tags": ("\udcff",)})
@example(kwargs={"channels": True})
def test_any_text_in_every_filter_field_is_escaped_or_refused(kwargs):
    tried("filters")
    kind, value = outcome(SearchFilter, **kwargs)
    if kind == "error":
        assert_clear(value, ParameterError)
        return
    check_solr(value, value.to_solr())
    assert SearchFilter.from_dict(json.loads(json.dumps(value.to_dict()))) == value or kwargs.get("channels") is True


@settings(PROPERTY, max_examples=examples(200))
@given(text=NASTY_TEXT)
def test_solr_quote_round_trips_or_refuses(text):
    tried("filters")
    kind, value = outcome(solr_quote, text)
    if kind == "error":
        assert_clear(value, ParameterError)
        return
    assert re.fullmatch(_QUOTED, value) and _unquote(value) == text


JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), NASTY_TEXT),
    lambda children: st.one_of(st.lists(children, max_size=3), st.dictionaries(NASTY_TEXT, children, max_size=3)),
    max_leaves=8,
)


@settings(PROPERTY, max_examples=examples(200))
@given(d=st.one_of(JSON_VALUES, st.fixed_dictionaries({}, optional=dict.fromkeys(SearchFilter.__dataclass_fields__,
                                                                                    JSON_VALUES))))
def test_any_json_as_a_filter_is_a_filter_or_a_parameter_error(d):
    tried("filters")
    kind, value = outcome(SearchFilter.from_dict, d)
    if kind == "error":
        assert_clear(value, ParameterError)
    else:
        check_solr(value, value.to_solr())


def _glued(pieces: list[str], max_size: int) -> st.SearchStrategy[str]:
    """Text of any characters and of ``pieces`` (which may be longer than one character)."""
    return st.lists(st.one_of(st.characters(), st.sampled_from(pieces)), max_size=max_size).map("".join)


PRESET_NAMES = st.one_of(
    _glued(["/", "..", "\\", "\x00", "~", ".", "ü", "名", "\U0001f436", "\u202e", "\u200d", " ", "%2e"], 90),
    st.sampled_from(["../../evil", "..", ".", "/etc/passwd", "a/b/c", "C:\\x", "presets.json", ".presets.lock",
                     "Ünïcödé ✓", "🐶🐱", "x" * 80, "x" * 81, "\x00", "nul\x00byte", "\u202eevil", "  ", ""]),
)


def _snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@settings(PROPERTY, max_examples=examples(200))
@given(name=PRESET_NAMES, rating=st.integers(0, 5))
def test_preset_names_never_escape_the_presets_folder(tmp_path, name, rating):
    tried("presets")
    data = tmp_path / "data"
    store = PresetStore(data)
    before = _snapshot(tmp_path)
    flt = SearchFilter(min_rating=rating)
    kind, value = outcome(store.save, name, flt)
    if kind == "error":
        assert_clear(value, ParameterError)
        assert _snapshot(tmp_path) == before or set(_snapshot(tmp_path)) - set(before) <= {"data/.presets.lock"}
    else:
        assert store.load(name) == flt
        key = unicodedata.normalize("NFC", name).strip()
        assert key in store.names()
        assert key in json.loads((data / "presets.json").read_text(encoding="utf-8"))["presets"]
        store.delete(name)
        assert outcome(store.load, name)[0] == "error"
    files = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")}
    assert files <= {"data", "data/presets.json", "data/.presets.lock"}, files


@settings(PROPERTY, max_examples=examples(100))
@given(
    content=st.one_of(
        st.binary(max_size=300),
        JSON_VALUES.map(lambda v: json.dumps(v).encode()),
        JSON_VALUES.map(lambda v: json.dumps({"presets": {"mine": v}}).encode()),
        st.sampled_from([
            b"[" * 100_000, b"\xff\xfe{}", b'{"presets": {"x": {"raw": 5}}}',
            b'{"presets": {"x": {"licenses": [["cc0"]]}}}',
            b'{"presets": {"a/../b": {"sample_rates": [null]}}}', b'{"presets": {"\\u0000": {}}}',
        ]),
    )
)
def test_corrupt_presets_files_are_set_aside_never_lost(tmp_path_factory, content):
    tried("presets")
    data = tmp_path_factory.mktemp("data")
    (data / "presets.json").write_bytes(content)
    store = PresetStore(data)
    kind, names = outcome(store.names)
    assert kind == "ok", names
    assert all(len(w.splitlines()) == 1 for w in store.warnings)
    asides = sorted(data.glob("presets.json.corrupt-*"))
    if any("corrupt" in w for w in store.warnings):
        assert len(asides) == 1 and asides[0].read_bytes() == content  # set aside, byte for byte
        assert not (data / "presets.json").exists()
    else:
        assert not asides and (data / "presets.json").read_bytes() == content
    store.save("after", SearchFilter(licenses=("cc0",)))  # the store still works
    assert PresetStore(data).load("after").licenses == ("cc0",)
    # a second corrupt file in the same second gets its own name
    (data / "presets.json").write_bytes(b"{not json")
    PresetStore(data).names()
    assert len(sorted(data.glob("presets.json.corrupt-*"))) == len(asides) + 1


# ================================================================================================
# Freesound metadata -> files and ZIP
# ================================================================================================

NASTY_NAMES = st.one_of(
    st.text(max_size=120),
    _glued(["/", "\\", "..", ".", "\x00", "\n", "\r", "\t", "\x1b", "\x7f", "\x85", "\u2028", "\u202e", "\u200d", ":",
            "*", "?", '"', "<", ">", "|", "～", "／", "．", "\uff3c", "CON", "nul", "_", "-", " ", "e\u0301"], 120),
    st.text(max_size=5).map(lambda s: s * 200),  # very long
    st.sampled_from(["../../etc/passwd", "/absolute/path.mp3", "..", ".", "", "CON.wav", "con", "\u202eevil.mp3",
                     "dir/sub/file.ogg", "a\x00b", "x" * 5000, "Grenouille près de l'étang — nuit.mp3", ".hidden",
                     "trailing dot.", "name.,", ".0"]),
)


def _assert_safe_name(name: str, max_length: int) -> None:
    assert name and len(name) <= max_length
    assert "/" not in name and "\\" not in name and ".." not in name and not name.startswith((".", " "))
    assert not any(unicodedata.category(c)[0] == "C" for c in name), repr(name)
    assert safe_filename(name, max_length=200) == name, f"{name!r} is not its own safe form"


@settings(PROPERTY, max_examples=examples(300))
@given(text=NASTY_NAMES, max_length=st.sampled_from([20, 60, 80, 200]))
def test_safe_filename_is_safe_and_stable(text, max_length):
    tried("metadata")
    _assert_safe_name(safe_filename(text, max_length=max_length), max_length)


@settings(PROPERTY, max_examples=examples(200))
@given(texts=st.lists(NASTY_NAMES, max_size=8))
def test_unique_names_are_unique_case_insensitively_and_stay_safe(texts):
    tried("metadata")
    safe = [safe_filename(t) for t in texts]
    safe += [safe_filename(s.upper()) for s in safe]
    names = unique_names(safe)
    assert len({n.lower() for n in names}) == len(names)
    for n in names:
        _assert_safe_name(n, 200)


SOUND_RECORD = st.fixed_dictionaries(
    {"name": NASTY_NAMES, "author": NASTY_NAMES, "url": NASTY_NAMES, "license": NASTY_NAMES},
    optional={
        "license_url": NASTY_NAMES, "commercial_ok": st.booleans(), "synthetic": st.booleans(), "file": NASTY_NAMES,
    },
)


@settings(PROPERTY, max_examples=examples(300))
@given(sound=SOUND_RECORD)
def test_attribution_lines_are_single_lines(sound):
    tried("metadata")
    line = attribution_line(sound)
    assert len(line.splitlines()) == 1 and not any(unicodedata.category(c)[0] == "C" for c in line)
    text = attribution_text([sound, sound])
    extra = (0 if sound.get("commercial_ok", True) else 2)
    assert len(text.splitlines()) == 2 + 2 + extra


def _wav_bytes(seconds: float = 0.05, sr: int = 8000) -> bytes:
    return _sound((0.1 * np.sin(np.arange(int(seconds * sr)) * 0.3)).astype(np.float32), sr, subtype="PCM_16")


def _freesound_candidate(src: FreesoundSource, i: int, name: str, username: str, license_url: str) -> Candidate:
    """A candidate as the real Freesound source builds it from a search record."""
    record = {
        "id": 1000 + i, "name": name, "username": username, "license": license_url, "tags": ["dog", name[:20]],
        "url": f"https://freesound.org/people/{username}/sounds/{1000 + i}/", "duration": 3.0, "avg_rating": 4.0,
        "num_ratings": 3, "description": name, "previews": {"preview-hq-mp3": "http://x/p.mp3"},
    }
    return src._candidate(record)


def _assert_inside(root: Path, names) -> None:
    root = root.resolve()
    for n in names:
        assert not n.startswith("/") and "\\" not in n and ".." not in n.split("/"), n
        assert not any(unicodedata.category(c)[0] == "C" for c in n), repr(n)
        assert (root / n).resolve().is_relative_to(root), n


@settings(PROPERTY, max_examples=examples(60))
@given(
    sounds=st.lists(
        st.tuples(
            NASTY_NAMES, NASTY_NAMES, NASTY_NAMES, NASTY_NAMES,
            st.sampled_from(["mp3", "wav", "../x", "a/b", "", "ogg\n"]),
        ),
        min_size=1,
        max_size=3,
    ),
    labels=st.lists(NASTY_NAMES.filter(lambda s: s.strip()), min_size=3, max_size=3),
)
def test_freesound_metadata_never_escapes_the_zip_or_the_output_folder(tmp_path, sounds, labels):
    tried("metadata")
    sessions = tmp_path / "sessions"
    other = sessions / "other-user"
    if not other.exists():
        other.mkdir(parents=True)
        (other / "mix.wav").write_bytes(b"someone else's mix")
        (other / "ATTRIBUTION.txt").write_text("theirs\n")
    before_other = _snapshot(other)
    out = Path(tempfile.mkdtemp(prefix="out-", dir=sessions))

    src = FreesoundSource(_BytesClient(b""), cache=DiskCache(None))
    settings_ = MixSettings(duration_s=1.0, sample_rate=8000, optimise=False)
    n = len(sounds)
    data = _wav_bytes()
    objects, assignments, fetched = [], [], {}
    for i, (name, user, licence, desc, ext) in enumerate(sounds):
        cand = _freesound_candidate(src, i, name, user, licence)
        cand = replace(cand, file_ext=ext, description=desc)
        objects.append(SceneObject(label=labels[i], confidence=0.9, box=(0.1, 0.1, 0.3, 0.3), pan=-0.5 + 0.5 * i,
                                   importance=1.0 / (i + 1), query=labels[i]))
        track, notes = prepare_source(data, name=cand.name, sample_rate=8000, duration_s=1.0)
        assignments.append(Assignment(i, labels[i], Ranked(cand, 1.0, 1.0, "test"), "test"))
        fetched[i] = Fetched(i, cand, data, track, notes)
    tracks = Tracks(
        audio=np.stack([fetched[i].track for i in range(n)]), names=display_names([o.label for o in objects]),
        object_indices=list(range(n)), pans=np.array([o.pan for o in objects]),
        importance=np.array([o.importance for o in objects]), volume_db=np.zeros(n), sample_rate=8000,
    )
    result = Mixer(tracks).render(settings_, measure_after=False)
    files, plan = build_outputs(
        image=None, objects=objects, assignments=assignments, fetched=fetched, tracks=tracks, outcome=result,
        settings=settings_, source_description="Freesound (test)", timings_s={},
    )
    zip_path = write_outputs(out, files)

    members = zipfile.ZipFile(zip_path).namelist()
    _assert_inside(out, members)
    assert len({m.lower() for m in members}) == len(members)
    assert sum(m.startswith("sources/") for m in members) == n and sum(m.startswith("stems/") and m != "stems/reverb.wav" for m in members) == 2 * n
    written = [p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()]
    _assert_inside(out, written)
    assert sorted(written) == sorted(plan.files)
    credits = (out / "ATTRIBUTION.txt").read_text(encoding="utf-8")
    nc_note = 0 if all(f.candidate.commercial_ok for f in fetched.values()) else 2
    assert len(credits.splitlines()) == 2 + n + nc_note + 2  # header, one line per sound, notes
    assert json.loads((out / "scene.json").read_text(encoding="utf-8"))["files"] == plan.files
    # nothing else appeared next to the session folders, and the other user's folder is untouched
    assert {p.name for p in sessions.iterdir()} == {"other-user", out.name}
    assert _snapshot(other) == before_other
    shutil.rmtree(out)


@settings(PROPERTY, max_examples=examples(150))
@given(paths=st.lists(st.one_of(NASTY_NAMES, st.sampled_from(["../victim.txt", "../other/keep.wav", "/etc/hostname",
                                                              "sources/../../victim.txt", "mix.wav", "sources"])),
                      max_size=6))
def test_a_forged_scene_json_cannot_delete_outside_the_output_folder(tmp_path_factory, paths):
    tried("metadata")
    root = tmp_path_factory.mktemp("session")
    out, other = root / "out", root / "other"
    out.mkdir()
    other.mkdir()
    (root / "victim.txt").write_text("keep me")
    (other / "keep.wav").write_bytes(b"keep")
    (out / "mix.wav").write_bytes(b"old")
    (out / "scene.json").write_text(json.dumps({"files": paths}))
    removed = remove_stale(out, keep=["scene.json"])
    assert (root / "victim.txt").read_text() == "keep me" and (other / "keep.wav").read_bytes() == b"keep"
    _assert_inside(out, removed)


@settings(PROPERTY, max_examples=examples(200))
@given(path=st.one_of(NASTY_NAMES, st.lists(NASTY_NAMES, min_size=1, max_size=3).map("/".join)))
def test_unsafe_paths_are_refused_by_the_zip_and_the_writer(tmp_path, path):
    tried("metadata")
    kind, value = outcome(build_zip, [OutputFile(path, b"x")])
    if kind == "error":
        assert_clear(value, ParameterError)
        kind2, value2 = outcome(write_outputs, tmp_path / "out", [OutputFile(path, b"x")])
        assert kind2 == "error"
        assert_clear(value2, ParameterError)
    else:
        _assert_inside(tmp_path / "out", zipfile.ZipFile(io.BytesIO(value)).namelist())
    _assert_inside(tmp_path, [p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")])


# ================================================================================================
# The count for the README
# ================================================================================================


FLOORS = {"images": 1000, "audio": 900, "filters": 600, "presets": 250, "metadata": 1000}
"""About 85 % of what the whole file tries (4,424 in all): a property test that silently shrinks fails here."""


def test_zz_report_bad_inputs_tried(capsys):
    """Print how many bad inputs the tests above tried, and check it is as many as this file promises.

    Runs last in the file (its name); alone, or with only part of the file, there is nothing to check.
    """
    if QUICK:
        pytest.skip("the fast loop tries a tenth of the bad inputs; the full suite checks the floors")
    if set(TRIED) != set(FLOORS):
        pytest.skip(f"run with the whole file (tried only {dict(TRIED)})")
    total = sum(TRIED.values())
    with capsys.disabled():
        detail = ", ".join(f"{k} {v}" for k, v in sorted(TRIED.items()))
        print(f"\nbad inputs tried: {total} ({detail})")
    short = {k: (TRIED[k], floor) for k, floor in FLOORS.items() if TRIED[k] < floor}
    assert not short, f"fewer bad inputs tried than promised (tried, floor): {short}"

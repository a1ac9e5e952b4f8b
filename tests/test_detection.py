"""Detection on real photos with the shared YOLOv8n model, and image validation."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from imgext.errors import ImageError, ParameterError
from imgext.vision.detection import Detection, load_image
from imgext.vision.placement import place_objects


def _jpeg(img: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", **kw)
    return buf.getvalue()


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def test_bus_has_a_bus_and_persons_and_pans_follow_boxes(detector, bus_jpg):
    image, info = load_image(bus_jpg)
    assert (info.width, info.height) == (810, 1080)
    dets = detector.detect(image, conf=0.25)
    labels = [d.label for d in dets]
    assert "bus" in labels
    assert labels.count("person") >= 3
    assert all(0.0 <= v <= 1.0 for d in dets for v in d.box)
    assert [d.confidence for d in dets] == sorted((d.confidence for d in dets), reverse=True)
    objects = place_objects(dets)
    for det, obj in zip(dets, objects):
        cx = (det.box[0] + det.box[2]) / 2
        assert obj.pan == pytest.approx(2 * cx - 1, abs=1e-3)
    persons = [o for o in objects if o.label == "person"]
    # The photo has a person at the far left and one at the far right: pans must say so.
    assert min(p.pan for p in persons) < -0.5
    assert max(p.pan for p in persons) > 0.5


def test_zidane_two_persons_left_and_right(detector, zidane_jpg):
    image, _ = load_image(zidane_jpg)
    dets = [d for d in detector.detect(image, conf=0.4) if d.label == "person"]
    assert len(dets) == 2
    pans = sorted(2 * (d.box[0] + d.box[2]) / 2 - 1 for d in dets)
    assert pans[0] < 0 < pans[1]


@pytest.mark.parametrize("name", ["wildcat.jpg", "wilddog.jpg", "wildelephant.jpg"])
def test_wild_snapshots_find_animals(detector, images_dir, name):
    image, info = load_image(images_dir / name)
    assert (info.width, info.height) == (1280, 720)
    labels = {d.label for d in detector.detect(image, conf=0.25)}
    animal = {"wildcat.jpg": "cat", "wilddog.jpg": "dog", "wildelephant.jpg": "elephant"}[name]
    assert animal in labels


def test_confidence_threshold_is_a_parameter(detector, bus_jpg):
    image, _ = load_image(bus_jpg)
    low = detector.detect(image, conf=0.2)
    high = detector.detect(image, conf=0.8)
    assert len(high) < len(low)
    assert all(d.confidence >= 0.8 for d in high)
    with pytest.raises(ParameterError, match="conf"):
        detector.detect(image, conf=1.5)


@pytest.mark.slow  # end to end in real time (a subprocess, a deadline or a whole render)
def test_detector_is_safe_across_threads(detector, bus_jpg):
    from concurrent.futures import ThreadPoolExecutor

    image, _ = load_image(bus_jpg)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: detector.detect(image), range(6)))
    assert all(r == results[0] for r in results)


def test_missing_weights_are_a_clear_error(tmp_path):
    from imgext.vision.detection import Detector

    with pytest.raises(ParameterError, match="weights not found"):
        Detector(str(tmp_path / "nope.onnx"))


# --- bad and unusual images -------------------------------------------------------------------


def test_text_file_named_jpg(tmp_path):
    p = tmp_path / "holiday.jpg"
    p.write_text("this is not a picture\n")
    with pytest.raises(ImageError, match="not an image"):
        load_image(p)


def test_truncated_jpeg(bus_jpg):
    data = bus_jpg.read_bytes()
    with pytest.raises(ImageError, match="damaged or truncated"):
        load_image(data[: len(data) // 3], name="cut.jpg")


def test_zero_bytes():
    with pytest.raises(ImageError, match="empty"):
        load_image(b"", name="empty.jpg")


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims a huge size: the bomb is refused before any pixel is decoded."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b"")


def test_decompression_bomb_is_refused():
    with pytest.raises(ImageError, match="decompression bomb"):
        load_image(_png_header_only(40000, 40000), name="bomb.png")


def test_cmyk_greyscale_and_alpha_become_rgb():
    cmyk = Image.new("CMYK", (64, 48), (0, 255, 255, 0))
    img, info = load_image(_jpeg(cmyk), name="cmyk.jpg")
    assert img.mode == "RGB" and img.size == (64, 48)
    assert any("CMYK" in n for n in info.notes)
    r, g, b = img.getpixel((10, 10))
    assert r > 200 and g < 60 and b < 60  # CMYK (0,255,255,0) is red

    grey, _ = load_image(_png(Image.new("L", (30, 20), 128)), name="grey.png")
    assert grey.mode == "RGB" and grey.getpixel((0, 0)) == (128, 128, 128)

    rgba = Image.new("RGBA", (10, 10), (0, 0, 0, 0))
    clear, info = load_image(_png(rgba), name="alpha.png")
    assert clear.getpixel((5, 5)) == (255, 255, 255)  # transparent composited on white
    assert any("transparency" in n for n in info.notes)


def test_sixteen_bit_png_is_scaled_not_clipped():
    arr = (np.linspace(0, 65535, 64 * 32).reshape(32, 64)).astype(np.uint16)
    img16 = Image.fromarray(arr)
    buf = io.BytesIO()
    img16.save(buf, format="PNG")
    img, _ = load_image(buf.getvalue(), name="deep.png")
    px = np.asarray(img)
    assert img.mode == "RGB"
    assert px.max() >= 250 and px.min() <= 5  # full range kept, not saturated to white


def test_exif_orientation_is_respected():
    img = Image.new("RGB", (200, 100), (0, 0, 255))
    img.paste((255, 0, 0), (0, 0, 20, 100))  # red stripe on the left of the stored image
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    img2, info = load_image(_jpeg(img, exif=exif, quality=95), name="rotated.jpg")
    assert (info.width, info.height) == (100, 200)
    r, g, b = img2.getpixel((50, 5))  # the stored left edge is now at the top
    assert r > 200 and b < 80


def test_animated_gif_uses_first_frame():
    frames = [Image.new("RGB", (20, 20), c) for c in [(255, 0, 0), (0, 255, 0)]]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=100)
    img, info = load_image(buf.getvalue(), name="anim.gif")
    assert img.mode == "RGB"
    assert img.getpixel((5, 5))[0] > 200
    assert any("first of 2 frames" in n for n in info.notes)


def test_detection_record_is_plain_data():
    d = Detection(label="dog", confidence=0.9, box=(0.1, 0.2, 0.3, 0.4))
    assert d.to_dict() == {"label": "dog", "confidence": 0.9, "box": (0.1, 0.2, 0.3, 0.4)}

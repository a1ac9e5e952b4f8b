"""Detection: load and validate an image, find the objects in it with YOLO.

:func:`load_image` turns untrusted bytes into an upright RGB picture or a clear
:class:`~imgext.errors.ImageError`.  :class:`Detector` wraps one YOLO model,
loaded once and guarded by a lock (a shared YOLO model is not thread-safe), and
returns plain :class:`Detection` records with boxes normalised to 0..1.
``.onnx`` weights run on ONNX Runtime directly (:mod:`imgext.vision.onnx_detector`,
no torch); other weights (``.pt``, model names) go through Ultralytics, imported
only then.
"""

from __future__ import annotations

import importlib
import io
import os
import threading
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from imgext.errors import ImageError, ParameterError

__all__ = [
    "MAX_IMAGE_PIXELS",
    "MAX_IMAGE_BYTES",
    "ImageInfo",
    "Detection",
    "load_image",
    "Detector",
    "default_weights",
    "draw_boxes",
]

MAX_IMAGE_PIXELS = 50_000_000
"""Largest accepted image in pixels (50 MP); bigger ones are refused as possible decompression bombs."""

MAX_IMAGE_BYTES = 50 * 1024 * 1024
"""Largest accepted image file in bytes (50 MB)."""

DEFAULT_WEIGHTS = "yolo26n.pt"
"""Ultralytics' default nano detector, downloaded by Ultralytics on first use."""

os.environ.setdefault("YOLO_AUTOINSTALL", "false")  # never pip-install behind the user's back
os.environ.setdefault("YOLO_VERBOSE", "false")


@dataclass(frozen=True)
class ImageInfo:
    """What we know of the input image after decoding.

    Attributes
    ----------
    path : str or None
        File name as given (for the record only; never used to open files again).
    width, height : int
        Upright size in pixels, after EXIF orientation.
    format : str
        Decoder format name (``"JPEG"``, ``"PNG"`` ...).
    notes : tuple of str
        Conversions applied (CMYK to RGB, first frame of an animation ...).
    """

    path: str | None
    width: int
    height: int
    format: str
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {"path": self.path, "width": self.width, "height": self.height}


@dataclass(frozen=True)
class Detection:
    """One detected object.

    Attributes
    ----------
    label : str
        COCO class name (``"person"``, ``"bus"`` ...).
    confidence : float
        Detector score in [0, 1].
    box : tuple of 4 float
        ``(x0, y0, x1, y1)`` normalised to [0, 1] by the image width and height,
        origin top left.
    """

    label: str
    confidence: float
    box: tuple[float, float, float, float]

    def to_dict(self) -> dict:
        return asdict(self)


def load_image(
    data: bytes | str | os.PathLike,
    *,
    name: str | None = None,
    max_pixels: int = MAX_IMAGE_PIXELS,
    max_bytes: int = MAX_IMAGE_BYTES,
) -> tuple[Image.Image, ImageInfo]:
    """Decode an image into an upright 8-bit RGB picture.

    EXIF orientation is applied; greyscale, palette, CMYK, 16-bit and alpha
    images are converted to RGB (alpha composited on white); of an animation
    the first frame is used.

    Parameters
    ----------
    data : bytes or path
        The encoded image.
    name : str, optional
        Shown in messages; defaults to the path's file name.
    max_pixels : int
        Images with more pixels are refused before they are decoded.
    max_bytes : int
        Files larger than this are refused.

    Returns
    -------
    image : PIL.Image.Image
        Mode ``"RGB"``.
    info : ImageInfo

    Raises
    ------
    ImageError
        Empty, not an image, truncated, too large, or zero-sized.
    """
    if isinstance(data, (str, os.PathLike)):
        path = Path(data)
        name = name or path.name
        try:
            size = path.stat().st_size
            if size > max_bytes:
                raise ImageError(f"image {name!r} is {size / 1e6:.0f} MB; the limit is {max_bytes / 1e6:.0f} MB")
            with open(path, "rb") as f:
                raw = f.read(max_bytes + 1)  # bounded: a device (/dev/zero) or a growing file reports size 0
        except ImageError:
            raise
        except (OSError, ValueError) as exc:  # a folder, no permission; ValueError: a NUL byte in the path
            raise ImageError(f"cannot read image {name!r}: {getattr(exc, 'strerror', None) or exc}") from None
        if len(raw) > max_bytes:
            raise ImageError(f"image {name!r} is larger than the limit of {max_bytes / 1e6:.0f} MB")
    else:
        raw = bytes(data)
        name = name or "image"
    if len(raw) == 0:
        raise ImageError(f"image {name!r} is empty (0 bytes)")
    if len(raw) > max_bytes:
        raise ImageError(f"image {name!r} is {len(raw) / 1e6:.0f} MB; the limit is {max_bytes / 1e6:.0f} MB")
    notes: list[str] = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = _pil_open(io.BytesIO(raw))
            fmt = img.format or "unknown"
            w, h = img.size
            if w <= 0 or h <= 0:
                raise ImageError(f"image {name!r} has no pixels ({w}x{h})")
            if w * h > max_pixels:
                raise ImageError(
                    f"image {name!r} is {w}x{h} pixels ({w * h / 1e6:.0f} MP); the limit is "
                    f"{max_pixels / 1e6:.0f} MP (refused as a possible decompression bomb)"
                )
            if getattr(img, "n_frames", 1) > 1:
                img.seek(0)
                notes.append(f"animated image: the first of {img.n_frames} frames is used")
            img.load()
            img = ImageOps.exif_transpose(img)
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(f"image {name!r} is too large to decode safely (possible decompression bomb)") from None
    except UnidentifiedImageError:
        raise ImageError(f"{name!r} is not an image this tool can read (JPEG, PNG, WebP, GIF, BMP, TIFF)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageError(f"image {name!r} is damaged or truncated: {_first_line(exc)}") from None
    rgb, note = _to_rgb(img)
    if note:
        notes.append(note)
    return rgb, ImageInfo(path=name, width=rgb.width, height=rgb.height, format=fmt, notes=tuple(notes))


IMAGE_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")  # JPEG also opens MPO (phone photos)
"""The only PIL decoders an image is handed to; never PostScript/EPS (Ghostscript), PDF or other plugins."""

for _plugin in ("Bmp", "Gif", "Jpeg", "Png", "Tiff", "WebP"):  # registered now: PIL loads others lazily
    importlib.import_module(f"PIL.{_plugin}ImagePlugin")


def _pil_open(fp):
    """PIL's own ``Image.open`` restricted to :data:`IMAGE_FORMATS`, whatever the name or content claims.

    Ultralytics replaces ``Image.open`` with a wrapper that tries to pip-install a HEIF plugin; its original
    is used instead.
    """
    fn = Image.open
    if getattr(fn, "__module__", "") != "PIL.Image":
        try:
            from ultralytics.utils import patches

            fn = patches._image_open
        except (ImportError, AttributeError):
            pass
    return fn(fp, formats=IMAGE_FORMATS)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _to_rgb(img: Image.Image) -> tuple[Image.Image, str | None]:
    mode = img.mode
    if mode == "RGB":
        return img, None
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        arr = np.where(np.isfinite(arr), arr, 0.0)  # float images may hold NaN/inf: they would blacken everything
        lo = min(0.0, float(arr.min())) if arr.size else 0.0  # negative values (mode I, F) shift up, not clip
        hi = float(arr.max()) if arr.size else 0.0
        scale = 255.0 / (hi - lo) if hi > lo else 0.0
        grey = Image.fromarray(np.clip((arr - lo) * scale, 0, 255).astype(np.uint8), mode="L")
        return grey.convert("RGB"), f"{mode} (high bit depth) image scaled to 8-bit RGB"
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB"), "transparency composited on white"
    return img.convert("RGB"), f"{mode} image converted to RGB"


def default_weights(configured: str | None = None) -> str:
    """The weights to load: ``configured`` (``IMGEXT_YOLO_WEIGHTS``) or Ultralytics' default nano model."""
    return configured or DEFAULT_WEIGHTS


class Detector:
    """A YOLO object detector, loaded once, safe to share between threads.

    Parameters
    ----------
    weights : str, optional
        Path to ``.pt``/``.onnx`` weights or an Ultralytics model name.
        Defaults to Ultralytics' nano model (downloaded on first use).
    image_size : int
        Inference size in pixels (the model's training size, 640 for COCO models).
    warm_up : bool
        Run one inference at load time so the first real image is fast.
    one_shot : bool
        For a process that detects in one picture or a few (the CLI's ``render``): ONNX weights are
        loaded without graph optimisation and run on one thread, the least CPU for load plus one
        inference (~0.15 CPU-s less; the same boxes, see :class:`~imgext.vision.onnx_detector.OnnxYolo`).

    Raises
    ------
    ImageError, ParameterError
        ``ParameterError`` if the weights cannot be found or loaded.
    """

    def __init__(self, weights: str | None = None, *, image_size: int = 640, warm_up: bool = True,
                 one_shot: bool = False) -> None:
        weights = default_weights(weights)
        local = Path(weights).expanduser()
        if (os.sep in weights or local.suffix in (".onnx",)) and not local.exists():
            raise ParameterError(f"detector weights not found: {weights} (check IMGEXT_YOLO_WEIGHTS)")
        t0 = time.perf_counter()
        self.weights = weights
        self.image_size = int(image_size)
        self._lock = threading.Lock()
        self._onnx = None
        self._model = None
        if local.suffix.lower() == ".onnx":
            # ONNX Runtime directly: no torch, no Ultralytics (seconds of start-up and ~800 MB saved).
            from imgext.vision.onnx_detector import OnnxYolo

            try:
                self._onnx = OnnxYolo(str(local), threads=1 if one_shot else None, optimize=not one_shot)
            except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own kinds; all mean "cannot load"
                raise ParameterError(f"cannot load detector weights {weights!r}: {_first_line(exc)}") from None
            self.names: dict[int, str] = dict(self._onnx.names)
            self.image_size = int(max(self._onnx.input_size))
        else:
            try:
                from ultralytics import YOLO
            except ImportError as exc:  # pragma: no cover - ultralytics is a hard requirement
                raise ParameterError(f"ultralytics is not installed: {exc}") from None
            try:
                self._model = YOLO(str(local) if local.exists() else weights, task="detect")
            except Exception as exc:  # ultralytics raises many kinds; all mean "cannot load"
                raise ParameterError(f"cannot load detector weights {weights!r}: {_first_line(exc)}") from None
            self.names = dict(self._model.names or {})
        if warm_up:
            self._predict(Image.new("RGB", (self.image_size, self.image_size)), conf=0.5)
        self.load_time_s = time.perf_counter() - t0

    def _predict(self, image: Image.Image, *, conf: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
        """``(xyxyn, scores, classes, names)`` of one RGB picture, boxes normalised to 0..1."""
        with self._lock:
            if self._onnx is not None:
                raw = self._onnx.predict(np.asarray(image), conf=conf)
                scale = np.array([image.width, image.height] * 2, dtype=np.float64)
                return raw.xyxy.astype(float) / scale, raw.scores.astype(float), raw.classes.astype(int), self.names
            result = self._model.predict(image, conf=conf, imgsz=self.image_size, verbose=False)[0]
        boxes = result.boxes
        return (boxes.xyxyn.cpu().numpy().astype(float), boxes.conf.cpu().numpy().astype(float),
                boxes.cls.cpu().numpy().astype(int), result.names or self.names)

    def detect(self, image: Image.Image, *, conf: float = 0.25, max_objects: int = 32) -> list[Detection]:
        """Detect objects in an RGB image.

        Parameters
        ----------
        image : PIL.Image.Image
            Mode ``"RGB"``, as returned by :func:`load_image`.
        conf : float in (0, 1)
            Confidence threshold; lower finds more (and more wrong) objects.
        max_objects : int > 0
            Keep at most this many, the most confident first.

        Returns
        -------
        list of Detection
            Sorted by confidence, highest first.
        """
        if not 0.0 < conf < 1.0:
            raise ParameterError(f"conf={conf} must be between 0 and 1 (exclusive)")
        if max_objects <= 0:
            raise ParameterError(f"max_objects={max_objects} must be positive")
        if image.mode != "RGB":
            raise ParameterError(f"image mode must be RGB, got {image.mode!r}; use load_image()")
        xyxyn, scores, classes, names = self._predict(image, conf=conf)
        order = np.argsort(-scores, kind="stable")[:max_objects]
        return [
            Detection(
                label=str(names.get(int(classes[k]), f"class {int(classes[k])}")),
                confidence=round(float(scores[k]), 4),
                box=tuple(round(float(v), 4) for v in np.clip(xyxyn[k], 0.0, 1.0)),
            )
            for k in order
        ]


def draw_boxes(
    image: Image.Image,
    boxes: list[tuple[float, float, float, float]],
    labels: list[str],
    *,
    dimmed: list[bool] | None = None,
) -> Image.Image:
    """A copy of ``image`` with normalised boxes and their labels drawn on it.

    Parameters
    ----------
    boxes : list of (x0, y0, x1, y1)
        Normalised to [0, 1].
    labels : list of str
        One caption per box.
    dimmed : list of bool, optional
        Boxes drawn grey (objects without a sound).
    """
    from PIL import ImageDraw, ImageFont

    out = image.convert("RGB").copy()
    w, h = out.size
    draw = ImageDraw.Draw(out)
    size = max(12, int(round(min(w, h) / 32)))
    font = ImageFont.load_default(size=size)
    palette = [(255, 99, 71), (65, 171, 255), (120, 220, 110), (255, 196, 0), (200, 120, 255), (0, 210, 200)]
    line = max(2, size // 6)
    for k, (box, label) in enumerate(zip(boxes, labels)):
        colour = (150, 150, 150) if dimmed and dimmed[k] else palette[k % len(palette)]
        x0, y0, x1, y1 = box[0] * w, box[1] * h, box[2] * w, box[3] * h
        draw.rectangle((x0, y0, x1, y1), outline=colour, width=line)
        tx0, ty0, tx1, ty1 = draw.textbbox((0, 0), label, font=font)
        ty = max(0.0, y0 - (ty1 - ty0) - 2 * line)
        draw.rectangle((x0, ty, x0 + (tx1 - tx0) + 2 * line, ty + (ty1 - ty0) + 2 * line), fill=colour)
        draw.text((x0 + line, ty + line - ty0), label, fill=(0, 0, 0), font=font)
    return out

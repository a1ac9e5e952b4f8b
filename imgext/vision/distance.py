"""Distance and direction of an object from the picture, through a pinhole camera.

An object of real height ``H`` metres whose box is ``h`` (fraction of the image
height) tall stands at ``d = f_y * H / h``, where ``f_y = 0.5 / tan(vfov / 2)`` is the
focal length in image heights.  The horizontal field of view is a setting (most
phone and action cameras: 60-80 degrees); the vertical one follows from the
aspect ratio.  Typical real sizes per class are data (``data/sizes.json``).

The estimate is rough by nature (a sitting person, a puppy, a toy car); it is
shown to the user, who can edit it per object.
"""

from __future__ import annotations

import json
import math
from functools import lru_cache
from importlib import resources

from imgext.errors import ParameterError

__all__ = [
    "DEFAULT_FOV_DEG",
    "MIN_DISTANCE_M",
    "MAX_DISTANCE_M",
    "typical_size_m",
    "vertical_fov_deg",
    "estimate_distance_m",
    "direction_deg",
]

DEFAULT_FOV_DEG = 60.0
"""Assumed horizontal field of view of the camera, degrees."""

MIN_DISTANCE_M = 0.3
MAX_DISTANCE_M = 1000.0

_EDGE = 0.01  # a box side within 1 % of the frame's edge is taken as cut by the frame


@lru_cache(maxsize=1)
def _sizes() -> dict:
    text = resources.files("imgext").joinpath("data/sizes.json").read_text(encoding="utf-8")
    return {k: v for k, v in json.loads(text).items() if not k.startswith("_") or k == "_default"}


def typical_size_m(label: str) -> tuple[float, float]:
    """``(height_m, width_m)`` of a typical ``label`` as a camera sees it; a default for unknown labels."""
    table = _sizes()
    entry = table.get(str(label).strip().lower(), table["_default"])
    return float(entry["height_m"]), float(entry["width_m"])


def vertical_fov_deg(fov_deg: float, aspect: float) -> float:
    """Vertical field of view (degrees) for a horizontal ``fov_deg`` and ``aspect`` = width / height."""
    _check_fov(fov_deg)
    if not (aspect > 0 and math.isfinite(aspect)):
        raise ParameterError(f"aspect={aspect} must be a positive width/height ratio")
    return math.degrees(2.0 * math.atan(math.tan(math.radians(fov_deg) / 2.0) / aspect))


def _check_fov(fov_deg: float) -> None:
    if not (10.0 <= fov_deg <= 170.0):
        raise ParameterError(f"fov_deg={fov_deg} must lie between 10 and 170 degrees")


def estimate_distance_m(label: str, box, *, aspect: float, fov_deg: float = DEFAULT_FOV_DEG) -> float:
    """Distance of an object from the camera in metres.

    Parameters
    ----------
    label : str
        Class name; picks the typical size (:func:`typical_size_m`).
    box : sequence of 4 float
        ``(x0, y0, x1, y1)`` as fractions of the image width and height.
    aspect : float
        Image width / height in pixels.
    fov_deg : float
        Horizontal field of view of the camera, degrees.

    Returns
    -------
    float
        Metres, clamped to [``MIN_DISTANCE_M``, ``MAX_DISTANCE_M``], rounded to 0.01 m.

    Notes
    -----
    The estimate from the box height is used, unless the frame cuts the box at
    the top or bottom and not at the sides, then the one from its width.  A box
    cut by the frame is smaller than its object, so its estimate is too far:
    where both sides are cut the nearer of the two estimates is taken.
    """
    x0, y0, x1, y1 = (float(v) for v in box)
    vfov = vertical_fov_deg(fov_deg, aspect)
    f_h = 0.5 / math.tan(math.radians(vfov) / 2.0)  # focal length in image heights
    f_w = 0.5 / math.tan(math.radians(fov_deg) / 2.0)  # and in image widths
    real_h, real_w = typical_size_m(label)
    h, w = max(y1 - y0, 1e-4), max(x1 - x0, 1e-4)
    by_height, by_width = f_h * real_h / h, f_w * real_w / w
    cut_v = y0 <= _EDGE or y1 >= 1.0 - _EDGE
    cut_h = x0 <= _EDGE or x1 >= 1.0 - _EDGE
    if cut_v and not cut_h:
        d = by_width
    elif cut_v and cut_h:
        d = min(by_height, by_width)
    else:
        d = by_height
    return round(min(max(d, MIN_DISTANCE_M), MAX_DISTANCE_M), 2)


def direction_deg(box, *, aspect: float, fov_deg: float = DEFAULT_FOV_DEG) -> tuple[float, float]:
    """Azimuth and elevation (degrees) of the box centre as seen from the camera.

    Azimuth follows the SOFA convention: 0 straight ahead, positive to the
    LEFT; elevation positive up.  Both come from the pinhole model, so an
    object at the left edge of a 60-degree picture sits at +30 degrees.
    """
    x0, y0, x1, y1 = (float(v) for v in box)
    cx, cy = 0.5 * (x0 + x1), 0.5 * (y0 + y1)
    vfov = vertical_fov_deg(fov_deg, aspect)
    az = -math.degrees(math.atan((2.0 * cx - 1.0) * math.tan(math.radians(fov_deg) / 2.0)))
    el = math.degrees(math.atan((1.0 - 2.0 * cy) * math.tan(math.radians(vfov) / 2.0)))
    return round(az, 3), round(el, 3)

"""Where each sound sits: the photo with every sounding box marked by its pan, level and role."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image

__all__ = ["Placed", "ROLE_COLOURS", "draw_placement"]

ROLE_COLOURS = {"event": (255, 99, 71), "bed": (65, 171, 255), "area": (120, 220, 110), "ambience": (200, 120, 255)}
"""Outline colour per role (RGB); other roles are drawn grey."""


@dataclass(frozen=True)
class Placed:
    """One sound to mark on the photo.

    Attributes
    ----------
    name : str
        Caption (the track's name).
    box : tuple of 4 float
        ``(x0, y0, x1, y1)`` normalised to [0, 1].
    pan : float
        Stereo position in [-1, 1] (-1 hard left).
    level_db : float
        The track's level in the mix, dB (relative: the loudest track is drawn boldest).
    role : str
        ``"event"``, ``"bed"``, ``"area"``, ``"ambience"`` ...
    muted : bool
        Drawn dashed-grey (muted or not soloed in the player).
    focused : bool
        The object the user highlighted (framed in white, as in the page's other views).
    """

    name: str
    box: tuple[float, float, float, float]
    pan: float
    level_db: float
    role: str
    muted: bool = False
    focused: bool = False


def draw_placement(image: Image.Image, placed: Sequence[Placed], *, range_db: float = 30.0) -> Image.Image:
    """A copy of ``image`` with each sound's box, a caption (name, role, pan, level) and its pan on a ruler.

    The ruler along the bottom edge runs from hard left to hard right; a line joins each box
    to the point of the ruler where its sound is heard, so a pan moved away from the box shows.
    The outline is thicker the louder the track (the loudest at full width, ``range_db`` under it thinnest).

    Parameters
    ----------
    image : PIL.Image.Image
    placed : sequence of Placed
    range_db : float > 0
        Level span, dB, mapped to the outline width.

    Returns
    -------
    PIL.Image.Image
        RGB, the size of ``image`` plus a strip of ruler at the bottom.
    """
    from PIL import ImageDraw, ImageFont

    src = image.convert("RGB")
    w, h = src.size
    size = max(12, int(round(min(w, h) / 34)))
    strip = 3 * size
    out = Image.new("RGB", (w, h + strip), (20, 20, 24))
    out.paste(src, (0, 0))
    draw = ImageDraw.Draw(out)
    font = ImageFont.load_default(size=size)
    top = max((p.level_db for p in placed), default=0.0)
    ruler_y = h + strip // 2
    draw.line((size, ruler_y, w - size, ruler_y), fill=(160, 160, 160), width=2)
    for x, tag in ((size, "L"), (w / 2, "C"), (w - size, "R")):
        draw.line((x, ruler_y - size // 2, x, ruler_y + size // 2), fill=(160, 160, 160), width=2)
        draw.text((x + 3, ruler_y - size), tag, fill=(200, 200, 200), font=font)
    for p in placed:
        colour = (130, 130, 130) if p.muted else ROLE_COLOURS.get(p.role, (180, 180, 180))
        loud = max(0.0, min(1.0, 1.0 + (p.level_db - top) / range_db))
        line = max(1, int(round(size / 6 + loud * size / 3)))
        x0, y0, x1, y1 = p.box[0] * w, p.box[1] * h, p.box[2] * w, p.box[3] * h
        draw.rectangle((x0, y0, x1, y1), outline=colour, width=line)
        if p.focused:
            grow = line + max(2, size // 4)
            draw.rectangle((x0 - grow, y0 - grow, x1 + grow, y1 + grow), outline=(255, 255, 255), width=max(2, size // 5))
        at = size + (max(-1.0, min(1.0, p.pan)) + 1.0) / 2.0 * (w - 2 * size)
        draw.line(((x0 + x1) / 2, y1, at, ruler_y), fill=colour, width=max(1, line // 2))
        draw.ellipse((at - size / 3, ruler_y - size / 3, at + size / 3, ruler_y + size / 3), fill=colour)
        pan = round(p.pan, 2) + 0.0  # no "-0.00"
        caption = f"{p.name} · {p.role} · pan {pan:+.2f} · {p.level_db:+.1f} dB" + (" · muted" if p.muted else "")
        tx0, ty0, tx1, ty1 = draw.textbbox((0, 0), caption, font=font)
        ty = max(0.0, y0 - (ty1 - ty0) - 2 * line)
        tx = min(x0, max(0.0, w - (tx1 - tx0) - 2 * line))
        draw.rectangle((tx, ty, tx + (tx1 - tx0) + 2 * line, ty + (ty1 - ty0) + 2 * line), fill=colour)
        draw.text((tx + line, ty + line - ty0), caption, fill=(0, 0, 0), font=font)
    return out

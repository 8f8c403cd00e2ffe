"""Draw the add-in's icons: a calm blue shield with a white check, legible down to 16 pixels.

Maintainers run ``python -m addin_service.manifest.draw`` after changing the drawing; the PNGs it
writes to ``addin_service/web/static/icons`` are committed, and manifest builds only copy them.
Needs Pillow (a development dependency).
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

from PIL import Image, ImageChops, ImageDraw

from addin_service.manifest.icons import (
    COLOR_ICON_FILE,
    COLOR_ICON_SIZE,
    OUTLINE_ICON_FILE,
    OUTLINE_ICON_SIZE,
    glyph_filename,
    glyph_sizes,
)

ACCENT = (30, 90, 168)  # #1E5AA8: 7:1 against white
WHITE = (255, 255, 255)
SUPERSAMPLE = 8

Point = tuple[float, float]


def _cubic(p0: Point, p1: Point, p2: Point, p3: Point, steps: int = 24) -> list[Point]:
    out: list[Point] = []
    for i in range(1, steps + 1):
        t = i / steps
        u = 1 - t
        out.append((
            u**3 * p0[0] + 3 * u * u * t * p1[0] + 3 * u * t * t * p2[0] + t**3 * p3[0],
            u**3 * p0[1] + 3 * u * u * t * p1[1] + 3 * u * t * t * p2[1] + t**3 * p3[1],
        ))
    return out


def shield_outline() -> list[Point]:
    """The shield as a closed polygon in the unit square (y grows downwards)."""
    top, left, right = (0.5, 0.07), (0.15, 0.19), (0.85, 0.19)
    left_side, right_side, bottom = (0.15, 0.47), (0.85, 0.47), (0.5, 0.95)
    points: list[Point] = [left]
    points += _cubic(left, (0.27, 0.19), (0.40, 0.15), top)
    points += _cubic(top, (0.60, 0.15), (0.73, 0.19), right)
    points.append(right_side)
    points += _cubic(right_side, (0.85, 0.72), (0.66, 0.86), bottom)
    points += _cubic(bottom, (0.34, 0.86), (0.15, 0.72), left_side)
    return points


CHECK: list[Point] = [(0.30, 0.52), (0.44, 0.66), (0.71, 0.37)]
CHECK_WIDTH = 0.11


def _scaled(points: list[Point], canvas: int, inset: float = 0.0) -> list[Point]:
    span = canvas * (1 - 2 * inset)
    offset = canvas * inset
    return [(offset + x * span, offset + y * span) for x, y in points]


def _mask(canvas: int) -> Image.Image:
    return Image.new("L", (canvas, canvas), 0)


def _shield_mask(canvas: int, inset: float = 0.0) -> Image.Image:
    mask = _mask(canvas)
    ImageDraw.Draw(mask).polygon(_scaled(shield_outline(), canvas, inset), fill=255)
    return mask


def _check_mask(canvas: int, inset: float = 0.0) -> Image.Image:
    mask = _mask(canvas)
    points = _scaled(CHECK, canvas, inset)
    width = max(1, round(CHECK_WIDTH * canvas * (1 - 2 * inset)))
    draw = ImageDraw.Draw(mask)
    draw.line(points, fill=255, width=width, joint="curve")
    radius = width / 2
    for x, y in (points[0], points[-1]):  # round caps
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=255)
    return mask


def _finish(image: Image.Image, size: int) -> bytes:
    small = image.reduce(SUPERSAMPLE) if image.width != size else image
    buffer = io.BytesIO()
    small.save(buffer, format="PNG", optimize=False, compress_level=9)
    return buffer.getvalue()


def _compose(colour_mask: Image.Image, white_mask: Image.Image, colour: tuple[int, int, int]) -> Image.Image:
    """RGBA: ``colour`` where ``colour_mask`` is set, white where ``white_mask`` is, else clear."""
    size = colour_mask.size
    alpha = ImageChops.lighter(colour_mask, white_mask)
    base = Image.new("RGB", size, colour)
    base.paste(Image.new("RGB", size, WHITE), mask=white_mask)
    rgba = base.convert("RGBA")
    rgba.putalpha(alpha)
    return rgba


def draw_glyph(size: int) -> bytes:
    """``icon-<size>.png``: the blue shield with a white check on a transparent ground."""
    canvas = size * SUPERSAMPLE
    shield = _shield_mask(canvas)
    check = ImageChops.multiply(_check_mask(canvas), shield)
    return _finish(_compose(shield, check, ACCENT), size)


def draw_outline(size: int = OUTLINE_ICON_SIZE) -> bytes:
    """The unified manifest's outline icon: white lines on a transparent ground."""
    canvas = size * SUPERSAMPLE
    mask = _mask(canvas)
    draw = ImageDraw.Draw(mask)
    points = _scaled(shield_outline(), canvas, inset=0.03)
    draw.line([*points, points[0], points[1]], fill=255, width=round(canvas * 0.07), joint="curve")
    outline = ImageChops.lighter(mask, _check_mask(canvas, inset=0.03))
    white = Image.new("RGBA", (canvas, canvas), (*WHITE, 0))
    white.putalpha(outline)
    return _finish(white, size)


def draw_color(size: int = COLOR_ICON_SIZE) -> bytes:
    """The unified manifest's colour icon: a white shield with a blue check on the accent colour."""
    canvas = size * SUPERSAMPLE
    shield = _shield_mask(canvas, inset=0.12)
    check = ImageChops.multiply(_check_mask(canvas, inset=0.12), shield)
    image = Image.new("RGBA", (canvas, canvas), (*ACCENT, 255))
    image.paste(Image.new("RGBA", (canvas, canvas), (*WHITE, 255)), mask=shield)
    image.paste(Image.new("RGBA", (canvas, canvas), (*ACCENT, 255)), mask=check)
    return _finish(image, size)


def draw_all() -> dict[str, bytes]:
    """Every shipped icon, by file name."""
    icons = {glyph_filename(size): draw_glyph(size) for size in glyph_sizes()}
    icons[COLOR_ICON_FILE] = draw_color()
    icons[OUTLINE_ICON_FILE] = draw_outline()
    return icons


def write_all(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, data in sorted(draw_all().items()):
        path = directory / name
        path.write_bytes(data)
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    target = Path(args[0]) if args else Path(__file__).resolve().parent.parent / "web" / "static" / "icons"
    for path in write_all(target):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

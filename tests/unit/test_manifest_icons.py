"""The shipped icons: every size the manifests name exists, with the right pixels."""

from __future__ import annotations

import struct
import zlib
from io import BytesIO
from pathlib import Path

import pytest
from PIL import Image

from addin_service.manifest import draw
from addin_service.manifest.icons import (
    COLOR_ICON_FILE,
    OUTLINE_ICON_FILE,
    glyph_filename,
    glyph_sizes,
    png_info,
    png_rgba,
    read_shipped_icon,
    shipped_icon_names,
)

ICON_DIR = Path(__file__).resolve().parents[2] / "addin_service" / "web" / "static" / "icons"


def test_glyph_sizes_cover_desktop_mobile_and_add_in_icons() -> None:
    assert glyph_sizes() == (16, 20, 24, 25, 32, 40, 48, 50, 64, 75, 80, 96, 128, 144)


def test_the_icon_folder_holds_exactly_the_shipped_icons() -> None:
    assert sorted(p.name for p in ICON_DIR.iterdir()) == sorted(shipped_icon_names())


@pytest.mark.parametrize("size", glyph_sizes())
def test_each_glyph_is_a_square_rgba_png_of_its_size(size: int) -> None:
    info = png_info(read_shipped_icon(glyph_filename(size)))

    assert (info.width, info.height) == (size, size)
    assert info.has_alpha and info.bit_depth == 8 and not info.interlaced


@pytest.mark.parametrize("size", glyph_sizes())
def test_each_glyph_has_a_transparent_ground_and_a_visible_shield(size: int) -> None:
    pixels = png_rgba(read_shipped_icon(glyph_filename(size)))

    corners = [pixels[0], pixels[size - 1], pixels[-size], pixels[-1]]
    assert all(p[3] == 0 for p in corners)
    centre = pixels[(size // 2) * size + size // 2 - size // 6]
    assert centre[3] == 255


def test_colour_and_outline_icons_have_the_unified_manifest_sizes() -> None:
    assert (
        png_info(read_shipped_icon(COLOR_ICON_FILE)).width,
        png_info(read_shipped_icon(COLOR_ICON_FILE)).height,
    ) == (192, 192)
    outline = png_info(read_shipped_icon(OUTLINE_ICON_FILE))
    assert (outline.width, outline.height, outline.has_alpha) == (32, 32, True)


@pytest.mark.parametrize(
    "name", [glyph_filename(16), glyph_filename(144), COLOR_ICON_FILE, OUTLINE_ICON_FILE]
)
def test_png_reader_decodes_the_same_pixels_as_pillow(name: str) -> None:
    data = read_shipped_icon(name)

    expected = list(Image.open(BytesIO(data)).convert("RGBA").get_flattened_data())

    assert png_rgba(data) == expected


def test_png_reader_undoes_every_filter_type() -> None:
    # One 5-pixel greyscale row per filter type (None, Sub, Up, Average, Paeth), built by hand.
    rows = [bytes([kind, 10, 20, 30, 40, 50]) for kind in range(5)]
    header = struct.pack(">IIBBBBB", 5, 5, 8, 0, 0, 0, 0)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"".join(rows)))
        + chunk(b"IEND", b"")
    )

    decoded = [p[0] for p in png_rgba(png)]
    pillow = list(Image.open(BytesIO(png)).convert("L").get_flattened_data())
    assert decoded == pillow


def test_png_reader_refuses_a_file_that_is_not_png() -> None:
    with pytest.raises(ValueError, match="signature"):
        png_info(b"GIF89a....")


def test_png_reader_refuses_a_corrupt_chunk() -> None:
    data = bytearray(read_shipped_icon(glyph_filename(16)))
    data[20] ^= 0xFF  # inside IHDR

    with pytest.raises(ValueError, match="CRC"):
        png_info(bytes(data))


def test_unknown_icon_name_is_refused() -> None:
    with pytest.raises(FileNotFoundError):
        read_shipped_icon("../settings.py")


@pytest.mark.parametrize("name", [glyph_filename(16), glyph_filename(80), COLOR_ICON_FILE, OUTLINE_ICON_FILE])
def test_shipped_icons_are_what_the_drawing_code_draws(name: str) -> None:
    """Editing draw.py without regenerating the committed PNGs fails here."""
    fresh = Image.open(BytesIO(draw.draw_all()[name])).convert("RGBA")
    shipped = Image.open(BytesIO(read_shipped_icon(name))).convert("RGBA")

    assert fresh.size == shipped.size
    differences = [
        abs(a - b)
        for p, q in zip(fresh.get_flattened_data(), shipped.get_flattened_data(), strict=True)
        for a, b in zip(p, q, strict=True)
    ]
    assert max(differences) <= 8, "run: python -m addin_service.manifest.draw"

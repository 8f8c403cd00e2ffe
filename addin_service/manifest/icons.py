"""The add-in's icons: which sizes the manifests name, where they are served, and PNG checks.

The PNGs themselves are drawn once by :mod:`addin_service.manifest.draw` (Pillow, a development
dependency) and shipped in ``addin_service/web/static/icons``; building a manifest only copies
and checks them, so a rebuild gives the same bytes on every machine.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from importlib import resources

ICONS_URL_PATH = "static/icons"

# Ribbon buttons and groups (desktop): 16, 32 and 80 are required; the others serve other DPIs.
DESKTOP_SIZES: tuple[int, ...] = (16, 20, 24, 32, 40, 48, 64, 80)
REQUIRED_DESKTOP_SIZES: tuple[int, ...] = (16, 32, 80)
# The unified manifest takes at most three icons per control: the required ones.
UNIFIED_DESKTOP_SIZES: tuple[int, ...] = REQUIRED_DESKTOP_SIZES
# Outlook mobile: each of 25, 32 and 48 at iOS scale 1, 2 and 3 (the file has size x scale pixels).
MOBILE_SIZES: tuple[int, ...] = (25, 32, 48)
MOBILE_SCALES: tuple[int, ...] = (1, 2, 3)
# The add-in's own icon (IconUrl) and its high-DPI twin (HighResolutionIconUrl), as Outlook asks.
ADDIN_ICON_SIZE = 64
HIGH_RES_ICON_SIZE = 128

# Files of the unified manifest's app package, and the pixel sizes the schema states for them.
COLOR_ICON_FILE = "color-192.png"
COLOR_ICON_SIZE = 192
OUTLINE_ICON_FILE = "outline-32.png"
OUTLINE_ICON_SIZE = 32


def mobile_pixel_sizes() -> tuple[int, ...]:
    return tuple(sorted({size * scale for size in MOBILE_SIZES for scale in MOBILE_SCALES}))


def glyph_sizes() -> tuple[int, ...]:
    """Every pixel size of ``icon-<size>.png`` that a manifest refers to."""
    sizes = set(DESKTOP_SIZES) | set(mobile_pixel_sizes()) | {ADDIN_ICON_SIZE, HIGH_RES_ICON_SIZE}
    return tuple(sorted(sizes))


def glyph_filename(pixels: int) -> str:
    return f"icon-{pixels}.png"


def shipped_icon_names() -> tuple[str, ...]:
    """The names of every PNG the service ships in ``static/icons``."""
    return (*(glyph_filename(px) for px in glyph_sizes()), COLOR_ICON_FILE, OUTLINE_ICON_FILE)


def read_shipped_icon(name: str) -> bytes:
    """The bytes of one shipped icon.

    :raises FileNotFoundError: the package was installed without its icons.
    """
    if name not in shipped_icon_names():
        raise FileNotFoundError(f"{name} is not one of the add-in's icons")
    return (resources.files("addin_service.web") / "static" / "icons" / name).read_bytes()


def icon_url(public_url: str, pixels: int) -> str:
    """Where the service serves ``icon-<pixels>.png`` below ``public_url``."""
    return f"{public_url.rstrip('/')}/{ICONS_URL_PATH}/{glyph_filename(pixels)}"


# --- PNG inspection (standard library only) -------------------------------------------------------

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}  # colour type -> samples per pixel (8-bit, no palette)


@dataclass(frozen=True)
class PngInfo:
    width: int
    height: int
    bit_depth: int
    color_type: int
    interlaced: bool

    @property
    def has_alpha(self) -> bool:
        return self.color_type in (4, 6)


def _chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    if not data.startswith(_SIGNATURE):
        raise ValueError("not a PNG file (bad signature)")
    chunks: list[tuple[bytes, bytes]] = []
    pos = len(_SIGNATURE)
    while pos < len(data):
        if pos + 8 > len(data):
            raise ValueError("truncated PNG chunk header")
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        crc_bytes = data[pos + 8 + length : pos + 12 + length]
        if len(body) != length or len(crc_bytes) != 4:
            raise ValueError(f"truncated PNG chunk {kind!r}")
        if struct.unpack(">I", crc_bytes)[0] != zlib.crc32(kind + body):
            raise ValueError(f"PNG chunk {kind!r} fails its CRC check")
        chunks.append((kind, body))
        pos += 12 + length
        if kind == b"IEND":
            break
    if not chunks or chunks[0][0] != b"IHDR" or chunks[-1][0] != b"IEND":
        raise ValueError("PNG must start with IHDR and end with IEND")
    return chunks


def png_info(data: bytes) -> PngInfo:
    """Dimensions and pixel format of a PNG.

    :raises ValueError: not a well-formed PNG.
    """
    header = _chunks(data)[0][1]
    if len(header) != 13:
        raise ValueError("PNG IHDR has the wrong length")
    width, height, depth, colour, _compression, _filter, interlace = struct.unpack(">IIBBBBB", header)
    if width == 0 or height == 0:
        raise ValueError("PNG has a zero dimension")
    return PngInfo(width, height, depth, colour, interlace == 1)


def png_rgba(data: bytes) -> list[tuple[int, int, int, int]]:
    """Every pixel of an 8-bit, non-interlaced greyscale/RGB(A) PNG as RGBA, row by row.

    :raises ValueError: a PNG this reader does not decode (palette, 16-bit, interlaced) or a
        corrupt one.
    """
    chunks = _chunks(data)
    info = png_info(data)
    if info.bit_depth != 8 or info.color_type not in _CHANNELS or info.interlaced:
        raise ValueError("only 8-bit, non-interlaced, non-palette PNGs are decoded here")
    channels = _CHANNELS[info.color_type]
    try:
        raw = zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"))
    except zlib.error as exc:
        raise ValueError(f"PNG image data does not decompress: {exc}") from None
    stride = info.width * channels
    if len(raw) != info.height * (stride + 1):
        raise ValueError("PNG image data has the wrong length")
    pixels: list[tuple[int, int, int, int]] = []
    previous = bytearray(stride)
    for row in range(info.height):
        start = row * (stride + 1)
        kind = raw[start]
        line = bytearray(raw[start + 1 : start + 1 + stride])
        _unfilter(kind, line, previous, channels)
        for x in range(0, stride, channels):
            sample = line[x : x + channels]
            if channels == 1:
                pixels.append((sample[0], sample[0], sample[0], 255))
            elif channels == 2:
                pixels.append((sample[0], sample[0], sample[0], sample[1]))
            elif channels == 3:
                pixels.append((sample[0], sample[1], sample[2], 255))
            else:
                pixels.append((sample[0], sample[1], sample[2], sample[3]))
        previous = line
    return pixels


def _unfilter(kind: int, line: bytearray, previous: bytearray, bpp: int) -> None:
    """Undo one scanline's PNG filter in place (RFC 2083, section 6)."""
    if kind == 0:
        return
    for i in range(len(line)):
        left = line[i - bpp] if i >= bpp else 0
        up = previous[i]
        if kind == 1:
            predictor = left
        elif kind == 2:
            predictor = up
        elif kind == 3:
            predictor = (left + up) // 2
        elif kind == 4:
            upper_left = previous[i - bpp] if i >= bpp else 0
            estimate = left + up - upper_left
            pa, pb, pc = abs(estimate - left), abs(estimate - up), abs(estimate - upper_left)
            predictor = left if pa <= pb and pa <= pc else up if pb <= pc else upper_left
        else:
            raise ValueError(f"unknown PNG filter type {kind}")
        line[i] = (line[i] + predictor) & 0xFF

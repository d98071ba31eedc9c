"""A class map as a PNG a person can read: colours per class, enlarged, with a numbered legend.

Written with zlib and struct only (the codec's runtime has no imaging library). The legend numbers
are drawn with a built-in 3 x 5 pixel digit font, so the PNG says which colour is which class value
without any text rendering stack.
"""
from __future__ import annotations

import colorsys
import struct
import zlib
from typing import Sequence

import numpy as np

# Hand-picked distinct colours for the first classes; more come from golden-angle hues.
_BASE = [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
         (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128), (170, 110, 40),
         (128, 0, 0), (170, 255, 195), (128, 128, 0), (0, 0, 128), (128, 128, 128), (255, 215, 180)]
_UNLABELLED = (0, 0, 0)
_DIGITS = ["111101101101111", "010110010010111", "111001111100111", "111001111001111", "101101111001001",
           "111100111001111", "111100111101111", "111001010010010", "111101111101111", "111101111001111"]
_MIN_SIDE = 256  # the map is enlarged by a whole factor until its longer side reaches this
_ROW = 22  # legend line height in pixels
_FONT = 3  # digit font magnification


def palette(count: int) -> np.ndarray:
    """count x 3 uint8 colours, the same for the same index in every map."""
    colours = list(_BASE[:count])
    for i in range(len(colours), count):
        r, g, b = colorsys.hsv_to_rgb((i * 0.618034) % 1.0, 0.75, 0.95)
        colours.append((int(r * 255), int(g * 255), int(b * 255)))
    return np.array(colours, dtype=np.uint8).reshape(count, 3)


def _draw_number(img: np.ndarray, value: int, top: int, left: int) -> None:
    for k, ch in enumerate(str(value)):
        glyph = np.array([int(b) for b in _DIGITS[int(ch)]], dtype=bool).reshape(5, 3)
        big = np.kron(glyph, np.ones((_FONT, _FONT), dtype=bool))
        x = left + k * 4 * _FONT
        img[top:top + big.shape[0], x:x + big.shape[1]][big] = 0


def render(classmap: np.ndarray, classes: Sequence[int]) -> np.ndarray:
    """H' x W' x 3 uint8 image: the enlarged map, and on its right one swatch + number per class."""
    classes = [int(c) for c in classes]
    colours = palette(len(classes))
    rgb = np.zeros(classmap.shape + (3,), dtype=np.uint8)
    rgb[:] = _UNLABELLED
    for colour, cls in zip(colours, classes):
        rgb[classmap == cls] = colour
    scale = max(1, -(-_MIN_SIDE // max(classmap.shape)))
    big = np.repeat(np.repeat(rgb, scale, axis=0), scale, axis=1)
    digits = max(len(str(c)) for c in classes)
    legend_w = 16 + 16 + 8 + digits * 4 * _FONT + 8
    height = max(big.shape[0], 8 + _ROW * len(classes))
    img = np.full((height, big.shape[1] + legend_w, 3), 255, dtype=np.uint8)
    img[:big.shape[0], :big.shape[1]] = big
    left = big.shape[1] + 16
    for i, (colour, cls) in enumerate(zip(colours, classes)):
        top = 8 + i * _ROW
        img[top:top + 16, left:left + 16] = 0  # 1-pixel dark frame: pale colours stay visible
        img[top + 1:top + 15, left + 1:left + 15] = colour
        _draw_number(img, cls, top + 1, left + 24)
    return img


def png_bytes(rgb: np.ndarray) -> bytes:
    """An 8-bit RGB image as PNG bytes (no filtering, zlib level 9)."""
    h, w, _ = rgb.shape
    raw = np.concatenate([np.zeros((h, 1), dtype=np.uint8), rgb.reshape(h, w * 3)], axis=1).tobytes()

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def class_map_png(classmap: np.ndarray, classes: Sequence[int]) -> bytes:
    """PNG bytes of `classmap` (H x W label values; values not in `classes` drawn black) with its legend."""
    return png_bytes(render(np.asarray(classmap), classes))

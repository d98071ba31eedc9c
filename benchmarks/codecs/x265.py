"""x265: the bands, normalised per band to 12 bits, as the frames of a grey HEVC video.

Rate by bisection on crf; both plain x265 and `-tune psnr` are tried and the better one reported.
"""
from __future__ import annotations

from typing import Any, Iterable, Optional

import numpy as np

from . import hevc
from .base import ClassicalCodec, band_range, from_unit, pack, pack_meta, to_unit, unpack, unpack_meta


class X265(ClassicalCodec):
    name = "x265"
    knob = "crf"
    knob_range = (-24.0, 51.0)

    def unavailable(self) -> Optional[str]:
        return hevc.unavailable()

    def candidates(self, cube: np.ndarray, budget: int) -> Iterable[dict]:
        return [{"tune": "psnr"}, {"tune": None}]

    def prepare(self, cube: np.ndarray) -> Any:
        rng = band_range(cube)
        frames = np.rint(to_unit(cube, rng) * hevc.MAX12).astype(np.uint16).transpose(2, 0, 1)
        return cube, rng, frames

    def encode_prepared(self, prep: Any, settings: dict) -> bytes:
        cube, rng, frames = prep
        stream = hevc.encode(frames, crf=settings["crf"], tune=settings["tune"])
        return pack([pack_meta(cube.shape, cube.dtype), rng.tobytes(), stream])

    def decode_bytes(self, data: bytes) -> np.ndarray:
        meta, rng_b, stream = unpack(data)
        (h, w, c), dtype, _ = unpack_meta(meta)
        frames = hevc.decode(stream, (c, h, w)).transpose(1, 2, 0)
        rng = np.frombuffer(rng_b, dtype=np.float32).reshape(2, c)
        return from_unit(frames / hevc.MAX12, rng, dtype)

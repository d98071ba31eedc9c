"""JPEG 2000 per band: one 16-bit codestream a band, one compression ratio shared by all bands.

Unsigned integer cubes of up to 16 bits are coded as they are; any other cube is normalised per
band to 16 bits and its per-band min/max (float32) travel in the file.
"""
from __future__ import annotations

from typing import Any, Optional

import numpy as np

from . import j2k
from .base import ClassicalCodec, pack, pack_meta, unpack, unpack_meta, band_range, from_unit, to_unit

_FULL = 65535.0


def _direct(dtype: np.dtype) -> bool:
    """Cubes whose samples JPEG 2000 holds exactly at 16 bits are coded without normalisation."""
    return dtype.kind == "u" and dtype.itemsize <= 2


class Jpeg2000(ClassicalCodec):
    name = "jpeg2000"
    knob = "cratio"
    knob_range = (1.0, 5000.0)
    knob_log = True

    def unavailable(self) -> Optional[str]:
        return j2k.unavailable()

    def prepare(self, cube: np.ndarray) -> Any:
        if _direct(cube.dtype):
            return cube, None, cube.astype(np.uint16)
        rng = band_range(cube)
        return cube, rng, np.rint(to_unit(cube, rng) * _FULL).astype(np.uint16)

    def encode_prepared(self, prep: Any, settings: dict) -> bytes:
        cube, rng, samples = prep
        parts = [pack_meta(cube.shape, cube.dtype)]
        if rng is not None:
            parts.append(rng.tobytes())
        parts += [j2k.encode(samples[:, :, c], settings["cratio"]) for c in range(cube.shape[2])]
        return pack(parts)

    def decode_bytes(self, data: bytes) -> np.ndarray:
        parts = unpack(data)
        shape, dtype, _ = unpack_meta(parts[0])
        direct = _direct(dtype)
        streams = parts[1:] if direct else parts[2:]
        bands = np.stack([j2k.decode(s) for s in streams], axis=-1)
        if direct:
            return bands.astype(dtype)
        rng = np.frombuffer(parts[1], dtype=np.float32).reshape(2, shape[2])
        return from_unit(bands / _FULL, rng, dtype)

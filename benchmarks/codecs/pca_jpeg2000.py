"""PCA + JPEG 2000: the top k spectral components in one 16-bit multi-component codestream.

All components share one quantisation step (offsets per component), so a code value means the same
error everywhere and OpenJPEG's rate allocation across components minimises the true squared error.
(Per-component codestreams with a Lagrangian rate allocation were tried and lost: ~112 header bytes
per component cost more than the finer allocation gains at these rates.)
"""
from __future__ import annotations

from typing import Any, Optional

import numpy as np

from . import j2k, pca
from .base import pack, pack_meta, unpack, unpack_meta

_FULL = 65535.0


class PcaJpeg2000(pca.PcaCodec):
    name = "pca-jpeg2000"
    knob = "cratio"
    knob_range = (1.0, 20000.0)
    knob_log = True

    def unavailable(self) -> Optional[str]:
        return j2k.unavailable()

    def encode_prepared(self, prep: Any, settings: dict) -> bytes:
        cube, p = prep
        k = settings["k"]
        comps = pca.components(p, k, cube.shape)
        offset = comps.min(axis=(0, 1)).astype(np.float32)
        step = np.float32(max(float((comps.max(axis=(0, 1)) - offset).max()), 1e-12) / _FULL)
        q = np.clip(np.rint((comps - offset) / float(step)), 0, _FULL).astype(np.uint16)
        head = [pack_meta(cube.shape, cube.dtype, (k,)), *pca.side_info(p, k), offset.tobytes(), step.tobytes()]
        return pack([*head, j2k.encode(q, settings["cratio"])])

    def decode_bytes(self, data: bytes) -> np.ndarray:
        parts = unpack(data)
        (h, w, c), dtype, (k,) = unpack_meta(parts[0], 1)
        offset = np.frombuffer(parts[4], dtype=np.float32).astype(np.float64)
        step = float(np.frombuffer(parts[5], dtype=np.float32)[0])
        q = j2k.decode(parts[6]).reshape(h, w, k)
        return pca.reconstruct(parts[1:4], q * step + offset, dtype)

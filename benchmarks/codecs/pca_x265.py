"""PCA + x265: the top k spectral components as the 12-bit frames of a grey HEVC video.

One gain for all components (offsets per component), so a code value means the same error in
every component and a weak component is not stretched to full range: x265's bits go where the
reconstruction error is. Only components that would overflow 12 bits get a smaller gain.

Rate knob `level`: x265 at constant quantiser qp = max(ceil(level), 0), and the common gain
x 2^((qp - level) / 6), so the knob is continuous between integer qps and goes on below qp 0
(6 qp = a factor 2 in step size). Constant qp beat crf rate control by about 1 dB here at the
higher rates (x265's crf 0 is still too coarse for them).
"""
from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np

from . import hevc, pca
from .base import pack, pack_meta, unpack, unpack_meta

_MID = (hevc.MAX12 + 1) // 2


class PcaX265(pca.PcaCodec):
    name = "pca-x265"
    knob = "level"
    knob_range = (-36.0, 51.0)

    def unavailable(self) -> Optional[str]:
        return hevc.unavailable()

    def encode_prepared(self, prep: Any, settings: dict) -> bytes:
        cube, p = prep
        k, level = settings["k"], settings["level"]
        qp = max(math.ceil(level), 0)
        comps = pca.components(p, k, cube.shape)
        lo, hi = comps.min(axis=(0, 1)), comps.max(axis=(0, 1))
        span = np.maximum(hi - lo, 1e-12)
        common = hevc.MAX12 / span.max() * 2.0 ** ((qp - level) / 6.0)
        gain = np.minimum(common, hevc.MAX12 / span).astype(np.float32)
        centre = ((lo + hi) / 2).astype(np.float32)
        q = np.rint((comps - centre) * gain.astype(np.float64) + _MID)
        q = np.clip(q, 0, hevc.MAX12).astype(np.uint16)
        stream = hevc.encode(q.transpose(2, 0, 1), qp=qp, tune="psnr")
        head = [pack_meta(cube.shape, cube.dtype, (k,)), *pca.side_info(p, k), centre.tobytes(), gain.tobytes()]
        return pack([*head, stream])

    def decode_bytes(self, data: bytes) -> np.ndarray:
        parts = unpack(data)
        (h, w, c), dtype, (k,) = unpack_meta(parts[0], 1)
        centre = np.frombuffer(parts[4], dtype=np.float32).astype(np.float64)
        gain = np.frombuffer(parts[5], dtype=np.float32).astype(np.float64)
        q = hevc.decode(parts[6], (k, h, w)).transpose(1, 2, 0)
        return pca.reconstruct(parts[1:4], (q.astype(np.float64) - _MID) / gain + centre, dtype)

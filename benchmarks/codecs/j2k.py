"""JPEG 2000 (OpenJPEG) through glymur for encoding and imagecodecs for decoding, as PROTOCOL.md did.

glymur exposes OpenJPEG's compression-ratio rate control, which imagecodecs does not; it only writes
files, so each codestream goes through a temporary file.
"""
from __future__ import annotations

import struct
import tempfile
from pathlib import Path
from typing import Optional

import numpy as np


def unavailable() -> Optional[str]:
    """Why JPEG 2000 cannot run here, or None."""
    try:
        import glymur
        import imagecodecs
    except ImportError as exc:
        return f"{exc.name} is not installed (pip install hinerc[bench])"
    if not glymur.version.openjpeg_version:
        return "glymur found no libopenjp2 (apt-get install libopenjp2-7)"
    if not imagecodecs.JPEG2K.available:
        return "imagecodecs was built without JPEG 2000"
    return None


def encode(image: np.ndarray, cratio: float) -> bytes:
    """One raw .j2k codestream: 9/7 irreversible wavelet, no colour transform, 16-bit samples.

    `image` is H x W (one band) or H x W x K (K components in one codestream, the rate shared
    by OpenJPEG's rate allocation over all of them).
    """
    import glymur

    with tempfile.TemporaryDirectory(prefix="bench-j2k-") as tmp:
        path = Path(tmp) / "x.j2k"
        glymur.Jp2k(path, data=np.ascontiguousarray(image, dtype=np.uint16), cratios=[float(cratio)],
                    irreversible=True, mct=False, numres=resolutions(image.shape[:2]))
        return _strip_comments(path.read_bytes())


def _strip_comments(stream: bytes) -> bytes:
    """Drop the main header's COM segments ("Created by OpenJPEG ...", 39 bytes): not needed to decode."""
    out, pos = [stream[:2]], 2  # SOC
    while stream[pos:pos + 2] != b"\xff\x90":  # main header ends at the first SOT
        (length,) = struct.unpack_from(">H", stream, pos + 2)
        if stream[pos:pos + 2] != b"\xff\x64":
            out.append(stream[pos:pos + 2 + length])
        pos += 2 + length
    out.append(stream[pos:])
    return b"".join(out)


def resolutions(shape: tuple[int, int]) -> int:
    """OpenJPEG's default 6 resolution levels (5 wavelet levels), fewer on images under 32 pixels."""
    return max(1, min(6, int(np.log2(min(shape))) + 1))


def decode(data: bytes) -> np.ndarray:
    """Samples of one codestream (H x W, or H x W x K)."""
    import imagecodecs

    return imagecodecs.jpeg2k_decode(data)

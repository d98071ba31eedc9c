"""12-bit grey HEVC through the ffmpeg command line (libx265), for the x265 and pca-x265 codecs.

The stream is written as a raw Annex B .hevc stream (no container) with x265's settings SEI turned
off (info=0): every byte left is needed to decode, and none is wasted on a text banner.
"""
from __future__ import annotations

import shutil
import subprocess
from functools import lru_cache
from typing import Optional

import numpy as np

from .base import CodecError

MAX12 = 4095


@lru_cache(maxsize=1)
def unavailable() -> Optional[str]:
    """Why ffmpeg with 12-bit grey libx265 cannot run here, or None."""
    exe = shutil.which("ffmpeg")
    if exe is None:
        return "ffmpeg not found (apt-get install ffmpeg)"
    try:
        info = subprocess.run([exe, "-hide_banner", "-h", "encoder=libx265"], capture_output=True,
                              text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        return f"ffmpeg does not run: {exc}"
    if "libx265" not in info:
        return "this ffmpeg has no libx265 encoder"
    if "gray12le" not in info:
        return "this ffmpeg's libx265 has no gray12le (12-bit grey) input"
    return None


def _ffmpeg(args: list[str], data: bytes) -> bytes:
    proc = subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", *args], input=data,
                          capture_output=True)
    if proc.returncode != 0:
        raise CodecError("ffmpeg failed: " + proc.stderr.decode(errors="replace").strip()[-300:])
    return proc.stdout


def encode(frames: np.ndarray, *, crf: Optional[float] = None, qp: Optional[int] = None,
           tune: Optional[str] = "psnr") -> bytes:
    """HEVC stream of N x H x W 12-bit frames (values 0..4095), preset slow.

    Rate control: constant rate factor `crf` (may be negative down to -24, x265 allows
    -QpBdOffset at 12 bits; quality stops rising at about -6), or constant quantiser `qp` (0..51).
    """
    n, h, w = frames.shape
    rate = f"crf={crf:.4f}" if qp is None else f"qp={int(qp)}"
    args = ["-f", "rawvideo", "-pix_fmt", "gray12le", "-s", f"{w}x{h}", "-r", "25", "-i", "-",
            "-c:v", "libx265", "-preset", "slow", "-x265-params", f"info=0:log-level=error:{rate}"]
    if tune:
        args += ["-tune", tune]
    return _ffmpeg([*args, "-f", "hevc", "-"], np.ascontiguousarray(frames, dtype="<u2").tobytes())


def decode(stream: bytes, shape: tuple[int, int, int]) -> np.ndarray:
    """N x H x W frames of a stream written by `encode`."""
    raw = _ffmpeg(["-f", "hevc", "-i", "-", "-f", "rawvideo", "-pix_fmt", "gray12le", "-"], stream)
    n, h, w = shape
    if len(raw) != 2 * n * h * w:
        raise CodecError(f"ffmpeg decoded {len(raw) // (2 * h * w)} frames, the file holds {n}")
    return np.frombuffer(raw, dtype="<u2").reshape(n, h, w)

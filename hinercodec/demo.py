"""`hinerc demo`: encode and decode the small real scene shipped in the package.

The sample is a 64 x 64 x 48 crop of the GRSS DFC 2018 Houston scene (uint16 sensor units,
380-1050 nm; see data/make_sample.py), so a new user can see the whole codec work, end to end
through a real file, with no data of their own.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import numpy as np

from . import api
from .formats import cubeio
from .metrics import distortion

SAMPLE = Path(__file__).with_name("data") / "sample_houston.npz"


def sample() -> cubeio.Cube:
    return cubeio.read_cube(SAMPLE, key="cube")


def run(workdir: Path, options: api.EncodeOptions, progress: Optional[api.ProgressFn] = None) -> dict:
    """Encode the sample to workdir/sample.hnr, decode that file, and measure it."""
    cube = sample()
    t0 = time.perf_counter()
    result = api.encode(cube.data, cube.wavelengths, options, progress)
    path = Path(workdir) / "sample.hnr"
    cubeio.atomic_write_bytes(path, result.data, force=True)
    encode_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    decoded = api.decode(path.read_bytes())
    decode_s = time.perf_counter() - t0
    dist = distortion(cube.data, decoded)
    return {
        "input": f"{SAMPLE.name} (Houston 2018 crop, {' x '.join(map(str, cube.data.shape))} {cube.data.dtype})",
        "output": str(path), "bytes": path.stat().st_size,
        "bpppb": 8 * path.stat().st_size / cube.data.size, "target_bpppb": options.bpppb,
        "psnr_band": dist.psnr_band, "psnr_global": dist.psnr_global, "sam_deg": dist.sam_deg,
        "dtype_restored": bool(decoded.dtype == cube.data.dtype and decoded.shape == cube.data.shape),
        "max_abs_error": int(np.abs(decoded.astype(np.int64) - cube.data.astype(np.int64)).max()),
        "encode_s": encode_s, "decode_s": decode_s, "device": result.device,
    }

"""One scene file in, one .hnr file out: what `hinerc encode` and archive runs do per input.

Kept apart from the CLI so that a batch runner (one process or a Dask cluster) encodes a file
exactly as the command does, and gets the same summary record back.
"""
from __future__ import annotations

import time
from typing import Optional, Sequence, Union

import numpy as np

from . import api
from .formats import cubeio


def encode_file(input: str, output: Optional[str], options: api.EncodeOptions, *, key: Optional[str] = None,
                wavelengths: Union[None, str, Sequence[float], np.ndarray] = None, force: bool = False,
                progress: Optional[api.ProgressFn] = None) -> tuple[dict, bytes]:
    """Read INPUT, encode it, write OUTPUT atomically (None: write nothing), return (summary, file bytes).

    The summary holds input, output, shape, dtype, bytes, bpppb, target_bpppb, psnr_band, seconds
    (reading to the file on disk), device and the pipeline's stats. Errors are hinercodec.errors.
    """
    started = time.perf_counter()
    cube = cubeio.read_cube(input, key=key, wavelengths=wavelengths)
    result = api.encode(cube.data, cube.wavelengths, options, progress)
    if output is not None:
        cubeio.atomic_write_bytes(output, result.data, force=force)
    summary = {
        "input": input, "output": output, "shape": list(cube.data.shape), "dtype": str(cube.data.dtype),
        "bytes": len(result.data), "bpppb": result.bpppb, "target_bpppb": options.bpppb,
        "psnr_band": result.psnr_band, "seconds": time.perf_counter() - started, "device": result.device,
        "stats": result.stats,
    }
    return summary, result.data

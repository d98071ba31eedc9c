"""One scene file in, one .hnr file out: what `hinerc encode` and archive runs do per input.

Kept apart from the CLI so that a batch runner (one process or a Dask cluster) encodes a file
exactly as the command does, and gets the same summary record back.
"""
from __future__ import annotations

import contextlib
import time
from typing import Optional, Sequence, Union

import numpy as np

from . import api
from .formats import cubeio


def encode_file(input: str, output: Optional[str], options: api.EncodeOptions, *, key: Optional[str] = None,
                wavelengths: Union[None, str, Sequence[float], np.ndarray] = None, force: bool = False,
                progress: Optional[api.ProgressFn] = None, map_fn: api.MapFn = map,
                target: Optional[cubeio.OutputTarget] = None, layout: Optional[str] = None,
                nodata: Optional[float] = None) -> tuple[dict, bytes]:
    """Read INPUT, encode it, write OUTPUT atomically (None: write nothing), return (summary, file bytes).

    OUTPUT is claimed (its temporary file created beside it) before INPUT is read, so a missing
    directory, a read-only file system or an existing file (without `force`) fails at once, with
    nothing read and nothing left behind; `target` is an output the caller claimed already
    (cubeio.claim_output). The summary holds input, output, shape, dtype, bytes, bpppb,
    target_bpppb, psnr_band, seconds (reading to the file on disk), device and the pipeline's
    stats. Errors are hinercodec.errors. A large cube is read and fitted tile by tile; `map_fn`
    runs the tile fits (see api.encode). `layout` is the stored axis order when the file does not
    say it (cubeio.LAYOUTS); `nodata` the nodata value, over the file's own (api.encode).
    """
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        if output is not None and target is None:
            target = stack.enter_context(cubeio.claim_output(output, force))
        with cubeio.open_cube(input, key=key, wavelengths=wavelengths, layout=layout) as cube:
            result = api.encode_reader(cube, options, progress, map_fn, nodata=nodata)
            shape, dtype = cube.shape, cube.dtype
        if output is not None:
            cubeio.atomic_write_bytes(output, result.data, force=force, target=target)
    summary = {
        "input": input, "output": output, "shape": list(shape), "dtype": str(dtype),
        "bytes": len(result.data), "bpppb": result.bpppb, "target_bpppb": options.bpppb,
        "psnr_band": result.psnr_band, "seconds": time.perf_counter() - started, "device": result.device,
        "stats": result.stats,
    }
    return summary, result.data
